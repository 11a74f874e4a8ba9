"""The documentation: theory citations resolve, the site builds with warnings as errors."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THEORY = ROOT / "docs" / "theory.md"
CITE = re.compile(
    r"docs/theory\.md[,;:]?\s*((?:sections?|Sec\.|§)\s*\d[\d.]*"
    r"(?:\s*(?:,|and|-|–|to|&)\s*(?:§\s*)?\d[\d.]*)*)"
)
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _headings() -> set[str]:
    out = set()
    for line in THEORY.read_text().splitlines():
        m = re.match(r"#{2,3} (\d+(?:\.\d+)?)[. ]", line)
        if m:
            out.add(m.group(1))
    return out


def _sources():
    for folder in ("cnnmft", "tests", "docs", "notebooks", "benchmarks"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".md", ".ipynb") and path.is_file():
                yield path


def test_theory_page_has_the_numbered_sections():
    have = _headings()
    need = {
        "1",
        "2.1",
        "2.2",
        "2.3",
        "2.4",
        "2.5",
        "2.6",
        "2.7",
        "3",
        "4.1",
        "4.2",
        "4.3",
        "5",
        "6.1",
        "6.2",
        "6.3",
        "6.4",
        "6.5",
        "6.6",
        "7",
    }
    assert need <= have, sorted(need - have)


def test_every_theory_citation_resolves():
    have = _headings()
    bad = []
    for path in _sources():
        for m in CITE.finditer(path.read_text(errors="replace")):
            for num in NUMBER.findall(m.group(1)):
                if num.rstrip(".") not in have:
                    bad.append(f"{path.relative_to(ROOT)}: section {num}")
    assert not bad, bad


def test_nothing_cites_a_file_outside_the_repository():
    outside = (
        "THEORY" + ".md",
        "DESIGN" + ".md",
        "LAYOUT" + ".md",
        "ANCHORS" + ".md",
        "STYLE" + ".md",
        "shared/" + "docs",
    )
    bad = []
    for path in list(_sources()) + [ROOT / "README.md"]:
        if path.exists():
            text = path.read_text(errors="replace")
            bad += [f"{path.relative_to(ROOT)}: {name}" for name in outside if name in text]
    assert not bad, bad


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="needs the docs extra")
def test_site_builds_strict(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    gallery = tmp_path / "site" / "gallery"
    assert len(list(gallery.glob("*.png"))) >= 5
    api = (tmp_path / "site" / "api" / "meanfield" / "index.html").read_text()
    assert "fixed_point" in api and "Parameters" in api
