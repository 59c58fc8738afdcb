"""Human-readable and JSON renderings of decisions."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crossguard.core.taxonomy import Category
from crossguard.v1 import decision_pb2, taxonomy_pb2

ACTION_STYLE = {
    "ALLOW": "green",
    "AGE_RESTRICT": "cyan",
    "LIMIT_VISIBILITY": "magenta",
    "ESCALATE": "yellow",
    "BLOCK": "red",
}


def action_name(value: int) -> str:
    return taxonomy_pb2.Action.Name(value).removeprefix("ACTION_")  # type: ignore[arg-type]


def modality_name(value: int) -> str:
    return taxonomy_pb2.Modality.Name(value).removeprefix("MODALITY_").lower()  # type: ignore[arg-type]


def top_categories(d: decision_pb2.ModerationDecision, n: int = 3) -> str:
    scored = sorted(d.categories, key=lambda c: c.score, reverse=True)
    shown = [
        f"{Category.from_proto(c.category).value} {c.score:.2f}"
        for c in scored[:n]
        if c.score >= 0.05 and Category.from_proto(c.category) != Category.PROFANITY
    ]
    return ", ".join(shown) or "-"


def missing(d: decision_pb2.ModerationDecision) -> str:
    return ", ".join(f"{modality_name(m.modality)}: {m.reason}" for m in d.missing_signals) or "-"


def decision_json(d: decision_pb2.ModerationDecision) -> str:
    data: dict[str, Any] = MessageToDict(d, preserving_proto_field_name=True)
    return json.dumps(data, indent=2, ensure_ascii=False)


def decision_table(d: decision_pb2.ModerationDecision) -> Table:
    table = Table(title=f"decision for {d.content_id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    act = action_name(d.action)
    table.add_row("action", f"[{ACTION_STYLE.get(act, 'white')}]{act}[/]")
    table.add_row("policy", d.policy_version)
    for c in sorted(d.categories, key=lambda c: c.score, reverse=True):
        if c.score >= 0.05:
            name = Category.from_proto(c.category).value
            table.add_row(f"  {name}", f"{c.score:.3f} (severity {c.severity})")
    for r in d.reasons:
        table.add_row("reason", r)
    for ev in d.evidence:
        for e in ev.evidence[:5]:
            if e.WhichOneof("location") == "span":
                cat = Category.from_proto(e.category).value
                table.add_row("evidence", f"{cat}: “{e.span.text}” ({e.weight:+.2f})")
        for t in ev.transcripts:
            for seg in t.segments[:10]:
                at = seg.time_range
                when = f"{at.start_ms / 1000:.1f}–{at.end_ms / 1000:.1f} s"
                table.add_row(f"heard in {t.part_id}", escape(f"{when}: {seg.text.strip()}"))
            if len(t.segments) > 10 or t.omitted_segments:
                more = len(t.segments) - min(10, len(t.segments)) + t.omitted_segments
                table.add_row(f"heard in {t.part_id}", f"… {more} more segment(s)")
    table.add_row("missing signals", missing(d))
    table.add_row("models", ", ".join(f"{m.name}/{m.version}" for m in d.models) or "-")
    if d.escalation.escalated:
        table.add_row(
            "escalation",
            f"rule {d.escalation.rule}, priority {d.escalation.priority:.2f}, "
            f"{d.escalation.required_verdicts} verdict(s) needed",
        )
        table.add_row("meanwhile", action_name(d.applied_action))
    if d.HasField("statement_of_reasons"):
        table.add_row("statement of reasons", escape(d.statement_of_reasons.text))
    return table


def print_decision(console: Console, d: decision_pb2.ModerationDecision, as_json: bool) -> None:
    if as_json:
        console.print_json(decision_json(d))
    else:
        console.print(decision_table(d))
