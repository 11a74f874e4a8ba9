"""``cnnmft trainability``: theory against training, on a Dask cluster.

Two studies (THEORY.md §5.2-5.3):

* ``phase`` (default): one short training run per ``(depth, sigma_w2)`` cell at fixed
  ``sigma_b2``; accuracy heatmap with ``6 xi_c`` drawn over it and the agreement fraction.
* ``modes``: fixed depth at criticality, kernels with spatial variance profiles from delta to
  binomial (orthogonal and Gaussian); training speed and test accuracy against predicted per-mode
  depth scales.

Finished cells are stored under ``--store`` as they complete; rerunning skips them.
"""

from __future__ import annotations


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
    p.add_argument("--workers", type=int, default=2, help="local cluster worker processes")
    p.add_argument("--act", default="tanh", help="activation (default tanh)")
    p.add_argument("--dataset", default="digits", help="digits (default), mnist or cifar10")
    p.add_argument("--data-dir", default=None, help="folder with MNIST/CIFAR-10 files")
    p.add_argument("--steps", type=int, default=None, help="training steps per cell")
    p.add_argument("--channels", type=int, default=None, help="width of the deep block")
    p.add_argument("--lr", type=float, default=None, help="learning rate")
    p.add_argument("--batch-size", type=int, default=None, help="batch size")
    p.add_argument("--seed", type=int, default=0, help="seed (phase study)")
    g = p.add_argument_group("phase study")
    g.add_argument("--sigma-w2", type=float, nargs="+", default=None, metavar="S",
                   help="weight variances (default: 12 values from 0.5 to 3.8)")
    g.add_argument("--depths", type=int, nargs="+", default=None, metavar="L",
                   help="depths (default: 2 4 6 8 12 16 24 32 48 64)")
    p.add_argument("--sigma-b2", type=float, default=0.05,
                   help="bias variance (default 0.05); the modes study uses the critical "
                        "sigma_w2 for it")
    g.add_argument("--threshold", type=float, default=0.3,
                   help="'trained' means final training accuracy >= this (default 0.3)")
    g = p.add_argument_group("modes study")
    g.add_argument("--t", type=float, nargs="+", default=None, metavar="T",
                   help="tunable-profile parameters in [0, 0.5] (0 delta, 0.5 binomial)")
    g.add_argument("--depth", type=int, default=16, help="depth of every run (default 16)")
    g.add_argument("--seeds", type=int, nargs="+", default=(0, 1, 2), help="seeds per profile")
    g.add_argument("--kinds", nargs="+", default=("orthogonal", "gaussian"),
                   choices=("orthogonal", "gaussian"), help="kernel kinds")


def _train_kwargs(args):
    kw = {"dataset": args.dataset}
    if args.data_dir is not None:
        kw["data_dir"] = args.data_dir
    for name in ("steps", "channels", "lr", "batch_size"):
        val = getattr(args, name)
        if val is not None:
            kw[name] = val
    return kw


def run(args) -> int:
    """Run the chosen study, write figure and numbers, print the summary."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")

    from cnnmft.pytorch import sweeps

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = args.store or str(out / "cells")
    if args.study == "phase":
        res = sweeps.trainability_sweep(
            args.sigma_w2, args.depths, sigma_b2=args.sigma_b2, act=args.act, store=store,
            threshold=args.threshold, seed=args.seed, scheduler=args.scheduler,
            n_workers=args.workers, **_train_kwargs(args))
        res.save(out / "trainability.npz")
        res.save(out / "trainability.json")
        fig = sweeps.plot_trainability(res)
        fig.savefig(out / "trainability.png", dpi=120, bbox_inches="tight")
        print(res.summary())
    else:
        kw = {} if args.t is None else {"t": args.t}
        res = sweeps.modewise_study(
            depth=args.depth, kinds=args.kinds, act=args.act, seeds=args.seeds, store=store,
            sigma_b2=args.sigma_b2,
            scheduler=args.scheduler, n_workers=args.workers, **kw, **_train_kwargs(args))
        res.save(out / "modewise.npz")
        res.save(out / "modewise.json")
        fig = sweeps.plot_modewise(res)
        fig.savefig(out / "modewise.png", dpi=120, bbox_inches="tight")
        for ik, kind in enumerate(res.kinds):
            for it, t in enumerate(res.t):
                print(f"{kind:10s} t={t:4.2f}: test acc {res.test_accuracy[ik, it]:.3f} "
                      f"+- {res.test_accuracy_se[ik, it]:.3f}, mean loss "
                      f"{res.loss_auc[ik, it]:.3f}, xi(slowest mode) {res.xi_slowest[it]:.3g}")
    print(f"written to {out}/")
    return 0
