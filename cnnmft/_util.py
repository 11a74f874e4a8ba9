"""Plumbing used across the package, each written once: progress, BLAS threads, atomic files.

* :func:`progress_bar` and :func:`progress_callback`: the one tqdm wrapper. Every long loop in
  the library shows progress through them; :func:`set_quiet` (the CLI's ``-q``) or the
  environment variable ``CNNMFT_QUIET=1`` silences every bar at once.
* :func:`blas_threads`: the one BLAS thread limit (a context manager over threadpoolctl; a no-op
  where threadpoolctl is missing or cannot inspect the BLAS).
* :func:`atomic_write`, :func:`atomic_write_text`, :func:`atomic_write_bytes`: the one atomic
  writer (temporary file in the same folder, flushed and fsync'ed, then :func:`os.replace`).
* :func:`write_table`: the one CSV / JSON / NPZ table writer (atomic).

This module imports nothing else from :mod:`cnnmft`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "blas_threads",
    "is_quiet",
    "progress_bar",
    "progress_callback",
    "set_quiet",
    "table_format",
    "write_table",
]

# ------------------------------------------------------------------------------------------------
# progress
# ------------------------------------------------------------------------------------------------

_QUIET = [os.environ.get("CNNMFT_QUIET", "").strip().lower() in {"1", "true", "yes", "on"}]


def set_quiet(quiet: bool = True) -> bool:
    """Silence (or re-enable) every progress bar of the package; returns the previous setting.

    Examples
    --------
    >>> from cnnmft._util import set_quiet, is_quiet
    >>> old = set_quiet(True)
    >>> is_quiet()
    True
    >>> _ = set_quiet(old)
    """
    old = _QUIET[0]
    _QUIET[0] = bool(quiet)
    return old


def is_quiet() -> bool:
    """Return True when progress bars are globally silenced (:func:`set_quiet`)."""
    return _QUIET[0]


class _NullBar:
    """Stands in for a tqdm bar when progress is off: same methods, does nothing."""

    def __init__(self, total=None, initial=0):
        self.total = total
        self.n = initial

    def update(self, n=1):
        self.n += n

    def refresh(self):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def set_postfix_str(self, *args, **kwargs):
        pass

    def set_description(self, *args, **kwargs):
        pass

    def write(self, s, *args, **kwargs):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress_bar(
    total: int | None = None,
    *,
    desc: str | None = None,
    unit: str = "it",
    initial: int = 0,
    leave: bool = True,
    disable: bool = False,
    **kwargs: Any,
) -> Any:
    """Return a tqdm progress bar on stderr, or a silent stand-in with the same methods.

    The stand-in is returned when `disable` is true, when :func:`set_quiet` is on, or when tqdm
    is not installed.

    Parameters
    ----------
    total : int, optional
        Number of steps.
    desc, unit : str
        Label and unit shown by tqdm.
    initial : int
        Steps already done (resumed work).
    leave : bool
        Keep the finished bar on screen.
    disable : bool
        Return the silent stand-in.
    **kwargs
        Passed to ``tqdm.auto.tqdm``.

    Examples
    --------
    >>> bar = progress_bar(3, disable=True)
    >>> for _ in range(3):
    ...     bar.update()
    >>> bar.n
    3
    >>> bar.close()
    """
    if disable or is_quiet():
        return _NullBar(total, initial)
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a core dependency
        return _NullBar(total, initial)
    kwargs.setdefault("file", sys.stderr)
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave, **kwargs)


def progress_callback(
    progress: bool | None | Callable[[int, int], Any],
    total: int,
    *,
    default: bool = False,
    desc: str | None = None,
    unit: str = "it",
    leave: bool = True,
) -> tuple[Callable[[int, int], Any] | None, Any]:
    """Resolve a public ``progress`` argument into ``(callback(done, total), bar)``.

    The library's long functions take ``progress`` as ``None`` (use `default`), a bool (tqdm bar
    or nothing) or a callable ``progress(done, total)`` called after each unit of work. This is
    the one place that reading is written.

    Parameters
    ----------
    progress : None, bool or callable
        The user's argument.
    total : int
        Units of work in the run.
    default : bool
        What None means (callers pass e.g. ``work > 2e9`` to show bars only for long runs).
    desc, unit, leave
        Passed to :func:`progress_bar`.

    Returns
    -------
    callback : callable or None
        ``callback(done, total)`` with `done` the units finished so far; None when there is
        nothing to report to.
    bar : tqdm bar or None
        The bar behind `callback` (it closes itself when ``done >= total``; close it yourself
        on an early exit), None for a user callable or no progress.

    Examples
    --------
    >>> seen = []
    >>> cb, bar = progress_callback(lambda done, total: seen.append(done), 2)
    >>> cb(1, 2); cb(2, 2)
    >>> seen, bar
    ([1, 2], None)
    >>> progress_callback(False, 10)
    (None, None)
    """
    if progress is None:
        progress = default
    if callable(progress) and not isinstance(progress, bool):
        return progress, None
    if not progress or is_quiet():
        return None, None
    bar = progress_bar(total, desc=desc, unit=unit, leave=leave)

    def callback(done: int, total_: int) -> None:
        bar.update(done - bar.n)
        if done >= total_:
            bar.close()  # closing twice is harmless

    return callback, bar


# ------------------------------------------------------------------------------------------------
# BLAS threads
# ------------------------------------------------------------------------------------------------

_CONTROLLER: dict = {"ctl": None, "modules": -1}


def _controller():
    """The threadpoolctl controller of the loaded BLAS libraries, rebuilt after new imports.

    A controller knows the libraries loaded when it was built: one built before scipy (which
    brings its own OpenBLAS) was imported would leave scipy's pool unlimited. It is therefore
    rebuilt whenever the number of imported modules has changed since (a few ms, once per
    import wave; a dict lookup otherwise).
    """
    n = len(sys.modules)
    if _CONTROLLER["modules"] != n:
        try:
            from threadpoolctl import ThreadpoolController

            ctl = ThreadpoolController()
        except Exception:  # threadpoolctl missing or unable to inspect the loaded BLAS
            ctl = None
        _CONTROLLER.update(ctl=ctl, modules=len(sys.modules))
    return _CONTROLLER["ctl"]


def blas_threads(limit: int | None = 1) -> contextlib.AbstractContextManager:
    """Context manager that limits the BLAS thread pools to `limit` threads inside its block.

    Small matrix products run faster on one thread than on many (thread start-up and
    synchronisation dominate, worse on a loaded machine). ``limit=None`` imposes nothing. The
    threadpoolctl controller is reused until new modules are imported, so entering the block is
    cheap. Without
    threadpoolctl (or when it cannot inspect the BLAS) the block runs unchanged.

    Parameters
    ----------
    limit : int or None
        Maximum BLAS threads in the block, ``>= 1``; None for no limit.

    Examples
    --------
    >>> import numpy as np
    >>> with blas_threads(1):
    ...     float(np.ones((2, 2)) @ np.ones(2) @ np.ones(2))
    4.0
    """
    if limit is None:
        return contextlib.nullcontext()
    if int(limit) < 1:
        raise ValueError(f"`limit` must be an integer >= 1 or None, got {limit!r}")
    ctl = _controller()
    if ctl is None:
        return contextlib.nullcontext()
    return ctl.limit(limits=int(limit), user_api="blas")


# ------------------------------------------------------------------------------------------------
# atomic files
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike,
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    newline: str | None = None,
) -> Iterator[IO]:
    """Open a temporary file next to `path`; on a clean exit fsync it and rename it over `path`.

    A reader never sees a half-written file and a process killed mid-write leaves at most a
    hidden ``.<name>.*.tmp`` file beside the target. On an exception the temporary file is
    removed and `path` is left as it was. Parent folders are created.

    Parameters
    ----------
    path : path-like
        Final file name.
    mode : {"w", "wb"}
        Text or binary.
    encoding, newline
        For text mode, as in :func:`open`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_write(d / "a.txt") as fh:
    ...     _ = fh.write("hello")
    >>> (d / "a.txt").read_text()
    'hello'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"`mode` must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode == "wb":
            fh = os.fdopen(fd, "wb")
        else:
            fh = os.fdopen(fd, "w", encoding=encoding, newline=newline)
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically (see :func:`atomic_write`); returns the path."""
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (see :func:`atomic_write`); returns the path."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


# ------------------------------------------------------------------------------------------------
# tables
# ------------------------------------------------------------------------------------------------


def _columns(data: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    if isinstance(data, Mapping):
        return {str(k): np.asarray(v) for k, v in data.items()}
    rows = list(data)
    names: list[str] = []
    for row in rows:
        names += [str(k) for k in row if str(k) not in names]
    return {n: np.asarray([row.get(n) for row in rows]) for n in names}


def table_format(data: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    """Pick the file format :func:`write_table` uses when the path has no suffix.

    ``"json"`` when every value is a scalar, ``"csv"`` for equal-length 1-D columns (or a list
    of row dicts), ``"npz"`` for anything else (grids).

    Examples
    --------
    >>> table_format({"a": 1.0}), table_format({"x": [1, 2], "y": [3, 4]})
    ('json', 'csv')
    >>> table_format({"grid": [[1, 2], [3, 4]]})
    'npz'
    """
    if not isinstance(data, Mapping):
        return "csv"
    cols = _columns(data)
    if all(a.ndim == 0 for a in cols.values()):
        return "json"
    if all(a.ndim == 1 for a in cols.values()) and len({a.shape for a in cols.values()}) == 1:
        return "csv"
    return "npz"


def _cell(x: Any) -> Any:
    if isinstance(x, (float, np.floating)):
        return repr(float(x))  # full precision; "nan"/"inf" read back by float()
    if isinstance(x, np.generic):
        return x.item()
    return x


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return [_jsonable(v) for v in x.tolist()] if x.ndim else _jsonable(x.item())
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None  # strict JSON has no NaN/inf
    return x


def write_table(
    path: str | os.PathLike, data: Mapping[str, Any] | Sequence[Mapping[str, Any]]
) -> Path:
    """Write named columns (or a list of row dicts) as CSV, JSON or NPZ, atomically.

    The format follows the suffix of `path` (``.csv``, ``.json``, ``.npz``); without a suffix it
    is chosen by :func:`table_format` and appended. CSV floats are written with full precision
    (``repr``), so they read back exactly; JSON is strict (NaN and infinities become ``null``);
    NPZ is compressed and holds the arrays under the column names.

    Parameters
    ----------
    path : path-like
        Target file.
    data : mapping of name -> array_like, or sequence of mappings (rows)
        Columns for CSV must be 1-D and of equal length (rows may miss keys: empty cells).

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> p = write_table(d / "t", {"depth": [1, 2], "chi": [0.5, float("nan")]})
    >>> p.name
    't.csv'
    >>> print(p.read_text().strip())
    depth,chi
    1,0.5
    2,nan
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if not fmt:
        fmt = table_format(data)
        path = path.with_name(f"{path.name}.{fmt}")
    if fmt == "json":
        payload = (
            _jsonable(dict(data))
            if isinstance(data, Mapping)
            else [_jsonable(dict(r)) for r in data]
        )
        return atomic_write_text(path, json.dumps(payload, indent=1, allow_nan=False) + "\n")
    if fmt == "npz":
        buf = io.BytesIO()
        np.savez_compressed(buf, **_columns(data))
        return atomic_write_bytes(path, buf.getvalue())
    if fmt != "csv":
        raise ValueError(
            f"`path` must end in .csv, .json or .npz (or have no suffix), got {str(path)!r}"
        )
    cols = _columns(data)
    lengths = {a.shape for a in cols.values()}
    if any(a.ndim != 1 for a in cols.values()) or len(lengths) > 1:
        raise ValueError(
            f"CSV columns must be 1-D of equal length, got shapes "
            f"{ {k: a.shape for k, a in cols.items()} }"
        )
    with atomic_write(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(cols))
        for row in zip(*(a.tolist() for a in cols.values())):
            w.writerow(["" if x is None else _cell(x) for x in row])
    return path
