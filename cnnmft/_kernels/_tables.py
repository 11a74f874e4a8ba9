"""Chebyshev tables in log q of the one-dimensional Gaussian integrals used on grids.

For a phase diagram every grid point needs E[phi^2], its q-derivative, E[phi'^2] and the Mehler
(Hermite) coefficients a_k^2 of phi(sqrt(q) z) at its own q*. These are smooth functions of
t = log q, so they are tabulated once per grid as piecewise Chebyshev series (pieces of width
WIDTH in t, degree DEG) and every piece is verified against direct quadrature at the points
halfway between its nodes; pieces that do not reproduce the integrals to 1e-14 are marked
invalid and points whose q* falls there are computed directly.

Layout of a row of function values: 0 V, 1 dV/dq, 2 S = E[phi'^2], 3 T0 = V - sum a_k^2,
4 T1 = q S - sum k a_k^2, 5 + k: a_k^2 for k = 0..KT.
"""

import math

import numpy as np
from numba import prange

from . import _maps, _quad
from ._codes import MARGINAL, OK
from ._jit import cjit, helper

DEG = 20
WIDTH = 0.5
KT = 512
NF = 5 + KT + 1
QMIN = 1e-8


@helper
def _values(code, q, ws, coef, row):
    dv = _quad.var_dvar(code, q, ws[0], ws[1], ws[2])[1]
    v, s = _maps.hermite_sq(code, q, KT, ws, coef)  # E[phi^2], E[phi'^2] from the same rule
    t0 = v
    t1 = q * s
    for k in range(KT + 1):
        t0 -= coef[k]
        t1 -= k * coef[k]
        row[5 + k] = coef[k]
    row[0] = v
    row[1] = dv
    row[2] = s
    row[3] = max(t0, 0.0)
    row[4] = max(t1, 0.0)


@helper
def _clenshaw(c, x):
    b1 = 0.0
    b2 = 0.0
    for j in range(c.size - 1, 0, -1):
        b0 = 2.0 * x * b1 - b2 + c[j]
        b2 = b1
        b1 = b0
    return x * b1 - b2 + c[0]


@cjit
def build(code, t0, npieces, table, valid, maxerr):
    """table[p, f, :] = Chebyshev coefficients of function f on piece p; valid[p] flags."""
    n = DEG + 1
    for p in prange(npieces):
        ws = _quad.new_workspace()
        coef = np.zeros(KT + 1)
        vals = np.zeros((n, NF))
        row = np.zeros(NF)
        for m in range(n):
            x = math.cos(math.pi * (m + 0.5) / n)
            q = math.exp(t0 + WIDTH * (p + 0.5 + 0.5 * x))
            _values(code, q, ws, coef, vals[m])
        for f in range(NF):
            for j in range(n):
                acc = 0.0
                for m in range(n):
                    acc += vals[m, f] * math.cos(math.pi * j * (m + 0.5) / n)
                table[p, f, j] = (1.0 if j > 0 else 0.5) * 2.0 / n * acc
        # verification halfway between the nodes
        err = 0.0
        for m in range(n - 1):
            x = math.cos(math.pi * (m + 1.0) / n)
            q = math.exp(t0 + WIDTH * (p + 0.5 + 0.5 * x))
            _values(code, q, ws, coef, row)
            scale = abs(row[0]) + 1e-300
            e = 0.0
            for f in range(3):
                e = max(e, abs(_clenshaw(table[p, f], x) - row[f]) / (abs(row[f]) + 1e-300))
            s = 0.0
            for f in range(3, NF):
                s += abs(_clenshaw(table[p, f], x) - row[f])
            e = max(e, s / scale)
            err = max(err, e)
        maxerr[p] = err
        valid[p] = err <= 1e-13
    return 0


@helper
def _locate(t, t0, npieces, valid):
    u = (t - t0) / WIDTH
    p = int(math.floor(u))
    if p < 0 or p >= npieces or not valid[p]:
        return -1, 0.0
    return p, 2.0 * (u - p) - 1.0


@helper
def _q_solve(sw, sb, q, t0, npieces, table, valid, tol, maxiter):
    """Safeguarded Newton for q* with tabulated V, dV; (q, ok, nit)."""
    lo = 0.0
    hi = math.inf
    for it in range(1, maxiter + 1):
        p, x = _locate(math.log(q), t0, npieces, valid)
        if p < 0:
            return q, False, it
        v = _clenshaw(table[p, 0], x)
        dv = _clenshaw(table[p, 1], x)
        qn, lo, hi, g, dg = _maps.q_step(q, v, dv, sw, sb, lo, hi)
        if _maps.q_converged(q, qn, g, dg, _maps.q_noise(q, v, sw, sb), lo, hi, tol):
            return (qn if abs(qn - q) <= 1e-13 * q else q), True, it
        q = qn
    return q, False, maxiter


@helper
def point(
    code,
    sw,
    sb,
    phi0_zero,
    phi_odd,
    tol,
    maxiter,
    ws,
    out,
    q0,
    c0,
    t0,
    npieces,
    table,
    valid,
    row,
    b2,
):
    """One grid point from the tables, with direct quadrature wherever they do not apply."""
    if sb == 0.0 or q0 <= 0.0 or npieces == 0:
        return _maps.fixed_point_one(
            code, sw, sb, phi0_zero, phi_odd, tol, maxiter, ws, out, q0, c0, True, b2
        )
    q, ok, nit = _q_solve(sw, sb, q0, t0, npieces, table, valid, tol, maxiter)
    p, x = _locate(math.log(q), t0, npieces, valid) if ok else (-1, 0.0)
    if p < 0:
        return _maps.fixed_point_one(
            code, sw, sb, phi0_zero, phi_odd, tol, maxiter, ws, out, q0, c0, True, b2
        )
    for f in range(NF):
        row[f] = _clenshaw(table[p, f], x)
    out[0] = q
    out[5] = abs(sw * row[0] + sb - q) / q
    out[6] = 0.0
    chi1 = sw * row[2]
    out[2] = chi1
    out[3] = sw * row[1]
    if chi1 <= 1.0 + 1e-12:
        out[1] = 1.0
        out[4] = chi1
        return (MARGINAL if abs(chi1 - 1.0) <= 1e-12 else OK), nit
    coef = row[5:]
    cg = c0 if (c0 > 0.0 and c0 < 1.0) else 0.5
    c, dk, h, it = _maps._series_solve(q, sw, sb, 1e-15, maxiter, coef, KT, cg)
    nit += it
    slope = max(1.0 - sw * dk / q, 1e-3)
    err0 = sw * c ** (KT + 1) * (row[3] + 1e-15 * row[0]) / q
    err1 = sw * c**KT * (row[4] + 1e-15 * q * row[2]) / q
    if err0 <= 1e-14 * slope and err1 <= 1e-12:
        out[1] = c
        out[4] = sw * dk / q
        out[6] = abs(h)
        return OK, nit
    c, chic, stc, nitc, resc = _maps.c_fixed_point(code, q, sw, sb, phi_odd, 1e-15, maxiter, ws, c)
    out[1] = c
    out[4] = chic
    out[6] = resc
    return stc, nit + nitc


@cjit
def grid(
    code, sw, sb, phi0_zero, phi_odd, tol, maxiter, out, status, nit, t0, npieces, table, valid, b2
):
    nw = sw.size
    nb = sb.size
    for j in prange(nb):
        ws = _quad.new_workspace()
        row = np.zeros(NF)
        q0 = -1.0
        c0 = -1.0
        for i in range(nw):
            st, it = point(
                code,
                sw[i],
                sb[j],
                phi0_zero,
                phi_odd,
                tol,
                maxiter,
                ws,
                out[i, j],
                q0,
                c0,
                t0,
                npieces,
                table,
                valid,
                row,
                b2,
            )
            status[i, j] = st
            nit[i, j] = it
            if st == OK or st == MARGINAL:
                q0 = out[i, j, 0] if out[i, j, 0] > 0.0 else -1.0
                c0 = out[i, j, 1] if out[i, j, 1] < 1.0 else -1.0
            else:
                q0 = -1.0
                c0 = -1.0
    return 0
