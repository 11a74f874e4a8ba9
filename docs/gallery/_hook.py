"""MkDocs hook building the gallery: runs every ``docs/gallery/plot_*.py``, embeds its figures.

Each example script is run in its own process with a headless matplotlib backend
(``MPLBACKEND=Agg``) and the environment variable ``CNNMFT_GALLERY_OUT`` naming an empty
folder; the script saves its figures there (PNG, with their numbers beside them through
:func:`cnnmft.plotting.save_figure`). The hook then adds one page per script (title and text
from the script's docstring, the figures, links to the numbers, the source) and an index page.
A script that fails, or saves no figure, fails the build.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

HERE = Path(__file__).resolve().parent
TIMEOUT = 240  # seconds allowed per example


def _scripts() -> list[Path]:
    return sorted(HERE.glob("plot_*.py"))


_RUNNER = """
import json, os, runpy, sys, time
import matplotlib.pyplot as plt
times = {}
for script, out in json.loads(sys.argv[1]):
    os.environ["CNNMFT_GALLERY_OUT"] = out
    os.chdir(out)
    t0 = time.perf_counter()
    runpy.run_path(script, run_name="__main__")
    plt.close("all")
    times[script] = time.perf_counter() - t0
print(json.dumps(times))
"""


def _run_all(jobs: list[tuple[Path, Path]]) -> dict[str, float]:
    """Run the examples one after another in one fresh process (imports paid once)."""
    env = dict(os.environ, MPLBACKEND="Agg", CNNMFT_QUIET="1")
    arg = json.dumps([[str(s), str(o)] for s, o in jobs])
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, arg],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * max(len(jobs), 1),
    )
    if proc.returncode:
        raise PluginError(f"a gallery example failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _name(script: Path, p: Path) -> str:
    """Site name of an output file: prefixed by the script's stem so pages never collide."""
    return p.name if p.name.startswith(script.stem) else f"{script.stem}_{p.name}"


def _page(script: Path, images: list[Path], numbers: list[Path], seconds: float) -> str:
    source = script.read_text()
    doc = ast.get_docstring(ast.parse(source)) or script.stem
    title, _, text = doc.partition("\n")
    body = [f"# {title.strip().rstrip('.')}", "", text.strip(), ""]
    for img in images:
        body += [f"![{img.stem}]({_name(script, img)})", ""]
    if numbers:
        body += [
            "Numbers behind the figures: "
            + ", ".join(f"[{p.name}]({_name(script, p)})" for p in numbers),
            "",
        ]
    body += [
        f"Source: [{script.name}]({script.name}) (ran in {seconds:.0f} s when this page was built)",
        "",
        "```python",
        source.rstrip(),
        "```",
        "",
    ]
    return "\n".join(body)


def _listed(nav) -> set[str]:
    out: set[str] = set()
    for item in nav or []:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            out |= _listed(value)
        elif isinstance(value, str):
            out.add(value)
    return out


def on_config(config):
    """List the example pages under "Gallery", and any guide page not yet in the navigation.

    A new ``docs/<capability>.md`` joins the "User guide" section under its first heading, so
    adding a page never breaks the strict build.
    """
    pages = ["gallery/index.md"] + [f"gallery/{s.stem}.md" for s in _scripts()]
    listed = _listed(config.nav)
    extra = []
    for md in sorted(HERE.parent.glob("*.md")):
        if md.name not in listed:
            head = next(
                (ln[2:].strip() for ln in md.read_text().splitlines() if ln.startswith("# ")),
                md.stem,
            )
            extra.append({head: md.name})
    for i, item in enumerate(config.nav or []):
        if isinstance(item, dict) and "Gallery" in item:
            config.nav[i] = {"Gallery": pages}
        if isinstance(item, dict) and "User guide" in item:
            item["User guide"] = list(item["User guide"]) + extra
    return config


_REPO_LINK = re.compile(r"\]\(\.\./((?:benchmarks|notebooks|examples)/[^)\s]+)\)")


def _repo_files(files, config) -> None:
    """Copy the repository files a guide page links to (``../benchmarks/...``) into the site.

    A guide page may show a figure or table kept with the benchmarks; on GitHub the relative link
    works as written, in the site the file is served under ``repo/`` (see :func:`on_page_markdown`).
    """
    root = HERE.parent.parent
    for md in HERE.parent.glob("*.md"):
        for rel in _REPO_LINK.findall(md.read_text()):
            src = root / rel
            if src.is_file() and files.get_file_from_path(f"repo/{rel}") is None:
                files.append(File.generated(config, f"repo/{rel}", abs_src_path=str(src)))


def on_page_markdown(markdown, page, config, files):
    """Point links to repository files (``../benchmarks/...``) at their copies in the site."""
    if "/" in page.file.src_uri:
        return markdown  # only the top-level guide pages link into the repository
    return _REPO_LINK.sub(lambda m: f"](repo/{m.group(1)})", markdown)


def on_files(files, config):
    """Run the examples and add their pages, figures and numbers to the site."""
    _repo_files(files, config)
    tmp = Path(tempfile.mkdtemp(prefix="cnnmft-gallery-"))
    jobs = [(script, tmp / script.stem) for script in _scripts()]
    for _, out in jobs:
        out.mkdir()
    times = _run_all(jobs)
    entries = []
    for script, out in jobs:
        images = sorted(out.glob("*.png"))
        if not images:
            raise PluginError(f"gallery example {script.name} saved no figure")
        numbers = sorted(p for p in out.iterdir() if p.suffix in (".csv", ".json", ".npz"))
        for p in images + numbers:
            files.append(File.generated(config, f"gallery/{_name(script, p)}", abs_src_path=str(p)))
        page = _page(script, images, numbers, times[str(script)])
        files.append(File.generated(config, f"gallery/{script.stem}.md", content=page))
        doc = ast.get_docstring(ast.parse(script.read_text())) or script.stem
        entries.append(
            (script.stem, doc.partition("\n")[0].strip().rstrip("."), _name(script, images[0]))
        )
    index = [
        "# Gallery",
        "",
        "Every figure here is made by running the example script on its page when the site "
        "is built, so the pictures always match the code. Each script saves its numbers "
        "next to its figures.",
        "",
    ]
    for stem, title, first in entries:
        index += [f"## [{title}]({stem}.md)", "", f"[![{title}]({first})]({stem}.md)", ""]
    files.append(File.generated(config, "gallery/index.md", content="\n".join(index)))
    return files
