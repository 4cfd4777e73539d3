"""The Celery tests' app: its tasks, and a worker process that writes its spans to files.

``make_app(broker, queue)`` builds an app (results in Redis) whose tasks report
what they saw: the tenant, the trace id, the attempt, the thread and process.

Run as a worker process (``celery -A celery_worker_app worker``) with
``TENANTRACE_CELERY_BROKER``, ``TENANTRACE_CELERY_QUEUE`` and
``TENANTRACE_CELERY_SPANS`` (a directory) in the environment, every pool
process exports its spans synchronously as JSON lines to
``<dir>/spans-<pid>.jsonl``, which the test reads back.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from celery import Celery, Task
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tenantrace import current_tenant, get_telemetry_manager
from tenantrace.instrumentation.config import BatchExportConfig, TelemetryConfig
from tenantrace.instrumentation.manager import TelemetryManager, install_manager
from tenantrace.propagation import get_trace_id
from tenantrace.propagation.celery import instrument_celery
from tenantrace.testing import CapturedSpan

RESULTS = "redis://127.0.0.1:6379/0"
BROKERS = {
    "redis": "redis://127.0.0.1:6379/0",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}


def _seen(task: Task, label: str) -> dict[str, Any]:
    return {
        "label": label,
        "tenant": current_tenant(),
        "trace_id": get_trace_id(),
        "task_id": task.request.id,
        "retries": task.request.retries,
        "thread": threading.get_ident(),
        "pid": os.getpid(),
    }


def make_app(broker: str, queue: str) -> Celery:
    """An app on ``broker`` consuming ``queue``, with the test tasks registered."""
    app = Celery("tenantrace-tests", broker=broker, backend=RESULTS, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        result_expires=300,
        worker_hijack_root_logger=False,
        worker_enable_remote_control=False,  # no pidbox queues left behind
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        worker_prefetch_multiplier=1,
        # An idle AMQP connection wakes the worker's event loop only this often: without
        # it an in-process worker takes ~10 s to notice it should stop.
        broker_heartbeat=2,
    )

    @app.task(name="tt.whoami", shared=False, bind=True)
    def whoami(self: Task, label: str, delay: float = 0.0) -> dict[str, Any]:
        # A span of the task's own code: it must go to the task's tenant.
        with get_telemetry_manager().span(f"work {label}"):
            if delay:
                time.sleep(delay)
            return _seen(self, label)

    @app.task(name="tt.flaky", shared=False, bind=True, max_retries=5)
    def flaky(self: Task, label: str, failures: int) -> dict[str, Any]:
        with get_telemetry_manager().span(f"attempt {label} {self.request.retries}"):
            seen = _seen(self, label)
            if self.request.retries < failures:
                raise self.retry(exc=ValueError(f"attempt {self.request.retries}"), countdown=0)
            return seen

    @app.task(name="tt.boom", shared=False, bind=True)
    def boom(self: Task, label: str) -> None:
        raise RuntimeError(f"boom {label}")

    @app.task(name="tt.add", shared=False, bind=True)
    def add(self: Task, x: int, y: int) -> dict[str, Any]:
        return {**_seen(self, f"add {x}"), "sum": x + y}

    @app.task(name="tt.collect", shared=False, bind=True)
    def collect(self: Task, parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {**_seen(self, "collect"), "total": sum(p["sum"] for p in parts)}

    return app


def delete_queue(app: Celery, queue: str) -> None:
    """Remove the test's queue from the broker (and, on Redis, its binding key)."""
    try:
        with app.connection_for_write() as connection:
            app.amqp.queues[queue].bind(connection.default_channel).delete()
    except Exception:  # best effort: a leftover empty queue is harmless
        pass


# ------------------------------------------------------------- worker process


class JsonLinesExporter(SpanExporter):
    """Appends each span, as a ``CapturedSpan``'s fields, to a per-process file."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            captured = CapturedSpan.of(span)
            fields = {k: v for k, v in vars(captured).items() if k not in ("raw", "attributes")}
            fields["attributes"] = {k: _plain(v) for k, v in captured.attributes.items()}
            fields["pid"] = os.getpid()
            lines.append(json.dumps(fields) + "\n")
        with self._lock, (self._directory / f"spans-{os.getpid()}.jsonl").open("a") as out:
            out.writelines(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _install_file_manager(directory: Path) -> None:
    config = TelemetryConfig(
        exporter_type="memory",
        service_name="celery-worker",
        batch_config=BatchExportConfig(use_sync_export=True),
    )
    install_manager(TelemetryManager(config, exporter=JsonLinesExporter(directory)))


def _worker_process_app() -> Celery | None:
    broker = os.environ.get("TENANTRACE_CELERY_BROKER")
    if not broker:
        return None
    from celery import signals

    directory = Path(os.environ["TENANTRACE_CELERY_SPANS"])
    worker_app = make_app(broker, os.environ["TENANTRACE_CELERY_QUEUE"])
    instrument_celery(worker_app)  # connected before the pool forks: the children inherit it

    @signals.worker_process_init.connect(weak=False)
    def _per_child(**_: object) -> None:
        _install_file_manager(directory)  # each pool process: its own manager and file

    @signals.worker_ready.connect(weak=False)
    def _ready(**_: object) -> None:
        (directory / "ready").write_text(str(os.getpid()))

    return worker_app


app = _worker_process_app()
