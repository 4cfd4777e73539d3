"""Every ```python example in docs/ runs as written, each in a fresh interpreter.

Examples that need a server (a Phoenix, a collector) are fenced as ```py on
purpose: highlighted the same, shown but not run here; the tests that start
those servers cover the same calls.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLES = [
    pytest.param(code, id=f"{page.stem}-{index}")
    for page in sorted(DOCS.glob("*.md"))
    for index, code in enumerate(
        re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
    )
]


def test_the_pages_have_examples() -> None:
    pages = {param.id.rsplit("-", 1)[0] for param in EXAMPLES}  # type: ignore[union-attr]
    assert {"layers", "propagation", "reliability", "analytics"} <= pages


@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs(code: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,  # examples that write files write them here
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
