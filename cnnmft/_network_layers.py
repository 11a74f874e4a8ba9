r"""Layers of a heterogeneous CNN and their geometry (which input pixel feeds which tap).

Every linear layer acts on a ``(B P, B P)`` second-moment matrix through a list of *taps*
``(w_t, E_t)``: ``E_t`` is a sparse ``(P_out, P_in)`` 0/1 selection matrix (one entry per row at
most: output pixel ``alpha`` reads input pixel ``i_t(alpha)``, none where the tap falls on zero
padding), and ``w_t`` its variance weight, so that

.. math:: \Sigma_{out} = \sum_t w_t\, E_t K_{in} E_t^T + \sigma_b^2, \qquad
          G_{in} = \sum_t w_t\, E_t^T G_{out} E_t

(forward second moments, and the adjoint used by back-propagation). Tap offsets follow the one
convention of :func:`cnnmft.fourier.kernel_offsets` (``beta = j - (k - 1) // 2``) for circular
padding; zero padding pads ``k // 2`` cells on both sides as ``torch.nn.Conv2d(padding=k // 2)``;
``"same_tf"`` pads as TensorFlow's ``"SAME"`` (output ``ceil(n / s)``, the odd cell of padding at
the end); ``"valid"`` does not pad.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import scipy.sparse as sp

from cnnmft._validation import as_choice, as_float_array, as_int
from cnnmft.activations import get_activation
from cnnmft.fourier import kernel_offsets, variance_profile

PADDINGS = ("circular", "zero", "valid", "same_tf")


def _ksize(kernel_size, ndim):
    if isinstance(kernel_size, (tuple, list)):
        if len(kernel_size) != ndim:
            raise ValueError(
                f"`kernel_size` {tuple(kernel_size)!r} must have {ndim} entries, one "
                f"per spatial axis"
            )
        return tuple(as_int(k, "kernel_size", low=1) for k in kernel_size)
    return (as_int(kernel_size, "kernel_size", low=1),) * ndim


@dataclasses.dataclass(frozen=True)
class Conv:
    r"""Convolution ``h(alpha) = sum_beta W(beta) x(s alpha + beta) + b``.

    Weights ``N(0, sigma_w2 v_beta / c_in)``, biases ``N(0, sigma_b2)``.

    Attributes
    ----------
    kernel_size : int or tuple of int
        Taps per axis (an int: the same on every axis).
    stride : int or tuple of int
    padding : {"circular", "zero", "valid", "same_tf"}
    sigma_w2, sigma_b2 : float
    v : str or array_like
        Variance profile: a kind of :func:`cnnmft.variance_profile` or an array of the kernel's
        shape (normalised to sum 1).
    t : float, optional
        Parameter of the "tunable" profile.
    """

    kernel_size: object = 3
    stride: object = 1
    padding: str = "zero"
    sigma_w2: float = 1.0
    sigma_b2: float = 0.0
    v: object = "uniform"
    t: object = None

    def profile(self, ndim):
        """Return the variance profile as an array of the kernel shape (sums to 1)."""
        ks = _ksize(self.kernel_size, ndim)
        if isinstance(self.v, str):
            return variance_profile(self.v, ks, t=self.t)
        v = variance_profile(np.asarray(self.v, dtype=np.float64))
        if v.shape != ks:
            raise ValueError(f"`v` has shape {v.shape} but the kernel is {ks}")
        return v


@dataclasses.dataclass(frozen=True)
class Act:
    """Pointwise activation ``x = phi(h)`` (any registered activation name)."""

    name: str = "tanh"


@dataclasses.dataclass(frozen=True)
class AvgPool:
    """Average pooling over ``window`` cells with ``stride`` (default ``window``), no padding."""

    window: object = 2
    stride: object = None


@dataclasses.dataclass(frozen=True)
class GlobalAvgPool:
    """Average over every spatial position (output: one position)."""


@dataclasses.dataclass(frozen=True)
class Dense:
    r"""Fully connected readout over all channels and positions (a flatten, then a dense layer).

    Weights ``N(0, sigma_w2 / (c_in P))`` over the ``c_in P`` inputs, biases
    ``N(0, sigma_b2)``: ``Sigma_out = sigma_w2 mean_alpha K(alpha, alpha) + sigma_b2``. After a
    :class:`GlobalAvgPool` (``P = 1``) it is the usual linear readout.
    """

    sigma_w2: float = 1.0
    sigma_b2: float = 0.0


def axis_geometry(n, k, s, padding):
    """Return ``(n_out, idx, mask)`` on one axis: tap j of output alpha reads idx[alpha, j]."""
    if padding == "circular":
        n_out = -(-n // s)
        before = (k - 1) // 2
    elif padding == "zero":
        before = k // 2
        n_out = (n + 2 * before - k) // s + 1
    elif padding == "same_tf":
        n_out = -(-n // s)
        before = max((n_out - 1) * s + k - n, 0) // 2
    else:
        before = 0
        n_out = (n - k) // s + 1
    if n_out < 1:
        raise ValueError(
            f"a kernel of size {k} with padding {padding!r} and stride {s} does not "
            f"fit the map of size {n} (no output position)"
        )
    off = kernel_offsets(k) + ((k - 1) // 2 - before)
    idx = s * np.arange(n_out)[:, None] + off[None, :]
    if padding == "circular":
        return n_out, idx % n, np.ones(idx.shape, dtype=bool)
    mask = (idx >= 0) & (idx < n)
    return n_out, np.clip(idx, 0, n - 1), mask


def _selection(spatial, geos):
    """Sparse (P_out, P_in) matrices, one per tap (row-major over the kernel axes)."""
    out_shape = tuple(g[0] for g in geos)
    P_out, P_in = int(np.prod(out_shape)), int(np.prod(spatial))
    grids = np.meshgrid(*[np.arange(n) for n in out_shape], indexing="ij")
    mats = []
    for tap in itertools.product(*[range(g[1].shape[1]) for g in geos]):
        ins = [g[1][gr, j] for g, gr, j in zip(geos, grids, tap)]
        ok = np.ones(out_shape, dtype=bool)
        for g, gr, j in zip(geos, grids, tap):
            ok &= g[2][gr, j]
        rows = np.arange(P_out)[ok.ravel()]
        cols = np.ravel_multi_index(tuple(i.ravel()[ok.ravel()] for i in ins), spatial)
        mats.append(sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(P_out, P_in)))
    return out_shape, mats


@dataclasses.dataclass
class Linear:
    """A resolved linear layer: taps, their variance weights, the bias and the shapes."""

    kind: str
    in_shape: tuple
    out_shape: tuple
    mats: list
    weights: np.ndarray
    bias: float
    layer: object

    def _big(self, B, transpose):
        """``kron(I_B, E_t)`` (or its transpose) for every tap, built once per batch size."""
        cache = self.__dict__.setdefault("_cache", {})
        key = (B, transpose)
        if key not in cache:
            eye = sp.identity(B, format="csr")
            cache[key] = [sp.kron(eye, E.T if transpose else E, format="csr") for E in self.mats]
        return cache[key]

    def forward(self, K, B):
        """``sum_t w_t E_t K E_t^T`` (block-diagonal over the B inputs) + bias."""
        return self._apply(K, B, transpose=False) + self.bias

    def adjoint(self, G, B, weights=None):
        """``sum_t w_t E_t^T G E_t``."""
        return self._apply(G, B, transpose=True, weights=weights)

    def tap_products(self, G, K, B):
        """``<G, E_t K E_t^T>`` per input pair and tap: shape (n_taps, B, B)."""
        Po = int(np.prod(self.out_shape))
        out = np.empty((len(self.mats), B, B))
        for i, big in enumerate(self._big(B, False)):
            M = big @ (big @ K).T
            out[i] = np.einsum("apbq,apbq->ab", G.reshape(B, Po, B, Po), M.reshape(B, Po, B, Po))
        return out

    def _apply(self, K, B, transpose, weights=None):
        w = self.weights if weights is None else weights
        n = int(np.prod(self.in_shape if transpose else self.out_shape))
        acc = np.zeros((B * n, B * n))
        for wt, big in zip(w, self._big(B, transpose)):
            if wt == 0.0:
                continue
            acc += wt * (big @ (big @ K).T)
        return acc


def resolve(network, spatial):
    """Check the layer list and resolve every layer's geometry from the input grid ``spatial``."""
    if not isinstance(network, (list, tuple)) or not network:
        raise TypeError(
            "`network` must be a non-empty list of layers (Conv, Act, AvgPool, "
            f"GlobalAvgPool, Dense); got {network!r}"
        )
    d = len(spatial)
    shape = tuple(spatial)
    out = []
    for pos, layer in enumerate(network):
        if isinstance(layer, Conv):
            out.append(_resolve_conv(layer, shape, d))
            shape = out[-1].out_shape
        elif isinstance(layer, Act):
            out.append(("act", get_activation(layer.name), layer))
        elif isinstance(layer, AvgPool):
            out.append(_resolve_pool(layer, shape, d))
            shape = out[-1].out_shape
        elif isinstance(layer, GlobalAvgPool):
            P = int(np.prod(shape))
            M = sp.csr_matrix(np.full((1, P), 1.0 / P))
            out.append(Linear("pool", shape, (1,) * d, [M], np.ones(1), 0.0, layer))
            shape = (1,) * d
        elif isinstance(layer, Dense):
            sw = float(as_float_array(layer.sigma_w2, "sigma_w2", low=0.0, low_open=True))
            sb = float(as_float_array(layer.sigma_b2, "sigma_b2", low=0.0))
            P = int(np.prod(shape))
            mats = [sp.csr_matrix(([1.0], ([0], [i])), shape=(1, P)) for i in range(P)]
            out.append(Linear("dense", shape, (1,) * d, mats, np.full(P, sw / P), sb, layer))
            shape = (1,) * d
        else:
            raise TypeError(
                f"`network[{pos}]` must be a Conv, Act, AvgPool, GlobalAvgPool or "
                f"Dense layer; got {layer!r}"
            )
    return out


def _tuple(value, name, d):
    if isinstance(value, (tuple, list)):
        if len(value) != d:
            raise ValueError(f"`{name}` {tuple(value)!r} must have {d} entries")
        return tuple(as_int(s, name, low=1) for s in value)
    return (as_int(value, name, low=1),) * d


def _resolve_conv(layer, shape, d):
    pad = as_choice(layer.padding, "padding", PADDINGS)
    ks = _ksize(layer.kernel_size, d)
    st = _tuple(layer.stride, "stride", d)
    sw = float(as_float_array(layer.sigma_w2, "sigma_w2", low=0.0, low_open=True))
    sb = float(as_float_array(layer.sigma_b2, "sigma_b2", low=0.0))
    for n, k in zip(shape, ks):
        if pad == "circular" and k > n:
            raise ValueError(f"kernel size {ks} exceeds the map {shape} (circular padding)")
    v = layer.profile(d)
    geos = [axis_geometry(n, k, s, pad) for n, k, s in zip(shape, ks, st)]
    out_shape, mats = _selection(shape, geos)
    return Linear("conv", shape, out_shape, mats, sw * v.ravel(), sb, layer)


def _resolve_pool(layer, shape, d):
    win = _tuple(layer.window, "window", d)
    st = win if layer.stride is None else _tuple(layer.stride, "stride", d)
    geos = [axis_geometry(n, k, s, "valid") for n, k, s in zip(shape, win, st)]
    out_shape, mats = _selection(shape, geos)
    M = sum(mats[1:], mats[0]) * (1.0 / math.prod(win))
    return Linear("pool", shape, out_shape, [M.tocsr()], np.ones(1), 0.0, layer)
