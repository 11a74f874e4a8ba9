"""Argument checks shared by the public wrappers.

Every check raises ``ValueError`` (or ``TypeError`` for wrong types) with a message that names the
argument in backticks, shows the value received and states the allowed range.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Collection
from typing import Any

import numpy as np


def _show(value) -> str:
    arr = np.asarray(value)
    if arr.ndim == 0:
        return repr(arr.item())
    bad = arr.ravel()
    return f"array of shape {arr.shape} (first entries {bad[:4].tolist()})"


def as_float_array(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    allow_inf: bool = False,
) -> np.ndarray:
    """Return `value` as a float64 array after checking finiteness and range.

    Parameters
    ----------
    value : array_like
        The argument.
    name : str
        Its name, used in the error message.
    low, high : float, optional
        Allowed closed range ``[low, high]`` (``low_open`` makes the lower bound strict).
    allow_inf : bool
        Accept ``+inf`` (never NaN).
    """
    _refuse_non_real(value, name)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"`{name}` must be a real number or an array of them, got {value!r}"
        ) from None
    rng_txt = _range_text(low, high, low_open)
    if np.isnan(arr).any():
        raise ValueError(f"`{name}` must be a finite number {rng_txt}; got NaN in {_show(value)}")
    if not allow_inf and not np.isfinite(arr).all():
        raise ValueError(f"`{name}` must be finite {rng_txt}; got {_show(value)}")
    if low is not None:
        bad = (arr <= low) if low_open else (arr < low)
        if bad.any():
            raise ValueError(
                f"`{name}` must be {rng_txt}; got {_show(arr[bad].ravel()[0])}"
                + (f" in {_show(value)}" if arr.ndim else "")
            )
    if high is not None and (arr > high).any():
        raise ValueError(f"`{name}` must be {rng_txt}; got {_show(arr[arr > high].ravel()[0])}")
    return arr


def as_float(value: Any, name: str, **kwargs: Any) -> float:
    """Return a scalar argument as a Python float, with the checks of :func:`as_float_array`.

    An array with other than one element is refused by name.
    """
    arr = as_float_array(value, name, **kwargs)
    if arr.size != 1:
        raise ValueError(f"`{name}` must be a single number; got an array of shape {arr.shape}")
    return float(arr.reshape(()))


def _refuse_non_real(value, name: str) -> None:
    """TypeError for complex (even with a zero imaginary part), bool, string and None input.

    numpy would otherwise drop an imaginary part, read ``True`` as 1 and parse ``"2.5"``.
    """
    if value is None or isinstance(value, (str, bytes, bool, np.bool_)):
        raise TypeError(
            f"`{name}` must be a real number or an array of them, got {value!r} "
            f"of type {type(value).__name__}"
        )
    try:
        kind = np.asarray(value).dtype.kind
    except (TypeError, ValueError):  # ragged nesting
        raise TypeError(
            f"`{name}` must be a real number or a (rectangular) array of them, got {value!r}"
        ) from None
    if kind == "O":
        flat = np.asarray(value, dtype=object).ravel()
        bad = [
            v
            for v in flat
            if v is None or isinstance(v, (str, bytes, bool, np.bool_, complex, np.complexfloating))
        ]
        if bad:
            raise TypeError(
                f"`{name}` must hold real numbers only, got {bad[0]!r} of type "
                f"{type(bad[0]).__name__} in {value!r}"
            )
    elif kind in "cbUS":
        what = {"c": "complex", "b": "bool", "U": "string", "S": "bytes"}[kind]
        raise TypeError(
            f"`{name}` must be a real number or an array of them, got {what} input {_show(value)}"
        )


def _range_text(low, high, low_open=False) -> str:
    if low is None and high is None:
        return "(any real value)"
    lo = "(" if low_open else "["
    a = "-inf" if low is None else f"{low:g}"
    b = "inf" if high is None else f"{high:g}"
    hi = ")" if high is None else "]"
    return f"in {lo}{a}, {b}{hi}"


def as_int(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Return `value` as a Python int after checking the type and the range ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be an integer, got {value!r} of type {type(value).__name__}"
        )
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"`{name}` must be an integer {_range_text(low, high)}; got {value}")
    return value


def as_choice(value: Any, name: str, choices: Collection[str]) -> str:
    """Check that `value` is one of `choices` (strings) and return it."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {sorted(choices)}; got {value!r}")
    return value


def broadcast(**arrays: Any) -> tuple[np.ndarray, ...]:
    """Broadcast named arrays together; a shape mismatch names the arguments and their shapes."""
    try:
        out = np.broadcast_arrays(*arrays.values())
    except ValueError:
        shapes = ", ".join(f"`{k}` {np.shape(v)}" for k, v in arrays.items())
        raise ValueError(f"arguments cannot be broadcast together: {shapes}") from None
    return tuple(np.array(a, dtype=np.float64, order="C") for a in out)


def make_rng(rng: Any) -> np.random.Generator:
    """Return a ``np.random.Generator`` from None, an int seed or a Generator."""
    if rng is None or isinstance(rng, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(rng, bool):
            raise TypeError(f"`rng` must be None, an int or a numpy Generator, got {rng!r}")
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"`rng` must be None, an int or a numpy Generator, got {rng!r}")


def available_memory() -> int:
    """Bytes of memory this process may still allocate (MemAvailable, else physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def require_memory(nbytes: float, what: str) -> None:
    """Refuse up front (ValueError naming the size) a request that cannot fit in memory.

    `nbytes` is the peak memory the request needs, `what` names it (e.g. the argument and its
    value).
    """
    avail = available_memory()
    if nbytes > avail:
        raise ValueError(
            f"{what} needs about {nbytes / 2**30:.3g} GiB of memory, more than the "
            f"{avail / 2**30:.3g} GiB available; use a smaller size"
        )
