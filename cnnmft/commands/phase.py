"""``cnnmft phase``: phase diagram over a (sigma_w2, sigma_b2) grid, figure and numbers."""


def configure(p):
    """Add the arguments of ``cnnmft phase``."""
    p.add_argument("--act", default="tanh", help="activation name (default: tanh)")
    p.add_argument("--sigma-w2", type=float, nargs=3, default=[0.5, 4.0, 120],
                   metavar=("MIN", "MAX", "N"), help="grid of sigma_w2 (default: 0.5 4 120)")
    p.add_argument("--sigma-b2", type=float, nargs=3, default=[0.0, 0.5, 60],
                   metavar=("MIN", "MAX", "N"), help="grid of sigma_b2 (default: 0 0.5 60)")
    p.add_argument("--quantity", default="xi_c", help="quantity to draw (default: xi_c)")
    p.add_argument("--out", default="phase", help="output prefix: writes PREFIX.npz and .png")


def run(args) -> int:
    """Compute, save numbers (.npz) and the figure (.png); print a summary."""
    import time

    import numpy as np

    from cnnmft.phase import phase_diagram

    def grid(spec, name):
        lo, hi, n = spec
        if n < 1 or n != int(n):
            raise ValueError(f"`--{name}` N must be a positive integer, got {n}")
        return np.linspace(lo, hi, int(n))

    sw, sb = grid(args.sigma_w2, "sigma-w2"), grid(args.sigma_b2, "sigma-b2")
    t0 = time.perf_counter()
    pd = phase_diagram(args.act, sw, sb)
    print(pd.summary())
    print(f"computed {sw.size * sb.size} points in {time.perf_counter() - t0:.2f} s")
    print(f"numbers: {pd.save(args.out + '.npz')}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = pd.plot(args.quantity)
    ax.figure.savefig(args.out + ".png", dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    print(f"figure: {args.out}.png")
    return 0 if (pd.status >= 0).all() else 1
