"""Settings of model building, training and evaluation."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from crossguard.core.settings import CrossguardSettings


class LabeledDataSettings(CrossguardSettings):
    """Where the labeled moderation data sets are read from."""

    # An empty variable means unset (not the working directory).
    model_config = SettingsConfigDict(
        env_prefix="CROSSGUARD_", frozen=True, extra="ignore", env_parse_none_str=""
    )

    labeled_data_dir: Path | None = Field(
        default=None,
        description="CROSSGUARD_LABELED_DATA_DIR: directory of the labeled moderation data "
        "(see its README); empty means the shared data/moderation next to the checkout.",
    )
