"""Sessions: every span inside ``using_session(...)`` carries OpenInference ``session.id``.

Phoenix's Sessions view groups the traces whose spans share a ``session.id``
into one conversation. ``using_session`` puts the session (and optional
``user.id``) on the OpenTelemetry context; the tenant span processor copies it
onto each span as it starts, so auto-instrumented libraries' spans carry it too.
"""

from __future__ import annotations

from typing import Final

from opentelemetry import context as otel_context
from opentelemetry.util.types import AttributeValue

from tenantrace.instrumentation._attached import AttachedContext

__all__ = ["SESSION_ID", "USER_ID", "current_session", "session_attributes", "using_session"]

SESSION_ID: Final = "session.id"
USER_ID: Final = "user.id"
# Session and user ids come from requests; a span attribute is no place for a novel.
MAX_ID_LENGTH: Final = 256

_SESSION_KEY: Final = otel_context.create_key("tenantrace.session")


def _bounded(value: object) -> str:
    return str(value)[:MAX_ID_LENGTH]


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
