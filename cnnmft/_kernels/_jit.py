"""The one jit policy of cnnmft: disk cache on, no fastmath, numpy error model.

Parallel kernels (:func:`pjit`) follow the thread policy of :mod:`cnnmft._threads`: before each
call from Python they bring the calling thread's numba thread count to
:func:`cnnmft._threads.get_num_threads` (a cached check after the first call).
"""

import numba
from numba.core.registry import CPUDispatcher

from cnnmft import _threads

_OPTIONS = dict(cache=True, fastmath=False, error_model="numpy", nogil=True)


class ParallelDispatcher(CPUDispatcher):
    """A numba dispatcher that applies the cnnmft thread policy before running."""

    def __call__(self, *args, **kwargs):
        _threads._apply()
        return super().__call__(*args, **kwargs)


def jit(func=None, **extra):
    """``numba.njit`` with the project policy (``cache=True``, no fastmath, numpy errors)."""
    opts = {**_OPTIONS, **extra}
    if func is None:
        return lambda f: jit(f, **extra)
    disp = numba.njit(**opts)(func)
    if opts.get("parallel") and isinstance(disp, CPUDispatcher):
        disp.__class__ = ParallelDispatcher
    return disp


def pjit(func=None, **extra):
    """Like :func:`jit` with ``parallel=True`` for outer loops over independent points."""
    return jit(func, parallel=True, **extra)
