"""Data-parallel training with ``torch.distributed`` (DDP), launched by ``torchrun``.

Launch one training over several processes (CPU: the gloo backend; CUDA: NCCL, one GPU each)::

    torchrun --nproc_per_node 2 -m cnnmft.pytorch.distributed --depth 10 --steps 200
    # one flag per TrainConfig field, as in `cnnmft train`

:func:`cnnmft.pytorch.train.train` detects torchrun's environment (``WORLD_SIZE`` > 1): every
process draws the same global batch from the same seeded generator and keeps the slice
``rank::world_size``; DDP averages the gradients, so each update is the one a single process
would make with the whole batch. Only rank 0 prints and writes files.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass

from cnnmft.pytorch.config import TrainConfig

__all__ = [
    "DistInfo",
    "setup",
    "wrap",
    "mean_scalar",
    "broadcast_object",
    "config_parser",
    "config_from_namespace",
    "main",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a distributed run.

    Attributes
    ----------
    active : bool
        True under torchrun with more than one process.
    rank, world_size, local_rank : int
    device : torch.device or None
        The device of this process (CUDA: ``cuda:local_rank``) when active.
    """

    active: bool
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: object = None


def setup(device="cpu") -> DistInfo:
    """Join the process group that torchrun describes, if any (idempotent).

    Parameters
    ----------
    device : str
        "cpu" (gloo backend), "cuda"/"auto" (NCCL when CUDA is available).

    Returns
    -------
    DistInfo
        ``active=False`` outside torchrun or with one process.
    """
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(False)
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = str(device).startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(True, rank, world, local, dev)


def wrap(model, info: DistInfo):
    """Return ``DistributedDataParallel(model)`` when `info` is active, else `model` itself."""
    if not info.active:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def mean_scalar(value, info: DistInfo) -> float:
    """Average a scalar tensor over the processes (itself when not distributed)."""
    if not info.active:
        return float(value)
    import torch
    import torch.distributed as dist

    t = value.detach().to(torch.float64).reshape(1).clone()
    dist.all_reduce(t)
    return float(t) / info.world_size


def broadcast_object(obj, info: DistInfo):
    """Return rank 0's `obj` on every rank (itself when not distributed).

    Used on resume: only rank 0 reads the checkpoint file (verifying its checksum), then sends
    the state to the other ranks over the process group, so the ranks agree on whether and from
    which step to resume even without a shared filesystem. The object travels between this run's
    own processes only; nothing is read from a file on the receiving side.
    """
    if not info.active:
        return obj
    import torch.distributed as dist

    box = [obj if info.rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _parse_value(text):
    """``"none"`` -> None, an int, a float, or the string itself."""
    if text.lower() == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def config_parser(prog="torchrun -m cnnmft.pytorch.distributed"):
    """An :mod:`argparse` parser with one ``--flag`` per :class:`TrainConfig` field.

    Flags are the field names with dashes; booleans are ``--flag``/``--no-flag``; tuples take
    several values; every flag's help is the field's ``metadata["help"]``. The result of
    ``parse_args`` holds only the flags given (:func:`config_from_namespace`).
    """
    p = argparse.ArgumentParser(
        prog=prog,
        argument_default=argparse.SUPPRESS,
        description="cnnmft train, data-parallel under torchrun",
    )
    aliases = {"num_threads": ["--threads"], "out_dir": ["--out"]}  # as in `cnnmft train`
    for f in dataclasses.fields(TrainConfig):
        flags = ["--" + f.name.replace("_", "-")] + aliases.get(f.name, [])
        text = f"{f.metadata['help']} (default {f.default!r})".replace("%", "%%")
        if isinstance(f.default, bool):
            p.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, help=text)
        elif f.name in ("stem_strides", "grad_norm_layers"):
            p.add_argument(*flags, dest=f.name, type=int, nargs="*", help=text)
        else:
            p.add_argument(*flags, dest=f.name, type=_parse_value, help=text)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_namespace(ns):
    """:class:`TrainConfig` from the namespace of :func:`config_parser` (defaults elsewhere)."""
    given = {k: v for k, v in vars(ns).items() if k != "quiet"}
    for k in ("stem_strides", "grad_norm_layers"):
        if given.get(k) is not None:
            given[k] = tuple(given[k])
    return TrainConfig(**given)


def main(argv=None) -> int:
    """Entry point for ``torchrun -m cnnmft.pytorch.distributed <TrainConfig flags>``."""
    import torch.distributed as dist

    # train imports this module: importing it here, when a run starts, avoids the cycle
    from cnnmft.pytorch.train import train

    args = config_parser().parse_args(argv)
    try:
        res = train(config_from_namespace(args), progress=not getattr(args, "quiet", False))
        if int(os.environ.get("RANK", "0")) == 0:
            print(
                f"{res.message}: test acc {res.test_accuracy:.4f} ({res.dataset}), final loss "
                f"{res.final_loss:.4g}"
            )
        return 0 if res.success else 3
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover - run by torchrun
    raise SystemExit(main())
