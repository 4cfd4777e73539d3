"""What a ``TelemetryManager`` is built from: its span transform, Resource and fork hook."""

from __future__ import annotations

import os
import uuid
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from opentelemetry.sdk.resources import Resource

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.util.types import AttributeValue

    from tenantrace.export.pipeline import SpanTransform
    from tenantrace.instrumentation.config import TelemetryConfig

__all__ = ["base_resource", "register_fork_hook", "with_scrubbing"]


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
