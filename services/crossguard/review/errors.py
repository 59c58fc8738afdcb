"""Review domain errors (the web layer maps them to HTTP statuses)."""

from __future__ import annotations

from crossguard.core.errors import CrossguardError, InvalidInput


class TaskNotFound(CrossguardError):
    """No such task, or not visible to this user (404)."""


class LeaseLost(CrossguardError):
    """The caller does not hold the task's lease (expired or claimed by another) (409)."""


class Conflict(CrossguardError):
    """The task is not in a state that allows this (already decided, verdict given) (409)."""


class Forbidden(CrossguardError):
    """The caller's role does not allow this (403)."""


class BadVerdict(InvalidInput):
    """An unknown action or category, or a note over the limit (400)."""
