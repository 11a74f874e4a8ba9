r"""Convolution kernels that realise the theory: orthogonal (isometric) and Gaussian.

All generators return float64 arrays in the layout ``(c_out, c_in, *k)`` (1D, 2D or 3D kernels),
the layout of ``torch.nn.Conv{1,2,3}d.weight``. A layer computes, with circular padding,

.. math::

    y_j(\alpha) = \sum_{i} \sum_{\beta} K[j, i, \beta]\; x_i(\alpha + \beta - o),
    \qquad o = (k - 1) // 2 \text{ per axis},

so tap ``j`` of an axis sits at offset ``j - (k - 1) // 2`` (the convention of
:mod:`cnnmft.fourier`). Taking the DFT over positions block-diagonalises the operator: at every
frequency :math:`\omega` it acts on the channels as the ``c_out x c_in`` matrix
:math:`M(\omega) = \sum_\beta K[:, :, \beta]\, e^{i \omega \cdot \beta}` (the *symbol*). The
convolution preserves norms (is an isometry :math:`\mathbb{R}^{c_{in} n^d} \to
\mathbb{R}^{c_{out} n^d}`) iff :math:`M(\omega)^* M(\omega) = I_{c_{in}}` at every frequency, which
needs ``c_in <= c_out``. (In the TF layout ``(*k, c_in, c_out)`` the same condition reads
:math:`M M^* = I_{c_{in}}`.)

Scale convention: orthogonal kernels are multiplied by :math:`\sigma_w = \sqrt{\sigma_w^2}`, so
every singular value of the operator equals :math:`\sigma_w` (the TF >= 1.13 / JAX meaning of
``gain``; see :mod:`cnnmft.conventions` for the others). Gaussian kernels have
:math:`K[j, i, \beta] \sim N(0, \sigma_w^2 v_\beta / c_{in})`.

References
----------
.. [1] L. Xiao, Y. Bahri, J. Sohl-Dickstein, S. S. Schoenholz, J. Pennington, "Dynamical Isometry
   and a Mean Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural
   Networks", ICML 2018, arXiv:1806.05393, Algorithms 1 and 2.
.. [2] F. Mezzadri, "How to generate random matrices from the classical compact groups",
   Notices of the AMS 54 (2007) 592-604.
"""

from __future__ import annotations

import numbers

import numpy as np

from cnnmft._conv import conv_singular_values, tap_energy
from cnnmft._threads import uses_blas
from cnnmft._validation import as_choice, as_float, as_float_array, as_int, make_rng, require_memory
from cnnmft.fourier import kernel_profile

__all__ = [
    "haar_orthogonal",
    "delta_orthogonal",
    "block_orthogonal",
    "tunable_orthogonal",
    "gaussian_kernel",
    "conv_singular_values",
    "tap_energy",
]

_RANK_MODES = ("random", "fixed")


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------
def _parse_shape(shape):
    """Return ``(c_out, c_in, ks)`` from a kernel shape ``(c_out, c_in, *k)``."""
    if isinstance(shape, numbers.Integral):
        raise TypeError(
            f"`shape` must be a tuple (c_out, c_in, *k) with 1 to 3 spatial sizes; got {shape!r}"
        )
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(
            f"`shape` must be a tuple (c_out, c_in, *k) with 1 to 3 spatial sizes; got {shape!r}"
        ) from None
    if not 3 <= len(dims) <= 5:
        raise ValueError(
            "`shape` must be (c_out, c_in, *k) with 1, 2 or 3 spatial kernel sizes (the layout of "
            f"torch Conv1d/2d/3d weights); got {shape!r} with {len(dims)} entries"
        )
    c_out = as_int(dims[0], "shape[0] (c_out)", low=1)
    c_in = as_int(dims[1], "shape[1] (c_in)", low=1)
    ks = tuple(as_int(k, f"shape[{2 + a}] (kernel size)", low=1) for a, k in enumerate(dims[2:]))
    return c_out, c_in, ks


def _require_tall(c_out, c_in, what, semi=False):
    if c_in > c_out and not semi:
        raise ValueError(
            f"{what} needs c_in <= c_out; got shape with c_out={c_out}, c_in={c_in}. An orthogonal "
            f"(norm-preserving) convolution acts at every spatial frequency as a c_out x c_in "
            f"matrix M with M^T M = I_(c_in), i.e. it embeds R^{c_in} isometrically into "
            f"R^{c_out}, which is impossible when c_in > c_out. Use c_in <= c_out (e.g. make the "
            f"layer widen rather than narrow), pass semi_orthogonal=True for a co-isometry "
            f"(orthonormal rows, M M^T = I_(c_out): not norm-preserving), or use a Gaussian "
            f"kernel (`gaussian_kernel`) for this layer."
        )


def _check_size(c_out, c_in, ks, work):
    """Refuse a kernel whose peak memory does not fit, before allocating anything.

    The peak is the float64 output plus `work` dense work arrays of the construction's size.
    """
    taps = int(np.prod(ks, dtype=np.int64)) if ks else 1
    big = max(c_out, c_in)
    need = 8.0 * (c_out * c_in * taps + work * big * min(c_out, c_in) * max(1, taps))
    require_memory(need, f"`shape` {(c_out, c_in) + tuple(ks)}")


def _sigma_w(sigma_w2):
    return float(np.sqrt(as_float_array(sigma_w2, "sigma_w2", low=0.0)))


# --------------------------------------------------------------------------------------------
# Haar matrices and random subspaces
# --------------------------------------------------------------------------------------------
@uses_blas
def haar_orthogonal(n, m=None, rng=None):
    r"""Draw the first ``m`` columns of a Haar-distributed orthogonal ``n x n`` matrix.

    The QR decomposition :math:`G = QR` of an ``n x m`` matrix of i.i.d. standard normals, with
    column ``j`` of ``Q`` multiplied by :math:`\operatorname{sign}(R_{jj})`, has exactly the
    distribution of the first ``m`` columns of a Haar (uniform) orthogonal matrix [2]_. Without
    the sign fix the distribution depends on the LAPACK sign convention and is not Haar.

    Parameters
    ----------
    n : int
        Number of rows, ``n >= 1``.
    m : int, optional
        Number of columns, ``1 <= m <= n``; default ``n`` (a full Haar matrix of O(n)).
    rng : None, int or numpy.random.Generator
        Source of randomness.

    Returns
    -------
    q : ndarray of float64, shape ``(n, m)``
        Orthonormal columns: ``q.T @ q == I_m`` to rounding.

    References
    ----------
    .. [2] F. Mezzadri, Notices of the AMS 54 (2007) 592-604.

    Examples
    --------
    >>> q = haar_orthogonal(4, rng=0)
    >>> bool(np.allclose(q.T @ q, np.eye(4)))
    True
    """
    n = as_int(n, "n", low=1)
    m = n if m is None else as_int(m, "m", low=1, high=n)
    require_memory(8.0 * 3 * n * m, f"a Haar matrix with `n` = {n}, `m` = {m}")
    return _haar(n, m, make_rng(rng))


def _haar(n, m, rng):
    g = rng.standard_normal((n, m))
    q, r = np.linalg.qr(g)
    d = np.sign(np.diagonal(r)).copy()
    d[d == 0] = 1.0
    q *= d
    return q


def _subspace(c, r, rng):
    """Orthonormal basis (c x r) of a uniformly random r-dimensional subspace of R^c.

    The span of ``r`` Haar columns; the projection ``u u^T`` does not see their signs.
    """
    return np.zeros((c, 0)) if r == 0 else _haar(c, r, rng)


# --------------------------------------------------------------------------------------------
# Delta-orthogonal (Algorithm 2)
# --------------------------------------------------------------------------------------------
@uses_blas
def delta_orthogonal(shape, sigma_w2=1.0, rng=None, *, semi_orthogonal=False):
    r"""Delta-orthogonal kernel: a Haar orthogonal matrix on the centre tap, zeros elsewhere.

    .. math::

        K[:, :, \beta] = \sigma_w\, H\, \mathbb{1}[\beta = ((k-1)//2, \dots)],
        \qquad H^T H = I_{c_{in}},

    with ``H`` the first ``c_in`` columns of a Haar ``c_out x c_out`` orthogonal matrix ([1]_,
    Algorithm 2). The mean-field variance profile is ``v = delta`` (the map ``A`` is the
    identity) and the convolution is an isometry times :math:`\sigma_w` under **any** padding,
    circular or zero, because only one tap is non-zero.

    Parameters
    ----------
    shape : tuple of int
        ``(c_out, c_in, *k)`` with 1 to 3 spatial sizes, ``c_in <= c_out``. For an even ``k`` the
        centre is the tap just before the middle, ``(k - 1) // 2`` (TF/JAX convention, aligned
        with zero offset under "SAME" padding that puts ``(k - 1) // 2`` cells before; under
        circular padding with ``k // 2`` cells before it shifts feature maps by one pixel per
        layer). Prefer odd ``k``.
    sigma_w2 : float, default 1
        Weight variance :math:`\sigma_w^2 \ge 0`; the kernel is scaled by :math:`\sigma_w`.
    rng : None, int or numpy.random.Generator
        Source of randomness.
    semi_orthogonal : bool, default False, keyword-only
        Only matters when ``c_in > c_out``. False: raise (no isometry exists). True: return a
        *co-isometry*, the channel transpose of the kernel drawn for ``(c_in, c_out, *k)``: its
        symbol has orthonormal rows, :math:`M(\omega) M(\omega)^* = \sigma_w^2 I_{c_{out}}`
        (for real kernels :math:`M^T(\omega) = M(-\omega)^*`), so all ``c_out N`` singular
        values equal :math:`\sigma_w` but the component of the input outside the row space is
        dropped: :math:`\mathbb{E}\|y\|^2 = \sigma_w^2 (c_{out}/c_{in}) \|x\|^2` for isotropic
        inputs, i.e. the per-channel variance is multiplied by :math:`\sigma_w^2` (the choice of
        DKS for wide-to-narrow layers). The tap-energy profile is unchanged.

    Returns
    -------
    kernel : ndarray of float64, shape ``shape``

    Raises
    ------
    ValueError
        Bad shape, ``c_in > c_out`` (no isometric embedding exists) without
        ``semi_orthogonal=True``, ``sigma_w2 < 0``.

    References
    ----------
    .. [1] Xiao et al., ICML 2018, arXiv:1806.05393, Algorithm 2.

    Examples
    --------
    >>> k = delta_orthogonal((4, 2, 3, 3), sigma_w2=2.0, rng=0)
    >>> h = k[:, :, 1, 1]
    >>> bool(np.allclose(h.T @ h, 2.0 * np.eye(2)))
    True
    >>> float(np.abs(k).sum() - np.abs(h).sum())
    0.0
    """
    c_out, c_in, ks = _parse_shape(shape)
    _require_tall(c_out, c_in, "delta_orthogonal", semi_orthogonal)
    sw = _sigma_w(sigma_w2)
    require_memory(
        8.0 * (c_out * c_in * int(np.prod(ks)) + 3 * c_out * c_in), f"`shape` {(c_out, c_in) + ks}"
    )
    if c_in > c_out:
        h = _haar(c_in, c_out, make_rng(rng)).T
    else:
        h = _haar(c_out, c_in, make_rng(rng))
    out = np.zeros((c_out, c_in) + ks)
    out[(slice(None), slice(None)) + tuple((k - 1) // 2 for k in ks)] = sw * h
    return out


# --------------------------------------------------------------------------------------------
# paraunitary products of projection factors (Algorithm 1 and the tunable family)
# --------------------------------------------------------------------------------------------
def _apply_factor(x, axis, u, complement):
    """Left-multiply the matrix polynomial ``x`` by ``P + (I - P) z_axis``.

    ``x`` has shape ``(c, *taps, c_in)``; ``P = u u^T`` (or ``I - u u^T`` if `complement`).
    Tap ``j`` of the result is ``P x[j] + (I - P) x[j - 1]``: one GEMM over all taps at once.
    """
    c = x.shape[0]
    x2 = x.reshape(c, -1)
    px = u @ (u.T @ x2)
    if complement:
        px = x2 - px
    px = px.reshape(x.shape)
    rest = x - px
    shape = list(x.shape)
    shape[axis] += 1
    out = np.zeros(shape)
    head = [slice(None)] * x.ndim
    head[axis] = slice(0, x.shape[axis])
    tail = [slice(None)] * x.ndim
    tail[axis] = slice(1, None)
    out[tuple(head)] += px
    out[tuple(tail)] += rest
    return out


def _paraunitary(c_out, c_in, ks, rho_of_block, rank, rng):
    r"""Return ``B(z) H`` in layout ``(c_out, *ks, c_in)`` (unscaled).

    ``B(z)`` is the product over blocks ``b = 0 .. max(k) - 2`` and, inside a block, over the
    spatial axes ``a`` with ``k_a - 1 > b``, of factors ``P + (I - P) z_a``; ``P`` is the
    orthogonal projection on a uniformly random subspace of rank ``Binomial(c_out, rho)``
    (``rank="random"``) or ``round(rho c_out)`` (``rank="fixed"``), ``rho = rho_of_block(b)``.
    """
    d = len(ks)
    h = _haar(c_out, c_in, rng)
    x = h.reshape((c_out,) + (1,) * d + (c_in,))
    for b in range(max(ks) - 1):
        rho = rho_of_block(b)
        for a in range(d):
            if b >= ks[a] - 1:
                continue
            if rank == "random":
                r = int(rng.binomial(c_out, rho))
            else:
                r = int(round(rho * c_out))
            complement = r > c_out - r
            u = _subspace(c_out, c_out - r if complement else r, rng)
            x = _apply_factor(x, 1 + a, u, complement)
    return x


def _finish(x, sigma_w, swap=False):
    out = np.moveaxis(x, -1, 1)
    if swap:
        out = np.swapaxes(out, 0, 1)
    out = np.ascontiguousarray(out)
    out *= sigma_w
    return out


@uses_blas
def block_orthogonal(shape, sigma_w2=1.0, rng=None, *, rank="random", semi_orthogonal=False):
    r"""Random orthogonal kernel of any size: Algorithm 1 of Xiao et al. (2018).

    The symbol of the kernel is a product of ``k - 1`` random paraunitary blocks times a Haar
    isometry ``H`` (``c_out x c_in``, :math:`H^T H = I`):

    .. math::

        M(z) = \sigma_w \prod_{b=1}^{k-1} \Big[\prod_{a=1}^{d}
               \big(P_{b,a} + (I - P_{b,a})\, z_a\big)\Big] H ,

    where each :math:`P_{b,a}` is the orthogonal projection onto a uniformly random subspace of
    rank ``Binomial(c_out, 1/2)`` (``rank="random"``, as in TF's ``ConvolutionOrthogonal2D``) or
    ``round(c_out / 2)`` (``rank="fixed"``). Because :math:`P(I - P) = 0`, each factor is unitary
    on the unit circle, so :math:`M(\omega)^* M(\omega) = \sigma_w^2 I_{c_{in}}` at every
    frequency of every grid: the convolution is an **exact isometry (times** :math:`\sigma_w`
    **) under circular padding**, for every ``k >= 1``, odd or even. Under zero padding there
    are boundary effects.

    The expected tap-energy profile is binomial,
    :math:`\mathbb{E}\,\|K_\beta\|_F^2 / (\sigma_w^2 c_{in}) = \prod_a \binom{k_a-1}{\beta_a}
    / 2^{k_a-1}` (``cnnmft.fourier.variance_profile("binomial", k)``), so in the mean field
    these kernels behave like Gaussian kernels with that ``v`` (docs/theory.md section 2.7).

    Parameters
    ----------
    shape : tuple of int
        ``(c_out, c_in, *k)`` with 1 to 3 spatial sizes, ``c_in <= c_out``. Non-cubic kernels are
        allowed (axis ``a`` gets ``k_a - 1`` factors); TF accepts only cubic ones.
    sigma_w2 : float, default 1
        Weight variance; the kernel is scaled by :math:`\sigma_w`.
    rng : None, int or numpy.random.Generator
        Source of randomness.
    rank : {"random", "fixed"}, keyword-only
        Rank law of the projections (see above). ``"random"`` makes the expected profile exactly
        binomial; ``"fixed"`` lowers its fluctuations (exactly binomial only for even ``c_out``).
    semi_orthogonal : bool, default False, keyword-only
        Only matters when ``c_in > c_out``. False: raise. True: return the co-isometry of
        :func:`delta_orthogonal` (the channel transpose of the kernel drawn for
        ``(c_in, c_out, *k)``; all singular values :math:`\sigma_w`, profile unchanged).

    Returns
    -------
    kernel : ndarray of float64, shape ``shape``

    Raises
    ------
    ValueError
        Bad shape, ``c_in > c_out``, ``sigma_w2 < 0``, unknown ``rank``.

    Notes
    -----
    The polynomial is built right to left starting from ``H``: multiplying by one factor costs a
    single GEMM ``U (U^T X)`` over all current taps at once, with ``U`` an orthonormal basis of
    the range of ``P`` or of ``I - P``, whichever is smaller. The total cost is about
    :math:`c_{out}^2 c_{in} \sum_{\text{factors}} (\text{taps so far})`, i.e.
    :math:`O(k^3 c^3)` in 2D, without ever forming ``c x c`` projections or per-tap loops.
    In the ``(c_out, c_in)`` layout the symbol is the transpose of TF's; TF's factors appear in
    reverse order, which has the same distribution.

    References
    ----------
    .. [1] Xiao et al., ICML 2018, arXiv:1806.05393, Algorithm 1.

    Examples
    --------
    >>> k = block_orthogonal((8, 4, 3, 3), sigma_w2=1.0, rng=0)
    >>> s = conv_singular_values(k, (5, 5))
    >>> bool(np.allclose(s, 1.0))
    True
    """
    c_out, c_in, ks = _parse_shape(shape)
    _require_tall(c_out, c_in, "block_orthogonal", semi_orthogonal)
    as_choice(rank, "rank", _RANK_MODES)
    sw = _sigma_w(sigma_w2)
    _check_size(c_out, c_in, ks, 2)
    big, small = max(c_out, c_in), min(c_out, c_in)
    x = _paraunitary(big, small, ks, lambda b: 0.5, rank, make_rng(rng))
    return _finish(x, sw, swap=c_in > c_out)


@uses_blas
def tunable_orthogonal(
    shape, sigma_w2=1.0, t=0.25, rng=None, *, rank="random", semi_orthogonal=False
):
    r"""Exactly orthogonal kernel with a tap-energy profile from delta (t=0) to binomial (t=1/2).

    The construction of :func:`block_orthogonal` with projections of chosen rank fraction
    (docs/theory.md section 4.3): along an axis of size ``k`` there are ``k - 1`` factors
    :math:`P_b + (I - P_b) z` whose rank fractions alternate
    :math:`\rho_b = 1 - t, t, 1 - t, \dots`. A factor puts the energy :math:`\rho_b` on its tap 0
    and :math:`1 - \rho_b` on its tap 1, and cross terms vanish exactly (:math:`P (I - P) = 0`),
    so the expected 1D profile is the convolution of the pairs :math:`(\rho_b, 1 - \rho_b)`; for
    ``k = 3``

    .. math::

        w = \big(t(1-t),\; (1-t)^2 + t^2,\; t(1-t)\big),

    and the ``d``-dimensional profile is the outer product over axes
    (``cnnmft.fourier.variance_profile("tunable", k, t=t)``). ``t = 0`` gives exactly a
    Delta-orthogonal kernel (centre tap ``(k - 1) // 2``), ``t = 1/2`` the binomial profile of
    Algorithm 1. Every member is an exact isometry (times :math:`\sigma_w`) under circular
    padding.

    Parameters
    ----------
    shape : tuple of int
        ``(c_out, c_in, *k)``, 1 to 3 spatial sizes, ``c_in <= c_out``.
    sigma_w2 : float, default 1
        Weight variance; the kernel is scaled by :math:`\sigma_w`.
    t : float, default 0.25
        Family parameter in ``[0, 1/2]``.
    rng : None, int or numpy.random.Generator
        Source of randomness.
    rank : {"random", "fixed"}, keyword-only
        ``"random"``: ranks ``Binomial(c_out, rho)``, so the expected profile is exactly the
        formula above; ``"fixed"``: ranks ``round(rho c_out)`` (profile exact for the rounded
        fractions, smaller fluctuations).
    semi_orthogonal : bool, default False, keyword-only
        Only matters when ``c_in > c_out``. False: raise. True: return the co-isometry of
        :func:`delta_orthogonal` (the channel transpose of the kernel drawn for
        ``(c_in, c_out, *k)``; all singular values :math:`\sigma_w`, profile unchanged).

    Returns
    -------
    kernel : ndarray of float64, shape ``shape``

    Raises
    ------
    ValueError
        Bad shape, ``c_in > c_out``, ``sigma_w2 < 0``, ``t`` outside ``[0, 1/2]``.

    Notes
    -----
    A convex mixture ``sqrt(1-g) K_delta + sqrt(g) K_other`` of orthogonal kernels is **not**
    orthogonal; this family is.

    References
    ----------
    .. [1] Xiao et al., ICML 2018, arXiv:1806.05393, Section 2 (variance profiles) and
       Algorithm 1.

    Examples
    --------
    >>> k = tunable_orthogonal((16, 16, 3), t=0.0, rng=0)
    >>> float(np.abs(k[:, :, 0]).max()), float(np.abs(k[:, :, 2]).max())
    (0.0, 0.0)
    """
    c_out, c_in, ks = _parse_shape(shape)
    _require_tall(c_out, c_in, "tunable_orthogonal", semi_orthogonal)
    as_choice(rank, "rank", _RANK_MODES)
    sw = _sigma_w(sigma_w2)
    _check_size(c_out, c_in, ks, 2)
    t = as_float(t, "t", low=0.0, high=0.5)
    big, small = max(c_out, c_in), min(c_out, c_in)
    x = _paraunitary(big, small, ks, lambda b: 1.0 - t if b % 2 == 0 else t, rank, make_rng(rng))
    return _finish(x, sw, swap=c_in > c_out)


# --------------------------------------------------------------------------------------------
# Gaussian kernels with any variance profile
# --------------------------------------------------------------------------------------------
def gaussian_kernel(shape, sigma_w2=1.0, v="uniform", rng=None, *, t=None):
    r"""Gaussian kernel with spatial variance profile ``v``: the paper's mean-field model.

    .. math::

        K[j, i, \beta] \sim N\!\left(0,\ \sigma_w^2\, v_\beta / c_{in}\right)
        \quad\text{i.i.d.},\qquad v_\beta \ge 0,\ \sum_\beta v_\beta = 1 .

    Not an isometry: at every frequency the symbol has i.i.d. entries of variance
    :math:`\sigma_w^2 / c_{in}` whatever ``v`` is, so the operator's squared singular values
    follow the Marchenko-Pastur law (docs/theory.md section 3).

    Parameters
    ----------
    shape : tuple of int
        ``(c_out, c_in, *k)`` with 1 to 3 spatial sizes (any ``c_in``, ``c_out``).
    sigma_w2 : float, default 1
        Weight variance :math:`\sigma_w^2 \ge 0`.
    v : {"uniform", "delta", "binomial", "tunable"} or array_like, default "uniform"
        Variance profile. A string is passed to :func:`cnnmft.fourier.variance_profile` with the
        kernel's spatial size (``t=`` for "tunable"). An array must have the spatial shape
        ``k`` (or, for a multi-dimensional kernel, be 1-D of length ``k`` on a cubic kernel:
        the outer product over axes is used), be non-negative and sum to 1 within 1e-9.
    rng : None, int or numpy.random.Generator
        Source of randomness.
    t : float, optional, keyword-only
        Parameter of the "tunable" profile.

    Returns
    -------
    kernel : ndarray of float64, shape ``shape``

    Raises
    ------
    ValueError
        Bad shape, ``sigma_w2 < 0``, a profile of the wrong shape, negative or not summing to 1.

    References
    ----------
    .. [1] Xiao et al., ICML 2018, arXiv:1806.05393, Section 2 (eq. 2.1-2.2).

    Examples
    --------
    >>> k = gaussian_kernel((256, 256, 3), sigma_w2=2.0, v=[0.25, 0.5, 0.25], rng=0)
    >>> var = (k ** 2).mean(axis=(0, 1)) * 256 / 2.0
    >>> bool(np.allclose(var, [0.25, 0.5, 0.25], rtol=0.02))
    True
    """
    c_out, c_in, ks = _parse_shape(shape)
    s2 = as_float(sigma_w2, "sigma_w2", low=0.0)
    prof = _profile(v, ks, t)
    require_memory(16.0 * c_out * c_in * int(np.prod(ks)), f"`shape` {(c_out, c_in) + ks}")
    rng = make_rng(rng)
    std = np.sqrt(s2 * prof / c_in)
    return rng.standard_normal((c_out, c_in) + ks) * std


def _profile(v, ks, t=None):
    """Return the validated variance profile of spatial shape `ks` (string kind or array)."""
    return kernel_profile(v, ks, t=t)
