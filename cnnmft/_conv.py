r"""The circular convolution of a channels-last batch: applied, transposed, and its spectrum.

One convolution layer with circular padding computes

.. math::

    y_j(\alpha) = \sum_i \sum_\beta K_{ji}(\beta)\, x_i(\alpha + \beta \bmod n),

with kernels in the layout ``(c_out, c_in, *k)`` (that of ``torch.nn.Conv{1,2,3}d.weight``) and
tap ``t`` of an axis at offset ``beta = t - (k - 1) // 2`` (the convention of
:func:`cnnmft.fourier.kernel_offsets`, shared with the covariance engine and the torch models).
Here live the three things done with that operator:

* :func:`circular_conv` applies it (or its adjoint) to a batch, as one GEMM over shifted copies
  of the input: the numpy CNN of :mod:`cnnmft.montecarlo` is built on it;
* :func:`conv_singular_values` gives its exact singular values from the kernel's symbol (the
  DFT over taps), the check that :mod:`cnnmft.orthogonal` kernels are isometries;
* :func:`tap_energy` gives the fraction of a kernel's energy on each tap, whose expectation is
  the mean-field variance profile ``v``.

The public names are re-exported by :mod:`cnnmft.montecarlo` (``circular_conv``) and
:mod:`cnnmft.orthogonal` (``conv_singular_values``, ``tap_energy``).
"""

from __future__ import annotations

import itertools
import numbers

import numpy as np

from cnnmft._threads import blas_policy, uses_blas
from cnnmft._util import blas_threads
from cnnmft._validation import as_float_array, as_int
from cnnmft.fourier import kernel_offsets

__all__ = ["circular_conv", "conv_singular_values", "tap_energy"]


# --------------------------------------------------------------------------------------------
# applying the operator: im2col into a reused buffer, one GEMM
# --------------------------------------------------------------------------------------------


def _tap_shifts(kshape):
    """Offsets ``beta`` of every tap (row-major over the kernel axes): ``kernel_offsets``."""
    return [
        tuple(int(b) for b in idx)
        for idx in itertools.product(*[kernel_offsets(k) for k in kshape])
    ]


def _segments(n, s):
    """(dst slice, src slice) pairs realising ``dst[a] = src[(a + s) mod n]`` on one axis."""
    s %= n
    if s == 0:
        return [(slice(0, n), slice(0, n))]
    return [(slice(0, n - s), slice(s, n)), (slice(n - s, n), slice(0, s))]


def _shift_into(dst, src, shift):
    """``dst[:, alpha, :] = src[:, alpha + shift, :]`` (circular), spatial axes 1..d."""
    spatial = src.shape[1:-1]
    for combo in itertools.product(*[_segments(n, s) for n, s in zip(spatial, shift)]):
        d = (slice(None),) + tuple(c[0] for c in combo) + (slice(None),)
        s = (slice(None),) + tuple(c[1] for c in combo) + (slice(None),)
        dst[d] = src[s]


# GEMMs below this many flops run on one BLAS thread: on a loaded machine a multi-threaded
# BLAS spends far longer synchronising its threads than computing a small product.
_SMALL_GEMM_FLOPS = 5e8


def _blas_threads(flops):
    """One BLAS thread for a small product, the thread policy's count for a large one."""
    return blas_policy() if flops >= _SMALL_GEMM_FLOPS else blas_threads(1)


class _Conv:
    """A circular convolution with a fixed kernel, ready to apply (and to apply transposed)."""

    def __init__(self, kernel):
        kernel = np.asarray(kernel, dtype=np.float64)
        self.c_out, self.c_in = kernel.shape[:2]
        self.kshape = kernel.shape[2:]
        self.shifts = _tap_shifts(self.kshape)
        ntap = len(self.shifts)
        kd = len(self.kshape)
        # (c_out, c_in, *k) -> (*k, c_in, c_out) -> (K c_in, c_out)
        self.wmat = np.ascontiguousarray(
            np.moveaxis(kernel, (0, 1), (kd + 1, kd)).reshape(ntap * self.c_in, self.c_out)
        )
        self._wmat_t = None
        self._buf = {}

    def _col(self, shape, k, c):
        key = (shape, k, c)
        buf = self._buf.get(key)
        if buf is None:
            buf = np.empty(shape[:-1] + (k, c))
            self._buf = {key: buf}
        return buf

    def __call__(self, x, transpose=False):
        x = np.ascontiguousarray(x, dtype=np.float64)
        if transpose:
            if self._wmat_t is None:
                ntap = len(self.shifts)
                w = self.wmat.reshape(ntap, self.c_in, self.c_out)
                self._wmat_t = np.ascontiguousarray(
                    np.transpose(w, (0, 2, 1)).reshape(ntap * self.c_out, self.c_in)
                )
            shifts = [tuple(-s for s in sh) for sh in self.shifts]
            wmat, c = self._wmat_t, self.c_out
        else:
            wmat, shifts, c = self.wmat, self.shifts, self.c_in
        if x.shape[-1] != c:
            raise ValueError(f"`x` must have {c} channels on its last axis; got shape {x.shape}")
        ntap = len(shifts)
        flops = 2.0 * (x.size // c) * wmat.shape[0] * wmat.shape[1]
        if ntap == 1 and all(s == 0 for s in shifts[0]):
            with _blas_threads(flops):
                return (x.reshape(-1, c) @ wmat).reshape(x.shape[:-1] + (wmat.shape[1],))
        col = self._col(x.shape, ntap, c)
        for t, sh in enumerate(shifts):
            _shift_into(col[..., t, :], x, sh)
        with _blas_threads(flops):
            out = col.reshape(-1, ntap * c) @ wmat
        return out.reshape(x.shape[:-1] + (wmat.shape[1],))


def circular_conv(x, kernel, *, transpose=False):
    r"""Circular (periodic) convolution of a channels-last batch with a kernel.

    The kernel has layout ``(c_out, c_in, *k)``.

    .. math:: y_j(\alpha) = \sum_i \sum_\beta K_{ji}(\beta)\, x_i(\alpha + \beta \bmod n)

    with tap ``t`` along an axis at offset ``beta = t - (k - 1) // 2`` (cross-correlation, as in
    torch and TF, with circular padding). ``transpose=True`` applies the adjoint operator
    :math:`\bar x_i(\gamma) = \sum_j \sum_\beta K_{ji}(\beta)\, y_j(\gamma - \beta)`.

    Parameters
    ----------
    x : array_like, shape ``(batch, *spatial, c_in)`` (``c_out`` when ``transpose``)
        Inputs, channels last; 1 to 3 spatial axes, each at least the kernel size.
    kernel : array_like, shape ``(c_out, c_in, *k)``
        Kernel.
    transpose : bool
        Apply the transpose (adjoint) of the convolution instead.

    Returns
    -------
    ndarray, shape ``(batch, *spatial, c_out)`` (``c_in`` when ``transpose``)

    Notes
    -----
    Implemented as one matrix product of an im2col buffer ``(batch * prod(spatial), K c_in)``
    with the reshaped kernel ``(K c_in, c_out)``; the buffer is filled with two slice copies
    per axis and tap (no ``np.roll`` temporaries).

    Examples
    --------
    >>> x = np.arange(5.0).reshape(1, 5, 1)
    >>> circular_conv(x, np.array([[[0.0, 0.0, 1.0]]]))[0, :, 0]   # picks x(alpha + 1)
    array([1., 2., 3., 4., 0.])
    """
    kernel = _check_kernel(np.asarray(kernel, dtype=np.float64))
    x = np.asarray(x, dtype=np.float64)
    d = kernel.ndim - 2
    if x.ndim != d + 2:
        raise ValueError(
            f"`x` must have shape (batch, *spatial, channels) with {d} spatial "
            f"axes to match `kernel`; got shape {x.shape}"
        )
    for n, k in zip(x.shape[1:-1], kernel.shape[2:]):
        if k > n:
            raise ValueError(
                f"`kernel` size {kernel.shape[2:]} must not exceed the grid {x.shape[1:-1]}"
            )
    return _Conv(kernel)(x, transpose=transpose)


# --------------------------------------------------------------------------------------------
# the operator's spectrum and the kernel's tap energies
# --------------------------------------------------------------------------------------------


@uses_blas
def conv_singular_values(kernel, spatial_shape):
    r"""Exact singular values of the circular convolution by `kernel` on a grid, by FFT.

    The operator :math:`\mathbb{R}^{c_{in} N} \to \mathbb{R}^{c_{out} N}` (``N`` pixels) is
    block-diagonal in the spatial Fourier basis, with ``c_out x c_in`` blocks

    .. math::

        M(\omega) = \sum_\beta K[:, :, \beta]\; e^{-2\pi i\, \omega \cdot \beta / n},

    so its singular values are those of the ``N`` blocks. Taps are taken modulo the grid size,
    so kernels larger than the grid are handled (their taps wrap around). The sign of the
    exponent and the tap offset do not change the singular values.

    Notes
    -----
    For a real kernel :math:`M(-\omega) = \overline{M(\omega)}`, so only half of the grid is
    evaluated. The blocks are computed in chunks of frequencies as one matrix product of the
    phases :math:`e^{-2\pi i \omega\cdot\beta/n}` (``F x T``) with the taps
    (``T x c_out c_in``); memory is bounded by the chunk (about 64 MiB), not by the grid.

    Parameters
    ----------
    kernel : array_like, shape ``(c_out, c_in, *k)``
        Real kernel with 1 to 3 spatial axes.
    spatial_shape : int or tuple of int
        Grid size ``n`` per spatial axis (an int is used for every axis).

    Returns
    -------
    s : ndarray of float64, shape ``(*spatial_shape, min(c_out, c_in))``
        Singular values at each frequency, in descending order. ``s.ravel()`` lists all
        ``N * min(c_out, c_in)`` singular values of the operator.

    Raises
    ------
    ValueError
        A kernel with fewer than 3 or more than 5 axes, non-finite entries, or a grid of the
        wrong rank.

    Examples
    --------
    >>> from cnnmft.orthogonal import delta_orthogonal
    >>> k = delta_orthogonal((3, 3, 3), sigma_w2=4.0, rng=1)
    >>> conv_singular_values(k, 5).shape
    (5, 3)
    >>> bool(np.allclose(conv_singular_values(k, 5), 2.0))
    True
    """
    kern = _check_kernel(as_float_array(kernel, "kernel"))
    grid = _grid(spatial_shape, kern.ndim - 2)
    # real kernel: M(-w) = conj(M(w)) has the same singular values, so the half grid
    # (last axis 0 .. n//2) suffices
    half_shape = grid[:-1] + (grid[-1] // 2 + 1,)
    half = _symbol_singular_values(kern, grid, half_shape)
    return _unfold_half(half.reshape(half_shape + (half.shape[-1],)), grid)


def _check_kernel(kern):
    if not 3 <= kern.ndim <= 5:
        raise ValueError(
            f"`kernel` must have shape (c_out, c_in, *k) with 1 to 3 spatial axes; "
            f"got shape {kern.shape}"
        )
    return kern


def _grid(spatial_shape, d):
    """The grid ``(n_1, ..., n_d)`` from an int (every axis) or a sequence of `d` ints."""
    if isinstance(spatial_shape, numbers.Integral):
        return (as_int(spatial_shape, "spatial_shape", low=1),) * d
    grid = tuple(as_int(n, "spatial_shape", low=1) for n in spatial_shape)
    if len(grid) != d:
        raise ValueError(
            f"`spatial_shape` must have {d} entries (one per spatial axis of the kernel); "
            f"got {spatial_shape!r}"
        )
    return grid


def _symbol_singular_values(kern, grid, freq_shape):
    """Singular values of ``M(w)`` at the frequencies of `freq_shape`, shape ``(F, min(c))``.

    ``M(w) = sum_beta K_beta exp(-2 pi i w.beta / n)`` is evaluated as one GEMM per chunk of
    frequencies, ``(F, T)`` phases @ ``(T, c_out c_in)`` taps, so memory stays bounded whatever
    the grid (and taps beyond the grid wrap around automatically).
    """
    c_out, c_in = kern.shape[:2]
    freqs = np.stack(
        [f.ravel() for f in np.meshgrid(*[np.arange(n) for n in freq_shape], indexing="ij")], axis=1
    )  # (F, d)
    taps = np.stack(
        [t.ravel() for t in np.meshgrid(*[np.arange(k) for k in kern.shape[2:]], indexing="ij")],
        axis=1,
    )  # (T, d)
    kt = kern.reshape(c_out * c_in, -1).T  # (T, c_out c_in)
    inv_n = 1.0 / np.asarray(grid, dtype=np.float64)
    n_freq = freqs.shape[0]
    out = np.empty((n_freq, min(c_out, c_in)))
    step = max(1, int(2**22 // max(1, c_out * c_in)))
    for s in range(0, n_freq, step):
        f = freqs[s : s + step]
        # phase index reduced modulo n before scaling keeps the angles accurate
        prod = (f[:, None, :] * taps[None, :, :]) % np.asarray(grid)
        ang = -2.0 * np.pi * (prod * inv_n).sum(axis=-1)  # (F, T)
        sym = (np.exp(1j * ang) @ kt).reshape(-1, c_out, c_in)
        out[s : s + step] = np.linalg.svd(sym, compute_uv=False)
    return out


def _unfold_half(half, grid):
    """The full grid from its half (the singular values at ``-w`` equal those at ``w``).

    ``full[i, j] = half[i, j]`` for ``j <= n//2``, else ``half[-i mod n, n - j]``.
    """
    n_last = grid[-1]
    j = np.arange(n_last)
    mirror = j > n_last // 2
    full = np.empty(grid + half.shape[-1:])
    full[..., ~mirror, :] = half[..., j[~mirror], :]
    if mirror.any():
        neg = np.ix_(*[(-np.arange(n)) % n for n in grid[:-1]], n_last - j[mirror])
        full[..., mirror, :] = half[neg]
    return full


def tap_energy(kernel):
    r"""Fraction of a kernel's energy on each spatial tap.

    .. math:: e_\beta = \|K[:, :, \beta]\|_F^2 \,/\, \sum_{\beta'} \|K[:, :, \beta']\|_F^2 .

    For the orthogonal generators the denominator is exactly :math:`\sigma_w^2 c_{in}`
    (Parseval) and :math:`\mathbb{E}\, e_\beta` is the mean-field variance profile ``v``; for a
    Gaussian kernel :math:`\mathbb{E}\|K_\beta\|_F^2 = \sigma_w^2 c_{out} v_\beta`.

    Parameters
    ----------
    kernel : array_like, shape ``(c_out, c_in, *k)``

    Returns
    -------
    e : ndarray of float64, shape ``k``
        Non-negative, sums to 1 (all zeros for an all-zero kernel).

    Examples
    --------
    >>> from cnnmft.orthogonal import delta_orthogonal
    >>> tap_energy(delta_orthogonal((4, 4, 3), rng=0))
    array([0., 1., 0.])
    """
    kern = _check_kernel(as_float_array(kernel, "kernel"))
    e = np.einsum("ij...,ij...->...", kern, kern)
    total = float(e.sum())
    return e / total if total > 0 else e
