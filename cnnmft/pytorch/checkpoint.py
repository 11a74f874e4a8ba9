"""Training checkpoints that cannot run code, carry a checksum and survive a kill at any moment.

File layout (one file, written atomically)::

    magic line      CNNMFT-CHECKPOINT 1
    digest line     64 hex digits: sha256 of the payload
    payload         torch.save of a dict of tensors, numbers, strings, lists

* The payload holds only what ``torch.load(weights_only=True)`` accepts (tensors, Python numbers,
  strings, lists, tuples, dicts): no numpy arrays, no custom classes, so loading never unpickles
  code. The checksum is verified *before* the payload is parsed at all.
* :func:`save_checkpoint` writes to a temporary file in the same folder, flushes it to disk and
  renames it over the target (``os.replace`` is atomic on POSIX). The previous good checkpoint is
  first renamed to ``<name>.prev``, so a SIGKILL between the two renames still leaves one good
  file, and :func:`load_latest` falls back to it.
* An empty, truncated, byte-flipped or foreign file raises :class:`CheckpointError` (a
  ``ValueError``) naming the file and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "load_latest",
    "previous_path",
    "MAGIC",
]

MAGIC = b"CNNMFT-CHECKPOINT 1\n"
_DIGEST_LEN = 64


class CheckpointError(ValueError):
    """A checkpoint file that is missing, empty, truncated, corrupted or not a checkpoint."""


def previous_path(path) -> Path:
    """Path of the previous good checkpoint kept beside `path` (``<name>.prev``)."""
    path = Path(path)
    return path.with_name(path.name + ".prev")


def save_checkpoint(state: dict, path) -> Path:
    """Write `state` to `path` atomically, with a sha256 checksum; keep the last one as ``.prev``.

    Parameters
    ----------
    state : dict
        Tensors, Python numbers, strings, bools, None, and lists/tuples/dicts of them.
    path : str or Path
        Target file.

    Returns
    -------
    Path
        `path`.

    Examples
    --------
    >>> import tempfile, torch  # doctest: +SKIP
    >>> p = save_checkpoint({"w": torch.ones(2)}, tempfile.mkdtemp() + "/c.pt")  # doctest: +SKIP
    >>> load_checkpoint(p)["w"]  # doctest: +SKIP
    tensor([1., 1.])
    """
    import torch

    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode("ascii")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(MAGIC)
        fh.write(digest + b"\n")
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    if path.is_file():
        os.replace(path, previous_path(path))
    os.replace(tmp, path)
    return path


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, checking its checksum first.

    Raises
    ------
    CheckpointError
        Missing, empty, truncated, corrupted (checksum mismatch) or foreign file; the message
        names the file.
    """
    import torch

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {exc}") from None
    if not raw:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty (0 bytes)")
    head = len(MAGIC) + _DIGEST_LEN + 1
    if not raw.startswith(MAGIC):
        raise CheckpointError(
            f"{str(path)!r} is not a cnnmft checkpoint (its first bytes are "
            f"{raw[:20]!r}, expected {MAGIC!r})"
        )
    if len(raw) <= head or raw[head - 1 : head] != b"\n":
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated ({len(raw)} bytes, the "
            f"header alone takes {head})"
        )
    digest = raw[len(MAGIC) : head - 1].decode("ascii", "replace")
    payload = raw[head:]
    actual = hashlib.sha256(payload).hexdigest()
    if actual != digest:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted or truncated: sha256 of its "
            f"{len(payload)} payload bytes is {actual[:16]}..., the header "
            f"records {digest[:16]}..."
        )
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the checksum matched but the content is not ours
        raise CheckpointError(
            f"checkpoint {str(path)!r} has a valid checksum but cannot be read "
            f"safely (weights_only): {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {type(state).__name__}, expected a dict"
        )
    return state


def load_latest(path, map_location="cpu"):
    """Load `path`, or its ``.prev`` copy when `path` is bad; None when neither exists.

    A bad `path` next to a good ``.prev`` gives a :class:`RuntimeWarning` naming both and the
    state of ``.prev``; when every file present is bad a :class:`CheckpointError` lists them all
    (a run never resumes from a bad checkpoint).

    Returns
    -------
    tuple (dict, Path) or None
        The state and the file it came from.
    """
    path = Path(path)
    errors = []
    for cand in (path, previous_path(path)):
        if not cand.exists():
            continue
        try:
            state = load_checkpoint(cand, map_location=map_location)
        except CheckpointError as exc:
            errors.append(str(exc))
            continue
        if errors:
            warnings.warn(
                f"{errors[0]}; resuming from the previous good checkpoint {str(cand)!r} instead",
                RuntimeWarning,
                stacklevel=2,
            )
        return state, cand
    if errors:
        raise CheckpointError(
            "no good checkpoint to resume from: "
            + "; ".join(errors)
            + ". Delete these files to start the run again from scratch"
        )
    return None
