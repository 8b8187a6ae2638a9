"""report.html in a real headless browser: no console errors, every image rendered, a
screenshot. Needs Debian's ``chromium`` (installed here with apt-get when we are root); the
module is skipped, saying what was tried, when it cannot be had."""

from __future__ import annotations

import base64
import re
import time

import pytest

from harness import names
from harness.reports.stability import build_report
from tests.browser import check_page, chromium_version, find_or_install_chromium
from tests.test_report import MISSING_SAMPLES, SEARCH, SEEDS, STUDY, _make_run, _png, study_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium():
    tried: list[str] = []
    t = time.perf_counter()
    path = find_or_install_chromium(tried)
    if path is None:
        pytest.skip("no headless Chromium for the browser test; tried: " + "; ".join(tried))
    print(f"\n{chromium_version(path)} at {path} ({time.perf_counter() - t:.1f}s to find"
          f"/install; {'; '.join(tried)})")
    return path


@pytest.fixture(scope="module")
def report_html(tmp_path_factory, request):
    """report.html of a small study (two variants, seeds and search phases, sample images,
    one run without its samples artifact), built from a hand-made MLflow store."""
    tmp = tmp_path_factory.mktemp("browser_store")
    client, _, exp, parent = study_store(tmp, getattr(request.config, "cache", None), STUDY)
    png = _png(tmp / names.ARTIFACT_FINAL_SAMPLES)
    for variant, runs in SEEDS.items():
        for seed, modes in runs:
            _make_run(client, exp, parent, variant, seed, names.PHASE_SEEDS, modes, "0.0004",
                      png, with_samples=(variant, seed) != MISSING_SAMPLES)
        seed, modes, lr_d = SEARCH[variant]
        _make_run(client, exp, parent, variant, seed, names.PHASE_SEARCH, modes, lr_d, png)
    client.set_terminated(parent, "FINISHED")
    paths = build_report(client, exp, parent, tmp_path_factory.mktemp("report"), attach=False)
    return paths["html"]


def test_report_renders_in_chromium(chromium, report_html, tmp_path):
    shot = tmp_path / "report.png"
    t = time.perf_counter()
    page = check_page(chromium, report_html, shot)
    print(f"\nscreenshot: {shot} ({time.perf_counter() - t:.1f}s in Chromium)")
    tags = len(re.findall(r"<img\b", report_html.read_text(), re.IGNORECASE))
    assert tags > 0
    assert page.images == tags
    assert page.broken_images == []
    assert page.console_errors == []
    assert page.resource_errors == []
    assert page.title == f"Stability report: {STUDY}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    assert page.ok


def test_check_catches_a_broken_image_and_a_script_error(chromium, report_html, tmp_path):
    page = report_html.read_text()
    tags = len(re.findall(r"<img\b", page, re.IGNORECASE))
    # one plot points at a missing file, another at a PNG that is there (relative paths
    # resolve against the page's folder, as in the original)
    data = re.findall(r'src="(data:image/png;base64,[^"]*)"', page)
    assert len(data) >= 2
    page = page.replace(data[0], "no_such_plot.png", 1).replace(data[1], "present.png", 1)
    (tmp_path / "present.png").write_bytes(base64.b64decode(data[1].split(",", 1)[1]))
    page = page.replace("</body>", "<script>throw new Error('boom')</script>\n</body>", 1)
    bad = tmp_path / "report.html"
    bad.write_text(page)
    result = check_page(chromium, bad, tmp_path / "bad.png")
    assert result.images == tags
    assert result.broken_images == ["no_such_plot.png"]
    assert len(result.console_errors) == 1 and "boom" in result.console_errors[0]
    assert any("no_such_plot.png" in r for r in result.resource_errors)
    assert not result.ok
    assert not list(tmp_path.glob(".*harness-check*"))  # the injected copy is cleaned up
