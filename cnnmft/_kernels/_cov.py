"""Kernels of the CNN covariance map Sigma -> A * C(Sigma) on a circular grid.

State layout: ``S[alpha, col]`` with ``alpha`` the flat pixel index of a grid (n1, n2, n3)
(C order) and one column per (input a, input b, displacement delta): the entry is
``Sigma[(a, alpha), (b, alpha + delta)]``. The pixel ``alpha + delta`` is computed per axis
modulo the grid size. ``C`` acts entrywise (needs the two variances, gathered from ``qpix``),
``A`` acts along ``alpha`` for every column: ``S'[alpha] = sum_t v_t T[alpha + o_t]``.

Threads: every per-layer kernel exists serially (``jit``) and as ``*_par`` (``pjit``) over
``nblocks`` contiguous row blocks, one per thread, each computing its rows exactly as the serial
kernel does (bit-identical results); the caller picks (``cnnmft._covariance_engine.Pace``).
The scalar iterations (linear, translation-invariant, delta-v tabulation) are serial: they never
launch a parallel region inside a loop over layers.

Entry evaluators:
* Mehler series: E[phi(u1) phi(u2)] = sum_k c_k(q1) c_k(q2) rho^k with c_k(q) the normalised
  Hermite coefficients of phi(sqrt(q) z); only every ``step``-th term from ``k0`` is stored.
* closed forms: linear, erf (arcsine), relu (arc-cosine), in :mod:`._closed`.
* direct: the adaptive bivariate quadrature of ``_quad.expect_2d``.
"""

import math

import numpy as np
from numba import prange

from . import _quad
from ._jit import helper, jit, pjit

OK = 0
NONFINITE = -3
# at the common fixed variance qs an entry with rho = s / qs >= PIN is a variance (or a pair of
# identical pixels) and is set to qs exactly: rounding (qs * (1 / qs), the sum of the taps of A)
# must not turn rho = 1 into 1 - eps, which the correlation map moves away from at the rate
# chi_1 > 1 in the chaotic phase
PIN = 1.0 - 64 * 2.220446049250313e-16


@helper
def _split(alpha, n2, n3):
    """Grid coordinates (i1, i2, i3) of the flat pixel index alpha."""
    r = alpha // n3
    return r // n2, r % n2, alpha % n3


@helper
def _partner(alpha, d1, d2, d3, n1, n2, n3):
    """Flat index of pixel alpha + (d1, d2, d3), circular (0 <= d_i < n_i)."""
    i1, i2, i3 = _split(alpha, n2, n3)
    return _shifted(i1, i2, i3, d1, d2, d3, n1, n2, n3)


@helper
def _shifted(i1, i2, i3, d1, d2, d3, n1, n2, n3):
    """Flat index of pixel (i1, i2, i3) + (d1, d2, d3), circular, without a division (inner
    loops split alpha into (i1, i2, i3) once per row)."""
    j1 = i1 + d1
    if j1 >= n1:
        j1 -= n1
    j2 = i2 + d2
    if j2 >= n2:
        j2 -= n2
    j3 = i3 + d3
    if j3 >= n3:
        j3 -= n3
    return (j1 * n2 + j2) * n3 + j3


@helper
def _rho(s, q1, q2):
    den = math.sqrt(q1 * q2)
    if den > 0.0:
        r = s / den
        if r > 1.0:
            r = 1.0
        elif r < -1.0:
            r = -1.0
        return r
    return 0.0


@helper
def _nterms(x, nterm):
    nb = nterm.shape[0]
    i = int(abs(x) * nb)
    if i >= nb:
        i = nb - 1
    return nterm[i]


@helper
def _clip1(x):
    if x > 1.0:
        return 1.0
    if x < -1.0:
        return -1.0
    return x


@jit  # 83 lines: the four-way unrolled inner loop is the point of this kernel
def _pix_rows(
    S, T, lo, hi, cola, colb, cd1, cd2, cd3, n1, n2, n3, coef, nterm, k0, step, isq, sw2, sb2
):
    """Rows lo..hi-1 of T = C(S) with per-pixel Mehler coefficients coef[input * N + pixel].

    Four independent series per step keep the multiply-add pipeline busy. nterm[i] is the
    number of terms enough for |rho| <= (i + 1) / len(nterm) (the tail bound is below 1e-17).
    """
    npix = S.shape[0]
    ncol = S.shape[1]
    nb = ncol - ncol % 4
    pa = np.empty(4, dtype=np.int64)
    pb = np.empty(4, dtype=np.int64)
    xs = np.empty(4)
    for alpha in range(lo, hi):
        i1, i2, i3 = _split(alpha, n2, n3)
        for c in range(0, nb, 4):
            for u in range(4):
                cu = c + u
                pa[u] = cola[cu] * npix + alpha
                pb[u] = colb[cu] * npix + _shifted(
                    i1, i2, i3, cd1[cu], cd2[cu], cd3[cu], n1, n2, n3
                )
                xs[u] = _clip1(S[alpha, cu] * isq[pa[u]] * isq[pb[u]])
            x0 = xs[0]
            x1 = xs[1]
            x2 = xs[2]
            x3 = xs[3]
            if step == 1:
                r0, r1, r2, r3 = x0, x1, x2, x3
            else:
                r0, r1, r2, r3 = x0 * x0, x1 * x1, x2 * x2, x3 * x3
            u0 = coef[pa[0]]
            u1 = coef[pa[1]]
            u2 = coef[pa[2]]
            u3 = coef[pa[3]]
            w0 = coef[pb[0]]
            w1 = coef[pb[1]]
            w2 = coef[pb[2]]
            w3 = coef[pb[3]]
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            kc = max(
                max(_nterms(x0, nterm), _nterms(x1, nterm)),
                max(_nterms(x2, nterm), _nterms(x3, nterm)),
            )
            for t in range(kc - 1, -1, -1):
                s0 = s0 * r0 + u0[t] * w0[t]
                s1 = s1 * r1 + u1[t] * w1[t]
                s2 = s2 * r2 + u2[t] * w2[t]
                s3 = s3 * r3 + u3[t] * w3[t]
            if k0 == 1:
                s0 *= x0
                s1 *= x1
                s2 *= x2
                s3 *= x3
            T[alpha, c] = sw2 * s0 + sb2
            T[alpha, c + 1] = sw2 * s1 + sb2
            T[alpha, c + 2] = sw2 * s2 + sb2
            T[alpha, c + 3] = sw2 * s3 + sb2
        for c in range(nb, ncol):
            p1 = cola[c] * npix + alpha
            p2 = colb[c] * npix + _shifted(i1, i2, i3, cd1[c], cd2[c], cd3[c], n1, n2, n3)
            x = _clip1(S[alpha, c] * isq[p1] * isq[p2])
            kc = _nterms(x, nterm)
            r = x if step == 1 else x * x
            c1 = coef[p1]
            c2 = coef[p2]
            acc = 0.0
            for t in range(kc - 1, -1, -1):
                acc = acc * r + c1[t] * c2[t]
            if k0 == 1:
                acc *= x
            T[alpha, c] = sw2 * acc + sb2


@jit
def term_table(cmax2, step, tol, out):
    """out[i] = smallest n >= 1 with sum_{t >= n} cmax2[t] r^t <= tol (cmax2.size if none), for
    bin i of |rho| <= (i + 1) / out.size, r = |rho| (step 1) or rho^2 (step 2)."""
    nbins = out.shape[0]
    kc = cmax2.shape[0]
    terms = np.empty(kc)
    for i in range(nbins):
        rho = (i + 1) / nbins
        r = rho if step == 1 else rho * rho
        pw = 1.0
        for t in range(kc):
            terms[t] = cmax2[t] * pw
            pw *= r
        # the first t (from the top) whose tail is above tol ends the run of small tails
        n = kc
        acc = 0.0
        for t in range(kc - 1, -1, -1):
            acc += terms[t]
            if acc <= tol:
                n = t
            else:
                break
        out[i] = max(n, 1)


@helper
def _inv_sqrt(qpix):
    isq = np.empty(qpix.shape[0])
    for p in range(qpix.shape[0]):
        isq[p] = 1.0 / math.sqrt(qpix[p]) if qpix[p] > 0.0 else 0.0
    return isq


@jit
def c_mehler_pix(
    S, T, cola, colb, cd1, cd2, cd3, n1, n2, n3, coef, nterm, k0, step, qpix, sw2, sb2
):
    """T = C(S) with per-pixel Mehler coefficients (serial)."""
    isq = _inv_sqrt(qpix)
    _pix_rows(
        S,
        T,
        0,
        S.shape[0],
        cola,
        colb,
        cd1,
        cd2,
        cd3,
        n1,
        n2,
        n3,
        coef,
        nterm,
        k0,
        step,
        isq,
        sw2,
        sb2,
    )


@pjit
def c_mehler_pix_par(
    S, T, cola, colb, cd1, cd2, cd3, n1, n2, n3, coef, nterm, k0, step, qpix, sw2, sb2, nblocks
):
    """Like :func:`c_mehler_pix` with the rows cut into `nblocks` contiguous blocks (threads).

    One block per thread: a few large tasks, so that a thread that loses its core to another
    process delays one block, not every one of many small ones. Every row is computed exactly
    as in the serial kernel (bit-identical results).
    """
    isq = _inv_sqrt(qpix)
    npix = S.shape[0]
    for b in prange(nblocks):
        lo = b * npix // nblocks
        hi = (b + 1) * npix // nblocks
        _pix_rows(
            S,
            T,
            lo,
            hi,
            cola,
            colb,
            cd1,
            cd2,
            cd3,
            n1,
            n2,
            n3,
            coef,
            nterm,
            k0,
            step,
            isq,
            sw2,
            sb2,
        )


@helper
def _common_rows(S, T, lo, hi, a, k0, step, qs, sw2, sb2):
    """Rows lo..hi-1 of T = g(S), g the map of one entry when every variance is the fixed qs.

    g(s) = sw2 * rho^k0 * sum_t a_t r^t + sb2 with rho = s / qs, r = rho^step (a_t = c_t^2).
    An entry with rho >= PIN (a variance, or a pair of identical pixels) is pinned to qs: it
    follows the variance map, whose fixed point qs is, not the correlation map (for which
    rho = 1 is a fixed point that is unstable in the chaotic phase).
    """
    ncol = S.shape[1]
    kc = a.shape[0]
    invq = 1.0 / qs
    rho = np.empty(ncol)
    r = np.empty(ncol)
    acc = np.empty(ncol)
    for alpha in range(lo, hi):
        for c in range(ncol):
            x = _clip1(S[alpha, c] * invq)
            rho[c] = x
            r[c] = x if step == 1 else x * x
            acc[c] = a[kc - 1]
        for t in range(kc - 2, -1, -1):
            at = a[t]
            for c in range(ncol):
                acc[c] = acc[c] * r[c] + at
        for c in range(ncol):
            if rho[c] >= PIN:
                T[alpha, c] = qs
            else:
                y = acc[c] * rho[c] if k0 == 1 else acc[c]
                T[alpha, c] = sw2 * y + sb2


@helper
def c_mehler_common(S, T, a, k0, step, qs, sw2, sb2):
    """T = C(S) when every variance equals the fixed point qs (serial; see _common_rows)."""
    _common_rows(S, T, 0, S.shape[0], a, k0, step, qs, sw2, sb2)


@pjit
def c_mehler_common_par(S, T, a, k0, step, qs, sw2, sb2, nblocks):
    """Like :func:`c_mehler_common` over `nblocks` contiguous row blocks (bit-identical)."""
    npix = S.shape[0]
    for b in prange(nblocks):
        _common_rows(
            S, T, b * npix // nblocks, (b + 1) * npix // nblocks, a, k0, step, qs, sw2, sb2
        )


@jit
def g_common(s, a, k0, step, qs, sw2, sb2):
    """The scalar map of one entry at the common fixed variance qs (pinned at rho >= 1)."""
    rho = _clip1(s * (1.0 / qs))
    if rho >= PIN:  # pinned (see _common_rows)
        return qs
    r = rho if step == 1 else rho * rho
    kc = a.shape[0]
    acc = a[kc - 1]
    for t in range(kc - 2, -1, -1):
        acc = acc * r + a[t]
    if k0 == 1:
        acc *= rho
    return sw2 * acc + sb2


@jit
def c_direct(S, T, code, cola, colb, cd1, cd2, cd3, n1, n2, n3, qpix, sw2, sb2):
    """Reference path: every entry by the adaptive bivariate quadrature (serial)."""
    ws = _quad.new_workspace()
    npix = S.shape[0]
    ncol = S.shape[1]
    for alpha in range(npix):
        for c in range(ncol):
            j = _partner(alpha, cd1[c], cd2[c], cd3[c], n1, n2, n3)
            q1 = qpix[cola[c] * npix + alpha]
            q2 = qpix[colb[c] * npix + j]
            rho = _rho(S[alpha, c], q1, q2)
            T[alpha, c] = sw2 * _quad.expect_2d(code, 0, 0, q1, q2, rho, ws) + sb2


@helper
def _a_rows(T, S, lo, hi, taps, o1, o2, o3, n1, n2, n3):
    ncol = T.shape[1]
    nt = taps.shape[0]
    for alpha in range(lo, hi):
        for c in range(ncol):
            S[alpha, c] = 0.0
        for t in range(nt):
            src = _partner(alpha, o1[t], o2[t], o3[t], n1, n2, n3)
            w = taps[t]
            for c in range(ncol):
                S[alpha, c] += w * T[src, c]


@jit
def a_apply(T, S, taps, o1, o2, o3, n1, n2, n3):
    """S[alpha, :] = sum_t taps[t] * T[alpha + o_t, :] (circular)."""
    _a_rows(T, S, 0, T.shape[0], taps, o1, o2, o3, n1, n2, n3)


@pjit
def a_apply_par(T, S, taps, o1, o2, o3, n1, n2, n3, nblocks):
    """Like :func:`a_apply` over `nblocks` contiguous row blocks (bit-identical)."""
    npix = T.shape[0]
    for b in prange(nblocks):
        _a_rows(T, S, b * npix // nblocks, (b + 1) * npix // nblocks, taps, o1, o2, o3, n1, n2, n3)


@jit
def column_spread(S):
    """max over columns of (max_alpha S - min_alpha S); NaN-propagating."""
    npix = S.shape[0]
    ncol = S.shape[1]
    lo = S[0].copy()
    hi = S[0].copy()
    for alpha in range(1, npix):
        for c in range(ncol):
            x = S[alpha, c]
            if x < lo[c]:
                lo[c] = x
            if x > hi[c]:
                hi[c] = x
    m = 0.0
    for c in range(ncol):
        d = hi[c] - lo[c]
        if not (d <= m):
            m = d
    return m


@jit
def pin_common(S, qs):
    """Set every entry with s / qs >= PIN to qs (after A, which rounds a constant column)."""
    thr = PIN * qs
    for alpha in range(S.shape[0]):
        for c in range(S.shape[1]):
            if S[alpha, c] >= thr:
                S[alpha, c] = qs


@jit
def run_common(S, T, nlayers, a, k0, step, qs, sw2, sb2, taps, o1, o2, o3, n1, n2, n3, stop_spread):
    """Run up to nlayers layers S <- A g(S) at the common fixed variance qs (serial).

    The column spread is checked after every layer (so where this stops does not depend on
    how the layers are cut into calls); stops after the first layer whose spread is
    <= stop_spread. Returns (layers done, last spread, status).
    """
    npix = S.shape[0]
    sp = 0.0
    for layer in range(nlayers):
        _common_rows(S, T, 0, npix, a, k0, step, qs, sw2, sb2)
        _a_rows(T, S, 0, npix, taps, o1, o2, o3, n1, n2, n3)
        pin_common(S, qs)
        sp = column_spread(S)
        if not math.isfinite(sp):
            return layer + 1, sp, NONFINITE
        if sp <= stop_spread:
            return layer + 1, sp, OK
    return nlayers, sp, OK


@jit
def run_reduced_common(x, nlayers, a, k0, step, qs, sw2, sb2):
    """Translation-invariant state x (one value per column), common variance: x <- g(x)."""
    for layer in range(nlayers):
        for c in range(x.shape[0]):
            x[c] = g_common(x[c], a, k0, step, qs, sw2, sb2)
        if not math.isfinite(x[0]):
            return layer + 1, NONFINITE
    return nlayers, OK


@helper
def _g_vec(s, rho, acc, a, k0, step, qs, sw2, sb2):
    """s[i] <- g_common(s[i]) for every i, the Horner loops outside (vectorises)."""
    n = s.shape[0]
    kc = a.shape[0]
    invq = 1.0 / qs
    for i in range(n):
        x = _clip1(s[i] * invq)
        rho[i] = x
        s[i] = x if step == 1 else x * x
        acc[i] = a[kc - 1]
    for t in range(kc - 2, -1, -1):
        at = a[t]
        for i in range(n):
            acc[i] = acc[i] * s[i] + at
    for i in range(n):
        if rho[i] >= PIN:
            s[i] = qs
        else:
            y = acc[i] * rho[i] if k0 == 1 else acc[i]
            s[i] = sw2 * y + sb2


@jit
def iterate_points(x, nlayers, a, k0, step, qs, sw2, sb2, out, snap_at):
    """Iterate the scalar map g of :func:`g_common` on every point of x (serial).

    out[j, i] receives the value after snap_at[j] layers (snap_at increasing, <= nlayers).
    Points go in blocks of 64 so that the series evaluation vectorises; every point's value is
    computed exactly as by :func:`g_common`.
    """
    nsnap = snap_at.shape[0]
    npts = x.shape[0]
    blk = 64
    s = np.empty(blk)
    rho = np.empty(blk)
    acc = np.empty(blk)
    for start in range(0, npts, blk):
        m = min(npts, start + blk) - start
        sv = s[:m]
        for i in range(m):
            sv[i] = x[start + i]
        j = 0
        for layer in range(1, nlayers + 1):
            _g_vec(sv, rho[:m], acc[:m], a, k0, step, qs, sw2, sb2)
            while j < nsnap and snap_at[j] == layer:
                for i in range(m):
                    out[j, start + i] = sv[i]
                j += 1


@jit
def iterate_panels(pts, ndeg, W, nlayers, a, k0, step, qs, sw2, sb2, snap_at, out, err):
    """Iterate g on the nodes and check points of interpolation panels (delta-v tabulation).

    pts[p, :ndeg] are the Chebyshev nodes of panel p and pts[p, ndeg:] its check points; W maps
    node values to check-point values (barycentric interpolation). err[p] receives the largest
    interpolation error at the check points over EVERY layer 1..nlayers (so which panels are
    accepted does not depend on the layers asked for); out[j, p, :] the node values after
    snap_at[j] layers.
    """
    npan = pts.shape[0]
    npt = pts.shape[1]
    nck = npt - ndeg
    nsnap = snap_at.shape[0]
    s = np.empty(npt)
    rho = np.empty(npt)
    acc = np.empty(npt)
    for p in range(npan):
        for i in range(npt):
            s[i] = pts[p, i]
        e = 0.0
        j = 0
        for layer in range(1, nlayers + 1):
            _g_vec(s, rho, acc, a, k0, step, qs, sw2, sb2)
            for m in range(nck):
                sm = 0.0
                for k in range(ndeg):
                    sm += W[m, k] * s[k]
                d = abs(sm - s[ndeg + m])
                if not (d <= e):
                    e = d
            while j < nsnap and snap_at[j] == layer:
                for k in range(ndeg):
                    out[j, p, k] = s[k]
                j += 1
        err[p] = e


@jit
def cheb_coefs(f, costab):
    """Chebyshev coefficients from values at first-kind nodes: f (P, nsnap, deg) -> same shape.

    costab[m, k] = cos(m theta_k) with nodes cos(theta_k), theta_k = pi (2k + 1) / (2 deg).
    """
    npan, nsnap, deg = f.shape
    c = np.zeros_like(f)
    for p in range(npan):
        for j in range(nsnap):
            for m in range(deg):
                acc = 0.0
                for k in range(deg):
                    acc += f[p, j, k] * costab[m, k]
                c[p, j, m] = acc * ((1.0 if m == 0 else 2.0) / deg)
    return c


@jit
def run_linear(m, G, nlayers, a, k0, step, qs, sw2, sb2, dmax, pw, mag, ti_bound, grow_bound):
    """Linear regime: iterate m <- g(m) per column and multiply G by the slope g'(m).

    g(s) = sw2 * rho^k0 * sum_t a_t r^t + sb2 with rho = s / qs, r = rho^step; a column at
    rho >= PIN (a variance) is pinned to qs with slope 0 (see _common_rows). After every layer
    the deviation bound max|G| * sum_f dmax_f |lam_f|^k (pw holds |lam_f|^k, advanced here) is
    compared with ti_bound (translation invariant: stop, flag 1) and grow_bound (the deviation
    grew too large for the first-order treatment: stop, flag 2).
    Returns (layers done, flag, status).
    """
    kc = a.shape[0]
    invq = 1.0 / qs
    for layer in range(nlayers):
        gmax = 0.0
        for c in range(m.shape[0]):
            rho = _clip1(m[c] * invq)
            if rho >= PIN:
                m[c] = qs
                G[c] = 0.0
                continue
            r = rho if step == 1 else rho * rho
            acc = a[kc - 1]
            dacc = 0.0
            for t in range(kc - 2, -1, -1):
                dacc = dacc * r + acc
                acc = acc * r + a[t]
            dr = 1.0 if step == 1 else 2.0 * rho
            if k0 == 1:
                y = rho * acc
                dy = acc + rho * dacc * dr
            else:
                y = acc
                dy = dacc * dr
            G[c] *= sw2 * dy * invq
            m[c] = sw2 * y + sb2
            if abs(G[c]) > gmax:
                gmax = abs(G[c])
        if not math.isfinite(m[0]) or not math.isfinite(gmax):
            return layer + 1, 0, NONFINITE
        tot = 0.0
        for f in range(pw.shape[0]):
            pw[f] *= mag[f]
            tot += dmax[f] * pw[f]
        bound = gmax * tot
        if bound <= ti_bound:
            return layer + 1, 1, OK
        if bound > grow_bound:
            return layer + 1, 2, OK
    return nlayers, 0, OK


@jit
def cheb_eval(vals, idx, starts, ends, coefs, out, done):
    """out[:, i] = Chebyshev series of panel idx[i] at vals[i] (Clenshaw), if vals[i] lies in it."""
    nsnap = coefs.shape[1]
    deg = coefs.shape[2]
    for i in range(vals.shape[0]):
        p = idx[i]
        a = starts[p]
        b = ends[p]
        x = vals[i]
        if x < a or x > b:
            continue
        t = (2.0 * x - (a + b)) / (b - a)
        t2 = 2.0 * t
        for j in range(nsnap):
            c = coefs[p, j]
            b1 = 0.0
            b2 = 0.0
            for k in range(deg - 1, 0, -1):
                bk = t2 * b1 - b2 + c[k]
                b2 = b1
                b1 = bk
            out[j, i] = t * b1 - b2 + c[0]
        done[i] = True
