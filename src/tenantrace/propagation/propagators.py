"""Which propagators inject and extract: W3C Trace Context, W3C Baggage, B3; ``OTEL_PROPAGATORS``.

Injection writes exactly the configured formats, in the configured order, as
``opentelemetry.propagate`` does (default ``tracecontext,baggage``; ``b3`` is
the single ``b3`` header, ``b3multi`` the ``X-B3-*`` headers; ``none`` turns
propagation off). Extraction accepts a trace context in any format we know,
W3C first, then B3 single and multi, so a B3-only caller still joins the trace;
baggage is read only when ``baggage`` is configured. Other names are loaded
from the ``opentelemetry_propagator`` entry points, like the SDK does; an
unknown name is skipped with one warning rather than failing the service.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Final

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.environment_variables import OTEL_PROPAGATORS
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tenantrace.propagation.carriers import PROPAGATION_FIELDS

__all__ = ["PropagatorSet", "configure_propagators", "current_propagators"]

_logger = logging.getLogger(__name__)

DEFAULT_PROPAGATORS: Final = ("tracecontext", "baggage")

TRACECONTEXT: Final = TraceContextTextMapPropagator()
BAGGAGE: Final = W3CBaggagePropagator()
B3_SINGLE: Final = B3SingleFormat()
# B3MultiFormat.extract reads the single ``b3`` header first, then ``X-B3-*``.
B3_ANY: Final = B3MultiFormat()

_BUILT_IN: Final[dict[str, TextMapPropagator]] = {
    "tracecontext": TRACECONTEXT,
    "baggage": BAGGAGE,
    "b3": B3_SINGLE,
    "b3multi": B3_ANY,
}


@dataclass(frozen=True)
class PropagatorSet:
    """The propagators in force, resolved once from their names."""

    names: tuple[str, ...]
    injectors: tuple[TextMapPropagator, ...]
    extract_trace: bool
    extract_baggage: bool
    # Entry-point propagators (Jaeger, X-Ray, ...) extract after the built-in ones.
    extra: tuple[TextMapPropagator, ...]
    # Header names extraction reads; None means every name (an extra may read any).
    wanted: frozenset[str] | None
    injected_fields: frozenset[str]


def _load(name: str) -> TextMapPropagator | None:
    built_in = _BUILT_IN.get(name)
    if built_in is not None:
        return built_in
    try:
        found = next(iter(entry_points(group="opentelemetry_propagator", name=name)), None)
        if found is None:
            raise LookupError(f"no entry point named {name!r}")
        propagator = found.load()()
        if not isinstance(propagator, TextMapPropagator):
            raise TypeError(f"{name!r} is not a TextMapPropagator")
        return propagator
    except Exception as exc:
        _logger.warning("tenantrace: propagator %r skipped (%s)", name, exc)
        return None


def _resolve(names: tuple[str, ...]) -> PropagatorSet:
    if "none" in names:
        return PropagatorSet(("none",), (), False, False, (), frozenset(), frozenset())
    injectors: list[TextMapPropagator] = []
    extra: list[TextMapPropagator] = []
    kept: list[str] = []
    for name in names:
        propagator = _load(name)
        if propagator is None or propagator in injectors:
            continue
        kept.append(name)
        injectors.append(propagator)
        if name not in _BUILT_IN:
            extra.append(propagator)
    fields: set[str] = set()
    for propagator in injectors:
        fields.update(field.lower() for field in propagator.fields)
    return PropagatorSet(
        names=tuple(kept),
        injectors=tuple(injectors),
        extract_trace=True,
        extract_baggage=BAGGAGE in injectors,
        extra=tuple(extra),
        wanted=None if extra else PROPAGATION_FIELDS,
        injected_fields=frozenset(fields),
    )


def _names_from(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        value = os.environ.get(OTEL_PROPAGATORS, "")
    parts = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for part in parts:
        name = part.strip().lower() if part else ""
        # "tenantrace" names TenantPropagator, which uses these very formats.
        names.extend(DEFAULT_PROPAGATORS if name == "tenantrace" else (name,) if name else ())
    return tuple(dict.fromkeys(names)) or DEFAULT_PROPAGATORS


class _Current:
    """The propagator set in force; replaced whole, so readers need no lock."""

    value: PropagatorSet | None = None
    lock = threading.Lock()


def configure_propagators(names: str | Sequence[str] | None = None) -> tuple[str, ...]:
    """Set the propagators by name (``"tracecontext,baggage,b3"``).

    None re-reads ``OTEL_PROPAGATORS``. Returns the names in force; unknown
    names are skipped with a warning.
    """
    resolved = _resolve(_names_from(names))
    with _Current.lock:
        _Current.value = resolved
    return resolved.names


def current_propagators() -> PropagatorSet:
    """The propagators in force (read from ``OTEL_PROPAGATORS`` on first use)."""
    current = _Current.value
    if current is not None:
        return current
    with _Current.lock:
        if _Current.value is None:
            _Current.value = _resolve(_names_from(None))
        return _Current.value
