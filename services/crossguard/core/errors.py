"""Domain errors. Services raise these; one gRPC interceptor maps them to status codes."""

from __future__ import annotations


class CrossguardError(Exception):
    """Base class for errors that are safe to show to a caller."""


class InvalidInput(CrossguardError):
    """The request is malformed or breaks an input limit (maps to INVALID_ARGUMENT)."""


class LimitExceeded(InvalidInput):
    """An explicit input limit was exceeded (bytes, pixels, seconds, characters)."""


class NotReady(CrossguardError):
    """A model or dependency is not loaded yet (maps to UNAVAILABLE)."""


class Overloaded(CrossguardError):
    """Back-pressure: the queue is full (maps to RESOURCE_EXHAUSTED)."""


class ModelError(CrossguardError):
    """A model repository entry is missing or inconsistent (maps to FAILED_PRECONDITION)."""
