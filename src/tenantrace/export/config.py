"""The settings of the one export pipeline every tenant shares."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BatchExportConfig"]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class BatchExportConfig:
    """Settings of the one export pipeline shared by every tenant."""

    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    export_timeout_millis: int = 30_000
    schedule_delay_millis: int = 500

    # Queue behavior when full
    drop_on_queue_full: bool = True
    log_dropped_spans: bool = True

    # Test mode - synchronous export
    use_sync_export: bool = False  # Set via TELEMETRY_SYNC_EXPORT=true

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field that is out of range."""
        _require(self.max_queue_size > 0, f"max_queue_size must be > 0, got {self.max_queue_size}")
        _require(
            0 < self.max_export_batch_size <= self.max_queue_size,
            "max_export_batch_size must be > 0 and <= max_queue_size, "
            f"got {self.max_export_batch_size} (queue {self.max_queue_size})",
        )
        _require(
            self.export_timeout_millis > 0,
            f"export_timeout_millis must be > 0, got {self.export_timeout_millis}",
        )
        _require(
            self.schedule_delay_millis >= 0,
            f"schedule_delay_millis must be >= 0, got {self.schedule_delay_millis}",
        )
