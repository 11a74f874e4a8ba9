r"""Free-probability spectra of the input-output Jacobian (dynamical isometry).

For a deep network at its fixed point (every pre-activation ~ N(0, q*)), the Jacobian is
``J = D_L W_L ... D_1 W_1`` with ``D_l = diag(phi'(h^l))``. Assuming the factors are
asymptotically free (Pennington, Schoenholz and Ganguli 2017), the S-transform of ``J J^T`` is

.. math::

    S_{JJ^T}(m) = S_{WW^T}(m)^L \, S_{D^2}(m)^L,

with ``S_{WW^T} = sigma_w2^{-1}`` for orthogonal weights and ``sigma_w2^{-1} / (1 + m)`` for
Gaussian weights, and the law of ``D^2`` that of ``phi'(sqrt(q*) z)^2``. A CNN's ``J J^T`` has the
same spectrum as a fully-connected network with the same q* and weight ensemble (Delta-orthogonal
and block-orthogonal kernels give orthogonal convolution operators; Gaussian kernels give
Gaussian ones whatever the variance profile v) [1]_.

Main entry points: :func:`jacobian_spectrum` (density, CDF, quantiles, moments, edges),
:func:`jacobian_moments` (closed-form moments and the spread parameter, broadcasting) and
:func:`universal_spectrum` (the one-parameter large-depth limit).

References
----------
.. [1] L. Xiao, Y. Bahri, J. Sohl-Dickstein, S. S. Schoenholz, J. Pennington, "Dynamical Isometry
   and a Mean Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural
   Networks", ICML 2018, Section 3.
.. [2] J. Pennington, S. S. Schoenholz, S. Ganguli, "Resurrecting the sigmoid in deep learning
   through dynamical isometry: theory and practice", NeurIPS 2017.
.. [3] J. Pennington, S. S. Schoenholz, S. Ganguli, "The emergence of spectral universality in deep
   networks", AISTATS 2018.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from cnnmft._kernels import _act
from cnnmft._kernels import _spectrum as _k
from cnnmft._validation import as_choice, as_float_array, as_int
from cnnmft.activations import get_activation
from cnnmft.results import ResultMixin, Status

__all__ = ["Spectrum", "JacobianMoments", "jacobian_spectrum", "jacobian_moments",
           "universal_spectrum", "d2_law"]

ZMAX = 9.0
_WEIGHTS = ("orthogonal", "gaussian")
_DISCRETE = {_act.LINEAR, _act.RELU, _act.HARD_TANH}
_TOL_MASS = 1e-6
_TAIL = 1e-10
_NARROW = 1e-7  # relative width of the law of phi'^2 below which it is treated as a point


# ---------------------------------------------------------------------------------------------
# the law of D^2 = phi'(sqrt(q) z)^2 as a panel rule

@dataclass(frozen=True)
class _Law:
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
        return (self.code, self.sq, self.pa, self.pb, self.dn, self.en, self.dpn, self.wn,
                self.wscale)



def _unsort(order, *sorted_arrays):
    """Undo a sort: out[order] = sorted for each array."""
    outs = []
    for a in sorted_arrays:
        out = np.empty_like(a)
        out[order] = a
        outs.append(out)
    return outs

def _dvals(act, sq, z):
    u = sq * np.asarray(z, dtype=np.float64)
    p1 = act.dphi(u)
    p2 = act.d2phi(u)
    return p1 * p1, 2.0 * sq * p1 * p2


def _discrete_law(act, q):
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
    return _Law(act.code, math.sqrt(q), np.zeros(1), np.zeros(1), dn, dn - mu1, np.zeros(n), wn,
                1.0, mu1, p, 0.0 if p < 1 else 1.0, 1.0, True, p, vard=p * (1.0 - p))


@functools.lru_cache(maxsize=None)
def _custom_kernels(act):
    """Return a private copy of the spectrum kernels bound to a custom activation (code 0).

    Built the way the project's Gaussian-expectation kernels are (compiled once per process).
    """
    from cnnmft._kernels import _custom

    ns = _custom.kernels_for(act)
    return _custom._clone_module(_k, {"_act": ns.act}, f"cnnmft_custom_spectrum_{act.name}")


def _make_law(act, q):
    if act.code in _DISCRETE:
        return _discrete_law(act, q)
    sq = math.sqrt(q)
    probe = np.linspace(0.05, ZMAX, 37)
    even = bool(np.allclose(_dvals(act, sq, probe)[0], _dvals(act, sq, -probe)[0],
                            rtol=1e-13, atol=1e-300))
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
    x, w = np.polynomial.legendre.leggauss(_k.NGL)
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
        from scipy.optimize import minimize_scalar

        j = i // _k.NGL
        r = minimize_scalar(lambda t: -_dvals(act, sq, t)[0], bounds=(pa[j], pb[j]),
                            method="bounded", options={"xatol": 1e-12})
        dmax = max(dmax, -float(r.fun))
    dmin = min(float(dn.min()), float(_dvals(act, sq, e)[0].min()))
    i = int(np.argmin(dn))
    if dpn[i] != 0.0:
        # an interior minimum (phi' has a zero for gelu and swish): refine it like dmax, so
        # that no refined node of the sums falls below dmin (the lower-edge search runs there)
        from scipy.optimize import minimize_scalar

        j = i // _k.NGL
        lo_j, hi_j = pa[max(j - 1, 0)], pb[min(j + 1, pb.size - 1)]
        r = minimize_scalar(lambda t: _dvals(act, sq, t)[0], bounds=(lo_j, hi_j),
                            method="bounded", options={"xatol": 1e-14})
        dmin = max(min(dmin, float(r.fun)), 0.0)
    # below deff the law of d has mass < 1e-16 (|z| > 8.3): its spectral effect is negligible,
    # so the real branch of the spectral equation extends up to deff for edge searches
    core = np.abs(z) <= 8.3
    deff = float(dn[core].min()) if core.any() else dmin
    code, km = act.code, None
    if act.code >= _act.N_BUILTIN:
        code, km = 0, _custom_kernels(act)
    return _Law(code, sq, np.ascontiguousarray(pa), np.ascontiguousarray(pb), dn, en, dpn,
                wn, fold / total, mu1, mu2, dmin, dmax, False, float("nan"), max(deff, dmin), km,
                float(np.sum(wn * en * en)))


def d2_law(act, q_star):
    """Moments of the law of ``D^2 = phi'(sqrt(q*) z)^2``, z ~ N(0, 1).

    Parameters
    ----------
    act : str or Activation
        The activation.
    q_star : float
        Pre-activation variance q* >= 0.

    Returns
    -------
    dict
        ``mu1``, ``mu2`` (``E[phi'^2]``, ``E[phi'^4]``), ``dmin``, ``dmax`` (the support of the
        law as represented, z truncated to ``|z| <= 9``) and ``discrete`` (True for the 0/1 laws of
        linear, relu and hard_tanh).
    """
    a = get_activation(act)
    q = float(as_float_array(q_star, "q_star", low=0.0))
    law = _make_law(a, q)
    return dict(mu1=law.mu1, mu2=law.mu2, dmin=law.dmin, dmax=law.dmax, discrete=law.discrete)


# ---------------------------------------------------------------------------------------------
# results

@dataclass(frozen=True)
class Spectrum(ResultMixin):
    """Free-probability spectrum of ``J J^T`` (and of the singular values of J).

    Attributes
    ----------
    activation, weights : str
        Activation name and weight ensemble (``"orthogonal"``, ``"gaussian"`` or ``"universal"``).
    sigma_w2, sigma_b2, q_star : float
        Hyperparameters and the fixed point used (NaN where not applicable).
    depth : int
        Number of layers L (0 for the universal limit).
    mu1, mu2 : float
        ``E[phi'(h)^2]`` and ``E[phi'(h)^4]`` at q*.
    lam : ndarray, shape (n,)
        Eigenvalues of J J^T where the density is given (descending on the default grid).
    density : ndarray, shape (n,)
        Density of the continuous part of the eigenvalue law at `lam` (zero outside the support).
    cdf : ndarray, shape (n,)
        ``P(lambda_JJ^T <= lam)``, atoms included, from the exact antiderivative of the Stieltjes
        transform (not from integrating `density`).
    quad_weights : ndarray, shape (n,)
        Quadrature weights on the default (Chebyshev) grid: ``sum(quad_weights * f(lam))``
        integrates ``f * density`` over the continuous support. Zeros for a user grid.
    sv, sv_density : ndarray, shape (n,)
        Singular values ``sqrt(lam)`` of J and their density ``2 s rho(s^2)``.
    m1, m2, variance : float
        Closed-form moments of ``J J^T``: ``m1 = (sigma_w2 mu1)^L``,
        ``m2 = m1^2 (1 + L (mu2/mu1^2 - 1 - s1))`` with ``s1 = 0`` (orthogonal) or ``-1``
        (Gaussian), ``variance = m2 - m1^2``.
    spread : float
        ``L (mu2/mu1^2 - 1 - s1)`` = variance / m1^2, the universal parameter s (Sec. 6.6).
    lambda_max, lambda_min : float
        Upper and lower edges of the continuous support (``lambda_min = 0`` when the support
        reaches 0, e.g. Gaussian weights).
    atom_lam, atom_mass : ndarray, shape (k,)
        Point masses of the law (0/1 laws of relu/hard_tanh/linear), possibly empty.
    mass : float
        Continuous mass from `quad_weights` plus the atoms (1 up to quadrature error; NaN on a
        user grid).
    log_m1 : float
        ``log m1``; when it is outside the float range the arrays are given for ``JJ^T / m1``.
    normalized : bool
        True when `lam`, `density`, moments and edges describe ``J J^T / m1``.
    point_status : ndarray of int, shape (n,)
        :class:`Status` per eigenvalue: OK where the spectral equation converged on the
        physical branch; ZERO outside the support (density exactly 0 there); INACCURATE where
        Newton stalled at the rounding level or the quadrature hit its depth cap; failures
        (MAXITER, NONFINITE, NO_SOLUTION: converged off the physical branch) are negative.
    status : int
        :class:`Status` of the whole computation: OK, or MAXITER/NONFINITE when any point failed
        or the mass and monotonicity checks failed; INFINITE when the scale overflowed (then
        ``normalized`` is True); INACCURATE when the law of ``phi'^2`` is narrower than 1e-7
        relative to its mean (tiny q*): the spectrum is then that of a linear network scaled by
        ``E[phi'^2]`` (a point mass at ``m1`` for orthogonal weights) while the moments and
        ``variance`` keep the true width.
    """

    activation: str
    weights: str
    sigma_w2: float
    sigma_b2: float
    q_star: float
    depth: int
    mu1: float
    mu2: float
    lam: np.ndarray
    density: np.ndarray
    cdf: np.ndarray
    quad_weights: np.ndarray
    sv: np.ndarray
    sv_density: np.ndarray
    m1: float
    m2: float
    variance: float
    spread: float
    lambda_max: float
    lambda_min: float
    atom_lam: np.ndarray
    atom_mass: np.ndarray
    mass: float
    log_m1: float
    normalized: bool
    point_status: np.ndarray
    status: int

    @property
    def success(self) -> bool:
        """True when `status` is OK."""
        return int(self.status) == int(Status.OK)

    @property
    def sv_max(self) -> float:
        """Largest singular value ``sqrt(lambda_max)``."""
        return math.sqrt(self.lambda_max)

    def quantile(self, p):
        """Eigenvalue quantiles ``inf {lam : CDF(lam) >= p}`` by monotone interpolation of `cdf`.

        Parameters
        ----------
        p : array_like
            Probabilities in [0, 1].

        Returns
        -------
        ndarray
            Quantiles, same shape as `p`. Accurate to the grid resolution (relative error
            about ``1/n^2`` in the bulk on the default Chebyshev grid).
        """
        p = as_float_array(p, "p", low=0.0, high=1.0)
        order = np.argsort(self.lam)
        lam = self.lam[order]
        c = np.maximum.accumulate(np.clip(self.cdf[order], 0.0, 1.0))
        lo = self.lambda_min if self.lambda_min > 0 else 0.0
        lam = np.concatenate([[lo], lam, [self.lambda_max]])
        c0 = float(np.sum(self.atom_mass[self.atom_lam <= lo])) if self.atom_mass.size else 0.0
        above = self.atom_mass[self.atom_lam > self.lambda_max] if self.atom_mass.size else []
        c = np.concatenate([[c0], c, [1.0 - float(np.sum(above))]])
        return np.interp(p, c, lam)

    def sv_quantile(self, p):
        """Singular-value quantiles ``sqrt(quantile(p))``."""
        return np.sqrt(self.quantile(p))


@dataclass(frozen=True)
class JacobianMoments(ResultMixin):
    """Closed-form moments of ``J J^T`` (broadcast shape of the inputs).

    Attributes
    ----------
    q_star, mu1, mu2 : ndarray
        Fixed point and ``E[phi'^2]``, ``E[phi'^4]`` there.
    m1, m2, variance, spread : ndarray
        As in :class:`Spectrum`.
    lambda_max_asymptotic : ndarray
        ``m1 * ((1+m*)/m*) exp(s m*)``, ``m* = (sqrt(1+4/s) - 1)/2``: the edge of the universal
        limit with ``s = spread`` (Sec. 6.6); close to the exact edge when s is large or L is
        large at fixed s.
    status : ndarray of int
        :class:`Status` of the fixed point.
    """

    q_star: np.ndarray
    mu1: np.ndarray
    mu2: np.ndarray
    m1: np.ndarray
    m2: np.ndarray
    variance: np.ndarray
    spread: np.ndarray
    lambda_max_asymptotic: np.ndarray
    status: np.ndarray


# ---------------------------------------------------------------------------------------------
# helpers

def _fixed_q(act, sigma_w2, sigma_b2):
    from cnnmft.meanfield import fixed_point

    fp = fixed_point(act, sigma_w2, sigma_b2)
    return np.asarray(fp.q_star, dtype=float), np.asarray(fp.status)


def _s1(weights):
    return 0.0 if weights == "orthogonal" else -1.0


def _universal_edges(s):
    """(lambda_max, lambda_min, m_plus, m_minus) of M^{-1}(m) = ((1+m)/m) exp(s m)."""
    r = math.sqrt(1.0 + 4.0 / s)
    mp = 0.5 * (r - 1.0)
    mm = -0.5 * (r + 1.0)
    lmax = math.exp(math.log1p(mp) - math.log(mp) + s * mp)
    lmin = math.exp(math.log((1.0 + mm) / mm) + s * mm)
    return lmax, lmin, mp, mm


def jacobian_moments(act, sigma_w2, sigma_b2, depth, weights="orthogonal", *, q_star=None):
    r"""Closed-form moments of the Jacobian spectrum (broadcasts over the hyperparameters).

    .. math::

        m_1 = (\sigma_w^2 \mu_1)^L, \qquad
        \frac{m_2}{m_1^2} = 1 + L\left(\frac{\mu_2}{\mu_1^2} - 1 - s_1\right),

    with ``mu_k = E[phi'(sqrt(q*) z)^{2k}]``, ``s1 = 0`` (orthogonal) or ``-1`` (Gaussian).

    Parameters
    ----------
    act : str or Activation
        The activation.
    sigma_w2, sigma_b2 : array_like
        Weight and bias variances (broadcast together).
    depth : int or array_like of int
        Number of layers L >= 1.
    weights : {"orthogonal", "gaussian"}
        Weight ensemble.
    q_star : array_like, optional
        Use this q* instead of the fixed point of (sigma_w2, sigma_b2).

    Returns
    -------
    JacobianMoments
        Fields of the broadcast shape.

    References
    ----------
    .. [1] Pennington, Schoenholz, Ganguli 2017; Xiao et al. 2018, Section 3.
    """
    from cnnmft.gaussian import expect

    a = get_activation(act)
    weights = as_choice(weights, "weights", _WEIGHTS)
    sw = as_float_array(sigma_w2, "sigma_w2", low=0.0, low_open=True)
    sb = as_float_array(sigma_b2, "sigma_b2", low=0.0)
    L = np.asarray(depth)
    if L.dtype.kind not in "iu" or np.any(L < 1):
        raise ValueError(f"`depth` must be an integer >= 1 (or an array of them); got {depth!r}")
    if q_star is None:
        q, st = _fixed_q(a, sw, sb)
    else:
        q = as_float_array(q_star, "q_star", low=0.0)
        st = np.zeros(np.shape(q), dtype=int)
    q, sw, sb, L, st = np.broadcast_arrays(q, sw, sb, L.astype(float), st)
    mu1 = np.asarray(expect(a, q, orders=(1, 1)), dtype=float)
    mu2 = np.asarray(expect(a, q, orders=(1, 1, 1, 1)), dtype=float)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        m1 = np.exp(L * np.log(sw * mu1))
        spread = L * (mu2 / mu1**2 - 1.0 - _s1(weights))
        m2 = m1**2 * (1.0 + spread)
        var = m1**2 * spread
        r = np.sqrt(1.0 + 4.0 / spread)
        mp = 0.5 * (r - 1.0)
        lmax = m1 * (1.0 + mp) / mp * np.exp(spread * mp)
        lmax = np.where(spread > 0, lmax, m1)
    return JacobianMoments(q_star=q, mu1=mu1, mu2=mu2, m1=m1, m2=m2, variance=var, spread=spread,
                           lambda_max_asymptotic=lmax, status=np.asarray(st, dtype=int))


@functools.lru_cache(maxsize=8)
def _fejer(n):
    """Fejer's first rule on [-1, 1] at the Chebyshev points cos((k + 1/2) pi / n)."""
    th = (np.arange(n) + 0.5) * np.pi / n
    j = np.arange(1, n // 2 + 1)
    w = 1.0 - 2.0 * np.sum(np.cos(2.0 * np.outer(th, j)) / (4.0 * j * j - 1.0), axis=1)
    return (2.0 / n) * w


def _cheb(a, b, n, rule="theta"):
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


def _auto_grid(kind, lam_min, lmax, n, grid_kind):
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
        u, w = _cheb(math.log(lo), math.log(lmax), n, rule)
        lam = np.exp(u)
        return lam, w * lam, cut
    lam, w = _cheb(lo, lmax, n, rule)
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
    from scipy.optimize import brentq

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


def _upper_edge(law, kind, L):
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
    fpp = (_real_f(law, kind, L, np.array([xstar + h]))[1][0]
           - _real_f(law, kind, L, np.array([xstar - h]))[1][0]) / (2 * h)
    return xstar, fstar, fpp


def _lower_edge(law, kind, L):
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


def _first_guess(law, kind, L, lam0, xstar, fstar, fpp, tol, maxiter):
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
        law.k.solve_grid(one, c, kind, float(L), law.mu1, *law.args(), tol, maxiter, xs, ms, cd, st,
                      0.0)
        if st[0] == Status.OK:
            return xs[0]
    return cands[0]


def jacobian_spectrum(act, sigma_w2, sigma_b2, depth, weights="orthogonal", *, n_points=2000,
                      lam=None, grid="auto", q_star=None, tol=None, maxiter=80):
    r"""Eigenvalue density of ``J J^T`` (and singular-value density of J) by free probability.

    With ``x = M_{D^2}^{-1}(m)`` the inverse M-transform of ``J J^T`` is [2]_

    .. math::

        M^{-1}_{JJ^T}(m) = \sigma_w^{2L} \left(\tfrac{1+m}{m}\right)^{1-L} x^L
        \ \text{(orthogonal)}, \qquad
        \sigma_w^{2L} (1+m)\, m^{L-1} x^L \ \text{(Gaussian)},

    ``M_{D^2}(x) = E[d/(x-d)]``, ``d = phi'(sqrt(q*) z)^2``. For each eigenvalue lambda the
    equation ``log M^{-1}(m(x)) = log lambda`` is solved for complex x by Newton's method with
    continuation from above the upper edge (where x is real, on the branch connected to
    x = +infinity) down the grid, and ``rho(lambda) = -Im m / (pi lambda)``.

    Parameters
    ----------
    act : str or Activation
        The activation (any registered one; relu, hard_tanh and linear have 0/1 laws of D^2 and
        give point masses, reported in ``atom_lam``/``atom_mass``).
    sigma_w2 : float
        Weight variance (> 0). Orthogonal weights are scaled by ``sqrt(sigma_w2)``.
    sigma_b2 : float
        Bias variance (>= 0).
    depth : int
        Number of layers L, 1 to 10^6.
    weights : {"orthogonal", "gaussian"}
        Weight ensemble (Delta-/block-orthogonal kernels: "orthogonal"; Gaussian kernels with
        any variance profile: "gaussian").
    n_points : int, keyword-only
        Size of the default grid: Chebyshev points on [lambda_min, lambda_max] (descending).
    lam : array_like, optional
        Evaluate at these eigenvalues instead (any order; then ``quad_weights`` is zero).
    grid : {"auto", "linear", "log"}
        Spacing of the default grid: Chebyshev points in lambda or in log lambda. "auto" takes
        "log" for Gaussian weights (the density diverges at 0 and the grid stops at
        1e-12 lambda_max; the mass below is ``cdf`` there, reported in ``mass``) and for
        orthogonal spectra spanning more than three decades.
    q_star : float, optional
        Use this q* instead of the fixed point of (sigma_w2, sigma_b2).
    tol : float, optional
        Newton tolerance on ``|log z(x) - log lambda|`` (default ``1e-13 (L + 10)``).
    maxiter : int
        Newton iterations per point.

    Returns
    -------
    Spectrum
        Density, CDF, singular-value density, moments, edges, atoms and status.

    Raises
    ------
    ValueError
        For invalid arguments (named, with the allowed range).

    Notes
    -----
    ``M_{D^2}`` and its derivatives are composite Gauss-Legendre sums in z with panels bisected
    adaptively around the complex poles of ``1/(x - d(z))``, so the density has no quadrature
    spikes when x approaches the support of the law of d (small depth). The upper edge is the
    minimum of the real function ``log M^{-1}`` over x > max d; the lower edge (orthogonal) its
    maximum over 0 < x < min d. The CDF comes from the exact antiderivative
    ``Phi = (L-1) Log m + L E[Log(x - d)]`` (orthogonal; Gaussian adds ``L m``) of
    ``G = (1+m)/z`` along the solution, ``CDF = 1 - Im Phi / pi``; comparing it with the
    quadrature of the density, and checking ``Im x > 0``, ``Im m < 0`` and monotonicity,
    verifies that the physical branch was followed (Herglotz property). Everything is computed
    for ``JJ^T / m1`` and rescaled.

    References
    ----------
    .. [1] Xiao et al., ICML 2018, Section 3.
    .. [2] Pennington, Schoenholz, Ganguli, NeurIPS 2017.

    Examples
    --------
    >>> from cnnmft import jacobian_spectrum
    >>> s = jacobian_spectrum("tanh", 1.05, 2.01e-5, 16)
    >>> round(s.variance, 4), round(s.lambda_max, 3)
    (0.0683, 1.475)
    """
    a = get_activation(act)
    weights = as_choice(weights, "weights", _WEIGHTS)
    sw = float(as_float_array(sigma_w2, "sigma_w2", low=0.0, low_open=True))
    sb = float(as_float_array(sigma_b2, "sigma_b2", low=0.0))
    L = as_int(depth, "depth", low=1, high=10**6)
    n_points = as_int(n_points, "n_points", low=8, high=10**6)
    maxiter = as_int(maxiter, "maxiter", low=1, high=10000)
    grid_kind = as_choice(grid, "grid", ("auto", "linear", "log"))
    if np.ndim(sigma_w2) or np.ndim(sigma_b2):
        raise ValueError("`sigma_w2` and `sigma_b2` must be scalars for jacobian_spectrum "
                         "(use jacobian_moments to broadcast)")
    if q_star is None:
        qa, qst = _fixed_q(a, sw, sb)
        q = float(np.ravel(qa)[0])
        qst = int(np.ravel(qst)[0])
        if a.code in (_act.LINEAR, _act.RELU) and not (qst >= 0 and math.isfinite(q)):
            q, qst = 1.0, 0  # the law of phi'^2 does not depend on q*
        if qst < 0 or qst == int(Status.INFINITE) or not math.isfinite(q):
            raise ValueError(f"the fixed point q* of ({sw}, {sb}) for {a.name} is not finite "
                             f"(status {int(qst)}); pass `q_star` explicitly")
    else:
        q = float(as_float_array(q_star, "q_star", low=0.0))
    tol = 1e-13 * (L + 10) if tol is None else float(as_float_array(tol, "tol", low=0.0,
                                                                       low_open=True))
    user = None
    if lam is not None:
        user = as_float_array(lam, "lam", low=0.0).ravel()
    law = _make_law(a, q)
    mu1, mu2, vard = law.mu1, law.mu2, law.vard
    narrow = not law.discrete and law.dmax - law.dmin <= _NARROW * law.dmax
    if narrow:
        # phi'^2 is constant at this q* (e.g. q* = 0), or so nearly constant (tiny q*) that
        # x - d loses the width of its law to rounding: a linear network scaled by E[phi'^2];
        # the moments keep the true mu2, and a law wider than 1e-14 is flagged INACCURATE
        narrow = law.dmax - law.dmin > 1e-14 * law.dmax
        law = _discrete_law(get_activation("linear"), 1.0)
        mu2, vard = (mu2, vard) if narrow else (mu1 * mu1, 0.0)
    kind = _k.ORTH if weights == "orthogonal" else _k.GAUSS
    s1 = _s1(weights)
    if mu1 <= 0.0:
        raise ValueError(f"E[phi'(h)^2] = 0 at q* = {q} for {a.name}: the Jacobian vanishes")
    log_m1 = L * math.log(sw * mu1)
    spread = L * (vard / mu1**2 - s1)  # L (mu2 / mu1^2 - 1 - s1) without cancellation
    scale_ok = abs(log_m1) < 300.0
    scale = math.exp(log_m1) if scale_ok else 1.0
    m1n, m2n = 1.0, 1.0 + spread

    atoms_l, atoms_m = [], []
    if law.discrete:
        p = law.p
        if p < 1.0:
            atoms_l.append(0.0)
            atoms_m.append(1.0 - p)
        if weights == "orthogonal":
            top = p if L == 1 else max(0.0, 1.0 - L * (1.0 - p))
            if p == 1.0:
                top = 1.0
            if top > 0.0:
                atoms_l.append(p ** (-L) if p > 0 else 1.0)  # normalised: sigma_w^{2L} / m1
                atoms_m.append(top)
    atom_lam = np.array(atoms_l, dtype=float)
    atom_mass = np.array(atoms_m, dtype=float)
    cont_mass = 1.0 - float(atom_mass.sum())

    status = Status.OK
    lam_min = 0.0
    if cont_mass <= 1e-15:
        # everything is atoms (linear orthogonal, relu/hard_tanh orthogonal with L = 1)
        lmax = float(atom_lam.max())
        grid = np.linspace(0.0, lmax, n_points)[::-1] if user is None else user / scale
        dens = np.zeros_like(grid)
        cdf = np.array([atom_mass[atom_lam <= g].sum() for g in grid])
        qw = np.zeros_like(grid)
        pst = np.full(grid.shape, int(Status.ZERO), dtype=np.int64)
        lam_min = float(atom_lam.min())
        mass = float(atom_mass.sum())
    elif kind == _k.ORTH and L == 1:
        grid, dens, cdf, qw, pst, lmax, lam_min = _depth_one(law, n_points, user, scale)
        mass = float(np.sum(qw * dens)) + float(atom_mass.sum()) if user is None else float("nan")
    else:
        edge = _upper_edge(law, kind, L)
        if edge is None:
            return _fail(a, weights, sw, sb, q, L, law, spread, log_m1, Status.NONFINITE)
        xstar, fstar, fpp = edge
        lmax = math.exp(fstar)
        if kind == _k.ORTH:
            low = _lower_edge(law, kind, L)
            lam_min = math.exp(low[1]) if low is not None else 0.0
        cut = None
        if user is None:
            grid, qw, cut = _auto_grid(kind, lam_min, lmax, n_points, grid_kind)
        else:
            grid = user / scale
            qw = np.zeros_like(grid)
        order = np.argsort(-grid, kind="stable")
        g = grid[order]
        if cut is not None:
            g = np.append(g, cut)
        inside = (g < lmax) & (g > lam_min)
        gi = g[inside]
        xs = np.zeros(gi.shape, dtype=np.complex128)
        ms = np.zeros(gi.shape, dtype=np.complex128)
        cd = np.full(gi.shape, np.nan)
        st = np.zeros(gi.shape, dtype=np.int64)
        tail_mass = 0.0
        if gi.size:
            x0 = _first_guess(law, kind, L, gi[0], xstar, fstar, fpp, tol, maxiter)
            nd = law.k.solve_grid(np.log(gi), x0, kind, float(L), mu1, *law.args(), tol, maxiter,
                               xs, ms, cd, st, _TAIL)
            if nd < gi.size:
                # below: a soft tail with density < _TAIL x its maximum, reported as 0 (status
                # ZERO); its mass, the exact CDF where the continuation stopped, is added to `mass`
                ms[nd:] = 0.0
                cd[nd:] = cd[nd - 1]
                st[nd:] = Status.ZERO
                tail_mass = float(cd[nd - 1]) if nd > 0 else 0.0
        dens_s = np.zeros(g.shape)
        cdf_s = np.zeros(g.shape)
        pst_s = np.full(g.shape, int(Status.ZERO), dtype=np.int64)
        dens_s[inside] = np.maximum(-ms.imag, 0.0) / (math.pi * gi)
        cdf_s[inside] = cd
        pst_s[inside] = st
        above = g >= lmax
        cdf_s[above] = 1.0 - float(atom_mass[atom_lam >= lmax].sum()) if atom_mass.size else 1.0
        cdf_s[above] = np.where(g[above] >= (atom_lam.max() if atom_mass.size else 0), 1.0,
                                cdf_s[above])
        below = g <= lam_min
        cdf_s[below] = float(atom_mass[atom_lam <= lam_min].sum()) if atom_mass.size else 0.0
        below_mass = float(atom_mass[atom_lam <= lam_min].sum()) if atom_mass.size else 0.0
        below_mass += tail_mass
        lower_end = lam_min
        if cut is not None:
            lower_end = cut
            below_mass = cdf_s[-1] if pst_s[-1] >= 0 else np.nan
            dens_s, cdf_s, pst_s = dens_s[:-1], cdf_s[:-1], pst_s[:-1]
        dens, cdf, pst = _unsort(order, dens_s, cdf_s, pst_s)
        if user is None:
            # continuous mass on the grid + mass below the grid (exact CDF) + atoms above it
            mass = (float(np.sum(qw * dens)) + below_mass
                    + float(atom_mass[atom_lam > lower_end].sum()))
        else:
            mass = float("nan")
        bad = pst < 0
        if bad.any():
            status = Status.NONFINITE if np.any(pst == Status.NONFINITE) else Status.MAXITER
            dens[bad] = np.nan
            cdf[bad] = np.nan
        else:
            # branch check: the exact CDF must be monotone, in [0, 1], and agree with the
            # quadrature of the density on the default grid
            cs = cdf_s[inside[:cdf_s.size]]
            if cs.size and (np.any(np.diff(cs) > 1e-7) or cs.min() < -1e-7 or cs.max() > 1 + 1e-7):
                status = Status.MAXITER
            if user is None and abs(mass - 1.0) > 1e-3:
                status = Status.MAXITER
    if atom_lam.size:
        lmax = max(lmax, float(atom_lam.max()))
    if not scale_ok:
        status = Status.INFINITE if status == Status.OK else status
    if narrow and status == Status.OK:
        status = Status.INACCURATE
    f = scale
    lam_out = grid * f
    dens_out = dens / f
    sv = np.sqrt(lam_out)
    with np.errstate(invalid="ignore"):
        sv_d = 2.0 * sv * dens_out
    return Spectrum(activation=a.name, weights=weights, sigma_w2=sw, sigma_b2=sb, q_star=q,
                    depth=L, mu1=mu1, mu2=mu2, lam=lam_out, density=dens_out, cdf=cdf,
                    quad_weights=qw * f, sv=sv, sv_density=sv_d, m1=m1n * f, m2=m2n * f * f,
                    variance=spread * f * f, spread=spread, lambda_max=lmax * f,
                    lambda_min=lam_min * f, atom_lam=atom_lam * f, atom_mass=atom_mass,
                    mass=mass, log_m1=log_m1, normalized=not scale_ok,
                    point_status=pst.astype(np.int64), status=int(status))


def _fail(a, weights, sw, sb, q, L, law, spread, log_m1, status):
    e = np.zeros(0)
    return Spectrum(activation=a.name, weights=weights, sigma_w2=sw, sigma_b2=sb, q_star=q,
                    depth=L, mu1=law.mu1, mu2=law.mu2, lam=e, density=e, cdf=e, quad_weights=e,
                    sv=e, sv_density=e, m1=math.nan, m2=math.nan, variance=math.nan,
                    spread=spread, lambda_max=math.nan, lambda_min=math.nan, atom_lam=e,
                    atom_mass=e, mass=math.nan, log_m1=log_m1, normalized=True,
                    point_status=np.zeros(0, dtype=np.int64), status=int(status))


def _depth_one(law, n_points, user, scale):
    """Orthogonal L = 1: JJ^T = sigma_w2 D^2, density of d by the Plemelj limit of M_{D^2}."""
    lo, hi = law.dmin / law.mu1, law.dmax / law.mu1
    if user is None:
        grid, qw = _cheb(lo, hi, n_points)
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
        flag = law.k.sums(x, law.code, law.sq, law.mu1, law.pa, law.pb, law.dn, law.en, law.dpn,
                       law.wn, law.wscale, acc, True)
        m = acc[1]
        dens[i] = max(-m.imag / (math.pi * g), 0.0)
        cdf[i] = 1.0 - acc[6].imag / math.pi
        pst[i] = Status.OK if flag == 0 else Status.INACCURATE
    return grid, dens, cdf, qw, pst, hi, lo


def universal_spectrum(s, *, n_points=2000, lam=None, tol=1e-13, maxiter=80):
    r"""Return the large-depth universal limit of a normalised Jacobian spectrum.

    If each layer contributes ``S(m) = 1 - (s/L) m + O(L^-2)`` (mean 1), then as L -> infinity
    ``S_{JJ^T}(m) -> exp(-s m)``, i.e.

    .. math::

        M^{-1}(m) = \frac{1+m}{m} e^{s m},\qquad
        \lambda_{\max} = \frac{1+m_*}{m_*} e^{s m_*},\quad m_* = \frac{\sqrt{1+4/s}-1}{2}.

    The law has mean 1 and variance s. Use ``s = Spectrum.spread`` of a finite network.

    Parameters
    ----------
    s : float
        Spread parameter (> 0): the variance of the limiting law.
    n_points : int
        Grid size (Chebyshev points between the two edges).
    lam : array_like, optional
        Evaluate at these points instead.

    Returns
    -------
    Spectrum
        With ``weights="universal"``, ``depth=0`` and NaN hyperparameters.

    References
    ----------
    .. [1] Pennington, Schoenholz, Ganguli, "The emergence of spectral universality in deep
       networks", AISTATS 2018.
    """
    s = float(as_float_array(s, "s", low=0.0, low_open=True))
    n_points = as_int(n_points, "n_points", low=8, high=10**6)
    lmax, lmin, mp, mm = _universal_edges(s)
    if lam is None:
        grid, qw = _cheb(lmin, lmax, n_points)
    else:
        grid = as_float_array(lam, "lam", low=0.0).ravel()
        qw = np.zeros_like(grid)
    order = np.argsort(-grid, kind="stable")
    g = grid[order]
    inside = (g < lmax) & (g > lmin)
    gi = g[inside]
    ms = np.zeros(gi.shape, dtype=np.complex128)
    cd = np.zeros(gi.shape)
    st = np.zeros(gi.shape, dtype=np.int64)
    if gi.size:
        # log z(m) ~ log lmax + (1/2) f''(m*) (m - m*)^2 near the edge, f'' > 0
        fpp = -1.0 / (1.0 + mp) ** 2 + 1.0 / mp**2
        d0 = 2.0 * (math.log(lmax) - math.log(gi[0])) / fpp
        m0 = complex(mp, -math.sqrt(max(d0, 0.0)) - 1e-300)
        _k.solve_universal(np.log(gi), m0, s, tol, as_int(maxiter, "maxiter", low=1), ms, cd, st)
    dens_s = np.zeros(g.shape)
    cdf_s = np.where(g >= lmax, 1.0, 0.0)
    pst_s = np.full(g.shape, int(Status.ZERO), dtype=np.int64)
    dens_s[inside] = np.maximum(-ms.imag, 0.0) / (math.pi * gi)
    cdf_s[inside] = cd
    pst_s[inside] = st
    dens, cdf, pst = _unsort(order, dens_s, cdf_s, pst_s)
    status = Status.OK if np.all(pst >= 0) else Status.MAXITER
    mass = float(np.sum(qw * dens)) if lam is None else float("nan")
    sv = np.sqrt(grid)
    e = np.zeros(0)
    return Spectrum(activation="", weights="universal", sigma_w2=math.nan, sigma_b2=math.nan,
                    q_star=math.nan, depth=0, mu1=math.nan, mu2=math.nan, lam=grid, density=dens,
                    cdf=cdf, quad_weights=qw, sv=sv, sv_density=2 * sv * dens, m1=1.0,
                    m2=1.0 + s, variance=s, spread=s, lambda_max=lmax, lambda_min=lmin,
                    atom_lam=e, atom_mass=e, mass=mass, log_m1=0.0, normalized=False,
                    point_status=pst, status=int(status))
