"""The one thread policy of cnnmft: numba's parallel kernels, the BLAS and torch use `n` threads.

* :func:`set_num_threads` sets `n` for the whole process; :func:`get_num_threads` reads it;
  :func:`limit_threads` changes it inside a ``with`` block (for the calling thread's numba
  kernels; BLAS and torch thread pools are process-wide and are restored at exit).
* Without a call, `n` is the environment variable ``CNNMFT_NUM_THREADS`` when set, otherwise the
  number of CPUs this process may use (:func:`available_cpus`: the CPU affinity mask, capped by a
  cgroup CPU quota, as in a container or a batch job) less the CPUs other processes keep busy
  (:func:`load_aware`: the 1-minute load average minus this process's own use, or the other
  processes' runnable threads right now (:func:`others_running`) when more, in proportion to
  the share of the machine's CPUs the process may use, looked at every 2 s), so a shared
  machine gets one thread per process and an idle one all its CPUs.
* numba's thread count is per calling thread. The parallel kernels (``pjit`` in
  ``cnnmft/_kernels/_jit.py``) call :func:`_apply` before they run, so the policy reaches every
  thread that calls them, Dask worker threads included, at the cost of one dictionary lookup.
* :func:`worker_env` and :func:`dask_worker_plugin` give worker processes one thread each
  (numba, BLAS, torch), so ``k`` workers on ``k`` cores do not start ``k * k`` threads.
* The numba threading layer: numba tries TBB, then GNU OpenMP, whose idle threads spin on a busy
  CPU; the policy puts ``workqueue`` before OpenMP unless the user chose a layer
  (``NUMBA_THREADING_LAYER`` or ``NUMBA_THREADING_LAYER_PRIORITY``, or numba's config in code),
  just before the first cnnmft parallel kernel starts numba's pool, never at import
  (docs/performance.md has the measurements).

BLAS limits go through :func:`cnnmft._util.blas_threads` (threadpoolctl); torch is touched only
when it is already imported. This module imports nothing from cnnmft but :mod:`cnnmft._util`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import threading
import time
from collections.abc import Iterator

from numba.np.ufunc import parallel as _numba_parallel

from cnnmft._util import blas_threads

__all__ = [
    "ENV_VAR",
    "available_cpus",
    "blas_policy",
    "dask_worker_plugin",
    "get_num_threads",
    "limit_threads",
    "others_running",
    "load_aware",
    "parse_num_threads",
    "set_num_threads",
    "uses_blas",
    "worker_env",
]

ENV_VAR = "CNNMFT_NUM_THREADS"

# environment variables read by the thread pools of numba, OpenMP, the BLAS flavours and numexpr
_POOL_VARS = (
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

# numba's threading layers in the order tried: workqueue before GNU OpenMP (module docstring)
_LAYER_PRIORITY = ("tbb", "workqueue", "omp")

_STATE = {
    "n": None,
    "blas": None,
    "pools": None,
    "torch0": None,
    "layer_done": False,
    "modules": -1,  # len(sys.modules) when the pools were last set (new BLAS or torch since?)
}
_LOCAL = threading.local()  # .stack: limit_threads overrides; .n: count applied to numba here
_LOCK = threading.Lock()
_POOL_LOCK = threading.Lock()


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
            raise ValueError(f"`{name}` must be an integer >= 1 (number of threads), got {value!r}")
        return n
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(
            f"`{name}` must be an integer >= 1 (number of threads) or None, "
            f"got {value!r} of type {type(value).__name__}"
        )
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
                if len(parts) == 3 and parts[0] == "0":  # cgroup v2 unified hierarchy
                    candidates.append((root + parts[2].rstrip("/"), "v2"))
    except OSError:
        pass
    candidates += [
        (root, "v2"),
        (os.path.join(root, "cpu"), "v1"),
        (os.path.join(root, "cpu,cpuacct"), "v1"),
    ]
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
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, math.ceil(quota))
    return max(1, n)


def load_aware(cpus: int, load: float, own: float) -> int:
    """Threads worth running on `cpus` CPUs when the 1-minute load average is `load`.

    ``own`` is this process's share of that load (its recent CPU use, in CPUs); the rest is
    other work, and each CPU it keeps busy is taken off: ``round(cpus - (load - own))`` clipped
    to ``[1, cpus]``. On a machine shared with busy processes this gives 1 thread: parallel
    kernels wait at every barrier for a thread the scheduler has parked, and measured on the
    2-CPU development machine they ran 2 to 3 times slower with 2 threads than with 1 under one
    busy process per CPU (docs/performance.md).

    Examples
    --------
    >>> load_aware(8, 0.3, 0.0), load_aware(8, 3.2, 1.0), load_aware(2, 4.0, 0.0)
    (8, 6, 1)
    """
    others = max(0.0, float(load) - max(0.0, float(own)))
    return int(min(cpus, max(1, math.floor(cpus - others + 0.5))))


def others_running(samples: int = 3, gap: float = 5e-4) -> int | None:
    """Runnable threads of other processes right now, or None where Linux's /proc is missing.

    The running count of ``/proc/loadavg`` (its fourth field, ``running/total``) less the
    threads of this process in state R, the smallest of `samples` looks `gap` seconds apart (a
    short-lived command does not count as load; a busy process is runnable in every look). It
    sees new load at once, where the 1-minute load average needs about a minute to rise.

    Examples
    --------
    >>> n = others_running()
    >>> n is None or n >= 0
    True
    """
    best = None
    for i in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as fh:
                running = int(fh.read().split()[3].split("/")[0])
            own = 0
            for tid in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as fh:
                        stat = fh.read()
                except OSError:  # the thread ended meanwhile
                    continue
                own += stat[stat.rindex(")") + 2] == "R"
        except (OSError, ValueError, IndexError):
            return None
        best = max(0, running - own) if best is None else min(best, max(0, running - own))
        if i + 1 < samples:
            time.sleep(gap)
    return best


_AUTO = {"t": -math.inf, "n": 1, "sample": None}
_AUTO_EVERY = 2.0  # seconds between two looks at the load average
_T0 = (time.monotonic(), time.process_time())


def _auto() -> int:
    """The load-aware default, re-evaluated at most every ``_AUTO_EVERY`` seconds."""
    now = time.monotonic()
    if now - _AUTO["t"] < _AUTO_EVERY:
        return _AUTO["n"]
    with _LOCK:
        cpu = time.process_time()
        t_prev, cpu_prev = _AUTO["sample"] or _T0
        own = (cpu - cpu_prev) / max(now - t_prev, 1e-3)
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average on this platform
            load = 0.0
        now_others = others_running()
        if now_others is not None:  # load that started less than a minute ago counts too
            load = max(load, max(0.0, own) + now_others)
        cpus = available_cpus()
        # both counts are machine-wide: a process allowed on 2 of 64 CPUs (a container, a
        # batch job's binding) meets its share of the others' work, spread over every CPU
        share = min(1.0, cpus / max(1, os.cpu_count() or 1))
        own = max(0.0, own)
        _AUTO["n"] = load_aware(cpus, own + max(0.0, load - own) * share, own)
        _AUTO["t"], _AUTO["sample"] = now, (now, cpu)
    return _AUTO["n"]


def _explicit() -> int | None:
    """The count fixed by :func:`set_num_threads` or ``CNNMFT_NUM_THREADS``, else None."""
    n = _STATE["n"]
    if n is not None:
        return n
    raw = os.environ.get(ENV_VAR)
    if raw is not None and raw.strip():
        return parse_num_threads(raw, ENV_VAR)
    return None


def get_num_threads(coarse: bool = False) -> int:
    """Threads the cnnmft policy gives numba kernels, the BLAS and torch in the calling thread.

    The innermost :func:`limit_threads` block if any, else the last :func:`set_num_threads`,
    else ``CNNMFT_NUM_THREADS``, else the default. The default of fine-grained work (kernels
    with a barrier per layer, the BLAS, torch) is load-aware: :func:`available_cpus` less the
    CPUs other processes keep busy (:func:`load_aware`, re-evaluated every 2 s). The default of
    coarse-grained work (`coarse`: independent grid points in a few large chunks, one barrier
    per call) is :func:`available_cpus`: there a thread the scheduler parks delays only its
    own chunk, and each thread is one more claim to the shared CPUs (measured on 2 CPUs with 2
    busy processes: 20,000 fixed points 8.1 s with 1 thread, 4.6 s with 2, 2.4 s idle).

    Examples
    --------
    >>> with limit_threads(1):
    ...     get_num_threads()
    1
    """
    n = fixed_num_threads()
    if n is not None:
        return n
    return available_cpus() if coarse else _auto()


def fixed_num_threads() -> int | None:
    """The count the caller fixed, else None (the default then applies).

    The innermost :func:`limit_threads` block, else :func:`set_num_threads`, else
    ``CNNMFT_NUM_THREADS``. Training uses it: it follows a fixed count, and runs on one thread
    without one (see :class:`cnnmft.pytorch.TrainConfig`).

    Examples
    --------
    >>> with limit_threads(2):
    ...     fixed_num_threads()
    2
    """
    stack = getattr(_LOCAL, "stack", None)
    if stack:
        return stack[-1]
    return _explicit()


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
    """Prefer ``workqueue`` to GNU OpenMP (spinning idle threads); TBB stays first if present."""
    if _numba_parallel._is_initialized or numba.config.THREADING_LAYER != "default":
        return  # started already, or chosen by the user
    if {"NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY"} & set(os.environ):
        return
    numba.config.THREADING_LAYER_PRIORITY = list(_LAYER_PRIORITY)


def _set_numba(n: int) -> None:
    numba = _numba_ready()
    if numba is not None:
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    _LOCAL.n = n


def _cpus_seen() -> int:
    """CPUs the pools would use by default (what they count, not what the quota allows)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _pool_count(n: int, explicit: bool) -> int | None:
    """The count to impose on the BLAS and torch pools, or None for their own defaults.

    An explicit count is imposed; the default only when it is below the CPUs the pools would
    use themselves.
    """
    return n if explicit or n < _cpus_seen() else None


def _set_pools(n: int, explicit: bool) -> None:
    """BLAS and torch (if imported) for the whole process: `n`, or their own defaults.

    With an explicit count both get it. With the default they get `n` only when it is below
    the CPUs they would use themselves, and their own defaults back otherwise.
    """
    want = _pool_count(n, explicit)
    with _POOL_LOCK:
        loaded = len(sys.modules)  # a BLAS (scipy's own) or torch imported since the last set
        if want != _STATE["pools"] or (want is not None and loaded != _STATE["modules"]):
            _swap_pools(want)
        _STATE["modules"] = loaded


def _swap_pools(want: int | None) -> None:
    old = _STATE["blas"]
    if old is not None and hasattr(old, "restore_original_limits"):
        old.restore_original_limits()
    # blas_threads applies the limit when created; kept un-entered, it holds until restored
    _STATE["blas"] = None if want is None else blas_threads(want)
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        if _STATE["torch0"] is None:
            _STATE["torch0"] = torch.get_num_threads()
        torch.set_num_threads(_STATE["torch0"] if want is None else want)
    _STATE["pools"] = want


def _apply(coarse: bool = False) -> None:
    """Bring the calling thread's numba thread count (and the process pools) to the policy.

    Called by every parallel kernel before it runs (`coarse` for the coarse-grained ones, see
    :func:`get_num_threads`); when nothing changed it costs a dictionary lookup and a clock
    read. A coarse kernel sets numba's count only; the pools follow the fine-grained policy.
    """
    if getattr(_LOCAL, "stack", None):
        return  # limit_threads already set this thread
    explicit = _explicit()
    n = _auto() if explicit is None else explicit
    if getattr(_LOCAL, "n", None) != n or _STATE["modules"] != len(sys.modules):
        _set_pools(n, explicit is not None)
        _set_numba(n)
    if coarse and explicit is None:
        _set_numba(available_cpus())


def set_num_threads(n: int | None = None) -> int:
    """Set the threads of cnnmft's numba kernels, the BLAS and torch for the whole process.

    Parameters
    ----------
    n : int, optional
        Threads, ``>= 1``. None restores the default: ``CNNMFT_NUM_THREADS`` when set,
        otherwise the load-aware default (:func:`available_cpus` less the CPUs that other
        processes keep busy, see :func:`load_aware`). numba cannot run more threads than its
        pool was started with (``NUMBA_NUM_THREADS``, by default the CPUs in the affinity
        mask); larger values are capped there for numba and still given to the BLAS and torch.

    Returns
    -------
    int
        The thread count now in force.

    Notes
    -----
    BLAS limits are set through threadpoolctl for the BLAS libraries already loaded; torch's
    intra-op threads are set only if torch is imported. A BLAS or torch imported later gets
    the count at the next cnnmft parallel kernel call (or call again).
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
    explicit = _explicit()
    resolved = _auto() if explicit is None else explicit
    _set_pools(resolved, explicit is not None)
    if not getattr(_LOCAL, "stack", None):
        _set_numba(resolved)
    return resolved


def blas_policy() -> contextlib.AbstractContextManager:
    """Context manager: the BLAS pools at the policy's count inside the block.

    numpy's linear algebra (QR, SVD, matrix products) runs on OpenBLAS's threads, which wait
    for each other at the end of every call; on a shared machine a waiting thread spins and a
    parked one stalls the call. Measured on the 2-CPU machine with 2 busy processes: Haar
    kernels of 512 channels 14.2 s with OpenBLAS's 2 threads against 0.16 s idle. cnnmft's
    BLAS-heavy functions (:func:`uses_blas`) run inside this block: the load-aware count of
    :func:`get_num_threads`, nothing changed where that is every CPU and no count was set.
    """
    want = _pool_count(get_num_threads(), fixed_num_threads() is not None)
    return contextlib.nullcontext() if want is None else blas_threads(want)


def uses_blas(func):
    """Decorator: run `func` inside :func:`blas_policy` (for numpy-heavy public functions)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with blas_policy():
            return func(*args, **kwargs)

    return wrapper


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
    old_torch = (
        torch.get_num_threads() if torch is not None and hasattr(torch, "get_num_threads") else None
    )
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
    os.environ.update(
        {
            k: v
            for k, v in worker_env(n).items()
            if k != "NUMBA_NUM_THREADS" or "numba" not in sys.modules
        }
    )
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
