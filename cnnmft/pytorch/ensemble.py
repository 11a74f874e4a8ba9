"""Many small vanilla CNNs trained as one computation: grouped convolutions, per-member optimiser.

A sweep over ``(sigma_w2, seed, learning rate)`` at one depth trains many networks of the same
shape. Run one at a time, a deep, narrow network spends most of its time in per-layer overhead
(a 7x7 map with 8 channels is a tiny convolution). :class:`EnsembleCNN` stacks ``G`` members along
the channel axis and runs each layer of all of them as ONE grouped convolution (``groups=G``): the
member ``g`` owns channels ``g*c .. (g+1)*c - 1`` of every layer and nothing else, so the members
share no parameter and no activation.

Training (:func:`train_ensemble`) minimises the SUM of the per-member mean cross-entropies.
Because the members are disjoint, the gradient of the sum with respect to member ``g``'s
parameters is exactly the gradient of member ``g``'s own loss. The optimiser
(:class:`EnsembleSGD`, SGD with momentum, the update of :class:`torch.optim.SGD`) keeps one
momentum buffer per parameter, which is per member too, and a learning rate PER MEMBER; there is no
global gradient clipping and no shared schedule, so each member follows the trajectory it would
follow trained alone (tests check this against :class:`~cnnmft.pytorch.VanillaCNN` trained with
:class:`torch.optim.SGD`). A member whose loss becomes non-finite is frozen (status
:attr:`cnnmft.Status.NONFINITE`, its parameters set to zero) and cannot affect the others.

References
----------
.. [1] L. Xiao, Y. Bahri, J. Sohl-Dickstein, S. S. Schoenholz, J. Pennington, "Dynamical Isometry
   and a Mean Field Theory of CNNs", ICML 2018, arXiv:1806.05393 (the network, Figure 2).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnmft import _validation as V
from cnnmft._util import progress_bar
from cnnmft.pytorch.models import ACTIVATIONS, VanillaCNN, _pad_amounts
from cnnmft.results import Status

__all__ = ["EnsembleCNN", "EnsembleSGD", "train_ensemble", "member_batches"]


class EnsembleCNN(nn.Module):
    r"""``G`` vanilla CNNs of one shape, each layer of all of them one grouped convolution.

    Member ``g`` computes exactly :class:`~cnnmft.pytorch.VanillaCNN`'s function: a stem of 3x3
    zero-padded convolutions (each followed by phi), `depth` circularly padded ``k x k`` layers
    ``x <- phi(W_l * x + b_l)``, global average pooling and a linear readout.

    Parameters
    ----------
    n_members : int
        ``G``.
    depth, channels, in_channels, num_classes, kernel_size, act, stem_strides
        As in :class:`~cnnmft.pytorch.VanillaCNN` (circular padding in the deep block).
    readout_scale : float
        Constant factor on the pooled features (1: the paper's network).

    Attributes
    ----------
    stem_w : ParameterList of shape ``(G, c, c_in, 3, 3)`` each
    stem_b : ParameterList of shape ``(G, c)`` each
    block_w : Parameter, shape ``(depth, G, c, c, k, k)``
    block_b : Parameter, shape ``(depth, G, c)``
    readout_w : Parameter, shape ``(G, num_classes, c)``
    readout_b : Parameter, shape ``(G, num_classes)``

    Examples
    --------
    >>> import torch
    >>> from cnnmft.pytorch import VanillaCNN
    >>> nets = [VanillaCNN(4, 8, init="gaussian", sigma_w2=s, sigma_b2=0.05, stem_strides=(1, 2),
    ...                    generator=torch.Generator().manual_seed(0)) for s in (1.0, 2.0)]
    >>> ens = EnsembleCNN.from_models(nets)
    >>> x = torch.randn(3, 1, 8, 8)
    >>> bool(torch.allclose(ens(x)[:, 1], nets[1](x), atol=1e-5))
    True
    """

    def __init__(
        self,
        n_members,
        depth,
        channels=16,
        *,
        in_channels=1,
        num_classes=10,
        kernel_size=3,
        act="tanh",
        stem_strides=(1, 2, 2),
        readout_scale=1.0,
    ):
        super().__init__()
        G = self.n_members = V.as_int(n_members, "n_members", low=1)
        self.depth = V.as_int(depth, "depth", low=0)
        c = self.channels = V.as_int(channels, "channels", low=1)
        self.in_channels = V.as_int(in_channels, "in_channels", low=1)
        self.num_classes = V.as_int(num_classes, "num_classes", low=2)
        k = self.kernel_size = V.as_int(kernel_size, "kernel_size", low=1)
        self.act = V.as_choice(act, "act", tuple(ACTIVATIONS))
        self.stem_strides = tuple(V.as_int(s, "stem_strides", low=1) for s in stem_strides)
        if not self.stem_strides and self.in_channels != c:
            raise ValueError(
                f"`stem_strides` is empty but `in_channels` ({in_channels}) != "
                f"`channels` ({channels})"
            )
        self.readout_scale = float(
            V.as_float_array(readout_scale, "readout_scale", low=0.0, low_open=True)
        )
        self.stem_w, self.stem_b = nn.ParameterList(), nn.ParameterList()
        c_prev = self.in_channels
        for _ in self.stem_strides:
            self.stem_w.append(nn.Parameter(torch.zeros(G, c, c_prev, 3, 3)))
            self.stem_b.append(nn.Parameter(torch.zeros(G, c)))
            c_prev = c
        self.block_w = nn.Parameter(torch.zeros(self.depth, G, c, c, k, k))
        self.block_b = nn.Parameter(torch.zeros(self.depth, G, c))
        self.readout_w = nn.Parameter(torch.zeros(G, self.num_classes, c))
        self.readout_b = nn.Parameter(torch.zeros(G, self.num_classes))
        self._phi = ACTIVATIONS[self.act]
        self._pad = _pad_amounts(k)

    def member_axis(self, p) -> int:
        """Axis of parameter `p` that indexes the members (1 for the deep block, else 0)."""
        return 1 if (p is self.block_w or p is self.block_b) else 0

    @classmethod
    def from_models(cls, models) -> "EnsembleCNN":
        """Pack a list of :class:`~cnnmft.pytorch.VanillaCNN` of one shape into an ensemble.

        The members keep their initial weights exactly (copied), so the ensemble starts where the
        single networks start; use the networks' own initialisers (Gaussian, orthogonal, ...).
        """
        models = list(models)
        if not models or not all(isinstance(m, VanillaCNN) for m in models):
            raise TypeError("`models` must be a non-empty list of cnnmft.pytorch.VanillaCNN")
        m0 = models[0]
        strides = tuple(conv.stride[0] for conv in m0.stem)
        shape = (
            m0.depth,
            m0.channels,
            m0.stem[0].in_channels if strides else m0.channels,
            m0.readout.out_features,
            m0.block.kernel_size,
            m0.act,
            strides,
            m0.block.padding,
            m0.readout_scale,
        )
        for i, m in enumerate(models):
            s = (
                m.depth,
                m.channels,
                m.stem[0].in_channels if m.stem else m.channels,
                m.readout.out_features,
                m.block.kernel_size,
                m.act,
                tuple(conv.stride[0] for conv in m.stem),
                m.block.padding,
                m.readout_scale,
            )
            if s != shape:
                raise ValueError(
                    f"`models`[{i}] has shape {s}, member 0 has {shape}; an "
                    "ensemble needs networks of one shape"
                )
        if m0.block.padding != "circular":
            raise ValueError("EnsembleCNN supports circular padding in the deep block only")
        ens = cls(
            len(models),
            m0.depth,
            m0.channels,
            in_channels=shape[2],
            num_classes=shape[3],
            kernel_size=shape[4],
            act=m0.act,
            stem_strides=strides,
            readout_scale=m0.readout_scale,
        )
        ens = ens.to(dtype=m0.readout.weight.dtype)
        with torch.no_grad():
            for g, m in enumerate(models):
                for i, conv in enumerate(m.stem):
                    ens.stem_w[i][g].copy_(conv.weight)
                    ens.stem_b[i][g].copy_(conv.bias)
                ens.block_w[:, g].copy_(m.block.weight)
                ens.block_b[:, g].copy_(m.block.bias)
                ens.readout_w[g].copy_(m.readout.weight)
                ens.readout_b[g].copy_(m.readout.bias)
        return ens

    def forward(self, x):
        """Logits ``(B, G, num_classes)``.

        `x` is ``(B, c_in, H, W)`` (the same images for every member) or ``(B, G, c_in, H, W)``
        (one batch per member).
        """
        G, c = self.n_members, self.channels
        if x.dim() == 4:
            x = x.unsqueeze(1).expand(-1, G, -1, -1, -1)
        if x.dim() != 5 or x.shape[1] != G:
            raise ValueError(
                f"`x` must be (B, c_in, H, W) or (B, {G}, c_in, H, W), got {tuple(x.shape)}"
            )
        B = x.shape[0]
        x = x.reshape(B, G * x.shape[2], x.shape[3], x.shape[4])
        phi = self._phi
        for w, b, s in zip(self.stem_w, self.stem_b, self.stem_strides):
            x = phi(
                F.conv2d(
                    x, w.reshape(G * c, *w.shape[2:]), b.reshape(-1), stride=s, padding=1, groups=G
                )
            )
        k = self.kernel_size
        for layer in range(self.depth):
            w = self.block_w[layer].reshape(G * c, c, k, k)
            x = phi(
                F.conv2d(
                    F.pad(x, self._pad, mode="circular"),
                    w,
                    self.block_b[layer].reshape(-1),
                    groups=G,
                )
            )
        pooled = x.mean(dim=(2, 3)).reshape(B, G, c)
        if self.readout_scale != 1.0:
            pooled = pooled * self.readout_scale
        return torch.einsum("bgc,gkc->bgk", pooled, self.readout_w) + self.readout_b

    @torch.no_grad()
    def zero_member_(self, g: int) -> None:
        """Set every parameter of member `g` to zero (its output becomes all-zero logits)."""
        for p in self.parameters():
            p.select(self.member_axis(p), g).zero_()


class EnsembleSGD:
    r"""SGD with momentum (or Adam) and a learning rate per ensemble member.

    ``optimizer="sgd"``: the update of :class:`torch.optim.SGD` (no dampening, no Nesterov), per
    parameter entry ``p`` with gradient ``g`` and buffer ``m`` (zero at the start):

    .. math:: m \leftarrow \mu m + g + \lambda p, \qquad p \leftarrow p - \eta_{(g)} m,

    ``optimizer="adam"``: the update of :class:`torch.optim.Adam` with ``betas=(momentum,
    0.999)`` and ``eps=1e-8``, elementwise. ``eta_(g)`` is the learning rate of the member that
    owns the entry. Nothing couples members: no gradient clipping, no schedule, no shared
    statistics (Adam's moments are elementwise and its step counter is the same for all).

    Parameters
    ----------
    model : EnsembleCNN
    lr : array_like, shape (G,)
        Learning rate per member (> 0).
    momentum : float in [0, 1)
    weight_decay : float >= 0
    optimizer : {"sgd", "adam"}
    """

    def __init__(self, model: EnsembleCNN, lr, momentum=0.9, weight_decay=0.0, optimizer="sgd"):
        G = model.n_members
        lr = np.broadcast_to(V.as_float_array(lr, "lr", low=0.0, low_open=True), (G,))
        self.momentum = float(V.as_float_array(momentum, "momentum", low=0.0, high=1.0))
        self.weight_decay = float(V.as_float_array(weight_decay, "weight_decay", low=0.0))
        self.optimizer = V.as_choice(optimizer, "optimizer", ("sgd", "adam"))
        self.model = model
        dtype = model.readout_w.dtype
        self.lr = torch.as_tensor(np.array(lr, dtype=np.float64), dtype=dtype)
        self.active = torch.ones(G, dtype=torch.bool)
        self.steps_taken = 0
        self._params = list(model.parameters())
        self._buf = [torch.zeros_like(p) for p in self._params]
        self._sq = [torch.zeros_like(p) for p in self._params] if self.optimizer == "adam" else []
        self._shape = [
            tuple(G if a == model.member_axis(p) else 1 for a in range(p.dim()))
            for p in self._params
        ]

    @torch.no_grad()
    def step(self) -> None:
        """Apply one update to every active member (gradients from ``loss.backward()``)."""
        eta = torch.where(self.active, self.lr, torch.zeros_like(self.lr))
        self.steps_taken += 1
        if self.optimizer == "adam":
            b1, b2, t = self.momentum, 0.999, self.steps_taken
            eta = eta / (1.0 - b1**t)
            root = math.sqrt(1.0 - b2**t)
        for i, (p, m, shape) in enumerate(zip(self._params, self._buf, self._shape)):
            if p.grad is None:
                continue
            d = p.grad if self.weight_decay == 0.0 else p.grad + self.weight_decay * p
            if self.optimizer == "sgd":
                m.mul_(self.momentum).add_(d)
                p.sub_(eta.view(shape) * m)
            else:
                v = self._sq[i]
                m.lerp_(d, 1.0 - b1)
                v.mul_(b2).addcmul_(d, d, value=1.0 - b2)
                p.sub_(eta.view(shape) * m / (v.sqrt() / root + 1e-8))

    def zero_grad(self) -> None:
        """Drop the gradients."""
        for p in self._params:
            p.grad = None

    @torch.no_grad()
    def freeze_(self, g: int) -> None:
        """Stop member `g`: learning rate masked, buffers and parameters set to zero."""
        self.active[g] = False
        for bufs in (self._buf, self._sq):
            for m, p in zip(bufs, self._params):
                m.select(self.model.member_axis(p), g).zero_()
        self.model.zero_member_(g)


def member_batches(n, batch_size, seeds, steps):
    """Index arrays of the training batches of each member: shape ``(steps, G, batch_size)``.

    Member ``g`` draws from its own generator ``numpy.random.default_rng(seeds[g])``: a fresh
    permutation of the ``n`` training images per epoch, cut into consecutive batches (an epoch's
    tail carries over into the next batch). Members with equal seeds see equal batches.
    """
    n = V.as_int(n, "n", low=1)
    batch_size = V.as_int(batch_size, "batch_size", low=1)
    steps = V.as_int(steps, "steps", low=0)
    out = np.empty((steps, len(seeds), batch_size), dtype=np.int64)
    cache = {}
    for g, s in enumerate(seeds):
        s = int(s)
        if s not in cache:
            rng = np.random.default_rng(s)
            need = steps * batch_size
            perms = [rng.permutation(n) for _ in range(-(-need // n))]
            flat = np.concatenate(perms)[:need] if perms else np.empty(0, np.int64)
            cache[s] = flat.reshape(steps, batch_size)
        out[:, g] = cache[s]
    return out


def _evaluate(model, x, y, batch=500):
    """Per-member accuracy and mean loss on ``(x, y)``: two arrays of shape ``(G,)``."""
    G = model.n_members
    correct = torch.zeros(G, dtype=torch.float64)
    loss = torch.zeros(G, dtype=torch.float64)
    with torch.no_grad():
        for a in range(0, len(y), batch):
            logits = model(x[a : a + batch])
            yy = y[a : a + batch]
            correct += (logits.argmax(-1) == yy[:, None]).sum(0).double()
            loss += (
                F.cross_entropy(
                    logits.permute(0, 2, 1), yy[:, None].expand(-1, G), reduction="none"
                )
                .sum(0)
                .double()
            )
    n = max(len(y), 1)
    return (correct / n).numpy(), (loss / n).numpy()


def _member_losses(model, xb, yb):
    """Per-member mean cross-entropy of one step: ``(G,)``; `xb` is ``(B, G, c, H, W)``."""
    logits = model(xb)
    return F.cross_entropy(logits.permute(0, 2, 1), yb, reduction="none").mean(0)


def train_ensemble(
    models,
    x_train,
    y_train,
    *,
    lr,
    steps,
    batch_size=64,
    momentum=0.9,
    optimizer="sgd",
    seeds=None,
    eval_sets=None,
    progress=False,
    num_threads=None,
):
    r"""Train ``G`` networks as one ensemble; each member exactly as it would train alone.

    Every step draws one batch per member (:func:`member_batches` with its seed), computes the
    per-member mean cross-entropies ``L_g``, back-propagates ``sum_g L_g`` (whose gradient with
    respect to member ``g``'s parameters is ``grad L_g``, the members being disjoint) and applies
    :class:`EnsembleSGD`. A member whose loss becomes non-finite is frozen with status
    ``NONFINITE``.

    Parameters
    ----------
    models : list of VanillaCNN or EnsembleCNN
        The initial networks (packed with :meth:`EnsembleCNN.from_models`).
    x_train : Tensor, shape (N, c_in, H, W); y_train : Tensor of int64, shape (N,)
    lr : array_like, shape (G,) or scalar
        Learning rate per member.
    steps, batch_size : int
    momentum : float
        SGD momentum, or Adam's ``beta1``.
    optimizer : {"sgd", "adam"}
        See :class:`EnsembleSGD`.
    seeds : sequence of int, shape (G,), optional
        Data-order seed per member (default 0 for all).
    eval_sets : dict of name -> (x, y), optional
        Evaluated once after training (accuracy and loss per member).
    progress : bool
        tqdm bar over the steps.
    num_threads : int, optional
        ``torch.set_num_threads`` for the run (sweep workers use 1).

    Returns
    -------
    dict
        ``loss`` (ndarray ``(steps, G)``, NaN after a member stopped), ``status`` (list of
        :class:`cnnmft.Status`), ``stopped_at`` (step of divergence or -1), for each eval set
        ``<name>_accuracy`` and ``<name>_loss`` (ndarrays ``(G,)``), ``seconds`` and
        ``seconds_per_step``.

    Examples
    --------
    >>> import torch
    >>> from cnnmft.pytorch import VanillaCNN
    >>> g = torch.Generator().manual_seed(0)
    >>> nets = [VanillaCNN(3, 4, init="gaussian", sigma_w2=1.5, sigma_b2=0.05,
    ...                    stem_strides=(1, 2), generator=g) for _ in range(2)]
    >>> x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    >>> out = train_ensemble(nets, x, y, lr=[0.01, 0.1], steps=5, batch_size=16)
    >>> out["loss"].shape
    (5, 2)
    """
    # over 80 lines with its numpydoc docstring; the body is one training loop of ~55 lines
    model = models if isinstance(models, EnsembleCNN) else EnsembleCNN.from_models(models)
    G = model.n_members
    steps = V.as_int(steps, "steps", low=0)
    seeds = [0] * G if seeds is None else [V.as_int(s, "seeds", low=0) for s in seeds]
    if len(seeds) != G:
        raise ValueError(f"`seeds` has {len(seeds)} entries for {G} members")
    if x_train.dim() != 4 or len(x_train) != len(y_train):
        raise ValueError(
            f"`x_train` must be (N, c_in, H, W) with N = len(y_train); got "
            f"{tuple(x_train.shape)} and {tuple(y_train.shape)}"
        )
    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(V.as_int(num_threads, "num_threads", low=1))
    try:
        opt = EnsembleSGD(model, lr, momentum, optimizer=optimizer)
        idx = torch.from_numpy(member_batches(len(y_train), batch_size, seeds, steps))
        losses = np.full((steps, G), np.nan)
        status = [Status.OK] * G
        stopped = [-1] * G
        bar = None
        if progress:
            bar = progress_bar(steps, desc=f"ensemble of {G}, depth {model.depth}", unit="step")
        t0 = time.perf_counter()
        for step in range(steps):
            xb, yb = x_train[idx[step]], y_train[idx[step]]  # (B?) -> (G, B, ...)
            lg = _member_losses(model, xb.transpose(0, 1), yb.transpose(0, 1))
            vals = lg.detach().double().numpy()
            bad = np.flatnonzero(~np.isfinite(vals) & opt.active.numpy())
            for g in bad:
                status[g], stopped[g] = Status.NONFINITE, step
                opt.active[int(g)] = False  # masked in this step's update already
            keep = opt.active.clone()
            losses[step] = np.where(keep.numpy(), vals, np.nan)
            total = torch.where(keep, lg, torch.zeros_like(lg)).sum()
            opt.zero_grad()
            total.backward()
            opt.step()
            for g in bad:  # zero its parameters and buffers (after backward: no in-place edit
                opt.freeze_(int(g))  # of tensors autograd still needs)
            if bar is not None:
                bar.update(1)
        seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        out = {
            "loss": losses,
            "status": status,
            "stopped_at": stopped,
            "seconds": seconds,
            "seconds_per_step": seconds / steps if steps else math.nan,
        }
        for name, (xe, ye) in (eval_sets or {}).items():
            acc, loss = _evaluate(model, xe, ye)
            dead = ~opt.active.numpy()
            out[f"{name}_accuracy"] = np.where(dead, np.nan, acc)
            out[f"{name}_loss"] = np.where(dead, np.nan, loss)
        out["model"] = model
        return out
    finally:
        torch.set_num_threads(old_threads)
