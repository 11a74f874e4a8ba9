"""Settings of one training run (:class:`TrainConfig`) and the depth rule for the learning rate.

Torch-free: the command line builds its ``train`` parser from the fields of :class:`TrainConfig`
(each field's ``metadata["help"]`` is its help text) without importing torch.

The default is the paper's plain protocol (Xiao et al. 2018, section 5): SGD with momentum, one
learning rate for every parameter, readout weights ``N(0, 1/C)``, the critical point with
``q* = 1/depth``, Delta-orthogonal kernels with circular padding. The fields marked
*deviation* (``deep_lr_scale``, ``readout_scale``, ``optimizer="adam"``) are off by default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cnnmft import _validation as V

__all__ = [
    "TrainConfig",
    "lr_for_depth",
    "LR_DEPTH_CONSTANT",
    "DATASET_CHOICES",
    "OPTIMIZERS",
    "SCHEDULES",
    "DTYPES",
    "MODEL_FIELDS",
]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine", "step", "linear")
DTYPES = ("float32", "float64")
DATASET_CHOICES = ("digits", "digits28", "fashion-mnist", "mnist", "cifar10")

#: ``lr = LR_DEPTH_CONSTANT / depth`` for SGD with momentum 0.9 (see :func:`lr_for_depth`).
LR_DEPTH_CONSTANT = 0.3

# fields that define the model and the data: a checkpoint only resumes a run that agrees on them
MODEL_FIELDS = (
    "dataset",
    "depth",
    "channels",
    "kernel_size",
    "init",
    "sigma_w2",
    "sigma_b2",
    "q_star",
    "v",
    "t",
    "act",
    "padding",
    "stem_strides",
    "seed",
    "dtype",
    "batch_size",
    "optimizer",
    "test_fraction",
    "max_train",
    "deep_lr_scale",
    "readout_scale",
    "freeze_block",
    "lr",
    "momentum",
    "weight_decay",
    "schedule",
    "warmup_steps",
)


def lr_for_depth(depth: int, constant: float = LR_DEPTH_CONSTANT) -> float:
    r"""Learning rate of the plain protocol for a deep block of `depth` layers.

    .. math:: \eta(L) = \frac{c}{\max(L, 1)}

    Why ``1/L``: with Delta-orthogonal kernels at the critical point the input-output Jacobian is
    an isometry, so every deep layer's kernel gradient has the same size and one SGD step moves
    the logits by a sum of ``L`` aligned first-order terms, ~ ``L eta``; a fixed ``eta L`` keeps
    that step the same at every depth. The constant ``c`` comes from a learning-rate grid at
    depths 10, 100 and 1,000 on Fashion-MNIST (docs/training.md, "Learning rate").

    Parameters
    ----------
    depth : int
        Layers of the deep block (>= 0; depth 0 uses ``c``).
    constant : float
        ``c`` (default :data:`LR_DEPTH_CONSTANT`).

    Returns
    -------
    float

    Examples
    --------
    >>> lr_for_depth(10), lr_for_depth(100)
    (0.03, 0.003)
    >>> round(lr_for_depth(10_000), 12)
    3e-05
    """
    depth = V.as_int(depth, "depth", low=0)
    c = float(V.as_float_array(constant, "constant", low=0.0, low_open=True))
    return c / max(depth, 1)


def _f(default, help):  # noqa: A002 - the metadata key the parser generator reads
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Settings of one training run; every field's help text is in its metadata.

    The fields are listed with their meaning in ``metadata["help"]`` (what ``cnnmft train
    --help`` prints). ``lr=None`` picks :func:`lr_for_depth`; ``sigma_w2 = sigma_b2 = None`` the
    critical point with ``q* = 1/depth``.

    Examples
    --------
    >>> c = TrainConfig(depth=100).validate()
    >>> c.lr, c.optimizer, c.deep_lr_scale, c.readout_scale
    (0.003, 'sgd', 1.0, 1.0)
    """

    dataset: str = _f(
        "digits",
        "data: digits (8x8, embedded, default), digits28 (digits resized "
        "to 28x28), fashion-mnist (Debian package dataset-fashion-mnist or "
        "--data-dir), mnist (IDX files in --data-dir), cifar10 (python batches in "
        "--data-dir)",
    )
    data_dir: str | None = _f(
        None,
        "folder with the IDX files or the CIFAR-10 python batches "
        "(fashion-mnist: default /usr/share/datasets/fashion-mnist)",
    )
    depth: int = _f(10, "layers L of the deep block")
    channels: int = _f(16, "width C of the stem and the deep block")
    kernel_size: int = _f(3, "kernel size of the deep block")
    init: str = _f(
        "delta_orthogonal",
        "deep-block kernels: delta_orthogonal, block_orthogonal, tunable_orthogonal or gaussian",
    )
    sigma_w2: float | None = _f(
        None, "weight variance (default: the critical point with q* = 1/depth)"
    )
    sigma_b2: float | None = _f(None, "bias variance (alone: the critical sigma_w2 for it)")
    q_star: float | None = _f(
        None, "fixed point q* of the default critical point (default 1/depth)"
    )
    v: str = _f(
        "uniform", "variance profile of Gaussian kernels: uniform, delta, binomial, tunable"
    )
    t: float | None = _f(None, "parameter of the tunable family")
    act: str = _f("tanh", "activation")
    padding: str = _f("circular", "padding of the deep block: circular (the theory's) or zeros")
    stem_strides: tuple | None = _f(
        None,
        "strides of the stem convolutions (default: 1 2 for "
        "8x8 digits -> 4x4, 2 2 for 28x28 -> 7x7, 2 2 for 32x32 -> "
        "8x8)",
    )
    freeze_block: bool = _f(
        False, "control: keep the deep block at its initial weights (stem and readout still train)"
    )
    optimizer: str = _f("sgd", "sgd (with momentum, the paper's) or adam (deviation)")
    lr: float | None = _f(
        None, "learning rate of every parameter (default: 0.3/depth, the measured depth rule)"
    )
    momentum: float = _f(0.9, "SGD momentum (Adam: beta1)")
    deep_lr_scale: object = _f(
        1.0,
        "deviation: learning-rate multiplier of the deep block, a "
        "number or '1/depth' (default 1: one learning rate)",
    )
    weight_decay: float = _f(0.0, "L2 weight decay")
    schedule: str = _f(
        "constant",
        "learning-rate schedule after warm-up: constant, cosine, "
        "step (x0.1 at half and at three quarters of the steps) or linear",
    )
    warmup_steps: int = _f(0, "linear warm-up steps")
    steps: int = _f(200, "optimisation steps")
    batch_size: int = _f(64, "global batch size (split across processes under torchrun)")
    eval_every: int = _f(50, "evaluate every this many steps (0: only at the start and end)")
    eval_start: bool = _f(
        True,
        "evaluate before the first step (off saves one pass over the "
        "test set on very deep networks)",
    )
    eval_samples: int = _f(1000, "training examples used for the train accuracy (fixed subset)")
    grad_norm_layers: tuple | None = _f(
        None,
        "1-based deep layers whose kernel-gradient norm "
        "is logged every step (default first, middle, last)",
    )
    seed: int = _f(0, "seed of the initialisation, the digits split and the batch order")
    device: str = _f("cpu", "cpu, cuda, cuda:N or auto")
    dtype: str = _f("float32", "float32 or float64")
    tf32: bool = _f(False, "allow TF32 matmuls on CUDA (off: full fp32)")
    checkpoint_segments: object = _f(
        "auto",
        "activation checkpointing of the deep block: auto "
        "(ceil(sqrt(depth)) segments), none, or a count",
    )
    impl: str = _f("auto", "deep-block implementation: auto, autograd, fused or dense")
    readout_scale: object = _f(
        1.0,
        "deviation: factor on the pooled features, a number or "
        "'1/sqrt(q*)' (default 1: the paper's network)",
    )
    num_threads: int | None = _f(
        None,
        "torch CPU threads (default: the count fixed by "
        "cnnmft.set_num_threads or CNNMFT_NUM_THREADS, else 1, measured "
        "fastest for these small convolutions on a shared 2-core machine "
        "and the same from run to run; 0: torch's own choice)",
    )
    out_dir: str | None = _f(None, "folder for logs, plots and checkpoints")
    checkpoint_every: int = _f(0, "save a checkpoint every this many steps (0: only at the end)")
    resume: bool = _f(False, "continue from out_dir/checkpoint.pt (or its .prev copy if it is bad)")
    plots: bool = _f(True, "write PNG figures into out_dir")
    test_fraction: float = _f(0.2, "held-out fraction of the digits")
    max_train: int | None = _f(None, "keep a random subset of this many training examples")
    max_test: int | None = _f(None, "keep a random subset of this many test examples")

    def validate(self) -> "TrainConfig":
        """Check every field; return a normalised copy (raises ValueError naming the field)."""
        c = dataclasses.replace(self)
        c.dataset = V.as_choice(
            str(c.dataset).lower().replace("_", "-"), "dataset", DATASET_CHOICES
        )
        c.depth = V.as_int(c.depth, "depth", low=0)
        c.channels = V.as_int(c.channels, "channels", low=1)
        c.optimizer = V.as_choice(c.optimizer, "optimizer", OPTIMIZERS)
        c.schedule = V.as_choice(c.schedule, "schedule", SCHEDULES)
        c.dtype = V.as_choice(str(c.dtype).replace("torch.", ""), "dtype", DTYPES)
        c.lr = (
            lr_for_depth(c.depth)
            if c.lr is None
            else float(V.as_float_array(c.lr, "lr", low=0.0, low_open=True))
        )
        c.momentum = float(V.as_float_array(c.momentum, "momentum", low=0.0, high=1.0))
        c.weight_decay = float(V.as_float_array(c.weight_decay, "weight_decay", low=0.0))
        if c.deep_lr_scale != "1/depth":
            c.deep_lr_scale = float(V.as_float_array(c.deep_lr_scale, "deep_lr_scale", low=0.0))
        if c.readout_scale != "1/sqrt(q*)":
            c.readout_scale = float(
                V.as_float_array(c.readout_scale, "readout_scale", low=0.0, low_open=True)
            )
        for name in ("steps", "warmup_steps", "eval_every", "checkpoint_every", "seed"):
            setattr(c, name, V.as_int(getattr(c, name), name, low=0))
        c.batch_size = V.as_int(c.batch_size, "batch_size", low=1)
        c.eval_samples = V.as_int(c.eval_samples, "eval_samples", low=1)
        if c.num_threads is not None:
            c.num_threads = V.as_int(c.num_threads, "num_threads", low=0)
        for name in ("freeze_block", "resume", "plots", "tf32", "eval_start"):
            setattr(c, name, bool(getattr(c, name)))
        if c.stem_strides is not None:
            c.stem_strides = tuple(V.as_int(s, "stem_strides", low=1) for s in c.stem_strides)
        if c.grad_norm_layers is not None:
            c.grad_norm_layers = tuple(
                V.as_int(i, "grad_norm_layers", low=1, high=max(c.depth, 1))
                for i in c.grad_norm_layers
            )
        if (c.checkpoint_every or c.resume) and c.out_dir is None:
            raise ValueError(
                "`checkpoint_every`/`resume` need `out_dir` (where checkpoint.pt lives)"
            )
        return c

    def to_dict(self) -> dict:
        """JSON-able dict of the fields (tuples as lists)."""
        d = dataclasses.asdict(self)
        for k, val in d.items():
            if isinstance(val, tuple):
                d[k] = list(val)
        return d

    @classmethod
    def field_help(cls) -> dict:
        """``{field name: help text}`` for every field (what the command line shows)."""
        return {f.name: f.metadata["help"] for f in dataclasses.fields(cls)}
