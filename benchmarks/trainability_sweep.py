"""Default trainability sweep (12 x 10 cells) and the mode-wise study, with committed results.

Runs :func:`cnnmft.pytorch.sweeps.trainability_sweep` on its default grid (tanh, sigma_b2 = 0.05,
sigma_w2 in 0.5..3.8, depth 2..64, digits, 150 SGD steps of batch 64, 16 channels) on a local Dask
cluster, then :func:`cnnmft.pytorch.sweeps.modewise_study` (depth 16 at the critical point,
t = 0..0.5, orthogonal and Gaussian kernels, 3 seeds, 300 steps). Writes figures and numbers to
``benchmarks/results/``. Cells are stored under ``--store`` as they finish, so an interrupted run
resumes where it stopped.

Usage::

    nice python benchmarks/trainability_sweep.py [--workers 2] [--store DIR] [--skip-modes]

Timings depend on machine load: on a shared machine they are inflated by contention.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from cnnmft.pytorch import sweeps  # noqa: E402

HERE = Path(__file__).resolve().parent


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--store", default="/tmp/cnnmft-trainability-cells")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--skip-modes", action="store_true")
    ap.add_argument("--skip-phase", action="store_true")
    ap.add_argument("--note", default="", help="extra text for the summaries (e.g. earlier runs)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    note = ("timings on a 2-core machine; other work running at the same time inflates them; "
            "load average at start " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if args.note:
        note += "; " + args.note

    if not args.skip_phase:
        resumed = len(sweeps.CellStore(Path(args.store) / "phase"))
        t0 = time.perf_counter()
        res = sweeps.trainability_sweep(store=Path(args.store) / "phase", n_workers=args.workers)
        wall = time.perf_counter() - t0
        res.save(out / "trainability_sweep.npz")
        res.save(out / "trainability_sweep.json")
        fig = sweeps.plot_trainability(res)
        fig.savefig(out / "trainability_sweep.png", dpi=120, bbox_inches="tight")
        store = sweeps.CellStore(Path(args.store) / "phase")
        cell_s = [r["elapsed_s"] or 0.0 for r in store.records().values()]
        sens = {f"{thr:g}": sweeps.agreement_fraction(
            np.nan_to_num(res.train_accuracy, nan=-1.0) >= thr, res.predicted)
            for thr in (0.2, 0.3, 0.5)}
        summary = {
            "grid": {"sigma_w2": res.sigma_w2.tolist(), "depth": res.depth.tolist(),
                     "sigma_b2": res.sigma_b2, "act": res.act},
            "training": json.loads(res.config),
            "threshold": res.threshold,
            "trained_definition": f"final training accuracy on 1000 training images >= "
                                  f"{res.threshold:g} (chance 0.1)",
            "agreement": res.agreement,
            "agreement_at_other_thresholds": sens,
            "confusion": {"trained_and_predicted": int((res.trained & res.predicted).sum()),
                          "neither": int((~res.trained & ~res.predicted).sum()),
                          "trained_beyond_bound": int((res.trained & ~res.predicted).sum()),
                          "predicted_not_trained": int((~res.trained & res.predicted).sum())},
            "wall_seconds_this_run": wall,
            "cells_found_in_store_at_start": resumed,
            "sum_cell_seconds": float(np.sum(cell_s)),
            "n_cells": int(res.trained.size),
            "workers": args.workers,
            "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
            "note": note,
        }
        (out / "trainability_sweep_summary.json").write_text(json.dumps(summary, indent=1))
        print(res.summary())
        print(f"agreement at thresholds 0.2/0.3/0.5: {sens}")
        print(f"wall {wall:.0f} s, sum of cell times {np.sum(cell_s):.0f} s ({note})")

    if not args.skip_modes:
        resumed = len(sweeps.CellStore(Path(args.store) / "modes"))
        t0 = time.perf_counter()
        study = sweeps.modewise_study(store=Path(args.store) / "modes", n_workers=args.workers)
        wall = time.perf_counter() - t0
        cell_s = [r["elapsed_s"] or 0.0
                  for r in sweeps.CellStore(Path(args.store) / "modes").records().values()]
        study.save(out / "modewise_study.npz")
        study.save(out / "modewise_study.json")
        fig = sweeps.plot_modewise(study)
        fig.savefig(out / "modewise_study.png", dpi=120, bbox_inches="tight")
        rows = []
        for ik, kind in enumerate(study.kinds):
            for it, t in enumerate(study.t):
                rows.append({"kind": str(kind), "t": float(t),
                             "train_accuracy": float(study.train_accuracy[ik, it]),
                             "test_accuracy": float(study.test_accuracy[ik, it]),
                             "test_accuracy_se": float(study.test_accuracy_se[ik, it]),
                             "mean_train_loss": float(study.loss_auc[ik, it]),
                             "xi_slowest_mode": float(study.xi_slowest[it]),
                             "surviving_mode_fraction": float(study.surviving_fraction[it])})
                print(rows[-1])
        (out / "modewise_study_summary.json").write_text(json.dumps(
            {"depth": study.depth, "sigma_w2": study.sigma_w2, "sigma_b2": study.sigma_b2,
             "spatial_shape": study.spatial_shape.tolist(), "n_seeds": study.n_seeds,
             "training": json.loads(study.config), "rows": rows, "wall_seconds_this_run": wall,
             "cells_found_in_store_at_start": resumed, "sum_cell_seconds": float(np.sum(cell_s)),
             "note": note}, indent=1))
        print(f"mode-wise study: wall {wall:.0f} s")


if __name__ == "__main__":
    main()
