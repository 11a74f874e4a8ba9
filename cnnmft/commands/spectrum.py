"""``cnnmft spectrum``: free-probability Jacobian spectrum (dynamical isometry).

Examples::

    cnnmft spectrum --depth 16 1000                   # orthogonal against Gaussian weights
    cnnmft spectrum --q-star 1e-4 --depth 10000 --weights orthogonal --json
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnmft import plotting
from cnnmft._util import write_table
from cnnmft.commands._common import Output, add_common, check_range
from cnnmft.meanfield import critical_point
from cnnmft.results import Status
from cnnmft.spectrum import jacobian_spectrum


def configure(p):
    """Add the arguments of ``cnnmft spectrum``."""
    p.add_argument("--act", default="tanh", help="activation (default: tanh)")
    p.add_argument(
        "--sigma-w2",
        type=float,
        default=None,
        help="weight variance (default: critical for --q-star, else 1.05)",
    )
    p.add_argument(
        "--sigma-b2",
        type=float,
        default=None,
        help="bias variance (default: critical for --q-star, else 2.01e-5)",
    )
    p.add_argument(
        "--q-star",
        type=float,
        default=None,
        help="pick the critical point (chi_1 = 1) with this q*, e.g. 1/depth",
    )
    p.add_argument("--depth", type=int, nargs="+", default=[16], help="depth(s) L (default 16)")
    p.add_argument(
        "--weights",
        nargs="+",
        default=["orthogonal", "gaussian"],
        choices=["orthogonal", "gaussian"],
        help="weight ensemble(s)",
    )
    p.add_argument("--points", type=int, default=2000, help="grid size (default 2000)")
    p.add_argument(
        "--grid",
        default="auto",
        choices=["auto", "linear", "log"],
        help="grid spacing (default auto)",
    )
    p.add_argument(
        "--quantiles",
        type=float,
        nargs="*",
        default=[0.01, 0.5, 0.99],
        help="eigenvalue quantiles to print",
    )
    p.add_argument(
        "--out",
        default=None,
        help="write lam, density, cdf, sv, sv_density to this .csv/.npz/.json "
        "(one file per case: the name gets _<weights>_L<depth>)",
    )
    p.add_argument("--plot", default=None, help="save a figure of the singular-value densities")
    add_common(p)


def run(args) -> int:
    """Print moments, edges and quantiles; optionally write numbers and a figure."""
    out = Output(args)
    for L in args.depth:
        check_range(L, "--depth", 1, 10**6)
    check_range(args.points, "--points", 16, 10**7)
    sw, sb = args.sigma_w2, args.sigma_b2
    if args.q_star is not None:
        cp = critical_point(args.act, args.q_star)
        sw = float(np.ravel(cp.sigma_w2)[0]) if sw is None else sw
        sb = float(np.ravel(cp.sigma_b2)[0]) if sb is None else sb
    sw = 1.05 if sw is None else sw
    sb = 2.01e-5 if sb is None else sb
    results, rows = [], []
    out.result(f"{args.act}, sigma_w2 = {sw:.8g}, sigma_b2 = {sb:.6g}")
    out.result(
        f"{'weights':>10s} {'L':>7s} {'q*':>10s} {'m1':>10s} {'variance':>11s} "
        f"{'lambda_max':>11s} {'s_max':>9s} {'status':>10s}  quantiles"
    )
    for L in args.depth:
        for w in args.weights:
            s = jacobian_spectrum(
                args.act, sw, sb, L, w, n_points=args.points, grid=args.grid, q_star=args.q_star
            )
            qs = s.quantile(np.array(args.quantiles)) if args.quantiles else []
            qtxt = " ".join(f"{p:g}:{v:.4g}" for p, v in zip(args.quantiles, qs))
            status = Status(int(s.status)).name
            out.result(
                f"{w:>10s} {L:>7d} {s.q_star:10.4g} {s.m1:10.4g} {s.variance:11.4g} "
                f"{s.lambda_max:11.5g} {s.sv_max:9.4g} {status:>10s}  {qtxt}"
                + ("  (normalised by m1)" if s.normalized else "")
            )
            results.append(s)
            rows.append(
                {
                    "weights": w,
                    "depth": int(L),
                    "q_star": float(s.q_star),
                    "m1": float(s.m1),
                    "variance": float(s.variance),
                    "lambda_max": float(s.lambda_max),
                    "sv_max": float(s.sv_max),
                    "status": status,
                    "normalized": bool(s.normalized),
                    "quantiles": dict(zip(map(str, args.quantiles), map(float, qs))),
                }
            )
            if args.out:
                p = Path(args.out)
                target = p.with_name(f"{p.stem}_{w}_L{L}{p.suffix or '.npz'}")
                _write(target, s)
                out.note(f"  numbers written to {target}")
    out.data({"act": args.act, "sigma_w2": sw, "sigma_b2": sb, "cases": rows})
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")  # the command line chooses the backend, never the library
        fig = plotting.sv_densities(results)
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110, bbox_inches="tight")
        out.note(f"figure written to {args.plot}")
    return 0 if all(r.status >= 0 for r in results) else 1


def _write(path, s):
    cols = dict(lam=s.lam, density=s.density, cdf=s.cdf, sv=s.sv, sv_density=s.sv_density)
    if path.suffix == ".csv":
        write_table(path, cols)
    elif path.suffix == ".json":
        scalars = dict(m1=s.m1, variance=s.variance, lambda_max=s.lambda_max, status=s.status)
        write_table(path, {**cols, **scalars})
    else:
        s.save(path)
