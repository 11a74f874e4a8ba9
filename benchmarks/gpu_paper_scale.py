"""Paper-scale check on one GPU: a 10,000-layer, 128-channel vanilla tanh CNN on MNIST-shaped input.

Xiao et al. (2018), Figure 1: Delta-orthogonal kernels at the critical point (q* = 1/depth),
stem 28x28 -> 7x7, 10,000 layers of 3x3 circular convolutions with 128 channels, global average
pooling, linear readout; activation checkpointing (ceil(sqrt(depth)) segments). TF32 is OFF
(full fp32) unless ``--tf32``.

Data: MNIST from ``--data-dir`` (IDX files) when given, otherwise the scikit-learn digits resized
to 28x28 ("digits28": MNIST-shaped and offline). The number of steps is sized from a measured
step time so that the whole script finishes within ``--budget-minutes`` (default 8, for a
10-minute slot on one H100); it also runs a Gaussian-kernel network for the gradient-norm
comparison at initialisation (one step).

    python benchmarks/gpu_paper_scale.py                            # on the GPU machine
    python benchmarks/gpu_paper_scale.py --device cpu --depth 20 --channels 8 --steps 3 \\
        --out /tmp/smoke                                            # CPU smoke test

Writes ``numbers.json`` and ``gpu_paper_scale.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--depth", type=int, default=10_000)
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--data-dir", default=None, help="MNIST IDX folder (default: digits28)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--deep-lr-scale", default="1/depth")
    p.add_argument("--readout-scale", default="1/sqrt(q*)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--budget-minutes", type=float, default=8.0)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-samples", type=int, default=2000)
    p.add_argument("--max-test", type=int, default=2000)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--tf32", action="store_true")
    p.add_argument("--impl", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="gpu_paper_scale_out")
    args = p.parse_args(argv)

    import torch

    from cnnmft.pytorch.train import TrainConfig, plot_training, train

    t_begin = time.perf_counter()
    cuda = torch.cuda.is_available() and args.device != "cpu"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = "mnist" if args.data_dir else "digits28"
    scale = lambda s: s if s in ("1/depth", "1/sqrt(q*)") else float(s)  # noqa: E731
    base = dict(dataset=dataset, data_dir=args.data_dir, depth=args.depth,
                channels=args.channels, batch_size=args.batch_size, optimizer=args.optimizer,
                lr=args.lr, deep_lr_scale=scale(args.deep_lr_scale),
                readout_scale=scale(args.readout_scale), eval_every=args.eval_every,
                eval_samples=args.eval_samples, max_test=args.max_test, device=args.device,
                dtype=args.dtype, tf32=args.tf32, impl=args.impl, seed=args.seed, plots=False,
                stem_strides=(1, 2, 2))

    # Gaussian network: one step, for the gradient norms at initialisation (also warms up CUDA)
    quick = {**base, "steps": 1, "eval_every": 0, "eval_samples": 100, "max_test": 100}
    gauss = train(TrainConfig(**{**quick, "init": "gaussian"}), progress=False)
    t_gauss = time.perf_counter() - t_begin

    steps = args.steps
    if steps is None:
        probe = train(TrainConfig(**{**quick, "steps": 3}), progress=False)
        spent = (time.perf_counter() - t_begin) / 60
        steps = int((args.budget_minutes - spent) * 60 / (probe.step_time * 1.3))
        steps = max(10, min(args.max_steps, steps))
        print(f"measured {probe.step_time:.3f} s/step: {steps} steps", flush=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    res = train(TrainConfig(steps=steps, **base), progress=True)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")

    g = res.init_grad_norms
    gg = gauss.init_grad_norms
    numbers = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "dataset": dataset, "depth": args.depth, "channels": args.channels,
        "batch_size": args.batch_size, "steps": res.steps_done, "optimizer": args.optimizer,
        "lr": args.lr, "deep_lr_scale": args.deep_lr_scale, "readout_scale": args.readout_scale,
        "tf32": bool(args.tf32), "dtype": args.dtype,
        "sigma_w2": res.sigma_w2, "sigma_b2": res.sigma_b2,
        "test_accuracy": res.test_accuracy, "train_accuracy": res.train_accuracy,
        "final_loss": res.final_loss, "status": res.message,
        "step_time_s": res.step_time, "peak_gpu_memory_gib": peak,
        "init_grad_norm_first_over_last_delta": float(g[0] / g[-1]),
        "init_grad_norm_max_over_min_delta": float(g.max() / g.min()),
        "init_grad_norm_first_over_last_gaussian": float(gg[0] / gg[-1]),
        "gaussian_probe_seconds": t_gauss,
        "total_minutes": (time.perf_counter() - t_begin) / 60,
    }
    (out / "numbers.json").write_text(json.dumps(numbers, indent=1))
    res.save(out / "delta_orthogonal.npz")
    plot_training([res, gauss], labels=[f"Delta-orthogonal, depth {args.depth}",
                                        f"Gaussian, depth {args.depth} (1 step)"],
                  path=out / "gpu_paper_scale.png",
                  title=f"{dataset}, {args.depth} layers x {args.channels} channels")
    print(json.dumps(numbers, indent=1))
    return 0 if np.isfinite(res.final_loss) and res.success else 1


if __name__ == "__main__":
    raise SystemExit(main())
