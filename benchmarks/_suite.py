"""Runner of the benchmark suite: every headline case idle and under a controlled load.

For each case (``benchmarks/_suite_cases.py``) and each load level ``k`` (default ``0`` and the
number of CPUs this process may use) the runner starts ``k`` busy processes (``while True:
pass``, at the runner's own priority), then runs the case in a fresh subprocess, which reports

* ``first_s``: the first call of the process (numba kernels loaded from the disk cache);
* ``warm_s`` / ``warm_median_s``: best and median of ``--repeat`` warm calls;
* ``maxrss_mb`` (peak resident memory of the process, ``getrusage``) and ``tracemalloc_mb``
  (peak traced allocation of one extra, untimed call);
* the accuracy reached against an independent reference (first load level only);
* the baseline (or peer) timed in the same process at the same load, and the ratio.

``cold_s`` is the first call in a fresh process with an empty ``NUMBA_CACHE_DIR`` (what a user
sees where the kernels the wheel carries cannot be used: another CPU model, another numba, an
editable install), measured at k = 0; the first call after installing is measured by
``benchmarks/bench_install.py``; the neural-tangents peer runs in its own
interpreter (``--nt-python``, default ``/work/nt-venv/bin/python`` when it can import
neural_tangents) at every load level (``--quick``: the first only). The load average
(``os.getloadavg``) before and after every measurement is recorded: on a shared machine "k = 0"
is not idle, and the table says so.

Results: ``benchmarks/results/suite.json`` and ``suite.md`` (``suite_quick.*`` with
``--quick``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
NT_PYTHON = "/work/nt-venv/bin/python"
COMPILE_MESSAGE = "cnnmft: compiling"


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return [float("nan")] * 3


# ------------------------------------------------------------------------------------------------
# inside the case's subprocess
# ------------------------------------------------------------------------------------------------


def child(name: str, quick: bool, repeat: int, cold: bool, extras: bool, baseline: bool) -> dict:
    """Run one case in this (fresh) process and return its measurements."""
    from benchmarks._suite_cases import BY_NAME

    case = BY_NAME[name]
    t = time.perf_counter()
    import cnnmft  # noqa: F401

    out = {"import_s": time.perf_counter() - t}
    t = time.perf_counter()
    case.first()
    out["first_s"] = time.perf_counter() - t
    if cold:
        return out
    run = case.make(quick)
    result = run()  # warm-up
    times, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        result = run()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    times.sort()
    # CPU seconds of the process (all its threads) in the best run: on a loaded machine the
    # wall time measures the share the scheduler gave, the CPU time the work done
    out.update(
        warm_s=times[0],
        warm_median_s=times[len(times) // 2],
        repeats=repeat,
        warm_cpu_s=min(cpu),
        maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    )
    if extras:
        import tracemalloc

        tracemalloc.start()
        run()
        out["tracemalloc_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        if case.check is not None:
            out["accuracy"] = case.check(result, quick)
    if baseline and case.baseline is not None:
        b = case.baseline(quick)
        b["total_s"] = b["s"] * b.get("scale", 1)
        b["ratio"] = b["total_s"] / out["warm_s"]
        out["baseline"] = b
    import cnnmft._threads as threads

    out["threads"] = threads.get_num_threads()
    return out


def child_main(argv) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--child", required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--cold", action="store_true")
    p.add_argument("--extras", action="store_true")
    p.add_argument("--baseline", action="store_true")
    a = p.parse_args(argv)
    out = child(a.child, a.quick, a.repeat, a.cold, a.extras, a.baseline)
    print("RESULT " + json.dumps(out), flush=True)
    return 0


# ------------------------------------------------------------------------------------------------
# in the runner
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def busy(k: int):
    """``k`` busy-looping processes for the duration of the block (killed at exit)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(k)]
    try:
        if k:
            time.sleep(1.0)
        yield procs
    finally:
        for pr in procs:
            pr.kill()
        for pr in procs:
            pr.wait()


def _run_child(args: list[str], env=None, timeout=1800) -> tuple[dict, str]:
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - t
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail), "wall_s": wall}, p.stderr
    out = json.loads(lines[-1][7:])
    out["wall_s"] = wall
    return out, p.stderr


def nt_python(explicit: str | None) -> str | None:
    """The interpreter that can import neural_tangents, or None."""
    cand = explicit or NT_PYTHON
    if not cand or not Path(cand).exists():
        return None
    p = subprocess.run([cand, "-c", "import neural_tangents, jax"], capture_output=True, text=True)
    return cand if p.returncode == 0 else None


def run_peer(py: str, peer: str, quick: bool, ours_final) -> dict:
    """neural-tangents in its interpreter; its final covariance is compared with cnnmft's."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "nt.npz")
        p = subprocess.run(
            [
                py,
                str(ROOT / "benchmarks" / "_suite_peer_nt.py"),
                peer,
                "128",
                "3" if quick else "5",
                npz,
            ],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if p.returncode != 0 or not lines:
            return {"error": (p.stderr or "failed").strip().splitlines()[-1]}
        out = json.loads(lines[-1])
        if ours_final is not None:
            k = np.load(npz)["cov"]
            out["max_diff_vs_cnnmft"] = float(
                np.max(np.abs(k.reshape(ours_final.shape) - ours_final))
            )
    return out


def _final_cov(peer: str):
    """cnnmft's final layer of a peer case (checked against the reference by the case)."""
    import numpy as np

    from benchmarks._suite_cases import SB_CRIT, SW_CRIT, _inputs_8x8, _uniform3
    from cnnmft import propagate_covariance

    act = "tanh" if peer == "tanh" else "erf"
    x = _inputs_8x8(4 if peer == "erf_batch4" else None)
    res = propagate_covariance(x, act, SW_CRIT, SB_CRIT, _uniform3(), 128, progress=False)
    return np.asarray(res.cov[-1])


def _settle(limit: float, target: float = 0.5) -> None:
    """Wait (at most `limit` s) until the 1-minute load average is below `target`.

    The load-aware thread default reads the load average too, which still carries the busy
    processes of the previous row for about a minute after they stop: without waiting, an
    "idle" row right after a loaded one runs the per-layer kernels on one thread.
    """
    t0 = time.monotonic()
    while _loadavg()[0] >= target and time.monotonic() - t0 < limit:
        time.sleep(2.0)


def run_case(case, args, loads, nt) -> list[dict]:
    rows = []
    flags = (["--quick"] if args.quick else []) + ["--repeat", str(args.repeat)]
    for i, k in enumerate(loads):
        if k == 0 and args.settle > 0:
            _settle(args.settle)
        with busy(k):
            before = _loadavg()
            t0 = time.time()
            extra = ["--baseline"] + (["--extras"] if i == 0 else [])
            r, _ = _run_child(["--child", case.name, *flags, *extra], timeout=args.timeout)
            if nt and case.peer and (i == 0 or not args.quick):
                r["peer"] = run_peer(nt, case.peer, args.quick, _final_cov(case.peer))
                if "s" in r["peer"] and "warm_s" in r:
                    r["peer"]["ratio"] = r["peer"]["s"] / r["warm_s"]
            after = _loadavg()
        rows.append(
            {
                "case": case.name,
                "title": case.title,
                "busy": k,
                "loadavg_before": before,
                "loadavg_after": after,
                "started": time.strftime("%H:%M:%S", time.gmtime(t0)),
                **r,
            }
        )
        print(_line(rows[-1]), flush=True)
    if args.cold and (not args.quick or case.name in ("fixed_point", "cov_tanh_8x8")):
        with tempfile.TemporaryDirectory() as cache:
            before = _loadavg()
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            r, err = _run_child(["--child", case.name, "--cold"], env=env, timeout=args.timeout)
            rows[0]["cold_s"] = r.get("first_s")
            rows[0]["cold_loadavg"] = [before, _loadavg()]
            rows[0]["cold_message"] = next(
                (ln for ln in err.splitlines() if COMPILE_MESSAGE in ln), None
            )
            print(
                f"  {case.name}: cold first call {r.get('first_s', float('nan')):.2f} s "
                f"(load {before[0]:.1f}); message: {rows[0]['cold_message']!r}",
                flush=True,
            )
    base = next((r for r in rows if r["busy"] == loads[0] and "warm_s" in r), None)
    for r in rows:
        if base is not None and "warm_s" in r:
            r["slowdown_vs_k0"] = r["warm_s"] / base["warm_s"]
        r["goals"] = _goals(case, r)
    return rows


def _goals(case, r) -> dict:
    g = {}
    if "warm_s" not in r:
        return g
    if r["busy"] > 0 and "slowdown_vs_k0" in r:
        g["slowdown <= 2.5"] = r["slowdown_vs_k0"] <= 2.5
    if "warm_s" in case.goals:
        g[f"warm <= {case.goals['warm_s']} s"] = r["warm_s"] <= case.goals["warm_s"]
    acc = r.get("accuracy")
    if acc and "error" in case.goals:
        g[f"error <= {case.goals['error']:g}"] = acc["error"] <= case.goals["error"]
    peer = r.get("peer") or {}
    if "vs_peer" in case.goals and "ratio" in peer:
        g[f">= {case.goals['vs_peer']:g}x neural-tangents"] = peer["ratio"] >= case.goals["vs_peer"]
    return g


def _line(r) -> str:
    if "error" in r:
        return f"{r['case']:22s} k={r['busy']}: FAILED {r['error']}"
    b = r.get("baseline", {})
    peer = r.get("peer", {})
    acc = r.get("accuracy", {})
    return (
        f"{r['case']:22s} k={r['busy']} load {r['loadavg_before'][0]:4.1f}->"
        f"{r['loadavg_after'][0]:4.1f}  first {r['first_s']:7.3f} s  warm {r['warm_s']:8.4f} s"
        f" (median {r['warm_median_s']:.4f}, cpu {r.get('warm_cpu_s', float('nan')):.4f})"
        f"  rss {r['maxrss_mb']:6.0f} MB"
        + (f"  err {acc['error']:.1e}" if "error" in acc else "")
        + (f"  baseline x{b['ratio']:.1f}" if "ratio" in b else "")
        + (f"  NT x{peer['ratio']:.1f}" if "ratio" in peer else "")
    )


def _fmt(x, spec=".3g"):
    return "" if x is None else format(x, spec)


def markdown(meta: dict, rows: list[dict]) -> str:
    """The results as a markdown table (plus the machine and load notes)."""
    out = [
        f"# Benchmark suite ({'quick' if meta['quick'] else 'full'} run)",
        "",
        f"Run {meta['started']} to {meta['finished']} UTC on {meta['machine']}; "
        f"{meta['cpus']} CPUs usable; thread policy at the start {meta['threads']} threads for "
        f"per-layer work and BLAS (per row: the `threads` column, the policy's count in the "
        f"case's process after it ran), {meta.get('threads_coarse', meta['cpus'])} for chunked "
        f"grids; numba threading layer {meta['layer']}.",
        "",
        f"Load averages (1 min) seen: {meta['loadavg_start']} at start, "
        f"{meta['loadavg_end']} at the end. **k = 0 is not an idle machine** when other "
        "jobs share it: compare each row's load average; `k` is the number of busy "
        "processes the suite itself added.",
        "",
        "| case | k | threads | load avg before -> after | first call s | "
        "empty-cache first call s | "
        "warm s (best) | median s | CPU s (best) | slowdown vs k=0 | RSS MB | traced MB | "
        "error (reference) | baseline / peer | ratio | goals |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "warm_s" not in r:
            out.append(
                f"| {r['case']} | {r['busy']} | | | | | FAILED: {r.get('error', '')} "
                "| | | | | | | | | |"
            )
            continue
        acc = r.get("accuracy") or {}
        ref = f"{acc['error']:.1e} ({acc['reference']})" if "error" in acc else ""
        comps, ratios = [], []
        b = r.get("baseline")
        if b:
            comps.append(f"{b['name']}: {b['total_s']:.3g} s")
            ratios.append(f"{b['ratio']:.3g}x")
        p = r.get("peer")
        if p and "s" in p:
            d = f", max diff {p['max_diff_vs_cnnmft']:.1e}" if "max_diff_vs_cnnmft" in p else ""
            comps.append(f"{p['name']}: {p['s']:.3g} s{d}")
            ratios.append(f"{p['ratio']:.3g}x NT")
        elif p:
            comps.append(f"neural-tangents failed: {p.get('error', '')}")
        goals = ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in r.get("goals", {}).items())
        lb, la = r["loadavg_before"][0], r["loadavg_after"][0]
        out.append(
            f"| {r['case']} | {r['busy']} | {r.get('threads', '')} | {lb:.1f} -> {la:.1f} "
            f"| {_fmt(r['first_s'])} "
            f"| {_fmt(r.get('cold_s'))} | {_fmt(r['warm_s'], '.4g')} | "
            f"{_fmt(r['warm_median_s'], '.4g')} | {_fmt(r.get('warm_cpu_s'), '.4g')} | "
            f"{_fmt(r.get('slowdown_vs_k0'), '.2f')} "
            f"| {r['maxrss_mb']:.0f} | {_fmt(r.get('tracemalloc_mb'), '.1f')} | {ref} | "
            f"{'; '.join(comps)} | {'; '.join(ratios)} | {goals} |"
        )
    out += [
        "",
        "Titles: "
        + "; ".join(f"`{c}`: {t}" for c, t in dict((r["case"], r["title"]) for r in rows).items()),
        "",
    ]
    return "\n".join(out)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--child" in argv:
        return child_main(argv)
    from benchmarks._suite_cases import CASES

    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller problems, fewer repeats")
    p.add_argument("--cases", nargs="+", choices=[c.name for c in CASES], default=None)
    p.add_argument(
        "--loads",
        nargs="+",
        type=int,
        default=None,
        help="numbers of busy processes (default: 0 and the usable CPUs)",
    )
    p.add_argument("--repeat", type=int, default=None, help="warm repeats (default 5, quick 3)")
    p.add_argument(
        "--no-cold", dest="cold", action="store_false", help="skip the empty-cache first calls"
    )
    p.add_argument("--nt-python", default=None, help="interpreter with neural-tangents")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="before each k = 0 row wait up to this many seconds for the 1-minute load "
        "average to fall below 0.5 (default 0: do not wait)",
    )
    p.add_argument("--out", default=None, help="output stem (default results/suite[_quick])")
    args = p.parse_args(argv)
    args.repeat = args.repeat or (3 if args.quick else 5)
    import cnnmft._threads as threads

    cpus = threads.available_cpus()
    loads = args.loads if args.loads is not None else [0, cpus]
    nt = nt_python(args.nt_python)
    by_name = {c.name: c for c in CASES}
    cases = CASES if args.cases is None else [by_name[n] for n in args.cases]
    meta = {
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "machine": f"{platform.node()} ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical CPUs)",
        "cpus": cpus,
        "threads": threads.get_num_threads(),
        "threads_coarse": threads.get_num_threads(coarse=True),
        "loads": loads,
        "loadavg_start": _loadavg(),
        "python": sys.version.split()[0],
        "neural_tangents": nt,
        "layer": _layer_name(),
    }
    print(
        f"suite: {len(cases)} cases, loads {loads}, {cpus} usable CPUs, load average "
        f"{meta['loadavg_start']}, neural-tangents: {nt or 'not available'}",
        flush=True,
    )
    stem = Path(args.out) if args.out else RESULTS / ("suite_quick" if args.quick else "suite")
    stem.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in cases:
        rows += run_case(case, args, loads, nt)
        meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        meta["loadavg_end"] = _loadavg()
        # written after every case, so that an interrupted run keeps what it measured
        stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        stem.with_suffix(".md").write_text(markdown(meta, rows))
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")
    return 0


def _layer_name() -> str:
    code = (
        "import numpy as np, cnnmft, numba; from cnnmft._kernels._jit import pjit; "
        "f = pjit(lambda x: x.sum(), cache=False); f(np.ones(2)); "
        "print(numba.threading_layer())"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    return p.stdout.strip() or "unknown"
