"""How long ``cnnmft --help`` takes, and where the time goes (budget: 0.3 s).

Runs each command ``--repeat`` times in a fresh interpreter and prints the median wall time
next to the load average:

* the interpreter alone (``python -c pass``): the floor;
* ``cnnmft/cli.py --help`` loaded on its own, without the package: what the command line
  itself costs (argparse and the command table; no command module is imported);
* ``import cnnmft``: the package face (lazy: no numpy, scipy or numba), paid before
  ``cnnmft.cli`` can run;
* the eager baseline, measured in the same run: ``import cnnmft.meanfield`` (numpy, scipy,
  numba and the kernels behind one name) and every name of ``cnnmft.__all__`` resolved, which
  is what ``import cnnmft`` cost when the face imported everything;
* ``cnnmft --help``, ``cnnmft --version`` and ``python -m cnnmft --help`` as a user types them;
* ``cnnmft train --help`` and ``cnnmft trainability --help``: the generated parsers (TrainConfig
  and the sweep's defaults read from their source: no torch, no dask).

The last lines give the ratio of the eager baseline to ``cnnmft --help`` and whether the
budget is met; ``--out FILE`` also writes the table there.

Usage: ``python benchmarks/bench_cli.py [--repeat 7] [--out benchmarks/results/bench_cli.txt]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "cnnmft" / "cli.py"
STANDALONE = (
    "import importlib.util, sys; "
    f"spec = importlib.util.spec_from_file_location('cnnmft_cli_alone', r'{CLI}'); "
    "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
    "sys.exit(m.main(['--help']))"
)


def _time(cmd, repeat):
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), min(runs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--out", help="also write the table to this text file")
    args = p.parse_args(argv)
    script = shutil.which("cnnmft") or "cnnmft"
    py = sys.executable
    every_name = "import cnnmft; [getattr(cnnmft, n) for n in cnnmft.__all__]"
    cases = [
        ("python -c pass", [py, "-c", "pass"]),
        ("cnnmft/cli.py --help alone", [py, "-c", STANDALONE]),
        ("python -c 'import cnnmft'", [py, "-c", "import cnnmft"]),
        ("import cnnmft.meanfield (eager)", [py, "-c", "import cnnmft.meanfield"]),
        ("every name of __all__ (eager)", [py, "-c", every_name]),
        ("cnnmft --help", [script, "--help"]),
        ("cnnmft --version", [script, "--version"]),
        ("python -m cnnmft --help", [py, "-m", "cnnmft", "--help"]),
        ("cnnmft train --help", [script, "train", "--help"]),
        ("cnnmft trainability --help", [script, "trainability", "--help"]),
    ]
    _time([script, "--help"], 1)  # warm the file cache
    _time([py, "-c", every_name], 1)  # and numba's on-disk cache
    lines = [
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.repeat} runs each",
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"{'command':34s} {'median s':>9s} {'min s':>8s}",
    ]
    print("\n".join(lines), flush=True)
    medians = {}
    for name, cmd in cases:
        med, low = _time(cmd, args.repeat)
        medians[name] = med
        lines.append(f"{name:34s} {med:9.3f} {low:8.3f}")
        print(lines[-1], flush=True)
    help_s = medians["cnnmft --help"]
    eager, one = (
        medians["every name of __all__ (eager)"],
        medians["import cnnmft.meanfield (eager)"],
    )
    tail = [
        f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"eager baseline / cnnmft --help: {eager / help_s:.1f}x "
        f"(import cnnmft.meanfield alone: {one / help_s:.1f}x)",
        f"cnnmft --help {help_s:.3f} s: {'within' if help_s <= 0.3 else 'OVER'} the 0.3 s budget "
        f"({help_s - medians['python -c pass']:.3f} s above the bare interpreter; a loaded "
        "machine slows both)",
    ]
    lines += tail
    print("\n".join(tail))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
