"""Spatial variance profiles, their Fourier modes, and the depth scale of every mode.

A Gaussian convolution kernel with variance profile ``v`` has weights
``omega_{ij}(beta) ~ N(0, sigma_w2 * v[beta] / c_in)`` with ``v >= 0`` and ``sum(v) = 1``.
In the mean-field limit the covariance map of the CNN is ``Sigma^{l+1} = A * C(Sigma^l)``, where
``A`` averages every pixel pair along the diagonal with the weights ``v``. ``A`` is diagonal in the
spatial Fourier basis of the circular grid, with eigenvalues ``lam_f`` (the DFT of ``v``), so
every Fourier mode ``f`` of a deviation from the fixed point decays with its own depth scale
``xi_{c,f} = -1 / log(chi_c |lam_f|)`` (docs/theory.md section 2.4).

Offset convention
-----------------
Tap ``j`` (0-based, along each axis) of a kernel of size ``k`` sits at spatial offset
``beta = j - (k - 1) // 2``: the centre tap for odd ``k``, the tap just before the middle for even
``k`` (the Delta-orthogonal centre and the TF "SAME" alignment). A layer computes
``h(alpha) = sum_beta omega(beta) x(alpha + beta)`` with indices modulo the grid size, i.e.
circular padding with ``(k - 1) // 2`` cells before and ``k // 2`` after.

References
----------
.. [1] L. Xiao, Y. Bahri, J. Sohl-Dickstein, S. S. Schoenholz, J. Pennington, "Dynamical Isometry
   and a Mean Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural
   Networks", ICML 2018, arXiv:1806.05393, Section 2.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from math import comb

import numpy as np

from cnnmft._validation import as_float, as_float_array, as_int
from cnnmft.meanfield import fixed_point
from cnnmft.results import ResultMixin, Status

__all__ = [
    "variance_profile",
    "mode_eigenvalues",
    "kernel_offsets",
    "mode_depth_scales",
    "linearized_spectrum",
    "ModeDepthScales",
    "PROFILE_KINDS",
]

PROFILE_KINDS = ("uniform", "delta", "binomial", "tunable")


def _kernel_shape(kernel_size, ndim):
    if isinstance(kernel_size, (numbers.Integral,)) and not isinstance(kernel_size, bool):
        nd = as_int(ndim, "ndim", low=1, high=3)
        k = as_int(kernel_size, "kernel_size", low=1)
        return (k,) * nd
    try:
        ks = tuple(kernel_size)
    except TypeError:
        raise TypeError(
            f"`kernel_size` must be a positive integer or a tuple of them, got {kernel_size!r}"
        ) from None
    if not 1 <= len(ks) <= 3:
        raise ValueError(
            f"`kernel_size` must have 1, 2 or 3 entries (1D, 2D, 3D kernels); got {kernel_size!r}"
        )
    return tuple(as_int(k, "kernel_size", low=1) for k in ks)


def _profile_1d(kind, k, t):
    if kind == "uniform":
        return np.full(k, 1.0 / k)
    if kind == "delta":
        w = np.zeros(k)
        w[(k - 1) // 2] = 1.0
        return w
    if kind == "binomial":
        return np.array([comb(k - 1, j) for j in range(k)], dtype=np.float64) / 2.0 ** (k - 1)
    # tunable: k - 1 two-tap blocks (rho, 1 - rho), rank fractions alternating 1 - t, t, 1 - t, ...
    w = np.ones(1)
    for b in range(k - 1):
        rho = 1.0 - t if b % 2 == 0 else t
        w = np.convolve(w, np.array([rho, 1.0 - rho]))
    return w


def variance_profile(kind, kernel_size=None, *, ndim=2, t=None, normalize=True):
    r"""Spatial variance profile ``v`` of a convolution kernel.

    ``v[beta]`` is the fraction of the weight variance ``sigma_w2`` that sits on tap ``beta``:
    :math:`\omega_{ij}(\beta) \sim N(0, \sigma_w^2 v_\beta / c_{in})`, with :math:`v \ge 0` and
    :math:`\sum_\beta v_\beta = 1` ([1]_, Section 2.1). Multi-dimensional profiles are outer
    products of the 1D profile along each axis.

    Parameters
    ----------
    kind : {"uniform", "delta", "binomial", "tunable"} or array_like
        * ``"uniform"``: :math:`v_\beta = 1/\prod k` (the usual fan-in Gaussian initialisation).
        * ``"delta"``: all variance on the centre tap ``(k - 1) // 2`` (Delta-orthogonal; ``A``
          is the identity).
        * ``"binomial"``: :math:`v_\beta = \prod_a \binom{k-1}{\beta_a} / 2^{k-1}`, the tap-energy
          profile of the block-orthogonal kernels of Algorithm 1 ([1]_, Section 4.2).
        * ``"tunable"``: the exactly-orthogonal family of docs/theory.md section 4.3 with parameter
          ``t`` in ``[0, 1/2]``: ``k - 1`` two-tap blocks ``(rho, 1 - rho)`` convolved, with rank
          fractions ``rho`` alternating ``1 - t, t, 1 - t, ...``. For ``k = 3`` the 1D profile is
          ``(t(1-t), (1-t)^2 + t^2, t(1-t))``. ``t = 0`` is ``"delta"``, ``t = 1/2`` is
          ``"binomial"``.
        * an array: a user profile of any shape with 1 to 3 axes; it must be finite,
          non-negative and not all zero. It is divided by its sum (``normalize=True``, the
          default) or, with ``normalize=False``, rejected unless it sums to 1 within 1e-12.
    kernel_size : int or tuple of int
        Kernel size per spatial axis (any size >= 1, odd or even). An int gives a cubic kernel
        with ``ndim`` axes. Not used (must be None or match) for an array ``kind``.
    ndim : {1, 2, 3}, default 2
        Number of spatial axes when ``kernel_size`` is an int.
    t : float, optional
        Parameter of the ``"tunable"`` family, ``0 <= t <= 1/2``.
    normalize : bool, default True
        See ``kind`` (arrays only).

    Returns
    -------
    v : ndarray of float64, shape ``kernel_size``
        Non-negative, sums to 1.

    Raises
    ------
    ValueError
        Unknown kind, bad size, ``t`` missing or out of range, invalid array.

    See Also
    --------
    mode_eigenvalues : the eigenvalues ``lam_f`` of the map ``A`` built from ``v``.

    References
    ----------
    .. [1] Xiao et al., ICML 2018, arXiv:1806.05393.

    Examples
    --------
    >>> variance_profile("binomial", 3, ndim=1)
    array([0.25, 0.5 , 0.25])
    >>> variance_profile("tunable", 3, ndim=1, t=0.1)
    array([0.09, 0.82, 0.09])
    >>> float(variance_profile("uniform", (3, 3)).sum())
    1.0
    """
    if not isinstance(kind, str):
        v = as_float_array(kind, "v", low=0.0)
        if v.ndim < 1 or v.ndim > 3:
            raise ValueError(
                f"`v` must have 1, 2 or 3 axes (one per spatial axis); got shape {v.shape}"
            )
        if v.size == 0:
            raise ValueError("`v` must not be empty")
        if kernel_size is not None and _kernel_shape(kernel_size, v.ndim) != v.shape:
            raise ValueError(
                f"`kernel_size` {kernel_size!r} does not match the shape {v.shape} of `v`"
            )
        s = float(v.sum())
        if not s > 0.0:
            raise ValueError(
                "`v` must have a positive sum (a non-zero variance profile); got all zeros"
            )
        if normalize:
            return np.ascontiguousarray(v / s)
        if abs(s - 1.0) > 1e-12:
            raise ValueError(
                f"`v` must sum to 1 (got {s!r}); pass normalize=True to divide it by its sum"
            )
        return np.ascontiguousarray(v.copy())
    if kind not in PROFILE_KINDS:
        raise ValueError(f"`kind` must be one of {list(PROFILE_KINDS)} or an array; got {kind!r}")
    if kernel_size is None:
        raise ValueError(f"`kernel_size` is required for kind={kind!r}")
    shape = _kernel_shape(kernel_size, ndim)
    if kind == "tunable":
        if t is None:
            raise ValueError("`t` is required for kind='tunable' (0 <= t <= 0.5)")
        t = as_float(t, "t", low=0.0, high=0.5)
    elif t is not None:
        raise ValueError(f"`t` is only used with kind='tunable'; got t={t!r} for kind={kind!r}")
    v = np.ones(())
    for k in shape:
        v = np.multiply.outer(v, _profile_1d(kind, k, t))
    return np.ascontiguousarray(v / v.sum())


PROFILE_SUM_TOL = 1e-9  # how far from 1 the sum of a user profile may be when not normalised


def kernel_profile(v, kernel_shape, *, t=None, normalize=False):
    """The one parser of a variance profile given for a kernel of spatial shape `kernel_shape`.

    `v` is a kind of :func:`variance_profile` (a string, with `t` for ``"tunable"``) or an
    array of shape `kernel_shape`; a 1D array of length ``k`` is taken as the per-axis profile
    of a cubic kernel ``(k, ..., k)`` (outer product). An array must be finite, non-negative
    and not all zero; it is divided by its sum (``normalize=True``) or must sum to 1 within
    :data:`PROFILE_SUM_TOL`. Returns a float64 array of shape `kernel_shape` summing to 1.
    """
    ks = tuple(int(k) for k in kernel_shape)
    if isinstance(v, str):
        return variance_profile(v, ks, t=t)
    if t is not None:
        raise ValueError(f"`t` is only used with v='tunable'; got t={t!r} with an array `v`")
    arr = as_float_array(v, "v", low=0.0)
    if arr.ndim == 1 and len(ks) > 1 and all(k == arr.shape[0] for k in ks):
        out = np.ones(())
        for _ in ks:
            out = np.multiply.outer(out, arr)
        arr = out
    if arr.shape != ks:
        raise ValueError(f"`v` must have the kernel's spatial shape {ks}; got shape {arr.shape}")
    total = float(arr.sum())
    if not total > 0.0:
        raise ValueError(
            "`v` must have a positive sum (a non-zero variance profile); got all zeros"
        )
    if not normalize and abs(total - 1.0) > PROFILE_SUM_TOL:
        raise ValueError(
            f"`v` must sum to 1 within {PROFILE_SUM_TOL:g} (the fractions of sigma_w2 on each "
            f"tap); got sum {total!r}. Divide it by its sum, or use "
            "cnnmft.fourier.variance_profile(v) which normalises."
        )
    return np.ascontiguousarray(arr / total)


def kernel_offsets(k):
    """Spatial offsets ``beta = j - (k - 1) // 2`` of the taps ``j = 0..k-1`` of one axis.

    Parameters
    ----------
    k : int
        Kernel size along the axis.

    Returns
    -------
    ndarray of int64, shape (k,)
    """
    k = as_int(k, "k", low=1)
    return np.arange(k, dtype=np.int64) - (k - 1) // 2


def _check_v_grid(v, spatial_shape, vname="v"):
    v = np.asarray(v)
    if isinstance(spatial_shape, numbers.Integral) and not isinstance(spatial_shape, bool):
        spatial_shape = (spatial_shape,)
    try:
        shape = tuple(as_int(n, "spatial_shape", low=1) for n in spatial_shape)
    except TypeError:
        raise TypeError(
            f"`spatial_shape` must be an int or a tuple of ints, got {spatial_shape!r}"
        ) from None
    if not 1 <= len(shape) <= 3:
        raise ValueError(f"`spatial_shape` must have 1 to 3 axes; got {spatial_shape!r}")
    if v.ndim != len(shape):
        raise ValueError(
            f"`{vname}` has {v.ndim} axes (shape {v.shape}) but the grid `spatial_shape` "
            f"{shape} has {len(shape)}: give one kernel axis per spatial axis"
        )
    for a, (k, n) in enumerate(zip(v.shape, shape)):
        if k > n:
            raise ValueError(
                f"kernel larger than the grid along axis {a}: `{vname}` has {k} taps but "
                f"`spatial_shape` is {shape}; the kernel size must be <= the grid size"
            )
    return shape


def _as_profile(v):
    if isinstance(v, str):
        raise TypeError(
            f"`v` must be an array (use variance_profile({v!r}, kernel_size) to build one)"
        )
    return variance_profile(np.asarray(v, dtype=np.float64), normalize=False)


def mode_eigenvalues(v, spatial_shape):
    r"""Eigenvalues ``lam_f`` of the diagonal-averaging map ``A`` on a circular grid.

    .. math::

        \lambda_f = \sum_\beta v_\beta \exp\!\Big(2\pi i \sum_a f_a \beta_a / n_a\Big),
        \qquad f \in \mathbb{Z}_{n_1} \times \dots \times \mathbb{Z}_{n_d}

    (the DFT of ``v`` with the ``+i`` sign, [1]_, Section 2.4, eq. (2.9)-(2.10)). ``beta`` is the
    tap offset ``j - (k - 1) // 2`` along each axis. The deviation mode
    :math:`\epsilon_{\alpha,\alpha+\delta} \propto e^{2\pi i \langle f, \alpha\rangle / n}` is
    multiplied by ``lam_f`` under ``A``. ``lam_0 = 1`` and ``|lam_f| <= 1``; ``lam`` is real
    for a profile symmetric under ``beta -> -beta`` (odd kernel sizes) and then can be negative.

    Parameters
    ----------
    v : array_like, shape ``(k_1, ..., k_d)``
        Variance profile (non-negative, sum 1; see :func:`variance_profile`).
    spatial_shape : int or tuple of int, length ``d``
        Grid size ``(n_1, ..., n_d)``; each ``k_a <= n_a``.

    Returns
    -------
    lam : ndarray of complex128, shape ``spatial_shape``
        ``lam[f]`` with ``f`` in numpy FFT order (``f_a = 0 .. n_a - 1``; use
        ``np.fft.fftfreq`` for signed frequencies). Take ``.real`` for symmetric ``v``.

    Raises
    ------
    ValueError
        Wrong rank of ``v``, kernel larger than the grid, invalid profile.

    References
    ----------
    .. [1] Xiao et al., ICML 2018, arXiv:1806.05393.

    Examples
    --------
    >>> v = variance_profile("uniform", 3, ndim=1)
    >>> np.round(mode_eigenvalues(v, 6).real, 6)
    array([ 1.      ,  0.666667,  0.      , -0.333333,  0.      ,  0.666667])
    """
    v = _as_profile(v)
    shape = _check_v_grid(v, spatial_shape)
    grid = np.zeros(shape, dtype=np.float64)
    idx = np.ix_(*[kernel_offsets(k) % n for k, n in zip(v.shape, shape)])
    np.add.at(grid, idx, v)
    # ifftn uses exp(+2 pi i f x / n) / N
    return np.fft.ifftn(grid) * grid.size


@dataclasses.dataclass(frozen=True, eq=False)
class ModeDepthScales(ResultMixin):
    """Depth scale of every spatial Fourier mode (output of :func:`mode_depth_scales`).

    ``S`` is the broadcast shape of ``sigma_w2`` and ``sigma_b2``; ``G`` is ``spatial_shape``.

    Attributes
    ----------
    activation : str
    sigma_w2, sigma_b2 : ndarray, shape S
    v : ndarray
        Variance profile.
    lam : ndarray of complex128, shape G
        Eigenvalues of ``A`` (:func:`mode_eigenvalues`), numpy FFT order.
    q_star, c_star, chi_q, chi_c : ndarray, shape S
        Fully-connected fixed point and slopes (:func:`cnnmft.fixed_point`).
    xi_c : ndarray, shape S + G
        ``-1 / log(chi_c |lam_f|)``: decay depth of mode f of an off-diagonal (correlation)
        perturbation; ``inf`` where ``chi_c |lam_f| = 1``, ``0`` where ``lam_f = 0``, negative
        where ``chi_c |lam_f| > 1`` (growth).
    xi_q : ndarray, shape S + G
        ``-1 / log(chi_q |lam_f|)``: the same for a perturbation of the variances.
    status : ndarray of int, shape S
        Status of the fixed point (:class:`cnnmft.Status`).
    """

    activation: str
    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    v: np.ndarray
    lam: np.ndarray
    q_star: np.ndarray
    c_star: np.ndarray
    chi_q: np.ndarray
    chi_c: np.ndarray
    xi_c: np.ndarray
    xi_q: np.ndarray
    status: np.ndarray


def _depth(x):
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = -1.0 / np.log(x)
    xi = np.where(x == 1.0, np.inf, xi)
    xi = np.where(x == 0.0, 0.0, xi)
    return xi


def mode_depth_scales(act, sigma_w2, sigma_b2, v, spatial_shape):
    r"""Depth scales of every spatial Fourier mode of a CNN at its fixed point.

    .. math::

        \xi_{c,f} = -\frac{1}{\log(\chi_{c^*} |\lambda_f|)}, \qquad
        \xi_{q,f} = -\frac{1}{\log(\chi_{q^*} |\lambda_f|)}

    ([1]_, Section 2.4, eqs. (2.9)-(2.11)). The zero mode (``lam_0 = 1``) has the
    fully-connected depth scales ``xi_c`` and ``xi_q``; ``v = delta`` gives them to every mode.

    Parameters
    ----------
    act : str or Activation
        Activation.
    sigma_w2, sigma_b2 : array_like
        Weight and bias variances (broadcast together, shape ``S``).
    v : array_like
        Variance profile, one axis per spatial axis.
    spatial_shape : int or tuple of int
        Grid size.

    Returns
    -------
    ModeDepthScales
        ``xi_c`` and ``xi_q`` of shape ``S + spatial_shape``.

    References
    ----------
    .. [1] Xiao et al., ICML 2018, arXiv:1806.05393.

    Examples
    --------
    >>> r = mode_depth_scales("tanh", 1.5, 0.05, variance_profile("uniform", 3), (8, 8))
    >>> round(float(r.xi_c[0, 0]), 2), round(float(r.xi_c[0, 1]), 2)
    (15.79, 3.56)
    """
    lam = mode_eigenvalues(v, spatial_shape)
    vv = _as_profile(v)
    fp = fixed_point(act, sigma_w2, sigma_b2)
    shape = np.shape(fp.chi_c)
    extra = (slice(None),) * len(shape) + (None,) * lam.ndim
    mag = np.abs(lam)
    chi_c = np.asarray(fp.chi_c)
    chi_q = np.asarray(fp.chi_q)
    xi_c = _depth(chi_c[extra] * mag)
    xi_q = _depth(chi_q[extra] * mag)
    bad = ~np.isfinite(chi_c)
    if bad.any():
        xi_c[bad] = np.nan
        xi_q[bad] = np.nan
    return ModeDepthScales(
        activation=fp.activation,
        sigma_w2=np.asarray(fp.sigma_w2),
        sigma_b2=np.asarray(fp.sigma_b2),
        v=vv,
        lam=lam,
        q_star=np.asarray(fp.q_star),
        c_star=np.asarray(fp.c_star),
        chi_q=chi_q,
        chi_c=chi_c,
        xi_c=xi_c,
        xi_q=xi_q,
        status=np.asarray(fp.status),
    )


def linearized_spectrum(act, sigma_w2, sigma_b2, v, spatial_shape, *, n_inputs=1):
    r"""Eigenvalues of the covariance map ``Sigma -> A * C(Sigma)`` linearised at its fixed point.

    The linearised ``C`` is block-triangular (variances feed the covariances, not the reverse),
    and ``A`` is diagonal in the Fourier basis of each displacement, so ([1]_, Section 2.4;
    docs/theory.md section 2.4) the spectrum is

    * ``chi_q * lam_f`` for every mode ``f`` of the variances (displacement 0 of each input);
    * ``chi_c * lam_f`` for every ``f`` and every pair of displacements ``{delta, -delta}``
      with ``delta != -delta``; for a displacement with ``delta == -delta != 0`` the entries
      are periodic under ``alpha -> alpha + delta``, which keeps only the modes with
      ``exp(2 pi i <f, delta> / n) = 1``;
    * ``chi_c * lam_f`` for every ``f`` and every displacement between two different inputs.

    For one input that is ``N (N + 1) / 2`` eigenvalues, ``N = prod(spatial_shape)``: one per
    independent entry of the symmetric covariance.

    Parameters
    ----------
    act : str or Activation
    sigma_w2, sigma_b2 : float
    v : array_like
        Variance profile.
    spatial_shape : int or tuple of int
    n_inputs : int, default 1
        Number of inputs (cross-input covariances add ``chi_c lam_f`` blocks).

    Returns
    -------
    eig : ndarray
        The eigenvalues with multiplicity, sorted by decreasing real part (real dtype when
        ``v`` is symmetric, complex otherwise).

    Raises
    ------
    ValueError
        For invalid arguments, and where the map has no finite fixed point (status INFINITE
        or NONFINITE of :func:`cnnmft.fixed_point`, e.g. relu with ``sigma_w2 > 2``), so
        that no NaN or inf eigenvalue is ever returned.

    References
    ----------
    .. [1] Xiao et al., ICML 2018, arXiv:1806.05393.

    Examples
    --------
    >>> e = linearized_spectrum("tanh", 2.5, 0.05, [0.2, 0.6, 0.2], 6)
    >>> e.size, round(float(e[0]), 5)
    (21, 0.91872)
    """
    sw = as_float(sigma_w2, "sigma_w2", low=0.0, low_open=True)
    sb = as_float(sigma_b2, "sigma_b2", low=0.0)
    B = as_int(n_inputs, "n_inputs", low=1)
    lam = mode_eigenvalues(v, spatial_shape)
    shape = lam.shape
    fp = fixed_point(act, sw, sb)
    chi_q = float(np.asarray(fp.chi_q).ravel()[0])
    chi_c = float(np.asarray(fp.chi_c).ravel()[0])
    st = Status(int(np.asarray(fp.status).ravel()[0]))
    if not (math.isfinite(chi_q) and math.isfinite(chi_c)):
        raise ValueError(
            f"the covariance map of {fp.activation} at (`sigma_w2`, `sigma_b2`) = ({sw!r}, {sb!r}) "
            f"has no finite fixed point to linearise at (status {st.name}: q* = "
            f"{float(np.asarray(fp.q_star).ravel()[0])!r}); choose variances with a finite q*"
        )
    N = lam.size
    flat = lam.ravel()
    freqs = np.stack(np.unravel_index(np.arange(N), shape), axis=1)  # (N, d)
    n = np.array(shape)
    parts = [np.tile(chi_q * flat, B)]
    deltas = freqs
    neg = np.ravel_multi_index(tuple((-deltas[:, j]) % n[j] for j in range(len(shape))), shape)
    idx = np.arange(N)
    for d in idx[(idx < neg) & (idx != 0)]:
        parts.append(np.tile(chi_c * flat, B))
    for d in idx[(idx == neg) & (idx != 0)]:
        phase = (freqs @ (deltas[d] / n)) % 1.0
        keep = np.isclose(phase, 0.0) | np.isclose(phase, 1.0)
        parts.append(np.tile(chi_c * flat[keep], B))
    npairs = B * (B - 1) // 2
    if npairs:
        parts.append(np.tile(chi_c * flat, N * npairs))
    eig = np.concatenate(parts)
    if np.all(np.abs(eig.imag) <= 1e-14):
        eig = eig.real
    return eig[np.argsort(-eig.real, kind="stable")]
