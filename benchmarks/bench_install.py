"""First call after installing: a fresh virtual environment, ``pip install .``, then each case.

What a new user sees, measured end to end in one run:

1. a fresh virtual environment and ``pip install <checkout>`` as the README says (the core
   package; the kernels do not depend on the extras), timed; the wheel built on the way
   compiles the numba kernels into itself (``setup.py``), and the count of cached kernels that
   arrived in ``site-packages`` is recorded;
2. for every headline case of the suite (``benchmarks/_suite_cases.py``, at its ``--quick``
   size unless ``--full``), a fresh interpreter of that environment, outside the checkout (so
   the installed package is the one imported), runs the case's call twice: ``import`` time, the
   first call, the second (the warm time of the same call, so that first - second is what the
   first call costs on top), whether numba compiled anything (its compile message);
3. the same with ``NUMBA_CACHE_DIR`` pointing at an empty folder: the first call where the
   shipped kernels cannot be used (another CPU model, another numba), i.e. compiling;
4. ``cnnmft report`` on the embedded data, the README's demo, first run after installing.

Goal (issue "speed on a shared machine"): the first call after installing within 5 s.
Results: ``benchmarks/results/install.json`` and ``install.md`` (``--out`` to change).

Usage: ``python benchmarks/bench_install.py [--keep DIR] [--no-report] [--no-empty-cache]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES_FILE = ROOT / "benchmarks" / "_suite_cases.py"
MESSAGE = "cnnmft: compiling"

# run inside the installed environment: the cases module is loaded from its file, so the
# checkout never lands on sys.path and `import cnnmft` finds the installed package
CHILD = """
import importlib.util, json, sys, time
t0 = time.perf_counter()
import cnnmft, numpy
t_import = time.perf_counter() - t0
spec = importlib.util.spec_from_file_location("suite_cases", sys.argv[1])
cases = sys.modules["suite_cases"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cases)
case = next(c for c in cases.CASES if c.name == sys.argv[2])
run = case.make(sys.argv[3] == "quick")
t0 = time.perf_counter()
run()
first = time.perf_counter() - t0
t0 = time.perf_counter()
run()
print(json.dumps({"import_s": t_import, "first_s": first, "second_s": time.perf_counter() - t0,
                  "package": cnnmft.__file__}))
"""


def _loadavg():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover
        return float("nan")


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUMBA_CACHE_DIR")}
    env.update(extra)
    env.pop("CNNMFT_QUIET", None)  # the compile message is what tells a compile happened
    return env


def _first_call(python, name, size, cwd, env):
    t0 = time.perf_counter()
    proc = subprocess.run(
        [python, "-c", CHILD, str(CASES_FILE), name, size],
        cwd=cwd, env=env, capture_output=True, text=True, errors="replace",
    )  # fmt: skip
    wall = time.perf_counter() - t0
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1], "wall_s": wall}
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["wall_s"] = wall
    r["compiled"] = MESSAGE in proc.stderr
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", help="build the environment in this folder and keep it")
    p.add_argument("--no-report", dest="report", action="store_false")
    p.add_argument("--no-empty-cache", dest="empty", action="store_false")
    p.add_argument("--full", action="store_true", help="the suite's full sizes (default quick)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "install"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from benchmarks._suite_cases import CASES

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cnnmft-install-"))
    work.mkdir(parents=True, exist_ok=True)
    venv = work / "venv"
    python = str(venv / "bin" / "python")
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "load": _loadavg()}
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    print(f"install: pip install {ROOT} into {venv} ...", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [python, "-m", "pip", "install", "-q", str(ROOT)],
        env=_env(), capture_output=True, text=True, errors="replace",
    )  # fmt: skip
    meta["install_s"] = time.perf_counter() - t0
    if proc.returncode:
        print(proc.stderr[-3000:], file=sys.stderr)
        return 1
    site = subprocess.run(
        [python, "-c", "import cnnmft, os; print(os.path.dirname(cnnmft.__file__))"],
        cwd=work, env=_env(), capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    meta["package"] = site
    meta["shipped_kernels"] = sum(1 for _ in Path(site).rglob("*.nbi"))
    print(
        f"install: {meta['install_s']:.1f} s; {meta['shipped_kernels']} kernel indexes shipped",
        flush=True,
    )
    rows = []
    for case in CASES:
        row = {"case": case.name, "load_before": _loadavg()}
        size = "full" if args.full else "quick"
        row["after_install"] = _first_call(python, case.name, size, work, _env())
        if args.empty:
            with tempfile.TemporaryDirectory() as cache:
                row["empty_cache"] = _first_call(
                    python, case.name, size, work, _env(NUMBA_CACHE_DIR=cache)
                )
        rows.append(row)
        a, e = row["after_install"], row.get("empty_cache", {})
        for r in (a, e):
            if "error" in r:
                print(f"{case.name}: FAILED {r['error']}", flush=True)
        print(
            f"{case.name:22s} after install: first call {a.get('first_s', float('nan')):6.2f} s"
            f", second {a.get('second_s', float('nan')):6.2f} s"
            f" (import {a.get('import_s', float('nan')):.2f} s, compiled: {a.get('compiled')})"
            + (f"; empty cache: {e.get('first_s', float('nan')):6.2f} s" if e else ""),
            flush=True,
        )
    if args.report:
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            proc = subprocess.run(
                [str(venv / "bin" / "cnnmft"), "report", "--out", out],
                cwd=work, env=_env(), capture_output=True, text=True, errors="replace",
            )  # fmt: skip
            meta["report_s"] = time.perf_counter() - t0
            meta["report_ok"] = proc.returncode == 0
            meta["report_compiled"] = MESSAGE in proc.stderr
        print(
            f"cnnmft report (first run after install): {meta['report_s']:.1f} s, "
            f"ok {meta['report_ok']}, compiled: {meta['report_compiled']}",
            flush=True,
        )
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    meta["load_end"] = _loadavg()
    meta["size"] = "full" if args.full else "quick"
    worst = max(r["after_install"].get("first_s", math.inf) for r in rows)
    meta["worst_first_s"] = worst
    meta["worst_extra_s"] = max(
        r["after_install"].get("first_s", math.inf) - r["after_install"].get("second_s", 0.0)
        for r in rows
    )
    meta["goal_first_call_5s"] = worst <= 5.0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    out.with_suffix(".md").write_text(markdown(meta, rows))
    print(f"slowest first call after install {worst:.2f} s "
          f"({meta['worst_extra_s']:.2f} s more than the second): goal <= 5 s "
          f"{'met' if meta['goal_first_call_5s'] else 'MISSED'}; wrote {out}.json/.md")  # fmt: skip
    return 0


def markdown(meta, rows) -> str:
    """The measurements as a markdown table."""
    f = lambda r, k: f"{r[k]:.2f}" if k in r else r.get("error", "")  # noqa: E731
    lines = [
        "# First call after installing",
        "",
        f"Run {meta['started']} to {meta['finished']} UTC, load average {meta['load']} at the "
        f"start, {meta['load_end']} at the end. `pip install .` into a fresh virtual "
        f"environment: {meta['install_s']:.1f} s (the wheel compiles the kernels into itself); "
        f"{meta['shipped_kernels']} kernel indexes arrived in site-packages.",
        "",
        f"Each case at its {meta['size']} size, in a fresh interpreter: the first call, then the "
        "same call again (second); first - second is what the first call costs on top.",
        "",
        "| case | import s | first call s | second call s | first - second s | compiled | "
        "empty cache: first call s | first - second s | compiled |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, e = r["after_install"], r.get("empty_cache", {})
        d = lambda x: f"{x['first_s'] - x['second_s']:.2f}" if "second_s" in x else ""  # noqa: E731
        lines.append(
            f"| {r['case']} | {f(a, 'import_s')} | {f(a, 'first_s')} | {f(a, 'second_s')} "
            f"| {d(a)} | {a.get('compiled', '')} | {f(e, 'first_s') if e else ''} | {d(e)} "
            f"| {e.get('compiled', '')} |"
        )
    if "report_s" in meta:
        lines += [
            "",
            f"`cnnmft report` on the embedded data, first run after installing: "
            f"{meta['report_s']:.1f} s (succeeded: {meta['report_ok']}, compiled anything: "
            f"{meta['report_compiled']}).",
        ]
    lines += [
        "",
        f"Goal: first call after installing <= 5 s: slowest {meta['worst_first_s']:.2f} s, at most "
        f"{meta['worst_extra_s']:.2f} s more than the same call warm: "
        + ("met" if meta["goal_first_call_5s"] else "MISSED")
        + ". The empty-cache column is the first call where the shipped kernels cannot be used.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
