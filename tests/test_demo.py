"""The README's main job, as a user runs it: ``tenantrace demo`` with no server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_demo_prints_each_tenants_trace_trees() -> None:
    script = Path(sys.executable).with_name("tenantrace")
    result = subprocess.run(
        [str(script), "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for tenant in ("acme", "globex", "initech"):
        assert f"project cogniverse-{tenant}  (tenant {tenant}," in out
    # A request's tree: the API span with its layers below it, the queue hop included.
    assert "api.search" in out and "├─ memory.recall" in out and "└─ index_search" in out
    # acme asks the same thing twice: the second time the cache answers.
    assert "cache.get" in out and "  hit" in out and "  miss" in out
    assert out.rstrip().endswith("0 dropped, one export thread.")
