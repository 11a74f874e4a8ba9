"""Command line interface: ``cnnmft <subcommand> ...``.

Each subcommand lives in its own module ``cnnmft.commands.<name>`` that defines
``configure(parser)`` (adds arguments) and ``run(args) -> int`` (the exit code). Modules are
imported only when their subcommand runs, so ``cnnmft --help`` stays fast and never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (subcommand, module under cnnmft.commands, one-line help). Add a line to add a command.
COMMANDS = [
    ("fixed-point", "fixed_point",
     "q*, c*, chi_1, chi_q, chi_c and depth scales at given variances"),
    ("critical", "critical",
     "the order-chaos critical line, given sigma_b2 or q*"),
    ("phase", "phase",
     "phase diagram over a (sigma_w2, sigma_b2) grid: figures and numbers"),
    ("report", "report",
     "the main demo: compute and draw the paper's story into a folder"),
    ("train", "train",
     "train a vanilla tanh CNN (up to 10,000 layers): metrics, plots, checkpoints"),
    ("trainability", "trainability",
     "train over (sigma_w2, depth) or variance profiles on Dask; compare with 6 xi_c"),
    ("validate", "validate",
     "theory against Monte Carlo on a numpy CNN: table, figures, exit code"),
    ("kernels", "kernels",
     "draw a Delta/block/tunable orthogonal or Gaussian kernel: spectrum, tap energies, .npy"),
    ("modes", "modes",
     "depth scale of every spatial Fourier mode for a kernel variance profile"),
    ("covariance", "covariance",
     "propagate an input's pixel-pair covariance through a deep CNN (numbers to .npz)"),
    ("spectrum", "spectrum",
     "free-probability Jacobian singular-value spectrum: moments, edges, density"),
]


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with one sub-parser per available subcommand."""
    parser = argparse.ArgumentParser(
        prog="cnnmft",
        description="Mean-field theory of deep convolutional networks (Xiao et al., ICML 2018).",
    )
    from cnnmft import __version__

    parser.add_argument("--version", action="version", version=f"cnnmft {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        mod = _load(module)
        if mod is not None:
            mod.configure(p)
    return parser


def _load(module):
    try:
        return importlib.import_module(f"cnnmft.commands.{module}")
    except ModuleNotFoundError as exc:  # a command whose optional extra is missing
        if exc.name and exc.name.startswith("cnnmft"):
            raise
        return None


def main(argv=None) -> int:
    """Entry point of the ``cnnmft`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    mod = _load(args._module)
    if mod is None:
        print(f"cnnmft {args.command}: this command needs an optional extra that is not "
              "installed (try `pip install cnnmft[torch]`)", file=sys.stderr)
        return 2
    try:
        return int(mod.run(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"cnnmft {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
