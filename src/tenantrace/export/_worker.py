"""One export thread over a ``FairQueue``: batching, flush, shutdown, exit and fork.

Both export pipelines (spans: ``ExportPipeline``; log records:
``LogPipeline``) are a ``BatchWorker``: one bounded, tenant-fair queue drained
by one daemon thread, which takes a batch when the queue holds one or every
``schedule_delay_millis``, and hands it to the pipeline's ``_export_batch``
(which counts what it exports or loses). Nothing a batch does can kill the
thread.

- ``drain``/``force_flush`` wait until what is queued now has been exported or
  counted as lost;
- ``shutdown`` flushes within its timeout, stops the thread and closes the
  exporter; after it ``submit`` drops silently and flushes return at once;
- at interpreter exit what is still queued is flushed within ``exit_millis``,
  cut to ``EXIT_GRACE_MILLIS`` when the receiver is failing or has held one
  export for over a second (the thread is a daemon);
- after ``fork`` the child starts with a fresh queue and its own thread (the
  parent's thread does not exist there, and the lock may be held by it).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import ClassVar, Final, Protocol, TypeVar

from tenantrace.export._fair_queue import FairQueue
from tenantrace.export.config import BatchExportConfig

__all__ = ["EXIT_GRACE_MILLIS", "BatchWorker", "Closable", "Warnings"]

T = TypeVar("T")

# At exit, when the receiver is failing or has held one export for over a
# second, the process waits only this long more for it.
EXIT_GRACE_MILLIS: Final = 500
_STUCK_EXPORT_S: Final = 1.0


class Closable(Protocol):
    def shutdown(self) -> None: ...


class Warnings(Protocol):
    """Where a pipeline says what went wrong (``kind`` names the kind of failure)."""

    def warning(self, kind: str, message: str, *args: object) -> None: ...


def _weak_call(method: Callable[[], object]) -> Callable[[], None]:
    """A callback for atexit / at-fork that does not keep its pipeline alive."""
    ref = weakref.WeakMethod(method)

    def call() -> None:
        target = ref()
        if target is not None:
            target()

    return call


class BatchWorker(FairQueue[T]):
    """A ``FairQueue`` drained in batches by one thread into ``_export_batch``."""

    # What the warnings call the pipeline's work ("export", "log export").
    _WHAT: ClassVar[str] = "export"
    _THREAD_NAME: ClassVar[str] = "tenantrace-export"

    def __init__(
        self,
        exporter: Closable,
        config: BatchExportConfig,
        log: Warnings,
        *,
        exit_millis: int,
    ) -> None:
        self._exporter = exporter
        self._log = log
        self._delay_s = config.schedule_delay_millis / 1000
        self._exit_millis = exit_millis
        super().__init__(config)
        if not self._sync:
            self._start_worker()
        # After fork the worker thread is gone and the lock may be held by a
        # thread that no longer exists: the child starts a fresh queue.
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_weak_call(self._after_fork_in_child))
        # What is still queued when the interpreter exits is flushed, within a
        # bound, like the SDK's TracerProvider does (the export thread is a daemon).
        if not self._sync:
            atexit.register(_weak_call(self._at_exit))

    def _reset(self) -> None:
        super()._reset()
        self._flushed = threading.Condition(self._lock)
        self._flush_requested = 0
        self._flush_done = 0
        self._worker: threading.Thread | None = None
        # When the export call in progress began (None between calls): read at exit.
        self._export_started: float | None = None

    def _export_batch(self, batch: list[T], owners: list[str]) -> bool | None:
        """Export one batch (``owners[i]`` is the tenant of ``batch[i]``), counting
        what is exported and what is lost. False if the receiver failed, True if it
        took something, None if nothing was sent."""
        raise NotImplementedError

    # ---------------------------------------------------------------- thread

    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._run, name=self._THREAD_NAME, daemon=True)
        self._worker.start()

    @property
    def worker_alive(self) -> bool:
        return self._sync or (self._worker is not None and self._worker.is_alive())

    def _run(self) -> None:
        while True:
            with self._lock:
                if (
                    self._size < self._max_batch
                    and self._flush_requested == self._flush_done
                    and not self._is_shutdown
                ):
                    self._not_empty.wait(self._delay_s)
                flush_target = self._flush_requested
                batch, owners = self._take_batch()
                stopping = self._is_shutdown and not batch
            if batch:
                try:
                    self._export_batch(batch, owners)
                except Exception as exc:  # nothing may kill the export thread
                    self._log.warning(
                        "export-bug", "tenantrace: %s step raised %r", self._WHAT, exc
                    )
            with self._lock:
                if not self._size:
                    self._flush_done = max(self._flush_done, flush_target)
                    self._flushed.notify_all()
            if stopping:
                return

    # ------------------------------------------------------------- lifecycle

    def drain(self, timeout_millis: int = 30_000) -> bool:
        """Wait until what is queued now has been exported or counted as lost;
        False if that took longer than the timeout (or the worker is gone)."""
        if self._sync or self._is_shutdown:
            return True
        deadline = time.monotonic() + max(0, timeout_millis) / 1000
        with self._lock:
            self._flush_requested += 1
            target = self._flush_requested
            self._not_empty.notify()
            while self._flush_done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.worker_alive:
                    return False
                self._flushed.wait(remaining)
        return True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait until what is queued now was exported or counted; False on timeout."""
        return self.drain(timeout_millis)

    def shutdown(self, timeout_millis: int = 30_000) -> bool:
        """Flush what is queued (within the timeout), stop the worker, close the exporter."""
        if self._is_shutdown:
            return True
        deadline = time.monotonic() + max(0, timeout_millis) / 1000
        flushed = self.force_flush(timeout_millis)
        with self._lock:
            self._is_shutdown = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(0.0, deadline - time.monotonic()))
        try:
            self._exporter.shutdown()
        except Exception as exc:
            self._log.warning(
                "shutdown-error", "tenantrace: %ser shutdown raised %r", self._WHAT, exc
            )
        return flushed

    def _at_exit(self) -> None:
        timeout = self._exit_millis
        started = self._export_started
        if self._export_failing or (
            started is not None and time.monotonic() - started > _STUCK_EXPORT_S
        ):
            timeout = min(timeout, EXIT_GRACE_MILLIS)
        self.shutdown(timeout_millis=timeout)

    def _after_fork_in_child(self) -> None:
        self._reset()
        if not self._sync and not self._is_shutdown:
            self._start_worker()
