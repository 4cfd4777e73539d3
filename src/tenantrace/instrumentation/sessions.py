"""Sessions: every span inside ``using_session(...)`` carries OpenInference ``session.id``.

Phoenix's Sessions view groups the traces whose spans share a ``session.id``
into one conversation. ``using_session`` puts the session (and optional
``user.id``) on the OpenTelemetry context; the tenant span processor copies it
onto each span as it starts, so auto-instrumented libraries' spans carry it too.

Phoenix keeps one session per ``session.id`` across all projects: two tenants
using the same id would share one session, each seeing the other's turns. So
the exported id is the tenant's: ``"<tenant>:<session id>"``
(``tenant_session_id``), and readers take the tenant to find it again.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from types import TracebackType
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from tenantrace.instrumentation._attached import AsyncWithFromSync, AttachedContext

__all__ = [
    "SESSION_ID",
    "USER_ID",
    "SessionSpanScope",
    "current_session",
    "session_attributes",
    "tenant_session_id",
    "using_session",
]

SESSION_ID: Final = "session.id"
USER_ID: Final = "user.id"
# Session and user ids come from requests; a span attribute is no place for a novel.
MAX_ID_LENGTH: Final = 256

_SESSION_KEY: Final = otel_context.create_key("tenantrace.session")


def _bounded(value: object) -> str:
    return str(value)[:MAX_ID_LENGTH]


def tenant_session_id(tenant_id: str, session_id: object) -> str:
    """The ``session.id`` exported for a tenant's session: ``"<tenant>:<session id>"``."""
    prefix = f"{tenant_id}:"
    text = _bounded(session_id)
    return text if text.startswith(prefix) else prefix + text


class using_session(AttachedContext[str]):
    """Make ``session_id`` (and ``user_id``) the session of every span inside the block.

    Works with ``with`` and ``async with``; nested scopes replace the outer
    one until they exit. Ids are kept as text of at most 256 characters.
    """

    __slots__ = ("_attributes",)

    def __init__(self, session_id: object, user_id: object | None = None) -> None:
        super().__init__()
        attributes: dict[str, AttributeValue] = {SESSION_ID: _bounded(session_id)}
        if user_id is not None:
            attributes[USER_ID] = _bounded(user_id)
        self._attributes = attributes

    def _attach(self) -> tuple[otel_context.Context, str]:
        ctx = otel_context.set_value(_SESSION_KEY, self._attributes)
        return ctx, str(self._attributes[SESSION_ID])


def session_attributes(
    context: otel_context.Context | None = None,
) -> dict[str, AttributeValue] | None:
    """The ``session.id`` / ``user.id`` attributes in force in ``context`` (or now), if any."""
    found = otel_context.get_value(_SESSION_KEY, context)
    if found is None and context is not None:
        # A span started under an extracted remote context still belongs to the
        # session of the code that started it.
        found = otel_context.get_value(_SESSION_KEY)
    return found if isinstance(found, dict) else None


def current_session() -> str | None:
    """The ``session.id`` of the active ``using_session`` scope, or None."""
    attributes = session_attributes()
    return str(attributes[SESSION_ID]) if attributes else None


class SessionSpanScope(AsyncWithFromSync[Span]):
    """A span scope inside a ``using_session`` scope: ``manager.session_span(...)``.

    The session is entered first and left last, so the span and its children
    carry it, and a ``user.id`` of an enclosing session never leaks in.
    """

    __slots__ = ("_scope", "_session")

    def __init__(self, session: using_session, scope: AbstractContextManager[Span]) -> None:
        self._session = session
        self._scope = scope

    def __enter__(self) -> Span:
        self._session.__enter__()
        try:
            return self._scope.__enter__()
        except BaseException:
            self._session.__exit__(None, None, None)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._scope.__exit__(exc_type, exc, tb)
        finally:
            self._session.__exit__(exc_type, exc, tb)
