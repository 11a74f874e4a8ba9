"""``cnnmft covariance``: propagate an input's pixel-pair covariance through a deep CNN."""

from __future__ import annotations


def configure(p):
    """Add the arguments of ``cnnmft covariance``."""
    p.add_argument("--act", default="tanh", help="activation (default: tanh)")
    p.add_argument("--sigma-w2", type=float, default=1.760955, help="weight variance")
    p.add_argument("--sigma-b2", type=float, default=0.05, help="bias variance")
    p.add_argument("--profile", default="uniform",
                   choices=["uniform", "delta", "binomial", "tunable"], help="variance profile")
    p.add_argument("--t", type=float, default=None, help="parameter of the tunable profile")
    p.add_argument("--kernel-size", type=int, default=3, help="kernel size (square)")
    p.add_argument("--input", default="digits",
                   help="'digits' (scikit-learn 8x8 digit 0), 'random' (a normal image on "
                        "--grid), or a .npy file of shape (*spatial, c_in)")
    p.add_argument("--grid", type=int, nargs="+", default=[8, 8],
                   help="grid for --input random (default 8 8)")
    p.add_argument("--channels", type=int, default=3, help="channels for --input random")
    p.add_argument("--depth", type=int, default=100, help="number of layers (default 100)")
    p.add_argument("--layers", type=int, nargs="+", default=None,
                   help="layers to keep (default: 1, 10, 100, ... and the last)")
    p.add_argument("--seed", type=int, default=0, help="seed for --input random")
    p.add_argument("--out", default=None, help="save the result to this .npz or .json file")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _input(args):
    import numpy as np

    if args.input == "digits":
        from sklearn.datasets import load_digits

        img = load_digits().images[0] / 16.0
        return ((img - img.mean()) / img.std())[..., None]
    if args.input == "random":
        rng = np.random.default_rng(args.seed)
        return rng.normal(size=tuple(args.grid) + (args.channels,))
    return np.load(args.input)


def run(args) -> int:
    """Run the propagation, print a per-layer summary and optionally save the result."""
    import numpy as np

    from cnnmft.covariance import propagate_covariance
    from cnnmft.fourier import variance_profile

    x = _input(args)
    d = x.ndim - 1
    v = variance_profile(args.profile, args.kernel_size, ndim=d, t=args.t)
    layers = args.layers
    if layers is None:
        layers = sorted({1, args.depth} | {10 ** k for k in range(1, 6) if 10 ** k < args.depth})
        layers = [layer for layer in layers if layer <= args.depth]
    res = propagate_covariance(x, args.act, args.sigma_w2, args.sigma_b2, v, args.depth,
                               layers=layers, progress=not args.no_progress)
    N = int(np.prod(x.shape[:-1]))
    print(f"{args.act}, sigma_w2={args.sigma_w2}, sigma_b2={args.sigma_b2}, {args.profile} "
          f"{v.shape} kernel, input {x.shape}, {res.completed}/{args.depth} layers in "
          f"{res.elapsed:.2f} s (status {res.status})")
    print("  layer      mean q    mean corr   min corr")
    for layer, cov in zip(res.layers, res.cov):
        c = cov.reshape(N, N)
        dg = np.diag(c)
        corr = c / np.sqrt(np.outer(dg, dg))
        print(f"  {layer:5d}  {dg.mean():10.6f}  {corr.mean():10.6f}  {corr.min():10.6f}")
    if args.out:
        res.save(args.out)
        print(f"result written to {args.out}")
    return 0 if res.status == 0 else 1
