"""Training of :class:`~cnnmft.pytorch.models.VanillaCNN`: the Python API behind ``cnnmft train``.

``train(TrainConfig(...))`` runs one training and returns a :class:`TrainResult` with the loss
history, train/test accuracies and per-layer gradient norms. With ``out_dir`` it also writes

* ``steps.csv`` (step, loss, learning rate, gradient norms of the chosen layers),
* ``eval.csv`` (step, train accuracy, test accuracy, test loss),
* ``result.json`` (everything, reloadable with :meth:`TrainResult.load`),
* ``training.png`` (curves) and ``grad_norms_init.png`` (gradient norm per layer at step 0),
* ``checkpoint.pt``, written atomically every ``checkpoint_every`` steps and at the end;
  ``resume=True`` continues the same run from it (same batches, same random numbers).

A non-finite loss stops the run cleanly: the result gets ``status = Status.NONFINITE`` and a
message, and the logs hold only the finite steps.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnmft import _validation as V
from cnnmft.results import ResultMixin, Status

__all__ = ["TrainConfig", "TrainResult", "train", "build_model", "plot_training"]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine", "step", "linear")
DTYPES = ("float32", "float64")

# fields that define the model and the data: a checkpoint can only resume a run that agrees on them
_MODEL_FIELDS = ("dataset", "depth", "channels", "kernel_size", "init", "sigma_w2", "sigma_b2",
                 "q_star", "v", "t", "act", "padding", "stem_strides", "seed", "dtype",
                 "batch_size", "optimizer", "test_fraction", "max_train", "deep_lr_scale",
                 "readout_scale")


@dataclass
class TrainConfig:
    """Settings of one training run (every field has a small-run-friendly default).

    Attributes
    ----------
    dataset : {"digits", "mnist", "cifar10"}
        Data; digits (8x8, offline) by default. MNIST and CIFAR-10 are read from `data_dir`.
    data_dir : str, optional
        Folder with the MNIST IDX files or the CIFAR-10 python batches.
    depth : int
        Layers of the deep block (the paper's L).
    channels : int
        Width c of the deep block.
    kernel_size : int
        Deep-block kernel size.
    init : {"delta_orthogonal", "block_orthogonal", "tunable_orthogonal", "gaussian"}
        Deep-block kernels.
    sigma_w2, sigma_b2 : float, optional
        Variances; both None: the critical point with ``q* = q_star`` (default ``1/depth``).
    q_star : float, optional
        Fixed point of the default critical point.
    v : str
        Variance profile of Gaussian kernels ("uniform", "delta", "binomial", "tunable").
    t : float, optional
        Parameter of the tunable family.
    act : str
        Activation ("tanh").
    padding : {"circular", "zeros"}
        Padding of the deep block.
    stem_strides : tuple of int, optional
        Stem strides; default ``(1, 2)`` for digits (8x8 -> 4x4), ``(1, 2, 2)`` otherwise.
    optimizer : {"sgd", "adam"}
        SGD with (heavy-ball) momentum, or Adam.
    lr : float
        Peak learning rate.
    momentum : float
        SGD momentum (Adam: beta1).
    deep_lr_scale : float or "1/depth"
        Multiplier of the learning rate of the deep block's kernels and biases (stem and readout
        keep `lr`). "1/depth" divides it by the depth: with isometric Jacobians every deep layer's
        gradient has the same size, so one step moves the output by ~ depth x lr; this rule keeps
        that function-space step the same at every depth (used by the 10,000-layer benchmark).
    weight_decay : float
        L2 weight decay.
    schedule : {"constant", "cosine", "step", "linear"}
        Learning-rate schedule after warm-up ("step": x0.1 at 50% and 75% of `steps`).
    warmup_steps : int
        Linear warm-up steps.
    steps : int
        Optimisation steps.
    batch_size : int
        Global batch size (split across processes under DDP).
    eval_every : int
        Evaluate train/test accuracy every this many steps (and at the end); 0: only at the end.
    eval_samples : int
        Training examples used for the train accuracy (a fixed subset; the test set is always full).
    grad_norm_layers : tuple of int, optional
        1-based deep-block layers whose kernel-gradient norm is logged every step; default first,
        middle and last.
    seed : int
        Seed of the initialisation, the digits split and the batch order.
    device : str
        "cpu", "cuda", "cuda:1", ... ("auto": CUDA when available).
    dtype : {"float32", "float64"}
        Parameter and data type.
    tf32 : bool
        Allow TF32 matmuls/convolutions on CUDA (off by default: validation runs need full fp32).
    checkpoint_segments : int, "auto" or None
        Activation checkpointing of the deep block ("auto": ceil(sqrt(depth)) segments).
    impl : {"auto", "autograd", "fused", "dense"}
        Implementation of the deep block (:class:`~cnnmft.pytorch.models.DeepConvBlock`).
    readout_scale : float or "1/sqrt(q*)"
        Constant factor on the pooled features (:class:`~cnnmft.pytorch.models.VanillaCNN`).
    num_threads : int, optional
        torch CPU threads (default: torch's own choice).
    out_dir : str, optional
        Where to write logs, plots and checkpoints (None: nothing is written).
    checkpoint_every : int
        Save a checkpoint every this many steps (0: only at the end); needs `out_dir`.
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` if it exists.
    plots : bool
        Write the PNG figures into `out_dir`.
    test_fraction : float
        Digits test split.
    max_train, max_test : int, optional
        Subsample the data (quick runs).
    """

    dataset: str = "digits"
    data_dir: str | None = None
    depth: int = 10
    channels: int = 16
    kernel_size: int = 3
    init: str = "delta_orthogonal"
    sigma_w2: float | None = None
    sigma_b2: float | None = None
    q_star: float | None = None
    v: str = "uniform"
    t: float | None = None
    act: str = "tanh"
    padding: str = "circular"
    stem_strides: tuple | None = None
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    deep_lr_scale: object = 1.0
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    steps: int = 200
    batch_size: int = 64
    eval_every: int = 50
    eval_samples: int = 1000
    grad_norm_layers: tuple | None = None
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    tf32: bool = False
    checkpoint_segments: object = "auto"
    impl: str = "auto"
    readout_scale: object = 1.0
    num_threads: int | None = None
    out_dir: str | None = None
    checkpoint_every: int = 0
    resume: bool = False
    plots: bool = True
    test_fraction: float = 0.2
    max_train: int | None = None
    max_test: int | None = None

    def validate(self) -> "TrainConfig":
        """Check every field; return a normalised copy (raises ValueError naming the field)."""
        c = dataclasses.replace(self)
        c.depth = V.as_int(c.depth, "depth", low=0)
        c.channels = V.as_int(c.channels, "channels", low=1)
        c.optimizer = V.as_choice(c.optimizer, "optimizer", OPTIMIZERS)
        c.schedule = V.as_choice(c.schedule, "schedule", SCHEDULES)
        c.dtype = V.as_choice(str(c.dtype).replace("torch.", ""), "dtype", DTYPES)
        c.lr = float(V.as_float_array(c.lr, "lr", low=0.0, low_open=True))
        c.momentum = float(V.as_float_array(c.momentum, "momentum", low=0.0, high=1.0))
        c.weight_decay = float(V.as_float_array(c.weight_decay, "weight_decay", low=0.0))
        if c.deep_lr_scale != "1/depth":
            c.deep_lr_scale = float(V.as_float_array(c.deep_lr_scale, "deep_lr_scale", low=0.0))
        c.steps = V.as_int(c.steps, "steps", low=0)
        c.warmup_steps = V.as_int(c.warmup_steps, "warmup_steps", low=0)
        c.batch_size = V.as_int(c.batch_size, "batch_size", low=1)
        c.eval_every = V.as_int(c.eval_every, "eval_every", low=0)
        c.eval_samples = V.as_int(c.eval_samples, "eval_samples", low=1)
        c.checkpoint_every = V.as_int(c.checkpoint_every, "checkpoint_every", low=0)
        c.seed = V.as_int(c.seed, "seed", low=0)
        if c.stem_strides is not None:
            c.stem_strides = tuple(int(s) for s in c.stem_strides)
        if c.grad_norm_layers is not None:
            c.grad_norm_layers = tuple(V.as_int(i, "grad_norm_layers", low=1, high=max(c.depth, 1))
                                       for i in c.grad_norm_layers)
        if (c.checkpoint_every or c.resume) and c.out_dir is None:
            raise ValueError("`checkpoint_every`/`resume` need `out_dir` (where checkpoint.pt "
                             "lives)")
        return c

    def to_dict(self) -> dict:
        """JSON-able dict of the fields."""
        d = dataclasses.asdict(self)
        for k, val in d.items():
            if isinstance(val, tuple):
                d[k] = list(val)
        return d


@dataclass(frozen=True, eq=False)
class TrainResult(ResultMixin):
    """Outcome of :func:`train`.

    Attributes
    ----------
    config : str
        The :class:`TrainConfig` as JSON.
    sigma_w2, sigma_b2 : float
        Variances actually used (the critical point when the config left them None).
    loss : ndarray, shape (n_steps,)
        Training loss at each completed step (finite values only).
    lr : ndarray, shape (n_steps,)
        Learning rate used at each step.
    grad_norm_layers : ndarray of int, shape (k,)
        1-based deep-block layers whose gradient norm is logged.
    grad_norms : ndarray, shape (n_steps, k)
        Kernel-gradient norms of those layers at each step.
    init_grad_norms : ndarray, shape (depth,)
        Kernel-gradient norm of every deep layer at the first step (at initialisation).
    eval_step : ndarray of int, shape (n_eval,)
        Steps at which accuracies were measured (0 = before training).
    train_acc, test_acc, test_loss : ndarray, shape (n_eval,)
        Accuracies (in [0, 1]) and test loss at those steps.
    train_accuracy, test_accuracy : float
        Final accuracies (last evaluation).
    final_loss : float
        Last finite training loss (NaN if no step ran).
    steps_done : int
        Completed optimisation steps.
    status : int
        :class:`~cnnmft.results.Status`: OK, or NONFINITE when the loss became non-finite.
    message : str
        Human-readable summary (why the run stopped).
    wall_time : float
        Seconds spent in this call (excluding earlier runs that were resumed).
    step_time : float
        Median seconds per optimisation step in this call.
    n_params : int
        Trainable parameters.
    """

    config: str
    sigma_w2: float
    sigma_b2: float
    loss: np.ndarray
    lr: np.ndarray
    grad_norm_layers: np.ndarray
    grad_norms: np.ndarray
    init_grad_norms: np.ndarray
    eval_step: np.ndarray
    train_acc: np.ndarray
    test_acc: np.ndarray
    test_loss: np.ndarray
    train_accuracy: float
    test_accuracy: float
    final_loss: float
    steps_done: int
    status: int
    message: str
    wall_time: float
    step_time: float
    n_params: int

    @property
    def success(self) -> bool:
        """True if the run finished without a non-finite loss."""
        return int(self.status) == int(Status.OK)

    @property
    def settings(self) -> dict:
        """The config as a dict."""
        return json.loads(self.config)


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


def build_model(config: TrainConfig, data=None, generator=None):
    """Build the :class:`VanillaCNN` that `config` describes (shape taken from `data`)."""
    from cnnmft.pytorch.models import VanillaCNN

    in_ch = data.in_channels if data is not None else (1 if config.dataset != "cifar10" else 3)
    strides = config.stem_strides
    if strides is None:
        strides = (1, 2) if config.dataset == "digits" else (1, 2, 2)
    return VanillaCNN(config.depth, config.channels, in_channels=in_ch, num_classes=10,
                      kernel_size=config.kernel_size, init=config.init, sigma_w2=config.sigma_w2,
                      sigma_b2=config.sigma_b2, q_star=config.q_star, v=config.v, t=config.t,
                      act=config.act, padding=config.padding, stem_strides=strides,
                      checkpoint_segments=config.checkpoint_segments, impl=config.impl,
                      readout_scale=config.readout_scale, generator=generator)


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
    scale = config.deep_lr_scale
    if scale == "1/depth":
        scale = 1.0 / max(model.depth, 1)
    deep = [model.block.weight, model.block.bias]
    ids = {id(p) for p in deep}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": rest, "lr": config.lr},
            {"params": deep, "lr": config.lr * float(scale)}]


def _make_optimizer(config, params):
    torch = _torch()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, betas=(config.momentum, 0.999),
                            weight_decay=config.weight_decay)


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
            out.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            need -= take
        return torch.cat(out)

    def state_dict(self):
        return {"gen": self.gen.get_state(), "perm": self.perm, "pos": self.pos}

    def load_state_dict(self, s):
        self.gen.set_state(s["gen"])
        self.perm, self.pos = s["perm"], int(s["pos"])


def _evaluate(model, x, y, batch=512):
    torch = _torch()
    import torch.nn.functional as F

    was = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for a in range(0, len(y), batch):
            logits = model(x[a:a + batch])
            loss_sum += float(F.cross_entropy(logits, y[a:a + batch], reduction="sum"))
            correct += int((logits.argmax(1) == y[a:a + batch]).sum())
    model.train(was)
    n = max(len(y), 1)
    return correct / n, loss_sum / n


def _atomic_torch_save(obj, path):
    torch = _torch()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_csv(path, header, rows):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------- train

def train(config: TrainConfig | None = None, progress=True, callback=None,
          **overrides) -> TrainResult:
    r"""Train a vanilla CNN as described by `config` and return its history.

    The loss is the softmax cross-entropy of :class:`~cnnmft.pytorch.models.VanillaCNN`'s logits.
    The kernel-gradient norm of deep layer l, ``||dL/dW_l||_F``, is logged at each step for the
    layers in ``config.grad_norm_layers``, and for every layer at step 0 (initialisation): with
    Delta-orthogonal kernels at the critical point it is flat across depth (dynamical isometry,
    ``chi_1 = 1``); with Gaussian kernels it is not ([1]_, §3).

    Parameters
    ----------
    config : TrainConfig, optional
        Settings (default ``TrainConfig()``).
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
        Bad settings (the message names the field), or a checkpoint that belongs to another run.

    Notes
    -----
    Under ``torchrun`` (environment variable ``WORLD_SIZE`` > 1) the run is data-parallel
    (:mod:`cnnmft.pytorch.distributed`): every process draws the same global batch and takes its
    own slice; DDP averages the gradients, so the updates equal those of one process with the
    whole batch. Only rank 0 writes files.

    References
    ----------
    .. [1] Xiao et al. 2018, §5 (Figure 1: 10,000-layer vanilla tanh CNNs).

    Examples
    --------
    >>> res = train(TrainConfig(depth=4, channels=4, steps=3, eval_every=0, max_test=50),
    ...             progress=False)
    >>> res.steps_done, res.success
    (3, True)
    """
    torch = _torch()
    # subnormals make deep tanh nets crawl on x86 CPUs; the flag is process-wide, so it is
    # switched off again afterwards (torch has no getter to restore an earlier value)
    torch.set_flush_denormal(True)
    try:
        return _train(config, progress, callback, **overrides)
    finally:
        torch.set_flush_denormal(False)


def _train(config, progress, callback, **overrides):
    torch = _torch()
    import torch.nn.functional as F

    from cnnmft.pytorch import distributed as D
    from cnnmft.pytorch.data import load_dataset

    config = dataclasses.replace(config or TrainConfig(), **overrides).validate()
    t_start = time.perf_counter()
    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    dtype = getattr(torch, config.dtype)
    dist = D.setup(config.device)
    device = dist.device if dist.active else _resolve_device(config.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = bool(config.tf32)
        torch.backends.cudnn.allow_tf32 = bool(config.tf32)
    main = dist.rank == 0
    if dist.active and config.batch_size % dist.world_size:
        raise ValueError(f"`batch_size` = {config.batch_size} must be divisible by the number of "
                         f"processes ({dist.world_size})")

    data = load_dataset(config.dataset, config.data_dir, test_fraction=config.test_fraction,
                        seed=config.seed, max_train=config.max_train, max_test=config.max_test)
    xtr = torch.as_tensor(data.x_train, dtype=dtype, device=device)
    ytr = torch.as_tensor(data.y_train, device=device)
    xte = torch.as_tensor(data.x_test, dtype=dtype, device=device)
    yte = torch.as_tensor(data.y_test, device=device)
    ev = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(config.seed))
    ev = ev[:config.eval_samples].sort().values.to(device)
    xev, yev = xtr[ev], ytr[ev]

    gen = torch.Generator().manual_seed(config.seed)
    model = build_model(config, data, generator=gen).to(device=device, dtype=dtype)
    depth = model.depth
    layers = config.grad_norm_layers
    if layers is None:
        layers = tuple(sorted({1, max((depth + 1) // 2, 1), max(depth, 1)})) if depth else ()
    layer_idx = [i - 1 for i in layers]
    net = D.wrap(model, dist)
    opt = _make_optimizer(config, _param_groups(config, model))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(config))
    batches = _Batches(len(ytr), config.batch_size, config.seed)

    hist = {"loss": [], "lr": [], "gn": [], "eval": [], "init_gn": None}
    step = 0
    out = Path(config.out_dir) if config.out_dir is not None else None
    ckpt_path = out / "checkpoint.pt" if out is not None else None
    if out is not None and main:
        out.mkdir(parents=True, exist_ok=True)
    if config.resume and ckpt_path is not None and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        old = state["config"]
        bad = [k for k in _MODEL_FIELDS if _norm(old.get(k)) != _norm(getattr(config, k))]
        if bad:
            raise ValueError(f"checkpoint {str(ckpt_path)!r} belongs to another run: fields "
                             + ", ".join(f"{k} ({old.get(k)!r} there, {getattr(config, k)!r} here)"
                                         for k in bad))
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        batches.load_state_dict(state["batches"])
        torch.set_rng_state(state["torch_rng"])
        hist = state["history"]
        step = int(state["step"])

    def save_checkpoint():
        if ckpt_path is None or not main:
            return
        _atomic_torch_save({"config": config.to_dict(), "model": model.state_dict(),
                            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                            "batches": batches.state_dict(), "torch_rng": torch.get_rng_state(),
                            "history": hist, "step": step}, ckpt_path)

    def evaluate(at):
        tr_acc, _ = _evaluate(model, xev, yev)
        te_acc, te_loss = _evaluate(model, xte, yte)
        hist["eval"].append((at, tr_acc, te_acc, te_loss))
        return tr_acc, te_acc

    if not hist["eval"]:
        evaluate(0)

    bar = None
    if progress and main and step < config.steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=step, desc=f"train depth={depth}", unit="step",
                   dynamic_ncols=True, leave=True)
    status, message = Status.OK, ""
    step_times = []
    model.train()
    try:
        while step < config.steps:
            t0 = time.perf_counter()
            idx = batches.next()
            if dist.active:
                idx = idx[dist.rank::dist.world_size]
            idx = idx.to(device)
            logits = net(xtr[idx])
            loss = F.cross_entropy(logits, ytr[idx])
            loss_value = D.mean_scalar(loss.detach(), dist)
            if not math.isfinite(loss_value):
                status = Status.NONFINITE
                message = (f"stopped at step {step}: the training loss became {loss_value} "
                           f"(last finite loss {hist['loss'][-1] if hist['loss'] else 'none'}); "
                           "lower the learning rate or check the initialisation")
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gn = model.grad_norms()
            if step == 0 or hist["init_gn"] is None:
                hist["init_gn"] = gn.detach().cpu().double().numpy()
            hist["gn"].append([float(gn[i]) for i in layer_idx])
            hist["lr"].append(float(opt.param_groups[0]["lr"]))
            opt.step()
            sched.step()
            hist["loss"].append(loss_value)
            step += 1
            step_times.append(time.perf_counter() - t0)
            metrics = {"loss": loss_value}
            if (config.eval_every and step % config.eval_every == 0) or step == config.steps:
                tr_acc, te_acc = evaluate(step)
                metrics.update(train_acc=tr_acc, test_acc=te_acc)
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                save_checkpoint()
            if bar is not None:
                bar.update(1)
                post = {"loss": f"{loss_value:.4f}"}
                if hist["eval"]:
                    post["test_acc"] = f"{hist['eval'][-1][2]:.3f}"
                bar.set_postfix(post, refresh=False)
            if callback is not None and callback(step, metrics):
                message = f"stopped by the callback at step {step}"
                break
    except KeyboardInterrupt:
        save_checkpoint()
        raise
    finally:
        if bar is not None:
            bar.close()
    if hist["eval"] and hist["eval"][-1][0] != step:
        evaluate(step)
    if not message:
        message = f"finished {step} steps"
    save_checkpoint()

    ev_arr = np.array(hist["eval"], dtype=np.float64).reshape(-1, 4)
    k = len(layers)
    res = TrainResult(
        config=json.dumps(config.to_dict()),
        sigma_w2=float(model.sigma_w2), sigma_b2=float(model.sigma_b2),
        loss=np.asarray(hist["loss"], dtype=np.float64),
        lr=np.asarray(hist["lr"], dtype=np.float64),
        grad_norm_layers=np.asarray(layers, dtype=np.int64),
        grad_norms=np.asarray(hist["gn"], dtype=np.float64).reshape(-1, k),
        init_grad_norms=(np.asarray(hist["init_gn"], dtype=np.float64)
                         if hist["init_gn"] is not None else np.zeros(0)),
        eval_step=ev_arr[:, 0].astype(np.int64), train_acc=ev_arr[:, 1], test_acc=ev_arr[:, 2],
        test_loss=ev_arr[:, 3],
        train_accuracy=float(ev_arr[-1, 1]) if len(ev_arr) else float("nan"),
        test_accuracy=float(ev_arr[-1, 2]) if len(ev_arr) else float("nan"),
        final_loss=float(hist["loss"][-1]) if hist["loss"] else float("nan"),
        steps_done=int(step), status=int(status), message=message,
        wall_time=time.perf_counter() - t_start,
        step_time=float(np.median(step_times)) if step_times else float("nan"),
        n_params=int(sum(p.numel() for p in model.parameters())),
    )
    if out is not None and main:
        _write_outputs(res, out, plots=config.plots)
    return res


def _norm(x):
    if isinstance(x, (list, tuple)):
        return [_norm(y) for y in x]
    return x


def _write_outputs(res: TrainResult, out: Path, plots=True):
    layers = [int(i) for i in res.grad_norm_layers]
    rows = [[i + 1, repr(float(res.loss[i])), repr(float(res.lr[i]))]
            + [repr(float(g)) for g in res.grad_norms[i]] for i in range(len(res.loss))]
    _write_csv(out / "steps.csv", ["step", "loss", "lr"] + [f"grad_norm_layer_{i}" for i in layers],
               rows)
    _write_csv(out / "eval.csv", ["step", "train_acc", "test_acc", "test_loss"],
               [[int(s), repr(float(a)), repr(float(b)), repr(float(c))]
                for s, a, b, c in zip(res.eval_step, res.train_acc, res.test_acc, res.test_loss)])
    res.save(out / "result.json")
    if plots:
        plot_training([res], path=out / "training.png")


def plot_training(results, labels=None, path=None, title=None):
    """Figure of training loss, test accuracy and gradient norm per layer at initialisation.

    Parameters
    ----------
    results : list of TrainResult
    labels : list of str, optional
        Legend labels (default: depth and init from each config).
    path : str or Path, optional
        Save the figure here (PNG) and close it.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure or Path
        The figure, or the path when `path` is given.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if labels is None:
        labels = [f"{r.settings['init']}, depth {r.settings['depth']}" for r in results]
    fig, ax = plt.subplots(1, 3, figsize=(14, 3.8))
    for r, lab in zip(results, labels):
        if len(r.loss):
            ax[0].plot(np.arange(1, len(r.loss) + 1), r.loss, lw=0.8, label=lab)
        ax[1].plot(r.eval_step, r.test_acc, "o-", ms=3, label=lab + " (test)")
        ax[1].plot(r.eval_step, r.train_acc, "--", lw=0.8, color=ax[1].lines[-1].get_color())
        if len(r.init_grad_norms):
            ax[2].semilogy(np.arange(1, len(r.init_grad_norms) + 1), r.init_grad_norms, lw=0.8,
                           label=lab)
    ax[0].set(xlabel="step", ylabel="training loss", yscale="log")
    ax[1].set(xlabel="step", ylabel="accuracy (solid test, dashed train)", ylim=(0, 1.02))
    ax[1].axhline(0.1, color="grey", lw=0.6, ls=":")
    ax[2].set(xlabel="deep layer l", ylabel="||dL/dW_l|| at initialisation")
    for a in ax:
        a.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return Path(path)
    return fig
