"""``cnnmft validate``: theory against Monte Carlo on the numpy CNN, as a table and figures."""


def configure(p):
    """Add the arguments of ``cnnmft validate``."""
    from cnnmft.validate import CHECKS

    p.add_argument("--quick", action="store_true",
                   help="small networks (under a minute here; budget 2 minutes); default: full "
                        "sizes (about 8 minutes on a loaded 2-core machine; budget 20)")
    p.add_argument("--out", default="validation",
                   help="report folder for table.csv, table.md, index.html and figures "
                        "(default: ./validation)")
    p.add_argument("--checks", nargs="+", choices=sorted(CHECKS), metavar="CHECK",
                   help=f"run only these checks (default: all): {', '.join(CHECKS)}")
    p.add_argument("--seed", type=int, default=0, help="base random seed (default: 0)")
    p.add_argument("--no-figures", action="store_true", help="write the table only")


def run(args) -> int:
    """Run the checks, write the report, print the table; exit 1 when a check fails."""
    import sys

    from cnnmft.validate import run_checks, write_report

    def progress(i, n, res):
        print(f"[{i}/{n}] {res.name:32s} {res.status:14s} |z| {res.z:6.2f} / {res.z_crit:5.2f}"
              f"  KS {res.ks:6.3f} / {res.ks_crit:6.3f}  {res.seconds:6.1f} s", flush=True)

    result = run_checks(args.checks, quick=args.quick, rng=args.seed, progress=progress)
    index = write_report(result, args.out, figures=not args.no_figures)
    print(result.markdown())
    print(f"\n{len(result.checks)} checks in {result.seconds:.0f} s; report: {index}")
    if result.failed:
        print(f"FAILED: {', '.join(result.failed)}", file=sys.stderr)
        return 1
    return 0
