"""``cnnmft covariance``: propagate an input's pixel-pair covariance through a deep CNN.

Examples::

    cnnmft covariance --depth 1000 --profile delta
    cnnmft covariance --input random --grid 16 16 --depth 100 --out cov.npz --json
"""

from __future__ import annotations

import numpy as np

from cnnmft.commands._common import Output, add_common, check_range, need_memory
from cnnmft.covariance import propagate_covariance
from cnnmft.fourier import variance_profile
from cnnmft.results import Status


def configure(p):
    """Add the arguments of ``cnnmft covariance``."""
    p.add_argument("--act", default="tanh", help="activation (default: tanh)")
    p.add_argument("--sigma-w2", type=float, default=1.760955, help="weight variance")
    p.add_argument("--sigma-b2", type=float, default=0.05, help="bias variance")
    p.add_argument(
        "--profile",
        default="uniform",
        choices=["uniform", "delta", "binomial", "tunable"],
        help="variance profile",
    )
    p.add_argument("--t", type=float, default=None, help="parameter of the tunable profile")
    p.add_argument("--kernel-size", type=int, default=3, help="kernel size (square)")
    p.add_argument(
        "--input",
        default="digits",
        help="'digits' (scikit-learn 8x8 digit 0), 'random' (a normal image on "
        "--grid), or a .npy file of shape (*spatial, c_in)",
    )
    p.add_argument(
        "--grid", type=int, nargs="+", default=[8, 8], help="grid for --input random (default 8 8)"
    )
    p.add_argument("--channels", type=int, default=3, help="channels for --input random")
    p.add_argument("--depth", type=int, default=100, help="number of layers (default 100)")
    p.add_argument(
        "--layers",
        type=int,
        nargs="+",
        default=None,
        help="layers to keep (default: 1, 10, 100, ... and the last)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for --input random")
    p.add_argument("--out", default=None, help="save the result to this .npz or .json file")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar (as -q)")
    add_common(p)


def _input(args):
    if args.input == "digits":
        from sklearn.datasets import load_digits

        img = load_digits().images[0] / 16.0
        return ((img - img.mean()) / img.std())[..., None]
    if args.input == "random":
        if min(args.grid) < 1 or args.channels < 1:
            raise ValueError("--grid and --channels must be positive")
        need_memory(
            8.0 * np.prod(np.array(args.grid, dtype=float)) * args.channels,
            "the --input random image (--grid, --channels)",
        )
        rng = np.random.default_rng(args.seed)
        return rng.normal(size=tuple(args.grid) + (args.channels,))
    return np.load(args.input, allow_pickle=False)


def _layers(args):
    if args.layers is not None:
        for layer in args.layers:
            check_range(layer, "--layers", 0, args.depth)
        return sorted(set(args.layers))
    layers = sorted({1, args.depth} | {10**k for k in range(1, 19) if 10**k < args.depth})
    return [layer for layer in layers if layer <= args.depth]


def run(args) -> int:
    """Run the propagation, print a per-layer summary and optionally save the result."""
    out = Output(args)
    check_range(args.depth, "--depth", 1)
    x = _input(args)
    d = x.ndim - 1
    n_pix = float(np.prod(np.array(x.shape[:-1], dtype=float)))
    layers = _layers(args)
    # every kept layer stores an (N, N) float64 covariance, plus a few working copies
    need_memory(
        8.0 * n_pix**2 * (len(layers) + 4),
        f"{len(layers)} kept layers (--layers) of a {n_pix:.0f}-pixel covariance",
    )
    v = variance_profile(args.profile, args.kernel_size, ndim=d, t=args.t)
    res = propagate_covariance(
        x,
        args.act,
        args.sigma_w2,
        args.sigma_b2,
        v,
        args.depth,
        layers=layers,
        progress=out.progress and not args.no_progress,
    )
    n = int(n_pix)
    status = Status(int(res.status)).name
    out.result(
        f"{args.act}, sigma_w2={args.sigma_w2}, sigma_b2={args.sigma_b2}, {args.profile} "
        f"{v.shape} kernel, input {x.shape}, {res.completed}/{args.depth} layers in "
        f"{res.elapsed:.2f} s (status {status})"
    )
    out.result("  layer      mean q    mean corr   min corr")
    rows = []
    for layer, cov in zip(res.layers, res.cov):
        c = cov.reshape(n, n)
        dg = np.diag(c)
        corr = c / np.sqrt(np.outer(dg, dg))
        rows.append(
            {
                "layer": int(layer),
                "mean_q": float(dg.mean()),
                "mean_corr": float(corr.mean()),
                "min_corr": float(corr.min()),
            }
        )
        out.result(f"  {layer:5d}  {dg.mean():10.6f}  {corr.mean():10.6f}  {corr.min():10.6f}")
    out.data(
        {
            "act": args.act,
            "sigma_w2": args.sigma_w2,
            "sigma_b2": args.sigma_b2,
            "profile": args.profile,
            "input_shape": list(x.shape),
            "depth": args.depth,
            "completed": int(res.completed),
            "seconds": float(res.elapsed),
            "status": status,
            "layers": rows,
        }
    )
    if args.out:
        res.save(args.out)
        out.note(f"result written to {args.out}")
    return 0 if int(res.status) == 0 else 1
