"""``cnnmft modes``: depth scale of every spatial Fourier mode for a variance profile.

Examples::

    cnnmft modes --profile binomial
    cnnmft modes --profile tunable --t 0.1 --sigma-w2 1.5 1.76 --out modes.csv
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnmft._util import write_table
from cnnmft.commands._common import Output, add_common, need_memory
from cnnmft.fourier import mode_depth_scales, variance_profile


def configure(p):
    """Add the arguments of ``cnnmft modes``."""
    p.add_argument("--act", default="tanh", help="activation (default: tanh)")
    p.add_argument(
        "--sigma-w2",
        type=float,
        nargs="+",
        default=[1.760955],
        help="weight variance(s) (default: 1.760955, tanh critical at sigma_b2=0.05)",
    )
    p.add_argument("--sigma-b2", type=float, default=0.05, help="bias variance (default: 0.05)")
    p.add_argument(
        "--profile",
        default="uniform",
        choices=["uniform", "delta", "binomial", "tunable"],
        help="variance profile v of the kernel (default: uniform)",
    )
    p.add_argument("--t", type=float, default=None, help="parameter of the tunable profile")
    p.add_argument(
        "--kernel-size",
        type=int,
        nargs="+",
        default=[3],
        help="kernel size per axis (one value: a square kernel; default 3)",
    )
    p.add_argument(
        "--grid",
        type=int,
        nargs="+",
        default=[8, 8],
        help="spatial grid size per axis (default: 8 8)",
    )
    p.add_argument(
        "--out", default=None, help="write every mode's numbers to this .csv, .json or .npz file"
    )
    p.add_argument("--top", type=int, default=8, help="how many distinct modes to print")
    add_common(p)


def run(args) -> int:
    """Print the per-mode depth scales (and write them when --out is given)."""
    out = Output(args)
    if args.out and Path(args.out).suffix not in (".csv", ".json", ".npz"):
        raise ValueError(f"--out must end in .csv, .json or .npz, got {args.out!r}")
    grid = tuple(args.grid)
    ks = args.kernel_size[0] if len(args.kernel_size) == 1 else tuple(args.kernel_size)
    if isinstance(ks, tuple) and len(ks) != len(grid):
        raise ValueError(f"--kernel-size has {len(ks)} entries but --grid has {len(grid)}")
    if min(grid) < 1:
        raise ValueError(f"--grid must be positive integers; got {' '.join(map(str, grid))}")
    n_modes = float(np.prod(np.array(grid, dtype=float)))
    need_memory(
        8.0 * 12 * n_modes * len(args.sigma_w2),
        f"{n_modes:.3g} modes (--grid) x {len(args.sigma_w2)} --sigma-w2 values",
    )
    v = variance_profile(args.profile, ks, ndim=len(grid), t=args.t)
    res = mode_depth_scales(args.act, np.array(args.sigma_w2), args.sigma_b2, v, grid)
    freqs = np.stack(np.unravel_index(np.arange(res.lam.size), grid), axis=1)
    rows = []
    for i, sw in enumerate(args.sigma_w2):
        xc = res.xi_c[i].ravel()
        xq = res.xi_q[i].ravel()
        for j, f in enumerate(freqs):
            lam = res.lam.ravel()[j]
            rows.append(
                [sw, args.sigma_b2, *f.tolist(), lam.real, lam.imag, abs(lam), xc[j], xq[j]]
            )
    table = np.array(rows, dtype=np.float64)
    names = (
        ["sigma_w2", "sigma_b2"]
        + [f"f{a + 1}" for a in range(len(grid))]
        + ["lam_re", "lam_im", "abs_lam", "xi_c", "xi_q"]
    )
    out.result(f"{args.act}, profile {args.profile} {ks}, grid {grid}, sigma_b2 = {args.sigma_b2}")
    for i, sw in enumerate(args.sigma_w2):
        out.result(
            f"sigma_w2 = {sw}: chi_c = {float(res.chi_c[i]):.6g}, "
            f"chi_q = {float(res.chi_q[i]):.6g}, q* = {float(res.q_star[i]):.6g}"
        )
        mag = np.abs(res.lam).ravel()
        order = np.argsort(-mag, kind="stable")
        seen = []
        out.result("   |lambda_f|      xi_c,f      xi_q,f   (first frequency)")
        for j in order:
            m = round(float(mag[j]), 10)
            if m in seen:
                continue
            seen.append(m)
            xcj = res.xi_c[i].ravel()[j]
            xqj = res.xi_q[i].ravel()[j]
            out.result(f"  {mag[j]:10.6f}  {xcj:10.4g}  {xqj:10.4g}   {tuple(freqs[j].tolist())}")
            if len(seen) >= args.top:
                break
    out.data(
        {
            "act": args.act,
            "profile": args.profile,
            "grid": list(grid),
            "sigma_b2": args.sigma_b2,
            "chi_c": np.ravel(res.chi_c),
            "q_star": np.ravel(res.q_star),
            "modes": {n: table[:, i] for i, n in enumerate(names)},
        }
    )
    if args.out:
        _write(args.out, names, table)
        out.note(f"numbers written to {args.out}")
    return 0


def _write(path, names, table):
    write_table(path, {n: table[:, i] for i, n in enumerate(names)})  # .csv, .json or .npz
