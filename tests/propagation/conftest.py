"""Fixtures of the propagation tests: process-wide policies restored, real services required."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tenantrace.propagation import (
    configure_propagators,
    set_default_trust_policy,
    set_egress_policy,
)


@pytest.fixture(autouse=True)
def restore_propagation_defaults(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from the defaults (W3C propagators, reject claims, baggage without url)."""
    monkeypatch.delenv("OTEL_PROPAGATORS", raising=False)
    configure_propagators()
    # None: the policies the process-wide config describes (the defaults).
    set_default_trust_policy(None)
    set_egress_policy(None)
    yield
    set_default_trust_policy(None)
    set_egress_policy(None)
    configure_propagators()


@pytest.fixture
def require_service(request: pytest.FixtureRequest) -> Callable[[str, str, int], None]:
    """``tests/conftest.py``'s ``require_service`` (skip locally, fail in CI).

    Two ``conftest`` modules cannot both be imported by name, so the root one
    is taken from pytest's plugin registry, where it is registered by path.
    """
    root = Path(__file__).parent.parent / "conftest.py"
    plugin = request.config.pluginmanager.get_plugin(str(root))
    found: Callable[[str, str, int], None] = plugin.require_service
    return found
