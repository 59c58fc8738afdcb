"""`crossguard policy check / diff / simulate` and `crossguard sor export`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crossguard.policy.engine import Action
from crossguard.policy.loader import load_policy
from crossguard.policy.simulate import GroupStats, SimulationReport, read_recorded, simulate
from crossguard.v1 import decision_pb2

console = Console(stderr=False)
note = Console(stderr=True)

_SHORT = {
    Action.ALLOW: "allow",
    Action.AGE_RESTRICT: "age",
    Action.LIMIT_VISIBILITY: "limit",
    Action.ESCALATE: "escalate",
    Action.BLOCK: "block",
}


def run_policy_check(paths: tuple[Path, ...]) -> int:
    """Load each file (errors raise PolicyError: file, line and field)."""
    for path in paths:
        p = load_policy(path)
        console.print(
            f"{path}: ok, version {p.version}, {len(p.categories)} category rules, "
            f"{len(p.overrides)} overrides"
        )
    return 0


def run_policy_diff(a: Path, b: Path) -> int:
    from crossguard.policy.diff import SettingChange, diff_policies

    pa, pb = load_policy(a), load_policy(b)
    d = diff_policies(pa, pb)
    console.print(f"policy {pa.version} ({a}) → {pb.version} ({b})")
    if d.empty:
        console.print("no rule changes")
        return 0
    if d.settings:
        t = Table(title="rule changes (as written)")
        for col in ("setting", "change", pa.version, pb.version):
            t.add_column(col)
        for c in d.settings:
            t.add_row(
                escape(c.path),
                c.kind,
                escape(SettingChange.show(c.before)),
                escape(SettingChange.show(c.after)),
            )
        console.print(t)
    if d.effective:
        t = Table(title="effective changes per tenant/surface scope")
        for col in ("scope", "subject", "setting", pa.version, pb.version):
            t.add_column(col)
        for e in d.effective:
            t.add_row(
                escape(e.scope),
                escape(e.subject),
                e.setting,
                escape(SettingChange.show(e.before)),
                escape(SettingChange.show(e.after)),
            )
        console.print(t)
    return 0


def _cell(g: GroupStats, action: Action) -> str:
    before, after = g.before[action], g.after[action]
    if before == after:
        return str(before)
    return f"{before}→{after} ({after - before:+d})"


def _delta(before: int, after: int) -> str:
    return str(before) if before == after else f"{before}→{after} ({after - before:+d})"


def _group_table(title: str, groups: dict[str, GroupStats], total: GroupStats) -> Table:
    t = Table(title=title)
    t.add_column(title.split()[-1])
    for col in ("items", "changed", *(_SHORT[a] for a in Action), "escalations", "reviews"):
        t.add_column(col, justify="right")
    rows = sorted(groups.items(), key=lambda kv: (-kv[1].changed, kv[0]))
    for name, g in [*rows, ("total", total)]:
        t.add_row(
            escape(name),
            str(g.items),
            str(g.changed),
            *(_cell(g, a) for a in Action),
            _delta(g.escalations_before, g.escalations_after),
            _delta(g.reviews_before, g.reviews_after),
            style="bold" if name == "total" else None,
        )
    return t


def print_simulation(report: SimulationReport, out: Console = console) -> None:
    out.print(
        f"simulated policy {report.new_version} against {report.baseline} on "
        f"{report.items} recorded decisions"
    )
    out.print(_group_table("by category", report.by_category, report.total))
    out.print(_group_table("by surface", report.by_surface, report.total))
    if report.changes:
        t = Table(title="changes (before → after; +review: escalated to people)")
        for col in ("surface", "category", "before", "after", "items", "examples (rule now)"):
            t.add_column(col, justify="right" if col == "items" else "left")
        ordered = sorted(report.changes.items(), key=lambda kv: -kv[1].count)
        for key, change in ordered:
            examples = ", ".join(f"{cid} ({rule or '-'})" for cid, rule in change.examples)
            t.add_row(
                escape(key.surface),
                key.category,
                key.before,
                key.after,
                str(change.count),
                escape(examples),
            )
        out.print(t)
    else:
        out.print("no decision changes")
    for why in report.skipped[:10]:
        note.print(f"[yellow]skipped[/] {why}")
    if len(report.skipped) > 10:
        note.print(f"[yellow]skipped[/] … {len(report.skipped) - 10} more")
    rate = report.items / report.seconds if report.seconds else float("inf")
    out.print(
        f"time: {report.seconds:.2f} s for {report.items} recorded decisions "
        f"({rate:,.0f}/s, reading and deciding)"
    )


def run_policy_simulate(new: Path, recorded: Path, baseline: Path | None) -> int:
    policy = load_policy(new)
    base = load_policy(baseline) if baseline is not None else None
    report = simulate(policy, read_recorded(recorded), baseline=base)
    print_simulation(report)
    return 0 if report.items else 1


def _decisions(path: Path) -> Iterator[decision_pb2.ModerationDecision]:
    from crossguard.policy.sor_export import read_decisions

    for _, msg in read_decisions(path):
        if isinstance(msg, str):
            note.print(f"[yellow]skipped[/] {msg}")
            continue
        yield msg


def run_sor_export(recorded: Path, out: Path, batch_size: int) -> int:
    from crossguard.policy.sor_export import export

    report = export(_decisions(recorded), out, batch_size)
    console.print(
        f"{report.exported} statements of reasons from {report.decisions} decisions → {out}"
    )
    for why, n in sorted(report.skipped.items()):
        console.print(f"  left out {n}: {why}")
    return 0
