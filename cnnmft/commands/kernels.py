"""``cnnmft kernels``: draw a convolution kernel, check its operator spectrum and tap energies.

Examples::

    cnnmft kernels --kind delta --c-out 64 --kernel-size 3 3
    cnnmft kernels --kind block --gain 1.5 --convention 'tf>=1.13' --save k.npy --json k.json
    cnnmft kernels --list-conventions
"""

from __future__ import annotations

import numpy as np

from cnnmft import orthogonal as orth
from cnnmft.commands._common import Output, add_common, need_memory
from cnnmft.conventions import available_conventions, conventions_table, to_sigma_w2
from cnnmft.fourier import variance_profile

KINDS = ("delta", "block", "tunable", "gaussian")


def configure(p):
    """Add the arguments of ``cnnmft kernels``."""
    p.add_argument(
        "--kind",
        choices=KINDS,
        default="block",
        help="delta (Alg. 2), block (Alg. 1), tunable (delta..binomial), gaussian",
    )
    p.add_argument("--c-out", type=int, default=64, help="output channels (default 64)")
    p.add_argument("--c-in", type=int, default=None, help="input channels (default: c_out)")
    p.add_argument(
        "--kernel-size",
        type=int,
        nargs="+",
        default=[3, 3],
        help="spatial kernel size, 1 to 3 numbers (default 3 3)",
    )
    p.add_argument(
        "--sigma-w2",
        type=float,
        default=None,
        help="weight variance sigma_w^2 (default 1, or from --gain)",
    )
    p.add_argument(
        "--gain",
        type=float,
        default=None,
        help="a gain/scale in another framework's convention (needs --convention)",
    )
    p.add_argument(
        "--convention",
        choices=available_conventions(),
        default=None,
        help="convention of --gain (see docs/kernels.md)",
    )
    p.add_argument(
        "-t", "--t", type=float, default=0.25, help="tunable family parameter in [0, 1/2]"
    )
    p.add_argument(
        "--v",
        default="uniform",
        help="Gaussian variance profile: uniform, delta, binomial or tunable (with -t)",
    )
    p.add_argument(
        "--grid",
        type=int,
        nargs="+",
        default=None,
        help="circular grid for the operator spectrum (default 8 per axis)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--save", default=None, help="save the kernel to this .npy file")
    p.add_argument(
        "--list-conventions",
        action="store_true",
        help="print the gain/scale conventions of other frameworks and exit",
    )
    add_common(p)


def run(args) -> int:
    """Draw the kernel, print its diagnostics, optionally save it."""
    out = Output(args)
    if args.list_conventions:
        print(conventions_table())
        return 0

    c_out = args.c_out
    c_in = c_out if args.c_in is None else args.c_in
    ks = tuple(args.kernel_size)
    shape = (c_out, c_in) + ks
    if min(shape) < 1:
        raise ValueError(f"--c-out, --c-in and --kernel-size must be positive; got shape {shape}")
    need_memory(
        8.0 * 3 * np.prod(np.array(shape, dtype=float)),
        f"a kernel of shape {shape} (--c-out, --c-in, --kernel-size)",
    )
    if args.gain is not None:
        if args.convention is None:
            raise ValueError("--gain needs --convention (e.g. --convention 'tf>=1.13')")
        if args.sigma_w2 is not None:
            raise ValueError("give either --sigma-w2 or --gain, not both")
        sigma_w2 = to_sigma_w2(args.gain, args.convention, c_in=c_in, c_out=c_out, kernel_size=ks)
    else:
        sigma_w2 = 1.0 if args.sigma_w2 is None else args.sigma_w2
    if args.kind == "delta":
        kern = orth.delta_orthogonal(shape, sigma_w2, args.seed)
        expected = variance_profile("delta", ks)
    elif args.kind == "block":
        kern = orth.block_orthogonal(shape, sigma_w2, args.seed)
        expected = variance_profile("binomial", ks)
    elif args.kind == "tunable":
        kern = orth.tunable_orthogonal(shape, sigma_w2, args.t, args.seed)
        expected = variance_profile("tunable", ks, t=args.t)
    else:
        t = args.t if args.v == "tunable" else None
        kern = orth.gaussian_kernel(shape, sigma_w2, args.v, args.seed, t=t)
        expected = variance_profile(args.v, ks, t=t)
    grid = tuple(args.grid) if args.grid else tuple(max(8, k) for k in ks)
    s = orth.conv_singular_values(kern, grid)
    energy = orth.tap_energy(kern)
    sw = float(np.sqrt(sigma_w2))
    out.result(
        f"kernel {args.kind}: shape (c_out, c_in, *k) = {shape}, sigma_w2 = {sigma_w2:.6g} "
        f"(sigma_w = {sw:.6g}), seed {args.seed}"
    )
    out.result(
        f"operator singular values on circular grid {grid}: min {s.min():.12g}, max {s.max():.12g}"
    )
    if args.kind != "gaussian" and sw > 0:
        out.result(
            f"  max relative deviation from sigma_w: {np.abs(s / sw - 1).max():.2e} "
            "(exact isometry up to rounding)"
        )
    with np.printoptions(precision=4, suppress=True):
        out.result("tap-energy profile (fraction of ||K||^2 per tap):")
        out.result(str(energy))
        out.result("expected mean-field profile v:")
        out.result(str(expected))
    if args.save:
        np.save(args.save, kern)
        out.note(f"kernel saved to {args.save}")
    out.data(
        {
            "kind": args.kind,
            "shape": list(shape),
            "sigma_w2": sigma_w2,
            "seed": args.seed,
            "grid": list(grid),
            "s_min": float(s.min()),
            "s_max": float(s.max()),
            "tap_energy": energy,
            "expected_profile": expected,
        }
    )
    return 0
