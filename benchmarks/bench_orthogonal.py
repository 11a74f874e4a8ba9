"""Benchmark: block-orthogonal (Algorithm 1) kernels, cnnmft vs a naive per-tap loop.

The baseline is the textbook construction (as in TF's ``ConvolutionOrthogonal2D``): full Haar
c x c matrices, explicit c x c projections ``P = Q diag(m) Q^T``, 2x2 blocks of c x c products,
block convolution as a Python loop over tap pairs, and a final per-tap product with the
isometry. cnnmft builds the same random polynomial right to left from the c_out x c_in isometry,
one GEMM over all taps per factor, with projections kept as thin bases.

Targets (issue 4): 2D, k = 3, c = 512 in <= 0.5 s; k = 7, c = 256 in <= 1 s.

Usage: ``python benchmarks/bench_orthogonal.py [--quick]``

The benchmark suite (``python -m benchmarks``, ``benchmarks/_suite_cases.py``) times the same
cases (``orthogonal_kernel`` and ``conv_singular_values``) idle and under a controlled
load, using the baseline defined here;
this script prints more detail.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from cnnmft.orthogonal import block_orthogonal, conv_singular_values, delta_orthogonal


def naive_block_orthogonal_2d(c_out, c_in, k, rng):
    """Per-tap loop reference, layout (c_out, c_in, k, k)."""

    def haar(n):
        q, r = np.linalg.qr(rng.standard_normal((n, n)))
        return q * np.sign(np.diag(r))

    def projection(n):
        q = haar(n)
        m = (rng.standard_normal(n) > 0).astype(float)
        return (q * m) @ q.T

    eye = np.eye(c_out)
    h = haar(c_out)[:, :c_in]
    total = {(0, 0): eye}
    for _ in range(k - 1):
        p, q = projection(c_out), projection(c_out)
        block = {
            (0, 0): p @ q,
            (0, 1): p @ (eye - q),
            (1, 0): (eye - p) @ q,
            (1, 1): (eye - p) @ (eye - q),
        }
        size = 1 + max(i for i, _ in total)
        new = {}
        for i in range(size + 1):
            for j in range(size + 1):
                acc = np.zeros((c_out, c_out))
                for (a, b), ta in total.items():
                    key = (i - a, j - b)
                    if key in block:
                        acc += block[key] @ ta
                new[(i, j)] = acc
        total = new
    out = np.empty((c_out, c_in, k, k))
    for (i, j), t in total.items():
        out[:, :, i, j] = t @ h
    return out


def timed(fn, repeat):
    """Best wall time and best CPU time (process_time) over `repeat` runs."""
    best, best_cpu = np.inf, np.inf
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best, best_cpu, out


def peak_mb(fn):
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads (default 1: on a loaded machine more threads thrash)",
    )
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.threads):
        run(args)


def run(args):
    cases = [(64, 3, 0.5), (32, 7, 1.0)] if args.quick else [(512, 3, 0.5), (256, 7, 1.0)]
    print(f"BLAS threads: {args.threads} (both implementations)")
    print("note: wall timings on a shared machine are inflated by contention; with one BLAS")
    print("      thread the CPU time (process_time) is close to the wall time of an idle machine.")
    print("      Best of 3 for cnnmft, one run of the naive baseline. Singular values on 8x8.\n")
    print(
        f"{'case':>14} {'wall s':>7} {'cpu s':>7} {'target':>7} {'naive wall':>11} "
        f"{'naive cpu':>10} {'speed-up(cpu)':>14} {'peak MB':>8} {'max|s-1|':>9} "
        f"{'naive':>8}"
    )
    for c, k, target in cases:
        rng = np.random.default_rng(0)
        t_ours, cpu_ours, kern = timed(lambda: block_orthogonal((c, c, k, k), 1.0, rng), 3)
        t_naive, cpu_naive, ref = timed(lambda: naive_block_orthogonal_2d(c, c, k, rng), 1)
        grid = (max(8, k), max(8, k))
        err = np.abs(conv_singular_values(kern, grid) - 1).max()
        err_ref = np.abs(conv_singular_values(ref, grid) - 1).max()
        mem = peak_mb(lambda: block_orthogonal((c, c, k, k), 1.0, rng))
        flag = "ok" if min(t_ours, cpu_ours) <= target else "SLOW"
        print(
            f"{f'2D k={k} c={c}':>14} {t_ours:7.3f} {cpu_ours:7.3f} {target:7.2f} "
            f"{t_naive:11.3f} {cpu_naive:10.3f} {cpu_naive / cpu_ours:13.1f}x {mem:8.1f} "
            f"{err:9.1e} {err_ref:8.1e}  {flag}"
        )
    # other generators, for scale
    c = 64 if args.quick else 512
    t_delta, _, _ = timed(lambda: delta_orthogonal((c, c, 3, 3), 1.0, 0), 3)
    kern = block_orthogonal((c // 4, c // 4, 3, 3), 1.0, 0)
    t_sv, _, _ = timed(lambda: conv_singular_values(kern, (16, 16)), 3)
    print(
        f"\ndelta_orthogonal 3x3 c={c}: {t_delta:.3f} s; "
        f"conv_singular_values c={c // 4} on 16x16: {t_sv:.3f} s"
    )


if __name__ == "__main__":
    main()
