"""`crossguard policy diff A B`: the rule changes between two policies, as written (the settings
each file sets: a threshold left out inherits, an explicit null disables) and as they take
effect (what each tenant/surface scope resolves to, so an override's reach is visible)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from crossguard.core.results import Modality
from crossguard.core.taxonomy import Category
from crossguard.policy.model import THRESHOLD_FIELDS, Policy

_MISSING = object()


@dataclass(frozen=True)
class SettingChange:
    path: str
    before: object  # _MISSING when added
    after: object  # _MISSING when removed

    @property
    def kind(self) -> str:
        if self.before is _MISSING:
            return "added"
        if self.after is _MISSING:
            return "removed"
        return "changed"

    @staticmethod
    def show(value: object) -> str:
        if value is _MISSING:
            return "(not set)"
        if value is None:
            return "null"
        return str(value)


@dataclass(frozen=True)
class EffectiveChange:
    scope: str  # "tenant=* surface=dm"
    subject: str  # a category or "signal:<modality>" or "hold"
    setting: str
    before: object
    after: object


@dataclass(frozen=True)
class PolicyDiff:
    before_version: str
    after_version: str
    settings: list[SettingChange]
    effective: list[EffectiveChange]

    @property
    def empty(self) -> bool:
        return not self.settings and not self.effective


def _flatten(value: object, path: str, out: dict[str, object]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{path}.{k}" if path else str(k), out)
    else:
        out[path] = value


def _settings(policy: Policy, other: Policy) -> dict[str, object]:
    """Every setting by its dotted path; overrides by name (one entry for an override the other
    policy lacks)."""
    # As written: a threshold left out (inherits) differs from an explicit null (disabled).
    data = policy.model_dump(mode="json", exclude={"overrides"}, exclude_unset=True)
    out: dict[str, object] = {}
    _flatten(data, "", out)
    theirs = {o.name for o in other.overrides}
    for o in policy.overrides:
        path = f"overrides[{o.name}]"
        if o.name in theirs:
            _flatten(o.model_dump(mode="json", exclude={"name"}, exclude_unset=True), path, out)
        else:
            out[path] = json.dumps(o.model_dump(mode="json", exclude_unset=True))
    out["overrides (order)"] = [o.name for o in policy.overrides]
    return out


def _scopes(*policies: Policy) -> list[tuple[str, str]]:
    scopes = {("", "")}
    for p in policies:
        for o in p.overrides:
            scopes.add((o.match.tenant or "", o.match.surface or ""))
    return sorted(scopes)


def _key(value: object) -> object:
    return json.dumps(value, sort_keys=True, default=str)


def diff_policies(a: Policy, b: Policy) -> PolicyDiff:
    sa, sb = _settings(a, b), _settings(b, a)
    settings = [
        SettingChange(path, sa.get(path, _MISSING), sb.get(path, _MISSING))
        for path in sorted(sa.keys() | sb.keys())
        if sa.get(path, _MISSING) != sb.get(path, _MISSING) and path != "version"
    ]
    effective: list[EffectiveChange] = []
    base: set[tuple[str, str, object, object]] = set()
    for tenant, surface in _scopes(a, b):  # the base scope ("", "") first
        scope = f"tenant={tenant or '*'} surface={surface or '*'}"
        start = len(effective)
        for category in Category:
            ta, tb = (
                a.thresholds(category, tenant, surface),
                b.thresholds(category, tenant, surface),
            )
            for name in THRESHOLD_FIELDS:
                va, vb = getattr(ta, name), getattr(tb, name)
                if va != vb:
                    effective.append(EffectiveChange(scope, category.value, name, va, vb))
            ca, cb = (
                a.category_cuts(category, tenant, surface),
                b.category_cuts(category, tenant, surface),
            )
            if ca != cb:
                effective.append(EffectiveChange(scope, category.value, "severity_cuts", ca, cb))
        for modality in Modality:
            ga, gb = a.signal(modality, tenant, surface), b.signal(modality, tenant, surface)
            for name in ("fallback", "retries", "deadline_ms", "on_reason"):
                va, vb = getattr(ga, name), getattr(gb, name)
                if va != vb:
                    effective.append(
                        EffectiveChange(scope, f"signal:{modality.value}", name, va, vb)
                    )
        ha, hb = a.hold(tenant, surface), b.hold(tenant, surface)
        if ha != hb:
            effective.append(EffectiveChange(scope, "escalation", "hold", ha, hb))
        # A scope lists only what differs from the base scope's changes.
        mine = effective[start:]
        if (tenant, surface) == ("", ""):
            base = {(e.subject, e.setting, _key(e.before), _key(e.after)) for e in mine}
        else:
            effective[start:] = [
                e for e in mine if (e.subject, e.setting, _key(e.before), _key(e.after)) not in base
            ]
    return PolicyDiff(a.version, b.version, settings, effective)
