"""``cnnmft critical``: points of the order-chaos line, given sigma_b2 or q*."""


def configure(p):
    """Add the arguments of ``cnnmft critical``."""
    p.add_argument("--act", default="tanh", help="activation name (default: tanh)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--sigma-b2", type=float, nargs="+", help="bias variance(s)")
    g.add_argument("--q-star", type=float, nargs="+",
                   help="target fixed point(s); e.g. 1/depth as in the paper's demo")
    p.add_argument("--out", help="also save the result (.npz or .json)")


def run(args) -> int:
    """Print sigma_w2, sigma_b2, q*, chi_q per point."""
    import numpy as np

    from cnnmft import Status, critical_point, critical_sigma_w2

    if args.q_star is not None:
        cp = critical_point(args.act, np.array(args.q_star))
    else:
        cp = critical_sigma_w2(args.act, np.array(args.sigma_b2))
    print(f"{'sigma_w2':>14} {'sigma_b2':>14} {'q_star':>14} {'chi_q':>12}  status")
    for i in range(cp.sigma_w2.size):
        print(f"{cp.sigma_w2[i]:14.9g} {cp.sigma_b2[i]:14.9g} {cp.q_star[i]:14.9g} "
              f"{cp.chi_q[i]:12.6g}  {Status(int(cp.status[i])).name}")
    if args.out:
        print(f"saved {cp.save(args.out)}")
    return 0 if (cp.status >= 0).all() else 1
