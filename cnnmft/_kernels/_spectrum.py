"""Free-probability kernels for the Jacobian spectrum (see ``cnnmft.spectrum``).

The law of d = phi'(sqrt(q) z)^2, z ~ N(0, 1), is represented by a composite Gauss-Legendre rule
on panels in z (values ``dn``, slopes ``dpn = dd/dz`` and weights ``wn`` summing to 1). For a
complex x the sums

    S0 = E[1/(x-d)], m = E[d/(x-d)], T0 = E[1/(x-d)^2], M1 = E[d/(x-d)^2],
    Q2 = E[d^2/(x-d)^2], U = E[Log(x - d)]

are accumulated panel by panel. A panel is accepted only if the nearest complex pole of
1/(x - d(z)) is far from it compared with its half-width h: for every node,
|x - d_i| >= THR * h * |d'_i| (first-order distance to the pole), or if its weight is too small
to matter. Otherwise the panel is bisected recursively with fresh nodes (phi' and phi''
evaluated by activation code), so the sums stay accurate (no spikes) when x approaches the
support of the law of d.

Unknown of the spectral equation: x = M_{D^2}^{-1}(m), m = M_{D^2}(x), 1 + m = x S0. The
normalised log inverse M-transforms (spectrum of JJ^T / m1) are

    orthogonal: F(x) = Log(x/mu1) + (L-1) Log(m / (S0 mu1))          [x m/(1+m) = m/S0]
    Gaussian:   F(x) = Log(x S0) + (L-1) (Log m + Log(x/mu1)) + Log(x/mu1)

and CDF(lambda) = 1 - Im Phi(x(lambda)) / pi with the antiderivative of G = (1+m)/z along the
solution,

    orthogonal: Phi = (L-1) Log m + L U,   Gaussian: Phi = L m + (L-1) Log m + L U.
"""

import cmath
import math

import numpy as np

from . import _act, _quad
from ._codes import INACCURATE, MAXITER, NO_SOLUTION, NONFINITE, OK
from ._jit import helper, jit

NGL = 16
_GL_X, _GL_W = _quad.gauss_legendre(NGL)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
THR = 1.5
MAXDEPTH = 48
STACK = 256
DSCALE = 1.0

# kinds
ORTH = 0
GAUSS = 1

# status bits of the sums
SUM_OK = 0
SUM_DEPTH = 1  # refinement hit the depth cap (pole on the real axis)
SUM_NOREFINE = 2  # panel needed refinement but the activation has no kernel code


@helper
def _clog1p(w):
    u = 1.0 + w
    if u == 1.0:
        return w
    return cmath.log(u) * w / (u - 1.0)


@helper
def _panel_nodes(code, sq, a, b, wscale, zz, dd, ee, dp, ww, mu1):
    h = 0.5 * (b - a)
    c = 0.5 * (b + a)
    for j in range(NGL):
        z = c + h * _GL_X[j]
        u = sq * z
        p1 = _act.dphi(code, u)
        p2 = _act.d2phi(code, u)
        zz[j] = z
        dd[j] = p1 * p1
        ee[j] = p1 * p1 - mu1
        dp[j] = 2.0 * sq * p1 * p2
        ww[j] = h * _GL_W[j] * _INV_SQRT_2PI * math.exp(-0.5 * z * z) * wscale


@helper
def _accept(x, h, dd, dp, ww, n0, n1, floor):
    """True when every node in [n0, n1) is far from the pole at x (relative to h), or when the
    panel's weight is too small to matter (its contribution bound is below `floor`)."""
    lim = THR * h
    wsum = 0.0
    dmin2 = math.inf
    ok = True
    for i in range(n0, n1):
        dx = x.real - dd[i]
        dist2 = dx * dx + x.imag * x.imag
        wsum += ww[i]
        if dist2 < dmin2:
            dmin2 = dist2
        s = lim * dp[i]
        if dist2 < s * s:
            ok = False
    if ok:
        return True
    # negligible panel: weight / distance^2 (bound of the T sums) below the floor
    return wsum < floor * dmin2


@helper
def _accumulate(x, dd, ee, ww, n0, n1, acc, want_u):
    for i in range(n0, n1):
        den = x - dd[i]
        if den == 0.0:
            den = complex(0.0, 1e-300)  # x on a node (real x inside the support): Plemelj side
        r = 1.0 / den
        wr = ww[i] * r
        d = dd[i]
        acc[0] += wr
        acc[1] += wr * d
        wr2 = wr * r
        acc[3] += wr2
        acc[4] += wr2 * d
        acc[5] += wr2 * d * d
        if want_u:
            acc[6] += ww[i] * cmath.log(x - dd[i])


@jit
def sums(x, code, sq, mu1, pa, pb, dn, en, dpn, wn, wscale, acc, want_u):
    """Fill acc = [S0, M, -, T0, M1, Q2, U] at complex x; return a status bit mask.

    S0 = E[1/(x-d)], M = E[d/(x-d)] (= m), T0 = E[1/(x-d)^2], M1 = E[d/(x-d)^2] (= -m'),
    Q2 = E[d^2/(x-d)^2], U = E[Log(x - d)] (only when want_u).
    """
    for k in range(7):
        acc[k] = 0.0
    status = 0
    # contributions below 1e-17 of the natural scale 1/(|x| + dmax)^2 of the T sums are skipped
    sc = abs(x) + DSCALE
    floor = 1e-17 / (sc * sc)
    npan = pa.shape[0]
    zz = np.empty(NGL)
    dd = np.empty(NGL)
    ee = np.empty(NGL)
    dp = np.empty(NGL)
    ww = np.empty(NGL)
    sa = np.empty(STACK)
    sb = np.empty(STACK)
    sd = np.empty(STACK, dtype=np.int64)
    for p in range(npan):
        n0 = p * NGL
        n1 = n0 + NGL
        h = 0.5 * (pb[p] - pa[p])
        if _accept(x, h, dn, dpn, wn, n0, n1, floor):
            _accumulate(x, dn, en, wn, n0, n1, acc, want_u)
            continue
        if code >= _act.N_BUILTIN:
            status |= SUM_NOREFINE
            _accumulate(x, dn, en, wn, n0, n1, acc, want_u)
            continue
        # recursive bisection with an explicit stack
        top = 0
        sa[0] = pa[p]
        sb[0] = pb[p]
        sd[0] = 0
        top = 1
        while top > 0:
            top -= 1
            a = sa[top]
            b = sb[top]
            dep = sd[top]
            m = 0.5 * (a + b)
            for half in range(2):
                lo = a if half == 0 else m
                hi = m if half == 0 else b
                _panel_nodes(code, sq, lo, hi, wscale, zz, dd, ee, dp, ww, mu1)
                hh = 0.5 * (hi - lo)
                if dep + 1 >= MAXDEPTH or top >= STACK - 2:
                    if not _accept(x, hh, dd, dp, ww, 0, NGL, floor):
                        status |= SUM_DEPTH
                    _accumulate(x, dd, ee, ww, 0, NGL, acc, want_u)
                elif _accept(x, hh, dd, dp, ww, 0, NGL, floor):
                    _accumulate(x, dd, ee, ww, 0, NGL, acc, want_u)
                else:
                    sa[top] = lo
                    sb[top] = hi
                    sd[top] = dep + 1
                    top += 1
    return status


@helper
def logz(x, kind, L, mu1, acc, out):
    """out[0] = F(x) (normalised log inverse M-transform), out[1] = F'(x), out[2] = m."""
    s0 = acc[0]
    m = acc[1]
    t0 = acc[3]
    mp = -acc[4]
    q2 = acc[5]
    if kind == ORTH:
        # R = x m / (1 + m) = m / S0  (1 + m = x S0)
        f = cmath.log(x / mu1) + (L - 1.0) * cmath.log(m / (s0 * mu1))
        fp = 1.0 / x + (L - 1.0) * (mp / m + t0 / s0)
    else:
        opm = x * s0  # 1 + m without cancellation as m -> -1
        f = cmath.log(opm) + (L - 1.0) * (cmath.log(m) + cmath.log(x / mu1)) + cmath.log(x / mu1)
        # d/dx log(m x) = m'/m + 1/x = -E[d^2/(x-d)^2] / (m x)
        fp = mp / opm - (L - 1.0) * q2 / (m * x) + 1.0 / x
    out[0] = f
    out[1] = fp
    out[2] = m


@helper
def eval_f(x, kind, L, mu1, code, sq, pa, pb, dn, en, dpn, wn, wscale, acc, out, want_u):
    st = sums(x, code, sq, mu1, pa, pb, dn, en, dpn, wn, wscale, acc, want_u)
    logz(x, kind, L, mu1, acc, out)
    return st


@jit
def eval_real(xs, kind, L, mu1, code, sq, pa, pb, dn, en, dpn, wn, wscale, f, fp, eps):
    """Real parts of F and F' at xs + i eps xs (eps = 0 outside the support of d; a tiny eps
    where the law of d has negligible mass around xs)."""
    acc = np.zeros(7, dtype=np.complex128)
    out = np.zeros(3, dtype=np.complex128)
    for i in range(xs.shape[0]):
        eval_f(
            complex(xs[i], eps * xs[i]),
            kind,
            L,
            mu1,
            code,
            sq,
            pa,
            pb,
            dn,
            en,
            dpn,
            wn,
            wscale,
            acc,
            out,
            False,
        )
        f[i] = out[0].real
        fp[i] = out[1].real


@helper
def phi_cdf(x, kind, L, m, u):
    """CDF from the antiderivative: 1 - Im Phi / pi."""
    if not m.imag < 0.0:
        m = complex(m.real, -0.0)  # the physical side of the cut (Im m <= 0)
    lm = cmath.log(m)
    if kind == ORTH:
        ph = (L - 1.0) * lm + L * u
    else:
        ph = L * m + (L - 1.0) * lm + L * u
    return 1.0 - ph.imag / math.pi


@helper
def _damped_step(x, dx, side):
    """Newton step damped to at most 25% of |x| and halved until ``side * Im(x + dx) > 0``
    (the physical half-plane: side = 1 for x, -1 for m); returns (x + dx, dx)."""
    lim = 0.25 * abs(x)
    if abs(dx) > lim:
        dx *= lim / abs(dx)
    xn = x + dx
    while side * xn.imag <= 0.0:
        dx *= 0.5
        xn = x + dx
        if abs(dx) < 1e-300:
            break
    return xn, dx


@jit
def solve_grid(
    loglam,
    x_init,
    kind,
    L,
    mu1,
    code,
    sq,
    pa,
    pb,
    dn,
    en,
    dpn,
    wn,
    wscale,
    tol,
    maxiter,
    xs,
    ms,
    cdf,
    status,
    stop_rel,
):
    """Continuation along loglam (descending): Newton on F(x) = loglam, Im x > 0.

    x_init: guess for the first point; later points use linear extrapolation of the last two.
    status per point (cnnmft.Status codes): OK; MAXITER; NONFINITE; NO_SOLUTION (converged off
    the physical branch, Im x <= 0 or Im m > 0); INACCURATE (stalled at the rounding level of F,
    or the sums hit their refinement depth cap).
    Stops (returning the number of points done) once the density falls below stop_rel times its
    running maximum (the exponentially thin lower tail of smooth activations).
    """
    acc = np.zeros(7, dtype=np.complex128)
    out = np.zeros(3, dtype=np.complex128)
    n = loglam.shape[0]
    rmax = 0.0
    for k in range(n):
        if k == 0:
            x = x_init
        elif k == 1:
            x = xs[0]
        else:
            x = 2.0 * xs[k - 1] - xs[k - 2]
            if x.imag <= 0.0:
                x = complex(x.real, 0.5 * xs[k - 1].imag)
        st = OK
        ok = False
        sflag = 0
        for it in range(maxiter):
            sflag = eval_f(
                x, kind, L, mu1, code, sq, pa, pb, dn, en, dpn, wn, wscale, acc, out, False
            )
            r = out[0] - loglam[k]
            if not (cmath.isfinite(r) and cmath.isfinite(out[1])) or out[1] == 0.0:
                st = NONFINITE
                break
            x, dx = _damped_step(x, -r / out[1], 1.0)
            if abs(r) < tol or abs(dx) < 1e-14 * abs(x):
                ok = True
                break
        if st == OK and not ok:
            # stalled at the rounding level of F (large L, x near 0): accept with a flag
            st = INACCURATE if abs(r) < 1e4 * tol else MAXITER
        sflag = eval_f(x, kind, L, mu1, code, sq, pa, pb, dn, en, dpn, wn, wscale, acc, out, True)
        xs[k] = x
        ms[k] = out[2]
        if st >= 0:
            if not (x.imag > 0.0 and out[2].imag <= 1e-10 * abs(out[2])):
                st = NO_SOLUTION
            else:
                cdf[k] = phi_cdf(x, kind, L, out[2], acc[6])
        if sflag != 0 and st == OK:
            st = INACCURATE
        if st < 0 and k > 8 and status[k - 1] >= 0 and cdf[k - 1] < 1e-3:
            # lost the branch in the lower tail (x pinned to the real axis where the law of
            # phi'^2 has a vanishing density): stop; the caller adds the exact CDF above
            return k
        status[k] = st
        # density (up to 1/pi) relative to the largest so far: stop in an exponentially thin tail
        r = -out[2].imag * math.exp(-loglam[k])
        if r > rmax:
            rmax = r
        if st == OK and k > 8 and r < stop_rel * rmax:
            return k + 1
    return n


@jit
def solve_universal(loglam, m_init, s, tol, maxiter, ms, cdf, status):
    """Continuation for the universal limit log z(m) = Log(1+m) - Log(m) + s m, Im m < 0."""
    n = loglam.shape[0]
    for k in range(n):
        if k == 0:
            m = m_init
        elif k == 1:
            m = ms[0]
        else:
            m = 2.0 * ms[k - 1] - ms[k - 2]
            if m.imag >= 0.0:
                m = complex(m.real, 0.5 * ms[k - 1].imag)
        st = MAXITER
        for it in range(maxiter):
            f = cmath.log(1.0 + m) - cmath.log(m) + s * m - loglam[k]
            fp = 1.0 / (1.0 + m) - 1.0 / m + s
            if not (cmath.isfinite(f) and cmath.isfinite(fp)) or fp == 0.0:
                st = NONFINITE
                break
            m, dm = _damped_step(m, -f / fp, -1.0)
            if abs(f) < tol or abs(dm) < 1e-15 * abs(m):
                st = OK
                break
        ms[k] = m
        if st == OK:
            if not m.imag < 0.0:
                st = NO_SOLUTION
            else:
                ph = -cmath.log(m) + s * m + 0.5 * s * m * m
                cdf[k] = 1.0 - ph.imag / math.pi
        status[k] = st
