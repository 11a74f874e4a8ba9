"""``cnnmft fixed-point``: q*, c*, chi_1, chi_q, chi_c, xi_q, xi_c at given variances."""


def configure(p):
    """Add the arguments of ``cnnmft fixed-point``."""
    p.add_argument("--act", default="tanh", help="activation name (default: tanh)")
    p.add_argument("--sigma-w2", type=float, nargs="+", required=True, help="weight variance(s)")
    p.add_argument("--sigma-b2", type=float, nargs="+", default=[0.05],
                   help="bias variance(s), broadcast against --sigma-w2 (default: 0.05)")
    p.add_argument("--out", help="also save the result (.npz or .json)")


def run(args) -> int:
    """Print one row per point; exit 1 if any point failed to converge."""
    import numpy as np

    from cnnmft import Status, fixed_point

    fp = fixed_point(args.act, np.array(args.sigma_w2), np.array(args.sigma_b2))
    cols = ("sigma_w2", "sigma_b2", "q_star", "c_star", "chi_1", "chi_q", "chi_c", "xi_q", "xi_c")
    print(" ".join(f"{c:>12}" for c in cols) + "  status")
    for i in np.ndindex(fp.q_star.shape):
        vals = [getattr(fp, c)[i] for c in cols]
        print(" ".join(f"{v:12.6g}" for v in vals) + f"  {Status(int(fp.status[i])).name}")
    if args.out:
        print(f"saved {fp.save(args.out)}")
    return 0 if (fp.status >= 0).all() else 1
