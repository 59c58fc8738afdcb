"""Crossguard: self-hosted streaming content moderation."""

__version__ = "0.1.0"
