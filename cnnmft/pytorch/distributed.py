"""Data-parallel training with ``torch.distributed`` (DDP), launched by ``torchrun``.

Launch one training over several processes (CPU: the gloo backend; CUDA: NCCL, one GPU each)::

    torchrun --nproc_per_node 2 -m cnnmft train --depth 10 --steps 200
    # `cnnmft train` itself: the same flags, --config file and outputs

:func:`cnnmft.pytorch.train.train` detects torchrun's environment (``WORLD_SIZE`` > 1): every
process draws the same global batch from the same seeded generator and keeps the slice
``rank::world_size``; DDP averages the gradients, so each update is the one a single process
would make with the whole batch. Only rank 0 prints and writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = [
    "DistInfo",
    "setup",
    "wrap",
    "mean_scalar",
    "broadcast_object",
    "shutdown",
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


def shutdown() -> None:
    """Destroy the process group of this run if one was started (call once training ends).

    ``cnnmft train`` calls it after :func:`cnnmft.pytorch.train.train` returns or fails, so
    that torchrun's processes exit without torch's warning about a live process group.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
