"""Activation registry: phi, phi', phi'' as numba scalars, kinks, and closed forms.

Built-in activations (integer-coded, compiled once and cached on disk):
``linear, tanh, erf, relu, hard_tanh, sigmoid, softplus, gelu, swish, selu``.

Custom activations are registered from Python callables with :func:`register_activation`. The
callables must be numba-compilable scalar functions (plain arithmetic and ``math`` calls). Cost:
cnnmft compiles a private copy of its Gaussian-expectation kernels for each custom activation in
each new Python process (a few seconds, no disk cache); missing derivatives are taken by
fourth-order central differences (absolute error about 1e-10 on phi'', so mean-field quantities
lose a few digits against the built-ins, whose derivatives are exact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cnnmft._kernels import _act

__all__ = ["Activation", "get_activation", "register_activation", "available_activations"]


@dataclass(frozen=True, eq=False)
class Activation:
    """A pointwise nonlinearity phi with its first two derivatives.

    Attributes
    ----------
    name : str
        Registry name.
    code : int
        Kernel dispatch code (built-ins ``< 10``; custom activations ``>= 100``).
    kinks : tuple of float
        Points where phi or phi' is not smooth (quadrature splits there).
    steep : bool
        Whether phi changes on the unit scale around 0 (quadrature grades panels there).
    odd : bool
        Whether phi(-x) = -phi(x) (then q* = 0 is a fixed point when sigma_b2 = 0).
    bounded : bool
        Whether phi is bounded (then q* is finite for every finite sigma_w2, sigma_b2).
    closed_form : str
        Which Gaussian expectations are in closed form: ``"full"`` (1D and bivariate),
        ``"1d"``, ``"inner"`` (the conditional expectation only) or ``"none"``.
    """

    name: str
    code: int
    kinks: tuple = ()
    steep: bool = True
    odd: bool = False
    bounded: bool = False
    closed_form: str = "none"
    _py: tuple = field(default=(), repr=False)

    def phi(self, x):
        """phi(x), elementwise, float64."""
        return self._eval(0, x)

    def dphi(self, x):
        """phi'(x), elementwise, float64."""
        return self._eval(1, x)

    def d2phi(self, x):
        """phi''(x), elementwise, float64."""
        return self._eval(2, x)

    def _eval(self, which, x):
        if self.code < _act.N_BUILTIN:
            return _act.evaluate_array(self.code, which, x)
        fn = self._py[which]
        if fn is None:
            fn = _act.finite_difference(self._py[0], which)
        f = np.vectorize(fn, otypes=[np.float64])
        return f(np.asarray(x, dtype=np.float64))

    def __call__(self, x):
        """phi(x), elementwise (same as :meth:`phi`)."""
        return self.phi(x)

    def __repr__(self):
        return f"Activation({self.name!r})"


_REGISTRY: dict[str, Activation] = {}
_ALIASES = {"silu": "swish", "hardtanh": "hard_tanh", "identity": "linear"}


def _builtin(name, code, **kw):
    _REGISTRY[name] = Activation(name=name, code=code, **kw)


_builtin("linear", _act.LINEAR, steep=False, odd=True, closed_form="full")
_builtin("tanh", _act.TANH, odd=True, bounded=True)
_builtin("erf", _act.ERF, odd=True, bounded=True, closed_form="full")
_builtin("relu", _act.RELU, kinks=(0.0,), steep=False, closed_form="full")
_builtin(
    "hard_tanh",
    _act.HARD_TANH,
    kinks=(-1.0, 1.0),
    steep=False,
    odd=True,
    bounded=True,
    closed_form="1d",
)
_builtin("sigmoid", _act.SIGMOID, bounded=True)
_builtin("softplus", _act.SOFTPLUS)
_builtin("gelu", _act.GELU)
_builtin("swish", _act.SWISH)
_builtin("selu", _act.SELU, kinks=(0.0,))


def available_activations() -> list[str]:
    """Names of all registered activations (built-in and custom)."""
    return sorted(_REGISTRY)


def get_activation(name) -> Activation:
    """Look up an activation by name (an :class:`Activation` is returned unchanged).

    Parameters
    ----------
    name : str or Activation
        One of :func:`available_activations` (aliases: ``silu``, ``hardtanh``, ``identity``).

    Returns
    -------
    Activation

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.

    Examples
    --------
    >>> get_activation("tanh").dphi(0.0)
    array(1.)
    """
    if isinstance(name, Activation):
        return name
    if not isinstance(name, str):
        raise TypeError(f"`act` must be an activation name or an Activation, got {name!r}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _REGISTRY:
        raise ValueError(
            f"`act` must be one of {available_activations()}; got {name!r}. "
            "Register your own with cnnmft.register_activation()."
        )
    return _REGISTRY[key]


def register_activation(
    name,
    phi,
    dphi=None,
    d2phi=None,
    *,
    kinks=(),
    steep=True,
    odd=False,
    bounded=False,
    overwrite=False,
) -> Activation:
    """Register a custom activation from scalar Python callables.

    Parameters
    ----------
    name : str
        New registry name (must not shadow a built-in).
    phi, dphi, d2phi : callable
        Scalar functions ``float -> float`` that numba can compile (arithmetic and ``math``).
        Missing derivatives are taken by fourth-order central differences of `phi`
        (absolute error ~1e-10).
    kinks : sequence of float
        Points where phi or phi' has a jump or kink; quadrature splits there.
    steep : bool
        Whether phi varies on the unit scale around 0 (true for tanh-like functions).
    odd, bounded : bool
        Properties used by the fixed-point solvers (see :class:`Activation`).
    overwrite : bool
        Replace an earlier custom activation of the same name.

    Returns
    -------
    Activation

    Notes
    -----
    Each custom activation gets private, uncached copies of the Gaussian-expectation kernels,
    compiled on first use in every new process (a few seconds).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string, got {name!r}")
    key = name.lower()
    existing = _REGISTRY.get(key)
    if existing is not None and (existing.code < _act.N_BUILTIN or not overwrite):
        raise ValueError(
            f"`name` {name!r} is already registered; pass overwrite=True to replace "
            "a custom activation (built-ins cannot be replaced)"
        )
    for nm, f in (("phi", phi), ("dphi", dphi), ("d2phi", d2phi)):
        if f is not None and not callable(f):
            raise TypeError(f"`{nm}` must be callable, got {f!r}")
    kinks = tuple(float(k) for k in kinks)
    if not all(math.isfinite(k) for k in kinks) or len(kinks) > 2:
        raise ValueError(f"`kinks` must hold at most two finite numbers, got {kinks!r}")
    code = 100 + sum(1 for a in _REGISTRY.values() if a.code >= 100)
    act = Activation(
        name=key,
        code=code,
        kinks=kinks,
        steep=bool(steep),
        odd=bool(odd),
        bounded=bool(bounded),
        closed_form="none",
        _py=(phi, dphi, d2phi),
    )
    _REGISTRY[key] = act
    return act
