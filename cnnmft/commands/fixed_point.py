"""``cnnmft fixed-point``: q*, c*, chi_1, chi_q, chi_c, xi_q, xi_c at given variances.

Examples::

    cnnmft fixed-point --sigma-w2 1.5 2.5 --sigma-b2 0.05
    cnnmft fixed-point --act erf --sigma-w2 1 2 3 --json        # numbers for a script
"""

from __future__ import annotations

import numpy as np

from cnnmft import Status, fixed_point
from cnnmft.commands._common import Output, add_common

COLUMNS = ("sigma_w2", "sigma_b2", "q_star", "c_star", "chi_1", "chi_q", "chi_c", "xi_q", "xi_c")


def configure(p):
    """Add the arguments of ``cnnmft fixed-point``."""
    p.add_argument("--act", default="tanh", help="activation name (default: tanh)")
    p.add_argument("--sigma-w2", type=float, nargs="+", required=True, help="weight variance(s)")
    p.add_argument(
        "--sigma-b2",
        type=float,
        nargs="+",
        default=[0.05],
        help="bias variance(s), broadcast against --sigma-w2 (default: 0.05)",
    )
    p.add_argument("--out", help="also save the result (.npz or .json)")
    add_common(p)


def run(args) -> int:
    """Print one row per point; exit 1 if any point failed to converge."""
    out = Output(args)
    fp = fixed_point(args.act, np.array(args.sigma_w2), np.array(args.sigma_b2))
    out.result(" ".join(f"{c:>12}" for c in COLUMNS) + "  status")
    rows = []
    for i in np.ndindex(fp.q_star.shape):
        vals = [float(getattr(fp, c)[i]) for c in COLUMNS]
        status = Status(int(fp.status[i])).name
        out.result(" ".join(f"{v:12.6g}" for v in vals) + f"  {status}")
        rows.append(dict(zip(COLUMNS, vals), status=status))
    out.data({"act": args.act, "points": rows})
    if args.out:
        out.note(f"saved {fp.save(args.out)}")
    return 0 if (fp.status >= 0).all() else 1
