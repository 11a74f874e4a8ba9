"""Mehler (Hermite) series of the covariance map, and tabulated iterates of its scalar map.

* :func:`mehler_coefficients`: ``c_k(q) = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!)`` by a composite
  Gauss-Legendre rule, so that ``E[phi(u1) phi(u2)] = sum_k c_k(q1) c_k(q2) rho^k`` (Mehler's
  formula) for a centred normal pair with variances ``q1, q2`` and correlation ``rho``;
* :class:`_Series`: the truncated coefficients (tail ``sum_{k>K} c_k^2 <= 1e-15``);
* :class:`_CoefSource`: coefficients at many variances by checked Chebyshev interpolation;
* :func:`series_fixed_point`: the fixed point of the series q-map ``Q(q) = sw2 sum_k c_k(q)^2
  + sb2`` and its slope there (the pinned variance of the common regimes);
* :func:`tabulate_iterates`: the iterates of the one-entry map at a common fixed variance
  (``v = delta``), interpolated on checked Chebyshev panels of the starting value.

The algorithm is described in ``docs/covariance.md``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from cnnmft._kernels import _act, _cov
from cnnmft.activations import get_activation

_NGL = 20
_ZMAX = 13.0
_TAIL_TOL = 1e-15  # truncation tail of the series for E[phi^2] >= 1/3 ...
_TAIL_REL = 3e-15  # ... and relative to the smallest E[phi^2] below that (small variances)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_NGL)

# ---------------------------------------------------------------------------------------------
# Mehler (Hermite) coefficients


@functools.lru_cache(maxsize=64)
def _mehler_rule(tau_bucket, kmax):
    """Composite Gauss-Legendre nodes/weights (pdf included) and the Hermite table.

    Returns ``(z, wt, Hw, half, Hodd)``: nodes and weights (nz,), ``Hw[i, k] = wt_i h_k(z_i)``
    (nz, kmax + 1), the index ``half`` where the positive nodes start, and the odd orders on
    them, ``Hodd[i, j] = Hw[half + i, 2 j + 1]``.
    """
    tau = 2.0 ** (tau_bucket / 4.0)
    hmax = min(1.0, 8.0 / math.sqrt(2.0 * kmax + 1.0))
    edges = [0.0]
    w = min(hmax, 0.5 * tau)
    while edges[-1] < _ZMAX:
        edges.append(min(_ZMAX, edges[-1] + w))
        w = min(hmax, 1.5 * w)
    e = np.array(edges)
    e = np.concatenate([-e[:0:-1], e])
    a, b = e[:-1], e[1:]
    h = 0.5 * (b - a)
    z = ((a + b)[:, None] * 0.5 + h[:, None] * _GL_X[None, :]).ravel()
    wt = (h[:, None] * _GL_W[None, :]).ravel() * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    # normalised probabilists' Hermite h_k = He_k / sqrt(k!)
    H = np.empty((kmax + 1, z.size))  # one row per order: contiguous recurrence
    H[0] = wt
    if kmax >= 1:
        H[1] = z * wt
    for k in range(1, kmax):
        H[k + 1] = (z * H[k] - math.sqrt(k) * H[k - 1]) * (1.0 / math.sqrt(k + 1))
    # the rule is symmetric: z[half:] > 0 mirrors z[:half]; for odd phi only odd orders, on
    # the positive half (see mehler_coefficients)
    half = z.size // 2
    return z, wt, H.T, half, np.ascontiguousarray(H[1::2, half:].T)


def mehler_coefficients(act, q, *, kmax=None):
    r"""Normalised Hermite coefficients ``c_k(q) = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!)``.

    Mehler's formula then gives, for a centred normal pair with variances ``q1, q2`` and
    correlation ``rho``, ``E[phi(u1) phi(u2)] = sum_k c_k(q1) c_k(q2) rho^k``.

    Parameters
    ----------
    act : str or Activation
        Activation (smooth ones converge fast; kinks make the series converge slowly).
    q : array_like, shape (P,)
        Variances ``>= 0``.
    kmax : int, optional
        Highest order (default: chosen from ``max(q)``).

    Returns
    -------
    coef : ndarray, shape (P, kmax + 1)
    tail : ndarray, shape (P,)
        ``E[phi^2] - sum_k c_k^2`` (Parseval; the truncation error bound of the series).
    """
    a = get_activation(act)
    q = np.atleast_1d(np.asarray(q, dtype=np.float64))
    qmax = float(q.max()) if q.size else 0.0
    if kmax is None:
        kmax = _k_needed(qmax)
        if kmax > _KMAX:
            raise ValueError(
                f"`q` up to {qmax:.6g} would need {kmax} Hermite terms (at most {_KMAX} by "
                f"default, i.e. variances up to {(_KMAX - 30) / 200:.4g}); pass `kmax` or use "
                "the direct bivariate quadrature (`method='direct'`) for such variances"
            )
    tau = math.pi / (2.0 * math.sqrt(qmax)) if qmax > 0 else 8.0
    bucket = math.floor(4.0 * math.log2(min(max(tau, 1e-3), 8.0)))
    z, wt, Hw, half, Hodd = _mehler_rule(bucket, kmax)
    if a.odd:
        # phi(sqrt(q) z) h_k(z) is odd in z for even k and even for odd k: the even orders
        # vanish and the odd ones are twice the sum over the positive half of the rule
        z, wt = z[half:], 2.0 * wt[half:]
    u = np.sqrt(q)[:, None] * z[None, :]
    phi = np.tanh(u) if a.code == _act.TANH else a.phi(u)
    if a.odd:
        coef = np.zeros((q.size, kmax + 1))
        coef[:, 1::2] = 2.0 * (phi @ Hodd)
    else:
        coef = phi @ Hw
    ephi2 = (phi * phi) @ wt
    tail = ephi2 - np.sum(coef * coef, axis=1)
    return coef, tail


def variance_map(act, q, sw2, sb2):
    """The q-map ``sw2 E[phi(sqrt(q) z)^2] + sb2`` at the variances `q`, in numpy.

    The composite Gauss-Legendre rule of :func:`mehler_coefficients` (no compiled quadrature:
    the covariance map needs only this bound on its variances, see
    :meth:`cnnmft._covariance_engine.Evaluator._q_hull`). Overflow gives inf, not a warning.
    """
    a = get_activation(act)
    q = np.atleast_1d(np.asarray(q, dtype=np.float64))
    qmax = float(q.max()) if q.size else 0.0
    tau = math.pi / (2.0 * math.sqrt(qmax)) if qmax > 0 else 8.0
    bucket = math.floor(4.0 * math.log2(min(max(tau, 1e-3), 8.0)))
    z, wt = _mehler_rule(bucket, 1)[:2]
    with np.errstate(over="ignore", invalid="ignore"):
        u = np.sqrt(q)[:, None] * z[None, :]
        phi = np.tanh(u) if a.code == _act.TANH else a.phi(u)
        return sw2 * ((phi * phi) @ wt) + sb2


def _cheb_interp_matrix(nodes, t):
    """Barycentric interpolation matrix from values at Chebyshev-first-kind `nodes` to `t`."""
    m = nodes.size
    bw = (-1.0) ** np.arange(m) * np.sin(np.pi * (2 * np.arange(m) + 1) / (2 * m))
    d = t[:, None] - nodes[None, :]
    exact = d == 0.0
    d[exact] = 1.0
    w = bw[None, :] / d
    w /= w.sum(axis=1, keepdims=True)
    rows = np.nonzero(exact.any(axis=1))[0]
    for r in rows:
        w[r] = exact[r].astype(np.float64)
    return w


_KMAX = 4096  # the longest Hermite series used; larger variances need the direct quadrature


def _k_needed(qmax):
    return 32 * int(math.ceil((200.0 * qmax + 30) / 32))


def series_covers(qmax):
    """True if variances up to `qmax` can be served by a Hermite series of at most _KMAX terms."""
    return math.isfinite(qmax) and _k_needed(qmax) <= _KMAX


def _converged(coef, kmax):
    sq = coef * coef
    rev = np.cumsum(sq[:, ::-1], axis=1)[:, ::-1]
    return bool(np.all(rev[:, max(0, kmax - 8)] <= 1e-16 * (1.0 + rev[:, 0])))


class _Series:
    """Truncated Mehler coefficients stored as every ``step``-th term from ``k0``.

    The tail ``sum_{k>K} c_k^2`` of every row is below ``tol = min(_TAIL_TOL, _TAIL_REL *
    min_rows E[phi^2])``: relative to the smallest variance map, so that small variances (a
    critical point at ``q* = 0.01``) are as accurate, relative to themselves, as ``q ~ 1``.
    """

    def __init__(self, coef, odd):
        kmax = coef.shape[1] - 1
        sq = coef * coef
        cmax = np.max(np.abs(coef), axis=0)
        rev = np.cumsum((cmax * cmax)[::-1])[::-1]  # bounds every row's tail
        emin = float(np.min(np.sum(sq, axis=1))) if coef.shape[0] else 0.0
        self.tol = max(min(_TAIL_TOL, _TAIL_REL * emin), 1e-300)
        need = rev[1:] > self.tol
        kneed = int(np.max(np.nonzero(need)[0], initial=-1)) + 1
        kneed = min(kmax, max(kneed, 1))
        if odd:
            self.k0, self.step = 1, 2
            self.coef = np.ascontiguousarray(coef[:, 1 : kneed + 1 : 2])
        else:
            self.k0, self.step = 0, 1
            self.coef = np.ascontiguousarray(coef[:, : kneed + 1])
        if self.coef.shape[1] == 0:
            self.coef = np.zeros((coef.shape[0], 1))


def _term_table(coef, step, nbins=128, tol=1e-17):
    """Terms needed per |rho| bin: smallest n with sum_{t >= n} max|c_t|^2 r^t <= tol.

    Callers pass ``tol = 1e-2 * _Series.tol`` (1e-17 for variances of order one).

    Bin i covers |rho| <= (i + 1) / nbins; r = |rho| (step 1) or rho^2 (step 2). Compiled
    (:func:`cnnmft._kernels._cov.term_table`): it runs once per exact layer.
    """
    cmax2 = np.max(np.abs(coef), axis=0) ** 2
    out = np.empty(nbins, dtype=np.int64)
    _cov.term_table(np.ascontiguousarray(cmax2), step, tol, out)
    return out


def _exact_coefficients(act, q):
    """Mehler coefficients at the variances `q`, with enough terms (raises if not convergent)."""
    q = np.atleast_1d(np.asarray(q, dtype=np.float64))
    kmax = min(_KMAX, _k_needed(float(q.max())))
    while True:
        coef = mehler_coefficients(act, q, kmax=kmax)[0]
        if _converged(coef, kmax):
            return coef
        if kmax >= _KMAX:
            raise FloatingPointError(
                f"the Hermite series of {act.name!r} did not converge for variances up to "
                f"{float(q.max()):.3g}; use method='direct'"
            )
        kmax = min(_KMAX, 2 * kmax)


class _CoefSource:
    """c_k(q) for q in [qlo, qhi] by Chebyshev interpolation in sqrt(q) (checked), else exact."""

    def __init__(self, act, qlo, qhi):
        self.act, self.qlo, self.qhi = act, qlo, qhi
        top = _exact_coefficients(act, [qhi])
        self.kmax = top.shape[1] - 1
        self.nodes = None
        slo, shi = math.sqrt(qlo), math.sqrt(qhi)
        if shi - slo <= 1e-12 * shi:
            return
        rng = np.random.default_rng(12345)
        chk = 0.5 * (slo + shi) + 0.5 * (shi - slo) * rng.uniform(-1, 1, 6)
        at_chk = None  # the check values, computed once for all attempts
        for m in (16, 32, 64):
            xs = np.cos(np.pi * (2 * np.arange(m) + 1) / (2 * m))
            nodes = 0.5 * (slo + shi) + 0.5 * (shi - slo) * xs
            if at_chk is None:
                cn = mehler_coefficients(act, np.concatenate([nodes, chk]) ** 2, kmax=self.kmax)
                cn, at_chk = cn[0][:m], cn[0][m:]
            else:
                cn = mehler_coefficients(act, nodes**2, kmax=self.kmax)[0]
            est = _cheb_interp_matrix(nodes, chk) @ cn
            if np.max(np.abs(est - at_chk)) <= 2e-15:
                self.nodes, self.values = nodes, cn
                return

    def covers(self, q):
        return self.qlo <= q[0] and q[-1] <= self.qhi

    def __call__(self, uq):
        if self.nodes is None or uq.size <= 4:
            return mehler_coefficients(self.act, uq, kmax=self.kmax)[0]
        return _cheb_interp_matrix(self.nodes, np.sqrt(uq)) @ self.values


# ---------------------------------------------------------------------------------------------
# the common fixed variance


def series_q_map(act, q, sw2, sb2):
    """The q-map of the truncated series, ``sw2 * sum_k c_k(q)^2 + sb2`` (one variance)."""
    return sw2 * float(np.sum(_exact_coefficients(act, [q])[0] ** 2)) + sb2


def series_fixed_point(act, sw2, sb2, q0, *, maxiter=60):
    """Fixed point of :func:`series_q_map` near `q0`, and the slope ``chi_q`` there.

    Secant steps from ``q0`` and ``Q(q0)``, stopped at ``|Q(q) - q| <= 4e-16 q``. Returns
    ``(q_star, chi_q)``, or None when no such point is found near `q0` (the slope is then not
    needed: the caller stays in the per-pixel regime).
    """
    x0 = float(q0)
    f0 = series_q_map(act, x0, sw2, sb2) - x0
    x1 = x0 + f0
    for _ in range(maxiter):
        if not (x1 > 0.0 and math.isfinite(x1)):
            return None
        f1 = series_q_map(act, x1, sw2, sb2) - x1
        if abs(f1) <= 4e-16 * x1:
            break
        if f1 == f0:
            return None
        x0, x1, f0 = x1, x1 - f1 * (x1 - x0) / (f1 - f0), f1
    else:
        return None
    h = 1e-6 * x1
    chi = (series_q_map(act, x1 + h, sw2, sb2) - series_q_map(act, x1 - h, sw2, sb2)) / (2 * h)
    return x1, chi


# ---------------------------------------------------------------------------------------------
# tabulated iterates (v = delta)


def _panel_rule(deg, checks):
    """Chebyshev nodes (first kind) on [-1, 1] and two matrices for them.

    The node -> check-point interpolation matrix and the cosine table that turns node values
    into Chebyshev coefficients.
    """
    theta = np.pi * (2 * np.arange(deg) + 1) / (2 * deg)
    xc = np.cos(theta)
    W = np.ascontiguousarray(_cheb_interp_matrix(xc, checks))
    costab = np.ascontiguousarray(np.cos(np.arange(deg)[:, None] * theta[None, :]))
    return xc, W, costab


_CHECKS = np.array([-0.987, -0.93, -0.61, -0.17, 0.29, 0.71, 0.955, 0.991])


def tabulate_iterates(
    vals,
    nlayers,
    snaps,
    a2,
    k0,
    step,
    qs,
    sw2,
    sb2,
    *,
    tab_min=4096,
    tol=1e-12,
    deg=20,
    max_rounds=8,
):
    """Values of the iterated one-entry map after ``snaps[j]`` layers, for every entry of `vals`.

    The map is :func:`cnnmft._kernels._cov.g_common` at the fixed variance `qs`. Entries at
    ``rho >= _cov.PIN`` (``1 - 64 eps``) stay at `qs` (variances). The others: with at most
    `tab_min` distinct values every value is iterated; otherwise the iterates are interpolated
    on panels of Chebyshev nodes (degree `deg`) of the starting value, panels split until the
    interpolant agrees with directly iterated check points to ``tol * max(1, qs)`` at every
    layer up to `nlayers` (not only at `snaps`: the panels, hence the values, do not depend on
    the layers asked for); values in panels that never pass are iterated directly. Returns
    (len(snaps), size).
    """
    vals = np.ascontiguousarray(vals, dtype=np.float64)
    out = np.empty((snaps.size, vals.size))
    pinned = vals * (1.0 / qs) >= _cov.PIN
    out[:, pinned] = qs
    live = np.nonzero(~pinned)[0]
    x = np.ascontiguousarray(vals[live])
    uniq, inv = np.unique(x, return_inverse=True)
    args = (a2, k0, step, qs, sw2, sb2)
    if uniq.size <= tab_min:
        r = np.empty((snaps.size, uniq.size))
        _cov.iterate_points(uniq, nlayers, *args, r, snaps)
        out[:, live] = r[:, inv.ravel()]
        return out
    r = _tabulate_sorted(uniq, nlayers, snaps, args, tol * max(1.0, qs), deg, max_rounds)
    out[:, live] = r[:, inv.ravel()]
    return out


def _initial_panels(lo, hi, q):
    # uniform in [lo, hi] plus geometric grading towards |rho| = 1
    edges = np.linspace(lo, hi, 17)
    for end in (q, -q):
        d = 0.05 * q
        while d > 1e-6 * q:
            p = end - math.copysign(d, end)
            if lo < p < hi:
                edges = np.append(edges, p)
            d *= 0.5
    edges = np.unique(edges)
    return [(edges[i], edges[i + 1]) for i in range(edges.size - 1)]


def _tabulate_sorted(vals, nlayers, snaps, args, tol, deg, max_rounds):
    """Panel tabulation of sorted distinct values (see :func:`tabulate_iterates`)."""
    xc, W, costab = _panel_rule(deg, _CHECKS)
    panels = _initial_panels(float(vals[0]), float(vals[-1]), args[3])
    good = []
    for _ in range(max_rounds):
        if not panels:
            break
        pa = np.array(panels)
        mid = 0.5 * (pa[:, 0] + pa[:, 1])
        half = 0.5 * (pa[:, 1] - pa[:, 0])
        pts = np.ascontiguousarray(
            np.concatenate(
                [
                    mid[:, None] + half[:, None] * xc[None],
                    mid[:, None] + half[:, None] * _CHECKS[None],
                ],
                axis=1,
            )
        )
        fn = np.empty((snaps.size, pa.shape[0], deg))
        err = np.empty(pa.shape[0])
        _cov.iterate_panels(pts, deg, W, nlayers, *args, snaps, fn, err)
        nxt = []
        for i, (p, e) in enumerate(zip(panels, err)):
            if e <= tol:
                good.append((p[0], p[1], fn[:, i, :]))
            else:
                m = 0.5 * (p[0] + p[1])
                nxt += [(p[0], m), (m, p[1])]
        panels = nxt
    out = np.empty((snaps.size, vals.size))
    done = np.zeros(vals.size, dtype=bool)
    if good:
        good.sort(key=lambda t: t[0])
        starts = np.array([g[0] for g in good])
        ends = np.array([g[1] for g in good])
        coefs = _cov.cheb_coefs(np.ascontiguousarray(np.stack([g[2] for g in good])), costab)
        idx = np.clip(np.searchsorted(starts, vals, side="right") - 1, 0, len(good) - 1)
        _cov.cheb_eval(vals, idx, starts, ends, coefs, out, done)
    rest = np.nonzero(~done)[0]
    if rest.size:
        r = np.empty((snaps.size, rest.size))
        _cov.iterate_points(np.ascontiguousarray(vals[rest]), nlayers, *args, r, snaps)
        out[:, rest] = r
    return out
