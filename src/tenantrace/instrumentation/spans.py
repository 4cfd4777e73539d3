"""Span scopes: start a span, make it current, record the user's exception once, end it.

``SpanScope`` is a plain class rather than a ``@contextmanager`` generator: it
is on the hot path of every traced call and a class costs a fraction of a
generator-based context manager. It works with ``with`` and ``async with``.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, Status, StatusCode

from tenantrace.instrumentation._attached import AsyncWithFromSync
from tenantrace.instrumentation.tenants import (
    TENANT_CONTEXT_KEY,
    TENANT_ID_ATTRIBUTE,
    with_tenant,
)

__all__ = [
    "NOOP_SCOPE",
    "NoOpScope",
    "SpanScope",
    "activate_span",
    "end_span_with",
    "exception_message",
    "name_tenant",
    "record_exception_event",
    "record_exception_once",
]

_logger = logging.getLogger(__name__)

ERROR_TYPE: Final = "error.type"
# Marks an exception already recorded on a span so that enclosing traced calls
# set their status to ERROR without adding the same exception event again.
_RECORDED: Final = "__tenantrace_recorded__"
# The status description tenantrace itself set on a span: not the user's.
_OUR_DESCRIPTION: Final = "_tenantrace_description"


# What a span says of an exception whose str() raises (as the traceback module does).
UNPRINTABLE: Final = "<exception str() failed>"


def exception_message(exc: BaseException) -> str:
    """``str(exc)``, never raising: an exception whose ``__str__`` raises, or that
    holds an int past Python's digit limit, gives ``UNPRINTABLE``."""
    try:
        return str(exc)
    except Exception:
        return UNPRINTABLE


def record_exception_event(span: Span, exc: BaseException, *, escaped: bool = False) -> None:
    """``span.record_exception(exc)``, also for an exception ``str()`` fails on.

    The SDK's ``record_exception`` calls ``str(exc)``; for an exception it
    fails on, the same ``exception`` event is added with ``UNPRINTABLE`` as
    its message. Raises only if the span itself does.
    """
    try:
        str(exc)
    except Exception:
        module = type(exc).__module__
        qualname = type(exc).__qualname__
        span.add_event(
            "exception",
            {
                "exception.type": qualname
                if module in (None, "builtins")
                else f"{module}.{qualname}",
                "exception.message": UNPRINTABLE,
                # The traceback module prints an unprintable exception without raising.
                "exception.stacktrace": "".join(traceback.format_exception(exc)),
                "exception.escaped": str(escaped),
            },
        )
        return
    span.record_exception(exc, escaped=escaped)


def _user_description(span: Span) -> bool:
    """True when the span has an ERROR status with a description tenantrace did not set."""
    status = getattr(span, "status", None)  # SDK spans; others cannot tell
    if status is None or getattr(status, "status_code", None) is not StatusCode.ERROR:
        return False
    description = getattr(status, "description", None)
    return bool(description) and description != getattr(span, _OUR_DESCRIPTION, None)


def record_exception_once(
    span: Span, exc: BaseException, *, record: bool = True, set_status: bool = True
) -> None:
    """Set ERROR status and ``error.type``; add the exception event if not done yet.

    A description the span already has with an ERROR status (set by the user
    before the exception escaped) stands; otherwise the status says
    ``"Type: message"``. Never raises, whatever ``exc`` or the span do.
    """
    try:
        if not span.is_recording():
            return
        if set_status and not _user_description(span):
            message = exception_message(exc)
            description = f"{type(exc).__name__}: {message}"[:1024]
            span.set_status(Status(StatusCode.ERROR, description))
            with contextlib.suppress(AttributeError, TypeError):  # a span with __slots__
                setattr(span, _OUR_DESCRIPTION, description)
        span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
        if not record or getattr(exc, _RECORDED, False) or _recorded_by_user(span, exc):
            return
        record_exception_event(span, exc, escaped=True)
        # Exceptions with __slots__ cannot be marked; they may be recorded twice.
        with contextlib.suppress(AttributeError, TypeError):
            setattr(exc, _RECORDED, True)
    except Exception:  # telemetry must never replace the user's exception
        _logger.debug("tenantrace: could not record exception on span", exc_info=True)


# The user's own ``span.record_exception(e)`` just before ``raise`` is among the
# last events; looking further back would cost time on every failing call.
_RECENT_EVENTS: Final = 4


def _recorded_by_user(span: Span, exc: BaseException) -> bool:
    """True when the code inside already added this exception's event to ``span``."""
    events = getattr(span, "events", None)  # SDK spans only; others cannot tell
    if not events:
        return False
    message = exception_message(exc)
    qualname = type(exc).__qualname__
    for event in events[-_RECENT_EVENTS:]:
        attributes = event.attributes or {}
        if (
            event.name == "exception"
            and attributes.get("exception.message") == message
            and str(attributes.get("exception.type", "")).endswith(qualname)
        ):
            return True
    return False


def name_tenant(span: Span, tenant_id: str) -> None:
    """Give a span just started the ``tenant.id`` attribute, unless it has one.

    Written into the SDK span's attribute dict: ``set_attribute`` (or passing
    it to ``start_span``) validates the value, about 1.5-2 us a span, and this
    one is an already validated tenant id. The span was started on this thread
    a moment ago, so nothing else reads it yet. A ``tenant.id`` the caller set
    stands; a span already at its attribute limit keeps its own attributes and
    counts this one as dropped; the value length limit applies.
    """
    attributes = getattr(span, "_attributes", None)
    if type(attributes) is BoundedAttributes:
        try:
            values = attributes._dict
        except AttributeError:  # an SDK whose internals moved: the API's way
            span.set_attribute(TENANT_ID_ATTRIBUTE, tenant_id)
            return
        if TENANT_ID_ATTRIBUTE in values:
            return
        if attributes.maxlen is not None and len(values) >= attributes.maxlen:
            attributes.dropped += 1  # counted as the SDK counts an attribute it drops
            return
        limit = attributes.max_value_len
        values[TENANT_ID_ATTRIBUTE] = tenant_id if limit is None else tenant_id[:limit]
    elif attributes is None and span.is_recording():  # not an SDK span: the API's way
        span.set_attribute(TENANT_ID_ATTRIBUTE, tenant_id)


def end_span_with(span: Span, exc: BaseException | None, *, record: bool = True) -> None:
    """End ``span``, first recording ``exc`` (if any) once."""
    if exc is not None:
        record_exception_once(span, exc, record=record)
    try:
        span.end()
    except Exception:
        _logger.debug("tenantrace: could not end span", exc_info=True)


def activate_span(span: Span, tenant_id: str | None = None) -> object:
    """Attach a context where ``span`` is current (and ``tenant_id`` the tenant).

    Children started inside inherit the tenant of their parent, so the tenant
    is set in the context only when it differs from the one already there.
    Returns the token for ``opentelemetry.context.detach``.
    """
    ctx = otel_context.get_current()
    if tenant_id is not None and ctx.get(TENANT_CONTEXT_KEY) != tenant_id:
        ctx = with_tenant(tenant_id, ctx)
    return otel_context.attach(trace_api.set_span_in_context(span, ctx))


class SpanScope(AsyncWithFromSync[Span]):
    """``with`` / ``async with`` scope that starts its span on entry and ends it on exit.

    Nothing happens until ``__enter__``, as with OpenTelemetry's
    ``start_as_current_span``: a scope built outside ``tenant_scope()`` or
    before a parent span takes the tenant, the parent and the start time in
    force when it is entered. ``start(*args)`` is the manager's span starter; it
    returns the started span and the context to make it current in (which
    carries the span's tenant), or None for a no-op.
    """

    __slots__ = ("_args", "_record", "_span", "_start", "_token")

    def __init__(
        self,
        start: Callable[..., tuple[Span, Context] | None],
        args: tuple[object, ...] = (),
        *,
        record_exception: bool = True,
    ) -> None:
        # A function and its arguments, not a closure: a closure over the span's
        # arguments is a function and a cell per argument, for the collector, per span.
        self._start = start
        self._args = args
        self._record = record_exception
        self._span: Span = INVALID_SPAN
        self._token: object | None = None

    def __enter__(self) -> Span:
        if self._token is not None:
            # Its span and token live on the scope: a second entry would leave the
            # first span unended and current. Sequential reuse is fine.
            raise RuntimeError("this span scope is already active; make one per block")
        started = self._start(*self._args)
        if started is None:
            return INVALID_SPAN
        self._span, context = started
        self._token = otel_context.attach(trace_api.set_span_in_context(self._span, context))
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is None:
            return
        try:
            otel_context.detach(token)  # type: ignore[arg-type]
        except Exception:
            _logger.debug("tenantrace: context detach failed", exc_info=True)
        end_span_with(self._span, exc, record=self._record)


class NoOpScope(AsyncWithFromSync[Span]):
    """The scope of a span that is not traced: yields ``INVALID_SPAN``, changes no context."""

    __slots__ = ()

    def __enter__(self) -> Span:
        return INVALID_SPAN

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


NOOP_SCOPE: Final = NoOpScope()
