"""The report page in a real headless browser (Debian's Chromium driven by Playwright).

Every image must load (``naturalWidth > 0``), the page must log no console error, no failed
request and no script error, every section built must be present with the summary first, and
no table cell may show ``nan``. Skipped, with the reason, where Chromium or the ``playwright``
package cannot be found (``apt-get install chromium``; ``pip install ".[test]"``).
"""

from __future__ import annotations

import shutil

import pytest

from cnnmft.report import DEFAULT_SECTIONS, build_report

CHROMIUM = next(
    (
        p
        for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
        if p and shutil.which(p)
    ),
    None,
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on this machine (Debian: apt-get install chromium)"
)


def _inspect(index, profile):
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="the playwright package is not installed "
        "(it comes with the test extra: pip install '.[test]')",
    )
    problems, console = [], []
    with sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            page = ctx.new_page()
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
            page.goto(index.resolve().as_uri(), wait_until="load")
            info = page.evaluate("""() => ({
                images: Array.from(document.images).map(
                    i => [i.getAttribute('src'), i.complete ? i.naturalWidth : 0]),
                sections: Array.from(document.querySelectorAll('section[id]')).map(s => s.id),
                cells: Array.from(document.querySelectorAll('td')).map(c => c.textContent.trim()),
                summaryRows: document.querySelectorAll('#summary tr').length,
                overflow: document.documentElement.scrollWidth
                          > document.documentElement.clientWidth + 1,
            })""")
        finally:
            ctx.close()
    errors = [text for kind, text in console if kind == "error"]
    return info, problems + errors


def _assert_page(info, problems, sections):
    assert not problems, problems
    assert info["images"], "no image on the page"
    broken = [src for src, width in info["images"] if not width]
    assert not broken, f"images that did not load: {broken}"
    assert info["sections"][0] == "summary"
    for name in sections:
        assert name in info["sections"], f"section {name!r} missing"
    assert info["summaryRows"] >= 3
    bad = [c for c in info["cells"] if c.lower() in ("nan", "inf", "-inf", "none")]
    assert not bad, f"table cells without a number: {bad}"
    assert not info["overflow"], "the page scrolls sideways (something is too wide)"


def test_quick_report_in_a_browser(tmp_path):
    sections = ["phase", "kernels"]
    index = build_report(tmp_path / "report", quick=True, sections=sections, progress=False)
    info, problems = _inspect(index, tmp_path / "profile")
    _assert_page(info, problems, sections)


@pytest.mark.slow
def test_default_report_in_a_browser(tmp_path):
    """The README's main command (``cnnmft report``) as a person opens it."""
    pytest.importorskip("torch")
    index = build_report(tmp_path / "report", progress=False)
    html = index.read_text()
    assert "cnnmft report --full" in html  # the sweeps are one flag away, and the page says so
    info, problems = _inspect(index, tmp_path / "profile")
    _assert_page(info, problems, DEFAULT_SECTIONS + ["more"])
