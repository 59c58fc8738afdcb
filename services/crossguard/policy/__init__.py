"""Policy as code: versioned YAML → thresholds → actions, per tenant/surface."""

from crossguard.policy.engine import (
    Action,
    Decision,
    Escalation,
    MissingSignal,
    RuleHit,
    decide,
)
from crossguard.policy.loader import (
    PolicyError,
    PolicyStore,
    default_policy,
    load_policy,
    parse_policy,
)
from crossguard.policy.model import Policy, ResolvedSignal, SignalPolicy, Thresholds

__all__ = [
    "Action",
    "Decision",
    "Escalation",
    "MissingSignal",
    "Policy",
    "PolicyError",
    "PolicyStore",
    "ResolvedSignal",
    "RuleHit",
    "SignalPolicy",
    "Thresholds",
    "decide",
    "default_policy",
    "load_policy",
    "parse_policy",
]
