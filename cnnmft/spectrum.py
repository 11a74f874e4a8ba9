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

import math
from dataclasses import dataclass

import numpy as np

from cnnmft import _spectrum_steps as S
from cnnmft._kernels import _spectrum as _k
from cnnmft._spectrum_law import (
    cheb,
    make_law,
)
from cnnmft._validation import as_choice, as_float, as_float_array, as_int
from cnnmft.activations import get_activation
from cnnmft.gaussian import expect
from cnnmft.results import ResultMixin, Status

__all__ = [
    "Spectrum",
    "JacobianMoments",
    "jacobian_spectrum",
    "jacobian_moments",
    "universal_spectrum",
    "d2_law",
]


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
    q = as_float(q_star, "q_star", low=0.0)
    law = make_law(a, q)
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
        integrates ``f`` over the continuous support (so ``sum(quad_weights * density * g)`` is
        the continuous part of ``E[g(lambda)]``, and ``sum(quad_weights)`` is the support's
        length). Zeros for a user grid.
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
    a = get_activation(act)
    weights = as_choice(weights, "weights", S.WEIGHTS)
    sw = as_float_array(sigma_w2, "sigma_w2", low=0.0, low_open=True)
    sb = as_float_array(sigma_b2, "sigma_b2", low=0.0)
    L = np.asarray(depth)
    if L.dtype.kind not in "iu" or np.any(L < 1):
        raise ValueError(f"`depth` must be an integer >= 1 (or an array of them); got {depth!r}")
    if q_star is None:
        q, st = S.fixed_q(a, sw, sb)
    else:
        q = as_float_array(q_star, "q_star", low=0.0)
        st = np.zeros(np.shape(q), dtype=int)
    q, sw, sb, L, st = np.broadcast_arrays(q, sw, sb, L.astype(float), st)
    mu1 = np.asarray(expect(a, q, orders=(1, 1)), dtype=float)
    mu2 = np.asarray(expect(a, q, orders=(1, 1, 1, 1)), dtype=float)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        m1 = np.exp(L * np.log(sw * mu1))
        spread = L * (mu2 / mu1**2 - 1.0 - S.s1(weights))
        m2 = m1**2 * (1.0 + spread)
        var = m1**2 * spread
        r = np.sqrt(1.0 + 4.0 / spread)
        mp = 0.5 * (r - 1.0)
        lmax = m1 * (1.0 + mp) / mp * np.exp(spread * mp)
        lmax = np.where(spread > 0, lmax, m1)
    return JacobianMoments(
        q_star=q,
        mu1=mu1,
        mu2=mu2,
        m1=m1,
        m2=m2,
        variance=var,
        spread=spread,
        lambda_max_asymptotic=lmax,
        status=np.asarray(st, dtype=int),
    )


def jacobian_spectrum(
    act,
    sigma_w2,
    sigma_b2,
    depth,
    weights="orthogonal",
    *,
    n_points=2000,
    lam=None,
    grid="auto",
    q_star=None,
    tol=None,
    maxiter=80,
):
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
    p = S.setup(act, weights, sigma_w2, sigma_b2, depth, n_points, lam, grid, q_star, tol, maxiter)
    if p.cont_mass <= 1e-15:
        part = S.atoms_only(p)
    elif p.kind == _k.ORTH and p.L == 1:
        part = S.depth_one_part(p)
    else:
        part = S.continuation(p)
    if part is None:
        return Spectrum(**S.fail(p, Status.NONFINITE))
    return Spectrum(**S.assemble(p, part))


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
    s = as_float(s, "s", low=0.0, low_open=True)
    n_points = as_int(n_points, "n_points", low=8, high=10**6)
    lmax, lmin, mp, mm = _universal_edges(s)
    if lam is None:
        grid, qw = cheb(lmin, lmax, n_points)
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
    dens, cdf, pst = S.unsort(order, dens_s, cdf_s, pst_s)
    status = Status.OK if np.all(pst >= 0) else Status.MAXITER
    mass = float(np.sum(qw * dens)) if lam is None else float("nan")
    sv = np.sqrt(grid)
    e = np.zeros(0)
    return Spectrum(
        activation="",
        weights="universal",
        sigma_w2=math.nan,
        sigma_b2=math.nan,
        q_star=math.nan,
        depth=0,
        mu1=math.nan,
        mu2=math.nan,
        lam=grid,
        density=dens,
        cdf=cdf,
        quad_weights=qw,
        sv=sv,
        sv_density=2 * sv * dens,
        m1=1.0,
        m2=1.0 + s,
        variance=s,
        spread=s,
        lambda_max=lmax,
        lambda_min=lmin,
        atom_lam=e,
        atom_mass=e,
        mass=mass,
        log_m1=0.0,
        normalized=False,
        point_status=pst,
        status=int(status),
    )
