"""How long ``cnnmft --help`` takes, and where the time goes (budget: 0.3 s).

Runs each command ``--repeat`` times in a fresh interpreter and prints the median wall time
next to the load average:

* the interpreter alone (``python -c pass``): the floor;
* ``cnnmft/cli.py --help`` loaded on its own, without the package: what the command line
  itself costs (argparse and the command table; no command module is imported);
* ``import cnnmft``: the package face, paid before ``cnnmft.cli`` can run;
* ``cnnmft --help``, ``cnnmft --version`` and ``python -m cnnmft --help`` as a user types them;
* ``cnnmft train --help``: the generated parser (TrainConfig read from its source, no torch).

Usage: ``python benchmarks/bench_cli.py [--repeat 7]``.
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
    args = p.parse_args(argv)
    script = shutil.which("cnnmft") or "cnnmft"
    py = sys.executable
    cases = [
        ("python -c pass", [py, "-c", "pass"]),
        ("cnnmft/cli.py --help alone", [py, "-c", STANDALONE]),
        ("python -c 'import cnnmft'", [py, "-c", "import cnnmft"]),
        ("cnnmft --help", [script, "--help"]),
        ("cnnmft --version", [script, "--version"]),
        ("python -m cnnmft --help", [py, "-m", "cnnmft", "--help"]),
        ("cnnmft train --help", [script, "train", "--help"]),
    ]
    _time([script, "--help"], 1)  # warm the file cache
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'command':32s} {'median s':>9s} {'min s':>8s}")
    for name, cmd in cases:
        med, low = _time(cmd, args.repeat)
        print(f"{name:32s} {med:9.3f} {low:8.3f}", flush=True)
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
