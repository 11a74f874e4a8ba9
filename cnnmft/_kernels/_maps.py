"""Fully-connected mean-field maps and their fixed points (numba kernels).

Outputs per point: q*, c*, chi_1, chi_q, chi_c, residual; status codes as cnnmft.results.Status.
"""

import math

import numpy as np
from numba import prange

from . import _act, _quad
from ._codes import INFINITE, MARGINAL, MAXITER, NONFINITE, OK, ZERO
from ._jit import cjit, helper, jit

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


@helper
def q_step(q, v, dv, sw, sb, lo, hi):
    """One safeguarded Newton step for g(q) = sw v(q) + sb - q on the bracket [lo, hi] (hi may be
    inf). Returns (qn, lo, hi, g, dg); the step q - g/dg is written without cancellation."""
    g = sw * v + sb - q
    if g > 0.0:
        lo = q
    else:
        hi = q
    dg = sw * dv - 1.0
    if dg < 0.0:
        qn = (sw * (q * dv - v) - sb) / dg
    elif hi < math.inf:
        qn = 0.5 * (lo + hi)
    else:
        qn = 4.0 * q
    if not (qn > lo and qn < hi):
        qn = 0.5 * (lo + hi) if hi < math.inf else 4.0 * max(q, lo)
    return qn, lo, hi, g, dg


@helper
def q_noise(q, v, sw, sb):
    """Rounding level of g(q) = sw v + sb - q: below it the sign of g is not resolved."""
    return 8.0 * 2.2e-16 * (q + sw * abs(v) + sb)


@helper
def q_converged(q, qn, g, dg, noise, lo, hi, tol):
    """Stopping rule shared by the q* solvers: step or bracket at tolerance, or the residual at
    the rounding level where the root is well conditioned (dg clearly negative) or bracketed.

    A residual at the rounding level of a map that is numerically the identity (dg ~ 0, no
    bracket) says nothing about a root: q^l may still grow without bound (relu-like maps at
    sigma_w2 = 2 with a tiny bias), so the search goes on."""
    if hi < math.inf and hi - lo <= tol * hi:
        return True
    if abs(qn - q) <= tol * q:
        # a tiny step is only trusted with a residual to match: at a stable root |dg| <= 1, so
        # |g| <= |qn - q|; a larger residual means the slope dg is not reliable (e.g. chi_q of
        # a bounded activation at q ~ 1e40, a difference of two terms 1e20 times larger)
        return abs(g) <= max(noise, 2.0 * tol * q)
    return abs(g) <= noise and (hi < math.inf or dg < -1e-6)


@helper
def bracket_step(c, h, dh, lo, hi, hlo, hhi, side):
    """One step of Newton (where dh < 0) / Illinois false position / bisection for a root of h
    with h > 0 left of it. Returns (cn, lo, hi, hlo, hhi, side)."""
    if h > 0.0:
        lo = c
        hlo = h
        if side == 1:
            hhi *= 0.5
        side = 1
    else:
        hi = c
        hhi = h
        if side == -1:
            hlo *= 0.5
        side = -1
    if dh < 0.0:
        cn = c - h / dh
    elif not math.isnan(hlo) and not math.isnan(hhi):
        cn = lo - hlo * (hi - lo) / (hhi - hlo)
    else:
        cn = 0.5 * (lo + hi)
    if not (cn > lo and cn < hi):
        cn = 0.5 * (lo + hi)
    return cn, lo, hi, hlo, hhi, side


@helper
def _linear_fixed_point(code, sw, sb):
    """Closed form for the linear q-maps (linear: q -> sw q + sb; relu: sw q / 2 + sb)."""
    k = sw if code == _act.LINEAR else 0.5 * sw
    if k < 1.0:
        return sb / (1.0 - k), (ZERO if sb == 0.0 else OK)
    if sb == 0.0 and k == 1.0:
        return 0.0, MARGINAL  # every q is a fixed point; q = 0 is reported
    return math.inf, INFINITE  # q^l grows without bound (q = 0 is unstable when sb = 0)


@helper
def q_fixed_point(code, sw, sb, phi0_zero, tol, maxiter, ws, q0=-1.0, b2=math.inf):
    """Return (q*, status, nit, residual) of q = sw E[phi(sqrt(q) z)^2] + sb.

    Safeguarded Newton inside a bracket [lo, hi] with g(lo) >= 0 > g(hi), g(q) = q_map(q) - q;
    q0 > 0 is an optional warm start. b2: sup phi^2 for a bounded activation (then
    hi = sw b2 + sb brackets the root from the start and q* is never reported INFINITE), inf
    otherwise (q* above QMAX is reported INFINITE).
    """
    if code == _act.RELU or code == _act.LINEAR:
        q, st = _linear_fixed_point(code, sw, sb)
        return q, st, 0, 0.0
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
    hi = math.inf
    if b2 < math.inf:
        top = (sw * b2 + sb) * (1.0 + 1e-15)
        if top > lo and sw * var(code, top, ws) + sb - top <= 0.0:
            hi = top
    if q0 > 0.0:
        q = q0
    else:
        q = max(1.0, sb + sw * var(code, max(sb, 1e-300), ws))
        if phi0_zero and sb > 0.0:
            s0 = sw * dvar(code, 1e-300, ws)
            if s0 < 1.0 and sb / (1.0 - s0) < 1e-3:
                q = sb / (1.0 - s0)  # fixed point of the map linearised at q = 0
    if q >= hi:
        q = 0.5 * (lo + hi) if lo > 0.0 else 0.5 * hi
    for it in range(1, maxiter + 1):
        v, dv = _quad.var_dvar(code, q, ws[0], ws[1], ws[2])
        g = sw * v + sb - q
        if not math.isfinite(g):
            if g > 0.0 and hi == math.inf:
                return math.inf, INFINITE, it, 0.0
            return math.nan, NONFINITE, it, math.nan
        noise = q_noise(q, v, sw, sb)
        if abs(g) <= noise and not (hi < math.inf or sw * dv - 1.0 < -1e-6):
            # the map is numerically the identity here: no sign for g, no bracket, keep looking
            # higher (a root would show as a clearly negative g)
            qn, dg = 4.0 * q, sw * dv - 1.0
        else:
            qn, lo, hi, g, dg = q_step(q, v, dv, sw, sb, lo, hi)
        if qn > QMAX and hi == math.inf:
            return math.inf, INFINITE, it, 0.0
        if q_converged(q, qn, g, dg, noise, lo, hi, tol):
            return (qn if abs(qn - q) <= 1e-13 * q else q), OK, it, abs(g) / max(q, 1e-300)
        if abs(qn - q) <= tol * q:
            # Newton stalled on an unreliable slope: one step of the map itself, q + g, which
            # contracts at a stable fixed point
            qn = q + g
            if not (qn > lo and qn < hi):
                qn = 0.5 * (lo + hi) if hi < math.inf else 4.0 * max(q, lo)
        q = qn
    return q, MAXITER, maxiter, abs(sw * var(code, q, ws) + sb - q) / max(q, 1e-300)


@helper
def _g_sign(code, q, sw, sb, ws):
    """Sign of g(q) = sw E[phi^2](q) + sb - q, 0 where it is below the rounding level."""
    v = var(code, q, ws)
    g = sw * v + sb - q
    if not math.isfinite(g):
        return 1.0 if g > 0.0 else -1.0
    if abs(g) <= q_noise(q, v, sw, sb):
        return 0.0
    return 1.0 if g > 0.0 else -1.0


@helper
def _log_bisect(code, sw, sb, a, b, fa, ws, which):
    """Root in [a, b] (bisection in log q) of g (which=0) or of g' = sw dV/dq - 1 (which=1),
    fa the sign at a (opposite at b)."""
    la = math.log(a)
    lb = math.log(b)
    for _ in range(64):
        lm = 0.5 * (la + lb)
        qm = math.exp(lm)
        if which == 0:
            fm = _g_sign(code, qm, sw, sb, ws)
        else:
            fm = sw * dvar(code, qm, ws) - 1.0
        if fm == 0.0:
            return qm
        if (fm > 0.0) == (fa > 0.0):
            la = lm
        else:
            lb = lm
        if lb - la <= 1e-15 * max(1.0, abs(la)):
            break
    return math.exp(0.5 * (la + lb))


@jit
def q_roots(code, sw, sb, phi0_zero, breaks, b2, ws, res):
    """Every fixed point of the q-map, for activations whose E[phi^2] is not concave in q.

    ``breaks``: the q where d/dq E[phi^2] changes monotonicity (a property of the activation),
    so that g' = sw dV/dq - 1 is monotone between them and has at most one root there; the
    roots of g' split [q_lo, q_hi] into pieces on which g is monotone, each holding at most one
    fixed point. res[0]: lowest attractor (0 when q = 0 is stable), res[1]: the repeller above
    it, res[2]: highest attractor (inf when q^l diverges from large q). Returns the number of
    attractors (2 or more: bistable).
    """
    res[0] = math.nan
    res[1] = math.nan
    res[2] = math.nan
    qlo = sb if sb > 0.0 else 1e-200
    qhi = QMAX
    unbounded = True
    if b2 < math.inf:
        top = (sw * b2 + sb) * (1.0 + 1e-15)
        if top > qlo and _g_sign(code, top, sw, sb, ws) <= 0.0:
            qhi = top
            unbounded = False
    if not qhi > qlo:
        return 0
    nodes = np.empty(breaks.size + 2)
    nodes[0] = qlo
    m = 1
    for b in breaks:
        if b > qlo and b < qhi:
            nodes[m] = b
            m += 1
    nodes[m] = qhi
    m += 1
    # roots of g' between consecutive monotonicity breaks
    pts = np.empty(2 * m)
    pts[0] = qlo
    n = 1
    gpa = sw * dvar(code, qlo, ws) - 1.0
    for i in range(1, m):
        gpb = sw * dvar(code, nodes[i], ws) - 1.0
        if (gpa > 0.0 and gpb < 0.0) or (gpa < 0.0 and gpb > 0.0):
            pts[n] = _log_bisect(code, sw, sb, nodes[i - 1], nodes[i], gpa, ws, 1)
            n += 1
        gpa = gpb
    pts[n] = qhi
    n += 1
    nat = 0
    sa = _g_sign(code, qlo, sw, sb, ws)
    if sb == 0.0 and phi0_zero and sa < 0.0:
        res[0] = 0.0  # q = 0 attracts
        res[2] = 0.0
        nat = 1
    qa = qlo
    for i in range(1, n):
        sbn = _g_sign(code, pts[i], sw, sb, ws)
        if sbn == 0.0:
            continue
        if sa != 0.0 and sbn != sa:
            r = _log_bisect(code, sw, sb, qa, pts[i], sa, ws, 0)
            if sa > 0.0:  # downward crossing: stable
                if nat == 0:
                    res[0] = r
                res[2] = r
                nat += 1
            elif nat >= 1 and math.isnan(res[1]):
                res[1] = r
        sa = sbn
        qa = pts[i]
    if unbounded and sa > 0.0:
        if nat == 0:
            res[0] = math.inf
        res[2] = math.inf
        nat += 1
    return nat


@cjit
def q_roots_many(code, sw, sb, phi0_zero, breaks, b2, res, nat, nchunk):
    n = sw.size
    per = (n + nchunk - 1) // nchunk
    for ch in prange(nchunk):
        ws = _quad.new_workspace()
        for i in range(ch * per, min(n, (ch + 1) * per)):
            nat[i] = q_roots(code, sw[i], sb[i], phi0_zero, breaks, b2, ws, res[i])
    return 0


@helper
def cov2(code, a, b, q, c, ws):
    return _quad.expect_2d(code, a, b, q, q, c, ws)


@helper
def c_fixed_point(code, q, sw, sb, phi_odd, tol, maxiter, ws, c0=-1.0):
    """Return (c*, chi_c, status, nit, residual) of the c-map in the chaotic phase (chi_1 > 1).

    h(c) = (sw K(c) + sb)/q - c has h(0) >= 0 (K(0) = E[phi]^2), h(1) = 0 and h'(1) > 0, so
    c* is the root in [0, 1): safeguarded Newton (derivative chi_c(c) - 1, used only where it is
    negative) with bisection on the bracket; c0 in (0, 1) is an optional warm start.
    """
    if sb == 0.0 and phi_odd:
        k0, k1 = _quad.cmap_pair(code, q, 0.0, ws)
        return 0.0, sw * k1, OK, 0, 0.0
    lo = 0.0
    hi = 1.0
    hlo = math.nan
    hhi = math.nan
    side = 0
    c = c0 if (c0 > 0.0 and c0 < 1.0) else 0.5
    for it in range(1, maxiter + 1):
        k0, k1 = _quad.cmap_pair(code, q, c, ws)
        h = (sw * k0 + sb) / q - c
        cn, lo, hi, hlo, hhi, side = bracket_step(c, h, sw * k1 - 1.0, lo, hi, hlo, hhi, side)
        if abs(cn - c) <= tol or abs(h) <= 4e-16:
            return c, sw * k1, OK, it, abs(h)
        if 1.0 - c < 1e-15 and h <= 0.0:
            return 1.0, sw * k1, MARGINAL, it, abs(h)
        c = cn
    return c, sw * k1, MAXITER, maxiter, abs(h)


KMAX = 320
MAXW_H = 2.25  # widest panel of the rule for the Hermite coefficients


@jit
def hermite_coef(code, q, kmax, ws, coef):
    """The one Hermite (Mehler) coefficient code of cnnmft: coef[k] = a_k =
    E[phi(sqrt(q) z) He_k(z)] / sqrt(k!), k = 0..kmax, so that for a centred normal pair with
    variances q1, q2 and correlation c, E[phi(u1) phi(u2)] = sum_k a_k(q1) a_k(q2) c^k.

    A composite Gauss-Legendre rule with panels no wider than min(MAXW_H, 7/sqrt(kmax + 1))
    (He_k oscillates on that scale), the normalised three-term recurrence
    h_{k+1} = (z h_k - sqrt(k) h_{k-1}) / sqrt(k + 1), z truncated to |z| <= 9 (absolute error
    ~1e-11 at k = 15 for a unit-scale phi, far less on a_k^2). Returns (E[phi^2], E[phi'^2])
    from the same rule (the Parseval totals that bound the truncation).
    """
    maxw = min(MAXW_H, 7.0 / math.sqrt(kmax + 1.0))
    n = _quad.rule_fine(code, q, maxw, ws[0], ws[1], ws[2])
    z = ws[1]
    f = ws[3]
    hp = ws[4]
    hc = ws[5]
    sq = math.sqrt(q)
    v = 0.0
    s = 0.0
    a0 = 0.0
    a1 = 0.0
    for i in range(n):
        p0, p1 = _act.phi_dphi(code, sq * z[i])
        f[i] = ws[2][i] * p0
        v += f[i] * p0
        s += ws[2][i] * p1 * p1
        hp[i] = 1.0
        hc[i] = z[i]
        a0 += f[i]
        a1 += f[i] * z[i]
    coef[0] = a0
    if kmax >= 1:
        coef[1] = a1
    for k in range(1, kmax):
        r1 = 1.0 / math.sqrt(k + 1.0)
        r2 = math.sqrt(k) * r1
        acc = 0.0
        for i in range(n):
            h = z[i] * hc[i] * r1 - r2 * hp[i]
            hp[i] = hc[i]
            hc[i] = h
            acc += f[i] * h
        coef[k + 1] = acc
    return v, s


@jit
def hermite_sq(code, q, kmax, ws, coef):
    """coef[k] = a_k^2 (see hermite_coef), k = 0..kmax (Mehler at equal variances q:
    E[phi(u1) phi(u2)] = sum_k a_k^2 c^k). Returns (E[phi^2], E[phi'^2])."""
    v, s = hermite_coef(code, q, kmax, ws, coef)
    for k in range(kmax + 1):
        coef[k] = coef[k] * coef[k]
    return v, s


@helper
def _series(coef, kmax, c):
    """(sum_k coef_k c^k, sum_k k coef_k c^(k-1)) by Horner."""
    p = coef[kmax]
    d = kmax * coef[kmax]
    for k in range(kmax - 1, -1, -1):
        p = p * c + coef[k]
        if k >= 1:
            d = d * c + k * coef[k]
    return p, d


@helper
def _series_solve(q, sw, sb, tol, maxiter, coef, kmax, cg):
    """Root of h(c) = (sw sum_k coef_k c^k + sb)/q - c in [0, 1) from cg; (c, dk, h, it)."""
    lo = 0.0
    hi = 1.0
    hlo = math.nan
    hhi = math.nan
    side = 0
    c = cg
    dk = 0.0
    h = 0.0
    for it in range(1, maxiter + 1):
        k0, dk = _series(coef, kmax, c)
        h = (sw * k0 + sb) / q - c
        cn, lo, hi, hlo, hhi, side = bracket_step(c, h, sw * dk / q - 1.0, lo, hi, hlo, hhi, side)
        if abs(cn - c) <= tol or abs(h) <= 4e-16:
            return c, dk, h, it
        c = cn
    return c, dk, h, maxiter


@helper
def c_fixed_point_series(code, q, sw, sb, tol, maxiter, ws, coef, c0):
    """c* from the Mehler series of the c-map; returns (c, chi_c, ok, nit, residual).

    The series is truncated at kmax (doubled up to KMAX while needed). With
    T0 = E[phi^2] - sum_{k<=kmax} a_k^2 and T1 = q E[phi'^2] - sum k a_k^2 (Parseval), the
    truncation errors of K(c) and K'(c) are at most c^(kmax+1) T0 and c^kmax T1; the result is
    accepted (ok) only when both bounds are below 1e-14 relative to the slope of h. Otherwise c
    is returned as a starting point for direct quadrature.
    """
    cg = c0 if (c0 > 0.0 and c0 < 1.0) else 0.5
    kmax = min(KMAX, max(24, int(36.0 / -math.log(min(max(cg, 0.02) + 0.1, 0.995))) + 8))
    nit = 0
    c = cg
    while True:
        v, s = hermite_sq(code, q, kmax, ws, coef)
        tail0 = v
        tail1 = q * s
        for k in range(kmax + 1):
            tail0 -= coef[k]
            tail1 -= k * coef[k]
        tail0 = max(tail0, 0.0) + 1e-16 * v
        tail1 = max(tail1, 0.0) + 1e-16 * q * s
        c, dk, h, it = _series_solve(q, sw, sb, tol, maxiter, coef, kmax, cg)
        nit += it
        slope = max(1.0 - sw * dk / q, 1e-3)
        err0 = sw * c ** (kmax + 1) * tail0 / q
        err1 = sw * c**kmax * tail1 / q
        if err0 <= 1e-14 * slope and err1 <= 1e-12:
            return c, sw * dk / q, True, nit, abs(h)
        if kmax >= KMAX or c <= 0.0:
            return c, 0.0, False, nit, 0.0
        # smallest truncation that the current tail bound already guarantees (tail0 only
        # shrinks with kmax); if even KMAX is not enough by that bound, go to quadrature now
        need = math.log(1e-14 * slope * q / (sw * tail0)) / math.log(c) - 1.0
        if need > KMAX:
            return c, 0.0, False, nit, 0.0
        kmax = min(KMAX, max(int(need) + 2, kmax + 8))
        cg = c


@jit
def fixed_point_one(
    code,
    sw,
    sb,
    phi0_zero,
    phi_odd,
    tol,
    maxiter,
    ws,
    out,
    q0=-1.0,
    c0=-1.0,
    series=False,
    b2=math.inf,
):
    """Fill out[:NOUT] for one (sw, sb); return (status, nit). q0, c0: optional warm starts;
    b2: sup phi^2 of a bounded activation (inf otherwise)."""
    q, st, nit, res = q_fixed_point(code, sw, sb, phi0_zero, tol, maxiter, ws, q0, b2)
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
    ok = False
    c = -1.0
    if series and not (sb == 0.0 and phi_odd):
        c, chic, ok, nitc, resc = c_fixed_point_series(
            code, q, sw, sb, 1e-15, maxiter, ws, ws[6], c0
        )
        stc = OK
    if not ok:
        if series and not (sb == 0.0 and phi_odd) and c > 0.0 and c < 1.0:
            c0 = c  # warm start from the truncated series
        c, chic, stc, nitc, resc = c_fixed_point(code, q, sw, sb, phi_odd, 1e-15, maxiter, ws, c0)
    out[1] = c
    out[6] = resc
    out[4] = chic
    if stc != OK:
        st = stc
    return st, nit + nitc


@jit
def fixed_point_range(
    code, sw, sb, phi0_zero, phi_odd, tol, maxiter, out, status, nit, lo, hi, series, b2
):
    """fixed_point_one for the points lo..hi-1, with one workspace (the serial driver)."""
    ws = _quad.new_workspace()
    for i in range(lo, hi):
        st, it = fixed_point_one(
            code, sw[i], sb[i], phi0_zero, phi_odd, tol, maxiter, ws, out[i], -1.0, -1.0, series, b2
        )
        status[i] = st
        nit[i] = it
    return 0


@cjit
def fixed_point_many(
    code, sw, sb, phi0_zero, phi_odd, tol, maxiter, out, status, nit, nchunk, series, b2=math.inf
):
    """fixed_point_range over nchunk chunks in parallel (compiled only for grids: the first
    call of a process with one point or one thread does not need the parallel machinery)."""
    n = sw.size
    per = (n + nchunk - 1) // nchunk
    for ch in prange(nchunk):
        fixed_point_range(
            code,
            sw,
            sb,
            phi0_zero,
            phi_odd,
            tol,
            maxiter,
            out,
            status,
            nit,
            ch * per,
            min(n, (ch + 1) * per),
            series,
            b2,
        )
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
        out[i] = (sw[i] * cov2(code, 0, 0, q[i], c[i], ws) + sb[i]) / (
            sw[i] * var(code, q[i], ws) + sb[i]
        )
        dout[i] = (
            sw[i] * cov2(code, 1, 1, q[i], c[i], ws) * q[i] / (sw[i] * var(code, q[i], ws) + sb[i])
        )
    return 0
