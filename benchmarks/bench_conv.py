"""Throughput of the numpy CNN's circular convolution (cnnmft.montecarlo.circular_conv).

Measures, in the same run and on the same shapes:

* ``matmul``: numpy's matrix product of the GEMM the convolution reduces to,
  ``(batch * H * W, k*k*c_in) @ (k*k*c_in, c_out)`` -- the machine's BLAS throughput;
* ``cnnmft``: ``circular_conv`` (im2col into a reused buffer with slice copies, then one GEMM);
* ``per-tap loop``: the straightforward implementation -- for each tap, ``np.roll`` the input and
  accumulate ``np.einsum`` over channels;
* ``per-tap GEMM``: for each tap, ``np.roll`` and accumulate a matmul (a better hand-written
  baseline, for information).

Throughput counts the useful flops ``2 * batch * H * W * k^2 * c_in * c_out``. The targets are
cnnmft >= 40% of matmul and >= 10x the per-tap loop for c >= 128 channels. On a shared machine
the absolute numbers are noisy (other processes compete for the cores); the ratios are measured
back to back, best of several repeats.

Run: ``python benchmarks/bench_conv.py [--quick]``

The benchmark suite (``python -m benchmarks``, ``benchmarks/_suite_cases.py``) times the same
case (``circular_conv``) idle and under a controlled load, using the baseline defined here;
this script prints more detail.
"""

import argparse
import itertools
import time

import numpy as np

from cnnmft._conv import _Conv, circular_conv


def best_time(f, repeat):
    f()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def per_tap_loop(x, w):
    ks = w.shape[2:]
    out = np.zeros(x.shape[:-1] + (w.shape[0],))
    for idx in itertools.product(*[range(k) for k in ks]):
        beta = [i - (k - 1) // 2 for i, k in zip(idx, ks)]
        xs = np.roll(x, shift=[-b for b in beta], axis=(1, 2))
        out += np.einsum("...i,ji->...j", xs, w[(slice(None), slice(None)) + idx])
    return out


def per_tap_gemm(x, w):
    ks = w.shape[2:]
    out = np.zeros(x.shape[:-1] + (w.shape[0],))
    for idx in itertools.product(*[range(k) for k in ks]):
        beta = [i - (k - 1) // 2 for i, k in zip(idx, ks)]
        xs = np.roll(x, shift=[-b for b in beta], axis=(1, 2))
        out += xs @ w[(slice(None), slice(None)) + idx].T
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    configs = [(128, 16, 16, 3), (256, 8, 16, 3)] if not args.quick else [(128, 8, 16, 3)]
    repeat = 3 if args.quick else 5
    print("note: timings on a shared, contended machine; ratios are measured back to back")
    print(
        f"{'c':>5} {'batch':>5} {'grid':>6} {'k':>2} | {'matmul GF/s':>11} {'cnnmft GF/s':>11} "
        f"{'loop GF/s':>9} {'tapGEMM GF/s':>12} | {'cnnmft/matmul':>13} {'cnnmft/loop':>11}"
    )
    ok = True
    for c, batch, n, k in configs:
        x = rng.standard_normal((batch, n, n, c))
        w = rng.standard_normal((c, c, k, k))
        flops = 2.0 * batch * n * n * k * k * c * c
        a = rng.standard_normal((batch * n * n, k * k * c))
        b = rng.standard_normal((k * k * c, c))
        t_mm = best_time(lambda: a @ b, repeat)
        conv = _Conv(w)
        t_cn = best_time(lambda: conv(x), repeat)
        t_loop = best_time(lambda: per_tap_loop(x, w), max(1, repeat // 2))
        t_tg = best_time(lambda: per_tap_gemm(x, w), repeat)
        err = np.abs(circular_conv(x, w) - per_tap_gemm(x, w)).max()
        assert err < 1e-9, err
        r_mm, r_loop = t_mm / t_cn, t_loop / t_cn
        ok &= r_mm >= 0.4 and r_loop >= 10
        print(
            f"{c:5d} {batch:5d} {n:3d}x{n:<2d} {k:2d} | {flops / t_mm / 1e9:11.2f} "
            f"{flops / t_cn / 1e9:11.2f} {flops / t_loop / 1e9:9.2f} {flops / t_tg / 1e9:12.2f}"
            f" | {r_mm:13.2f} {r_loop:11.1f}"
        )
    print("targets (cnnmft >= 0.40 x matmul, >= 10 x per-tap loop):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
