"""Helpers of the observe tests: optional packages (required in CI), a JSON formatter."""

from __future__ import annotations

import importlib
import json
import logging
import os
from types import ModuleType
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_module(name: str, package: str | None = None) -> ModuleType:
    """Import ``name``; skip when it is missing, fail in CI (CI=true)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        message = f"{package or name} is not installed ({exc})"
        if IN_CI:
            pytest.fail(f"{message}; CI must provide it", pytrace=False)
        pytest.skip(message)


class SmallJsonFormatter(logging.Formatter):
    """A JSON formatter as applications write them: the message plus chosen attributes."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.keys = keys

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {"message": record.getMessage()}
        for key in self.keys:
            document[key] = record.__dict__.get(key)
        return json.dumps(document)
