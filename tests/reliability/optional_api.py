"""Tests of the security promises call APIs of the layers and propagation subpackages.

``require_api`` returns the module when it offers the names; otherwise it skips
the test locally and fails it in CI (``CI=true``), like ``require_service``:
CI must never pass by skipping a security test.
"""

from __future__ import annotations

import importlib
import os
import socket
from types import ModuleType

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_api(module: str, *names: str) -> ModuleType:
    try:
        found = importlib.import_module(module)
    except ImportError as exc:
        missing, found_module = f"{module} ({exc})", None
    else:
        found_module = found
        absent = [name for name in names if not hasattr(found, name)]
        missing = f"{module}.{', '.join(absent)}" if absent else ""
    if missing or found_module is None:
        message = f"not available yet: {missing}"
        if IN_CI:
            pytest.fail(f"{message}; CI must run this security test", pytrace=False)
        pytest.skip(message)
    return found_module


def require_port(name: str, host: str, port: int) -> None:
    """``tests/conftest.py``'s ``require_service`` (not importable from here: two conftests)."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        message = f"{name} is not reachable on {host}:{port} ({exc})"
        if IN_CI:
            pytest.fail(f"{message}; CI must provide it", pytrace=False)
        pytest.skip(message)
