"""The one way a scope makes a context current: attach on entry, detach on exit.

Tenant scopes, sessions, baggage scopes and extracted trace contexts all work
as ``with`` and ``async with`` blocks; each says only which context to attach
and what the block receives.
"""

from __future__ import annotations

from types import TracebackType
from typing import Generic, TypeVar

from opentelemetry import context as otel_context
from opentelemetry.context import Context

__all__ = ["AsyncWithFromSync", "AttachedContext"]

_T = TypeVar("_T")


class AsyncWithFromSync(Generic[_T]):
    """``async with`` for a scope whose ``with`` does no I/O: the same enter and exit."""

    __slots__ = ()

    def __enter__(self) -> _T:
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> _T:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class AttachedContext(AsyncWithFromSync[_T]):
    """Base of the context scopes: ``_attach()`` gives the context and the ``as`` value."""

    __slots__ = ("_token",)

    def __init__(self) -> None:
        self._token: object | None = None

    def _attach(self) -> tuple[Context, _T]:
        raise NotImplementedError

    def __enter__(self) -> _T:
        if self._token is not None:
            # One token per scope object: a second entry (nested, another thread
            # or task) would leave the first one attached for ever, tenant included.
            raise RuntimeError(f"this {type(self).__name__} is already active; make one per block")
        ctx, value = self._attach()
        self._token = otel_context.attach(ctx)
        return value

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
