"""Report section: theory against Monte Carlo on the numpy CNN (:mod:`cnnmft.checks`).

Also the page that ``cnnmft validate`` writes (:func:`write_validation_report`): the table as
CSV, Markdown and HTML, and one overlay figure per check with its numbers.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from cnnmft import __version__, plotting
from cnnmft._util import atomic_write_text, write_table
from cnnmft.checks import CHECKS, Verdict, run_checks
from cnnmft.report.style import PAGE, figure_style

__all__ = ["TITLE", "build", "write_validation_report", "QUICK_CHECKS", "DEFAULT_CHECKS"]

TITLE = "Does the theory hold? Mean field against Monte Carlo"

# report --quick must stay well under a minute: a representative subset
QUICK_CHECKS = ["fixed_point", "trajectories", "modes_uniform"]
# the default report: one or two checks of every group, small networks (about a minute)
DEFAULT_CHECKS = [
    "fixed_point",
    "trajectories",
    "covariance_uniform",
    "modes_uniform",
    "modes_delta",
    "jacobian_fc_orthogonal",
    "jacobian_conv_delta_orthogonal",
    "jacobian_conv_gaussian",
]
_DASH = "\u2014"


def _cell(x, fmt):
    return f"<td class=num>{x:{fmt}}</td>" if np.isfinite(x) else f"<td class=num>{_DASH}</td>"


def _table_html(rows) -> str:
    out = [
        "<table><tr><th>check</th><th>verdict</th><th>max |z|</th><th>z crit</th>"
        "<th>KS</th><th>KS crit</th><th>s</th><th>note</th></tr>"
    ]
    for r in rows:
        cls = "pass" if r["status"] == Verdict.PASS else "fail"
        out.append(
            f"<tr><td>{html.escape(r['name'])}</td><td class={cls}>{r['status']}</td>"
            + _cell(r["z"], ".2f")
            + _cell(r["z_crit"], ".2f")
            + _cell(r["ks"], ".3f")
            + _cell(r["ks_crit"], ".3f")
            + _cell(r["seconds"], ".1f")
            + f"<td>{html.escape(r['note'])}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _log_axis_for_spikes(fig, res):
    """Spectra spanning decades (Gaussian weights): a log count axis keeps the bulk visible."""
    ev = np.asarray(res.curves.get("eigenvalues", ()), dtype=float)
    ev = ev[ev > 0]
    if res.group == "jacobian" and ev.size and ev.max() > 50 * np.median(ev):
        for ax in fig.axes:
            ax.set_yscale("log")
            ax.set_ylabel("density (log scale)")


def build(ctx) -> str:
    """Run the validation checks and return the table and overlay figures."""
    names = {"quick": QUICK_CHECKS, "default": DEFAULT_CHECKS}.get(ctx.level, list(CHECKS))
    bar = ctx.bar(len(names), "Monte Carlo checks")

    def step(i, n, res):
        bar.set_postfix_str(f"{res.name}: {res.status}")
        bar.update()

    result = run_checks(names, quick=not ctx.full, rng=ctx.rng, progress=step)
    bar.close()
    rows = result.table()
    sizes = "full-size networks" if ctx.full else "small networks"
    parts = [
        "<p>Every prediction is compared with a finite numpy CNN (circular padding). A check "
        "passes when every compared number is within the Bonferroni threshold of its Monte Carlo "
        "standard error, and a spectrum's Kolmogorov-Smirnov distance is no larger than the "
        "distance between two independent simulated networks. This report ran "
        f"{len(names)} of the {len(CHECKS)} checks on {sizes}; <code>cnnmft validate</code> "
        "runs all of them at full size.</p>",
        _table_html(rows),
    ]
    cols = {
        k: np.array([r[k] for r in rows])
        for k in ("name", "status", "z", "z_crit", "ks", "ks_crit", "n_compared")
    }
    parts.append(ctx.numbers("validation_table", cols))
    for res in result.checks:
        fig = plotting.check(res)
        if fig is None:
            continue
        _log_axis_for_spikes(fig, res)
        parts.append(ctx.figure(f"validation_{res.name}", fig, res.description, wide=False))
        parts.append(
            ctx.numbers(f"validation_{res.name}", {k: np.asarray(v) for k, v in res.curves.items()})
        )
    passed = sum(c.passed for c in result.checks)
    ctx.headline(
        "measured",
        "Monte Carlo checks passed",
        f"{passed} of {len(result.checks)}",
        section="validation",
    )
    for c in result.checks:
        if c.status != Verdict.NOT_AVAILABLE:
            value = (
                f"KS {c.ks:.3f} <= {c.ks_crit:.3f}"
                if np.isfinite(c.ks) and not np.isfinite(c.z)
                else f"|z| {c.z:.2f} <= {c.z_crit:.2f}"
            )
            ctx.headline(
                "check",
                f"Monte Carlo: {c.name.replace('_', ' ')}",
                value if c.passed else value.replace("<=", ">"),
                ok=c.passed,
                section="validation",
            )
    return "\n".join(parts)


def write_validation_report(result, outdir, *, figures=True) -> Path:
    """Write ``table.csv``, ``table.md``, ``index.html`` and overlay figures into `outdir`.

    Parameters
    ----------
    result : cnnmft.checks.ValidationResult
    outdir : str or Path
    figures : bool
        Also draw one overlay figure per check (``figures/<name>.png`` and its numbers).

    Returns
    -------
    Path
        ``outdir/index.html``.

    Examples
    --------
    >>> from cnnmft.checks import run_checks
    >>> res = run_checks(["fixed_point"], quick=True)  # doctest: +SKIP
    >>> write_validation_report(res, "validation").name  # doctest: +SKIP
    'index.html'
    """
    outdir = Path(outdir)
    (outdir / "figures").mkdir(parents=True, exist_ok=True)
    rows = result.table()
    write_table(outdir / "table.csv", rows or {"name": []})
    atomic_write_text(outdir / "table.md", result.markdown() + "\n")
    figs = []
    if figures:
        with figure_style():
            for r in result.checks:
                fig = plotting.check(r)
                if fig is None:
                    continue
                _log_axis_for_spikes(fig, r)
                path = outdir / "figures" / f"{r.name}.png"
                plotting.save_figure(fig, path, {k: np.asarray(v) for k, v in r.curves.items()})
                figs.append((path.name, r.description))
    body = [_table_html(rows)]
    body += [
        f'<figure class="half"><img src="figures/{f}" alt="{html.escape(d)}">'
        f"<figcaption>{html.escape(d)}</figcaption></figure>"
        for f, d in figs
    ]
    size = "small networks (--quick)" if result.quick else "full-size networks"
    summary = (
        f'<section id="summary" class="summary"><h2>Summary</h2><p>{len(result.checks)} '
        f"checks on {size}: {sum(c.passed for c in result.checks)} passed, "
        f"{len(result.failed)} failed ({', '.join(result.failed) or 'none'}).</p>"
        "</section>"
    )
    page = PAGE.format(
        title="cnnmft validate: theory against Monte Carlo",
        version=__version__,
        seconds=result.seconds,
        level="validation",
        summary=summary,
        toc="",
        footnotes="",
        body='<section id="validation"><h2>Theory against Monte Carlo</h2>'
        + "\n".join(body)
        + "</section>",
    )
    return atomic_write_text(outdir / "index.html", page)
