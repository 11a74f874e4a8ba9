r"""Monte Carlo on a torch-free numpy CNN: the reference every prediction is checked against.

A vanilla convolutional network with circular padding, in 1D or 2D (3D works too), with any
kernel generator, any registered activation and biases:

.. math::

    h^{l}_j(\alpha) = \sum_i \sum_{\beta} \omega^{l}_{ij}(\beta)\, x^{l-1}_i(\alpha + \beta)
    + b^{l}_j, \qquad x^{l} = \phi(h^{l}), \qquad x^0 = x \text{ (the raw input)},

with positions taken modulo the grid, tap offsets ``beta = t - (k - 1) // 2`` for tap index
``t`` (the centre convention of :func:`cnnmft.fourier.kernel_offsets`), Gaussian kernels
``Var omega_ij(beta) = sigma_w2 v_beta / c_in`` and biases ``N(0, sigma_b2)`` shared by all
positions ([1]_, Section 2.1). Arrays are channels-last: an input batch has shape
``(batch, *spatial, channels)``; kernels are ``(c_out, c_in, *k)`` as everywhere in cnnmft.

A batch is streamed through the layers one at a time: only the current layer is held in memory;
the statistics asked for are recorded on the way. Every estimate carries a standard error: over
independent network draws when ``n_draws >= 2``, otherwise over the channels of the one draw
(channels are conditionally i.i.d. given the previous layer).

The convolution is one GEMM over shifted copies of the input (im2col into a reused buffer, the
circular shift done with two slice copies per axis), so for ``c >= 128`` channels it runs at
close to the machine's matrix-multiply throughput (``benchmarks/bench_conv.py``).

References
----------
.. [1] L. Xiao, Y. Bahri, J. Sohl-Dickstein, S. Schoenholz, J. Pennington, "Dynamical Isometry
   and a Mean Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural
   Networks", ICML 2018, arXiv:1806.05393.
.. [2] J. Pennington, S. Schoenholz, S. Ganguli, "Resurrecting the sigmoid in deep learning
   through dynamical isometry", NeurIPS 2017, arXiv:1711.04735.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import numbers
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import LinearOperator, svds

from cnnmft import _validation as V
from cnnmft import orthogonal
from cnnmft._util import blas_threads, progress_callback
from cnnmft.activations import get_activation
from cnnmft.fourier import kernel_offsets, kernel_profile
from cnnmft.results import ResultMixin, Status

__all__ = [
    "circular_conv",
    "sample_kernel",
    "gaussian_inputs",
    "simulate",
    "Simulation",
    "mode_decay",
    "ModeDecay",
    "jacobian_singular_values",
    "JacobianSample",
]

_KERNEL_KINDS = ("gaussian", "delta_orthogonal", "block_orthogonal")


# --------------------------------------------------------------------------------------------
# convolution
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
    return contextlib.nullcontext() if flops >= _SMALL_GEMM_FLOPS else blas_threads(1)


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
    kernel = np.asarray(kernel, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if kernel.ndim < 3 or kernel.ndim > 5:
        raise ValueError(
            f"`kernel` must have shape (c_out, c_in, *k) with 1 to 3 spatial axes; "
            f"got shape {kernel.shape}"
        )
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
    q, r = np.linalg.qr(rng.standard_normal((channels, m)))
    q = q * np.sign(np.diag(r))
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


@dataclass(frozen=True)
class Simulation(ResultMixin):
    r"""Statistics of pre-activations ``h^l`` (``l = 1..depth``) of a numpy CNN.

    All ``*_stderr`` fields are standard errors of the mean next to them: over network draws when
    ``n_draws >= 2``, otherwise over channels (delta method for ratios).

    Attributes
    ----------
    q, q_stderr : ndarray, shape ``(depth, batch)``
        :math:`q^l_a = \frac{1}{c P}\sum_{j,\alpha} h^l_{aj}(\alpha)^2`, the variance averaged
        over channels and positions.
    q_pos, q_pos_stderr : ndarray, shape ``(depth, batch, *spatial)``
        Per-position variance :math:`\frac1c \sum_j h^l_{aj}(\alpha)^2`.
    c, c_stderr : ndarray, shape ``(depth, batch, batch)``
        Correlation between inputs :math:`c^l_{ab} = G_{ab}/\sqrt{G_{aa}G_{bb}}` with
        :math:`G_{ab} = \frac{1}{cP}\sum_{j,\alpha} h_{aj}(\alpha) h_{bj}(\alpha)` (a ratio of
        means within each draw, then averaged over draws).
    cov_layers : ndarray of int, shape ``(n_cov,)``
        Layers at which the full covariance was recorded.
    cov, cov_stderr : ndarray, shape ``(n_cov, batch, *spatial, *spatial)``
        :math:`\hat\Sigma^l_{a;\alpha\alpha'} = \frac1c\sum_j h^l_{aj}(\alpha)h^l_{aj}(\alpha')`.
    q_draws : ndarray, shape ``(n_draws, depth, batch)``
        ``q`` of every draw.
    n_draws, width : int
    status : int
        :class:`cnnmft.Status`: OK, or NONFINITE when activations overflowed (the affected
        statistics are inf or NaN).
    """

    q: np.ndarray
    q_stderr: np.ndarray
    q_pos: np.ndarray
    q_pos_stderr: np.ndarray
    c: np.ndarray
    c_stderr: np.ndarray
    cov_layers: np.ndarray
    cov: np.ndarray
    cov_stderr: np.ndarray
    q_draws: np.ndarray
    n_draws: int
    width: int
    status: int = 0


def _check_x(x, ndim_hint=None):
    x = V.as_float_array(x, "x")
    if x.ndim < 3 or x.ndim > 5:
        raise ValueError(
            f"`x` must have shape (batch, *spatial, channels) with 1 to 3 spatial "
            f"axes; got shape {x.shape}"
        )
    return np.ascontiguousarray(x)


def simulate(
    x,
    act,
    sigma_w2,
    sigma_b2,
    depth,
    *,
    width,
    kernel="gaussian",
    v="uniform",
    kernel_size=3,
    n_draws=4,
    cov_layers=(),
    rng=None,
    progress=None,
):
    r"""Stream a batch through random numpy CNNs and estimate ``q^l``, ``c^l`` and ``Sigma^l``.

    Each of `n_draws` networks is drawn afresh (kernels from `kernel`, biases
    ``N(0, sigma_b2)``); the batch passes through it one layer at a time, so memory is one
    layer's activations plus the recorded statistics.

    Mean-field prediction: :math:`\Sigma^{l+1} = \mathcal A_v \star C(\Sigma^l)`,
    :math:`\Sigma^1 = \sigma_w^2 \mathcal A_v \star (x x^T / c_{in}) + \sigma_b^2` ([1]_, eq. 2.5),
    which the statistics converge to as ``width -> inf``.

    Parameters
    ----------
    x : array_like, shape ``(batch, *spatial, c_in)``
        Inputs, channels last (layer 1 acts on them directly).
    act : str or Activation
    sigma_w2 : float
        Weight variance ``> 0`` (``Var omega = sigma_w2 v_beta / c_in``).
    sigma_b2 : float
        Bias variance ``>= 0``.
    depth : int
        Number of convolution layers ``>= 1``.
    width : int
        Channels of every hidden layer.
    kernel : {"gaussian", "delta_orthogonal", "block_orthogonal"} or callable
        Kernel generator (see :func:`sample_kernel`).
    v : str or array_like
        Variance profile for Gaussian kernels.
    kernel_size : int or tuple of int
        Kernel size per spatial axis.
    n_draws : int
        Independent networks (``>= 1``).
    cov_layers : sequence of int
        Layers (1..depth) at which to record the full pixel-pair covariance.
    rng : None, int or numpy.random.Generator
    progress : None, True or callable
        ``True`` shows a tqdm bar; a callable is called as ``progress(done, total)`` after each
        layer (it may raise to interrupt).

    Returns
    -------
    Simulation

    Examples
    --------
    >>> x = np.ones((1, 4, 16))
    >>> s = simulate(x, "erf", 1.5, 0.1, depth=3, width=64, n_draws=2, rng=0)
    >>> s.q.shape
    (3, 1)
    """
    x = _check_x(x)
    depth = V.as_int(depth, "depth", low=1)
    n_draws = V.as_int(n_draws, "n_draws", low=1)
    ndim = x.ndim - 2
    net = _make_net(act, sigma_w2, sigma_b2, width, kernel, v, kernel_size, ndim)
    for n, k in zip(x.shape[1:-1], net.kshape):
        if k > n:
            raise ValueError(f"`kernel_size` {net.kshape} must not exceed the grid {x.shape[1:-1]}")
    cov_layers = np.array(
        sorted(set(int(V.as_int(int(lay), "cov_layers", low=1, high=depth)) for lay in cov_layers)),
        dtype=np.int64,
    )
    rng = V.make_rng(rng)
    B, sp = x.shape[0], x.shape[1:-1]
    P = int(np.prod(sp))
    c = net.width
    cb = _progress(progress, n_draws * depth)

    q_pos = np.empty((n_draws, depth, B) + sp)
    q_pos_var = np.empty((depth, B) + sp)
    q_chan_se = np.empty((depth, B))
    gram_c = np.empty((n_draws, depth, B, B))
    c_chan_se = np.empty((depth, B, B))
    cov = np.empty((n_draws, len(cov_layers), B, P, P))
    cov_chan_se = np.empty((len(cov_layers), B, P, P))
    rec = {int(lay): i for i, lay in enumerate(cov_layers)}
    done = [0]

    for r in range(n_draws):

        def hook(lay, h, r=r):
            hf = h.reshape(B, P, c)
            h2 = hf * hf
            q_pos[r, lay - 1] = (h2.mean(axis=2)).reshape((B,) + sp)
            g_chan = np.einsum("apj,bpj->jab", hf, hf) / P  # (c, B, B)
            g = g_chan.mean(axis=0)
            d = np.sqrt(np.diag(g))
            gram_c[r, lay - 1] = g / np.outer(d, d)
            if r == 0:
                q_pos_var[lay - 1] = (h2.var(axis=2, ddof=1) / c).reshape((B,) + sp)
                qc = np.diagonal(g_chan, axis1=1, axis2=2)  # (c, B)
                q_chan_se[lay - 1] = qc.std(axis=0, ddof=1) / np.sqrt(c)
                # delta method for c_ab = g_ab / sqrt(g_aa g_bb)
                dg = np.diag(g)
                infl = g_chan / np.outer(d, d) - 0.5 * gram_c[r, lay - 1] * (
                    qc[:, :, None] / dg[:, None] + qc[:, None, :] / dg[None, :]
                )
                c_chan_se[lay - 1] = infl.std(axis=0, ddof=1) / np.sqrt(c)
            if lay in rec:
                i = rec[lay]
                cov[r, i] = hf @ hf.transpose(0, 2, 1) / c
                if r == 0:
                    m2 = h2 @ h2.transpose(0, 2, 1) / c
                    cov_chan_se[i] = np.sqrt(np.clip(m2 - cov[r, i] ** 2, 0, None) / c)
            done[0] += 1
            if cb is not None:
                cb(done[0], n_draws * depth)

        net.forward(x, depth, rng, hook)

    q_draws = q_pos.reshape(n_draws, depth, B, P).mean(axis=-1)
    if n_draws >= 2:
        q_m, q_se = _mean_se(q_draws)
        qp_m, qp_se = _mean_se(q_pos)
        c_m, c_se = _mean_se(gram_c)
        cov_m, cov_se = _mean_se(cov)
    else:
        q_m, q_se = q_draws[0], q_chan_se
        qp_m, qp_se = q_pos[0], np.sqrt(q_pos_var)
        c_m, c_se = gram_c[0], c_chan_se
        cov_m, cov_se = cov[0], cov_chan_se
    cshape = (len(cov_layers), B) + sp + sp
    return Simulation(
        q=q_m,
        q_stderr=q_se,
        q_pos=qp_m,
        q_pos_stderr=qp_se,
        c=c_m,
        c_stderr=c_se,
        cov_layers=cov_layers,
        cov=cov_m.reshape(cshape),
        cov_stderr=cov_se.reshape(cshape),
        q_draws=q_draws,
        n_draws=n_draws,
        width=c,
        status=_status(q_draws, gram_c, cov),
    )


# --------------------------------------------------------------------------------------------
# per-mode decay of an injected perturbation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModeDecay(ResultMixin):
    r"""Decay, layer by layer, of a perturbation injected in chosen spatial Fourier modes.

    Attributes
    ----------
    modes : ndarray of int, shape ``(n_modes, d)``
        The frequencies ``f`` (one row per mode).
    kind : str
        ``"c"`` (off-diagonal, displacement ``delta != 0``; theory rate ``chi_c* lam_f``) or
        ``"q"`` (diagonal ``delta = 0``; theory rate ``chi_q* lam_f``).
    amplitude, amplitude_stderr : ndarray, shape ``(depth, n_modes)``
        Projection of the covariance difference (perturbed minus base input, same network) on
        the injected pattern, normalised to 1 at the input (layer 0 of the Gram matrix).
    rate, rate_stderr : ndarray, shape ``(n_modes,)``
        Least-squares per-layer multiplier ``r`` in ``a^{l+1} = r a^l`` over ``fit_layers``,
        fitted per draw and averaged over draws (stderr across draws).
    fit_layers : ndarray of int, shape ``(n_modes, 2)``
        First and last layer used in each mode's fit.
    n_draws, width : int
    status : int
        :class:`cnnmft.Status`: OK or NONFINITE.
    """

    modes: np.ndarray
    kind: str
    amplitude: np.ndarray
    amplitude_stderr: np.ndarray
    rate: np.ndarray
    rate_stderr: np.ndarray
    fit_layers: np.ndarray
    n_draws: int
    width: int
    status: int = 0


def _mode_pattern(spatial_shape, f):
    grid = np.meshgrid(*[np.arange(n) for n in spatial_shape], indexing="ij")
    phase = sum(2 * np.pi * fa * g / n for fa, g, n in zip(f, grid, spatial_shape))
    return np.cos(phase).ravel()


def _diag_dft(m, spatial_shape):
    """``E[delta, f] = sum_alpha m[alpha, alpha+delta] exp(-2 pi i f alpha / n)`` (d-dim)."""
    P = int(np.prod(spatial_shape))
    idx = np.arange(P).reshape(spatial_shape)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in spatial_shape], indexing="ij"), -1)
    out = np.empty((P,) + tuple(spatial_shape), dtype=np.complex128)
    for dflat in range(P):
        delta = np.unravel_index(dflat, spatial_shape)
        tgt = idx[
            tuple((grid[..., a] + delta[a]) % spatial_shape[a] for a in range(len(spatial_shape)))
        ]
        e = m[idx.ravel(), tgt.ravel()].reshape(spatial_shape)
        out[dflat] = np.fft.fftn(e)
    return out.reshape(P, P)  # (delta, f) flattened


def mode_decay(
    act,
    sigma_w2,
    sigma_b2,
    depth,
    spatial_shape,
    *,
    q_star,
    c_star,
    modes,
    width,
    kind="c",
    eps=0.2,
    kernel="gaussian",
    v="uniform",
    kernel_size=3,
    n_draws=4,
    fit_layers=None,
    rng=None,
    progress=None,
):
    r"""Measure the per-layer decay of a covariance perturbation in given spatial Fourier modes.

    Two inputs go through the *same* network (common random numbers): a base input whose first
    layer sits at the fixed point, :math:`\Sigma^1 = q^*[(1-c^*) I + c^* 1 1^T]`, and a perturbed
    one whose input Gram matrix differs by a pattern in mode ``f``:

    * ``kind="c"``: off-diagonal entries ``g a(alpha) a(alpha')`` with
      ``a(alpha) = 1 + eps cos(2 pi <f, alpha>/n)`` and the diagonal unchanged;
    * ``kind="q"``: the diagonal is multiplied by ``1 + eps cos(2 pi <f, alpha>/n)``.

    The difference of the empirical covariances, projected on the input pattern in the
    diagonal-direction Fourier basis (displacements ``delta != 0`` for ``"c"``, ``delta = 0`` for
    ``"q"``), decays in the linear regime by :math:`\chi_{c^*}\lambda_f` resp.
    :math:`\chi_{q^*}\lambda_f` per layer ([1]_, Section 2.4 / eq. 2.10), with
    :math:`\lambda_f` the DFT of ``v``.

    Parameters
    ----------
    act, sigma_w2, sigma_b2 : see :func:`simulate`
    depth : int
        Layers to simulate.
    spatial_shape : int or tuple of int
        Grid.
    q_star, c_star : float
        The fixed point (e.g. from :func:`cnnmft.fixed_point`) used to place the base input; in
        the ordered phase (``c* = 1``) use a ``c_star`` a little below 1 only with care: the
        measured rate then also drifts with ``c^l``.
    modes : sequence of int or of tuples
        Frequencies ``f`` (ints for 1D).
    width : int
        Channels; the inputs have ``max(width, 2 P)`` channels.
    kind : {"c", "q"}
    eps : float
        Perturbation size (keep it small for the linear regime).
    kernel, v, kernel_size : see :func:`simulate`
    n_draws : int
        Independent networks; at least 2 for a standard error.
    fit_layers : (int, int) or array of shape (n_modes, 2), optional
        Layer range for the rate fit (default ``(1, depth)``), one for all modes or one per mode
        (fit only where the amplitude is well above the noise: the least-squares ratio is
        biased towards 0 once noise dominates).
    rng, progress : see :func:`simulate`

    Returns
    -------
    ModeDecay
    """
    spatial_shape = tuple(int(n) for n in np.atleast_1d(spatial_shape))
    d = len(spatial_shape)
    P = int(np.prod(spatial_shape))
    depth = V.as_int(depth, "depth", low=2)
    n_draws = V.as_int(n_draws, "n_draws", low=1)
    V.as_choice(kind, "kind", ("c", "q"))
    net = _make_net(act, sigma_w2, sigma_b2, width, kernel, v, kernel_size, d)
    qs = V.as_float(q_star, "q_star", low=0.0, low_open=True)
    cs = V.as_float(c_star, "c_star", low=-1.0, high=1.0)
    eps = V.as_float(eps, "eps", low=0.0, low_open=True)
    modes = [tuple(np.atleast_1d(m).astype(int)) for m in modes]
    for m in modes:
        if len(m) != d:
            raise ValueError(f"`modes` entries must have {d} components; got {m}")
    fit = np.array((1, depth) if fit_layers is None else fit_layers, dtype=np.int64)
    fit = np.broadcast_to(fit, (len(modes), 2)).copy() if fit.ndim == 1 else fit
    if fit.shape != (len(modes), 2) or not (
        (1 <= fit[:, 0]).all() and (fit[:, 0] < fit[:, 1]).all() and (fit[:, 1] <= depth).all()
    ):
        raise ValueError(
            "`fit_layers` must be (first, last) or one such pair per mode with "
            f"1 <= first < last <= depth = {depth}; got {fit_layers!r}"
        )
    rng = V.make_rng(rng)
    sw, sb = net.sigma_w2, net.sigma_b2
    q_in = (qs - sb) / sw
    if q_in <= 0:
        raise ValueError("`q_star` must exceed `sigma_b2` (the input variance would be negative)")
    g_in = (qs * cs - sb) / (qs - sb)  # input correlation giving Sigma^1 = Sigma*
    base = q_in * ((1 - g_in) * np.eye(P) + g_in * np.ones((P, P)))
    channels = max(net.width, 2 * P)
    amps = np.zeros((n_draws, depth, len(modes)))
    cb = _progress(progress, n_draws * len(modes) * depth)
    done = [0]
    for im, f in enumerate(modes):
        pat = _mode_pattern(spatial_shape, f)
        if kind == "c":
            if not 0 < g_in < 1:
                raise ValueError("kind='c' needs 0 < c_star < 1 at the input (chaotic phase)")
            a = np.sqrt(g_in) * (1 + eps * pat)
            if np.max(a * a) >= 1:
                raise ValueError("`eps` too large: the perturbed Gram matrix is not valid")
            pert = q_in * (np.diag(1 - a * a) + np.outer(a, a))
        else:
            if eps >= 1 - g_in:
                raise ValueError("`eps` too large for kind='q' (needs eps < 1 - input corr)")
            pert = base + q_in * eps * np.diag(pat)
        dg = pert - base
        proj = _diag_dft(dg, spatial_shape)
        sel = np.ones(P, dtype=bool)
        if kind == "c":
            sel[0] = False
        else:
            sel[:] = False
            sel[0] = True
        fidx = np.ravel_multi_index(tuple(fa % n for fa, n in zip(f, spatial_shape)), spatial_shape)
        w = proj[sel, fidx]
        norm = float(np.real(np.vdot(w, w)))
        for r in range(n_draws):
            gram = np.zeros((2, P, 2, P))
            gram[0, :, 0, :] = base
            gram[1, :, 1, :] = pert
            # the two inputs share their noise: same orthonormal rows for both
            qrow = gaussian_inputs(np.eye(P), spatial_shape, channels, rng=rng)
            qrow = qrow.reshape(P, channels) / np.sqrt(channels)
            fb = np.linalg.cholesky(base + 1e-14 * np.eye(P))
            fp = np.linalg.cholesky(pert + 1e-14 * np.eye(P))
            x = np.sqrt(channels) * np.stack([fb @ qrow, fp @ qrow])
            x = x.reshape((2,) + spatial_shape + (channels,))

            def hook(lay, h, r=r, im=im, w=w, fidx=fidx, sel=sel, norm=norm):
                hf = h.reshape(2, P, -1)
                diff = (hf[1] @ hf[1].T - hf[0] @ hf[0].T) / hf.shape[-1]
                e = _diag_dft(diff, spatial_shape)[sel, fidx]
                amps[r, lay - 1, im] = np.real(np.vdot(w, e)) / norm
                done[0] += 1
                if cb is not None:
                    cb(done[0], n_draws * len(modes) * depth)

            net.forward(x, depth, rng, hook)
    rates = np.empty((n_draws, len(modes)))
    for im in range(len(modes)):
        a0, a1 = fit[im, 0] - 1, fit[im, 1] - 1
        num = (amps[:, a0 + 1 : a1 + 1, im] * amps[:, a0:a1, im]).sum(axis=1)
        den = (amps[:, a0:a1, im] ** 2).sum(axis=1)
        rates[:, im] = num / den
    amp_m, amp_se = _mean_se(amps)
    rate_m, rate_se = _mean_se(rates)
    return ModeDecay(
        modes=np.array(modes, dtype=np.int64),
        kind=kind,
        amplitude=amp_m,
        amplitude_stderr=amp_se,
        rate=rate_m,
        rate_stderr=rate_se,
        fit_layers=fit,
        n_draws=n_draws,
        width=net.width,
        status=_status(amps, rates),
    )


# --------------------------------------------------------------------------------------------
# input-output Jacobian
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JacobianSample(ResultMixin):
    r"""Singular values of the input-output Jacobian ``J = dx^L/dx^0 = prod_l D^l W^l``.

    Attributes
    ----------
    method : str
        ``"exact"`` or ``"stochastic"``.
    eigenvalues : ndarray, shape ``(n_draws, N)`` (exact) or ``(0,)``
        All eigenvalues of ``J^T J`` (``N = P c_in``), ascending, per draw.
    m1, m1_stderr : float
        Mean eigenvalue of ``J J^T`` (normalised trace), mean over draws and its stderr
        (stochastic: Hutchinson estimate; stderr over draws and probes).
    m2, m2_stderr : float
        Second moment ``tr((J^T J)^2)/N``.
    var, var_stderr : float
        Spectral variance ``m2 - m1^2`` per draw, averaged over draws.
    top, top_stderr : ndarray, shape ``(n_top,)``
        Largest singular values (descending), mean over draws and stderr.
    top_draws : ndarray, shape ``(n_draws, n_top)``
    n_draws, width : int
    status : int
        :class:`cnnmft.Status`: OK or NONFINITE.
    """

    method: str
    eigenvalues: np.ndarray
    m1: float
    m1_stderr: float
    m2: float
    m2_stderr: float
    var: float
    var_stderr: float
    top: np.ndarray
    top_stderr: np.ndarray
    top_draws: np.ndarray
    n_draws: int
    width: int
    status: int = 0


def _jvp(layers, t):
    for conv, dphi in layers:
        t = conv(t)
        t *= dphi
    return t


def _vjp(layers, u):
    for conv, dphi in reversed(layers):
        u = u * dphi
        u = conv(u, transpose=True)
    return u


def jacobian_singular_values(
    act,
    sigma_w2,
    sigma_b2,
    depth,
    spatial_shape=(1,),
    *,
    width,
    q_input=1.0,
    kernel="gaussian",
    v="uniform",
    kernel_size=3,
    n_draws=4,
    method="exact",
    n_probes=32,
    n_top=4,
    rng=None,
    progress=None,
):
    r"""Sample the singular values of a numpy CNN's input-output Jacobian.

    The network has ``width`` channels in every layer including the input, and is evaluated at
    one random input whose every pixel has ``sigma_w2 |x(alpha)|^2 / c + sigma_b2 = q_input``
    exactly (use ``q_input = q*`` to sit at the fixed point, as the free-probability theory
    assumes, [2]_). ``spatial_shape=(1,)`` with ``kernel_size=1`` is a fully connected network.

    * ``method="exact"``: the full Jacobian is built by pushing all ``N = P c`` basis tangents
      forward (``N`` times the cost of a forward pass), and the eigenvalues of ``J^T J`` are
      computed; for ``N`` up to a few thousand.
    * ``method="stochastic"``: for large networks. Moments by Hutchinson's estimator with
      ``n_probes`` Gaussian probes ``z``: ``m1 = E|Jz|^2/N``,
      ``m2 = E|J^T J z|^2/N`` (a forward and a backward pass per probe), and the largest
      singular values by ARPACK (``scipy.sparse.linalg.svds``) on the matrix-free operator.

    Parameters
    ----------
    act, sigma_w2, sigma_b2, depth : see :func:`simulate`
    spatial_shape : int or tuple of int
        Grid; ``(1,)`` (with ``kernel_size=1``) for a fully connected network.
    width : int
        Channels.
    q_input : float
        Pre-activation variance at layer 1 (``> sigma_b2``).
    kernel, v, kernel_size : see :func:`simulate`
    n_draws : int
        Independent networks.
    method : {"exact", "stochastic"}
    n_probes : int
        Probes per draw (stochastic).
    n_top : int
        Number of largest singular values to report.
    rng, progress : see :func:`simulate`

    Returns
    -------
    JacobianSample
    """
    spatial_shape = tuple(int(n) for n in np.atleast_1d(spatial_shape))
    d = len(spatial_shape)
    P = int(np.prod(spatial_shape))
    depth = V.as_int(depth, "depth", low=1)
    n_draws = V.as_int(n_draws, "n_draws", low=1)
    V.as_choice(method, "method", ("exact", "stochastic"))
    net = _make_net(act, sigma_w2, sigma_b2, width, kernel, v, kernel_size, d)
    for n, k in zip(spatial_shape, net.kshape):
        if k > n:
            raise ValueError(f"`kernel_size` {net.kshape} must not exceed the grid {spatial_shape}")
    qin = V.as_float(q_input, "q_input", low=0.0, low_open=True)
    if qin <= net.sigma_b2:
        raise ValueError(f"`q_input` must exceed `sigma_b2` = {net.sigma_b2}; got {qin}")
    n_top = V.as_int(n_top, "n_top", low=1)
    n_probes = V.as_int(n_probes, "n_probes", low=2)
    rng = V.make_rng(rng)
    c = net.width
    N = P * c
    if method == "exact" and N > 8192:
        raise ValueError(
            f"method='exact' builds an N x N matrix with N = P*width = {N}; "
            "use method='stochastic' for N > 8192"
        )
    n_top = min(n_top, N - 1) if method == "stochastic" else min(n_top, N)
    cb = _progress(progress, n_draws)
    eig_all, m1s, m2s, vars_, tops = [], [], [], [], []
    for r in range(n_draws):
        x = rng.standard_normal((1,) + spatial_shape + (c,))
        norm = np.sqrt((x * x).mean(axis=-1, keepdims=True))
        x = x / norm * np.sqrt((qin - net.sigma_b2) / net.sigma_w2)
        layers = net.forward(x, depth, rng, lambda layer, h: None, keep=True)
        if method == "exact":
            jt = np.empty((N, N))  # row n = J e_n
            for s0 in range(0, N, 512):
                s1 = min(N, s0 + 512)
                t = np.zeros((s1 - s0, N))
                t[np.arange(s1 - s0), np.arange(s0, s1)] = 1.0
                jt[s0:s1] = _jvp(layers, t.reshape((s1 - s0,) + spatial_shape + (c,))).reshape(
                    s1 - s0, N
                )
            with _blas_threads(2.0 * N**3):
                ev = np.linalg.eigvalsh(jt @ jt.T)
            ev = np.clip(ev, 0.0, None)
            eig_all.append(ev)
            m1s.append(ev.mean())
            m2s.append((ev**2).mean())
            vars_.append(ev.var())
            tops.append(np.sqrt(ev[::-1][:n_top]))
        else:
            z = rng.standard_normal((n_probes,) + spatial_shape + (c,))
            jz = _jvp(layers, z)
            jtjz = _vjp(layers, jz)
            a1 = (jz * jz).reshape(n_probes, -1).sum(axis=1) / N
            a2 = (jtjz * jtjz).reshape(n_probes, -1).sum(axis=1) / N
            m1s.append(a1)
            m2s.append(a2)
            vars_.append(a2.mean() - a1.mean() ** 2)
            shp = (1,) + spatial_shape + (c,)
            op = LinearOperator(
                (N, N),
                dtype=np.float64,
                matvec=lambda u: _jvp(layers, u.reshape(shp)).ravel(),
                rmatvec=lambda u: _vjp(layers, u.reshape(shp)).ravel(),
            )
            s = svds(
                op, k=n_top, return_singular_vectors=False, random_state=int(rng.integers(2**31))
            )
            tops.append(np.sort(s)[::-1])
        if cb is not None:
            cb(r + 1, n_draws)
    tops = np.array(tops)
    top_m, top_se = _mean_se(tops)
    if method == "exact":
        m1, m1_se = _mean_se(np.array(m1s))
        m2, m2_se = _mean_se(np.array(m2s))
        eigenvalues = np.array(eig_all)
    else:
        a1 = np.array(m1s)  # (draws, probes): per-draw means are independent samples
        a2 = np.array(m2s)
        m1, m1_se = _mean_se(a1.mean(axis=1)) if n_draws > 1 else _mean_se(a1[0])
        m2, m2_se = _mean_se(a2.mean(axis=1)) if n_draws > 1 else _mean_se(a2[0])
        eigenvalues = np.zeros((0,))
    var_m, var_se = _mean_se(np.array(vars_))
    return JacobianSample(
        method=method,
        eigenvalues=eigenvalues,
        m1=float(m1),
        m1_stderr=float(m1_se),
        m2=float(m2),
        m2_stderr=float(m2_se),
        var=float(var_m),
        var_stderr=float(var_se),
        top=top_m,
        top_stderr=top_se,
        top_draws=tops,
        n_draws=n_draws,
        width=c,
        status=_status(tops, np.array(vars_), eigenvalues),
    )
