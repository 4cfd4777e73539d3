"""``sanitize_sql`` where the layers have always imported it from.

The sanitiser lives in :mod:`tenantrace.export.sql`, below the layers,
so the export path (which sanitises ``db.query.text`` / ``db.statement`` on
every exported span) uses it without importing ``tenantrace.layers``.
"""

from __future__ import annotations

from tenantrace.export.sql import MAX_QUERY_CHARS, sanitize_sql

__all__ = ["MAX_QUERY_CHARS", "sanitize_sql"]
