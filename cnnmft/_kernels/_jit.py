"""The one jit policy of cnnmft: disk cache on, no fastmath, numpy error model."""

import numba

_OPTIONS = dict(cache=True, fastmath=False, error_model="numpy", nogil=True)


def jit(func=None, **extra):
    """``numba.njit`` with the project policy (``cache=True``, no fastmath, numpy errors)."""
    opts = {**_OPTIONS, **extra}
    if func is None:
        return lambda f: numba.njit(**opts)(f)
    return numba.njit(**opts)(func)


def pjit(func=None, **extra):
    """Like :func:`jit` with ``parallel=True`` for outer loops over independent points."""
    return jit(func, parallel=True, **extra)
