"""The analytics' one error type, importable without the ``phoenix`` extra."""

from __future__ import annotations

__all__ = ["PhoenixError"]


class PhoenixError(RuntimeError):
    """Phoenix could not be reached or did not answer as its API documents."""
