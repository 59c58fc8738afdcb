#!/usr/bin/env python
"""Time `crossguard policy simulate` on N recorded decisions (default 10,000): the decisions of
RECORDED (e.g. from `crossguard replay --record`) tiled with new content ids over four surfaces
and two tenants, then decided again under POLICY. Prints the simulator's tables' last line (the
time); never asserts a speed.

    .venv/bin/python scripts/bench_policy_simulate.py RECORDED.jsonl POLICY.yaml [-n 10000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from rich.console import Console

from crossguard.cli.policy import print_simulation
from crossguard.policy.loader import load_policy
from crossguard.policy.simulate import read_recorded, simulate

SURFACES = ("comment", "dm", "profile", "post")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recorded", type=Path)
    parser.add_argument("policy", type=Path)
    parser.add_argument("-n", type=int, default=10_000)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.recorded.open() if line.strip()]
    if not rows:
        raise SystemExit(f"{args.recorded}: no decisions")
    with tempfile.TemporaryDirectory() as tmp:
        tiled = Path(tmp) / "recorded.jsonl"
        with tiled.open("w") as out:
            for i in range(args.n):
                row = dict(rows[i % len(rows)])
                row["content_id"] = f"{row.get('content_id', 'item')}-{i}"
                row["surface"] = SURFACES[i % len(SURFACES)]
                row["tenant"] = "kids" if i % 7 == 0 else row.get("tenant", "default")
                out.write(json.dumps(row, separators=(",", ":")) + "\n")
        report = simulate(load_policy(args.policy), read_recorded(tiled))
    console = Console(width=160)
    print_simulation(report, console)


if __name__ == "__main__":
    main()
