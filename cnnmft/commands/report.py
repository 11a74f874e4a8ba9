"""``cnnmft report``: the main demo, the paper's story as one HTML page with figures and numbers.

Sizes (two cores):

* default: mean field, Fourier modes, kernels, Jacobian spectra, Monte Carlo checks and one
  small training demo, about 3 minutes;
* ``--quick``: every section on small grids and tiny training runs, about 2 minutes;
* ``--full``: everything at full size, the training depth series to 1,000 layers and the
  trainability sweeps on a local Dask cluster, about 20-25 minutes.

Examples::

    cnnmft report                       # report/index.html
    cnnmft report --full --out report_full
    cnnmft report --sections phase spectrum --json
"""

from __future__ import annotations

import json
from pathlib import Path

from cnnmft.commands import _config as cfg
from cnnmft.commands._common import Output, add_common
from cnnmft.report import SECTIONS, build_report

FLAG_ALIASES = {"rng": "--seed", "sections": "--sections", "outdir": "--out"}


def configure(p):
    """Add the arguments of ``cnnmft report``."""
    p.add_argument("--out", default="report", help="output folder (default: ./report)")
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_true",
        help="every section on small grids (about 2 minutes on two cores)",
    )
    size.add_argument(
        "--full",
        action="store_true",
        help="everything at full size, with training to 1,000 layers and the "
        "trainability sweeps (about 20-25 minutes on two cores; needs the "
        "torch and distributed extras)",
    )
    p.add_argument(
        "--sections",
        nargs="+",
        choices=SECTIONS,
        metavar="SECTION",
        help=f"build only these sections: {', '.join(SECTIONS)}",
    )
    p.add_argument("--seed", type=int, default=0, help="base random seed")
    add_common(p)


def run(args) -> int:
    """Build the report and print where it is."""
    out = Output(args)
    index = build_report(
        args.out,
        quick=args.quick,
        full=args.full,
        sections=args.sections,
        rng=args.seed,
        progress=out.progress,
    )
    cfg.save_resolved(
        Path(args.out) / "resolved_config.json",
        "report",
        {
            "quick": args.quick,
            "full": args.full,
            "sections": args.sections,
            "seed": args.seed,
            "out": args.out,
        },
    )
    summary = json.loads((Path(args.out) / "data" / "summary.json").read_text())
    out.data({**summary, "index": str(index)})
    if out.table_on_stdout:
        for h in summary["headlines"]:
            mark = {True: "  [pass]", False: "  [FAIL]"}.get(h["ok"], "")
            value = "—" if h["value"] is None else h["value"]
            if isinstance(value, float):
                value = f"{value:.4g}"
            out.result(f"  {h['label']}: {value}{mark}")
    out.result(f"report written to {index}")
    failed = [h["label"] for h in summary["headlines"] if h["ok"] is False]
    return 1 if failed else 0
