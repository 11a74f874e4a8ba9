"""Benchmark: free-probability Jacobian spectrum vs a dense Monte Carlo Jacobian, same run.

cnnmft: ``jacobian_spectrum`` with a 2,000-point density at depth 10,000 (tanh at the critical
point (1.05, 2.01e-5)), orthogonal and Gaussian weights; first call (numba cache load) and warm
calls (median of repeats).

Baseline: the Monte Carlo spectrum of the same network, done the only way that gives a density
without the theory: build J = D_L W_L ... D_1 W_1 densely at width N and take its SVD. Depth
10,000 is out of reach, so we time `n_layers` layers at width N and extrapolate the per-layer cost
linearly (honest: the cost per layer -- one Haar QR or Gaussian draw, one N x N matmul -- is
independent of depth), plus the final SVD, which is measured. One draw of N eigenvalues gives a
histogram with O(1/sqrt(N)) noise; the theory gives the density itself.

Run: ``python benchmarks/bench_spectrum.py [--width 256] [--layers 32] [--repeat 3]``.
Timings on a shared, loaded machine are inflated (the CPU is shared by several processes);
compare the ratios, which were measured in the same run.

The benchmark suite (``python -m benchmarks``, ``benchmarks/_suite_cases.py``) times the same
case (``jacobian_spectrum``) idle and under a controlled load, using the baseline defined here;
this script prints more detail.
"""

import argparse
import math
import statistics
import time

import numpy as np


def _haar(n, rng):
    z = rng.standard_normal((n, n))
    q, r = np.linalg.qr(z)
    return q * np.sign(np.diag(r))


def mc_per_layer(width, n_layers, weights, q, sw, sb, rng):
    x = np.tanh(rng.standard_normal(width) * math.sqrt(q))
    J = np.eye(width)
    t0 = time.perf_counter()
    for _ in range(n_layers):
        if weights == "orthogonal":
            W = math.sqrt(sw) * _haar(width, rng)
        else:
            W = rng.standard_normal((width, width)) * math.sqrt(sw / width)
        h = W @ x + rng.standard_normal(width) * math.sqrt(sb)
        J = (1 - np.tanh(h) ** 2)[:, None] * (W @ J)
        x = np.tanh(h)
    t_layers = time.perf_counter() - t0
    t0 = time.perf_counter()
    np.linalg.svd(J, compute_uv=False)
    t_svd = time.perf_counter() - t0
    return t_layers / n_layers, t_svd


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--depth", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    t0 = time.perf_counter()
    import cnnmft  # noqa: F401
    from cnnmft.spectrum import jacobian_spectrum

    t_import = time.perf_counter() - t0
    sw, sb = 1.05, 2.01e-5
    from cnnmft import fixed_point

    q = float(np.ravel(fixed_point("tanh", sw, sb).q_star)[0])
    print(
        f"import cnnmft: {t_import:.2f} s; q* = {q:.6f}; depth {args.depth}, {args.points} points"
    )
    print("NOTE: shared, loaded machine -- absolute times are inflated; ratios are same-run.\n")
    rng = np.random.default_rng(0)
    for weights in ("orthogonal", "gaussian"):
        t0 = time.perf_counter()
        s = jacobian_spectrum("tanh", sw, sb, args.depth, weights, n_points=args.points)
        first = time.perf_counter() - t0
        warm = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            s = jacobian_spectrum("tanh", sw, sb, args.depth, weights, n_points=args.points)
            warm.append(time.perf_counter() - t0)
        t_theory = statistics.median(warm)
        per_layer, t_svd = mc_per_layer(args.width, args.layers, weights, q, sw, sb, rng)
        t_mc = per_layer * args.depth + t_svd
        print(
            f"[{weights}] theory: first call {first:.3f} s, warm median {t_theory:.3f} s "
            f"(status {s.status}, mass-1 {s.mass - 1:.1e}, lambda_max {s.lambda_max:.4g}, "
            f"variance {s.variance:.4g})"
        )
        print(
            f"[{weights}] Monte Carlo, width {args.width}: {per_layer * 1e3:.2f} ms/layer "
            f"(measured over {args.layers} layers) + SVD {t_svd:.3f} s -> depth "
            f"{args.depth}: {t_mc:.1f} s extrapolated, for ONE draw of {args.width} "
            f"eigenvalues"
        )
        print(
            f"[{weights}] speed-up theory vs Monte Carlo: {t_mc / t_theory:.0f}x; "
            f"target <= 0.5 s for the theory: {'met' if t_theory <= 0.5 else 'NOT met'}\n"
        )
        # per-layer cost grows like width^3: at width 1000 it is ~ (1000/width)^3 larger
        big = per_layer * (1000 / args.width) ** 3
        print(
            f"[{weights}] (width 1000 would cost ~{big * 1e3:.0f} ms/layer, "
            f"~{big * args.depth / 60:.0f} min for depth {args.depth})\n"
        )


if __name__ == "__main__":
    main()
