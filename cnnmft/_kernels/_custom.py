"""Private copies of the activation-dependent kernels for a custom activation.

Built-in activations are dispatched on an integer code inside cached kernels. A custom activation
cannot be reached from cached code, so its kernels are re-created from the same Python source
with the activation module replaced by one that calls the user's (jitted) functions. The copies
are compiled without disk cache on first use in each process.
"""

import functools
import math
import types

import numba
import numpy as np
from numba.core.registry import CPUDispatcher

from . import _act, _maps, _quad, _tables
from ._jit import HelperDispatcher


def _clone_module(module, replacements, name):
    new = types.ModuleType(name)
    g = dict(module.__dict__)
    g.update(replacements)
    g["__name__"] = name
    for key, obj in list(module.__dict__.items()):
        if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == module.__name__:
            f = obj.py_func
            clone = types.FunctionType(f.__code__, g, f.__name__, f.__defaults__, f.__closure__)
            opts = {k: v for k, v in obj.targetoptions.items() if k not in ("cache", "nopython")}
            g[key] = numba.njit(**opts)(clone)
            if isinstance(obj, HelperDispatcher):  # no Python wrapper: refuse calls from Python
                g[key].__class__ = HelperDispatcher
    for k, v in g.items():
        setattr(new, k, v)
    return new


def _as_jit(f):
    """numba-compile a user scalar function (plain functions, builtins such as math.erf)."""
    if isinstance(f, CPUDispatcher):
        return f
    if isinstance(f, types.FunctionType):
        return numba.njit(f)
    g = f

    def wrapped(x):
        return g(x)

    return numba.njit(wrapped)


def _fd_jit(f, order):
    """Fourth-order central differences of a jitted scalar function, compiled."""
    return numba.njit(_act.finite_difference(f, order))


@functools.lru_cache(maxsize=None)
def kernels_for(act):
    """Return a namespace with ``quad`` and ``maps`` kernel modules bound to `act` (code 0)."""
    phi = _as_jit(act._py[0])
    dphi = _as_jit(act._py[1]) if act._py[1] is not None else _fd_jit(phi, 1)
    d2phi = _as_jit(act._py[2]) if act._py[2] is not None else _fd_jit(phi, 2)

    @numba.njit
    def deriv(code, which, x):
        if which == 0:
            return phi(x)
        if which == 1:
            return dphi(x)
        return d2phi(x)

    @numba.njit
    def p0(code, x):
        return phi(x)

    @numba.njit
    def p1(code, x):
        return dphi(x)

    @numba.njit
    def p2(code, x):
        return d2phi(x)

    @numba.njit
    def pd(code, x):
        return phi(x), dphi(x)

    @numba.njit
    def d3(code, x):
        return phi(x), dphi(x), d2phi(x)

    actmod = types.ModuleType(f"cnnmft_custom_act_{act.name}")
    actmod.phi_dphi = pd
    actmod.derivs3 = d3
    for k in (
        "LINEAR",
        "TANH",
        "ERF",
        "RELU",
        "HARD_TANH",
        "SIGMOID",
        "SOFTPLUS",
        "GELU",
        "SWISH",
        "SELU",
    ):
        setattr(actmod, k, -1)
    actmod.N_BUILTIN = 1
    actmod.deriv = deriv
    actmod.phi = p0
    actmod.dphi = p1
    actmod.d2phi = p2
    kinks = np.full((1, 2), np.nan)
    jumps = np.zeros((1, 2))
    for j, k in enumerate(act.kinks):
        kinks[0, j] = k
        e = 1e-7 * max(1.0, abs(k))
        jumps[0, j] = float(dphi(k + e)) - float(dphi(k - e))
    steep = np.array([act.steep])
    quad = _clone_module(
        _quad,
        {
            "_act": actmod,
            "_KINKS": kinks,
            "_JUMPS": jumps,
            "_STEEP": steep,
            "LINEAR": -1,
            "RELU": -1,
            "HARD_TANH": -1,
            "ERF": -1,
        },
        f"cnnmft_custom_quad_{act.name}",
    )
    maps = _clone_module(_maps, {"_act": actmod, "_quad": quad}, f"cnnmft_custom_maps_{act.name}")
    tables = _clone_module(
        _tables, {"_maps": maps, "_quad": quad}, f"cnnmft_custom_tables_{act.name}"
    )
    return types.SimpleNamespace(quad=quad, maps=maps, tables=tables, act=actmod, code=0)


_BUILTIN = types.SimpleNamespace(quad=_quad, maps=_maps, tables=_tables, act=_act)


def kernels(act):
    """(namespace, code) for an Activation: the cached built-in kernels or a custom copy."""
    if act.code < _act.N_BUILTIN:
        return _BUILTIN, act.code
    ns = kernels_for(act)
    return ns, 0


__all__ = ["kernels", "math"]
