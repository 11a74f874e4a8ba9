"""The ``cnnmft report`` builder: a folder of figures, their numbers, and one HTML page.

Each section is a module ``cnnmft.report.<name>`` with a ``TITLE`` string and a function
``build(ctx: ReportContext) -> str`` that computes its results, saves figures and numbers through
``ctx`` and returns an HTML fragment. Add a section by adding its module name to ``SECTIONS``.
"""

from __future__ import annotations

import csv
import html
import importlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["SECTIONS", "ReportContext", "build_report"]

# Order of the story; modules that need an optional extra are skipped with a note.
SECTIONS = ["phase", "modes", "kernels", "spectrum", "validation", "training", "trainability"]


@dataclass
class ReportContext:
    """What a report section needs: where to write, how much to compute, and savers.

    Attributes
    ----------
    outdir : Path
        Report folder; figures go to ``outdir/figures``, numbers to ``outdir/data``.
    quick : bool
        Smaller grids and fewer samples (used by the tests).
    rng : int
        Base seed for anything random.
    files : list of str
        Paths (relative to `outdir`) written so far.
    """

    outdir: Path
    quick: bool = False
    rng: int = 0
    files: list = field(default_factory=list)

    def figure(self, name: str, fig, caption: str = "") -> str:
        """Save a matplotlib figure as ``figures/<name>.png``; return an ``<figure>`` fragment."""
        import matplotlib.pyplot as plt

        path = self.outdir / "figures" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        rel = path.relative_to(self.outdir).as_posix()
        self.files.append(rel)
        return (f'<figure><img src="{rel}" alt="{html.escape(name)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def numbers(self, name: str, data: dict) -> str:
        """Save numbers as ``data/<name>.csv`` (equal-length 1-D columns) or ``.npz``/``.json``.

        Returns a link fragment. Columns of equal length go to CSV; anything else (grids) goes to
        a compressed NPZ with the same keys, and scalars to JSON.
        """
        d = self.outdir / "data"
        d.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.asarray(v) for k, v in data.items()}
        if all(a.ndim == 0 for a in arrays.values()):
            path = d / f"{name}.json"
            path.write_text(json.dumps({k: a.item() for k, a in arrays.items()}, indent=1))
        elif (all(a.ndim == 1 for a in arrays.values())
              and len({a.shape for a in arrays.values()}) == 1):
            path = d / f"{name}.csv"
            with open(path, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(list(arrays))
                for row in zip(*arrays.values()):
                    w.writerow([repr(float(x))
                                if np.ndim(x) == 0 and np.asarray(x).dtype.kind == "f" else x
                                for x in row])
        else:
            path = d / f"{name}.npz"
            np.savez_compressed(path, **arrays)
        rel = path.relative_to(self.outdir).as_posix()
        self.files.append(rel)
        return f'<p class="data">numbers: <a href="{rel}">{rel}</a></p>'


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>cnnmft report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}}
img{{max-width:100%}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px}}
figure{{margin:1em 0}} .data{{font-size:small;color:#555}}</style></head>
<body><h1>cnnmft report</h1>
<p>Mean-field theory of deep convolutional networks (Xiao, Bahri, Sohl-Dickstein, Schoenholz,
Pennington, ICML 2018), computed by cnnmft {version}. Built in {seconds:.1f} s.</p>
<ul>{toc}</ul>
{body}
</body></html>
"""


def build_report(outdir="report", *, quick=False, sections=None, rng=0, progress=True) -> Path:
    """Compute every report section and write ``outdir/index.html``.

    Parameters
    ----------
    outdir : str or Path
        Folder to write (created if needed).
    quick : bool
        Use small grids and sample counts (seconds instead of minutes).
    sections : list of str, optional
        Subset of :data:`SECTIONS` to build (default: all).
    rng : int
        Base seed.
    progress : bool
        Print one line per section.

    Returns
    -------
    Path
        The path of ``index.html``.
    """
    from cnnmft import __version__

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    names = SECTIONS if sections is None else list(sections)
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        raise ValueError(f"`sections` has unknown entries {unknown}; known: {SECTIONS}")
    ctx = ReportContext(outdir=outdir, quick=quick, rng=rng)
    t0 = time.perf_counter()
    parts, toc = [], []
    for i, name in enumerate(names):
        t1 = time.perf_counter()
        try:
            mod = importlib.import_module(f"cnnmft.report.{name}")
        except ImportError as exc:
            parts.append(f'<h2 id="{name}">{name}</h2><p>skipped: {html.escape(str(exc))}</p>')
            continue
        if progress:
            print(f"[{i + 1}/{len(names)}] {mod.TITLE} ...", flush=True)
        try:
            frag = mod.build(ctx)
        except ImportError as exc:  # an optional extra (torch, dask) is missing
            parts.append(f'<h2 id="{name}">{html.escape(mod.TITLE)}</h2><p>skipped: '
                         f"{html.escape(str(exc))} (install the extras: "
                         "<code>pip install cnnmft[torch,distributed]</code>)</p>")
            if progress:
                print(f"      skipped: {exc}", flush=True)
            continue
        parts.append(f'<h2 id="{name}">{html.escape(mod.TITLE)}</h2>\n{frag}')
        toc.append(f'<li><a href="#{name}">{html.escape(mod.TITLE)}</a></li>')
        if progress:
            print(f"      done in {time.perf_counter() - t1:.1f} s", flush=True)
    page = _PAGE.format(version=__version__, seconds=time.perf_counter() - t0,
                        toc="".join(toc), body="\n".join(parts))
    index = outdir / "index.html"
    index.write_text(page)
    return index
