"""The ``cnnmft report`` builder: a folder of figures, their numbers, and one HTML page.

Each section is a module ``cnnmft.report.<name>`` with a ``TITLE`` string and a function
``build(ctx: ReportContext) -> str`` that computes its results, saves figures and numbers through
``ctx`` (and its headline numbers through :meth:`ReportContext.headline`) and returns an HTML
fragment. The page opens with a summary of the headline numbers (what the theory predicts, what
simulations and training measured, which checks passed), then one section per module.

Three sizes:

* ``quick`` (tests): every section on small grids and tiny training runs, seconds each;
* ``default`` (``cnnmft report``): the theory, kernel, spectrum and Monte Carlo sections at
  full resolution and one small training demo, about three minutes on two cores; the
  trainability sweeps are listed with the command that adds them;
* ``full`` (``cnnmft report --full``): everything, with the depth series up to 1,000 layers and
  the trainability sweeps, about 20-25 minutes on two cores.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnmft import __version__
from cnnmft._util import atomic_write_text, progress_bar, write_table
from cnnmft.plotting import save_figure
from cnnmft.report import kernels, modes, phase, spectrum, trainability, training, validation
from cnnmft.report.style import PAGE, figure_style, section_seconds

__all__ = ["SECTIONS", "LEVELS", "DEFAULT_SECTIONS", "ReportContext", "build_report"]

# Order of the story; modules that need an optional extra are skipped with a note.
SECTIONS = ["phase", "modes", "kernels", "spectrum", "validation", "training", "trainability"]
LEVELS = ("quick", "default", "full")
# `cnnmft report` without --full: everything but the sweeps (minutes of training each)
DEFAULT_SECTIONS = ["phase", "modes", "kernels", "spectrum", "validation", "training"]
# sections that train networks: the default report runs them at their quick sizes
_TRAINING = ("training", "trainability")
_MISSING = "\u2014"  # the em dash shown in place of a number that does not exist


@dataclass
class ReportContext:
    """What a report section needs: where to write, how much to compute, and savers.

    Attributes
    ----------
    outdir : Path
        Report folder; figures go to ``outdir/figures``, numbers to ``outdir/data``.
    quick : bool
        Smaller grids and fewer samples (tests, and the training sections of the default
        report).
    rng : int
        Base seed for anything random.
    files : list of str
        Paths (relative to `outdir`) written so far.
    level : {"quick", "default", "full"}
        The report's size (see the module docstring).
    progress : bool
        Show progress bars inside the sections.
    headlines : list of dict
        The numbers of the summary, added by :meth:`headline`.
    """

    outdir: Path
    quick: bool = False
    rng: int = 0
    files: list = field(default_factory=list)
    level: str = "default"
    progress: bool = True
    headlines: list = field(default_factory=list)

    def __post_init__(self):
        self.outdir = Path(self.outdir)
        if self.quick and self.level == "default":
            self.level = "quick"

    @property
    def full(self) -> bool:
        """True for ``cnnmft report --full``."""
        return self.level == "full"

    def figure(self, name: str, fig, caption: str = "", *, wide: bool | None = None) -> str:
        """Save a matplotlib figure as ``figures/<name>.png``; return a ``<figure>`` fragment.

        Figures wider than they are tall by more than 2:1 (or ``wide=True``) span the page;
        the others are shown at half of it, so every figure appears at one of two sizes.
        """
        fig = getattr(fig, "figure", fig)
        w, h = fig.get_size_inches()
        wide = bool(w > 2.0 * h) if wide is None else wide
        path = self.outdir / "figures" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_figure(fig, path, dpi=110)
        rel = path.relative_to(self.outdir).as_posix()
        self.files.append(rel)
        cls = "wide" if wide else "half"
        return (
            f'<figure class="{cls}"><img src="{rel}" alt="{html.escape(caption or name)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def numbers(self, name: str, data: dict) -> str:
        """Save numbers as ``data/<name>.csv`` (equal-length 1-D columns) or ``.npz``/``.json``.

        Returns a link fragment. Columns of equal length go to CSV; anything else (grids) goes to
        a compressed NPZ with the same keys, and scalars to JSON
        (:func:`cnnmft._util.write_table`).
        """
        d = self.outdir / "data"
        d.mkdir(parents=True, exist_ok=True)
        path = write_table(d / name, {k: np.asarray(v) for k, v in data.items()})
        rel = path.relative_to(self.outdir).as_posix()
        self.files.append(rel)
        return f'<p class="data">numbers: <a href="{rel}">{rel}</a></p>'

    def headline(
        self, kind: str, label: str, value, *, ok: bool | None = None, section: str = ""
    ) -> None:
        """Add one number to the summary at the top of the page.

        Parameters
        ----------
        kind : {"theory", "measured", "check"}
            Column of the summary: a prediction, a simulation/training measurement, or a
            check's verdict (`ok` then says pass or fail).
        label : str
            What the number is (plain text).
        value : str or float
            The number (formatted with 4 significant digits when it is a float).
        ok : bool, optional
            Pass (True) or fail (False) for checks.
        section : str
            Section id it links to.
        """
        if kind not in ("theory", "measured", "check"):
            raise ValueError(f"`kind` must be 'theory', 'measured' or 'check'; got {kind!r}")
        self.headlines.append(
            {"kind": kind, "label": label, "value": value, "ok": ok, "section": section}
        )

    def bar(self, total: int, desc: str):
        """A progress bar (tqdm, with ETA) for `total` steps of a section."""
        return progress_bar(total, desc=desc, unit="step", disable=not self.progress, leave=False)


def _fmt(value) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.4g}" if np.isfinite(value) else _MISSING
    return html.escape(str(value))


def _summary_html(headlines) -> str:
    cols = [
        ("theory", "What the theory predicts"),
        ("measured", "What simulation and training measured"),
        ("check", "Checks of theory against simulation"),
    ]
    parts = ['<section id="summary" class="summary"><h2>Summary</h2><div class="cards">']
    for kind, title in cols:
        rows = [h for h in headlines if h["kind"] == kind]
        if not rows:
            continue
        parts.append(f'<div class="card"><h3>{title}</h3><table>')
        for h in rows:
            mark = ""
            if h["ok"] is not None:
                mark = (
                    '<span class="pass">pass</span>'
                    if h["ok"]
                    else '<span class="fail">FAIL</span>'
                )
            link = f' <a href="#{h["section"]}">&rarr;</a>' if h["section"] else ""
            parts.append(
                f"<tr><td>{html.escape(h['label'])}{link}</td>"
                f'<td class="num">{_fmt(h["value"])} {mark}</td></tr>'
            )
        parts.append("</table></div>")
    parts.append("</div></section>")
    return "".join(parts)


_NAN_CELL = re.compile(r"<td([^>]*)>\s*(?:nan|NaN|inf|-inf|None)\s*</td>")


def _no_nan_cells(page: str) -> tuple[str, bool]:
    """Replace table cells holding nan/inf by an em dash with a footnote mark."""
    new, n = _NAN_CELL.subn(rf'<td\1>{_MISSING}<sup><a href="#dash">*</a></sup></td>', page)
    return new, n > 0


# training and trainability import torch and dask only inside build()
_MODULES = {
    "phase": phase,
    "modes": modes,
    "kernels": kernels,
    "spectrum": spectrum,
    "validation": validation,
    "training": training,
    "trainability": trainability,
}


def _import_section(name):
    """The section module `name`."""
    return _MODULES[name]


def _read_numbers(ctx, stem):
    """The numbers a section saved as ``data/<stem>.*`` (CSV columns, NPZ or JSON), or None."""
    d = ctx.outdir / "data"
    if (d / f"{stem}.csv").exists():
        with open(d / f"{stem}.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        return {k: [r[k] for r in rows] for k in (rows[0] if rows else {})}
    if (d / f"{stem}.npz").exists():
        with np.load(d / f"{stem}.npz", allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    if (d / f"{stem}.json").exists():
        return json.loads((d / f"{stem}.json").read_text())
    return None


def _table_rows(frag):
    """The first HTML table of a fragment as ``(header, rows)`` of plain strings."""
    m = re.search(r"<table>(.*?)</table>", frag, flags=re.S)
    if not m:
        return [], []
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", m.group(1), flags=re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, flags=re.S)
        rows.append([html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
    return (rows[0], rows[1:]) if rows else ([], [])


def _training_headlines(name, ctx, frag):
    """Summary numbers of the training sections, read back from what they show and save."""
    if name == "training":
        head, rows = _table_rows(frag)
        if "test accuracy" not in head or not rows:
            return
        col = head.index("test accuracy")
        depth_of = [re.search(r"depth (\d+)", r[0]) for r in rows]
        depths = [int(d.group(1)) for d in depth_of if d]
        if not depths:
            return
        deepest = max(depths)
        runs = [
            f"{r[0].rsplit(', depth', 1)[0]} {r[col]}"
            for r, d in zip(rows, depth_of)
            if d and int(d.group(1)) == deepest
        ]
        ctx.headline(
            "measured",
            f"test accuracy at depth {deepest} (small training demo)",
            "; ".join(runs),
            section="training",
        )
    elif name == "trainability":
        t = _read_numbers(ctx, "trainability_sweep")
        if t and "agreement" in t:
            agree = float(np.asarray(t["agreement"]))
            ctx.headline(
                "measured",
                "trainability sweep: cells where 'trained' agrees with depth <= 6 xi_c",
                agree,
                section="trainability",
            )


def _run_section(name, ctx, i, n, progress):
    """Build one section; return ``(html, ok)`` (ok False when skipped for a missing extra)."""
    t1 = time.perf_counter()
    mod = _import_section(name)
    if progress:
        print(f"[{i}/{n}] {mod.TITLE} (about {section_seconds(name, ctx.level)})", flush=True)
    sub = (
        dataclasses.replace(ctx, quick=True)
        if (ctx.level == "default" and name in _TRAINING)
        else ctx
    )
    try:
        frag = mod.build(sub)
    except ImportError as exc:  # an optional extra (torch, dask) is missing
        if progress:
            print(f"      skipped: {exc}", flush=True)
        return (
            f'<section id="{name}"><h2>{html.escape(mod.TITLE)}</h2><p class="note">'
            f"skipped: {html.escape(str(exc))} (install the extras: "
            "<code>pip install cnnmft[torch,distributed]</code>)</p></section>"
        ), False
    _training_headlines(name, ctx, frag)
    seconds = time.perf_counter() - t1
    if progress:
        print(f"      done in {seconds:.1f} s", flush=True)
    return (
        f'<section id="{name}"><h2>{html.escape(mod.TITLE)}</h2>\n{frag}'
        f'<p class="timing">computed in {seconds:.1f} s</p></section>'
    ), True


def build_report(
    outdir="report", *, quick=False, full=False, sections=None, rng=0, progress=True
) -> Path:
    """Compute the report's sections and write ``outdir/index.html``.

    Parameters
    ----------
    outdir : str or Path
        Folder to write (created if needed).
    quick : bool
        Every section on small grids and sample counts (seconds each; used by the tests).
    full : bool
        Everything at full size, the trainability sweeps included (about 20-25 minutes on two
        cores). Default (neither): the theory, kernel, spectrum and Monte Carlo sections at full
        resolution and one small training demo (about 3 minutes on two cores).
    sections : list of str, optional
        Subset of :data:`SECTIONS` to build (default: all for `quick` and `full`,
        :data:`DEFAULT_SECTIONS` otherwise).
    rng : int
        Base seed.
    progress : bool
        Print one line per section and show progress bars inside the long ones.

    Returns
    -------
    Path
        The path of ``index.html``.

    Examples
    --------
    >>> index = build_report("report", quick=True, sections=["kernels"])  # doctest: +SKIP
    >>> index.name  # doctest: +SKIP
    'index.html'
    """
    if quick and full:
        raise ValueError("`quick` and `full` exclude each other")
    level = "quick" if quick else "full" if full else "default"
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    if sections is None:
        names = list(DEFAULT_SECTIONS if level == "default" else SECTIONS)
    else:
        names = list(sections)
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        raise ValueError(f"`sections` has unknown entries {unknown}; known: {SECTIONS}")
    ctx = ReportContext(outdir=outdir, quick=quick, rng=rng, level=level, progress=progress)
    t0 = time.perf_counter()
    parts, toc = [], []
    with figure_style():
        for i, name in enumerate(names):
            frag, _ = _run_section(name, ctx, i + 1, len(names), progress)
            parts.append(frag)
            toc.append(f'<li><a href="#{name}">{html.escape(_import_section(name).TITLE)}</a></li>')
    left_out = [s for s in SECTIONS if s not in names]
    if left_out and sections is None:
        parts.append(
            '<section id="more"><h2>More in the full report</h2><p>Not computed '
            "here: "
            + ", ".join(html.escape(_import_section(s).TITLE) for s in left_out)
            + ". Run <code>cnnmft report --full</code> (about 20-25 minutes on two "
            "cores; trainability sweeps on a local Dask cluster).</p></section>"
        )
    seconds = time.perf_counter() - t0
    body, had_missing = _no_nan_cells("\n".join(parts))
    foot = (
        f'<p id="dash" class="note">{_MISSING}<sup>*</sup> marks a number that does not '
        "exist for that row (e.g. a KS distance for a check that compares no spectrum, or "
        "a depth scale at a critical point, where it is infinite).</p>"
        if had_missing
        else ""
    )
    page = PAGE.format(
        title="cnnmft report",
        version=html.escape(__version__),
        seconds=seconds,
        level=level,
        summary=_summary_html(ctx.headlines),
        toc="".join(toc),
        body=body,
        footnotes=foot,
    )
    index = atomic_write_text(outdir / "index.html", page)
    summary = {
        "level": level,
        "seconds": round(seconds, 1),
        "sections": names,
        "headlines": [
            {
                **h,
                "value": h["value"]
                if not isinstance(h["value"], float) or np.isfinite(h["value"])
                else None,
            }
            for h in ctx.headlines
        ],
    }
    atomic_write_text(
        outdir / "data" / "summary.json", json.dumps(summary, indent=1, default=str) + "\n"
    )
    return index
