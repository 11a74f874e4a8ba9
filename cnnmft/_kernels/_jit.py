"""The one jit policy of cnnmft: disk cache on, no fastmath, numpy error model.

* Kernels called only from other kernels (:func:`helper`) get no Python wrapper.
* Parallel kernels (:func:`pjit`) follow the thread policy of :mod:`cnnmft._threads`: before
  each call from Python they bring the calling thread's numba thread count to
  :func:`cnnmft._threads.get_num_threads` (a cached check after the first call). Under numba's
  ``workqueue`` layer, which is not threadsafe, launches from several Python threads take turns.
* Compiled kernels go to numba's disk cache: ``__pycache__`` next to the sources, or, where that
  folder is not writable (a system-wide install), numba's per-user cache folder
  (``NUMBA_CACHE_DIR`` when set). Later processes load them in well under a second.
* The first time a kernel has to be compiled in a process (an empty or outdated cache), one line
  on stderr says so, and how long it took (silenced by ``CNNMFT_QUIET=1``).
"""

import sys
import threading
import time

import numba
from numba.core import event
from numba.core.registry import CPUDispatcher

from cnnmft import _threads, _util

_OPTIONS = dict(cache=True, fastmath=False, error_model="numpy", nogil=True)


_LAUNCH = threading.RLock()  # one parallel region at a time where the layer is not threadsafe
_LAYER = []  # the threading layer numba started, once known


def _serial_launch():
    """True when parallel regions must not be launched from two Python threads at once.

    numba's ``workqueue`` layer aborts the process on concurrent launches (Dask workers with
    several threads, user thread pools); TBB and OpenMP are threadsafe. Before numba's pool has
    started the layer is unknown, so the first launch is serialised too.
    """
    if not _LAYER:
        try:
            _LAYER.append(numba.threading_layer())
        except ValueError:  # no parallel region launched yet
            return True
    return _LAYER[0] == "workqueue"


class ParallelDispatcher(CPUDispatcher):
    """A numba dispatcher that applies the cnnmft thread policy before running."""

    coarse = False  # coarse-grained work: all usable CPUs by default (_threads.get_num_threads)

    def __call__(self, *args, **kwargs):
        _threads._apply(self.coarse)
        if _serial_launch():
            with _LAUNCH:
                return super().__call__(*args, **kwargs)
        return super().__call__(*args, **kwargs)


class HelperDispatcher(CPUDispatcher):
    """A dispatcher without a Python wrapper (:func:`helper`): calls from Python are refused."""

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"{self.py_func.__module__}.{self.py_func.__name__} is an internal numba kernel "
            "compiled without a Python wrapper; call it from another kernel"
        )


class CoarseDispatcher(ParallelDispatcher):
    """A parallel kernel over a few large chunks of independent work (see :func:`cjit`)."""

    coarse = True


def jit(func=None, *, coarse=False, **extra):
    """``numba.njit`` with the project policy (``cache=True``, no fastmath, numpy errors)."""
    opts = {**_OPTIONS, **extra}
    if func is None:
        return lambda f: jit(f, coarse=coarse, **extra)
    disp = numba.njit(**opts)(func)
    if opts.get("parallel") and isinstance(disp, CPUDispatcher):
        disp.__class__ = CoarseDispatcher if coarse else ParallelDispatcher
    elif opts.get("no_cpython_wrapper") and isinstance(disp, CPUDispatcher):
        disp.__class__ = HelperDispatcher
    return disp


def helper(func=None, **extra):
    """Like :func:`jit` for a kernel called only from other kernels, never from Python.

    numba then builds no Python or C-callable wrapper for it, about a third of the compile time
    of a small function; calling it from Python raises a ``TypeError`` (without the wrapper
    numba would crash).
    """
    return jit(func, no_cpython_wrapper=True, no_cfunc_wrapper=True, **extra)


def pjit(func=None, **extra):
    """Like :func:`jit` with ``parallel=True`` for parallel loops with a barrier per layer."""
    return jit(func, parallel=True, **extra)


def cjit(func=None, **extra):
    """Like :func:`pjit` for a few large chunks of independent points (one barrier per call).

    By default these run on every usable CPU, busy machine or not (a parked thread delays only
    its own chunk); an explicit thread count still applies (:mod:`cnnmft._threads`).
    """
    return jit(func, parallel=True, coarse=True, **extra)


class _CompileNotice(event.Listener):
    """Writes one line to stderr when numba starts compiling a cnnmft kernel (not a cache load).

    numba raises its ``numba:compile`` event only on a cache miss; nested compiles (the callees)
    are counted so that one line covers the whole tree of a top-level kernel.
    """

    def __init__(self):
        self._depth = 0
        self._t0 = None
        self._lock = threading.Lock()

    def on_start(self, ev):
        with self._lock:
            self._depth += 1
            if self._depth != 1 or self._t0 is not None or _util.is_quiet():
                return
            disp = ev.data.get("dispatcher")
            module = getattr(getattr(disp, "py_func", None), "__module__", "") or ""
            if not module.startswith("cnnmft"):
                return
            self._t0 = time.perf_counter()
            where = getattr(getattr(disp, "_cache", None), "_cache_path", None)
            sys.stderr.write(
                f"cnnmft: compiling numerical kernels for {disp.py_func.__name__} (first run "
                f"only, typically 5-20 s; later runs load them from the cache"
                + (f" in {where}" if where else "")
                + ")..."
            )
            sys.stderr.flush()

    def on_end(self, ev):
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._t0 is not None:
                sys.stderr.write(f" done in {time.perf_counter() - self._t0:.1f} s\n")
                sys.stderr.flush()
                self._t0 = None


event.register("numba:compile", _CompileNotice())
