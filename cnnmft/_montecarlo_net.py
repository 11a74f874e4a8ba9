r"""The numpy CNN of :mod:`cnnmft.montecarlo`: kernels, inputs, layers, estimator helpers.

A network is a list of circular convolution layers (:class:`cnnmft._conv._Conv`) with biases,
drawn one layer at a time as the batch streams through; kernels come from
:func:`sample_kernel` (Gaussian with a variance profile, the orthogonal generators, or any
callable) and inputs with an exact Gram matrix from :func:`gaussian_inputs`. The public names
are re-exported by :mod:`cnnmft.montecarlo`.
"""

from __future__ import annotations

import inspect
import numbers
from dataclasses import dataclass

import numpy as np

from cnnmft import _validation as V
from cnnmft import orthogonal
from cnnmft._conv import _blas_threads, _Conv
from cnnmft._util import progress_callback
from cnnmft.activations import get_activation
from cnnmft.fourier import kernel_profile
from cnnmft.results import Status

__all__ = ["sample_kernel", "gaussian_inputs"]

_KERNEL_KINDS = ("gaussian", "delta_orthogonal", "block_orthogonal")


# --------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------


def _profile(v, kshape):
    return kernel_profile(v, tuple(kshape), normalize=True)


def sample_kernel(kind, shape, sigma_w2, *, v="uniform", rng=None):
    r"""Draw one kernel of layout ``(c_out, c_in, *k)``.

    Parameters
    ----------
    kind : {"gaussian", "delta_orthogonal", "block_orthogonal"} or callable
        ``"gaussian"``: i.i.d. :math:`\omega_{ij}(\beta) \sim N(0, \sigma_w^2 v_\beta / c_{in})`
        drawn here with numpy; the orthogonal kinds call
        :func:`cnnmft.orthogonal.delta_orthogonal` / :func:`cnnmft.orthogonal.block_orthogonal`
        (scaled by ``sqrt(sigma_w2)``). A callable is called as ``kind(shape, sigma_w2, rng)``
        (or with ``v=v`` too when it accepts a ``v`` keyword), e.g.
        :func:`cnnmft.orthogonal.gaussian_kernel`.
    shape : tuple of int
        ``(c_out, c_in, *k)``.
    sigma_w2 : float
        Weight variance ``> 0``.
    v : str or array_like
        Spatial variance profile for ``"gaussian"`` (see :func:`cnnmft.fourier.variance_profile`).
    rng : None, int or numpy.random.Generator

    Returns
    -------
    ndarray, shape `shape`

    Examples
    --------
    >>> k = sample_kernel("delta_orthogonal", (4, 4, 3), 2.0, rng=0)
    >>> k.shape
    (4, 4, 3)
    >>> bool(np.allclose(k[:, :, 1].T @ k[:, :, 1], 2.0 * np.eye(4)))
    True
    """
    rng = V.make_rng(rng)
    shape = tuple(int(s) for s in shape)
    if callable(kind):
        try:
            params = inspect.signature(kind).parameters
        except (TypeError, ValueError):
            params = {}
        if "v" in params:
            return np.asarray(kind(shape, sigma_w2, v=v, rng=rng), dtype=np.float64)
        return np.asarray(kind(shape, sigma_w2, rng=rng), dtype=np.float64)
    V.as_choice(kind, "kernel", _KERNEL_KINDS)
    if kind == "gaussian":
        # the one Gaussian kernel sampler (same draws as before: one standard normal array)
        return orthogonal.gaussian_kernel(shape, sigma_w2, v=_profile(v, shape[2:]), rng=rng)
    return np.asarray(getattr(orthogonal, kind)(shape, sigma_w2, rng=rng), dtype=np.float64)


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


def gaussian_inputs(gram, spatial_shape, channels, *, rng=None):
    r"""Random inputs whose channel-averaged Gram matrix is *exactly* a given matrix.

    Returns ``x`` of shape ``(batch, *spatial, channels)`` with
    ``x_a(alpha) . x_b(alpha') / channels = gram[(a, alpha), (b, alpha')]`` to rounding: the rows
    are ``sqrt(channels) L Q`` with ``L`` a Cholesky (or eigen) factor of `gram` and ``Q``
    Haar-random orthonormal rows. The first layer's pre-activation covariance is then exactly
    ``sigma_w2 A * gram + sigma_b2`` in expectation, with no input noise in the comparison.

    Parameters
    ----------
    gram : array_like, shape ``(batch, *spatial, batch, *spatial)`` or ``(batch*P, batch*P)``
        Positive semi-definite target Gram matrix.
    spatial_shape : tuple of int
        Grid shape ``(*spatial,)``.
    channels : int
        Number of input channels, at least ``batch * prod(spatial)``.
    rng : None, int or numpy.random.Generator

    Returns
    -------
    ndarray, shape ``(batch, *spatial, channels)``

    Examples
    --------
    >>> g = np.array([[1.0, 0.5], [0.5, 1.0]])  # two inputs of one pixel
    >>> x = gaussian_inputs(g, (1,), 8, rng=0)
    >>> x.shape
    (2, 1, 8)
    >>> bool(np.allclose(np.einsum("api,bpi->ab", x, x) / 8, g))
    True
    """
    rng = V.make_rng(rng)
    spatial_shape = tuple(int(n) for n in np.atleast_1d(spatial_shape))
    p = int(np.prod(spatial_shape))
    g = np.asarray(gram, dtype=np.float64)
    m = int(round(np.sqrt(g.size)))
    if m * m != g.size or m % p:
        raise ValueError(f"`gram` must have (batch*P)^2 entries with P = {p}; got shape {g.shape}")
    g = g.reshape(m, m)
    if not np.allclose(g, g.T, atol=1e-12 * max(1.0, np.abs(g).max())):
        raise ValueError("`gram` must be symmetric")
    channels = V.as_int(channels, "channels", low=m)
    w, u = np.linalg.eigh(g)
    if w.min() < -1e-10 * max(1.0, w.max()):
        raise ValueError(
            f"`gram` must be positive semi-definite; smallest eigenvalue {w.min():.3g}"
        )
    factor = u * np.sqrt(np.clip(w, 0.0, None))
    q = orthogonal.haar_orthogonal(channels, m, rng)  # the one Haar sampler
    x = np.sqrt(channels) * factor @ q.T
    return x.reshape((m // p,) + spatial_shape + (channels,))


# --------------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------------


@dataclass
class _Net:
    act: object
    sigma_w2: float
    sigma_b2: float
    width: int
    kernel: object
    v: object
    kshape: tuple

    def layer(self, c_in, rng):
        w = sample_kernel(
            self.kernel, (self.width, c_in) + self.kshape, self.sigma_w2, v=self.v, rng=rng
        )
        b = rng.standard_normal(self.width) * np.sqrt(self.sigma_b2)
        return _Conv(w), b

    def forward(self, x, depth, rng, hook, keep=False, interrupt=None):
        """Stream `x` through `depth` layers; ``hook(l, h)`` sees each pre-activation."""
        layers = []
        a = x
        rows = x.size // x.shape[-1]
        flops = 2.0 * rows * int(np.prod(self.kshape)) * max(x.shape[-1], self.width) * self.width
        with _blas_threads(flops):  # small problems (and their hooks) on one BLAS thread
            for layer in range(1, depth + 1):
                conv, b = self.layer(a.shape[-1], rng)
                h = conv(a)
                h += b
                hook(layer, h)
                if keep:
                    layers.append((conv, self.act.dphi(h)))
                if layer < depth:
                    a = self.act.phi(h)
                if interrupt is not None:
                    interrupt()
        return layers


def _make_net(act, sigma_w2, sigma_b2, width, kernel, v, kernel_size, ndim):
    act = get_activation(act)
    sw = V.as_float(sigma_w2, "sigma_w2", low=0.0, low_open=True)
    sb = V.as_float(sigma_b2, "sigma_b2", low=0.0)
    width = V.as_int(width, "width", low=1)
    if not callable(kernel):
        V.as_choice(kernel, "kernel", _KERNEL_KINDS)
    if isinstance(kernel_size, numbers.Integral) and not isinstance(kernel_size, bool):
        kshape = (int(kernel_size),) * ndim
    else:
        kshape = tuple(int(k) for k in kernel_size)
    if len(kshape) != ndim or min(kshape) < 1:
        raise ValueError(
            f"`kernel_size` must be a positive int or {ndim} positive ints; got {kernel_size!r}"
        )
    if kernel == "gaussian":
        _profile(v, kshape)  # validate early
    return _Net(act, sw, sb, width, kernel, v, kshape)


def _check_grid(grid, kshape):
    for n, k in zip(grid, kshape):
        if k > n:
            raise ValueError(f"`kernel_size` {kshape} must not exceed the grid {tuple(grid)}")


# --------------------------------------------------------------------------------------------
# helpers of the estimators
# --------------------------------------------------------------------------------------------


def _progress(progress, total):
    return progress_callback(progress, total, leave=False)[0]


def _status(*arrays):
    ok = all(np.isfinite(np.asarray(a)).all() for a in arrays)
    return int(Status.OK if ok else Status.NONFINITE)


def _mean_se(samples, axis=0):
    samples = np.asarray(samples)
    n = samples.shape[axis]
    mean = samples.mean(axis=axis)
    if n < 2:
        return mean, np.full(mean.shape, np.nan)
    return mean, samples.std(axis=axis, ddof=1) / np.sqrt(n)


def _check_x(x):
    x = V.as_float_array(x, "x")
    if x.ndim < 3 or x.ndim > 5:
        raise ValueError(
            f"`x` must have shape (batch, *spatial, channels) with 1 to 3 spatial "
            f"axes; got shape {x.shape}"
        )
    return np.ascontiguousarray(x)
