r"""Gaussian expectations of activations and their derivatives.

.. math::

    \mathbb{E}\Big[\prod_k \phi^{(o_k)}(u)\Big],\quad u \sim \mathcal N(0, q), \qquad
    \mathbb{E}\big[\phi^{(a)}(u_1)\,\phi^{(b)}(u_2)\big],\quad
    (u_1, u_2) \sim \mathcal N\!\left(0, \begin{pmatrix} q_1 & c\sqrt{q_1 q_2} \\
    c\sqrt{q_1 q_2} & q_2 \end{pmatrix}\right).

Algorithm: composite Gauss-Legendre in the standard normal variable z on [-9, 9] (neglected mass
~2e-19), panels split exactly at kinks (relu, hard_tanh, selu) and graded geometrically around the
steep region of smooth activations (width 1/sqrt(q) at u = 0), 16 nodes per panel. The bivariate
expectation is an outer rule over z1 of phi^{(a)}(sqrt(q1) z1) times the conditional expectation
E[phi^{(b)}(m + s Z)], m = sqrt(q2) c z1, s = sqrt(q2 (1 - c^2)), which is in closed form for
linear, relu, hard_tanh and erf and uses the same adaptive rule otherwise; it is exact in the
limit c -> +-1 (s -> 0). Accuracy is ~1e-15 relative for q in [1e-8, 1e4] (tested against mpmath).
"""

from __future__ import annotations

import numbers

import numpy as np

from cnnmft import _validation as V
from cnnmft._kernels import _custom
from cnnmft.activations import get_activation

__all__ = ["expect", "expect2"]


def _orders(orders, name="orders"):
    raw = np.asarray(orders, dtype=object).ravel()
    if not all(
        isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_)) for x in raw
    ):
        raise TypeError(
            f"`{name}` must be a sequence of integer derivative orders in "
            f"{{0, 1, 2}}, got {orders!r}"
        )
    o = raw.astype(np.int64)
    if o.size == 0 or (o < 0).any() or (o > 2).any():
        raise ValueError(
            f"`{name}` must be a non-empty sequence of derivative orders in "
            f"{{0, 1, 2}}, got {orders!r}"
        )
    return o


def expect(act, q, orders=(0, 0)):
    r"""Gaussian expectation of a product of activation derivatives.

    .. math:: \mathbb{E}_{z}\Big[\prod_k \phi^{(o_k)}(\sqrt{q}\,z)\Big]

    Parameters
    ----------
    act : str or Activation
        The activation phi.
    q : array_like
        Variance(s) ``q >= 0``; any shape.
    orders : sequence of int
        Derivative orders ``o_k`` in {0, 1, 2}; ``(0, 0)`` gives E[phi^2], ``(1, 1)`` gives
        E[phi'^2], ``(1,) * 2k`` gives the k-th moment of phi'^2.

    Returns
    -------
    ndarray
        Same shape as `q`.

    Notes
    -----
    Derivatives of kinked activations are the pointwise ones (the delta functions in phi'' of
    relu or hard_tanh are not included; :func:`cnnmft.meanfield.fixed_point` adds them where they
    matter, in chi_q).

    References
    ----------
    .. [1] Poole et al., "Exponential expressivity in deep neural networks through transient
       chaos", NeurIPS 2016.

    Examples
    --------
    >>> round(float(expect("relu", 2.0)), 12)  # E[relu(u)^2] = q / 2
    1.0
    """
    a = get_activation(act)
    q = V.as_float_array(q, "q", low=0.0)
    o = _orders(orders)
    ns, code = _custom.kernels(a)
    ws = ns.quad.workspace()
    out = np.empty(q.size)
    for i, qi in enumerate(q.ravel()):
        out[i] = ns.quad.expect_1d(code, o, qi, ws[0], ws[1], ws[2])
    return out.reshape(q.shape)


def expect2(act, q1, q2, c, orders=(0, 0)):
    r"""Bivariate Gaussian expectation of two activation derivatives.

    .. math:: \mathbb{E}[\phi^{(a)}(u_1)\,\phi^{(b)}(u_2)], \quad
       \operatorname{Var} u_i = q_i,\ \operatorname{Corr}(u_1, u_2) = c

    Parameters
    ----------
    act : str or Activation
        The activation phi.
    q1, q2 : array_like
        Variances ``>= 0``.
    c : array_like
        Correlation in [-1, 1].
    orders : (int, int)
        Derivative orders (a, b) in {0, 1, 2}.

    Returns
    -------
    ndarray
        Broadcast shape of `q1`, `q2`, `c`.

    References
    ----------
    .. [1] Poole et al., NeurIPS 2016, eq. (5).

    Examples
    --------
    >>> round(float(expect2("erf", 1.0, 1.0, 0.5)), 12)  # (2/pi) arcsin(2c q / (1 + 2q))
    0.216346895939
    """
    a = get_activation(act)
    q1 = V.as_float_array(q1, "q1", low=0.0)
    q2 = V.as_float_array(q2, "q2", low=0.0)
    c = V.as_float_array(c, "c", low=-1.0, high=1.0)
    o = _orders(orders)
    if o.size != 2:
        raise ValueError(f"`orders` must hold two derivative orders (a, b), got {orders!r}")
    q1, q2, c = V.broadcast(q1=q1, q2=q2, c=c)
    ns, code = _custom.kernels(a)
    ws = ns.quad.workspace()
    out = np.empty(q1.size)
    for i, (x1, x2, ci) in enumerate(zip(q1.ravel(), q2.ravel(), c.ravel())):
        out[i] = ns.quad.expect_2d(code, int(o[0]), int(o[1]), x1, x2, ci, ws)
    return out.reshape(q1.shape)
