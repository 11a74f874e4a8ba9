"""Look of the report: the HTML page and its CSS, one matplotlib style, section time estimates.

The report (with the command line) is the only place that chooses a matplotlib backend
(``Agg``, files only) and a style; the library's plotting functions never do.
"""

from __future__ import annotations

import contextlib

__all__ = ["PAGE", "CSS", "figure_style", "section_seconds"]

CSS = """
:root{--ink:#1d232b;--muted:#5b6570;--line:#d9dee4;--soft:#f5f7f9;--accent:#1f5fa8;
--ok:#1c7c3c;--bad:#b3261e}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--ink);line-height:1.55;font-size:16px;max-width:1120px;margin:0 auto;
padding:1.5rem 1.25rem 4rem}
h1{font-size:1.9rem;margin:.2rem 0 .4rem}h2{font-size:1.35rem;margin:2.4rem 0 .6rem;
padding-top:.6rem;border-top:1px solid var(--line)}h3{font-size:1.02rem;margin:.2rem 0 .5rem}
p{max-width:75ch}a{color:var(--accent)}code{background:var(--soft);padding:0 .25em;
border-radius:3px;font-size:.92em}
.lead{color:var(--muted)}
nav ol{columns:2;column-gap:2.5rem;padding-left:1.2rem;margin:.4rem 0 0}
.cards{display:grid;grid-template-columns:1fr;gap:.9rem}
.card{border:1px solid var(--line);border-radius:8px;padding:.7rem 1rem;background:#fff}
.card table{width:100%;font-size:.93rem;margin:.2rem 0}
.card td{border:0;border-bottom:1px solid var(--soft)}.card td:first-child{width:72%}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem;
font-variant-numeric:tabular-nums}
th,td{border:1px solid var(--line);padding:.25rem .55rem;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}tr:nth-child(even) td{background:#fbfcfd}
td.num{text-align:right;white-space:nowrap}
figure{margin:1.2rem 0;display:inline-block;vertical-align:top}
figure.wide{width:100%}figure.half{width:calc(50% - .6rem);margin-right:.6rem}
figure img{width:100%;height:auto;border:1px solid var(--line);border-radius:4px;
background:#fff}
figcaption{font-size:.88rem;color:var(--muted);margin-top:.35rem;max-width:none}
.data,.timing{font-size:.82rem;color:var(--muted);margin:.2rem 0}
.note{font-size:.88rem;color:var(--muted)}
.pass{color:var(--ok);font-weight:600}.fail{color:var(--bad);font-weight:700}
@media (max-width:760px){figure.half{width:100%;margin-right:0}nav ol{columns:1}}
"""

PAGE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>"""
    + CSS.replace("{", "{{").replace("}", "}}")
    + """</style></head>
<body><header><h1>{title}</h1>
<p class="lead">Mean-field theory of deep convolutional networks (Xiao, Bahri, Sohl-Dickstein,
Schoenholz, Pennington, ICML 2018), computed by cnnmft {version} on the embedded 8x8 digits
({level} report, built in {seconds:.0f} s). Every figure's numbers are in <code>data/</code>.</p>
<nav><ol>{toc}</ol></nav></header>
{summary}
<main>
{body}
</main>
<footer>{footnotes}</footer>
</body></html>
"""
)

# one look for every figure of the report
_RC = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "font.size": 9.5,
    "axes.titlesize": 10,
    "axes.labelsize": 9.5,
    "legend.fontsize": 8,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "image.cmap": "viridis",
}


@contextlib.contextmanager
def figure_style():
    """Draw with the Agg backend (files only) and the report's style inside this block."""
    import matplotlib

    matplotlib.use("Agg")  # the report writes files: it chooses the backend, the library never
    import matplotlib.pyplot as plt

    with plt.rc_context(_RC):
        yield


# rough seconds per section on a two-core machine (shown next to each section's title)
_SECONDS = {
    "phase": (5, 12, 25),
    "modes": (3, 8, 10),
    "kernels": (3, 8, 10),
    "spectrum": (5, 15, 25),
    "validation": (20, 60, 500),
    "training": (15, 15, 300),
    "trainability": (50, 50, 700),
}


def section_seconds(name: str, level: str) -> str:
    """Human estimate of a section's run time at `level` (``"about 15 s"``, ``"about 8 min"``)."""
    quick, default, full = _SECONDS.get(name, (10, 30, 60))
    s = {"quick": quick, "default": default, "full": full}.get(level, default)
    return f"{s} s" if s < 90 else f"{round(s / 60)} min"
