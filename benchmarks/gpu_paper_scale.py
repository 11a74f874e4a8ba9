"""Paper-scale check on one GPU: 10,000 layers, 128 channels, Fashion-MNIST, the plain protocol.

Xiao et al. (2018), Figure 1, with the controls of ``benchmarks/ten_thousand_layers.py``:
Fashion-MNIST 28x28 -> two stride-2 stem convolutions -> 10,000 Delta-orthogonal 3x3 tanh
layers with circular padding on 7x7 maps, 128 channels -> global average pooling -> readout with
std sqrt(1/C); critical point q* = 1/depth; SGD with momentum 0.9 and one learning rate for
every parameter, ``lr = LR_DEPTH_CONSTANT / depth``; full fp32 (TF32 off unless ``--tf32``).

Phases, each with its own time budget, so the whole script stops by itself within
``--budget-minutes`` (default 8) on one H100/H200:

1. implementation: a few training steps with each deep-block implementation (autograd with
   activation checkpointing, and the fused block with its hand-written backward); the faster is
   used (``--impl`` skips this);
2. training, interleaved so the three runs share one step count: Delta-orthogonal trained, the
   same network with the deep block frozen (control), Gaussian kernels at the same point; then
   each is evaluated on the same test images.

``numbers.json`` and ``gpu_paper_scale.png`` are rewritten after each phase.

Data: Fashion-MNIST IDX files from ``--data-dir`` (default: Debian's
/usr/share/datasets/fashion-mnist). To carry them to a machine without the package, copy the
four ``*.gz`` files into the working tree and pass that folder:
``python benchmarks/gpu_paper_scale.py --pack-data shared/fashion-mnist`` does the copy.

    python benchmarks/gpu_paper_scale.py --data-dir shared/fashion-mnist   # on the GPU
    python benchmarks/gpu_paper_scale.py --smoke --out /tmp/smoke          # CPU, seconds
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ten_thousand_layers as T  # noqa: E402


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--depth", type=int, default=10_000)
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--lr-constant", type=float, default=None)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--budget-minutes", type=float, default=8.0)
    p.add_argument("--impl-budget-s", type=float, default=75.0)
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--max-test", type=int, default=2000)
    p.add_argument("--eval-samples", type=int, default=500)
    p.add_argument("--device", default="auto")
    p.add_argument("--tf32", action="store_true")
    p.add_argument("--impl", default=None, help="autograd or fused (default: the faster)")
    p.add_argument("--smoke", action="store_true", help="tiny CPU setting for the tests")
    p.add_argument(
        "--pack-data",
        default=None,
        metavar="DIR",
        help="copy the Fashion-MNIST IDX files into DIR and exit",
    )
    p.add_argument("--out", default="gpu_paper_scale_out")
    args = p.parse_args(argv)
    if args.smoke:
        args.depth, args.channels, args.batch_size = 12, 4, 16
        args.budget_minutes, args.impl_budget_s = 1.0, 10.0
        args.max_steps, args.max_test, args.eval_samples = 6, 100, 50
        args.device = "cpu"
    return args


def _time_impl(args, impl, device, budget_s):
    """Median seconds of a training step with `impl` (at most ~`budget_s` of work)."""
    import torch
    import torch.nn.functional as F

    from cnnmft.pytorch.models import VanillaCNN

    net = VanillaCNN(
        args.depth,
        args.channels,
        stem_strides=(2, 2),
        impl=impl,
        generator=torch.Generator().manual_seed(0),
    ).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-9, momentum=0.9)
    x = torch.randn(args.batch_size, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    times, t_end = [], time.perf_counter() + budget_s
    while len(times) < 4 and time.perf_counter() < t_end:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    del net, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    steady = times[1:] or times
    return sorted(steady)[len(steady) // 2]


def main(argv=None):
    args = parse(argv)
    if args.pack_data:
        from cnnmft.pytorch.data import FASHION_MNIST_DIRS

        dst = Path(args.pack_data)
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted(Path(FASHION_MNIST_DIRS[0]).glob("*-ubyte.gz")):
            shutil.copy2(f, dst / f.name)
        print(f"copied the Fashion-MNIST IDX files to {dst}")
        return 0
    import torch

    t_begin = time.time()
    until = t_begin + 60 * args.budget_minutes
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    numbers = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "depth": args.depth,
        "channels": args.channels,
        "batch_size": args.batch_size,
        "protocol": "plain: SGD momentum 0.9, one lr = LR_DEPTH_CONSTANT/depth, readout "
        "std sqrt(1/C), q* = 1/depth, Delta-orthogonal, circular padding",
        "tf32": bool(args.tf32),
        "phases": {},
    }

    def dump():
        (out / "numbers.json").write_text(json.dumps(numbers, indent=1))

    # phase 1: the fastest deep-block implementation
    impl = args.impl
    if impl is None:
        timing = {}
        for cand in ("autograd", "fused"):
            timing[cand] = _time_impl(args, cand, device, args.impl_budget_s / 2)
            print(f"{cand}: {timing[cand]:.3f} s per step", flush=True)
        impl = min(timing, key=timing.get)
        numbers["phases"]["implementation_s_per_step"] = timing
    numbers["impl"] = impl
    dump()

    # phase 2: delta / frozen / gaussian, interleaved, stopped by the clock
    ns = argparse.Namespace(
        dataset="fashion-mnist",
        data_dir=args.data_dir,
        depths=[args.depth],
        channels=args.channels,
        batch_size=args.batch_size,
        momentum=args.momentum,
        lr_constant=args.lr_constant,
        lr=[],
        eval_every=0,
        eval_samples=args.eval_samples,
        max_test=args.max_test,
        impl=impl,
        threads=1,
        out=str(out),
        checkpoint_every=10**9,
        max_deep_steps=args.max_steps,
        device=str(device),
        tf32=args.tf32,
        seeds=1,
        deep_seeds=1,
        quick=False,
        steps=args.max_steps,
        max_train=500 if args.smoke else None,
    )
    results = T.run_deep_interleaved(ns, args.depth, 0, until - 15)
    ns.steps = min(r.steps_done for r in results.values())
    numbers["phases"]["training"] = {
        k: {
            "steps": r.steps_done,
            "test_acc": r.test_accuracy,
            "n_test": r.n_test,
            "final_loss": r.final_loss,
            "status": r.message,
            "s_per_step": r.step_time,
            "median_weight_movement": float(sorted(r.weight_movement)[len(r.weight_movement) // 2]),
        }
        for k, r in results.items()
    }
    numbers["total_minutes"] = (time.time() - t_begin) / 60
    dump()
    summary = T.summarise(ns, results, [], None, time.perf_counter())  # writes numbers.json
    T.figure(ns, results, summary)
    (out / "ten_thousand_layers.png").replace(out / "gpu_paper_scale.png")
    numbers["checks"] = summary["checks"]
    dump()  # this script's numbers, with the check's summary, replace the generic file
    print(json.dumps(numbers["phases"], indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
