"""The vanilla CNN of Xiao et al. (2018): stem, a deep block of 3x3 tanh convolutions, readout.

No residual connections and no normalisation: trainability at depth comes only from the
initialisation (Delta-orthogonal kernels at the order-chaos critical point). The deep block keeps
all of its kernels in ONE parameter of shape ``(depth, c, c, k, k)`` (and its biases in one of shape
``(depth, c)``), so a 10,000-layer network is two tensors rather than 20,000, per-layer gradient
norms are one reduction, and the forward pass can be cut into activation-checkpointed segments
(memory ~ ``sqrt(depth)``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint

import cnnmft
from cnnmft import _validation as V
from cnnmft.pytorch import init as I

__all__ = ["VanillaCNN", "DeepConvBlock", "critical_variances", "INIT_KINDS", "ACTIVATIONS"]

#: Kernel initialisations of the deep block.
INIT_KINDS = ("delta_orthogonal", "block_orthogonal", "tunable_orthogonal", "gaussian")

#: Activations available in torch (names as in :func:`cnnmft.get_activation`).
ACTIVATIONS = {
    "tanh": torch.tanh,
    "erf": torch.erf,
    "relu": torch.relu,
    "hard_tanh": F.hardtanh,
    "linear": lambda x: x,
}


def critical_variances(act="tanh", q_star=None, depth=None):
    r"""``(sigma_w2, sigma_b2)`` on the critical line ``chi_1 = 1`` with fixed point `q_star`.

    .. math:: \sigma_w^2 = 1/\mathbb E[\phi'(\sqrt{q^*}z)^2],\quad
              \sigma_b^2 = q^* - \sigma_w^2\,\mathbb E[\phi(\sqrt{q^*}z)^2]

    Parameters
    ----------
    act : str
        Activation name.
    q_star : float, optional
        Length fixed point; default ``1 / depth`` (the rule of the authors' demo,
        docs/theory.md §5.1).
    depth : int, optional
        Depth of the deep block, used when `q_star` is None.

    Returns
    -------
    tuple of float
        ``(sigma_w2, sigma_b2)``, computed by :func:`cnnmft.critical_point`.

    Raises
    ------
    ValueError
        If neither `q_star` nor `depth` is given, or the critical line has no point there.

    References
    ----------
    .. [1] Xiao et al. 2018, §2.6 and §5 (q* = 1/L).
    """
    if q_star is None:
        if depth is None:
            raise ValueError("`q_star` or `depth` is needed to choose the critical point")
        q_star = 1.0 / V.as_int(depth, "depth", low=1)
    cp = cnnmft.critical_point(act, q_star)
    sw, sb = float(cp.sigma_w2), float(cp.sigma_b2)
    if int(cp.status) < 0 or not (math.isfinite(sw) and math.isfinite(sb)):
        raise ValueError(
            f"the critical line of {act!r} has no point with q* = {q_star!r} "
            f"(status {int(cp.status)}); give `sigma_w2` and `sigma_b2` explicitly"
        )
    return sw, sb


def _pad_amounts(k):
    # the demo's circular padding: pad before = k // 2, after = k - 1 - k // 2
    before, after = k // 2, k - 1 - k // 2
    return (before, after, before, after)


_aten = torch.ops.aten


def _circular_index(h, w, k, device):
    """Flat indices that circularly pad an ``h x w`` map to ``(h + k - 1) x (w + k - 1)``."""
    before, after = k // 2, k - 1 - k // 2
    r = torch.arange(-before, h + after, device=device) % h
    c = torch.arange(-before, w + after, device=device) % w
    return (r[:, None] * w + c[None, :]).reshape(-1)


class _FusedConvBlock(torch.autograd.Function):
    """tanh deep block as one autograd node: per-segment recomputation, hand-written backward."""

    @staticmethod
    def _layer(x, w, b, pidx, hp, wp):
        B, C, H, W = x.shape
        xp = x.reshape(B, C, H * W).index_select(2, pidx).reshape(B, C, hp, wp)
        return xp, torch.tanh(F.conv2d(xp, w, b))

    @staticmethod
    def run(x, weight, bias):
        k = weight.shape[-1]
        pidx = _circular_index(x.shape[2], x.shape[3], k, x.device)
        hp, wp = x.shape[2] + k - 1, x.shape[3] + k - 1
        for i in range(weight.shape[0]):
            x = _FusedConvBlock._layer(x, weight[i], bias[i], pidx, hp, wp)[1]
        return x

    @staticmethod
    def forward(ctx, x, weight, bias, seg, keep_all):
        k = weight.shape[-1]
        pidx = _circular_index(x.shape[2], x.shape[3], k, x.device)
        hp, wp = x.shape[2] + k - 1, x.shape[3] + k - 1
        saved = []
        for i in range(weight.shape[0]):
            if keep_all or i % seg == 0:
                saved.append(x)
            x = _FusedConvBlock._layer(x, weight[i], bias[i], pidx, hp, wp)[1]
        if keep_all:
            saved.append(x)
        ctx.save_for_backward(weight, bias, pidx, *saved)
        ctx.seg, ctx.keep_all, ctx.geom = seg, keep_all, (hp, wp)
        return x

    @staticmethod
    def backward(ctx, g):
        weight, bias, pidx, *saved = ctx.saved_tensors
        hp, wp = ctx.geom
        L, C = weight.shape[0], weight.shape[1]
        B, _, H, W = g.shape
        seg = L if ctx.keep_all else ctx.seg
        want_w = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        g_w = torch.empty_like(weight) if want_w else None
        g_b = torch.empty_like(bias) if want_w else None
        mask = [True, want_w, want_w]  # a frozen block needs only the input gradient
        for s in reversed(range(0, L, seg)):
            e = min(s + seg, L)
            if ctx.keep_all:
                xs = saved
            else:  # recompute the segment's activations from its saved input
                xs = [saved[s // seg]]
                for i in range(s, e):
                    xs.append(_FusedConvBlock._layer(xs[-1], weight[i], bias[i], pidx, hp, wp)[1])
            for i in reversed(range(s, e)):
                j = i if ctx.keep_all else i - s
                gh = _aten.tanh_backward(g, xs[j + 1])
                xp = xs[j].reshape(B, C, H * W).index_select(2, pidx).reshape(B, C, hp, wp)
                gxp, gw, gb = _aten.convolution_backward(
                    gh, xp, weight[i], [C], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, mask
                )
                if want_w:
                    g_w[i], g_b[i] = gw, gb
                g = g.new_zeros(B, C, H * W).index_add_(2, pidx, gxp.reshape(B, C, -1))
                g = g.reshape(B, C, H, W)
                if not ctx.keep_all:
                    xs[j + 1] = None
        return g, g_w, g_b, None, None


def _tap_matrix(h, w, k, dtype, device):
    """0/1 tensor ``E[p, q, t]`` (flattened to ``(h w h w, k k)``): tap t links output p to q."""
    before = k // 2
    e = torch.zeros(h * w, h * w, k * k, dtype=dtype)
    for r in range(h):
        for c in range(w):
            for dr in range(k):
                for dc in range(k):
                    q = ((r + dr - before) % h) * w + (c + dc - before) % w
                    e[r * w + c, q, dr * k + dc] += 1
    return e.reshape(h * w * h * w, k * k).to(device)


class _DenseBlock(torch.autograd.Function):
    """tanh deep block where each circular convolution is one ``(cHW x cHW)`` matrix product."""

    @staticmethod
    def _matrices(weight, bias, e, P):
        S, C = weight.shape[0], weight.shape[1]
        m = (weight.reshape(S * C * C, -1) @ e.t()).reshape(S, C, C, P, P)
        m = m.permute(0, 1, 3, 2, 4).reshape(S, C * P, C * P)
        return m, bias.repeat_interleave(P, dim=1)

    @staticmethod
    def run(x, weight, bias):
        B, C, H, W = x.shape
        e = _tap_matrix(H, W, weight.shape[-1], x.dtype, x.device)
        xf = x.reshape(B, C * H * W)
        step = 256
        for s in range(0, weight.shape[0], step):
            m, bf = _DenseBlock._matrices(weight[s : s + step], bias[s : s + step], e, H * W)
            for i in range(m.shape[0]):
                xf = torch.tanh(torch.addmm(bf[i], xf, m[i].t()))
        return xf.reshape(B, C, H, W)

    @staticmethod
    def forward(ctx, x, weight, bias, seg, keep_all):
        B, C, H, W = x.shape
        L, P = weight.shape[0], H * W
        e = _tap_matrix(H, W, weight.shape[-1], x.dtype, x.device)
        xf = x.reshape(B, C * P)
        saved = []
        for s in range(0, L, seg):
            m, bf = _DenseBlock._matrices(weight[s : s + seg], bias[s : s + seg], e, P)
            saved.append(xf)
            for i in range(m.shape[0]):
                xf = torch.tanh(torch.addmm(bf[i], xf, m[i].t()))
                if keep_all:
                    saved.append(xf)
        ctx.save_for_backward(weight, bias, e, *saved)
        ctx.seg, ctx.keep_all, ctx.shape = seg, keep_all, (B, C, H, W)
        return xf.reshape(B, C, H, W)

    @staticmethod
    def backward(ctx, g):
        weight, bias, e, *saved = ctx.saved_tensors
        B, C, H, W = ctx.shape
        L, P, k = weight.shape[0], H * W, weight.shape[-1]
        seg = ctx.seg
        g_w, g_b = torch.empty_like(weight), torch.empty_like(bias)
        g = g.reshape(B, C * P)
        for s in reversed(range(0, L, seg)):
            e_ = min(s + seg, L)
            S = e_ - s
            m, bf = _DenseBlock._matrices(weight[s:e_], bias[s:e_], e, P)
            if ctx.keep_all:
                xs = saved[s : e_ + 1]
            else:
                xs = [saved[s // seg]]
                for i in range(S):
                    xs.append(torch.tanh(torch.addmm(bf[i], xs[-1], m[i].t())))
            g_m = torch.empty_like(m)
            g_bf = torch.empty_like(bf)
            for i in reversed(range(S)):
                gh = _aten.tanh_backward(g, xs[i + 1])
                torch.mm(gh.t(), xs[i], out=g_m[i])
                torch.sum(gh, 0, out=g_bf[i])
                g = gh @ m[i]
                xs[i + 1] = None
            g_m = g_m.reshape(S, C, P, C, P).permute(0, 1, 3, 2, 4).reshape(S * C * C, P * P)
            g_w[s:e_] = (g_m @ e).reshape(S, C, C, k, k)
            g_b[s:e_] = g_bf.reshape(S, C, P).sum(2)
        return g.reshape(B, C, H, W), g_w, g_b, None, None


class DeepConvBlock(nn.Module):
    r"""``depth`` layers ``x <- phi(conv(x, W_l) + b_l)`` with ``c`` channels, kernel ``k x k``.

    Parameters
    ----------
    depth : int
        Number of convolution layers.
    channels : int
        Channels ``c`` (in = out).
    kernel_size : int
        Spatial size ``k`` (odd recommended: an even ``k`` with a Delta kernel shifts by one pixel
        per layer under circular padding, docs/theory.md §8.3).
    act : str
        Activation name (see :data:`ACTIVATIONS`).
    padding : {"circular", "zeros"}
        Circular padding is the theory's; zero padding is outside it.
    checkpoint_segments : int, "auto" or None
        Activation checkpointing while training: the layers are cut into this many segments and
        only segment inputs are kept; "auto" uses ``ceil(sqrt(depth))`` segments (memory
        ~ ``sqrt(depth)``, one extra forward pass); None or 0 keeps every activation.
    impl : {"auto", "autograd", "fused", "dense"}
        How the layers run (all compute the same function; tests check they agree to rounding):

        * "autograd": ``F.pad(mode="circular")``, ``conv2d``, phi per layer under autograd, with
          ``torch.utils.checkpoint`` over the segments. Any activation and padding.
        * "fused": one autograd node for the whole block with a hand-written backward
          (``convolution_backward`` per layer, recomputation per segment): no per-layer autograd
          bookkeeping. tanh and circular padding.
        * "dense": as "fused", but each layer is one matrix product with the exact
          ``(c H W) x (c H W)`` matrix of the circular convolution, built per segment from the
          kernels; the fastest choice when ``c H W`` is small (tiny feature maps on a CPU).
        * "auto": "dense" on CPU when ``c H W <= 128``, "fused" on CPU otherwise (tanh,
          circular padding), "autograd" on GPU and for other activations or padding.

    Attributes
    ----------
    weight : Parameter, shape (depth, c, c, k, k)
        Kernels in ``(c_out, c_in, k, k)`` layout per layer.
    bias : Parameter, shape (depth, c)
    """

    def __init__(
        self,
        depth,
        channels,
        kernel_size=3,
        *,
        act="tanh",
        padding="circular",
        checkpoint_segments="auto",
        impl="auto",
    ):
        super().__init__()
        self.depth = V.as_int(depth, "depth", low=0)
        self.impl = V.as_choice(impl, "impl", ("auto", "autograd", "fused", "dense"))
        self.channels = V.as_int(channels, "channels", low=1)
        self.kernel_size = V.as_int(kernel_size, "kernel_size", low=1)
        self.act = V.as_choice(act, "act", tuple(ACTIVATIONS))
        self.padding = V.as_choice(padding, "padding", ("circular", "zeros"))
        if checkpoint_segments not in (None, "auto"):
            checkpoint_segments = V.as_int(checkpoint_segments, "checkpoint_segments", low=0)
        self.checkpoint_segments = checkpoint_segments
        k = self.kernel_size
        self.weight = nn.Parameter(torch.zeros(self.depth, self.channels, self.channels, k, k))
        self.bias = nn.Parameter(torch.zeros(self.depth, self.channels))
        self._phi = ACTIVATIONS[self.act]
        self._pad = _pad_amounts(k)
        if self.impl in ("fused", "dense") and (self.act != "tanh" or self.padding != "circular"):
            raise ValueError(
                f"`impl` = {impl!r} needs act='tanh' and padding='circular' (got "
                f"act={self.act!r}, padding={self.padding!r}); use 'autograd'"
            )

    def extra_repr(self):
        """Return the settings shown by ``repr``."""
        return (
            f"depth={self.depth}, channels={self.channels}, kernel_size={self.kernel_size}, "
            f"act={self.act!r}, padding={self.padding!r}, "
            f"checkpoint_segments={self.checkpoint_segments!r}, impl={self.impl!r}"
        )

    def n_segments(self):
        """Return the number of checkpointed segments used while training (0: none)."""
        s = self.checkpoint_segments
        if s is None or self.depth == 0:
            return 0
        if s == "auto":
            s = math.ceil(math.sqrt(self.depth))
        return min(int(s), self.depth)

    def _run(self, x, start, stop, weight, bias):
        phi, pad = self._phi, self._pad
        mode = "circular" if self.padding == "circular" else "constant"
        for i in range(stop - start):
            x = phi(F.conv2d(F.pad(x, pad, mode=mode), weight[i], bias[i]))
        return x

    def resolved_impl(self, x):
        """Return the implementation :meth:`forward` uses for input `x` (resolves "auto")."""
        if self.impl != "auto":
            return self.impl
        if self.act != "tanh" or self.padding != "circular" or x.device.type != "cpu":
            return "autograd"
        return "dense" if x.shape[1] * x.shape[2] * x.shape[3] <= 128 else "fused"

    def forward(self, x, *, upto=None):
        """Apply the first `upto` layers (default all); input and output ``(B, c, H, W)``."""
        stop = self.depth if upto is None else upto
        if stop == 0:
            return x
        n_seg = self.n_segments()
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        impl = self.resolved_impl(x)
        if impl in ("fused", "dense"):
            w, b = self.weight[:stop], self.bias[:stop]
            seg = math.ceil(stop / n_seg) if n_seg else stop
            fn = _DenseBlock if impl == "dense" else _FusedConvBlock
            if not needs_grad:
                with torch.no_grad():
                    return fn.run(x, w, b)
            return fn.apply(x, w, b, seg, n_seg == 0)
        if n_seg <= 1 or not needs_grad:
            return self._run(x, 0, stop, self.weight, self.bias)
        size = math.ceil(self.depth / n_seg)
        for a in range(0, stop, size):
            b = min(a + size, stop)
            x = _checkpoint(
                self._run, x, a, b, self.weight[a:b], self.bias[a:b], use_reentrant=False
            )
        return x

    @torch.no_grad()
    def grad_norms(self):
        """Frobenius norm of each layer's kernel gradient, shape ``(depth,)`` (NaN if no grad)."""
        if self.weight.grad is None:
            return torch.full((self.depth,), float("nan"))
        return self.weight.grad.flatten(1).norm(dim=1)


class VanillaCNN(nn.Module):
    r"""The paper's vanilla CNN: stem, ``depth`` deep 3x3 convolutions, global pooling, readout.

    .. math::
        h^{l+1} = W^{l+1} \star \phi(h^l) + b^{l+1},\qquad
        W^{l}\ \text{from the chosen initializer at}\ \sigma_w^2,\quad b^l \sim N(0, \sigma_b^2)

    Architecture (docs/theory.md §5.1-5.2):

    * stem: one convolution per entry of `stem_strides` (3x3, zero "SAME" padding, the first maps
      ``in_channels -> channels``), each followed by phi; Gaussian kernels with uniform v at
      ``(sigma_w2, sigma_b2)`` as in the authors' demo. The default strides ``(1, 2, 2)`` take
      28x28 to 7x7 (MNIST) or 32x32 to 8x8 (CIFAR-10); ``(1, 2)`` takes the 8x8 digits to 4x4.
    * deep block (:class:`DeepConvBlock`): `depth` layers with `channels` channels, circular
      padding, phi, kernels from `init`; this is what "depth" counts.
    * global average pooling, then a linear readout ``channels -> num_classes`` with weights
      ``N(0, 1/channels)`` and zero bias.

    Parameters
    ----------
    depth : int
        Layers of the deep block (>= 0).
    channels : int
        Width ``c`` of the stem output and the deep block.
    in_channels, num_classes : int
        Input channels and classes.
    kernel_size : int
        Kernel size of the deep block (3 in the paper).
    init : {"delta_orthogonal", "block_orthogonal", "tunable_orthogonal", "gaussian"}
        Kernel initialisation of the deep block (from :mod:`cnnmft.pytorch.init`).
    sigma_w2, sigma_b2 : float, optional
        Weight and bias variances. Both None (default): the critical point with ``q* = q_star``.
        Only `sigma_b2` given: the critical ``sigma_w2`` for it. Only `sigma_w2`: an error.
    q_star : float, optional
        Fixed point of the default critical point; default ``1 / max(depth, 1)``.
    v : str or array_like
        Variance profile of Gaussian kernels ("uniform", "delta", "binomial", "tunable" or an
        array of shape ``(k, k)`` summing to 1).
    t : float, optional
        Parameter of the tunable family (``init="tunable_orthogonal"`` or ``v="tunable"``).
    act : str
        Activation ("tanh" in the paper).
    padding : {"circular", "zeros"}
        Padding of the deep block.
    stem_strides : tuple of int
        Strides of the stem convolutions (may be empty if ``in_channels == channels``).
    checkpoint_segments : int, "auto" or None
        Activation checkpointing of the deep block (see :class:`DeepConvBlock`).
    impl : {"auto", "autograd", "fused", "dense"}
        Implementation of the deep block (see :class:`DeepConvBlock`).
    readout_scale : float or "1/sqrt(q*)"
        Fixed factor applied to the pooled features before the readout (default 1: the paper's
        network). Deep in the block the activations shrink to the fixed point, std ~ sqrt(q*)
        (0.01 at q* = 1/10,000); "1/sqrt(q*)" brings them back to order one so the readout learns
        at the same speed at every depth. A constant, not a normalisation layer.
    generator : torch.Generator, optional
        Source of all initial random numbers (default: torch's global RNG).

    Attributes
    ----------
    sigma_w2, sigma_b2 : float
        The variances used.
    stem : nn.ModuleList of nn.Conv2d
    block : DeepConvBlock
    readout : nn.Linear

    References
    ----------
    .. [1] L. Xiao, Y. Bahri, J. Sohl-Dickstein, S. Schoenholz, J. Pennington, "Dynamical Isometry
       and a Mean Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural
       Networks", ICML 2018, §2 and §5.

    Examples
    --------
    >>> import torch
    >>> net = VanillaCNN(depth=50, channels=8, stem_strides=(1, 2),
    ...                  generator=torch.Generator().manual_seed(0))
    >>> net(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    >>> round(net.sigma_w2, 4)   # critical point with q* = 1/50
    1.0389
    """

    def __init__(
        self,
        depth,
        channels=16,
        *,
        in_channels=1,
        num_classes=10,
        kernel_size=3,
        init="delta_orthogonal",
        sigma_w2=None,
        sigma_b2=None,
        q_star=None,
        v="uniform",
        t=None,
        act="tanh",
        padding="circular",
        stem_strides=(1, 2, 2),
        checkpoint_segments="auto",
        impl="auto",
        readout_scale=1.0,
        generator=None,
    ):
        super().__init__()
        depth = V.as_int(depth, "depth", low=0)
        channels = V.as_int(channels, "channels", low=1)
        in_channels = V.as_int(in_channels, "in_channels", low=1)
        num_classes = V.as_int(num_classes, "num_classes", low=2)
        self.init = V.as_choice(init, "init", INIT_KINDS)
        act = V.as_choice(act, "act", tuple(ACTIVATIONS))
        stem_strides = tuple(V.as_int(s, "stem_strides", low=1) for s in stem_strides)
        if not stem_strides and in_channels != channels:
            raise ValueError(
                f"`stem_strides` is empty but `in_channels` ({in_channels}) != "
                f"`channels` ({channels}); give at least one stem convolution"
            )
        self.sigma_w2, self.sigma_b2 = self._variances(act, depth, sigma_w2, sigma_b2, q_star)
        self.v, self.t = v, t
        self.act = act
        self.depth, self.channels = depth, channels
        if readout_scale == "1/sqrt(q*)":
            q = q_star if q_star is not None else 1.0 / max(depth, 1)
            readout_scale = 1.0 / math.sqrt(q)
        self.readout_scale = float(
            V.as_float_array(readout_scale, "readout_scale", low=0.0, low_open=True)
        )

        self.stem = nn.ModuleList()
        c_prev = in_channels
        for s in stem_strides:
            self.stem.append(nn.Conv2d(c_prev, channels, 3, stride=s, padding=1))
            c_prev = channels
        self.block = DeepConvBlock(
            depth,
            channels,
            kernel_size,
            act=act,
            padding=padding,
            checkpoint_segments=checkpoint_segments,
            impl=impl,
        )
        self.readout = nn.Linear(channels, num_classes)
        self._phi = ACTIVATIONS[act]
        self.reset_parameters(generator=generator)

    @staticmethod
    def _variances(act, depth, sigma_w2, sigma_b2, q_star):
        if sigma_w2 is not None and sigma_b2 is not None:
            sw = float(V.as_float_array(sigma_w2, "sigma_w2", low=0.0, low_open=True))
            sb = float(V.as_float_array(sigma_b2, "sigma_b2", low=0.0))
            return sw, sb
        if sigma_w2 is not None:
            raise ValueError(
                f"`sigma_w2` = {sigma_w2!r} was given without `sigma_b2`; give both, "
                "or only `sigma_b2` (critical sigma_w2), or neither (critical point "
                "with q* = 1/depth)"
            )
        if sigma_b2 is not None:
            sb = float(V.as_float_array(sigma_b2, "sigma_b2", low=0.0))
            res = cnnmft.critical_sigma_w2(act, sb)
            sw = float(res.sigma_w2)
            if not math.isfinite(sw):
                raise ValueError(f"no critical sigma_w2 for act={act!r}, sigma_b2={sb!r}")
            return sw, sb
        if q_star is not None:
            q_star = float(V.as_float_array(q_star, "q_star", low=0.0, low_open=True))
        return critical_variances(act, q_star=q_star, depth=max(depth, 1))

    @torch.no_grad()
    def reset_parameters(self, generator=None):
        """Draw all weights again (stem, deep block, readout) from `generator`."""
        sw, sb = self.sigma_w2, self.sigma_b2
        sb_std = math.sqrt(sb)
        for conv in self.stem:
            I.gaussian_(conv.weight, sw, "uniform", generator=generator)
            conv.bias.normal_(0.0, 1.0, generator=generator).mul_(sb_std)
        w = self.block.weight
        for layer in range(self.depth):
            if self.init == "delta_orthogonal":
                I.delta_orthogonal_(w[layer], sw, generator=generator)
            elif self.init == "block_orthogonal":
                I.block_orthogonal_(w[layer], sw, generator=generator)
            elif self.init == "tunable_orthogonal":
                I.tunable_orthogonal_(
                    w[layer], sw, 0.25 if self.t is None else self.t, generator=generator
                )
            else:
                v = self.v if isinstance(self.v, str) else np.asarray(self.v, dtype=np.float64)
                I.gaussian_(w[layer], sw, v, t=self.t, generator=generator)
        self.block.bias.normal_(0.0, 1.0, generator=generator).mul_(sb_std)
        self.readout.weight.normal_(0.0, 1.0, generator=generator).mul_(
            1.0 / math.sqrt(self.channels)
        )
        self.readout.bias.zero_()

    def features(self, x):
        """Output of the deep block, shape ``(B, channels, H', W')``."""
        for conv in self.stem:
            x = self._phi(conv(x))
        return self.block(x)

    def forward(self, x):
        """Logits of shape ``(B, num_classes)`` for images ``(B, in_channels, H, W)``."""
        pooled = self.features(x).mean(dim=(2, 3))
        if self.readout_scale != 1.0:
            pooled = pooled * self.readout_scale
        return self.readout(pooled)

    def grad_norms(self):
        """Per-layer kernel-gradient norms of the deep block, shape ``(depth,)``."""
        return self.block.grad_norms()
