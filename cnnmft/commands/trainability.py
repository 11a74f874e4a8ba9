"""``cnnmft trainability``: theory against training, on a Dask cluster.

Two studies (docs/theory.md, sections 5.2-5.3), trained as ensembles (one grouped computation
per depth and seed):

* ``phase`` (default): every ``(depth, sigma_w2, learning rate, seed)`` at fixed ``sigma_b2``;
  heat map of the trained cells with ``6 xi_c``, and its agreement next to the best depth-only
  and sigma_w2-only rules.
* ``modes``: fixed depth at criticality, kernels with spatial variance profiles from delta to
  binomial (orthogonal and Gaussian); training speed and test accuracy against predicted per-mode
  depth scales.

Finished cells are stored under ``--store`` as they complete; rerunning skips them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from cnnmft.commands import _config as cfg
from cnnmft.commands._common import (
    Output,
    add_common,
    check_range,
    need_memory,
    workers_ignore_sigint,
)
from cnnmft.sweeps import dask_client


def configure(p):
    """Add the arguments of ``cnnmft trainability``."""
    p.add_argument(
        "study",
        nargs="?",
        default="phase",
        choices=("phase", "modes"),
        help="phase: accuracy over (sigma_w2, depth) vs 6 xi_c (default); "
        "modes: variance profile v at criticality",
    )
    p.add_argument("--out", default="trainability", help="output folder (figure, numbers)")
    p.add_argument(
        "--store",
        default=None,
        help="folder of finished cells (default: OUT/cells); rerunning skips them",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="address of a running Dask scheduler, e.g. tcp://host:8786 "
        "(default: an in-process local cluster)",
    )
    p.add_argument(
        "--scheduler-file",
        default=None,
        metavar="PATH",
        help="scheduler file of a running cluster (dask scheduler --scheduler-file)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="TOML or JSON file of settings (keys as the flags, - or _; a "
        "[trainability] table or the top level); flags typed here win",
    )
    p.add_argument(
        "--ship-data",
        action="store_true",
        help="send the dataset to the workers (when they cannot read its files)",
    )
    p.add_argument("--workers", type=int, default=1, help="local cluster worker processes")
    p.add_argument("--act", default="tanh", help="activation (default tanh)")
    p.add_argument(
        "--dataset",
        default="fashion-mnist",
        help="fashion-mnist (default), digits, digits28, mnist or cifar10",
    )
    p.add_argument("--data-dir", default=None, help="folder with the dataset's files")
    p.add_argument("--steps", type=int, default=None, help="training steps per run")
    p.add_argument("--channels", type=int, default=None, help="width of the deep block")
    p.add_argument("--batch-size", type=int, default=None, help="batch size")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds")
    g = p.add_argument_group("phase study")
    g.add_argument(
        "--sigma-w2",
        type=float,
        nargs="+",
        default=None,
        metavar="S",
        help="weight variances (default: 0.8 1.3 1.76 2.1 2.8 4.0)",
    )
    g.add_argument(
        "--depths",
        type=int,
        nargs="+",
        default=None,
        metavar="L",
        help="depths (default: 4 8 16 ... 512)",
    )
    g.add_argument(
        "--lrs",
        type=float,
        nargs="+",
        default=None,
        metavar="LR",
        help="learning-rate grid; per cell the lowest final training loss wins",
    )
    p.add_argument(
        "--sigma-b2",
        type=float,
        default=0.05,
        help="bias variance (default 0.05); the modes study uses the critical sigma_w2 for it",
    )
    g.add_argument(
        "--k-se",
        type=float,
        default=5.0,
        help="'trained' means test accuracy > chance + K standard errors (default 5)",
    )
    g = p.add_argument_group("modes study")
    g.add_argument(
        "--t",
        type=float,
        nargs="+",
        default=None,
        metavar="T",
        help="tunable-profile parameters in [0, 0.5] (0 delta, 0.5 uniform-like)",
    )
    g.add_argument("--depth", type=int, default=32, help="depth of every run (default 32)")
    g.add_argument("--lr", type=float, default=None, help="learning rate (modes study)")
    g.add_argument(
        "--kinds",
        nargs="+",
        default=("orthogonal", "gaussian"),
        choices=("orthogonal", "gaussian"),
        help="kernel kinds",
    )
    add_common(p)


def _train_kwargs(args):
    kw = {"dataset": args.dataset}
    if args.data_dir is not None:
        kw["data_dir"] = args.data_dir
    for name in ("steps", "channels", "batch_size"):
        val = getattr(args, name)
        if val is not None:
            kw[name] = val
    return kw


def _apply_config(args):
    """Settings from ``--config`` for every flag not typed on the command line."""
    if not args.config:
        return {}
    values = cfg.load_config_file(args.config, "trainability")
    typed = set(getattr(args, "_typed", ()))
    unknown = sorted(k for k in values if not hasattr(args, k) or k.startswith("_"))
    if unknown:
        raise ValueError(f"--config: unknown setting(s) {unknown}")
    for key, val in values.items():
        if key not in typed:
            setattr(args, key, tuple(val) if isinstance(val, list) else val)
    return values


def _precheck_memory(args, experiments):
    """Refuse a sweep whose deepest ensemble could not fit, before any worker starts."""
    channels = args.channels or experiments.TRAINABILITY_DEFAULTS.get("channels", 8)
    deepest = max(args.depths or experiments.DEFAULT_DEPTHS)
    members = len(args.sigma_w2 or experiments.DEFAULT_SIGMA_W2) * len(
        args.lrs or experiments.DEFAULT_LRS
    )
    # one ensemble trains every (sigma_w2, lr) member: float32 weights, gradients, momentum
    params = float(deepest) * (channels * channels * 9 + channels) * members
    need_memory(
        params * 4 * 3,
        f"--depths {deepest} with {members} ensemble members of width "
        f"{channels} ({params:.3g} parameters)",
    )


@contextlib.contextmanager
def _scheduler(args, out):
    """The scheduler to use: a local cluster whose workers ignore Ctrl-C, or the given one."""
    if args.scheduler is not None or args.scheduler_file is not None:
        yield args.scheduler, args.scheduler_file
        return
    check_range(args.workers, "--workers", 1)
    with contextlib.ExitStack() as stack:
        with workers_ignore_sigint():  # Ctrl-C reaches the driver only
            client = stack.enter_context(
                dask_client(n_workers=args.workers, show_dashboard=not out.quiet)
            )
        yield client, None


def run(args) -> int:
    """Run the chosen study, write figure and numbers, print the summary."""
    import matplotlib

    matplotlib.use("Agg")  # the command line chooses the backend, never the library

    from cnnmft.pytorch import experiments, profiles

    out = Output(args)
    _apply_config(args)
    for depth in args.depths or ():
        check_range(depth, "--depths", 1)
    check_range(args.depth, "--depth", 1)
    if args.study == "phase":
        _precheck_memory(args, experiments)
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    store = args.store or str(outdir / "cells")
    args._interrupt_hint = (
        f"finished cells are kept in {store}/; run the same command again to resume"
    )
    settings = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    cfg.save_resolved(outdir / "resolved_config.json", "trainability", settings)
    with _scheduler(args, out) as (scheduler, scheduler_file):
        common = dict(
            act=args.act,
            store=store,
            sigma_b2=args.sigma_b2,
            scheduler=scheduler,
            scheduler_file=scheduler_file,
            ship_data=args.ship_data,
            n_workers=args.workers,
            progress=out.progress,
            **_train_kwargs(args),
        )
        if args.study == "phase":
            res = experiments.trainability_sweep(
                args.sigma_w2, args.depths, lrs=args.lrs, seeds=args.seeds, k_se=args.k_se, **common
            )
        else:
            kw = {} if args.t is None else {"t": args.t}
            if args.seeds is not None:
                kw["seeds"] = args.seeds
            if args.lr is not None:
                kw["lr"] = args.lr
            res = profiles.modewise_study(depth=args.depth, kinds=args.kinds, **kw, **common)
    name = "trainability" if args.study == "phase" else "modewise"
    res.save(outdir / f"{name}.npz")
    res.save(outdir / f"{name}.json")
    plot = experiments.plot_trainability if args.study == "phase" else profiles.plot_modewise
    ax = plot(res)
    getattr(ax, "figure", ax).savefig(outdir / f"{name}.png", dpi=120, bbox_inches="tight")
    if args.study == "phase":
        out.result(res.summary())
    else:
        for ik, kind in enumerate(res.kinds):
            for it, t in enumerate(res.t):
                out.result(
                    f"{kind:10s} t={t:4.2f}: test acc "
                    f"{np.nanmean(res.test_accuracy[ik, it]):.3f}, mean loss "
                    f"{np.nanmean(res.loss_auc[ik, it]):.3f}, xi(slowest mode) "
                    f"{res.xi_slowest[it]:.3g}"
                )
            out.result(
                f"{kind}: slope of test accuracy in t {res.slope_test_accuracy[ik]:+.4f}"
                f" +- {res.slope_se[ik]:.4f}"
            )
    out.data({"study": args.study, "out": str(outdir), "result": res.to_dict()})
    out.note(f"written to {outdir}/ (settings in resolved_config.json)")
    return 0
