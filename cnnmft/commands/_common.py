"""What every subcommand shares: output options, errors in flag names, checks before work.

``-v/-q``, ``--json [FILE]``, the user's-language errors, memory and range checks made before
any work, and quiet Dask workers on Ctrl-C:

* :func:`add_common` adds ``-v/--verbose`` and ``-q/--quiet`` (and ``--json`` where a command
  prints numbers); :class:`Output` prints through them: human lines on stdout (notes on stderr
  when JSON goes to stdout), JSON on stdout or into a file, nothing but results with ``-q``.
* :func:`flag_names` and :func:`translate` turn a library error that names a Python argument
  (`` `sigma_w2` must be ...``) into one that names the flag (``--sigma-w2 must be ...``).
* :func:`need_memory` refuses a request whose arrays could not fit before anything is
  allocated, saying how much it would need and how much there is.
* :func:`workers_ignore_sigint`: worker processes started inside it ignore Ctrl-C, so an
  interrupted sweep ends with one line from the driver instead of a traceback per worker.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import json
import logging
import math
import re
import signal
import sys
import threading

import numpy as np

from cnnmft._util import atomic_write_text, set_quiet
from cnnmft._validation import available_memory as memory_available
from cnnmft.results import Status

__all__ = [
    "add_common",
    "Output",
    "flag_names",
    "translate",
    "need_memory",
    "memory_available",
    "format_bytes",
    "workers_ignore_sigint",
    "one_line_interrupts",
    "check_range",
]


def add_common(parser, *, json_output=True):
    """Add ``-v/--verbose``, ``-q/--quiet`` and (optionally) ``--json [FILE]`` to `parser`."""
    g = parser.add_argument_group("output")
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="say more (timings, settings); repeat for more",
    )
    g.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars and no notes: only the results"
    )
    if json_output:
        g.add_argument(
            "--json",
            nargs="?",
            const="-",
            default=None,
            metavar="FILE",
            help="print the numbers as JSON on stdout (or write them to FILE) instead of the table",
        )


class Output:
    """Printing for one command run, following ``-v``, ``-q`` and ``--json``.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments (``verbose``, ``quiet`` and ``json`` are read when present).
    """

    def __init__(self, args):
        self.verbose = int(getattr(args, "verbose", 0) or 0)
        self.quiet = bool(getattr(args, "quiet", False))
        self.json = getattr(args, "json", None)
        set_quiet(self.quiet)

    @property
    def progress(self) -> bool:
        """Whether progress bars are shown."""
        return not self.quiet

    @property
    def table_on_stdout(self) -> bool:
        """True unless JSON goes to stdout (then the human table is not printed)."""
        return self.json != "-"

    def result(self, text: str) -> None:
        """Print a human-readable result line (not with ``--json`` on stdout)."""
        if self.table_on_stdout:
            print(text, flush=True)

    def note(self, text: str) -> None:
        """Print a note (where files went, timings): hidden by ``-q``; on stderr with JSON."""
        if not self.quiet:
            print(text, file=sys.stdout if self.table_on_stdout else sys.stderr, flush=True)

    def debug(self, text: str) -> None:
        """Print only with ``-v``."""
        if self.verbose:
            print(text, file=sys.stderr, flush=True)

    def data(self, payload) -> None:
        """Write `payload` as JSON when ``--json`` was given (stdout, or the file it names)."""
        if self.json is None:
            return
        text = json.dumps(_plain(payload), indent=1, allow_nan=False)
        if self.json == "-":
            print(text, flush=True)
        else:
            atomic_write_text(self.json, text + "\n")
            self.note(f"numbers written to {self.json}")


def _plain(x):
    """JSON-safe copy: arrays to lists, non-finite floats to None, enums to their names."""
    if isinstance(x, enum.Enum):
        return x.name
    if isinstance(x, dict):
        return {str(k): _status_names(v) if k == "status" else _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _status_names(x):
    """A status code, or an array of them, as :class:`cnnmft.Status` names."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        return _plain(x)
    if arr.ndim == 0:
        return Status(int(arr)).name
    return [_status_names(v) for v in arr]


# ---------------------------------------------------------------------- errors in flag names


def flag_names(parser: argparse.ArgumentParser, extra: dict | None = None) -> dict:
    """Map each destination of `parser` (``sigma_w2``) to its long flag (``--sigma-w2``)."""
    out = {}
    for action in parser._actions:  # argparse keeps no public list of its actions
        longs = [s for s in action.option_strings if s.startswith("--")]
        if longs and action.dest not in (argparse.SUPPRESS, "help"):
            out.setdefault(action.dest, longs[0])
    out.update(extra or {})
    return out


_BACKTICKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def translate(message: str, names: dict) -> str:
    """Replace `` `python_name` `` in a library message by the flag that sets it.

    >>> translate("`sigma_w2` must be in (0, inf); got -1.0", {"sigma_w2": "--sigma-w2"})
    '--sigma-w2 must be in (0, inf); got -1.0'
    """

    def repl(m):
        return names.get(m.group(1), m.group(0))

    return _BACKTICKED.sub(repl, message)


def check_range(value, flag: str, low=None, high=None):
    """Refuse `value` outside ``[low, high]`` with a message that names `flag` and the range."""
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{flag} must be in [{lo}, {hi}]; got {value:g}")
    return value


# ------------------------------------------------------------------------- memory before work


def format_bytes(n: float) -> str:
    """Human size: ``format_bytes(3.2e12) == '3.2 TB'``."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB", "EB"):
        if abs(n) < 1000 or unit == "EB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000.0
    return f"{n:.3g} EB"  # pragma: no cover


def need_memory(nbytes: float, what: str, *, available: int | None = None) -> None:
    """Raise ValueError when `what` would need more than the available memory."""
    avail = memory_available() if available is None else int(available)
    if nbytes > avail:
        raise ValueError(
            f"{what} would need at least {format_bytes(nbytes)} of memory; this "
            f"machine has {format_bytes(avail)} available"
        )


# ----------------------------------------------------------------------- Ctrl-C and workers

_NOISY_ON_SHUTDOWN = ("distributed", "asyncio", "tornado", "bokeh")


def _interrupt(signum, frame):
    """SIGINT handler: quiet the loggers that report a cluster's shutdown, then interrupt."""
    for name in _NOISY_ON_SHUTDOWN:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    raise KeyboardInterrupt


@contextlib.contextmanager
def one_line_interrupts():
    """Within this block Ctrl-C raises KeyboardInterrupt with the cluster loggers silenced.

    Closing a Dask cluster that was interrupted logs cancelled tasks and never-retrieved futures
    (from the driver's event loop); after a Ctrl-C these are noise, so the handler turns those
    loggers off before the interrupt unwinds the sweep. The previous handler is put back on exit.
    """
    if threading.current_thread() is not threading.main_thread():  # signals: main thread only
        yield
        return
    previous = signal.signal(signal.SIGINT, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def workers_ignore_sigint():
    """Within this block, child processes start with Ctrl-C ignored; the driver keeps it.

    A terminal's Ctrl-C reaches every process of the foreground group. Processes started here
    (Dask nannies and workers) inherit the ignored SIGINT, so only the driver sees the
    interrupt, and it shuts the cluster down. The driver's own handler is put back on exit.
    """
    if sys.platform == "win32":  # pragma: no cover - no process groups there
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
