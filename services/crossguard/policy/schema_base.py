"""Shared pieces of the policy schema."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from crossguard.core.taxonomy import Category


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_category_keys(value: object) -> object:
    """Category names (or OpenAI short codes) as mapping keys → Category. An unknown key is
    left as it is, so that pydantic reports it under its own path (and line) along with every
    other error."""
    if not isinstance(value, dict):
        return value
    out: dict[object, object] = {}
    for key, v in value.items():
        try:
            out[Category.parse(str(key))] = v
        except ValueError:
            out[key] = v
    return out
