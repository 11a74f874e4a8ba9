"""Report section: theory against Monte Carlo on the numpy CNN (:mod:`cnnmft.validate`)."""

from __future__ import annotations

import html

import numpy as np

TITLE = "Does the theory hold? Mean field against Monte Carlo"

# report --quick must stay well under a minute: a representative subset
_QUICK = ["fixed_point", "trajectories", "modes_uniform"]


def build(ctx) -> str:
    """Run the validation checks (quick sizes) and return the table and overlay figures."""
    from cnnmft.validate import plot_check, run_checks

    names = _QUICK if ctx.quick else None
    result = run_checks(names, quick=True, rng=ctx.rng)
    rows = result.table()
    parts = [
        "<p>Every prediction is compared with a finite numpy CNN (circular padding). A check "
        "passes when every compared number is within the Bonferroni threshold of its Monte Carlo "
        "standard error, and a spectrum's Kolmogorov-Smirnov distance is no larger than the "
        "distance between two independent simulated networks. Run <code>cnnmft validate</code> "
        "for the full sizes.</p>",
        "<table><tr><th>check</th><th>status</th><th>max |z|</th><th>z crit</th><th>KS</th>"
        "<th>KS crit</th><th>note</th></tr>",
    ]
    for r in rows:
        parts.append(
            f"<tr><td>{html.escape(r['name'])}</td><td>{r['status']}</td><td>{r['z']:.2f}</td>"
            f"<td>{r['z_crit']:.2f}</td><td>{r['ks']:.3f}</td><td>{r['ks_crit']:.3f}</td>"
            f"<td>{html.escape(r['note'])}</td></tr>")
    parts.append("</table>")
    cols = {k: np.array([r[k] for r in rows]) for k in ("name", "status", "z", "z_crit", "ks",
                                                          "ks_crit", "n_compared")}
    parts.append(ctx.numbers("validation_table", cols))
    for res in result.checks:
        fig = plot_check(res)
        if fig is None:
            continue
        parts.append(ctx.figure(f"validation_{res.name}", fig, res.description))
        flat = {k: np.asarray(v) for k, v in res.curves.items()}
        parts.append(ctx.numbers(f"validation_{res.name}", flat))
    return "\n".join(parts)
