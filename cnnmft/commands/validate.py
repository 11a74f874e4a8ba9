"""``cnnmft validate``: theory against Monte Carlo on the numpy CNN, as a table and figures.

Examples::

    cnnmft validate --quick                       # small networks, under a minute
    cnnmft validate --checks trajectories modes_delta --json
"""

from __future__ import annotations

import sys

from cnnmft.checks import CHECKS, run_checks
from cnnmft.commands import _config as cfg
from cnnmft.commands._common import Output, add_common
from cnnmft.report.validation import write_validation_report

FLAG_ALIASES = {"names": "--checks", "rng": "--seed"}


def configure(p):
    """Add the arguments of ``cnnmft validate``."""
    p.add_argument(
        "--quick",
        action="store_true",
        help="small networks (under a minute here; budget 2 minutes); default: full "
        "sizes (about 8 minutes on a loaded 2-core machine; budget 20)",
    )
    p.add_argument(
        "--out",
        default="validation",
        help="report folder for table.csv, table.md, index.html and figures "
        "(default: ./validation)",
    )
    p.add_argument(
        "--checks",
        nargs="+",
        choices=sorted(CHECKS),
        metavar="CHECK",
        help=f"run only these checks (default: all): {', '.join(CHECKS)}",
    )
    p.add_argument("--seed", type=int, default=0, help="base random seed (default: 0)")
    p.add_argument("--no-figures", action="store_true", help="write the table only")
    add_common(p)


def run(args) -> int:
    """Run the checks, write the report, print the table; exit 1 when a check fails."""
    out = Output(args)

    def progress(i, n, res):
        out.note(
            f"[{i}/{n}] {res.name:32s} {res.status:14s} |z| {res.z:6.2f} / "
            f"{res.z_crit:5.2f}  KS {res.ks:6.3f} / {res.ks_crit:6.3f}  "
            f"{res.seconds:6.1f} s"
        )

    result = run_checks(args.checks, quick=args.quick, rng=args.seed, progress=progress)
    index = write_validation_report(result, args.out, figures=not args.no_figures)
    cfg.save_resolved(
        f"{args.out}/resolved_config.json",
        "validate",
        {
            "quick": args.quick,
            "checks": args.checks,
            "seed": args.seed,
            "figures": not args.no_figures,
        },
    )
    out.result(result.markdown().replace("nan", "—"))
    out.data(
        {
            "quick": result.quick,
            "seconds": result.seconds,
            "failed": result.failed,
            "checks": result.table(),
            "report": str(index),
        }
    )
    out.note(f"\n{len(result.checks)} checks in {result.seconds:.0f} s; report: {index}")
    if result.failed:
        print(f"FAILED: {', '.join(result.failed)}", file=sys.stderr)
        return 1
    return 0
