"""Benchmark: fixed points and phase diagrams, cnnmft against a scipy quad + brentq baseline.

Prints: `import cnnmft` time and first-call time in a fresh process (warm numba cache), the
per-point cost of the scipy baseline (q* and chi_1 only) and of cnnmft (all seven quantities),
and the wall time and ratio for a phase-diagram grid (default 1000 x 1000 for tanh; use
``--n 200`` for a quicker run). Compile time with a cold cache is measured with
NUMBA_CACHE_DIR pointing at an empty folder.

    python benchmarks/bench_meanfield.py [--n 1000] [--baseline-points 200]

The benchmark suite (``python -m benchmarks``, ``benchmarks/_suite_cases.py``) times the same
cases (``fixed_point`` and ``phase_diagram``) idle and under a controlled
load, using the baseline defined here;
this script prints more detail.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def scipy_baseline(sw, sb):
    """q* by brentq on the scipy-quad q-map, then chi_1 by quad: the usual notebook approach."""
    from scipy.integrate import quad
    from scipy.optimize import brentq

    pdf = lambda z: np.exp(-z * z / 2) / np.sqrt(2 * np.pi)  # noqa: E731

    def V(q):
        return quad(lambda z: np.tanh(np.sqrt(q) * z) ** 2 * pdf(z), -np.inf, np.inf)[0]

    g = lambda q: sw * V(q) + sb - q  # noqa: E731
    q = brentq(g, 1e-12, sw + sb + 1) if sb > 0 or sw > 1 else 0.0
    chi1 = sw * quad(lambda z: (1 - np.tanh(np.sqrt(q) * z) ** 2) ** 2 * pdf(z), -np.inf, np.inf)[0]
    return q, chi1


def fresh_process_times(cache_dir=None):
    env = dict(os.environ)
    if cache_dir:
        env["NUMBA_CACHE_DIR"] = cache_dir
    code = (
        "import time; t0 = time.perf_counter(); import cnnmft; t1 = time.perf_counter(); "
        "cnnmft.fixed_point('tanh', [1.5, 2.5], 0.05); t2 = time.perf_counter(); "
        "cnnmft.phase_diagram('tanh', [1.0, 2.0], [0.05], critical_line=False); "
        "t3 = time.perf_counter(); print(t1 - t0, t2 - t1, t3 - t2)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return [float(x) for x in out.stdout.split()]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1000, help="grid is n x n (default 1000)")
    p.add_argument("--baseline-points", type=int, default=100)
    args = p.parse_args()
    load = os.getloadavg()[0]
    print(
        f"machine: {os.cpu_count()} cores, load average {load:.1f} "
        "(timings are inflated when other work shares the cores)"
    )

    with tempfile.TemporaryDirectory() as cold:
        imp, first, first_grid = fresh_process_times(cold)
        print(
            f"cold numba cache: import {imp:.2f} s, first fixed_point {first:.2f} s, "
            f"first phase_diagram {first_grid:.2f} s (compile)"
        )
    imp, first, first_grid = fresh_process_times()
    print(
        f"warm numba cache: import {imp:.2f} s, first fixed_point {first:.2f} s, "
        f"first phase_diagram {first_grid:.2f} s"
    )

    import cnnmft

    rng = np.random.default_rng(0)
    sw = rng.uniform(0.1, 10, args.baseline_points)
    sb = rng.uniform(0, 2, args.baseline_points)
    t0 = time.perf_counter()
    base = [scipy_baseline(a, b) for a, b in zip(sw, sb)]
    t_base = (time.perf_counter() - t0) / len(sw)
    cnnmft.fixed_point("tanh", [1.5, 2.5], 0.05, threads=1)  # load the cached kernels first
    cnnmft.phase_diagram("tanh", np.linspace(0.5, 3, 50), np.linspace(0.01, 1, 50))
    t0 = time.perf_counter()
    fp = cnnmft.fixed_point("tanh", sw, sb, threads=1)
    t_fp = (time.perf_counter() - t0) / len(sw)
    err = max(abs(fp.q_star[i] - base[i][0]) / max(base[i][0], 1e-300) for i in range(len(sw)))
    print(f"scipy quad+brentq (q*, chi_1 only): {t_base * 1e3:.2f} ms/point")
    print(
        f"cnnmft fixed_point (7 quantities, 1 thread, no warm start): {t_fp * 1e3:.2f} ms/point"
        f"  -> {t_base / t_fp:.1f}x; max rel. difference of q* vs baseline {err:.1e}"
    )

    n = args.n
    swg = np.linspace(0.1, 10, n)
    sbg = np.linspace(0, 2, n)
    t0 = time.perf_counter()
    pd = cnnmft.phase_diagram("tanh", swg, sbg)
    t_grid = time.perf_counter() - t0
    print(
        f"cnnmft phase_diagram tanh {n}x{n}: {t_grid:.1f} s ({t_grid / n / n * 1e6:.1f} us/point,"
        f" {cnnmft.results.status_counts(pd.status)})"
    )
    print(
        f"  scipy baseline extrapolated to the same grid: {t_base * n * n:.0f} s -> ratio "
        f"{t_base * n * n / t_grid:.1f}x (goal: the grid in <= 10 s)"
    )


if __name__ == "__main__":
    main()
