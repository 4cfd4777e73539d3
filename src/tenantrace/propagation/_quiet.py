"""Silence OpenTelemetry's per-call warnings about malformed headers, during our own calls only.

The SDK's propagators log a warning for every malformed ``traceparent``,
``tracestate`` or baggage member they meet, some with the hostile value in the
message. A client sending garbage on every request would then write one log
line per request. While tenantrace parses or writes a carrier, those records are
dropped (we count the outcome ourselves and log once); everywhere else the
SDK's logging is untouched.
"""

from __future__ import annotations

import logging
import threading
from typing import Final

__all__ = ["begin_quiet", "end_quiet"]

_LOGGERS: Final = (
    "opentelemetry.trace.propagation.tracecontext",
    "opentelemetry.trace.span",
    "opentelemetry.baggage",
    "opentelemetry.baggage.propagation",
    "opentelemetry.propagators.b3",
)

# Thread-local, not a ContextVar: extraction and injection never await, so
# nothing else can run on this thread between begin_quiet and end_quiet, and a
# thread-local flag costs a fraction of a ContextVar set/reset.
_state = threading.local()


class _QuietFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_state, "quiet", False)


_installed: list[_QuietFilter] = []  # holds the one filter once installed
_install_lock = threading.Lock()


def _install() -> None:
    with _install_lock:
        if _installed:
            return
        quiet = _QuietFilter("tenantrace")
        for name in _LOGGERS:
            logging.getLogger(name).addFilter(quiet)
        _installed.append(quiet)


def begin_quiet() -> bool:
    """Drop the SDK's propagation warnings on this thread until ``end_quiet(token)``."""
    if not _installed:
        _install()
    previous: bool = getattr(_state, "quiet", False)
    _state.quiet = True
    return previous


def end_quiet(token: bool) -> None:
    _state.quiet = token
