"""Statements of reasons (EU DSA Art. 17) for decisions other than allow, built from the policy's
`statement_of_reasons` section. Pure: the decision id and dates are added where the decision
is recorded (policy.proto), the Transparency Database format by policy.sor_export."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from crossguard.core.results import Modality
from crossguard.core.taxonomy import Category
from crossguard.policy.sor_schema import GroundSpec, RestrictionSpec, SorPolicy

CONTENT_TYPES = {
    Modality.TEXT: "CONTENT_TYPE_TEXT",
    Modality.IMAGE: "CONTENT_TYPE_IMAGE",
    Modality.AUDIO: "CONTENT_TYPE_AUDIO",
}
GROUND_KINDS = {
    "illegal_content": "DECISION_GROUND_ILLEGAL_CONTENT",
    "incompatible_content": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
}
AUTOMATED_FULLY = "AUTOMATED_DECISION_FULLY"
AUTOMATED_PARTIALLY = "AUTOMATED_DECISION_PARTIALLY"
NOT_AUTOMATED = "AUTOMATED_DECISION_NOT_AUTOMATED"

_RESTRICTION_TEXT = {
    "DECISION_VISIBILITY_CONTENT_REMOVED": "the content was removed",
    "DECISION_VISIBILITY_CONTENT_DISABLED": "access to the content was disabled",
    "DECISION_VISIBILITY_CONTENT_DEMOTED": "the content was demoted (its visibility limited)",
    "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED": "the content was restricted to adults",
    "DECISION_VISIBILITY_CONTENT_INTERACTION_RESTRICTED": "interaction with the content was "
    "restricted",
    "DECISION_VISIBILITY_CONTENT_LABELLED": "the content was labelled",
    "DECISION_MONETARY_SUSPENSION": "monetary payments were suspended",
    "DECISION_MONETARY_TERMINATION": "monetary payments were terminated",
    "DECISION_PROVISION_PARTIAL_SUSPENSION": "the service was partly suspended",
    "DECISION_PROVISION_TOTAL_SUSPENSION": "the service was suspended",
    "DECISION_PROVISION_PARTIAL_TERMINATION": "the service was partly terminated",
    "DECISION_PROVISION_TOTAL_TERMINATION": "the service was terminated",
    "DECISION_ACCOUNT_SUSPENDED": "the account was suspended",
    "DECISION_ACCOUNT_TERMINATED": "the account was terminated",
}
_REDRESS_TITLE = {
    "internal_complaint": "Internal complaint",
    "out_of_court_settlement": "Out-of-court dispute settlement",
    "judicial_redress": "Judicial redress",
}
_AUTOMATION_TEXT = {
    AUTOMATED_FULLY: "The decision was taken by automated means.",
    AUTOMATED_PARTIALLY: "The decision was taken by a person assisted by automated means.",
    NOT_AUTOMATED: "The decision was taken by a person.",
}


@dataclass(frozen=True)
class Restriction:
    kind: str  # visibility | monetary | provision | account
    type: str  # Transparency Database value, e.g. DECISION_VISIBILITY_CONTENT_REMOVED
    detail: str = ""
    territorial_scope: tuple[str, ...] = ()
    duration_days: int = 0  # 0: indefinite


@dataclass(frozen=True)
class Ground:
    kind: str  # DECISION_GROUND_ILLEGAL_CONTENT | DECISION_GROUND_INCOMPATIBLE_CONTENT
    legal_ground: str = ""
    clause: str = ""
    explanation: str = ""
    also_illegal: bool = False
    reference_url: str = ""


@dataclass(frozen=True)
class Redress:
    kind: str
    detail: str


@dataclass(frozen=True)
class StatementOfReasons:
    restrictions: list[Restriction]
    facts: str
    automated_detection: bool
    automated_decision: str
    ground: Ground
    content_types: list[str]
    statement_category: str
    category_specification: list[str]
    categories: list[Category]
    redress: list[Redress]
    source_type: str = "SOURCE_VOLUNTARY"
    provisional: bool = False
    text: str = field(default="", compare=False)


def restrictions_for(spec: RestrictionSpec, scope: Sequence[str]) -> list[Restriction]:
    territory = tuple(scope)
    days = spec.duration_days or 0
    out = [
        Restriction(
            "visibility",
            f"DECISION_VISIBILITY_{v.upper()}",
            spec.visibility_other if v == "other" else "",
            territory,
            days,
        )
        for v in spec.visibility
    ]
    if spec.monetary:
        out.append(
            Restriction(
                "monetary",
                f"DECISION_MONETARY_{spec.monetary.upper()}",
                spec.monetary_other,
                territory,
                days,
            )
        )
    if spec.provision:
        out.append(
            Restriction(
                "provision", f"DECISION_PROVISION_{spec.provision.upper()}", "", territory, days
            )
        )
    if spec.account:
        out.append(
            Restriction("account", f"DECISION_ACCOUNT_{spec.account.upper()}", "", territory, days)
        )
    return out


def ground_for(spec: GroundSpec) -> Ground:
    return Ground(
        kind=GROUND_KINDS[spec.kind],
        legal_ground=spec.legal_ground,
        clause=spec.clause,
        explanation=spec.explanation,
        also_illegal=spec.also_illegal,
        reference_url=spec.reference_url,
    )


def build_statement(
    sor_policy: SorPolicy,
    *,
    applied: str,
    category: Category | None,
    categories: Sequence[Category],
    modalities: Sequence[Modality],
    facts: str,
    provisional: bool,
    automated_decision: str = AUTOMATED_FULLY,
) -> StatementOfReasons:
    """The statement for a decision that applies `applied` (an action name; "allow" while
    review is pending applies no restriction) because of `category`."""
    spec = sor_policy.restrictions.get(applied)  # type: ignore[call-overload]
    restrictions = restrictions_for(spec, sor_policy.territorial_scope) if spec else []
    ground_spec = sor_policy.ground(category)
    statement = StatementOfReasons(
        restrictions=restrictions,
        facts=facts,
        automated_detection=True,
        automated_decision=automated_decision,
        ground=ground_for(ground_spec),
        content_types=sorted({CONTENT_TYPES[m] for m in modalities}) or ["CONTENT_TYPE_OTHER"],
        statement_category=f"STATEMENT_CATEGORY_{ground_spec.statement_category.upper()}",
        category_specification=[f"KEYWORD_{k.upper()}" for k in ground_spec.specification],
        categories=list(categories),
        redress=[Redress(r.kind, r.detail) for r in sor_policy.redress],
        provisional=provisional,
    )
    return _with_text(statement)


def statement_for_review(
    sor_policy: SorPolicy,
    *,
    action: str,
    categories: Sequence[Category],
    modalities: Sequence[Modality],
    facts: str,
    automated_decision: str = AUTOMATED_PARTIALLY,
) -> StatementOfReasons:
    """The final statement when people decided (a review verdict): detected by automated means,
    decided by a person with the automated analysis at hand (partially automated), or by a
    person alone (NOT_AUTOMATED)."""
    return build_statement(
        sor_policy,
        applied=action,
        category=categories[0] if categories else None,
        categories=categories,
        modalities=modalities,
        facts=facts,
        provisional=False,
        automated_decision=automated_decision,
    )


def _with_text(s: StatementOfReasons) -> StatementOfReasons:
    from dataclasses import replace

    return replace(s, text=render_text(s))


def render_text(s: StatementOfReasons) -> str:
    """The statement as the recipient reads it."""
    lines: list[str] = ["Statement of reasons"]
    if s.restrictions:
        what = "; ".join(_RESTRICTION_TEXT.get(r.type, r.detail or r.type) for r in s.restrictions)
        first = s.restrictions[0]
        scope = ", ".join(first.territorial_scope) or "everywhere"
        duration = f"for {first.duration_days} days" if first.duration_days else "indefinitely"
        lines.append(f"What we did: {what}, {duration}, in {scope}.")
    else:
        lines.append("What we did: nothing yet; the content stays available while it is reviewed.")
    if s.provisional:
        lines.append("This decision is provisional: a person will review it.")
    g = s.ground
    if g.kind == GROUND_KINDS["illegal_content"]:
        lines.append(f"Why: the content is considered illegal under {g.legal_ground}.")
    else:
        also = " It is also considered illegal." if g.also_illegal else ""
        lines.append(f"Why: the content is incompatible with {g.clause}.{also}")
    if g.explanation:
        lines.append(g.explanation)
    if g.reference_url:
        lines.append(f"See {g.reference_url}.")
    if s.categories:
        lines.append("Categories: " + ", ".join(c.value for c in s.categories) + ".")
    lines.append(f"Facts and circumstances: {s.facts}")
    detection = "was" if s.automated_detection else "was not"
    lines.append(f"The content {detection} detected by automated means. ")
    lines[-1] += _AUTOMATION_TEXT.get(s.automated_decision, "")
    lines.append("Your options:")
    lines += [f"- {_REDRESS_TITLE.get(r.kind, r.kind)}: {r.detail}" for r in s.redress]
    return "\n".join(lines)
