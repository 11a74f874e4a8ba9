"""``cnnmft train``: train a vanilla CNN (digits by default) and write metrics, plots, checkpoints.

Every field of :class:`cnnmft.pytorch.config.TrainConfig` is a flag (``--field-name``) with its
default and help; ``--config FILE`` (TOML or JSON) sets any of them and the flags typed win.
The resolved settings are saved as ``resolved_config.json`` in the output folder (``--config``
reads it back). Without ``--out`` the results go to ``runs/train-<date>-<time>/`` and the folder is
printed.

Examples::

    cnnmft train --depth 1000 --channels 16 --steps 200 --out runs/d1000
    cnnmft train --depth 1000 --out runs/d1000 --resume          # continue the same run
    cnnmft train --config runs/d1000/config.json --steps 400     # the same run, longer
    cnnmft train --dataset fashion-mnist --depth 10000 --channels 128 --device cuda
    torchrun --nproc_per_node 2 -m cnnmft train --depth 100 --steps 50   # DDP, 2 processes
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cnnmft.commands import _config as cfg
from cnnmft.commands._common import Output, add_common, check_range, format_bytes, need_memory
from cnnmft.results import Status

# TrainConfig is read from its source so that `cnnmft train --help` does not import torch
SOURCE = Path(__file__).resolve().parents[1] / "pytorch" / "train.py"
ALIASES = {"num_threads": ["--threads"], "out_dir": ["--out"]}
GROUPS = {
    "model": [
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
        "checkpoint_segments",
        "impl",
        "readout_scale",
        "freeze_block",
    ],
    "data": ["dataset", "data_dir", "max_train", "max_test", "test_fraction"],
    "optimisation": [
        "optimizer",
        "lr",
        "momentum",
        "deep_lr_scale",
        "weight_decay",
        "schedule",
        "warmup_steps",
        "steps",
        "batch_size",
        "seed",
    ],
    "run": [
        "device",
        "dtype",
        "tf32",
        "num_threads",
        "eval_every",
        "eval_samples",
        "grad_norm_layers",
        "out_dir",
        "checkpoint_every",
        "resume",
        "plots",
    ],
}
FLAG_ALIASES = {"out_dir": "--out", "num_threads": "--threads"}


def options():
    """The :class:`~cnnmft.commands._config.Option` list of ``TrainConfig`` (read, not imported)."""
    return cfg.options_from_source(SOURCE, "TrainConfig")


def configure(p):
    """Add one flag per ``TrainConfig`` field, ``--config`` and the output options."""
    opts = options()
    known = {o.name for o in opts}
    groups = {t: [n for n in names if n in known] for t, names in GROUPS.items()}
    rest = [o.name for o in opts if not any(o.name in g for g in groups.values())]
    if rest:
        groups["other"] = rest
    p.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="TOML or JSON file of settings (keys as the flags, - or _); flags typed "
        "on the command line win",
    )
    p.set_defaults(_options=cfg.add_options(p, opts, aliases=ALIASES, groups=groups))
    add_common(p)


def resolve(args):
    """Merge defaults, ``--config`` and flags; return ``(values, origin)``."""
    file_values = cfg.load_config_file(args.config, "train") if args.config else {}
    return cfg.resolve(args._options, args, file_values)


def _precheck(values):
    """Refuse impossible sizes before torch builds anything."""
    depth, channels, k = values["depth"], values["channels"], values["kernel_size"]
    check_range(depth, "--depth", 1)
    check_range(channels, "--channels", 1)
    check_range(k, "--kernel-size", 1)
    itemsize = 8 if values.get("dtype") == "float64" else 4
    # deep-block weights and biases; with their gradient and one (SGD momentum) or two (Adam)
    # optimizer buffers: a lower bound that ignores activations, data and the stem
    params = float(depth) * (channels * channels * k * k + channels)
    copies = 4 if values.get("optimizer") == "adam" else 3
    need_memory(
        params * itemsize * copies,
        f"--depth {depth} --channels {channels} --kernel-size {k} "
        f"({params:.3g} deep-block parameters, {format_bytes(params * itemsize)} each "
        "for weights, gradients and optimizer state)",
    )


def run(args) -> int:
    """Train and print a summary; exit code 0, or 3 when the run failed.

    Failed: the loss became non-finite, or the run ended at chance (``Status.AT_CHANCE``);
    the status is printed by name with the reason.
    """
    out = Output(args)
    values, origin = resolve(args)
    _precheck(values)
    if values.get("out_dir") is None:
        values["out_dir"] = str(Path("runs") / time.strftime("train-%Y%m%d-%H%M%S"))
        origin["out_dir"] = "default"
    rank0 = int(os.environ.get("RANK", "0")) == 0

    from cnnmft.pytorch.train import TrainConfig, train  # torch: only when a run starts

    config = TrainConfig(**values).validate()
    out.debug(
        "settings: "
        + ", ".join(f"{k}={v!r}" for k, v in values.items() if origin.get(k) != "default")
    )
    if rank0:
        cfg.save_resolved(Path(config.out_dir) / "resolved_config.json", "train", values, origin)
        out.note(f"results go to {config.out_dir}/ (settings in resolved_config.json)")
    from cnnmft.pytorch.distributed import shutdown

    try:
        res = train(config, progress=out.progress)
    finally:
        shutdown()  # under torchrun: the process group ends with the run
    if rank0:
        out.result(
            f"{Status(int(res.status)).name}: {res.message}: train acc "
            f"{res.train_accuracy:.4f}, test acc "
            f"{res.test_accuracy:.4f}, final loss {res.final_loss:.4g} "
            f"(sigma_w2={res.sigma_w2:.6g}, sigma_b2={res.sigma_b2:.3g}, "
            f"{res.step_time:.3g} s/step)"
        )
        out.data(
            {
                "message": res.message,
                "status": Status(int(res.status)).name,
                "train_accuracy": res.train_accuracy,
                "test_accuracy": res.test_accuracy,
                "final_loss": res.final_loss,
                "sigma_w2": res.sigma_w2,
                "sigma_b2": res.sigma_b2,
                "steps_done": res.steps_done,
                "seconds_per_step": res.step_time,
                "out_dir": config.out_dir,
            }
        )
        out.note(f"metrics, plots and checkpoint in {config.out_dir}")
    return 0 if res.success else 3
