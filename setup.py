"""Build hook: the wheel carries cnnmft's numba kernels compiled for the building machine.

Everything else about the package is declared in ``pyproject.toml``. After setuptools has copied
the sources into the build folder, ``cnnmft compile`` runs on that copy, so numba's disk cache
(``__pycache__/*.nbi, *.nbc`` beside the kernel sources) is part of the wheel and the first call
after ``pip install .`` loads its kernels instead of compiling them (docs/performance.md).

numba checks every cache entry before using it: the numba version, the CPU model and features,
the Python bytecode and a hash of the source file. A wheel installed on another kind of machine,
or beside another numba, therefore compiles on first use exactly as without this step.

* ``CNNMFT_PRECOMPILE=0`` skips the step (the wheel then has no kernels);
* editable installs (``pip install -e .``) skip it: their cache is built beside the sources on
  first use;
* a failure (numba missing with ``--no-build-isolation``, a compile error) is reported and the
  build goes on without the kernels.
"""

import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class BuildWithKernels(build_py):
    """``build_py``, then the numba kernels compiled into the build folder's cache."""

    def run(self):
        """Copy the sources (setuptools), then compile the kernels into the copy's cache."""
        super().run()
        if getattr(self, "editable_mode", False) or os.environ.get("CNNMFT_PRECOMPILE") == "0":
            return
        lib = os.path.abspath(self.build_lib)
        # a reused build folder may hold kernels of older sources: start from none
        for folder, _, files in os.walk(os.path.join(lib, "cnnmft")):
            for name in files:
                if name.endswith((".nbi", ".nbc")):
                    os.remove(os.path.join(folder, name))
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        # the build folder first; pip's isolated build environment is reached through the rest
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [lib, env.get("PYTHONPATH")]))
        jobs = str(min(4, _usable_cpus()))  # 4 groups of kernels
        print(f"cnnmft: compiling the numba kernels into the wheel ({jobs} processes)", flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "cnnmft", "compile", "--jobs", jobs], env=env, cwd=lib
        )
        if proc.returncode:
            print(
                "cnnmft: WARNING: compiling the kernels failed; the package is built without "
                "them and compiles each kernel on its first use",
                file=sys.stderr,
                flush=True,
            )


setup(cmdclass={"build_py": BuildWithKernels})
