"""The process-wide ``TelemetryManager``: creating, installing and resetting it, the level gates.

Re-exported by ``tenantrace.instrumentation.manager``, which owns the class.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from tenantrace.instrumentation.config import TelemetryConfig, TelemetryLevel

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.sampling import Sampler

    from tenantrace.export.pipeline import SpanObserver
    from tenantrace.instrumentation.manager import TelemetryManager

# The manager module's logger: the messages keep the name they always had.
_logger = logging.getLogger("tenantrace.instrumentation.manager")

_manager: TelemetryManager | None = None
_manager_lock = threading.Lock()

# One gate per level for the decorators: a list whose length says whether spans
# of that level are on for the process-wide manager. wrapt's ``enabled=`` takes
# the list's C ``__len__`` and decides in C, so a gated-off decorated call costs
# tens of nanoseconds. Gates start open: the first call creates the manager.
_LEVEL_GATES: Final[dict[TelemetryLevel, list[int]]] = {level: [1] for level in TelemetryLevel}
_LEVEL_GATES[TelemetryLevel.DISABLED].clear()


def level_gate(level: TelemetryLevel) -> Callable[[], int]:
    """A C-level callable, truthy while spans of ``level`` are on (for wrapt's ``enabled=``)."""
    return _LEVEL_GATES[level].__len__


def _publish_gates(manager: TelemetryManager | None) -> None:
    for level, gate in _LEVEL_GATES.items():
        if level is TelemetryLevel.DISABLED:
            continue
        gate[:] = [1] if manager is None or manager.is_enabled_for(level) else []


def get_telemetry_manager() -> TelemetryManager:
    """The process-wide manager, created on first use from the environment."""
    manager = _manager
    if manager is not None:
        return manager
    return _create_manager(None, None)


def _create_manager(
    config: TelemetryConfig | None, sampler: Sampler | None, metrics: SpanObserver | None = None
) -> TelemetryManager:
    global _manager  # noqa: PLW0603 - the one process-wide manager, swapped under a lock
    # Imported here: the manager module imports this one.
    from tenantrace.instrumentation.manager import TelemetryManager

    with _manager_lock:
        if _manager is not None and config is None and sampler is None and metrics is None:
            return _manager
        old = _manager
        _manager = TelemetryManager(config, sampler, metrics=metrics)
        _publish_gates(_manager)
    if old is not None:
        old.shutdown(timeout_millis=5000)
    return _manager


def install_manager(manager: TelemetryManager | None) -> TelemetryManager | None:
    """Make ``manager`` the process-wide one (no shutdown of the old); return the old one.

    For test harnesses (``tenantrace.testing``) and applications that build
    their own ``TelemetryManager`` and want decorators to use it.
    """
    global _manager
    with _manager_lock:
        old, _manager = _manager, manager
        _publish_gates(manager)
    return old


# What init_telemetry(install_global=True) installs besides the routing provider,
# as "module:function" names: the tenant-aware global propagator lives in
# tenantrace.propagation, a layer above this one, which the package registers.
_GLOBAL_INSTALLERS: list[str] = []


def on_install_global(installer: str) -> None:
    """Call ``"module:function"`` whenever ``init_telemetry(install_global=True)`` runs."""
    if installer not in _GLOBAL_INSTALLERS:
        _GLOBAL_INSTALLERS.append(installer)


def _run_global_installers() -> None:
    for installer in tuple(_GLOBAL_INSTALLERS):
        module, _, function = installer.partition(":")
        try:
            getattr(importlib.import_module(module), function)()
        except Exception as exc:
            _logger.warning("tenantrace: %s failed (%r)", installer, exc)


def init_telemetry(
    config: TelemetryConfig | None = None,
    sampler: Sampler | None = None,
    *,
    install_global: bool = True,
    metrics: SpanObserver | None = None,
) -> TelemetryManager:
    """(Re)create the process-wide manager and route global tracers through it.

    The previous manager, if any, is flushed and shut down. With
    ``install_global`` a ``TenantRoutingTracerProvider`` becomes the global
    OpenTelemetry provider (unless another SDK provider is already set), so
    auto-instrumented libraries are routed by tenant too, and the tenant-aware
    propagator becomes the global propagator (their extract and inject apply
    the trust and egress policies). ``metrics`` (a ``RedMetrics``, say) sees every
    batch of spans the pipeline exports (see ``TelemetryManager``).
    """
    manager = _create_manager(config or TelemetryConfig.from_env(), sampler, metrics)
    if install_global:
        from tenantrace.instrumentation.routing import install_routing_provider

        install_routing_provider()
        _run_global_installers()
    return manager


def _reset_for_tests() -> None:
    """Shut down and forget the process-wide manager (used by the pytest plugin)."""
    global _manager
    with _manager_lock:
        old, _manager = _manager, None
        _publish_gates(None)
    if old is not None:
        old.shutdown(timeout_millis=2000)
