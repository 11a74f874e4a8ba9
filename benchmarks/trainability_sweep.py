"""The default trainability sweep (Fashion-MNIST, 7x7 maps, depths 4..512) with committed results.

Runs :func:`cnnmft.pytorch.experiments.trainability_sweep` on its default grid (tanh,
sigma_b2 = 0.05, 6 sigma_w2 across both phases, depths 4..512, 2 learning rates, 2 seeds,
150 SGD steps of batch 16, 8 channels, Gaussian kernels) on a local Dask cluster, one ensemble
task per (depth, seed), cheapest first. Every task is stored under ``--store`` as it finishes;
rerun the same command to resume, or ``--assemble`` to build the figure and numbers from what
is stored so far (missing runs are INTERRUPTED and left out of the agreements).

Usage::

    python benchmarks/trainability_sweep.py [--workers 1] [--store DIR] [--assemble]
    python benchmarks/trainability_sweep.py --gpu     # GPU_PROFILE, for one H100/H200

Writes ``trainability_sweep{.npz,.json,.png,_summary.json}`` (``trainability_gpu*`` with
``--gpu``) to ``--out``. Timings depend on machine load; the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _summary(res, wall, store, args, load0):
    from cnnmft.results import Status, status_counts
    from cnnmft.sweeps import CellStore

    recs = CellStore(store).records().values()
    cell_s = [r["elapsed_s"] or 0.0 for r in recs]
    per_step = {
        str(r["params"]["depth"]) + "/" + str(r["params"]["seed"]): r["result"]["seconds_per_step"]
        for r in recs
        if r["result"]
    }
    t, v = res.trained, res.valid
    pred = np.broadcast_to(res.depth[:, None] <= res.predicted_depth[None, :], t.shape)
    return {
        "grid": {
            "sigma_w2": res.sigma_w2.tolist(),
            "depth": res.depth.tolist(),
            "lrs": res.lrs.tolist(),
            "seeds": res.seeds.tolist(),
            "sigma_b2": res.sigma_b2,
            "act": res.act,
        },
        "training": json.loads(res.config),
        "trained_definition": (
            f"test accuracy (at the learning rate with the lowest final "
            f"training loss) > {res.threshold:.4f} = chance 0.1 + "
            f"{res.k_se:g} binomial standard errors on the test set"
        ),
        "predicted_depth_6xi_c": [
            None if not np.isfinite(x) else float(x) for x in res.predicted_depth
        ],
        "cells_with_result": int(v.sum()),
        "cells_total": int(v.size),
        "run_status_counts": status_counts(res.status),
        "agreement_6xi_c": res.agreement,
        "agreement_best_depth_rule": res.agreement_depth_rule,
        "best_depth_D": res.best_depth,
        "agreement_best_sigma_w2_rule": res.agreement_sigma_rule,
        "k_fit": res.k_fit,
        "k_fit_per_seed": res.k_fit_per_seed.tolist(),
        "agreement_k_fit": res.agreement_k_fit,
        "confusion_6xi_c": {
            "trained_and_predicted": int((t & pred & v).sum()),
            "neither": int((~t & ~pred & v).sum()),
            "trained_beyond_bound": int((t & ~pred & v).sum()),
            "predicted_not_trained": int((~t & pred & v).sum()),
        },
        "fraction_trained_by_depth": {
            str(int(d)): float(t[:, i][v[:, i]].mean()) if v[:, i].any() else None
            for i, d in enumerate(res.depth)
        },
        "diverged_runs": int((res.status == int(Status.NONFINITE)).sum()),
        "wall_seconds_this_call": wall,
        "sum_task_seconds": float(np.sum(cell_s)),
        "seconds_per_step_by_depth_seed": per_step,
        "workers": args.workers,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
        "load_average_at_start": load0,
        "load_average_at_end": list(os.getloadavg()),
        "note": args.note,
    }


def _modes(args):
    from cnnmft.pytorch import profiles

    out = Path(args.out)
    load0 = list(os.getloadavg())
    t0 = time.perf_counter()
    study = profiles.modewise_study(
        (0.0, 0.1, 0.25, 0.5),
        depth=args.modes_depth,
        seeds=(0, 1),
        steps=args.modes_steps,
        store=args.store or "/tmp/cnnmft-modewise",
        n_workers=args.workers,
    )
    wall = time.perf_counter() - t0
    study.save(out / "modewise_study.npz")
    study.save(out / "modewise_study.json")
    profiles.plot_modewise(study).savefig(out / "modewise_study.png", dpi=120, bbox_inches="tight")
    rows = [
        {
            "kind": str(k),
            "t": float(t),
            "test_accuracy_per_seed": study.test_accuracy[ik, it].tolist(),
            "train_accuracy_per_seed": study.train_accuracy[ik, it].tolist(),
            "mean_train_loss_per_seed": study.loss_auc[ik, it].tolist(),
            "xi_slowest_mode": float(study.xi_slowest[it]),
            "surviving_mode_fraction": float(study.surviving_fraction[it]),
        }
        for ik, k in enumerate(study.kinds)
        for it, t in enumerate(study.t)
    ]
    (out / "modewise_study_summary.json").write_text(
        json.dumps(
            {
                "depth": study.depth,
                "sigma_w2": study.sigma_w2,
                "sigma_b2": study.sigma_b2,
                "spatial_shape": study.spatial_shape.tolist(),
                "training": json.loads(study.config),
                "slope_test_accuracy_in_t": dict(
                    zip(study.kinds.tolist(), study.slope_test_accuracy.tolist())
                ),
                "slope_se": dict(zip(study.kinds.tolist(), study.slope_se.tolist())),
                "rows": rows,
                "wall_seconds": wall,
                "load_average_at_start": load0,
                "load_average_at_end": list(os.getloadavg()),
                "note": args.note,
            },
            indent=1,
        )
    )
    for r in rows:
        print(r)
    print(f"slopes {study.slope_test_accuracy} +- {study.slope_se}; wall {wall:.0f} s")


#: The width check: at the critical point, does a deep cell fail for want of width?
WIDTH_CHECK = {
    "sigma_w2": 1.76,
    "depth": (32, 64, 128),
    "channels": (8, 16, 32),
    "lrs": (0.001, 0.003, 0.01),
    "seeds": (0, 1),
    "steps": 300,
}


def _width_check(args):
    """Critical-point cells (6 xi_c ~ 29,000) at several widths: finite width, not xi_c, limits.

    One ensemble task (the learning rates as members) per (depth, channels, seed), stored in
    ``trainability_width_check.json`` as it finishes (rerun to resume); the learning rate with
    the lowest final training loss is kept, as in the sweep.
    """
    from cnnmft.pytorch import experiments as E

    out = Path(args.out) / "trainability_width_check.json"
    w = WIDTH_CHECK
    done = json.loads(out.read_text()) if out.is_file() else {"cells": {}}
    done.update(
        setup=dict(w, **{k: E.TRAINABILITY_DEFAULTS[k] for k in ("batch_size", "max_test")}),
        load_average_at_start=done.get("load_average_at_start", list(os.getloadavg())),
    )
    for depth in w["depth"]:
        for ch in w["channels"]:
            for seed in w["seeds"]:
                key = f"{depth}/{ch}/{seed}"
                if key in done["cells"]:
                    continue
                params = dict(
                    E.TRAINABILITY_DEFAULTS,
                    dataset="fashion-mnist",
                    act="tanh",
                    sigma_b2=0.05,
                    depth=depth,
                    channels=ch,
                    steps=w["steps"],
                    seed=seed,
                    members=[{"sigma_w2": w["sigma_w2"], "lr": lr} for lr in w["lrs"]],
                )
                t0 = time.perf_counter()
                cell = E.ensemble_cell(params)
                ok = [m for m in cell["members"] if m["status"] == "OK"]
                best = min(ok, key=lambda m: m["final_loss"]) if ok else None
                done["cells"][key] = {
                    "depth": depth,
                    "channels": ch,
                    "seed": seed,
                    "members": cell["members"],
                    "best_lr": best and best["lr"],
                    "test_accuracy": best and best["test_accuracy"],
                    "seconds": time.perf_counter() - t0,
                }
                thr = E.chance_threshold(10, cell["n_test"], 5.0)
                done.update(threshold=thr, load_average_at_end=list(os.getloadavg()))
                out.write_text(json.dumps(done, indent=1))
                print(
                    f"depth {depth} channels {ch} seed {seed}: best "
                    f"{done['cells'][key]['test_accuracy']}"
                    f" (threshold {thr:.3f}), {time.perf_counter() - t0:.0f} s",
                    flush=True,
                )
    _width_figure(done, Path(args.out) / "trainability_width_check.png")


def _width_figure(done, path):
    import matplotlib.pyplot as plt

    w = WIDTH_CHECK
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for depth in w["depth"]:
        acc = np.array(
            [
                [
                    done["cells"].get(f"{depth}/{c}/{s}", {}).get("test_accuracy") or np.nan
                    for s in w["seeds"]
                ]
                for c in w["channels"]
            ]
        )
        ax.errorbar(
            w["channels"],
            np.nanmean(acc, 1),
            yerr=np.nanstd(acc, 1),
            marker="o",
            capsize=3,
            label=f"depth {depth}",
        )
    ax.axhline(done["threshold"], color="k", ls="--", lw=1, label="trained threshold")
    ax.set_xscale("log", base=2)
    ax.set_xticks(w["channels"], [str(c) for c in w["channels"]])
    ax.set_xlabel("channels")
    ax.set_ylabel("test accuracy (best lr)")
    ax.set_title(f"critical point sigma_w2 = {w['sigma_w2']}, {w['steps']} steps")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def main(argv=None):
    import matplotlib

    matplotlib.use("Agg")

    from cnnmft.pytorch import experiments as E

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument(
        "--store", default=None, help="cell store (default /tmp/cnnmft-trainability[-gpu])"
    )
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--gpu", action="store_true", help="the GPU profile (E.GPU_PROFILE)")
    ap.add_argument(
        "--assemble",
        action="store_true",
        help="do not train: build the result from the store as it is",
    )
    ap.add_argument(
        "--modes",
        action="store_true",
        help="run the variance-profile study instead (modewise_study.* files)",
    )
    ap.add_argument(
        "--width-check",
        action="store_true",
        help="critical-point cells at several widths instead (trainability_width_check.*)",
    )
    ap.add_argument("--modes-depth", type=int, default=16)
    ap.add_argument("--modes-steps", type=int, default=200)
    ap.add_argument("--note", default="")
    args = ap.parse_args(argv)
    if args.modes:
        return _modes(args)
    if args.width_check:
        return _width_check(args)
    name = "trainability_gpu" if args.gpu else "trainability_sweep"
    store = args.store or ("/tmp/cnnmft-trainability" + ("-gpu" if args.gpu else ""))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load0 = list(os.getloadavg())
    kw = {}
    if args.gpu:
        p = E.GPU_PROFILE
        kw = dict(
            sigma_w2=p["sigma_w2"], depth=p["depth"], lrs=p["lrs"], seeds=p["seeds"], **p["train"]
        )
    t0 = time.perf_counter()
    res = E.trainability_sweep(store=store, n_workers=args.workers, compute=not args.assemble, **kw)
    wall = time.perf_counter() - t0
    res.save(out / f"{name}.npz")
    res.save(out / f"{name}.json")
    E.plot_trainability(res).savefig(out / f"{name}.png", dpi=120, bbox_inches="tight")
    summary = _summary(res, wall, store, args, load0)
    (out / f"{name}_summary.json").write_text(json.dumps(summary, indent=1))
    print(res.summary())
    print(
        f"wall {wall:.0f} s, sum of task times {summary['sum_task_seconds']:.0f} s, load "
        f"{load0} -> {summary['load_average_at_end']}"
    )


if __name__ == "__main__":
    main()
