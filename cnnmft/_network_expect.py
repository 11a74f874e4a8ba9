r"""Bivariate Gaussian expectations over every pair of a dense covariance matrix.

For a covariance ``S`` of ``M`` jointly Gaussian pre-activations this computes the matrices

.. math::

    E^{(o)}_{ij} = \mathbb E_{h \sim N(0, S)}[\phi^{(o)}(h_i)\, \phi^{(o)}(h_j)],
    \qquad o \in \{0, 1\},

the ``C`` map of the forward recursion (``o = 0``) and the ``E[phi' phi']`` factor of the
backward and NTK recursions (``o = 1``). Evaluators, chosen per activation:

* closed forms for ``linear``, ``relu`` (arc-cosine kernels) and ``erf`` (arcsine kernel);
* Mehler's formula for smooth activations: ``E = sum_k c_k(q_i) c_k(q_j) rho_ij^k`` with the
  normalised Hermite coefficients of ``mehler_coefficients`` (the covariance engine's Hermite
  series; one set per distinct variance), truncated where the Parseval tail is below
  ``1e-15 E[phi^2]``; for ``phi'`` the coefficients follow from Stein's identity
  ``E[phi'(sqrt(q) z) He_k(z)] = E[phi(sqrt(q) z) He_{k+1}(z)] / sqrt(q)``, i.e.
  ``d_k = sqrt((k + 1) / q) c_{k+1}``;
* the adaptive bivariate quadrature :func:`cnnmft.gaussian.expect2` otherwise (kinked
  activations without a closed form: ``hard_tanh``, ``selu``, custom ones), once per distinct
  ``(q_i, q_j, rho_ij)``.

The diagonal ``i = j`` always comes from the one-dimensional rule :func:`cnnmft.gaussian.expect`
(no series at ``rho = 1``).
"""

from __future__ import annotations

import math

import numpy as np

from cnnmft import gaussian
from cnnmft._covariance_series import mehler_coefficients
from cnnmft._kernels import _net
from cnnmft.activations import get_activation

_TAIL_REL = 1e-15
_KMAX = 4096


def _corr(S):
    q = np.clip(np.diag(S).copy(), 0.0, None)
    s = np.sqrt(q)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = S / np.outer(s, s)
    rho = np.clip(np.where(np.outer(s, s) > 0, rho, 0.0), -1.0, 1.0)
    np.fill_diagonal(rho, np.where(q > 0, 1.0, 0.0))  # exact: E[phi'^2] of a step is not smooth
    return q, s, rho


def _closed(code_name, S, order):
    q, s, rho = _corr(S)
    if code_name == "linear":
        return S.copy() if order == 0 else np.ones_like(S)
    if code_name == "relu":
        theta = np.arccos(rho)
        if order == 0:
            return np.outer(s, s) / (2 * math.pi) * (np.sin(theta) + (math.pi - theta) * rho)
        return (math.pi - theta) / (2 * math.pi)
    # erf
    d = 1.0 + 2.0 * q
    if order == 0:
        arg = np.clip(2.0 * S / np.sqrt(np.outer(d, d)), -1.0, 1.0)
        return (2.0 / math.pi) * np.arcsin(arg)
    det = np.outer(d, d) - 4.0 * S * S
    return (4.0 / math.pi) / np.sqrt(np.clip(det, 1e-300, None))


def _coefficients(a, uq, order):
    """Hermite coefficients (of phi or phi') at the variances uq, enough terms (Parseval).

    None when the series needs more than ``_KMAX`` terms (the caller then integrates pairwise).
    """
    qmax = float(uq.max())
    kmax = 32 * int(math.ceil((200.0 * qmax + 30) / 32))
    if kmax > _KMAX:
        return None
    diag = gaussian.expect(a, uq, (order, order))
    while True:
        coef, _ = mehler_coefficients(a, uq, kmax=kmax + order)
        if order == 1:
            k = np.arange(kmax + 1)
            coef = coef[:, 1:] * np.sqrt((k + 1)[None, :] / uq[:, None])
        tail = diag - np.sum(coef * coef, axis=1)
        if np.all(tail <= _TAIL_REL * np.maximum(1.0, diag) + 1e-15):
            break
        if kmax >= _KMAX:
            return None
        kmax *= 2
    # keep only the terms whose largest square still matters
    c2 = np.max(coef * coef, axis=0)
    rev = np.cumsum(c2[::-1])[::-1]
    keep = int(np.count_nonzero(rev > 1e-18 * max(1.0, float(diag.max())))) + 1
    return coef[:, : min(keep, coef.shape[1])], diag


def _mehler(a, S, order):
    q, s, rho = _corr(S)
    uq, inv = np.unique(q, return_inverse=True)
    inv = inv.ravel()
    pos = uq > 0
    if order == 1 and not pos.all():
        return None
    got = _coefficients(a, np.where(pos, uq, 0.0), order)
    if got is None:
        return None
    coef_u, diag_u = got
    coef = coef_u[inv]
    # an odd phi has odd Hermite coefficients only, its (even) derivative even ones
    parity = None if not a.odd else (1 if order == 0 else 0)
    if parity is None:
        packed, squared = coef, False
    else:
        packed, squared = coef[:, parity::2], True
    packed = np.ascontiguousarray(packed if packed.shape[1] else np.zeros((coef.shape[0], 1)))
    nterm = _net.term_table(packed, squared, 1e-17 * max(1.0, float(diag_u.max())))
    out = np.empty_like(S)
    _net.mehler_pairs(packed, np.ascontiguousarray(rho), squared, nterm, out)
    if parity == 1:
        out *= rho
    np.fill_diagonal(out, diag_u[inv])
    return out


def _pairwise(a, S, order):
    q, s, rho = _corr(S)
    M = S.shape[0]
    iu = np.triu_indices(M)
    keys = np.stack([q[iu[0]], q[iu[1]], rho[iu]], axis=1)
    uk, inv = np.unique(keys, axis=0, return_inverse=True)
    vals = gaussian.expect2(a, uk[:, 0], uk[:, 1], uk[:, 2], (order, order))
    out = np.empty_like(S)
    out[iu] = vals[inv.ravel()]
    out.T[iu] = vals[inv.ravel()]
    np.fill_diagonal(out, gaussian.expect(a, q, (order, order)))
    return out


def pair_expectations(act, S, order=0):
    """``E[phi^(o)(h_i) phi^(o)(h_j)]`` for every pair of ``h ~ N(0, S)``; S is (M, M)."""
    a = get_activation(act)
    S = np.asarray(S, dtype=np.float64)
    if a.name in ("linear", "relu", "erf"):
        return _closed(a.name, S, order)
    if not a.kinks:
        out = _mehler(a, S, order)
        if out is not None:
            return out
    return _pairwise(a, S, order)
