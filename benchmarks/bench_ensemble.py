"""Ensemble training against one-by-one training of the same networks, measured in one run.

``G`` vanilla tanh CNNs of one depth (Gaussian kernels at several sigma_w2 and learning rates,
7x7 maps after a strided stem, Fashion-MNIST-shaped 28x28 input) train for a few SGD steps,
once as one :class:`cnnmft.pytorch.ensemble.EnsembleCNN` (grouped convolutions) and once one
network at a time with :class:`torch.optim.SGD` (the same ``VanillaCNN`` of the sweep, autograd
implementation). Both paths see the same batches; the script checks that the final losses agree
and prints the seconds per step and the speed-up. One torch thread throughout.

Usage::

    python benchmarks/bench_ensemble.py [--depths 8 32 128] [--members 12] [--steps 4]

The timings are of this machine at the load it has; the load average is printed with them and
written to ``benchmarks/results/bench_ensemble.json`` with ``--save``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from cnnmft.pytorch import VanillaCNN
from cnnmft.pytorch.ensemble import member_batches, train_ensemble

HERE = Path(__file__).resolve().parent


def _nets(depth, members, channels):
    sws = np.linspace(0.8, 4.0, members)
    return [
        VanillaCNN(
            depth,
            channels,
            init="gaussian",
            sigma_w2=float(s),
            sigma_b2=0.05,
            stem_strides=(1, 2, 2),
            impl="autograd",
            checkpoint_segments=None,
            generator=torch.Generator().manual_seed(0),
        )
        for s in sws
    ]


def one_depth(depth, members, channels, steps, batch):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(512, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (512,), generator=g)
    lrs = [0.01 if i % 2 else 0.04 for i in range(members)]
    out = train_ensemble(
        _nets(depth, members, channels), x, y, lr=lrs, steps=steps, batch_size=batch
    )
    t_ens = out["seconds_per_step"]
    idx = member_batches(len(y), batch, [0] * members, steps)
    t0 = time.perf_counter()
    last = []
    for k, net in enumerate(_nets(depth, members, channels)):
        opt = torch.optim.SGD(net.parameters(), lr=lrs[k], momentum=0.9)
        for s in range(steps):
            b = idx[s, k]
            loss = torch.nn.functional.cross_entropy(net(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        last.append(loss.item())
    t_one = (time.perf_counter() - t0) / steps
    err = float(np.max(np.abs(np.array(last) - out["loss"][-1])))
    return {
        "depth": depth,
        "members": members,
        "channels": channels,
        "batch": batch,
        "steps": steps,
        "ensemble_s_per_step": t_ens,
        "one_by_one_s_per_step": t_one,
        "speedup": t_one / t_ens,
        "max_final_loss_difference": err,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depths", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--members", type=int, default=12)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--save", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    load0 = os.getloadavg()
    rows = []
    for d in args.depths:
        r = one_depth(d, args.members, args.channels, args.steps, args.batch)
        rows.append(r)
        print(
            f"depth {d:4d}, {args.members} members: ensemble {r['ensemble_s_per_step']:.3f} "
            f"s/step, one by one {r['one_by_one_s_per_step']:.3f} s/step, speed-up "
            f"{r['speedup']:.2f}x (final losses agree to {r['max_final_loss_difference']:.1e})",
            flush=True,
        )
    load1 = os.getloadavg()
    print(f"load average {load0[0]:.1f} at start, {load1[0]:.1f} at end (2-core machine)")
    if args.save:
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "bench_ensemble.json").write_text(
            json.dumps(
                {
                    "rows": rows,
                    "load_average_start": load0,
                    "load_average_end": load1,
                    "cpus": os.cpu_count(),
                    "torch_threads": 1,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
