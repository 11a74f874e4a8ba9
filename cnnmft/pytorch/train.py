"""Training of :class:`~cnnmft.pytorch.models.VanillaCNN`: the Python API behind ``cnnmft train``.

``train(TrainConfig(...))`` runs one training and returns a :class:`TrainResult` with the loss
history, train/test accuracies, per-layer gradient norms and how far every deep layer's kernel
moved. With ``out_dir`` it also writes

* ``steps.csv`` (step, loss, learning rate, gradient norms of the chosen layers),
* ``eval.csv`` (step, train accuracy, test accuracy, test loss),
* ``result.json`` (everything, reloadable with :meth:`TrainResult.load`) and ``config.json``,
* ``training.png`` (curves),
* ``checkpoint.pt`` (:mod:`cnnmft.pytorch.checkpoint`: checksummed, loads with
  ``weights_only=True``, written atomically every ``checkpoint_every`` steps and at the end, the
  previous one kept as ``checkpoint.pt.prev``); ``resume=True`` continues the same run from it
  with the same batches and random numbers, so a killed and resumed run ends bit-identical to an
  uninterrupted one.

The run is four pieces: :func:`_setup` (data, model, optimiser, resume), :func:`_step` (one SGD
step), :func:`_evaluate_run` and :func:`_save` (checkpoint). A non-finite loss stops the run with
``Status.NONFINITE``; a run whose final test accuracy is within three standard errors of chance
gets ``Status.AT_CHANCE``; both also warn (:class:`RuntimeWarning`).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from cnnmft import _threads
from cnnmft._util import progress_bar
from cnnmft.pytorch import checkpoint as C
from cnnmft.pytorch import distributed as D
from cnnmft.pytorch.config import MODEL_FIELDS, TrainConfig, lr_for_depth
from cnnmft.pytorch.data import load_dataset
from cnnmft.pytorch.models import VanillaCNN
from cnnmft.pytorch.train_io import TrainResult, plot_training, write_outputs
from cnnmft.results import Status

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "build_model",
    "plot_training",
    "lr_for_depth",
    "default_stem_strides",
    "weight_movement",
]


# ------------------------------------------------------------------------------------- helpers


def _torch():
    import torch

    return torch


def _resolve_device(name):
    torch = _torch()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` = {name!r} but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def default_stem_strides(dataset: str) -> tuple:
    """Stem strides that bring the images to the deep block's maps.

    digits 8x8 -> 4x4 with ``(1, 2)``; 28x28 (Fashion-MNIST, MNIST, digits28) -> 7x7 and CIFAR's
    32x32 -> 8x8 with ``(2, 2)``.

    Examples
    --------
    >>> default_stem_strides("digits"), default_stem_strides("fashion-mnist")
    ((1, 2), (2, 2))
    """
    return (1, 2) if dataset == "digits" else (2, 2)


def build_model(config: TrainConfig, data=None, generator=None):
    """Build the :class:`VanillaCNN` that `config` describes (input channels from `data`)."""
    in_ch = data.in_channels if data is not None else (1 if config.dataset != "cifar10" else 3)
    strides = config.stem_strides
    if strides is None:
        strides = default_stem_strides(config.dataset)
    return VanillaCNN(
        config.depth,
        config.channels,
        in_channels=in_ch,
        num_classes=10,
        kernel_size=config.kernel_size,
        init=config.init,
        sigma_w2=config.sigma_w2,
        sigma_b2=config.sigma_b2,
        q_star=config.q_star,
        v=config.v,
        t=config.t,
        act=config.act,
        padding=config.padding,
        stem_strides=strides,
        checkpoint_segments=config.checkpoint_segments,
        impl=config.impl,
        readout_scale=config.readout_scale,
        generator=generator,
    )


def weight_movement(w_end, w_start) -> np.ndarray:
    r"""Relative movement of each layer's kernel, ``||W_l - W_l^0||_F / ||W_l^0||_F``.

    Parameters
    ----------
    w_end, w_start : tensor or ndarray, shape (depth, ...)
        Kernels after and before training.

    Returns
    -------
    ndarray, shape (depth,)

    Examples
    --------
    >>> import numpy as np
    >>> weight_movement(np.array([[3.0, 4.0], [1.0, 0.0]]), np.array([[3.0, 0.0], [1.0, 0.0]]))
    array([1.33333333, 0.        ])
    """
    a = np.asarray(w_end, dtype=np.float64).reshape(len(w_end), -1)
    b = np.asarray(w_start, dtype=np.float64).reshape(len(w_start), -1)
    if a.shape != b.shape:
        raise ValueError(f"`w_end` and `w_start` have shapes {a.shape} and {b.shape}")
    den = np.linalg.norm(b, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, np.linalg.norm(a - b, axis=1) / np.where(den > 0, den, 1), 0.0)


def _lr_factor(config):
    steps, warm, kind = max(config.steps, 1), config.warmup_steps, config.schedule

    def f(step):
        if warm and step < warm:
            return (step + 1) / warm
        frac = (step - warm) / max(steps - warm, 1)
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0)))
        if kind == "linear":
            return max(1.0 - frac, 0.0)
        if kind == "step":
            return 1.0 if frac < 0.5 else (0.1 if frac < 0.75 else 0.01)
        return 1.0

    return f


def _param_groups(config, model):
    deep = [model.block.weight, model.block.bias]
    ids = {id(p) for p in deep}
    rest = [p for p in model.parameters() if id(p) not in ids]
    if config.freeze_block:
        for p in deep:
            p.requires_grad_(False)
        return [{"params": rest, "lr": config.lr}]
    scale = config.deep_lr_scale
    if scale == "1/depth":
        scale = 1.0 / max(model.depth, 1)
    return [{"params": rest, "lr": config.lr}, {"params": deep, "lr": config.lr * float(scale)}]


def _make_optimizer(config, params):
    torch = _torch()
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(
        params, lr=config.lr, betas=(config.momentum, 0.999), weight_decay=config.weight_decay
    )


class _Batches:
    """Seeded epoch-wise shuffling; its state (generator, permutation, position) is saved."""

    def __init__(self, n, batch_size, seed):
        torch = _torch()
        self.n, self.batch_size = n, batch_size
        self.gen = torch.Generator().manual_seed(seed + 7919)
        self.perm = torch.randperm(n, generator=self.gen)
        self.pos = 0

    def next(self):
        torch = _torch()
        out = []
        need = self.batch_size
        while need:
            if self.pos >= self.n:
                self.perm = torch.randperm(self.n, generator=self.gen)
                self.pos = 0
            take = min(need, self.n - self.pos)
            out.append(self.perm[self.pos : self.pos + take])
            self.pos += take
            need -= take
        return torch.cat(out)

    def state_dict(self):
        return {"gen": self.gen.get_state(), "perm": self.perm, "pos": self.pos}

    def load_state_dict(self, s):
        self.gen.set_state(s["gen"])
        self.perm, self.pos = s["perm"], int(s["pos"])


def _accuracy(model, x, y, batch=512):
    torch = _torch()
    import torch.nn.functional as F

    was = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for a in range(0, len(y), batch):
            logits = model(x[a : a + batch])
            loss_sum += float(F.cross_entropy(logits, y[a : a + batch], reduction="sum"))
            correct += int((logits.argmax(1) == y[a : a + batch]).sum())
    model.train(was)
    n = max(len(y), 1)
    return correct / n, loss_sum / n


# --------------------------------------------------------------------------------------- train


def train(
    config: TrainConfig | None = None, progress=True, callback=None, **overrides
) -> TrainResult:
    r"""Train a vanilla CNN as described by `config` and return its history.

    The loss is the softmax cross-entropy of :class:`~cnnmft.pytorch.models.VanillaCNN`'s logits.
    The kernel-gradient norm of deep layer l, ``||dL/dW_l||_F``, is logged at each step for the
    layers in ``config.grad_norm_layers``, and for every layer at step 0 (initialisation): with
    Delta-orthogonal kernels at the critical point it is flat across depth (dynamical isometry,
    ``chi_1 = 1``); with Gaussian kernels it is not ([1]_, section 3).

    Parameters
    ----------
    config : TrainConfig, optional
        Settings (default ``TrainConfig()``: the paper's plain protocol on the digits).
    progress : bool
        Show a tqdm progress bar (main process only).
    callback : callable, optional
        ``callback(step, metrics_dict)`` after each step; return True to stop early.
    **overrides
        Fields of :class:`TrainConfig` to replace, e.g. ``train(depth=100, steps=50)``.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        Bad settings (the message names the field), or a checkpoint that belongs to another run
        (:class:`~cnnmft.pytorch.checkpoint.CheckpointError` for a bad checkpoint file).

    Warns
    -----
    RuntimeWarning
        The loss diverged, or the run ended at chance.

    Notes
    -----
    Under ``torchrun`` (``WORLD_SIZE`` > 1) the run is data-parallel
    (:mod:`cnnmft.pytorch.distributed`): every process draws the same global batch and takes its
    own slice; DDP averages the gradients. Only rank 0 reads the checkpoint and writes files; on
    resume it broadcasts the state to the other ranks, so they need no shared filesystem.

    References
    ----------
    .. [1] Xiao et al. 2018, section 5 (Figure 1: 10,000-layer vanilla tanh CNNs).

    Examples
    --------
    >>> res = train(TrainConfig(depth=4, steps=150, batch_size=32, eval_every=0),
    ...             progress=False)  # doctest: +SKIP
    >>> res.steps_done, res.success, res.test_accuracy > 0.5  # doctest: +SKIP
    (150, True, True)
    """
    torch = _torch()
    config = replace(config or TrainConfig(), **overrides).validate()
    # subnormals make deep tanh nets crawl on x86 CPUs; the flag is process-wide, so it is
    # switched off again afterwards (torch has no getter to restore an earlier value)
    torch.set_flush_denormal(True)
    threads = torch.get_num_threads()
    n = config.num_threads
    if n is None:  # the thread policy's fixed count, else one thread (not load-dependent)
        n = _threads.fixed_num_threads() or 1
    try:
        if n:
            torch.set_num_threads(int(n))
        return _train(config, progress, callback)
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


class _Run:
    """Everything one training run holds: data, model, optimiser, history, position."""

    def __init__(self, config):
        torch = _torch()
        self.config = config
        self.dist = D.setup(config.device)
        self.device = self.dist.device if self.dist.active else _resolve_device(config.device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = config.tf32
            torch.backends.cudnn.allow_tf32 = config.tf32
        self.main = self.dist.rank == 0
        if self.dist.active and config.batch_size % self.dist.world_size:
            raise ValueError(
                f"`batch_size` = {config.batch_size} must be divisible by the "
                f"number of processes ({self.dist.world_size})"
            )
        dtype = getattr(torch, config.dtype)
        self.data = load_dataset(
            config.dataset,
            config.data_dir,
            test_fraction=config.test_fraction,
            seed=config.seed,
            max_train=config.max_train,
            max_test=config.max_test,
        )
        dev = self.device
        self.xtr = torch.as_tensor(self.data.x_train, dtype=dtype, device=dev)
        self.ytr = torch.as_tensor(self.data.y_train, device=dev)
        self.xte = torch.as_tensor(self.data.x_test, dtype=dtype, device=dev)
        self.yte = torch.as_tensor(self.data.y_test, device=dev)
        ev = torch.randperm(len(self.ytr), generator=torch.Generator().manual_seed(config.seed))
        ev = ev[: config.eval_samples].sort().values.to(dev)
        self.xev, self.yev = self.xtr[ev], self.ytr[ev]

        self.model = build_model(
            config, self.data, generator=torch.Generator().manual_seed(config.seed)
        )
        self.model.to(device=dev, dtype=dtype)
        depth = self.model.depth
        layers = config.grad_norm_layers
        if layers is None:
            layers = tuple(sorted({1, max((depth + 1) // 2, 1), depth})) if depth else ()
        self.layers = tuple(layers)
        self.opt = _make_optimizer(config, _param_groups(config, self.model))
        self.net = D.wrap(self.model, self.dist)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, _lr_factor(config))
        self.batches = _Batches(len(self.ytr), config.batch_size, config.seed)
        self.hist = {"loss": [], "lr": [], "gn": [], "eval": [], "init_gn": None}
        self.step = 0
        self.out = Path(config.out_dir) if config.out_dir is not None else None
        self.ckpt = self.out / "checkpoint.pt" if self.out is not None else None
        if self.out is not None and self.main:
            self.out.mkdir(parents=True, exist_ok=True)

    # -- checkpoint ---------------------------------------------------------------------------
    def state(self):
        torch = _torch()
        return {
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "batches": self.batches.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "history": self.hist,
            "step": self.step,
        }

    def resume(self):
        """Load the last good checkpoint (rank 0) and share it with every rank."""
        torch = _torch()
        found, error = None, None
        if self.main and self.ckpt is not None:
            try:
                found = C.load_latest(self.ckpt, map_location="cpu")
            except C.CheckpointError as exc:
                error = str(exc)
        # rank 0 decides (state, file or error) and every rank follows the same decision
        shared = D.broadcast_object(
            {
                "state": found[0] if found else None,
                "where": str(found[1]) if found else None,
                "error": error,
            },
            self.dist,
        )
        if shared["error"]:
            raise C.CheckpointError(shared["error"])
        state, where = shared["state"], shared["where"]
        if state is None:
            return
        old = state["config"]
        bad = [k for k in MODEL_FIELDS if _norm(old.get(k)) != _norm(getattr(self.config, k))]
        if bad:
            raise ValueError(
                f"checkpoint {where!r} belongs to another run: fields "
                + ", ".join(
                    f"{k} ({old.get(k)!r} there, {getattr(self.config, k)!r} here)" for k in bad
                )
            )
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.batches.load_state_dict(state["batches"])
        torch.set_rng_state(state["torch_rng"])
        self.hist = state["history"]
        self.step = int(state["step"])

    def save(self):
        if self.ckpt is not None and self.main:
            C.save_checkpoint(self.state(), self.ckpt)

    # -- one step and one evaluation ----------------------------------------------------------
    def train_step(self):
        """One optimisation step; returns the (process-averaged) loss, or None if non-finite."""
        import torch.nn.functional as F

        idx = self.batches.next()
        if self.dist.active:
            idx = idx[self.dist.rank :: self.dist.world_size]
        idx = idx.to(self.device)
        loss = F.cross_entropy(self.net(self.xtr[idx]), self.ytr[idx])
        value = D.mean_scalar(loss.detach(), self.dist)
        if not math.isfinite(value):
            return None
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = self.model.grad_norms()
        if self.hist["init_gn"] is None:
            self.hist["init_gn"] = [float(g) for g in gn]
        self.hist["gn"].append([float(gn[i - 1]) for i in self.layers])
        self.hist["lr"].append(float(self.opt.param_groups[0]["lr"]))
        self.opt.step()
        self.sched.step()
        self.hist["loss"].append(value)
        self.step += 1
        return value

    def evaluate(self):
        tr_acc, _ = _accuracy(self.model, self.xev, self.yev)
        te_acc, te_loss = _accuracy(self.model, self.xte, self.yte)
        self.hist["eval"].append([self.step, tr_acc, te_acc, te_loss])
        return tr_acc, te_acc


def _train(config, progress, callback):
    t_start = time.perf_counter()
    run = _Run(config)
    if config.resume:
        run.resume()
    if not run.hist["eval"] and run.step == 0 and config.eval_start:
        run.evaluate()
    bar = None
    if progress and run.main and run.step < config.steps:
        bar = progress_bar(
            config.steps,
            initial=run.step,
            desc=f"train depth={config.depth}",
            unit="step",
            dynamic_ncols=True,
            leave=True,
        )
    status, message, step_times = Status.OK, "", []
    run.model.train()
    try:
        while run.step < config.steps:
            t0 = time.perf_counter()
            value = run.train_step()
            if value is None:
                last = run.hist["loss"][-1] if run.hist["loss"] else "none"
                status = Status.NONFINITE
                message = (
                    f"diverged: stopped at step {run.step}, the training loss became "
                    f"non-finite (last finite loss {last}); lower the learning rate or "
                    "check the initialisation"
                )
                break
            step_times.append(time.perf_counter() - t0)
            metrics = {"loss": value}
            if (
                config.eval_every and run.step % config.eval_every == 0
            ) or run.step == config.steps:
                metrics["train_acc"], metrics["test_acc"] = run.evaluate()
            if config.checkpoint_every and run.step % config.checkpoint_every == 0:
                run.save()
            if bar is not None:
                bar.update(1)
                post = {"loss": f"{value:.4f}"}
                if run.hist["eval"]:
                    post["test_acc"] = f"{run.hist['eval'][-1][2]:.3f}"
                bar.set_postfix(post, refresh=False)
            if callback is not None and callback(run.step, metrics):
                message = f"stopped by the callback at step {run.step}"
                break
    except KeyboardInterrupt:
        run.save()
        raise
    finally:
        if bar is not None:
            bar.close()
    if not run.hist["eval"] or run.hist["eval"][-1][0] != run.step:
        run.evaluate()
    run.save()
    res = _result(run, status, message, step_times, t_start)
    if res.message and int(res.status) != int(Status.OK) and run.main:
        warnings.warn(res.message, RuntimeWarning, stacklevel=3)
    if run.out is not None and run.main:
        write_outputs(res, run.out, plots=config.plots)
    return res


def _chance_check(acc, n_test, num_classes):
    """Return a message when `acc` is within three standard errors of chance, else ''."""
    p0 = 1.0 / num_classes
    se = math.sqrt(p0 * (1 - p0) / max(n_test, 1))
    if acc <= p0 + 3 * se:
        return (
            f"ended at chance: test accuracy {acc:.4f} on {n_test} images (chance {p0:.2f}, "
            f"three standard errors {3 * se:.3f}); the network did not learn: check the "
            "learning rate (docs/training.md, 'Learning rate') and the number of steps"
        )
    return ""


def _result(run, status, message, step_times, t_start):
    torch = _torch()
    config, hist, model = run.config, run.hist, run.model
    ev = np.array(hist["eval"], dtype=np.float64).reshape(-1, 4)
    test_acc = float(ev[-1, 2])
    if status == Status.OK and not message and run.step > 0:
        message = _chance_check(test_acc, len(run.yte), run.data.num_classes)
        if message:
            status = Status.AT_CHANCE
    if not message:
        message = f"finished {run.step} steps"
    init = build_model(config, run.data, generator=torch.Generator().manual_seed(config.seed))
    moved = weight_movement(model.block.weight.detach().cpu(), init.block.weight.detach())
    k = len(run.layers)
    return TrainResult(
        config=json.dumps(config.to_dict()),
        dataset=run.data.name,
        sigma_w2=float(model.sigma_w2),
        sigma_b2=float(model.sigma_b2),
        loss=np.asarray(hist["loss"], dtype=np.float64),
        lr=np.asarray(hist["lr"], dtype=np.float64),
        grad_norm_layers=np.asarray(run.layers, dtype=np.int64),
        grad_norms=np.asarray(hist["gn"], dtype=np.float64).reshape(-1, k),
        init_grad_norms=np.asarray(hist["init_gn"] or [], dtype=np.float64),
        weight_movement=moved,
        eval_step=ev[:, 0].astype(np.int64),
        train_acc=ev[:, 1],
        test_acc=ev[:, 2],
        test_loss=ev[:, 3],
        train_accuracy=float(ev[-1, 1]),
        test_accuracy=test_acc,
        n_test=int(len(run.yte)),
        final_loss=float(hist["loss"][-1]) if hist["loss"] else float("nan"),
        steps_done=int(run.step),
        status=int(status),
        message=message,
        wall_time=time.perf_counter() - t_start,
        step_time=float(np.median(step_times)) if step_times else float("nan"),
        n_params=int(sum(p.numel() for p in model.parameters())),
    )


def _norm(x):
    if isinstance(x, (list, tuple)):
        return [_norm(y) for y in x]
    return x
