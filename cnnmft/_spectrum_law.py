"""The law of ``D^2 = phi'(sqrt(q*) z)^2`` and the real-axis geometry of the spectral equation.

Private helpers of :mod:`cnnmft.spectrum`: the panel rule that represents the law of ``D^2``
(:func:`make_law`; exact 0/1 laws for linear, relu and hard_tanh), the edges of the spectrum as
stationary points of the real function ``log M^{-1}(m(x))`` (:func:`upper_edge`,
:func:`lower_edge`), the starting point of the continuation below the upper edge
(:func:`first_guess`), the default eigenvalue grids (:func:`auto_grid`, :func:`cheb`) and the
depth-one density (:func:`depth_one`). See ``docs/theory.md``, section 3.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from cnnmft._kernels import _act, _custom
from cnnmft._kernels import _spectrum as _k
from cnnmft._kernels._quad import gauss_legendre
from cnnmft.results import Status

ZMAX = 9.0
DISCRETE = {_act.LINEAR, _act.RELU, _act.HARD_TANH}


# ---------------------------------------------------------------------------------------------
# the law of D^2 = phi'(sqrt(q) z)^2 as a panel rule


@dataclass(frozen=True)
class Law:
    code: int
    sq: float
    pa: np.ndarray
    pb: np.ndarray
    dn: np.ndarray
    en: np.ndarray
    dpn: np.ndarray
    wn: np.ndarray
    wscale: float
    mu1: float
    mu2: float
    dmin: float
    dmax: float
    discrete: bool
    p: float  # fraction of ones for the discrete (0/1) laws
    deff: float = 0.0  # lower end of the law up to a mass 1e-16
    km: object = None  # kernel module (a private copy bound to a custom activation)
    vard: float = math.nan  # E[(d - mu1)^2] from the centred values (no cancellation)

    @property
    def k(self):
        return _k if self.km is None else self.km

    def args(self):
        return (
            self.code,
            self.sq,
            self.pa,
            self.pb,
            self.dn,
            self.en,
            self.dpn,
            self.wn,
            self.wscale,
        )


def _dvals(act, sq, z):
    u = sq * np.asarray(z, dtype=np.float64)
    p1 = act.dphi(u)
    p2 = act.d2phi(u)
    return p1 * p1, 2.0 * sq * p1 * p2


def discrete_law(act, q):
    if act.code == _act.LINEAR:
        p = 1.0
    elif act.code == _act.RELU:
        p = 0.5
    else:
        p = math.erf(1.0 / math.sqrt(2.0 * q)) if q > 0 else 1.0
    n = _k.NGL
    dn = np.ones(n)
    wn = np.zeros(n)
    dn[1] = 0.0
    wn[0] = p
    wn[1] = 1.0 - p
    mu1 = p
    return Law(
        act.code,
        math.sqrt(q),
        np.zeros(1),
        np.zeros(1),
        dn,
        dn - mu1,
        np.zeros(n),
        wn,
        1.0,
        mu1,
        p,
        0.0 if p < 1 else 1.0,
        1.0,
        True,
        p,
        vard=p * (1.0 - p),
    )


@functools.lru_cache(maxsize=None)
def _custom_kernels(act):
    """Return a private copy of the spectrum kernels bound to a custom activation (code 0).

    Built the way the project's Gaussian-expectation kernels are (compiled once per process).
    """
    ns = _custom.kernels_for(act)
    return _custom._clone_module(_k, {"_act": ns.act}, f"cnnmft_custom_spectrum_{act.name}")


def make_law(act, q):
    if act.code in DISCRETE:
        return discrete_law(act, q)
    sq = math.sqrt(q)
    probe = np.linspace(0.05, ZMAX, 37)
    even = bool(
        np.allclose(_dvals(act, sq, probe)[0], _dvals(act, sq, -probe)[0], rtol=1e-13, atol=1e-300)
    )
    lo = 0.0 if even else -ZMAX
    width = min(1.0, 0.5 / sq) if (act.steep and sq > 0) else 1.0
    edges = {lo, ZMAX}
    for kk in getattr(act, "kinks", ()) or ():
        if sq > 0:
            zk = kk / sq
            if lo < zk < ZMAX:
                edges.add(zk)
    if lo < 0.0:
        edges.add(0.0)
    e = np.array(sorted(edges))
    pts = []
    for a, b in zip(e[:-1], e[1:]):
        m = max(1, int(math.ceil((b - a) / width)))
        pts.append(np.linspace(a, b, m + 1)[:-1])
    pts.append([ZMAX])
    e = np.concatenate(pts)
    pa, pb = e[:-1], e[1:]
    x, w = gauss_legendre(_k.NGL)
    h = 0.5 * (pb - pa)[:, None]
    c = 0.5 * (pb + pa)[:, None]
    z = (c + h * x[None, :]).ravel()
    fold = 2.0 if even else 1.0
    wraw = (h * w[None, :]).ravel() * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) * fold
    total = wraw.sum()
    wn = wraw / total
    dn, dpn = _dvals(act, sq, z)
    mu1 = float(np.sum(wn * dn))
    en = dn - mu1
    mu2 = float(np.sum(wn * dn * dn))
    # the supremum of d: node maximum, panel edges, refined by a bounded search near the argmax
    dmax = max(float(dn.max()), float(_dvals(act, sq, e)[0].max()))
    i = int(np.argmax(dn))
    if dpn[i] != 0.0:
        j = i // _k.NGL
        r = minimize_scalar(
            lambda t: -_dvals(act, sq, t)[0],
            bounds=(pa[j], pb[j]),
            method="bounded",
            options={"xatol": 1e-12},
        )
        dmax = max(dmax, -float(r.fun))
    dmin = min(float(dn.min()), float(_dvals(act, sq, e)[0].min()))
    i = int(np.argmin(dn))
    if dpn[i] != 0.0:
        # an interior minimum (phi' has a zero for gelu and swish): refine it like dmax, so
        # that no refined node of the sums falls below dmin (the lower-edge search runs there)
        j = i // _k.NGL
        lo_j, hi_j = pa[max(j - 1, 0)], pb[min(j + 1, pb.size - 1)]
        r = minimize_scalar(
            lambda t: _dvals(act, sq, t)[0],
            bounds=(lo_j, hi_j),
            method="bounded",
            options={"xatol": 1e-14},
        )
        dmin = max(min(dmin, float(r.fun)), 0.0)
    # below deff the law of d has mass < 1e-16 (|z| > 8.3): its spectral effect is negligible,
    # so the real branch of the spectral equation extends up to deff for edge searches
    core = np.abs(z) <= 8.3
    deff = float(dn[core].min()) if core.any() else dmin
    code, km = act.code, None
    if act.code >= _act.N_BUILTIN:
        code, km = 0, _custom_kernels(act)
    return Law(
        code,
        sq,
        np.ascontiguousarray(pa),
        np.ascontiguousarray(pb),
        dn,
        en,
        dpn,
        wn,
        fold / total,
        mu1,
        mu2,
        dmin,
        dmax,
        False,
        float("nan"),
        max(deff, dmin),
        km,
        float(np.sum(wn * en * en)),
    )


@functools.lru_cache(maxsize=8)
def _fejer(n):
    """Fejer's first rule on [-1, 1] at the Chebyshev points cos((k + 1/2) pi / n)."""
    th = (np.arange(n) + 0.5) * np.pi / n
    j = np.arange(1, n // 2 + 1)
    w = 1.0 - 2.0 * np.sum(np.cos(2.0 * np.outer(th, j)) / (4.0 * j * j - 1.0), axis=1)
    return (2.0 / n) * w


def cheb(a, b, n, rule="theta"):
    """Chebyshev points of the first kind on [a, b], descending, with quadrature weights.

    rule="theta": the midpoint rule in theta, spectrally accurate when the density has
    square-root (or inverse square-root) behaviour at both ends; rule="fejer": Fejer's first
    rule, spectrally accurate for a density smooth at the ends (algebraic, ~n^-3, at a
    square-root edge).
    """
    th = (np.arange(n) + 0.5) * np.pi / n
    lam = a + (b - a) * 0.5 * (1.0 + np.cos(th))
    if rule == "theta":
        w = (np.pi / n) * 0.5 * (b - a) * np.sin(th)
    else:
        w = 0.5 * (b - a) * _fejer(n)
    return lam, w


def auto_grid(kind, lam_min, lmax, n, grid_kind):
    """Default grid, quadrature weights for the density in lambda, and the lower cut-off.

    Chebyshev points between the two edges, in lambda ("linear") or in log lambda ("log", chosen
    by "auto" when lambda_max / lambda_min > 1e3); the midpoint rule in theta is spectrally
    accurate for square-root edges. When the support reaches (practically) 0 -- Gaussian
    weights, where the density diverges like lam^(-L/(L+1)), relu, or a lower edge below
    1e-12 lambda_max -- the grid stops at a cut-off (1e-12 lambda_max on the log grid,
    resolved by the Chebyshev points on the linear one) and the mass below it is the exact
    CDF there; Fejer's first rule handles the smooth cut-off end.
    """
    open_low = kind == _k.GAUSS or lam_min <= 1e-12 * lmax
    if grid_kind == "auto":
        grid_kind = "log" if (open_low or lmax / lam_min > 1e3) else "linear"
    cut = None
    if open_low:
        if grid_kind == "log":
            cut = lmax * 1e-12
        else:
            cut = lmax * max(1e-4, 0.5 * (40.0 / n) ** 2)
        lo, rule = cut, "fejer"
    else:
        lo, rule = lam_min, "theta"
    if grid_kind == "log":
        u, w = cheb(math.log(lo), math.log(lmax), n, rule)
        lam = np.exp(u)
        return lam, w * lam, cut
    lam, w = cheb(lo, lmax, n, rule)
    return lam, w, cut


def _real_f(law, kind, L, xs, eps=0.0):
    xs = np.ascontiguousarray(xs, dtype=np.float64)
    f = np.empty_like(xs)
    fp = np.empty_like(xs)
    law.k.eval_real(xs, kind, float(L), law.mu1, *law.args(), f, fp, eps)
    return f, fp


def _stationary(law, kind, L, xs, sign, eps=0.0):
    """Find the stationary point of the real F on the scan `xs` (increasing x).

    sign=+1: minimum (F' from - to +); sign=-1: maximum. Returns (x*, F(x*)) or None.
    """
    f, fp = _real_f(law, kind, L, xs, eps)
    s = sign * fp
    idx = np.nonzero((s[:-1] < 0) & (s[1:] >= 0) & np.isfinite(s[:-1]) & np.isfinite(s[1:]))[0]
    if idx.size == 0:
        return None
    # the physical edge is the stationary point nearest the far end of the branch: for the
    # upper edge (x > dmax) the branch comes from x = +inf, so take the last sign change
    i = idx[-1] if sign > 0 else idx[0]

    def g(x):
        return _real_f(law, kind, L, np.array([x]), eps)[1][0]

    xstar = brentq(g, xs[i], xs[i + 1], xtol=1e-15 * abs(xs[i + 1]), rtol=1e-15, maxiter=200)
    fstar = _real_f(law, kind, L, np.array([xstar]), eps)[0][0]
    return xstar, fstar


def upper_edge(law, kind, L):
    dmax = law.dmax
    xs = dmax + dmax * np.exp(np.linspace(-34.0, math.log(4.0 * L + 50.0), 160))
    if law.discrete and kind == _k.ORTH and 0.0 < law.p < 1.0:
        # 0/1 law: M_D = p/(x - 1) is real on (1 - p, 1) too, where m < -1; the real branch
        # from x = +inf runs through the atom (x = 1, m = inf) down to its first minimum
        lo = 1.0 - law.p
        left = lo + law.p * np.exp(np.linspace(-34.0, -1e-9, 160))
        xs = np.concatenate([left, xs])
    res = _stationary(law, kind, L, xs, +1)
    if res is None:
        return None
    xstar, fstar = res
    # curvature for the square-root start below the edge
    h = 1e-6 * abs(xstar - dmax)
    if law.discrete and 0.0 < law.p < 1.0:
        h = min(h, 1e-6 * abs(xstar - (1.0 - law.p)))
    fpp = (
        _real_f(law, kind, L, np.array([xstar + h]))[1][0]
        - _real_f(law, kind, L, np.array([xstar - h]))[1][0]
    ) / (2 * h)
    return xstar, fstar, fpp


def lower_edge(law, kind, L):
    """Maximum of the real F on x in (0, dmin) (orthogonal weights): the lower edge."""
    top = law.dmin
    if top <= 1e-250:
        return None
    tmax = min(700.0, math.log(top / 1e-300))
    t = np.exp(np.linspace(-18.0, math.log(tmax), 160))
    xs = np.sort(top * np.exp(-t))
    xs = xs[xs > 0]
    res = _stationary(law, kind, L, xs, -1)
    if res is not None:
        return res
    # no interior maximum: F increases up to the lower end of the law of d (mass 1e-16 below);
    # below that value the density is of the order of that mass
    xb = top * (1.0 - 1e-6)
    return xb, float(_real_f(law, kind, L, np.array([xb]))[0][0])


def first_guess(law, kind, L, lam0, xstar, fstar, fpp, tol, maxiter):
    """Return the starting x for the first eigenvalue below the upper edge.

    Near a square-root edge, F(x) ~ F(x*) + F''(x*) (x - x*)^2 / 2, so
    x0 = x* + i sqrt(2 (F(x*) - log lam0) / F''). When that start does not converge (an
    inverse-square-root edge, e.g. two free projections of rank 1/2), larger imaginary offsets
    are tried; the candidate must converge with Im x > 0 and Im m < 0.
    """
    d0 = max(2.0 * (fstar - math.log(lam0)) / fpp, 0.0) if fpp > 0 else 0.0
    cands = [complex(xstar, math.sqrt(d0) + 1e-300)]
    scale = max(abs(xstar), 1e-3)
    cands += [complex(xstar, f * scale) for f in (1e-4, 1e-3, 1e-2, 0.1, 0.3)]
    one = np.array([math.log(lam0)])
    for c in cands:
        xs = np.zeros(1, dtype=np.complex128)
        ms = np.zeros(1, dtype=np.complex128)
        cd = np.zeros(1)
        st = np.zeros(1, dtype=np.int64)
        law.k.solve_grid(
            one, c, kind, float(L), law.mu1, *law.args(), tol, maxiter, xs, ms, cd, st, 0.0
        )
        if st[0] == Status.OK:
            return xs[0]
    return cands[0]


def depth_one(law, n_points, user, scale):
    """Orthogonal L = 1: JJ^T = sigma_w2 D^2, density of d by the Plemelj limit of M_{D^2}."""
    lo, hi = law.dmin / law.mu1, law.dmax / law.mu1
    if user is None and lo > 0.0 and hi / lo > 1e3:
        # a law of d spread over many decades (erf: d = exp(-2 q z^2) reaches 1e-100): the
        # Chebyshev points in log d resolve its mass near 0
        u, w = cheb(math.log(lo), math.log(hi), n_points)
        grid = np.exp(u)
        qw = w * grid
    elif user is None:
        grid, qw = cheb(lo, hi, n_points)
    else:
        grid = user / scale
        qw = np.zeros_like(grid)
    dens = np.zeros(grid.shape)
    cdf = np.zeros(grid.shape)
    pst = np.full(grid.shape, int(Status.ZERO), dtype=np.int64)
    acc = np.zeros(7, dtype=np.complex128)
    for i, g in enumerate(grid):
        if g <= lo or g >= hi:
            cdf[i] = 0.0 if g <= lo else 1.0
            continue
        x = complex(g * law.mu1, 1e-11 * g * law.mu1)
        flag = law.k.sums(
            x,
            law.code,
            law.sq,
            law.mu1,
            law.pa,
            law.pb,
            law.dn,
            law.en,
            law.dpn,
            law.wn,
            law.wscale,
            acc,
            True,
        )
        m = acc[1]
        dens[i] = max(-m.imag / (math.pi * g), 0.0)
        cdf[i] = 1.0 - acc[6].imag / math.pi
        pst[i] = Status.OK if flag == 0 else Status.INACCURATE
    return grid, dens, cdf, qw, pst, hi, lo
