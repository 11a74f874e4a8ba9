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

import numpy as np


def configure(p):
    """Add the arguments of ``cnnmft trainability``."""
    p.add_argument("study", nargs="?", default="phase", choices=("phase", "modes"),
                   help="phase: accuracy over (sigma_w2, depth) vs 6 xi_c (default); "
                        "modes: variance profile v at criticality")
    p.add_argument("--out", default="trainability", help="output folder (figure, numbers)")
    p.add_argument("--store", default=None,
                   help="folder of finished cells (default: OUT/cells); rerunning skips them")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of a running Dask scheduler, e.g. tcp://host:8786 "
                        "(default: an in-process local cluster)")
    p.add_argument("--scheduler-file", default=None, metavar="PATH",
                   help="scheduler file of a running cluster (dask scheduler --scheduler-file)")
    p.add_argument("--ship-data", action="store_true",
                   help="send the dataset to the workers (when they cannot read its files)")
    p.add_argument("--workers", type=int, default=1, help="local cluster worker processes")
    p.add_argument("--act", default="tanh", help="activation (default tanh)")
    p.add_argument("--dataset", default="fashion-mnist",
                   help="fashion-mnist (default), digits, digits28, mnist or cifar10")
    p.add_argument("--data-dir", default=None, help="folder with the dataset's files")
    p.add_argument("--steps", type=int, default=None, help="training steps per run")
    p.add_argument("--channels", type=int, default=None, help="width of the deep block")
    p.add_argument("--batch-size", type=int, default=None, help="batch size")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds")
    g = p.add_argument_group("phase study")
    g.add_argument("--sigma-w2", type=float, nargs="+", default=None, metavar="S",
                   help="weight variances (default: 0.8 1.3 1.76 2.1 2.8 4.0)")
    g.add_argument("--depths", type=int, nargs="+", default=None, metavar="L",
                   help="depths (default: 4 8 16 ... 512)")
    g.add_argument("--lrs", type=float, nargs="+", default=None, metavar="LR",
                   help="learning-rate grid; per cell the lowest final training loss wins")
    p.add_argument("--sigma-b2", type=float, default=0.05,
                   help="bias variance (default 0.05); the modes study uses the critical "
                        "sigma_w2 for it")
    g.add_argument("--k-se", type=float, default=5.0,
                   help="'trained' means test accuracy > chance + K standard errors (default 5)")
    g = p.add_argument_group("modes study")
    g.add_argument("--t", type=float, nargs="+", default=None, metavar="T",
                   help="tunable-profile parameters in [0, 0.5] (0 delta, 0.5 uniform-like)")
    g.add_argument("--depth", type=int, default=32, help="depth of every run (default 32)")
    g.add_argument("--lr", type=float, default=None, help="learning rate (modes study)")
    g.add_argument("--kinds", nargs="+", default=("orthogonal", "gaussian"),
                   choices=("orthogonal", "gaussian"), help="kernel kinds")


def _train_kwargs(args):
    kw = {"dataset": args.dataset}
    if args.data_dir is not None:
        kw["data_dir"] = args.data_dir
    for name in ("steps", "channels", "batch_size"):
        val = getattr(args, name)
        if val is not None:
            kw[name] = val
    return kw


def run(args) -> int:
    """Run the chosen study, write figure and numbers, print the summary."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")

    from cnnmft.pytorch import experiments, profiles

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = args.store or str(out / "cells")
    if args.study == "phase":
        res = experiments.trainability_sweep(
            args.sigma_w2, args.depths, sigma_b2=args.sigma_b2, act=args.act, store=store,
            lrs=args.lrs, seeds=args.seeds, k_se=args.k_se, scheduler=args.scheduler,
            scheduler_file=args.scheduler_file, ship_data=args.ship_data,
            n_workers=args.workers, **_train_kwargs(args))
        res.save(out / "trainability.npz")
        res.save(out / "trainability.json")
        fig = experiments.plot_trainability(res)
        fig.savefig(out / "trainability.png", dpi=120, bbox_inches="tight")
        print(res.summary())
    else:
        kw = {} if args.t is None else {"t": args.t}
        if args.seeds is not None:
            kw["seeds"] = args.seeds
        if args.lr is not None:
            kw["lr"] = args.lr
        res = profiles.modewise_study(
            depth=args.depth, kinds=args.kinds, act=args.act, store=store,
            sigma_b2=args.sigma_b2, scheduler=args.scheduler,
            scheduler_file=args.scheduler_file, ship_data=args.ship_data,
            n_workers=args.workers, **kw, **_train_kwargs(args))
        res.save(out / "modewise.npz")
        res.save(out / "modewise.json")
        fig = profiles.plot_modewise(res)
        fig.savefig(out / "modewise.png", dpi=120, bbox_inches="tight")
        for ik, kind in enumerate(res.kinds):
            for it, t in enumerate(res.t):
                print(f"{kind:10s} t={t:4.2f}: test acc {np.nanmean(res.test_accuracy[ik, it]):.3f}"
                      f", mean loss {np.nanmean(res.loss_auc[ik, it]):.3f}, xi(slowest mode) "
                      f"{res.xi_slowest[it]:.3g}")
            print(f"{kind}: slope of test accuracy in t {res.slope_test_accuracy[ik]:+.4f} +- "
                  f"{res.slope_se[ik]:.4f}")
    print(f"written to {out}/")
    return 0
