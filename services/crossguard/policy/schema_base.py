"""Shared pieces of the policy schema."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from crossguard.core.taxonomy import Category


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_category_keys(value: object) -> object:
    """Category names (or OpenAI short codes) as mapping keys → Category."""
    if not isinstance(value, dict):
        return value
    return {Category.parse(str(key)): v for key, v in value.items()}
