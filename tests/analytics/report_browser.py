"""Look at an HTML report as a person would: headless Chromium, section by section.

- ``screenshot_sections``: one PNG per ``<section id=...>`` of the report (the
  others hidden by a style rule in a copy of the page), taken with Chromium's
  ``--screenshot``, network off.
- ``dump_dom``: the DOM after scripts ran (plotly's SVG drawings included).
- ``pixel_stats``: per PNG, the share of non-white pixels, the spread of the
  luminance and the share of pixels in plotly's trace colours, computed by
  Chromium on a canvas (images given as data: URLs), so no imaging library is needed.
- ``plotly_figures``: the figures embedded in a page (``Plotly.newPlot`` calls) as JSON.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# plotly's default colour sequence, which the report's figures use.
TRACE_COLORS = (
    "#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A",
    "#19d3f3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52",
)  # fmt: skip


def chromium() -> str:
    """Chromium's path; skips without it (fails in CI, which must provide it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Debian's chromium is not installed (scripts/test.sh installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def flags(profile: Path, *, loopback: bool = False) -> list[str]:
    """Headless Chromium with no network: everything goes to a dead proxy.

    ``loopback`` lets requests to this machine through (a local Phoenix's UI).
    """
    return [
        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-quic", f"--user-data-dir={profile}", "--hide-scrollbars",
        "--proxy-server=http://127.0.0.1:9",
        *([] if loopback else ["--proxy-bypass-list=<-loopback>"]),
    ]  # fmt: skip


def _run(
    args: list[str], work: Path, timeout: float = 120, *, loopback: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(work)}
    result = subprocess.run(
        [chromium(), *flags(work / "profile", loopback=loopback), *args],
        capture_output=True, text=True, timeout=timeout, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def dump_dom(url: str, work: Path, budget_ms: int = 10_000, *, loopback: bool = False) -> str:
    """The page's DOM once its scripts ran (within ``budget_ms`` of virtual time)."""
    args = [f"--virtual-time-budget={budget_ms}", "--dump-dom", url]
    return _run(args, work, loopback=loopback).stdout


def screenshot(url: str, png: Path, work: Path, size: tuple[int, int] = (1300, 1600)) -> Path:
    _run(
        [
            "--virtual-time-budget=10000",
            f"--window-size={size[0]},{size[1]}",
            f"--screenshot={png}",
            url,
        ],
        work,
    )
    assert png.stat().st_size > 0
    return png


def only_section(page: str, section: str) -> str:
    """The page with every section but ``section`` hidden."""
    rule = f"<style>section:not(#{section}){{display:none!important}}</style>"
    return page.replace("</head>", rule + "</head>", 1)


def screenshot_sections(
    report: Path, sections: tuple[str, ...], out: Path, work: Path
) -> dict[str, Path]:
    """One screenshot per section of ``report``, saved as ``out/<section>.png``."""
    out.mkdir(parents=True, exist_ok=True)
    page = report.read_text(encoding="utf-8")
    shots = {}
    for section in sections:
        copy = work / f"only-{section}.html"
        copy.write_text(only_section(page, section), encoding="utf-8")
        shots[section] = screenshot(copy.as_uri(), out / f"{section}.png", work)
    return shots


_STATS_PAGE = """<!doctype html><html><body><pre id="result">pending</pre><script>
const images = %s;
const colors = %s.map(h => [1, 3, 5].map(i => parseInt(h.slice(i, i + 2), 16)));
function stats(img) {
  const c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext("2d"); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let n = 0, nonWhite = 0, colored = 0, sum = 0, sumSq = 0;
  for (let i = 0; i < d.length; i += 4) {
    const r = d[i], gr = d[i + 1], b = d[i + 2];
    const y = 0.299 * r + 0.587 * gr + 0.114 * b;
    n++; sum += y; sumSq += y * y;
    if (r < 235 || gr < 235 || b < 235) nonWhite++;
    for (const [cr, cg, cb] of colors) {
      if (Math.abs(r - cr) + Math.abs(gr - cg) + Math.abs(b - cb) < 60) { colored++; break; }
    }
  }
  const mean = sum / n;
  const std = Math.sqrt(Math.max(sumSq / n - mean * mean, 0));
  return {width: c.width, height: c.height, non_white: nonWhite / n,
          trace_colored: colored / n, luminance_std: std};
}
Promise.all(Object.entries(images).map(([name, src]) => new Promise((ok, fail) => {
  const img = new Image(); img.onload = () => ok([name, stats(img)]);
  img.onerror = () => fail(name); img.src = src;
}))).then(
  r => { document.getElementById("result").textContent = JSON.stringify(Object.fromEntries(r)); },
  e => { document.getElementById("result").textContent = "error " + e; });
</script></body></html>"""


def pixel_stats(pngs: dict[str, Path], work: Path) -> dict[str, dict[str, float]]:
    """Per PNG: ``non_white`` and ``trace_colored`` shares of pixels, ``luminance_std``."""
    sources = {
        name: "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
        for name, path in pngs.items()
    }
    page = work / "pixel-stats.html"
    page.write_text(_STATS_PAGE % (json.dumps(sources), json.dumps(TRACE_COLORS)))
    dom = dump_dom(page.as_uri(), work, budget_ms=20_000)
    text = dom.split('<pre id="result">', 1)[1].split("</pre>", 1)[0]
    assert text.startswith("{"), text[:200]
    result: dict[str, dict[str, float]] = json.loads(text)
    return result


def plotly_figures(page: str) -> dict[str, dict[str, Any]]:
    """The figures a page draws, by div id: ``{"data": [...], "layout": {...}}``."""
    decoder = json.JSONDecoder()
    figures = {}
    marker = "Plotly.newPlot("
    start = page.find(marker)
    while start != -1:
        at = start + len(marker)
        values = []
        for _ in range(3):
            while page[at] in " \n\t,":
                at += 1
            value, at = decoder.raw_decode(page, at)
            values.append(value)
        div_id, data, layout = values
        figures[div_id] = {"data": data, "layout": layout}
        start = page.find(marker, at)
    return figures
