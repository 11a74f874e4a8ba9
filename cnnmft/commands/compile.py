"""``cnnmft compile``: compile the numerical kernels into numba's disk cache, once.

Every kernel is compiled on its first use and cached on disk; later processes load it in well
under a second. This command does the first use up front, with a line per group of kernels:
after installing (so that the first real call is fast), and on a cluster before the workers
start (with the cache on a shared file system, ``NUMBA_CACHE_DIR``, every worker then loads
instead of compiling the same kernels at the same time).

Examples::

    cnnmft compile                 # every group, one after the other
    cnnmft compile --jobs 2        # groups in 2 processes at once
    cnnmft compile --groups theory covariance
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import numpy as np

import cnnmft
from cnnmft._kernels import _maps
from cnnmft.commands._common import Output, add_common

# group -> what it compiles (the kernels behind these public calls, all their code paths)
GROUPS = {
    "theory": "fixed_point, critical_point, phase_diagram, q_map / c_map (serial and parallel)",
    "covariance": "propagate_covariance (closed forms, Mehler series, tabulated, linear and "
    "direct regimes, serial and row blocks) and cnnmft.network",
    "spectrum": "jacobian_spectrum: moments, the free-probability solve, the density",
    "montecarlo": "the numpy CNN of the Monte Carlo checks: activations and their derivatives",
}


def configure(p):
    """Add the arguments of ``cnnmft compile``."""
    p.add_argument(
        "--groups",
        nargs="+",
        choices=list(GROUPS),
        default=list(GROUPS),
        help="which groups of kernels (default: all): "
        + "; ".join(f"{k}: {v}" for k, v in GROUPS.items()),
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="groups compiled in this many processes at once (default: 1; the compile of one "
        "group is single-threaded)",
    )
    add_common(p, json_output=False)


def warm(group: str) -> None:
    """Run the small calls of `group` that compile its kernels (results are discarded)."""
    if group == "theory":
        cnnmft.fixed_point("tanh", 2.5, 0.05)
        with cnnmft.limit_threads(2):  # the parallel drivers (grids with several threads)
            cnnmft.fixed_point("tanh", np.array([1.5, 2.5]), 0.05)
            # >= 2,000 points of a bounded activation: the tabulated q-map (as in the report)
            cnnmft.phase_diagram("tanh", np.linspace(0.5, 3.0, 50), np.linspace(0.0, 0.5, 50))
            cnnmft.phase_diagram("relu", np.linspace(0.5, 3.0, 4), np.array([0.0, 0.05]))
            # a q-map that is not concave: the root scan of possibly bistable points
            cnnmft.fixed_point("gelu", np.array([1.5, 2.5]), 0.05)
        cnnmft.critical_point("tanh", 0.5)
        cnnmft.q_map("tanh", np.array([0.5]), 1.5, 0.05)
        cnnmft.c_map("tanh", np.array([0.5]), 0.6, 1.5, 0.05)
    elif group == "covariance":
        # 8x8: large enough that the variances become common before the state is translation
        # invariant (the common, linear and reduced regimes all run)
        x = np.random.default_rng(0).normal(size=(8, 8, 3))
        uniform, delta = cnnmft.variance_profile("uniform", 3), cnnmft.variance_profile("delta", 3)
        for threads in (1, 2):
            with cnnmft.limit_threads(threads):
                for act, sw in (("tanh", 1.760955), ("tanh", 3.0), ("erf", 1.5), ("relu", 1.5)):
                    for v in (uniform, delta):
                        cnnmft.propagate_covariance(x, act, sw, 0.05, v, 300, progress=False)
        # 24x24: enough work per layer for the row-block kernels on two threads, and for the
        # tabulated iterates of delta v; the direct bivariate quadrature; the network module
        x24 = np.random.default_rng(0).normal(size=(24, 24, 3))
        with cnnmft.limit_threads(2):
            for v in (uniform, delta):
                cnnmft.propagate_covariance(x24, "tanh", 1.760955, 0.05, v, 300, progress=False)
        cnnmft.propagate_covariance(
            x[:4, :4], "tanh", 1.5, 0.05, uniform, 2, method="direct", progress=False
        )
        net = cnnmft.network
        layers = [net.Conv(3, 1, "zero", 1.5, 0.05), net.Act("tanh"), net.GlobalAvgPool()]
        net.propagate_network(np.random.default_rng(0).normal(size=(2, 4, 4, 3)), layers)
    elif group == "spectrum":
        cnnmft.jacobian_spectrum("tanh", 1.760955, 0.05, 100, n_points=64)
        cnnmft.jacobian_spectrum("tanh", 1.760955, 0.05, 100, "gaussian", n_points=64)
        cnnmft.universal_spectrum(1.0, n_points=64)
    elif group == "montecarlo":
        x = np.random.default_rng(0).normal(size=(2, 4, 4, 3))
        cnnmft.simulate(x, "tanh", 1.760955, 0.05, 3, width=4, n_draws=1)
    else:
        raise ValueError(f"`group` must be one of {sorted(GROUPS)}, got {group!r}")


def _cache_dir() -> str:
    where = getattr(_maps.fixed_point_range._cache, "_cache_path", None)
    return where or "numba's default cache folder"


def run(args) -> int:
    """Compile the requested groups, in `--jobs` processes, with a line per group."""
    out = Output(args)
    if args.jobs < 1:
        raise ValueError(f"`jobs` must be an integer >= 1, got {args.jobs}")
    env = {**os.environ, "CNNMFT_QUIET": "1"}
    t0 = time.perf_counter()

    def one(group):
        # each group in a fresh process: what it compiles lands in the disk cache only
        out.note(f"cnnmft compile: {group} ({GROUPS[group]}) ...")
        start = time.perf_counter()
        code = f"from cnnmft.commands.compile import warm; warm({group!r})"
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, errors="replace",
        )  # fmt: skip
        return group, proc, time.perf_counter() - start

    failed = 0
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for fut in as_completed([pool.submit(one, g) for g in args.groups]):
            group, proc, seconds = fut.result()
            if proc.returncode:
                failed += 1
                last = proc.stderr.strip().splitlines()[-1:] or [""]
                out.note(f"cnnmft compile: {group} FAILED: {last[0]}")
            else:
                out.result(f"{group}: {seconds:.1f} s")
    out.result(f"total: {time.perf_counter() - t0:.1f} s; kernels cached in {_cache_dir()}")
    return 1 if failed else 0
