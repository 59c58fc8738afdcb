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


class NotFound(CrossguardError):
    """Something the request refers to does not exist (maps to NOT_FOUND)."""


class PermissionDenied(CrossguardError):
    """A dependency refused us access to what the request refers to (maps to PERMISSION_DENIED)."""


class DeadlineExceeded(CrossguardError):
    """A dependency did not answer within its timeout (maps to DEADLINE_EXCEEDED)."""
