"""`crossguard sor export`: statements of reasons from recorded decisions, in the DSA
Transparency Database's submission format (the body of `POST /api/v1/statements`:
``{"statements": [...]}``, at most 100 per request; field names and values as in its API
documentation and its StatementsStoreRequest validation rules)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TextIO

from google.protobuf import json_format

from crossguard.core.errors import InvalidInput
from crossguard.policy.jsonl import nonempty_lines
from crossguard.policy.sor import GROUND_KINDS
from crossguard.v1 import decision_pb2, taxonomy_pb2

MAX_BATCH = 100  # the API's limit per request
# The API's length limits.
_MAX_FACTS = 5000
_MAX_EXPLANATION = 2000
_MAX_SHORT = 500

_END_DATE_FIELD = {
    "visibility": "end_date_visibility_restriction",
    "monetary": "end_date_monetary_restriction",
    "provision": "end_date_service_restriction",
    "account": "end_date_account_restriction",
}


@dataclass
class ExportReport:
    decisions: int = 0
    exported: int = 0
    # Why decisions were left out, with counts.
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _day(ts: Any) -> date | None:
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    value: date = ts.ToDatetime().date()
    return value


def tdb_statement(d: decision_pb2.ModerationDecision) -> dict[str, Any]:
    """One Transparency Database statement from a decision carrying a statement of reasons
    with at least one restriction."""
    s = d.statement_of_reasons
    applied = _day(d.decided_at) or date.today()
    out: dict[str, Any] = {}
    visibility = [r for r in s.restrictions if r.kind == "visibility"]
    if visibility:
        out["decision_visibility"] = [r.type for r in visibility]
        other = [r.detail for r in visibility if r.type == "DECISION_VISIBILITY_OTHER"]
        if other:
            out["decision_visibility_other"] = _cut(other[0], _MAX_SHORT)
    for r in s.restrictions:
        if r.kind == "monetary":
            out["decision_monetary"] = r.type
            if r.type == "DECISION_MONETARY_OTHER":
                out["decision_monetary_other"] = _cut(r.detail, _MAX_SHORT)
        elif r.kind in ("provision", "account"):
            out[f"decision_{r.kind}"] = r.type
        if r.duration_days:
            out[_END_DATE_FIELD[r.kind]] = (applied + timedelta(days=r.duration_days)).isoformat()
    g = s.ground
    out["decision_ground"] = g.kind
    if g.reference_url:
        out["decision_ground_reference_url"] = g.reference_url
    explanation = _cut(g.explanation or s.facts, _MAX_EXPLANATION)
    if g.kind == GROUND_KINDS["illegal_content"]:
        out["illegal_content_legal_ground"] = _cut(g.legal_ground, _MAX_SHORT)
        out["illegal_content_explanation"] = explanation
    else:
        out["incompatible_content_ground"] = _cut(g.clause, _MAX_SHORT)
        out["incompatible_content_explanation"] = explanation
        out["incompatible_content_illegal"] = "Yes" if g.also_illegal else "No"
    out["category"] = s.statement_category
    if s.category_specification:
        out["category_specification"] = list(s.category_specification)
    out["content_type"] = list(s.content_types)
    language = d.policy_inputs.locale.split("-")[0].split("_")[0].upper()
    if len(language) == 2 and language.isalpha():
        out["content_language"] = language
    out["content_date"] = (_day(d.content_created_at) or applied).isoformat()
    out["application_date"] = applied.isoformat()
    scope = sorted({c for r in s.restrictions for c in r.territorial_scope})
    if scope:
        out["territorial_scope"] = scope
    out["decision_facts"] = _cut(s.facts, _MAX_FACTS)
    out["source_type"] = s.source_type or "SOURCE_VOLUNTARY"
    out["automated_detection"] = "Yes" if s.automated_detection else "No"
    out["automated_decision"] = s.automated_decision
    out["puid"] = _cut(s.puid or d.decision_id, _MAX_SHORT)
    return out


def read_decisions(path: Path) -> Iterator[tuple[int, decision_pb2.ModerationDecision | str]]:
    """(line number, decision) per non-empty JSON line, or (line number, error)."""
    for n, raw in nonempty_lines(path):
        msg = decision_pb2.ModerationDecision()
        try:
            line = raw.decode("utf-8")
            if not line.lstrip().startswith("{"):
                raise ValueError("not a JSON object")
            json_format.Parse(line, msg, ignore_unknown_fields=True)
            _check_restrictions(msg)
        except (json_format.ParseError, ValueError) as exc:
            yield n, f"{path}:{n}: not a ModerationDecision: {exc}"
            continue
        yield n, msg


def _check_restrictions(d: decision_pb2.ModerationDecision) -> None:
    """tdb_statement maps each restriction by its kind: an unknown one is a bad record."""
    for r in d.statement_of_reasons.restrictions:
        if r.kind not in _END_DATE_FIELD:
            known = ", ".join(_END_DATE_FIELD)
            raise ValueError(f"restriction kind {r.kind!r} is not one of {known}")


def latest_per_content(
    decisions: Iterable[decision_pb2.ModerationDecision],
) -> list[decision_pb2.ModerationDecision]:
    """The decision that stands for each content id: a final one over a provisional one, else
    the last one read."""
    best: dict[str, decision_pb2.ModerationDecision] = {}
    for d in decisions:
        current = best.get(d.content_id)
        if current is None or d.final or not current.final:
            best[d.content_id] = d
    return list(best.values())


def statements(
    decisions: Iterable[decision_pb2.ModerationDecision], report: ExportReport
) -> Iterator[dict[str, Any]]:
    for d in latest_per_content(decisions):
        report.decisions += 1
        if d.action == taxonomy_pb2.ACTION_ALLOW:
            report.skip("allowed")
        elif not d.HasField("statement_of_reasons"):
            report.skip("no statement of reasons (decided before statements were recorded)")
        elif not d.statement_of_reasons.restrictions:
            report.skip("nothing restricted yet (pending review, content stays up)")
        else:
            report.exported += 1
            yield tdb_statement(d)


def write_batches(rows: Iterable[dict[str, Any]], out: TextIO, batch_size: int) -> None:
    """One request body per line: {"statements": [...]} with up to `batch_size` statements
    (batch_size 1: the bare statement, the body of `POST /api/v1/statement`)."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        if batch_size == 1:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            continue
        batch.append(row)
        if len(batch) == batch_size:
            out.write(json.dumps({"statements": batch}, ensure_ascii=False) + "\n")
            batch = []
    if batch:
        out.write(json.dumps({"statements": batch}, ensure_ascii=False) + "\n")


def export(
    decisions: Iterable[decision_pb2.ModerationDecision], out_path: Path, batch_size: int
) -> ExportReport:
    if not 1 <= batch_size <= MAX_BATCH:
        raise InvalidInput(f"batch size must be 1..{MAX_BATCH} (the API's limit per request)")
    report = ExportReport()
    with out_path.open("w", encoding="utf-8") as out:
        write_batches(statements(decisions, report), out, batch_size)
    return report
