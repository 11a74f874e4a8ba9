"""``cnnmft critical``: points of the order-chaos line, given sigma_b2 or q*.

Examples::

    cnnmft critical --sigma-b2 0.05
    cnnmft critical --q-star 1e-4            # the critical point for a 10,000-layer network
"""

from __future__ import annotations

import numpy as np

from cnnmft import Status, critical_point, critical_sigma_w2
from cnnmft.commands._common import Output, add_common


def configure(p):
    """Add the arguments of ``cnnmft critical``."""
    p.add_argument("--act", default="tanh", help="activation name (default: tanh)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--sigma-b2", type=float, nargs="+", help="bias variance(s)")
    g.add_argument(
        "--q-star",
        type=float,
        nargs="+",
        help="target fixed point(s); e.g. 1/depth as in the paper's demo",
    )
    p.add_argument("--out", help="also save the result (.npz or .json)")
    add_common(p)


def run(args) -> int:
    """Print sigma_w2, sigma_b2, q*, chi_q per point."""
    out = Output(args)
    if args.q_star is not None:
        cp = critical_point(args.act, np.array(args.q_star))
    else:
        cp = critical_sigma_w2(args.act, np.array(args.sigma_b2))
    out.result(f"{'sigma_w2':>14} {'sigma_b2':>14} {'q_star':>14} {'chi_q':>12}  status")
    rows = []
    for i in range(cp.sigma_w2.size):
        status = Status(int(cp.status[i])).name
        out.result(
            f"{cp.sigma_w2[i]:14.9g} {cp.sigma_b2[i]:14.9g} {cp.q_star[i]:14.9g} "
            f"{cp.chi_q[i]:12.6g}  {status}"
        )
        rows.append(
            {
                "sigma_w2": float(cp.sigma_w2[i]),
                "sigma_b2": float(cp.sigma_b2[i]),
                "q_star": float(cp.q_star[i]),
                "chi_q": float(cp.chi_q[i]),
                "status": status,
            }
        )
    out.data({"act": args.act, "points": rows})
    if args.out:
        out.note(f"saved {cp.save(args.out)}")
    return 0 if (cp.status >= 0).all() else 1
