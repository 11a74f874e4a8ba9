"""``cnnmft phase``: phase diagram over a (sigma_w2, sigma_b2) grid, figure and numbers.

Examples::

    cnnmft phase --act erf --out phase_erf         # phase_erf.npz + phase_erf.png
    cnnmft phase --sigma-w2 0.5 4 40 --sigma-b2 0 0.5 20 --json
"""

from __future__ import annotations

import time

import numpy as np

from cnnmft.commands._common import Output, add_common, need_memory
from cnnmft.phase import phase_diagram
from cnnmft.results import status_counts


def configure(p):
    """Add the arguments of ``cnnmft phase``."""
    p.add_argument("--act", default="tanh", help="activation name (default: tanh)")
    p.add_argument(
        "--sigma-w2",
        type=float,
        nargs=3,
        default=[0.5, 4.0, 120],
        metavar=("MIN", "MAX", "N"),
        help="grid of sigma_w2 (default: 0.5 4 120)",
    )
    p.add_argument(
        "--sigma-b2",
        type=float,
        nargs=3,
        default=[0.0, 0.5, 60],
        metavar=("MIN", "MAX", "N"),
        help="grid of sigma_b2 (default: 0 0.5 60)",
    )
    p.add_argument("--quantity", default="xi_c", help="quantity to draw (default: xi_c)")
    p.add_argument("--out", default="phase", help="output prefix: writes PREFIX.npz and .png")
    add_common(p)


def run(args) -> int:
    """Compute, save numbers (.npz) and the figure (.png); print a summary."""
    out = Output(args)

    def grid(spec, flag):
        lo, hi, n = spec
        if n < 1 or n != int(n):
            raise ValueError(f"{flag} N must be a positive integer, got {n:g}")
        return int(n), lo, hi

    (nw, *w), (nb, *b) = grid(args.sigma_w2, "--sigma-w2"), grid(args.sigma_b2, "--sigma-b2")
    # about a dozen float64 fields per point are kept
    need_memory(8.0 * 16 * nw * nb, f"a {nw} x {nb} phase diagram (--sigma-w2/--sigma-b2 N)")
    sw, sb = np.linspace(*w, nw), np.linspace(*b, nb)
    t0 = time.perf_counter()
    pd = phase_diagram(args.act, sw, sb)
    out.result(pd.summary())
    out.note(f"computed {sw.size * sb.size} points in {time.perf_counter() - t0:.2f} s")
    out.note(f"numbers: {pd.save(args.out + '.npz')}")
    import matplotlib

    matplotlib.use("Agg")  # the command line chooses the backend, never the library
    import matplotlib.pyplot as plt

    ax = pd.plot(quantity=args.quantity)
    ax.figure.savefig(args.out + ".png", dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    out.note(f"figure: {args.out}.png")
    out.data(
        {
            "act": args.act,
            "shape": [nw, nb],
            "status": status_counts(pd.status),
            "chaotic_fraction": float(np.mean(pd.chi_1 > 1.0)),
            "files": [args.out + ".npz", args.out + ".png"],
            "summary": pd.summary(),
        }
    )
    return 0 if (pd.status >= 0).all() else 1
