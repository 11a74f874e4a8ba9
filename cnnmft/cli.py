"""Command line interface: ``cnnmft <command> ...`` (also ``python -m cnnmft``).

Each command lives in its own module ``cnnmft.commands.<name>`` that defines
``configure(parser)`` (adds its arguments) and ``run(args) -> int`` (the exit code). Only the
module of the command being run is imported: ``cnnmft --help`` and ``cnnmft --version`` import
no command module (and so neither numpy, scipy nor numba: the package face ``cnnmft/__init__.py``
is lazy), and the version comes from the installed package's metadata, its one source being
``pyproject.toml`` (``cnnmft._version``, the same value as ``cnnmft.__version__``).

Errors speak the command line's language: a library ``ValueError`` that names a Python argument
(`` `sigma_w2` ``) is shown with the flag that sets it (``--sigma-w2``); Ctrl-C ends with exit
code 130 and one line.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

# (command, one-line help). The module is cnnmft.commands.<command with _ for ->.
COMMANDS = {
    "fixed-point": "q*, c*, chi_1, chi_q, chi_c and depth scales at given variances",
    "critical": "the order-chaos critical line, given sigma_b2 or q*",
    "phase": "phase diagram over a (sigma_w2, sigma_b2) grid: figure and numbers",
    "modes": "depth scale of every spatial Fourier mode for a kernel variance profile",
    "covariance": "propagate an input's pixel-pair covariance through a deep CNN",
    "spectrum": "free-probability Jacobian singular-value spectrum: moments, edges, density",
    "kernels": "draw a Delta/block/tunable orthogonal or Gaussian kernel: spectrum, tap energies",
    "validate": "theory against Monte Carlo on a numpy CNN: table, figures, exit code",
    "train": "train a vanilla tanh CNN (up to 10,000 layers): metrics, plots, checkpoints",
    "trainability": "train over (sigma_w2, depth) or variance profiles on Dask; compare with "
    "6 xi_c",
    "report": "the main demo: the paper's story as figures, numbers and one HTML page",
    "compile": "compile the numerical kernels into the disk cache once (after installing, "
    "or before starting cluster workers)",
}

EPILOG = """\
start here:
  cnnmft report                   the main demo (about 3 minutes; --full adds training sweeps)
  cnnmft fixed-point --sigma-w2 1.5 2.5
  cnnmft <command> --help         every option, its default and its meaning
"""


def _version() -> str:
    # function-local: importlib.metadata costs ~40 ms, paid only by --version
    from cnnmft._version import __version__

    return __version__


class _VersionAction(argparse.Action):
    """``--version``: reads the package metadata only when asked (``--help`` never does)."""

    def __init__(
        self,
        option_strings,
        dest=argparse.SUPPRESS,
        default=argparse.SUPPRESS,
        help="print the version and exit",
    ):  # noqa: A002 - argparse's keyword
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"cnnmft {_version()}")
        parser.exit()


def _command_module(name: str):
    """Import and return the module of command `name`.

    The imports are function-local on purpose (the one place in the package where that is done
    for non-optional modules): a command's module, and numpy/numba/torch behind it, load only
    when that command runs, so ``cnnmft --help`` and ``--version`` stay instant.
    """
    if name == "fixed-point":
        from cnnmft.commands import fixed_point as mod
    elif name == "critical":
        from cnnmft.commands import critical as mod
    elif name == "phase":
        from cnnmft.commands import phase as mod
    elif name == "modes":
        from cnnmft.commands import modes as mod
    elif name == "covariance":
        from cnnmft.commands import covariance as mod
    elif name == "spectrum":
        from cnnmft.commands import spectrum as mod
    elif name == "kernels":
        from cnnmft.commands import kernels as mod
    elif name == "validate":
        from cnnmft.commands import validate as mod
    elif name == "train":
        from cnnmft.commands import train as mod
    elif name == "trainability":
        from cnnmft.commands import trainability as mod
    elif name == "report":
        from cnnmft.commands import report as mod
    elif name == "compile":
        from cnnmft.commands import compile as mod
    else:
        raise KeyError(name)
    return mod


def _requested(argv) -> str | None:
    """The command named on the command line (the first word that is one), or None."""
    for word in argv:
        if word == "--":
            return None
        if word in COMMANDS:
            return word
        if not word.startswith("-"):
            return None  # argparse will report the unknown command
    return None


def build_parser(command: str | None = None):
    """Return ``(parser, subparsers)``; the sub-parser of `command` gets its full options.

    Parameters
    ----------
    command : str, optional
        The command whose options are added (its module is imported). The others are listed
        with their one-line help only.
    """
    parser = argparse.ArgumentParser(
        prog="cnnmft",
        description="Mean-field theory of deep convolutional networks (Xiao, Bahri, "
        "Sohl-Dickstein, Schoenholz, Pennington, ICML 2018): phase diagrams, "
        "Fourier-mode depth scales, Jacobian spectra, orthogonal kernels, Monte "
        "Carlo checks and training.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subs = {}
    for name, help_text in COMMANDS.items():
        subs[name] = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    if command is not None:
        mod = _command_module(command)
        mod.configure(subs[command])
        doc = (mod.__doc__ or "").strip().split("\n", 1)
        if len(doc) > 1 and doc[1].strip():
            subs[command].epilog = doc[1].strip()
    return parser, subs


def _typed(sub, argv) -> set:
    """Destinations of the options typed in `argv` (a config file must not override them)."""
    words = {w.split("=", 1)[0] for w in argv if w.startswith("-")}
    return {
        a.dest
        for a in sub._actions  # argparse keeps no public list of its actions
        if any(o in words for o in a.option_strings)
    }


def _show_warning(command):
    """Warnings as one line each, ``cnnmft <command>: warning: ...`` (no source line)."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"cnnmft {command}: warning: {message}", file=file or sys.stderr)

    return show


def main(argv=None) -> int:
    """Entry point of the ``cnnmft`` console script and of ``python -m cnnmft``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _requested(argv)
    try:
        parser, subs = build_parser(command)
    except ModuleNotFoundError as exc:  # a command whose optional extra is missing
        if exc.name and exc.name.startswith("cnnmft"):
            raise
        print(
            f"cnnmft {command}: needs the optional package {exc.name!r}, which is not "
            "installed (try `pip install cnnmft[torch,distributed]`)",
            file=sys.stderr,
        )
        return 2
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    # function-local for the reason given in _command_module: _common imports numpy
    from cnnmft.commands._common import flag_names, one_line_interrupts, translate

    sub = subs[args.command]
    args._typed = _typed(sub, argv)
    mod = _command_module(args.command)
    shown, warnings.showwarning = warnings.showwarning, _show_warning(args.command)
    t0 = time.perf_counter()
    try:
        with one_line_interrupts():
            rc = int(mod.run(args) or 0)
        if getattr(args, "verbose", 0):
            print(
                f"cnnmft {args.command}: finished in {time.perf_counter() - t0:.2f} s "
                f"(exit code {rc})",
                file=sys.stderr,
            )
        return rc
    except KeyboardInterrupt:
        hint = getattr(args, "_interrupt_hint", "")
        print(f"\ncnnmft {args.command}: interrupted{': ' + hint if hint else ''}", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as exc:
        message = translate(str(exc), flag_names(sub, getattr(mod, "FLAG_ALIASES", None)))
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
            message = f"{type(exc).__name__}: {message}"
        print(f"cnnmft {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":  # pragma: no cover - `python -m cnnmft.cli`
    sys.exit(main())
