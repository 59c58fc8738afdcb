"""What the fan-out gathers for one item, as domain types only (the clients convert at the
edge): classifier results, the signals that are missing, and the consistency service's answer."""

from __future__ import annotations

from dataclasses import dataclass

from crossguard.core.results import ClassifierResult, Score
from crossguard.policy import MissingSignal
from crossguard.policy.inputs import PolicyContext


@dataclass(frozen=True)
class Signals:
    results: list[ClassifierResult]
    missing: list[MissingSignal]


@dataclass(frozen=True)
class Consistency:
    """The consistency service's fused scores (validated on conversion), the policy context
    from its answer (its cross-modal signals, converted by the policy's own converter) and the
    models it used."""

    fused: list[Score]
    context: PolicyContext
    models: list[tuple[str, str]]
    # What drove the fused result, in a line (the decision's reasons carry it).
    explanation: str = ""
