"""The one thread policy of cnnmft: numba's parallel kernels, the BLAS and torch use `n` threads.

* :func:`set_num_threads` sets `n` for the whole process; :func:`get_num_threads` reads it;
  :func:`limit_threads` changes it inside a ``with`` block (for the calling thread's numba
  kernels; BLAS and torch thread pools are process-wide and are restored at exit).
* Without a call, `n` is the environment variable ``CNNMFT_NUM_THREADS`` when set, otherwise the
  number of CPUs this process may use (:func:`available_cpus`: the CPU affinity mask, capped by a
  cgroup CPU quota, as in a container or a batch job).
* numba's thread count is per calling thread. The parallel kernels (``pjit`` in
  ``cnnmft/_kernels/_jit.py``) call :func:`_apply` before they run, so the policy reaches every
  thread that calls them, Dask worker threads included, at the cost of one dictionary lookup.
* :func:`worker_env` and :func:`dask_worker_plugin` give worker processes one thread each
  (numba, BLAS, torch), so ``k`` workers on ``k`` cores do not start ``k * k`` threads.
* The numba threading layer: where numba would pick GNU OpenMP, whose idle threads spin on a
  busy CPU, the parallel kernels use numba's ``workqueue`` layer unless the user chose a layer
  (``NUMBA_THREADING_LAYER``); chosen before numba starts its pool, never at import
  (docs/performance.md has the measurements).

BLAS limits go through :func:`cnnmft._util.blas_threads` (threadpoolctl); torch is touched only
when it is already imported. This module imports nothing from cnnmft but :mod:`cnnmft._util`.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections.abc import Iterator

from cnnmft._util import blas_threads

__all__ = [
    "ENV_VAR",
    "available_cpus",
    "dask_worker_plugin",
    "get_num_threads",
    "limit_threads",
    "parse_num_threads",
    "set_num_threads",
    "worker_env",
]

ENV_VAR = "CNNMFT_NUM_THREADS"

# environment variables read by the thread pools of numba, OpenMP, the BLAS flavours and numexpr
_POOL_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

# threading layer used where numba's own default would be GNU OpenMP (see the module docstring)
_LAYER = "workqueue"

_STATE = {"n": None, "gen": 1, "applied_gen": 0, "blas": None, "layer_done": False}
_LOCAL = threading.local()   # .stack: limit_threads overrides; .gen: generation applied to numba
_LOCK = threading.Lock()


# ------------------------------------------------------------------------------------------------
# how many threads
# ------------------------------------------------------------------------------------------------


def parse_num_threads(value, name: str = "n") -> int:
    """Return `value` as a thread count ``>= 1``; strings (environment variables) are parsed.

    Parameters
    ----------
    value : int or str
        The count; a string must spell a positive integer (surrounding spaces allowed).
    name : str
        Name shown in the error message (the argument or the environment variable).

    Raises
    ------
    TypeError
        `value` is not an integer or a string (floats and bools are refused).
    ValueError
        `value` is below 1 or a string that is not a positive integer.

    Examples
    --------
    >>> parse_num_threads(" 4 ", "CNNMFT_NUM_THREADS")
    4
    >>> parse_num_threads("0", "CNNMFT_NUM_THREADS")
    Traceback (most recent call last):
    ...
    ValueError: `CNNMFT_NUM_THREADS` must be an integer >= 1 (number of threads), got '0'
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            n = int(text, 10)
        except ValueError:
            n = None
        if n is None or n < 1:
            raise ValueError(f"`{name}` must be an integer >= 1 (number of threads), "
                             f"got {value!r}")
        return n
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"`{name}` must be an integer >= 1 (number of threads) or None, "
                        f"got {value!r} of type {type(value).__name__}")
    n = int(value.__index__())
    if n < 1:
        raise ValueError(f"`{name}` must be an integer >= 1 (number of threads), got {n!r}")
    return n


def _cgroup_quota(root: str = "/sys/fs/cgroup", proc: str = "/proc/self/cgroup") -> float | None:
    """CPUs allowed by a cgroup CPU quota (v2 ``cpu.max`` or v1 CFS files), None if unlimited."""
    candidates = []
    try:
        with open(proc, encoding="ascii") as fh:
            for line in fh:
                parts = line.strip().split(":", 2)
                if len(parts) == 3 and parts[0] == "0":      # cgroup v2 unified hierarchy
                    candidates.append((root + parts[2].rstrip("/"), "v2"))
    except OSError:
        pass
    candidates += [(root, "v2"), (os.path.join(root, "cpu"), "v1"),
                   (os.path.join(root, "cpu,cpuacct"), "v1")]
    for folder, kind in candidates:
        try:
            if kind == "v2":
                with open(os.path.join(folder, "cpu.max"), encoding="ascii") as fh:
                    quota, period = fh.read().split()[:2]
                if quota == "max":
                    return None
                quota, period = float(quota), float(period)
            else:
                with open(os.path.join(folder, "cpu.cfs_quota_us"), encoding="ascii") as fh:
                    quota = float(fh.read())
                with open(os.path.join(folder, "cpu.cfs_period_us"), encoding="ascii") as fh:
                    period = float(fh.read())
                if quota < 0:
                    return None
        except (OSError, ValueError):
            continue
        if quota > 0 and period > 0:
            return quota / period
    return None


def available_cpus() -> int:
    """Number of CPUs this process may use: its affinity mask, capped by a cgroup CPU quota.

    A fractional quota rounds up (1.5 CPUs -> 2 threads); never below 1.

    Examples
    --------
    >>> 1 <= available_cpus() <= (os.cpu_count() or 1)
    True
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):       # not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, math.ceil(quota))
    return max(1, n)


def _default() -> int:
    raw = os.environ.get(ENV_VAR)
    if raw is not None and raw.strip():
        return parse_num_threads(raw, ENV_VAR)
    return available_cpus()


def get_num_threads() -> int:
    """Threads the cnnmft policy gives numba kernels, the BLAS and torch in the calling thread.

    The innermost :func:`limit_threads` block if any, else the last :func:`set_num_threads`,
    else ``CNNMFT_NUM_THREADS``, else :func:`available_cpus`.

    Examples
    --------
    >>> with limit_threads(1):
    ...     get_num_threads()
    1
    """
    stack = getattr(_LOCAL, "stack", None)
    if stack:
        return stack[-1]
    n = _STATE["n"]
    return _default() if n is None else n


# ------------------------------------------------------------------------------------------------
# applying it
# ------------------------------------------------------------------------------------------------


def _numba_ready():
    """The numba module once its thread pool may be used (threading layer chosen), or None."""
    numba = sys.modules.get("numba")
    if numba is None or numba.config.DISABLE_JIT:
        return None
    if not _STATE["layer_done"]:
        with _LOCK:
            if not _STATE["layer_done"]:
                _choose_layer(numba)
                _STATE["layer_done"] = True
    return numba


def _choose_layer(numba) -> None:
    """Pick ``workqueue`` where numba would otherwise start GNU OpenMP (spinning idle threads)."""
    from numba.np.ufunc import parallel

    if parallel._is_initialized or "NUMBA_THREADING_LAYER" in os.environ:
        return
    if numba.config.THREADING_LAYER != "default":       # set by the user in code
        return
    if importable_tbb():
        return
    numba.config.THREADING_LAYER = _LAYER


def importable_tbb() -> bool:
    """True when numba's TBB threading layer can be loaded (numba would choose it first)."""
    try:
        from numba.np.ufunc import tbbpool  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def _set_numba(n: int) -> None:
    numba = _numba_ready()
    if numba is not None:
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def _set_process_pools(n: int) -> None:
    """BLAS (kept until the next change) and torch (only if imported) for the whole process."""
    old = _STATE["blas"]
    if old is not None and hasattr(old, "restore_original_limits"):
        old.restore_original_limits()
    # blas_threads applies the limit when created; kept un-entered, it holds until restored
    _STATE["blas"] = blas_threads(n)
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(n)


def _apply() -> None:
    """Bring the calling thread's numba thread count (and, once, the pools) to the policy.

    Called by every parallel kernel before it runs; after the first call per thread and policy
    change it costs one attribute lookup.
    """
    stack = getattr(_LOCAL, "stack", None)
    if stack:
        return                                   # limit_threads already set this thread
    gen = _STATE["gen"]
    if getattr(_LOCAL, "gen", 0) == gen:
        return
    n = get_num_threads()
    if _STATE["applied_gen"] != gen:             # first kernel after a change: process pools
        _STATE["applied_gen"] = gen
        if _STATE["n"] is not None or os.environ.get(ENV_VAR, "").strip() or n < _cpus_seen():
            _set_process_pools(n)
    _set_numba(n)
    _LOCAL.gen = gen


def _cpus_seen() -> int:
    """CPUs the pools would use by default (what they count, not what the quota allows)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_num_threads(n: int | None = None) -> int:
    """Set the threads of cnnmft's numba kernels, the BLAS and torch for the whole process.

    Parameters
    ----------
    n : int, optional
        Threads, ``>= 1``. None restores the default: ``CNNMFT_NUM_THREADS`` when set, otherwise
        :func:`available_cpus`. numba cannot run more threads than its pool was started with
        (``NUMBA_NUM_THREADS``, by default the CPUs in the affinity mask); larger values are
        capped there for numba and still given to the BLAS and torch.

    Returns
    -------
    int
        The thread count now in force.

    Notes
    -----
    BLAS limits are set through threadpoolctl for the BLAS libraries already loaded; torch's
    intra-op threads are set only if torch is imported (import torch first, or call again).
    Kernels called from other threads pick the new count up on their next call. On a shared
    machine, one thread per process is usually fastest (docs/performance.md).

    Examples
    --------
    >>> set_num_threads(1)
    1
    >>> get_num_threads()
    1
    >>> _ = set_num_threads(None)   # back to the default
    """
    value = None if n is None else parse_num_threads(n, "n")
    with _LOCK:
        _STATE["n"] = value
        _STATE["gen"] += 1
        _STATE["applied_gen"] = _STATE["gen"]
    resolved = get_num_threads() if value is None else value
    if value is None and not os.environ.get(ENV_VAR, "").strip():
        old = _STATE["blas"]                      # back to the libraries' own defaults
        if old is not None and hasattr(old, "restore_original_limits"):
            old.restore_original_limits()
        _STATE["blas"] = None
        torch = sys.modules.get("torch")
        if torch is not None and hasattr(torch, "set_num_threads"):
            torch.set_num_threads(resolved)
    else:
        _set_process_pools(resolved)
    if not getattr(_LOCAL, "stack", None):
        _set_numba(resolved)
        _LOCAL.gen = _STATE["gen"]
    return resolved


@contextlib.contextmanager
def limit_threads(n: int) -> Iterator[int]:
    """Context manager: run the block with `n` threads (numba in this thread, BLAS, torch).

    Parameters
    ----------
    n : int
        Threads, ``>= 1``.

    Notes
    -----
    numba's count is restored for the calling thread at exit; the BLAS and torch pools are
    process-wide, so other threads see the limit while the block runs.

    Examples
    --------
    >>> with limit_threads(1) as n:
    ...     n
    1
    """
    n = parse_num_threads(n, "n")
    numba = _numba_ready()
    old_numba = numba.get_num_threads() if numba is not None else None
    torch = sys.modules.get("torch")
    old_torch = torch.get_num_threads() if torch is not None and hasattr(torch, "get_num_threads") \
        else None
    stack = getattr(_LOCAL, "stack", None)
    if stack is None:
        stack = _LOCAL.stack = []
    stack.append(n)
    try:
        with blas_threads(n):
            if old_torch is not None:
                torch.set_num_threads(n)
            if numba is not None:
                numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
            yield n
    finally:
        stack.pop()
        if old_numba is not None:
            numba.set_num_threads(old_numba)
        if old_torch is not None:
            torch.set_num_threads(old_torch)


# ------------------------------------------------------------------------------------------------
# worker processes
# ------------------------------------------------------------------------------------------------


def worker_env(n: int = 1) -> dict[str, str]:
    """Environment variables giving a new process `n` threads for numba, OpenMP, BLAS, torch.

    Pass it where worker processes are started, before they import numpy: e.g.
    ``LocalCluster(env=worker_env())`` (Dask nannies), ``subprocess.run(..., env={**os.environ,
    **worker_env()})`` or a job script's exports.

    Examples
    --------
    >>> env = worker_env(1)
    >>> env["CNNMFT_NUM_THREADS"], env["NUMBA_NUM_THREADS"], env["OMP_NUM_THREADS"]
    ('1', '1', '1')
    """
    n = parse_num_threads(n, "n")
    return {ENV_VAR: str(n), **{var: str(n) for var in _POOL_VARS}}


def _setup_worker(n: int) -> None:
    """Inside a running worker process: the environment for later imports, then the policy."""
    os.environ.update({k: v for k, v in worker_env(n).items() if k != "NUMBA_NUM_THREADS"
                       or "numba" not in sys.modules})
    set_num_threads(n)


def dask_worker_plugin(n: int = 1):
    """A ``distributed.WorkerPlugin`` that gives every worker `n` threads per task thread.

    Register it once per client: ``client.register_plugin(dask_worker_plugin())``. In each
    worker it exports :func:`worker_env` (for libraries imported later, torch included) and
    calls :func:`set_num_threads`, which every numba kernel then applies in the worker's task
    threads. For process workers started by a ``LocalCluster``, passing ``env=worker_env()`` as
    well also fixes numba's pool size before the worker starts.

    Examples
    --------
    >>> from distributed import Client, LocalCluster  # doctest: +SKIP
    >>> cluster = LocalCluster(n_workers=2, env=worker_env())  # doctest: +SKIP
    >>> client = Client(cluster)  # doctest: +SKIP
    >>> client.register_plugin(dask_worker_plugin())  # doctest: +SKIP
    """
    from distributed import WorkerPlugin

    n = parse_num_threads(n, "n")

    class ThreadPolicy(WorkerPlugin):
        """Apply the cnnmft thread policy (`n` threads per task thread) in a Dask worker."""

        name = "cnnmft-threads"

        def __init__(self, n):
            self.n = n

        def setup(self, worker):
            _setup_worker(self.n)

    return ThreadPolicy(n)
