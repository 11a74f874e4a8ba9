"""Learning-rate grid behind ``lr_for_depth`` (docs/training.md, "Learning rate").

For each depth and learning rate: 60 SGD steps (momentum 0.9, one rate for every parameter) of
the plain protocol on Fashion-MNIST, width 8, batch 32, stem (2, 2), seed 0; the mean training
loss of the first and last 10 steps and the test accuracy on 1,000 test images. One JSON line
per run is appended to ``--out``.

    python benchmarks/lr_depth_grid.py 10 0.003,0.01,0.03,0.1,0.3,1.0
    python benchmarks/lr_depth_grid.py 1000 0.0001,0.0003,0.001,0.003
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("depth", type=int)
    p.add_argument("lrs", help="comma-separated learning rates")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "ten_thousand_lr_grid.jsonl")
    )
    args = p.parse_args(argv)

    from cnnmft.pytorch.train import TrainConfig, train

    for lr in (float(v) for v in args.lrs.split(",")):
        t0 = time.time()
        cfg = TrainConfig(
            dataset="fashion-mnist",
            depth=args.depth,
            channels=8,
            stem_strides=(2, 2),
            batch_size=32,
            steps=args.steps,
            lr=lr,
            momentum=0.9,
            eval_every=0,
            eval_samples=500,
            max_test=1000,
            impl="fused",
            num_threads=1,
            plots=False,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # at chance: kept in "status"
            r = train(cfg, progress=False)
        rec = dict(
            depth=args.depth,
            lr=lr,
            loss_first10=float(np.mean(r.loss[:10])),
            loss_last10=float(np.mean(r.loss[-10:])),
            test_acc=r.test_accuracy,
            status=int(r.status),
            steps=r.steps_done,
            sec=time.time() - t0,
        )
        print(json.dumps(rec), flush=True)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
