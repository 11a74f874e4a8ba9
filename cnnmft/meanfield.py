r"""Fully-connected mean field: length and correlation maps, fixed points, criticality.

For a network ``h^l = W^l phi(h^{l-1}) + b^l`` with ``Var W_ij = sigma_w2 / N`` and
``Var b_i = sigma_b2`` (and, identically, for the zero Fourier mode of a CNN with any variance
profile v, Xiao et al. 2018 §2.3):

.. math::

    q^{l+1} = \sigma_w^2\,\mathbb E_z[\phi(\sqrt{q^l} z)^2] + \sigma_b^2, \qquad
    c^{l+1} = \frac{\sigma_w^2\,\mathbb E[\phi(u_1)\phi(u_2)] + \sigma_b^2}{q^{l+1}},

    \chi_1 = \sigma_w^2\,\mathbb E[\phi'(\sqrt{q^*}z)^2],\quad
    \chi_{q^*} = \sigma_w^2\,\mathbb E[\phi'^2 + \phi\phi''],\quad
    \chi_{c^*} = \sigma_w^2\,\mathbb E[\phi'(u_1)\phi'(u_2)]\big|_{c^*},\quad
    \xi = -1/\log\chi .

References: Poole et al. (NeurIPS 2016); Schoenholz et al., "Deep Information Propagation"
(ICLR 2017); Xiao et al., "Dynamical Isometry and a Mean Field Theory of CNNs" (ICML 2018), §2.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from cnnmft import _threads
from cnnmft import _validation as V
from cnnmft._kernels import _custom
from cnnmft.activations import get_activation
from cnnmft.results import CriticalPoint, FixedPoint, Status

__all__ = [
    "q_map",
    "c_map",
    "fixed_point",
    "critical_point",
    "critical_sigma_w2",
    "trainable_depth",
    "depth_scale",
]

_TOL = 1e-15
_MAXITER = 200


def depth_scale(chi):
    r"""Depth scale ``xi = -1 / log(chi)`` of a linearised map with slope ``chi``.

    Parameters
    ----------
    chi : array_like
        Slopes, ``chi >= 0``.

    Returns
    -------
    ndarray
        ``inf`` where ``chi == 1`` (critical); ``0`` where ``chi == 0``; negative values where
        ``chi > 1`` (an unstable direction, growing like ``exp(l / |xi|)``).
    """
    V._refuse_non_real(chi, "chi")
    chi = np.asarray(chi, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = -1.0 / np.log(chi)
    xi = np.where(chi == 1.0, np.inf, xi)
    return xi


def _prep(act, sigma_w2, sigma_b2):
    a = get_activation(act)
    sw = V.as_float_array(sigma_w2, "sigma_w2", low=0.0, low_open=True)
    sb = V.as_float_array(sigma_b2, "sigma_b2", low=0.0)
    sw, sb = V.broadcast(sigma_w2=sw, sigma_b2=sb)
    return a, sw, sb


def q_map(act, q, sigma_w2, sigma_b2):
    r"""The length map ``q -> sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2``.

    Parameters
    ----------
    act : str or Activation
        Activation.
    q : array_like
        Pre-activation variance(s) ``>= 0``.
    sigma_w2, sigma_b2 : array_like
        Weight variance ``> 0`` and bias variance ``>= 0``; broadcast with `q`.

    Returns
    -------
    ndarray
        The next layer's variance, broadcast shape.

    References
    ----------
    .. [1] Poole et al. 2016, eq. (3); Xiao et al. 2018, eq. (2.5) (diagonal of the CNN map).

    Examples
    --------
    >>> round(float(q_map("relu", 1.0, 2.0, 0.5)), 12)
    1.5
    """
    a, sw, sb = _prep(act, sigma_w2, sigma_b2)
    q = V.as_float_array(q, "q", low=0.0)
    q, sw, sb = V.broadcast(q=q, sigma_w2=sw, sigma_b2=sb)
    ns, code = _custom.kernels(a)
    out = np.empty(q.size)
    ns.maps.q_map_many(code, q.ravel(), sw.ravel(), sb.ravel(), out)
    return out.reshape(q.shape)


def c_map(act, c, q, sigma_w2, sigma_b2, *, return_slope=False):
    r"""The correlation map at equal input variances ``q``.

    .. math:: c \mapsto \frac{\sigma_w^2 \mathbb E[\phi(u_1)\phi(u_2)] + \sigma_b^2}
              {\sigma_w^2 \mathbb E[\phi(u_1)^2] + \sigma_b^2},\quad
              \operatorname{Var} u_i = q,\ \operatorname{Corr} = c

    Parameters
    ----------
    act : str or Activation
        Activation.
    c : array_like
        Input correlation(s) in [-1, 1].
    q : array_like
        Input variance(s) ``> 0`` (use ``q_star`` for the c-map of the papers).
    sigma_w2, sigma_b2 : array_like
        Variances; all arguments broadcast together.
    return_slope : bool
        Also return the slope dC/dc ``= sigma_w2 q E[phi'(u1) phi'(u2)] / q_next``.

    Returns
    -------
    ndarray or (ndarray, ndarray)
        The output correlation (and its slope), broadcast shape.

    References
    ----------
    .. [1] Poole et al. 2016, eq. (5); Schoenholz et al. 2017, eq. (4).
    """
    a, sw, sb = _prep(act, sigma_w2, sigma_b2)
    c = V.as_float_array(c, "c", low=-1.0, high=1.0)
    q = V.as_float_array(q, "q", low=0.0, low_open=True)
    c, q, sw, sb = V.broadcast(c=c, q=q, sigma_w2=sw, sigma_b2=sb)
    ns, code = _custom.kernels(a)
    out = np.empty(c.size)
    dout = np.empty(c.size)
    ns.maps.c_map_many(code, c.ravel(), q.ravel(), sw.ravel(), sb.ravel(), out, dout)
    if return_slope:
        return out.reshape(c.shape), dout.reshape(c.shape)
    return out.reshape(c.shape)


def _phi_props(a):
    p0 = float(np.asarray(a.phi(0.0)))
    zero = p0 == 0.0
    odd = a.odd
    return zero, odd


def fixed_point(
    act, sigma_w2, sigma_b2, *, tol=_TOL, maxiter=_MAXITER, threads=None, method="auto"
):
    r"""Fixed points q*, c* and the slopes and depth scales there, for arrays of variances.

    Solves ``q* = sigma_w2 E[phi(sqrt(q*) z)^2] + sigma_b2`` by safeguarded Newton inside a
    bracket (the derivative is chi_q - 1), and, in the chaotic phase (chi_1 > 1), the c-map fixed
    point ``c* < 1`` the same way (derivative chi_c(c) - 1). In the ordered phase c* = 1 and
    chi_c = chi_1. Iterations are capped; outcomes are reported per element in ``status``.

    Parameters
    ----------
    act : str or Activation
        Activation.
    sigma_w2 : array_like
        Weight variance(s) ``> 0``.
    sigma_b2 : array_like
        Bias variance(s) ``>= 0``; broadcast with `sigma_w2`.
    tol : float
        Relative tolerance on q* and absolute tolerance on c*.
    maxiter : int
        Iteration cap per root.
    threads : int, optional
        Number of parallel chunks (default: numba's thread count).
    method : {"auto", "quadrature"}
        How the c-map is evaluated in the chaotic phase. ``"auto"``: its Mehler series
        ``sum_k a_k^2 c^k`` (Hermite coefficients of phi(sqrt(q*) z)) where a rigorous
        truncation bound is below 1e-14, direct bivariate quadrature otherwise (warm-started
        from the series). ``"quadrature"``: direct bivariate quadrature only (slower; an
        independent check).

    Returns
    -------
    FixedPoint
        Arrays of the broadcast shape: ``q_star, c_star, chi_1, chi_q, chi_c, xi_q, xi_c,
        status, nit, residual``. Status ZERO: q* = 0 (sigma_b2 = 0, ordered phase, phi(0) = 0);
        INFINITE: q* grows without bound (e.g. relu with sigma_w2 >= 2); MARGINAL: a slope equals
        1 (e.g. on the critical line, where xi_c = inf).

    Raises
    ------
    ValueError
        For an unknown activation, ``sigma_w2 <= 0``, ``sigma_b2 < 0``, non-finite values or
        shapes that do not broadcast.

    References
    ----------
    .. [1] Schoenholz et al. 2017, eqs. (3)-(9); Xiao et al. 2018, §2.3.

    Examples
    --------
    >>> fp = fixed_point("tanh", 2.5, 0.05)
    >>> round(float(fp.q_star), 5), round(float(fp.c_star), 6)
    (1.06396, 0.446804)
    """
    a, sw, sb = _prep(act, sigma_w2, sigma_b2)
    tol = V.as_float(tol, "tol", low=1e-16, high=1e-3)
    maxiter = V.as_int(maxiter, "maxiter", low=1)
    method = V.as_choice(method, "method", {"auto", "quadrature"})
    ns, code = _custom.kernels(a)
    zero, odd = _phi_props(a)
    n = sw.size
    out = np.empty((n, 7))
    status = np.empty(n, dtype=np.int64)
    nit = np.empty(n, dtype=np.int64)
    nchunk = _chunks(n, threads)
    b2 = _bound2(a)
    args = (code, sw.ravel(), sb.ravel(), zero, odd, tol, maxiter, out, status, nit)
    if nchunk == 1:  # one point or one thread: the serial driver (no parallel compile)
        ns.maps.fixed_point_range(*args, 0, n, method == "auto", b2)
    else:
        ns.maps.fixed_point_many(*args, nchunk, method == "auto", b2)
    roots = _attractors(
        a, sw.ravel(), sb.ravel(), out, status, nit, tol, maxiter, nchunk, method == "auto"
    )
    shape = sw.shape
    q, c, chi1, chiq, chic = (out[:, j].reshape(shape) for j in range(5))
    status = status.reshape(shape)
    xi_q, xi_c = depth_scale(chiq), depth_scale(chic)
    inf = ~np.isfinite(q)  # no finite fixed point: depth scales are undefined
    xi_q[inf] = np.nan
    xi_c[inf] = np.nan
    return FixedPoint(
        activation=a.name,
        sigma_w2=sw,
        sigma_b2=sb,
        q_star=q,
        c_star=c,
        chi_1=chi1,
        chi_q=chiq,
        chi_c=chic,
        xi_q=xi_q,
        xi_c=xi_c,
        status=status,
        nit=nit.reshape(shape),
        residual=np.maximum(out[:, 5], out[:, 6]).reshape(shape),
        q_star_low=roots[:, 0].reshape(shape),
        q_unstable=roots[:, 1].reshape(shape),
        q_star_high=roots[:, 2].reshape(shape),
    )


def _chunks(n, threads):
    if threads is None:
        threads = _threads.get_num_threads(coarse=True)  # the policy (numba's pool not started)
    threads = V.as_int(threads, "threads", low=1)
    return max(1, min(n, 8 * threads)) if n > 1 else 1


@functools.lru_cache(maxsize=64)
def _bound2(a):
    """Return sup phi^2 for a bounded activation (brackets q* <= sigma_w2 sup phi^2 + sigma_b2)."""
    if not a.bounded:
        return math.inf
    x = np.concatenate([np.linspace(-60.0, 60.0, 4801), [-1e300, -1e6, -1e3, 1e3, 1e6, 1e300]])
    with np.errstate(all="ignore"):
        p2 = np.asarray(a.phi(x), dtype=float) ** 2
    p2 = p2[np.isfinite(p2)]
    return float(p2.max()) * (1.0 + 1e-12) if p2.size else math.inf


@functools.lru_cache(maxsize=64)
def _qmap_breaks(a):
    """Where d/dq E[phi(sqrt(q) z)^2] changes monotonicity, and whether E[phi^2] is concave.

    A concave E[phi^2] (tanh, erf, ...) gives every (sigma_w2, sigma_b2) at most one attractor
    of the q-map; otherwise (gelu, swish, ...) the q-map may be bistable, and the breaks are
    what :func:`_kernels._maps.q_roots` needs to find every fixed point. Scanned once per
    activation on q in [1e-10, 1e13], 8 points a decade, then refined.
    """
    ns, code = _custom.kernels(a)
    ws = ns.quad.workspace()
    lq = np.linspace(math.log(1e-10), math.log(1e13), 185)
    d = np.array([ns.maps.dvar(code, math.exp(t), ws) for t in lq])
    dd = np.diff(d)
    dd[np.abs(dd) <= 1e-9 * np.max(np.abs(d))] = 0.0
    nz = np.nonzero(dd)[0]
    if nz.size == 0 or np.all(dd[nz] < 0.0):
        return np.zeros(0), True
    breaks = []
    for i, j in zip(nz[:-1], nz[1:]):
        if (dd[i] > 0.0) != (dd[j] > 0.0):  # extremum of dV/dq between lq[i] and lq[j + 1]
            sgn = 1.0 if dd[i] > 0.0 else -1.0
            r = minimize_scalar(
                lambda t: -sgn * ns.maps.dvar(code, math.exp(t), ws),
                bounds=(lq[i], lq[j + 1]),
                method="bounded",
                options={"xatol": 1e-10},
            )
            breaks.append(math.exp(float(r.x)))
    return np.array(sorted(breaks)), False


def _attractors(a, sw, sb, out, status, nit, tol, maxiter, nchunk, series):
    """Mark bistable q-maps (status BISTABLE) and return their fixed points.

    Returns (lowest attractor, repeller, highest attractor) per point, NaN where the map has
    one attractor; q*, slopes and c* of a bistable point become those of the attractor reached
    from q^0 = 1.
    """
    n = sw.size
    roots = np.full((n, 3), np.nan)
    breaks, concave = _qmap_breaks(a)
    if concave or n == 0:
        return roots
    ns, code = _custom.kernels(a)
    zero, odd = _phi_props(a)
    b2 = _bound2(a)
    found = np.empty((n, 3))
    nat = np.zeros(n, dtype=np.int64)
    ns.maps.q_roots_many(code, sw, sb, zero, breaks, b2, found, nat, nchunk)
    ws = ns.quad.workspace()
    for i in np.nonzero(nat >= 2)[0]:
        low, rep, high = found[i]
        roots[i] = found[i]
        target = low if (np.isfinite(rep) and 1.0 < rep) else high
        if math.isinf(target):
            out[i, :5] = (math.inf, 1.0, math.inf, math.inf, math.inf)
            out[i, 5:] = 0.0
        elif not (status[i] >= 0 and abs(out[i, 0] - target) <= 1e-8 * max(target, 1e-300)):
            st, it = ns.maps.fixed_point_one(
                code,
                sw[i],
                sb[i],
                zero,
                odd,
                tol,
                maxiter,
                ws,
                out[i],
                max(target, 1e-300),
                -1.0,
                series,
                b2,
            )
            nit[i] += it
            if st < 0:
                status[i] = st
                continue
        status[i] = Status.BISTABLE
    return roots


def trainable_depth(act, sigma_w2, sigma_b2, factor=6.0):
    r"""Predicted maximum trainable depth ``factor * xi_c`` (Schoenholz et al. 2017).

    Parameters
    ----------
    act : str or Activation
        Activation.
    sigma_w2, sigma_b2 : array_like
        Variances (broadcast).
    factor : float
        Multiple of the correlation depth scale (6 in Schoenholz et al. and Xiao et al. Fig. 2).

    Returns
    -------
    ndarray
        ``factor * xi_c`` (``inf`` on the critical line), broadcast shape.

    References
    ----------
    .. [1] Schoenholz et al. 2017, §5; Xiao et al. 2018, Fig. 2.

    Examples
    --------
    >>> round(float(trainable_depth("tanh", 1.5, 0.05)), 1)
    94.7
    """
    factor = V.as_float(factor, "factor", low=0.0, low_open=True)
    return factor * fixed_point(act, sigma_w2, sigma_b2).xi_c


def critical_point(act, q_star):
    r"""The point of the critical line (chi_1 = 1) whose length fixed point is ``q_star``.

    .. math:: \sigma_w^2 = 1 / \mathbb E[\phi'(\sqrt{q^*}z)^2],\qquad
              \sigma_b^2 = q^* - \sigma_w^2\,\mathbb E[\phi(\sqrt{q^*}z)^2]

    Parameters
    ----------
    act : str or Activation
        Activation.
    q_star : array_like
        Target fixed point(s) ``q* > 0`` (the demo rule of the paper's code is q* = 1/depth).

    Returns
    -------
    CriticalPoint
        ``sigma_w2, sigma_b2, q_star, chi_q, status`` (shape of `q_star`). Status NO_SOLUTION
        (values NaN) where the line would need ``sigma_b2 < 0``.

    References
    ----------
    .. [1] Xiao et al. 2018, §2.6 and the authors' demo (``sw_sb(q, chi1=1)``).

    Examples
    --------
    >>> cp = critical_point("tanh", 1 / 16)
    >>> round(float(cp.sigma_w2), 6), float(cp.sigma_b2) > 0
    (1.115381, True)
    """
    a = get_activation(act)
    q = V.as_float_array(q_star, "q_star", low=0.0, low_open=True)
    ns, code = _custom.kernels(a)
    ws = ns.quad.workspace()
    flat = q.ravel()
    sw = np.empty(flat.size)
    sb = np.empty(flat.size)
    chiq = np.empty(flat.size)
    st = np.zeros(flat.size, dtype=np.int64)
    for i, qi in enumerate(flat):
        s = ns.maps.slope(code, qi, ws)
        sw[i] = 1.0 / s
        sb[i] = qi - sw[i] * ns.maps.var(code, qi, ws)
        chiq[i] = sw[i] * ns.maps.dvar(code, qi, ws)
        if sb[i] < 0.0:
            if sb[i] > -1e-14 * qi:
                sb[i] = 0.0
            else:
                st[i] = Status.NO_SOLUTION
                sw[i] = sb[i] = chiq[i] = np.nan
    return CriticalPoint(
        activation=a.name,
        sigma_w2=sw.reshape(q.shape),
        sigma_b2=sb.reshape(q.shape),
        q_star=q.copy(),
        chi_q=chiq.reshape(q.shape),
        status=st.reshape(q.shape),
    )


def critical_sigma_w2(act, sigma_b2, *, xtol=1e-15):
    r"""The critical weight variance for given bias variance(s): chi_1(sigma_w2, sigma_b2) = 1.

    Solves ``q - E[phi^2](q) / E[phi'^2](q) = sigma_b2`` for q* (every root on a log scan of
    q, refined by Brent's method), then ``sigma_w2 = 1 / E[phi'(sqrt(q*) z)^2]``. Where the
    equation has several roots the first whose q* is a stable fixed point of the q-map
    (``chi_q <= 1``) is returned: a point of the critical line that a deep network actually
    reaches.

    Parameters
    ----------
    act : str or Activation
        Activation.
    sigma_b2 : array_like
        Bias variance(s) ``>= 0``.
    xtol : float
        Relative tolerance on q*.

    Returns
    -------
    CriticalPoint
        ``sigma_w2, sigma_b2, q_star, chi_q, status`` with the shape of `sigma_b2`. Status
        NO_SOLUTION (NaN values) where no critical sigma_w2 exists (e.g. relu with
        sigma_b2 > 0); MARGINAL for relu at sigma_b2 = 0 (every q is a fixed point at
        sigma_w2 = 2); UNSTABLE where every critical point has ``chi_q > 1`` (its q* repels:
        iterating the q-map from nearby moves away; the values are reported).

    References
    ----------
    .. [1] Schoenholz et al. 2017, Fig. 1; Xiao et al. 2018, §2.6.

    Examples
    --------
    >>> round(float(critical_sigma_w2("tanh", 0.05).sigma_w2), 6)
    1.760955
    """
    a = get_activation(act)
    sb = V.as_float_array(sigma_b2, "sigma_b2", low=0.0)
    xtol = V.as_float(xtol, "xtol", low=0.0, low_open=True, high=1e-3)
    ns, code = _custom.kernels(a)
    ws = ns.quad.workspace()
    flat = sb.ravel()
    sw = np.full(flat.size, np.nan)
    qs = np.full(flat.size, np.nan)
    chiq = np.full(flat.size, np.nan)
    st = np.full(flat.size, int(Status.NO_SOLUTION), dtype=np.int64)
    for i, b in enumerate(flat):
        if b == 0.0 and float(np.asarray(a.phi(0.0))) == 0.0:
            q, s = 0.0, ns.maps.slope(code, 1e-300, ws)
            st[i] = Status.MARGINAL if abs(_excess(ns, code, 1.0, ws)) < 1e-12 else Status.OK
        else:
            q, stat = _critical_q(ns, code, float(b), ws, max(xtol, 1e-15))
            if q is None:
                continue
            s = ns.maps.slope(code, q, ws)
            st[i] = stat
        sw[i] = 1.0 / s
        qs[i] = q
        chiq[i] = sw[i] * ns.maps.dvar(code, max(q, 1e-300), ws)
    return CriticalPoint(
        activation=a.name,
        sigma_w2=sw.reshape(sb.shape),
        sigma_b2=sb.copy(),
        q_star=qs.reshape(sb.shape),
        chi_q=chiq.reshape(sb.shape),
        status=st.reshape(sb.shape),
    )


def _excess(ns, code, q, ws):
    """Q - E[phi^2]/E[phi'^2] at q (the sigma_b2 of the critical point with this q*), or NaN."""
    s = ns.maps.slope(code, q, ws)
    v = ns.maps.var(code, q, ws)
    if not (s > 0.0 and math.isfinite(s) and math.isfinite(v)):
        return math.nan
    return q - v / s


def _critical_q(ns, code, b, ws, xtol):
    """q* of the critical point at sigma_b2 = b > 0 (or b = 0 with phi(0) != 0).

    Every root of ``excess(q) = b`` on q in [b, max(1e12, 1e4 b)] is bracketed on a log scan
    (4 points a decade) and refined by Brent's method; the first root whose q* is a stable (or
    marginal) fixed point of the q-map (chi_q <= 1) is returned with status OK, otherwise the
    first root with status UNSTABLE. Returns (None, NO_SOLUTION) when there is no root.
    """
    lo = b if b > 0.0 else 1e-300
    hi = max(1e12, 1e4 * b)
    n = int(min(400, max(16, 4 * math.log10(hi / lo) + 2)))
    grid = np.geomspace(lo, hi, n)
    f = np.array([_excess(ns, code, q, ws) - b for q in grid])
    roots = []
    for j in range(n - 1):
        fa, fb = f[j], f[j + 1]
        if not (np.isfinite(fa) and np.isfinite(fb)):
            continue
        if fa == 0.0:
            roots.append(grid[j])
        elif fa < 0.0 < fb or fb < 0.0 < fa:
            roots.append(
                brentq(
                    lambda q: _excess(ns, code, q, ws) - b,
                    grid[j],
                    grid[j + 1],
                    xtol=1e-300,
                    rtol=xtol,
                    maxiter=500,
                )
            )
    first = None
    for q in roots:
        chi_q = ns.maps.dvar(code, q, ws) / ns.maps.slope(code, q, ws)
        if chi_q <= 1.0 + 1e-9:
            return q, (Status.MARGINAL if abs(chi_q - 1.0) <= 1e-9 else Status.OK)
        first = q if first is None else first
    if first is None:
        return None, Status.NO_SOLUTION
    return first, Status.UNSTABLE
