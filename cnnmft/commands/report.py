"""``cnnmft report``: the main demo."""


def configure(p):
    """Add the arguments of ``cnnmft report``."""
    from cnnmft.report import SECTIONS

    p.add_argument("--out", default="report", help="output folder (default: ./report)")
    p.add_argument("--quick", action="store_true", help="small grids and sample counts")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, help="build only these sections")
    p.add_argument("--seed", type=int, default=0, help="base random seed")


def run(args) -> int:
    """Build the report and print where it is."""
    from cnnmft.report import build_report

    index = build_report(args.out, quick=args.quick, sections=args.sections, rng=args.seed)
    print(f"report written to {index}")
    return 0
