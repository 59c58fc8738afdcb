"""The policy's `statement_of_reasons` section: which restriction each action applies, the
ground per category, territorial scope and redress. Values use the DSA Transparency Database's
names, lower-cased and without their prefix (``content_removed`` for
``DECISION_VISIBILITY_CONTENT_REMOVED``), so a policy maps onto a submission one to one."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from crossguard.core.taxonomy import Category
from crossguard.policy.schema_base import Strict, parse_category_keys

Visibility = Literal[
    "content_removed",
    "content_disabled",
    "content_demoted",
    "content_age_restricted",
    "content_interaction_restricted",
    "content_labelled",
    "other",
]
Monetary = Literal["suspension", "termination", "other"]
Provision = Literal[
    "partial_suspension", "total_suspension", "partial_termination", "total_termination"
]
Account = Literal["suspended", "terminated"]
StatementCategory = Literal[
    "animal_welfare",
    "consumer_information",
    "cyber_violence",
    "cyber_violence_against_women",
    "data_protection_and_privacy_violations",
    "illegal_or_harmful_speech",
    "intellectual_property_infringements",
    "negative_effects_on_civic_discourse_or_elections",
    "non_consensual_behaviour",
    "other_violation_tc",
    "pornography_or_sexualized_content",
    "protection_of_minors",
    "risk_for_public_security",
    "scams_and_fraud",
    "self_harm",
    "scope_of_platform_service",
    "unsafe_and_illegal_products",
    "violence",
]
RedressKind = Literal["internal_complaint", "out_of_court_settlement", "judicial_redress"]
RestrictingAction = Literal["block", "limit_visibility", "age_restrict"]

# Country codes as the Transparency Database takes them (Greece: GR).
EU = [
    "AT",
    "BE",
    "BG",
    "CY",
    "CZ",
    "DE",
    "DK",
    "EE",
    "ES",
    "FI",
    "FR",
    "GR",
    "HR",
    "HU",
    "IE",
    "IT",
    "LT",
    "LU",
    "LV",
    "MT",
    "NL",
    "PL",
    "PT",
    "RO",
    "SE",
    "SI",
    "SK",
]
EEA = sorted([*EU, "IS", "LI", "NO"])
_ALIASES = {"EU": sorted(EU), "EEA": EEA}


class RestrictionSpec(Strict):
    """What an action does, as DSA restriction types; at least one is needed."""

    visibility: list[Visibility] = Field(default_factory=list)
    visibility_other: str = ""
    monetary: Monetary | None = None
    monetary_other: str = ""
    provision: Provision | None = None
    account: Account | None = None
    # None: indefinite.
    duration_days: int | None = Field(default=None, ge=1, le=36500)

    @model_validator(mode="after")
    def _complete(self) -> RestrictionSpec:
        if not (self.visibility or self.monetary or self.provision or self.account):
            raise ValueError("a restriction needs visibility, monetary, provision or account")
        if "other" in self.visibility and not self.visibility_other:
            raise ValueError("visibility 'other' needs visibility_other (what it is)")
        if self.monetary == "other" and not self.monetary_other:
            raise ValueError("monetary 'other' needs monetary_other (what it is)")
        return self


class GroundSpec(Strict):
    """Why content is restricted: incompatible with the terms (naming the clause) or illegal
    (naming the legal ground)."""

    kind: Literal["incompatible_content", "illegal_content"] = "incompatible_content"
    clause: str = ""
    legal_ground: str = ""
    explanation: str = ""
    # Incompatible content that is also considered illegal.
    also_illegal: bool = False
    reference_url: str = ""
    statement_category: StatementCategory = "other_violation_tc"
    # Transparency Database keywords without the KEYWORD_ prefix, e.g. hate_speech.
    specification: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _named(self) -> GroundSpec:
        if self.kind == "incompatible_content" and not self.clause:
            raise ValueError("incompatible_content needs the terms clause relied on (clause)")
        if self.kind == "illegal_content" and not self.legal_ground:
            raise ValueError("illegal_content needs the legal ground relied on (legal_ground)")
        return self


class RedressSpec(Strict):
    kind: RedressKind
    detail: str = Field(min_length=1)


def _default_restrictions() -> dict[RestrictingAction, RestrictionSpec]:
    return {
        "block": RestrictionSpec(visibility=["content_removed"]),
        "limit_visibility": RestrictionSpec(visibility=["content_demoted"]),
        "age_restrict": RestrictionSpec(visibility=["content_age_restricted"]),
    }


def _default_redress() -> list[RedressSpec]:
    return [
        RedressSpec(
            kind="internal_complaint",
            detail="Appeal within 6 months through the platform's complaint system (Art. 20 DSA).",
        ),
        RedressSpec(
            kind="out_of_court_settlement",
            detail="Refer the dispute to a certified out-of-court dispute settlement body "
            "(Art. 21 DSA).",
        ),
        RedressSpec(kind="judicial_redress", detail="Bring the matter before a competent court."),
    ]


class SorPolicy(Strict):
    territorial_scope: list[str] = Field(default_factory=lambda: list(EEA))
    restrictions: dict[RestrictingAction, RestrictionSpec] = Field(
        default_factory=_default_restrictions
    )
    default_ground: GroundSpec = GroundSpec(clause="Terms of service")
    grounds: dict[Category, GroundSpec] = Field(default_factory=dict)
    redress: list[RedressSpec] = Field(default_factory=_default_redress, min_length=1)

    _grounds = field_validator("grounds", mode="before")(parse_category_keys)

    @field_validator("territorial_scope")
    @classmethod
    def _countries(cls, scope: list[str]) -> list[str]:
        out: list[str] = []
        for code in scope:
            expanded = _ALIASES.get(code.upper(), [code.upper()])
            for c in expanded:
                if c not in EEA:
                    raise ValueError(f"unknown territory {code!r}: EU, EEA or an EEA country code")
                if c not in out:
                    out.append(c)
        if not out:
            raise ValueError("territorial_scope needs at least one territory")
        return sorted(out)

    @field_validator("restrictions", mode="before")
    @classmethod
    def _merge_defaults(cls, value: object) -> object:
        # Naming one action's restriction keeps the defaults for the others.
        if isinstance(value, dict):
            return {**_default_restrictions(), **value}
        return value

    def ground(self, category: Category | None) -> GroundSpec:
        if category is None:
            return self.default_ground
        return self.grounds.get(category, self.default_ground)
