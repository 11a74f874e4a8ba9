"""Benchmark of the CNN covariance map, with the accuracy reached next to every time.

Cases (tanh, uniform 3x3 v, sigma_b2 = 0.05; critical point sigma_w2 = 1.760955 unless said):

* ``small``: 8x8 input, 128 layers: cnnmft vs a straightforward per-layer numpy implementation
  (full 64x64 matrix, 20x20 Gauss-Hermite tensor rule, explicit circular rolls), same run;
  accuracy against the adaptive bivariate quadrature of every entry (first layers) and against
  the run without the linear / translation-invariant shortcuts (every layer);
* ``uniform`` / ``delta``: 32x32 input (1024 x 1024 covariance), 10,000 layers: time, CPU time,
  peak memory, and the variances against ``q*`` of :func:`cnnmft.fixed_point`;
* ``uniform_chaotic`` / ``delta_chaotic``: the same at sigma_w2 = 3 (chaotic phase), where the
  off-diagonal entries must also reach ``q* c*``;
* ``uniform_exact_critical`` / ``delta_exact_critical``: the same on the critical line itself,
  ``critical_point("tanh", 0.01)`` (chi_1 = 1, q* = 0.01, chi_q = 0.98: the variances take about
  1,600 layers to converge, all of them per pixel);
* ``deep_chaotic``: the reported cases (16-pixel 1D, 8x8 2D, 8x8 delta v) at 128, 1,000 and
  10,000 layers against ``q*`` and ``q* c*``.

Each case runs in its own subprocess so that peak memory and first-call (numba cache load) times
are per case. Usage::

    python benchmarks/bench_covariance.py            # everything
    python benchmarks/bench_covariance.py --quick    # only the 8x8 case
    python benchmarks/bench_covariance.py --cases uniform delta --reps 1 --no-memory

Note: on a shared machine the timings are inflated by CPU contention; the load average is
printed with every case.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

SW, SB = 1.760955, 0.05


def _gh(n):
    from scipy.special import roots_hermitenorm

    z, w = roots_hermitenorm(n)
    return z, w / w.sum()


def baseline_layers(x, v, depth, nodes=20, every=False):
    """Straightforward numpy version: full matrix, Gauss-Hermite tensor rule per entry."""
    n1, n2, c = x.shape
    N = n1 * n2
    X = x.reshape(N, c)
    K = X @ X.T / c
    z, w = _gh(nodes)
    W = w[:, None] * w[None, :]
    offs = [(i - 1, j - 1) for i in range(3) for j in range(3)]

    def apply_a(M):
        M4 = M.reshape(n1, n2, n1, n2)
        out = np.zeros_like(M4)
        for (a, b), vv in zip(offs, v.ravel()):
            out += vv * np.roll(M4, (-a, -b, -a, -b), axis=(0, 1, 2, 3))
        return out.reshape(N, N)

    K = SW * apply_a(K) + SB
    outs = [K]
    iu = np.triu_indices(N)
    for _ in range(depth - 1):
        d = np.diag(K)
        q1, q2, s = d[iu[0]], d[iu[1]], K[iu]
        rho = np.clip(s / np.sqrt(q1 * q2), -1, 1)
        C = np.empty(s.size)
        for lo in range(0, s.size, 512):
            sl = slice(lo, lo + 512)
            u1 = np.sqrt(q1[sl])[:, None, None] * z[None, :, None]
            u2 = np.sqrt(q2[sl])[:, None, None] * (
                rho[sl, None, None] * z[None, :, None]
                + np.sqrt(1 - rho[sl] ** 2)[:, None, None] * z[None, None, :]
            )
            C[sl] = np.sum(W * np.tanh(u1) * np.tanh(u2), axis=(1, 2))
        M = np.empty((N, N))
        M[iu] = SW * C + SB
        M[iu[1], iu[0]] = M[iu]
        K = apply_a(M)
        if every:
            outs.append(K)
    return outs if every else [K]


def _maxrss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def case_small():
    from cnnmft import propagate_covariance, variance_profile

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 3))
    v = variance_profile("uniform", 3)
    t = time.perf_counter()
    propagate_covariance(x, "tanh", SW, SB, v, 2, progress=False)
    first = time.perf_counter() - t
    times, cpus = [], []
    for _ in range(5):
        t, c0 = time.perf_counter(), time.process_time()
        propagate_covariance(x, "tanh", SW, SB, v, 128, progress=False)
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c0)
    times_all = []
    for _ in range(3):
        t = time.perf_counter()
        res = propagate_covariance(x, "tanh", SW, SB, v, 128, layers="all", progress=False)
        times_all.append(time.perf_counter() - t)
    t = time.perf_counter()
    base = baseline_layers(x, v, 128)
    tb = time.perf_counter() - t
    # accuracy on the first layers against the adaptive bivariate quadrature of every entry
    # (method="direct": cnnmft's quadrature engine, not the Mehler series used by default)
    nref = 4
    ref = (
        propagate_covariance(
            x, "tanh", SW, SB, v, nref, layers="all", method="direct", progress=False
        )
        .cov[1:]
        .reshape(nref, 64, 64)
    )
    ours = res.cov[1 : nref + 1].reshape(nref, 64, 64)
    err_ours = float(np.max(np.abs(ours - ref)))
    b20 = baseline_layers(x, v, nref, nodes=20, every=True)
    err_base = max(float(np.max(np.abs(b20[i] - ref[i]))) for i in range(nref))
    final_diff = float(np.max(np.abs(res.cov[-1].reshape(64, 64) - base[0])))
    # every layer against the run without the linear / translation-invariant shortcuts
    full = propagate_covariance(x, "tanh", SW, SB, v, 128, layers="all", ti_tol=0.0, progress=False)
    err_full = float(np.max(np.abs(full.cov - res.cov)))
    return {
        "case": "8x8, 128 layers",
        "cnnmft_s_min": min(times),
        "cnnmft_s_median": float(np.median(times)),
        "cnnmft_cpu_s_min": min(cpus),
        "cnnmft_all_129_layers_returned_s": min(times_all),
        "first_call_s": first,
        "baseline_numpy_gh20_s": tb,
        "speedup": tb / min(times),
        "max_err_cnnmft_first4": err_ours,
        "max_err_baseline_first4": err_base,
        "max_err_vs_no_shortcuts_all_layers": err_full,
        "final_layer_cnnmft_vs_baseline": final_diff,
        "common_layer": res.common_layer,
        "ti_layer": res.ti_layer,
        "maxrss_mb": _maxrss_mb(),
    }


def _deep_errors(res, act, sw2, sb2):
    """Max |variance - q*| and max |off-diagonal - q* c*| (relative to q*) at the last layer."""
    from cnnmft import fixed_point

    fp = fixed_point(act, sw2, sb2)
    qs, cs = float(fp.q_star), float(fp.c_star)
    n = int(np.sqrt(res.cov[-1].size))
    c = res.cov[-1].reshape(n, n)
    off = c[~np.eye(n, dtype=bool)]
    err_q = float(np.max(np.abs(np.diag(c) - qs))) / qs
    return qs, cs, err_q, float(np.max(np.abs(off - qs * cs))) / qs


def _exact_critical():
    from cnnmft import critical_point

    cp = critical_point("tanh", 0.01)
    return float(cp.sigma_w2), float(cp.sigma_b2)


_OPTS = {"reps": 3, "memory": True}  # set from the command line (--reps, --no-memory)


def case_big(kind, sw2=SW, sb2=SB, phase=None, reps=None):
    import tracemalloc

    from cnnmft import propagate_covariance, variance_profile

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 32, 3))
    v = variance_profile(kind, 3)
    t = time.perf_counter()
    propagate_covariance(x[:8, :8], "tanh", sw2, sb2, v, 2, progress=False)
    first = time.perf_counter() - t
    runs, cpu, loads = [], [], []
    for _ in range(reps or _OPTS["reps"]):
        t, c0 = time.perf_counter(), time.process_time()
        res = propagate_covariance(
            x, "tanh", sw2, sb2, v, 10000, layers=[1, 100, 10000], progress=False
        )
        runs.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c0)
        loads.append(os.getloadavg()[0])
    el = min(runs)
    # memory in a second run: tracemalloc slows numpy allocations down, so it is not timed
    peak = float("nan")
    if _OPTS["memory"]:
        tracemalloc.start()
        propagate_covariance(x, "tanh", sw2, sb2, v, 10000, layers=[1, 100, 10000], progress=False)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    c = res.cov[-1].reshape(1024, 1024)
    d = np.diag(c)
    qs, cs, err_q, err_c = _deep_errors(res, "tanh", sw2, sb2)
    if phase is None:
        phase = "critical" if sw2 == SW else f"chaotic sigma_w2={sw2:g}"
    out = {
        "case": f"{kind} v, 32x32, 10000 layers, {phase}",
        "cnnmft_s": el,
        "cpu_s_of_fastest": cpu[int(np.argmin(runs))],
        "cpu_s_all_runs": " ".join(f"{c:.2f}" for c in cpu),
        "wall_s_all_runs": " ".join(f"{r:.2f}" for r in runs),
        "load_1min_after_each_run": " ".join(f"{lo:.1f}" for lo in loads),
        "first_call_s": first,
        "tracemalloc_peak_mb": peak / 2**20,
        "maxrss_mb": _maxrss_mb(),
        "common_layer": res.common_layer,
        "linear_layer": res.linear_layer,
        "ti_layer": res.ti_layer,
        "max_rel_err_diag_vs_qstar": err_q,
        "final_mean_corr": float((c / np.sqrt(np.outer(d, d))).mean()),
        "status": res.status,
    }
    if phase.startswith("chaotic"):  # the off-diagonal entries reach q* c* (critical: 1/l)
        out["max_rel_err_offdiag_vs_qstar_cstar"] = err_c
    return out


def case_deep_chaotic():
    """The reported deep chaotic cases: tanh sigma_w2 = 3, 16-pixel 1D and 8x8 2D inputs."""
    from cnnmft import propagate_covariance, variance_profile

    rng = np.random.default_rng(0)
    out = {"case": "deep chaotic (tanh 3.0/0.05), 10000 layers"}
    for name, x, v in (
        ("1d16", rng.normal(size=(16, 3)), variance_profile("uniform", 3, ndim=1)),
        ("2d8x8", rng.normal(size=(8, 8, 3)), variance_profile("uniform", 3)),
        ("2d8x8_delta", rng.normal(size=(8, 8, 3)), variance_profile("delta", 3)),
    ):
        propagate_covariance(x, "tanh", 3.0, SB, v, 300, progress=False)  # warm
        for depth in (128, 1000, 10000):
            t = time.perf_counter()
            res = propagate_covariance(x, "tanh", 3.0, SB, v, depth, progress=False)
            el = time.perf_counter() - t
            _, _, eq, ec = _deep_errors(res, "tanh", 3.0, SB)
            out[f"{name}_{depth}_s"] = el
            out[f"{name}_{depth}_err_diag"] = eq
            if depth >= 1000:
                out[f"{name}_{depth}_err_offdiag"] = ec
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--case", choices=list(CASES), help="run one case in this process")
    ap.add_argument("--cases", nargs="+", choices=list(CASES), help="run only these cases")
    ap.add_argument("--reps", type=int, default=3, help="timed runs of each 32x32 case")
    ap.add_argument("--no-memory", action="store_true", help="skip the tracemalloc run")
    a = ap.parse_args()
    if a.case:
        _OPTS.update(reps=a.reps, memory=not a.no_memory)
        print("RESULT " + json.dumps(CASES[a.case]()))
        return
    cases = ["small"] if a.quick else (a.cases or list(CASES))
    extra = ["--reps", str(a.reps)] + (["--no-memory"] if a.no_memory else [])
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = (float("nan"),) * 3
    print(
        f"load average {load[0]:.1f} on {os.cpu_count()} CPUs: timings are inflated by "
        "contention on a shared machine"
    )
    goals = {
        "small": "<= 0.05 s warm",
        "uniform": "<= 5 s",
        "delta": "<= 5 s",
        "uniform_chaotic": "<= 5 s",
        "delta_chaotic": "<= 5 s",
        "uniform_exact_critical": "<= 5 s",
        "delta_exact_critical": "<= 5 s",
        "deep_chaotic": "<= 1e-9 from q*, q* c*",
    }
    for c in cases:
        p = subprocess.run(
            [sys.executable, __file__, "--case", c, *extra], capture_output=True, text=True
        )
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
        if not line:
            print(p.stdout, p.stderr)
            continue
        r = json.loads(line[0][7:])
        print(
            f"\n== {r.pop('case')} (goal {goals[c]}; load average after it "
            f"{os.getloadavg()[0]:.1f})"
        )
        for k, val in r.items():
            print(f"  {k:34s} {val:.4g}" if isinstance(val, float) else f"  {k:34s} {val}")


CASES = {
    "small": case_small,
    "uniform": lambda: case_big("uniform"),
    "delta": lambda: case_big("delta"),
    "uniform_chaotic": lambda: case_big("uniform", 3.0),
    "delta_chaotic": lambda: case_big("delta", 3.0),
    "uniform_exact_critical": lambda: case_big(
        "uniform", *_exact_critical(), phase="exact critical q*=0.01"
    ),
    "delta_exact_critical": lambda: case_big(
        "delta", *_exact_critical(), phase="exact critical q*=0.01"
    ),
    "deep_chaotic": case_deep_chaotic,
}


if __name__ == "__main__":
    main()
