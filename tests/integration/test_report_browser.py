"""report.html of the demo run, opened in a real browser (headless Chromium) as a regulator would open it.

The page must load with no console message at all (no script error, no failed resource: it loads
nothing), and every plot must take up room on the page. The screenshot in ``docs/`` was taken the
same way (see the README).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from tests.chromium import console_lines, run_headless
from tests.integration.conftest import DemoRun

pytestmark = pytest.mark.integration

PLOTS = ("epsilon", "accuracy", "rejections")
PROBE = """<script>
window.addEventListener('load', function () {
  var sizes = {};
  document.querySelectorAll('[data-plot]').forEach(function (figure) {
    var svg = figure.querySelector('svg');
    var box = (svg || figure).getBoundingClientRect();
    sizes[figure.getAttribute('data-plot')] = [box.width, box.height, svg !== null];
  });
  document.body.setAttribute('data-probe', JSON.stringify(sizes));
});
</script>"""
"""Measures each plot after load and writes the sizes into the DOM, which ``--dump-dom`` prints."""


def test_report_html_is_self_contained(demo_run: DemoRun) -> None:
    """report.html names no external resource: no src or href outside the page, no @import, no script."""
    page = (demo_run.run_dir / "report.html").read_text(encoding="utf-8")
    assert re.findall(r'(?:src|href)\s*=\s*["\'](?!#)', page) == []
    assert "@import" not in page and "<script" not in page
    assert all(f'data-plot="{name}"' in page for name in PLOTS)


def test_report_renders_in_chromium_without_console_messages(demo_run: DemoRun, tmp_path: Path) -> None:
    """Headless Chromium loads report.html with no console message and takes a full-page screenshot."""
    shot = tmp_path / "report.png"
    done = run_headless(demo_run.run_dir / "report.html", f"--screenshot={shot}", "--window-size=1280,4000")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_lines(done.stderr) == []
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 50_000, "a blank page compresses to a few kB"


def test_every_plot_has_a_nonzero_size_in_chromium(demo_run: DemoRun, tmp_path: Path) -> None:
    """Each plot's SVG element is laid out with a width and height above zero."""
    page = (demo_run.run_dir / "report.html").read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</head>", PROBE + "</head>", 1), encoding="utf-8")
    done = run_headless(probed, "--dump-dom", "--window-size=1280,4000")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_lines(done.stderr) == []
    found = re.search(r'data-probe="([^"]*)"', done.stdout)
    assert found is not None, "the probe did not run: " + done.stdout[:500]
    sizes = json.loads(html.unescape(found.group(1)))
    assert sorted(sizes) == sorted(PLOTS)
    for name, (width, height, is_svg) in sizes.items():
        assert is_svg and width > 100 and height > 50, f"plot {name}: {width} x {height}"
