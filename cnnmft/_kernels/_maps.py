"""Fully-connected mean-field maps and their fixed points (numba kernels).

Outputs per point: q*, c*, chi_1, chi_q, chi_c, residual; status codes as cnnmft.results.Status.
"""

import math

import numpy as np
from numba import prange

from . import _act, _quad
from ._jit import jit, pjit

OK, ZERO, INFINITE, MARGINAL, MAXITER, NONFINITE = 0, 1, 2, 3, -2, -3
NOUT = 7  # q*, c*, chi_1, chi_q, chi_c, residual_q, residual_c
QMAX = 1e12
_ORD00 = np.array([0, 0], dtype=np.int64)
_ORD11 = np.array([1, 1], dtype=np.int64)


@jit
def var(code, q, ws):
    """E[phi(u)^2], u ~ N(0, q)."""
    return _quad.expect_1d(code, _ORD00, q, ws[0], ws[1], ws[2])


@jit
def dvar(code, q, ws):
    """d/dq E[phi(u)^2] (chi_q / sigma_w2)."""
    if q <= 0.0:
        q = 1e-300
    return _quad.dvar_dq(code, q, ws[0], ws[1], ws[2])


@jit
def slope(code, q, ws):
    """E[phi'(u)^2] (chi_1 / sigma_w2)."""
    return _quad.expect_1d(code, _ORD11, q, ws[0], ws[1], ws[2])


@jit
def q_fixed_point(code, sw, sb, phi0_zero, tol, maxiter, ws):
    """Return (q*, status, nit, residual) of q = sw E[phi(sqrt(q) z)^2] + sb."""
    lo = 0.0
    if sb == 0.0 and phi0_zero:
        s0 = sw * dvar(code, 1e-300, ws)
        if s0 < 1.0 - 1e-13:
            return 0.0, ZERO, 0, 0.0
        if s0 <= 1.0 + 1e-13:
            return 0.0, MARGINAL, 0, 0.0
        # q = 0 is unstable: look for the positive fixed point above a tiny q with g > 0
        lo = 1e-200
        while lo < 1e-3 and sw * var(code, lo, ws) - lo <= 0.0:
            lo *= 1e10
    hi = max(1.0, 2.0 * sb)
    g_hi = sw * var(code, hi, ws) + sb - hi
    while g_hi > 0.0:
        hi *= 4.0
        if hi > QMAX:
            return math.inf, INFINITE, 0, 0.0
        g_hi = sw * var(code, hi, ws) + sb - hi
    if not math.isfinite(g_hi):
        return math.nan, NONFINITE, 0, math.nan
    # safeguarded Newton on [lo, hi], g(lo) >= 0 > g(hi)
    q = 0.5 * (lo + hi)
    if sb > 0.0:
        q = min(max(sb + sw * var(code, sb, ws), lo), hi)
        if q >= hi:
            q = 0.5 * (lo + hi)
    for it in range(1, maxiter + 1):
        g = sw * var(code, q, ws) + sb - q
        if g > 0.0:
            lo = q
        else:
            hi = q
        dg = sw * dvar(code, q, ws) - 1.0
        qn = q - g / dg if dg < 0.0 else 0.5 * (lo + hi)
        if not (qn > lo and qn < hi):
            qn = 0.5 * (lo + hi)
        if abs(qn - q) <= tol * q or hi - lo <= tol * hi:
            g = sw * var(code, qn, ws) + sb - qn
            return qn, OK, it, abs(g) / max(qn, 1e-300)
        q = qn
    return q, MAXITER, maxiter, abs(sw * var(code, q, ws) + sb - q) / max(q, 1e-300)


@jit
def cov2(code, a, b, q, c, ws):
    return _quad.expect_2d(code, a, b, q, q, c, ws)


@jit
def c_fixed_point(code, q, sw, sb, phi_odd, tol, maxiter, ws):
    """Return (c*, status, nit, residual) of the c-map in the chaotic phase (chi_1 > 1)."""
    # h(c) = (sw K(c) + sb)/q - c, h(1) = 0, h'(1) = chi_1 - 1 > 0
    if sb == 0.0 and phi_odd:
        return 0.0, OK, 0, 0.0
    lo = 0.0
    h_lo = (sw * cov2(code, 0, 0, q, 0.0, ws) + sb) / q
    if h_lo < 0.0:
        lo = -1.0
    delta = 0.5
    hi = 1.0 - delta
    h_hi = (sw * cov2(code, 0, 0, q, hi, ws) + sb) / q - hi
    k = 0
    while h_hi >= 0.0:
        lo = hi
        delta *= 0.5
        hi = 1.0 - delta
        h_hi = (sw * cov2(code, 0, 0, q, hi, ws) + sb) / q - hi
        k += 1
        if k > 45:
            return 1.0, MARGINAL, k, 0.0
    c = 0.5 * (lo + hi)
    for it in range(1, maxiter + 1):
        h = (sw * cov2(code, 0, 0, q, c, ws) + sb) / q - c
        if h > 0.0:
            lo = c
        else:
            hi = c
        dh = sw * cov2(code, 1, 1, q, c, ws) - 1.0
        cn = c - h / dh if dh < 0.0 else 0.5 * (lo + hi)
        if not (cn > lo and cn < hi):
            cn = 0.5 * (lo + hi)
        if abs(cn - c) <= tol or hi - lo <= tol:
            h = (sw * cov2(code, 0, 0, q, cn, ws) + sb) / q - cn
            return cn, OK, it, abs(h)
        c = cn
    return c, MAXITER, maxiter, abs((sw * cov2(code, 0, 0, q, c, ws) + sb) / q - c)


@jit
def fixed_point_one(code, sw, sb, phi0_zero, phi_odd, tol, maxiter, ws, out):
    """Fill out[:NOUT] for one (sw, sb); return (status, nit)."""
    q, st, nit, res = q_fixed_point(code, sw, sb, phi0_zero, tol, maxiter, ws)
    out[0] = q
    out[5] = res
    out[6] = 0.0
    if st == INFINITE or st == NONFINITE:
        out[1] = math.nan if st == NONFINITE else 1.0
        for j in range(2, 5):
            out[j] = math.inf if st == INFINITE else math.nan
        if st == INFINITE:
            # asymptotic slopes of the linear-growth regime are not defined; keep inf
            out[1] = 1.0
        return st, nit
    qe = max(q, 1e-300)  # q* = 0: the slopes are the q -> 0+ limits
    chi1 = sw * slope(code, qe, ws)
    chiq = sw * dvar(code, qe, ws)
    out[2] = chi1
    out[3] = chiq
    if q == 0.0 or chi1 <= 1.0 + 1e-12:
        out[1] = 1.0
        out[4] = chi1
        if st == OK and abs(chi1 - 1.0) <= 1e-12:
            st = MARGINAL
        return st, nit
    c, stc, nitc, resc = c_fixed_point(code, q, sw, sb, phi_odd, 1e-15, maxiter, ws)
    out[1] = c
    out[6] = resc
    out[4] = sw * cov2(code, 1, 1, q, c, ws)
    if stc != OK:
        st = stc
    return st, nit + nitc


@pjit
def fixed_point_many(code, sw, sb, phi0_zero, phi_odd, tol, maxiter, out, status, nit, nchunk):
    n = sw.size
    per = (n + nchunk - 1) // nchunk
    for ch in prange(nchunk):
        ws = _quad.new_workspace()
        for i in range(ch * per, min(n, (ch + 1) * per)):
            st, it = fixed_point_one(code, sw[i], sb[i], phi0_zero, phi_odd, tol, maxiter, ws,
                                     out[i])
            status[i] = st
            nit[i] = it
    return 0


@jit
def q_map_many(code, q, sw, sb, out):
    ws = _quad.new_workspace()
    for i in range(q.size):
        out[i] = sw[i] * var(code, q[i], ws) + sb[i]
    return 0


@jit
def c_map_many(code, c, q, sw, sb, out, dout):
    ws = _quad.new_workspace()
    for i in range(c.size):
        out[i] = (sw[i] * cov2(code, 0, 0, q[i], c[i], ws) + sb[i]) / (sw[i] * var(code, q[i], ws)
                                                                       + sb[i])
        dout[i] = sw[i] * cov2(code, 1, 1, q[i], c[i], ws) * q[i] / (sw[i] * var(code, q[i], ws)
                                                                     + sb[i])
    return 0
