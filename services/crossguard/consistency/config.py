"""The fusion rule's configuration: reliabilities, cut-offs and the fitted combination weights.

Loaded from YAML (or JSON, a subset of YAML); the default file, fusion_default.yaml next to this
module, is written by `crossguard eval fusion --write-config` (docs/fusion.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crossguard.core.results import Modality
from crossguard.core.taxonomy import Category

DEFAULT_CONFIG = Path(__file__).with_name("fusion_default.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CombinationWeights(_Strict):
    """Logistic weights of the combination estimate of a category:
    sigmoid(intercept + max_part·logit(highest part score) + second_part·logit(second highest)
    + combined·logit(score of the parts' texts read together) + agreement·(semantic agreement
    of the texts, 0..1))."""

    intercept: float = -2.0
    max_part: float = 0.0
    second_part: float = 0.0
    combined: float = 1.0
    agreement: float = 0.0


class FusionConfig(_Strict):
    name: str = "context-fusion"
    version: str = Field(min_length=1)
    # Trust in a modality's scores (OCR and ASR add reading errors): a part's score is
    # multiplied by its modality's reliability before fusion.
    reliability: dict[Modality, float] = Field(default_factory=dict)
    # A part "flags" a category at or above this; the others "look benign" below benign_below.
    flag_at: float = Field(default=0.5, ge=0.0, le=1.0)
    benign_below: float = Field(default=0.2, ge=0.0, le=1.0)
    # Combination weights by which parts exist ("caption+ocr", "caption+transcript",
    # "ocr+transcript", "caption+ocr+transcript"), falling back to "default".
    combination: dict[str, CombinationWeights] = Field(
        default_factory=lambda: {"default": CombinationWeights()}
    )
    # A harmful_combination signal is raised when the combination estimate exceeds every part's
    # score by at least this while no part flags the category.
    combination_margin: float = Field(default=0.1, ge=0.0, le=1.0)
    # Categories that are not harms by themselves (the policy only reports them): fused like the
    # others, but no disagreement or harmful-combination signal is raised for them.
    informational: list[Category] = Field(default_factory=lambda: [Category.PROFANITY])
    # Added to a category's uncertainty per modality the item has but no result for.
    missing_uncertainty: float = Field(default=0.25, ge=0.0, le=1.0)
    # Below this semantic similarity two texts are called unrelated in explanations.
    unrelated_below: float = Field(default=0.25, ge=0.0, le=1.0)
    # Below this CLIP image-caption similarity the caption is said not to match the image (in
    # the signal's detail, and in the explanation when a category is flagged). Not fitted: the
    # development set has no image-caption pairs; ~0.2 separates matched (about 0.25-0.35) from
    # unrelated pairs for OpenAI's CLIP ViT-B/32 (docs/fusion.md).
    image_caption_unrelated_below: float = Field(default=0.2, ge=0.0, le=1.0)
    # The framing signal (harmful_framing/<framing_category>, crossguard.consistency.framing):
    # raised when the framing head's score reaches framing_signal_at while no part flags the
    # category; the policy's cut on the signal decides what it does (docs/fusion.md).
    framing_category: Category = Category.HATE
    framing_signal_at: float = Field(default=0.05, ge=0.0, le=1.0)
    # How the defaults were fitted (data, split, command, figures); informational.
    provenance: dict[str, Any] = Field(default_factory=dict)

    def reliability_of(self, modality: Modality) -> float:
        return self.reliability.get(modality, 1.0)

    def weights_for(self, kinds: list[str]) -> CombinationWeights:
        key = "+".join(sorted(kinds))
        return self.combination.get(key) or self.combination.get("default") or CombinationWeights()


def load_fusion_config(path: Path | None = None) -> FusionConfig:
    """The configuration at `path` (the packaged default when None); a ValueError naming the
    file on anything unreadable or invalid."""
    path = path or DEFAULT_CONFIG
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the fusion configuration: {exc}") from exc
    try:
        return FusionConfig.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{path}: invalid fusion configuration: {exc}") from exc


def dump_fusion_config(config: FusionConfig, path: Path, header: str = "") -> None:
    body = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    path.write_text(header + body, encoding="utf-8")
