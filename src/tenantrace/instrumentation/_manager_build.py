"""What a ``TelemetryManager`` is built from: its span transform, Resource, pipeline,
registry and fork hook."""

from __future__ import annotations

import os
import uuid
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from opentelemetry.sdk.resources import Resource

from tenantrace.instrumentation.exporters import build_exporter

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.util.types import AttributeValue

    from tenantrace.export.pipeline import ExportPipeline, SpanTransform
    from tenantrace.instrumentation.config import TelemetryConfig
    from tenantrace.instrumentation.manager import TelemetryManager
    from tenantrace.instrumentation.providers import TenantRegistry

__all__ = [
    "base_resource",
    "build_pipeline",
    "new_registry",
    "register_fork_hook",
    "with_scrubbing",
]


def with_scrubbing(
    scrubber: SpanTransform | None, transform: SpanTransform | None
) -> SpanTransform | None:
    if scrubber is None or transform is None:
        return scrubber or transform

    def scrub_then_transform(span: ReadableSpan) -> ReadableSpan:
        return transform(scrubber(span))

    return scrub_then_transform


def base_resource(config: TelemetryConfig) -> Resource:
    attributes: dict[str, AttributeValue] = {
        "service.name": config.service_name,
        "service.instance.id": str(uuid.uuid4()),
        "deployment.environment": config.environment,
        "deployment.environment.name": config.environment,
    }
    attributes.update(config.resource_attributes)
    # Resource.create adds the SDK attributes and OTEL_RESOURCE_ATTRIBUTES;
    # the explicit config wins over the environment.
    return Resource.create({}).merge(Resource(attributes))


def register_fork_hook(after_fork_in_child: Callable[[], None]) -> None:
    """Call the bound method in a forked child while its object lives (a weak reference)."""
    if hasattr(os, "register_at_fork"):
        ref = weakref.WeakMethod(after_fork_in_child)

        def _after_fork() -> None:
            method = ref()
            if method is not None:
                method()

        os.register_at_fork(after_in_child=_after_fork)


def new_registry(manager: TelemetryManager, pipeline: ExportPipeline) -> TenantRegistry:
    from tenantrace.instrumentation.providers import TenantRegistry

    return TenantRegistry(manager.config, pipeline, manager._sampler, base_resource(manager.config))


def build_pipeline(manager: TelemetryManager) -> None:
    """The manager's exporter, its one pipeline and its tenant registry; on any failure
    none of them (spans are no-ops), counted and logged once."""
    try:
        exporter = manager._explicit_exporter or build_exporter(manager.config)
        manager._exporter = exporter
        # Imported when a manager builds its pipeline: import tenantrace stays light.
        from tenantrace.export.pipeline import ExportPipeline

        metrics = manager.metrics
        pipeline = ExportPipeline(
            exporter,
            manager.config.batch_config,
            transform=manager._span_transform,
            observe=None if metrics is None else metrics.observe_batch,
        )
        manager._pipeline = manager._stats_pipeline = pipeline
        manager._registry = new_registry(manager, pipeline)
    except Exception as exc:
        manager.failed_initializations += 1
        manager._exporter, manager._pipeline, manager._registry = None, None, None
        manager.warn_once(
            "init", "tenantrace: telemetry could not be initialised (%r); spans are no-ops", exc
        )
