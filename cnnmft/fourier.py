"""Spatial variance profiles, their Fourier modes, and the depth scale of every mode.

A Gaussian convolution kernel with variance profile ``v`` has weights
``omega_{ij}(beta) ~ N(0, sigma_w2 * v[beta] / c_in)`` with ``v >= 0`` and ``sum(v) = 1``.
In the mean-field limit the covariance map of the CNN is ``Sigma^{l+1} = A * C(Sigma^l)``, where
``A`` averages every pixel pair along the diagonal with the weights ``v``. ``A`` is diagonal in the
spatial Fourier basis of the circular grid, with eigenvalues ``lam_f`` (the DFT of ``v``), so
every Fourier mode ``f`` of a deviation from the fixed point decays with its own depth scale
``xi_{c,f} = -1 / log(chi_c |lam_f|)`` (THEORY.md section 2.4).

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

import numbers
from math import comb

import numpy as np

from cnnmft._validation import as_float_array, as_int

__all__ = [
    "variance_profile",
    "mode_eigenvalues",
    "kernel_offsets",
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
        * ``"tunable"``: the exactly-orthogonal family of THEORY.md section 4.3 with parameter
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
            raise ValueError("`v` must have a positive sum (a non-zero variance profile); got all zeros")
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
        t = float(as_float_array(t, "t", low=0.0, high=0.5))
    elif t is not None:
        raise ValueError(f"`t` is only used with kind='tunable'; got t={t!r} for kind={kind!r}")
    v = np.ones(())
    for k in shape:
        v = np.multiply.outer(v, _profile_1d(kind, k, t))
    return np.ascontiguousarray(v / v.sum())


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
