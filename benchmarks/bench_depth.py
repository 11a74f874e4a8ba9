"""Step time and peak memory of a VanillaCNN training step against depth (100 ... 10,000).

For each depth and deep-block implementation (``autograd`` with activation checkpointing,
``autograd`` without it, ``fused``, ``dense``; see :class:`cnnmft.pytorch.models.DeepConvBlock`)
a fresh subprocess builds the network (digits-shaped 8x8 input, stem 8x8 -> 4x4, ``--channels``
channels), runs forward + backward steps and reports

* the median step time;
* the peak extra resident memory of a step (``ru_maxrss`` after the steps minus before them);
* the bare convolution cost of the same step, measured in the same process: for every layer, one
  ``conv2d`` forward on a pre-padded input and one ``convolution_backward`` (input and weight
  gradients), with no autograd, padding, activation or recomputation - the floor any
  implementation pays;

and prints ``step / bare`` ratios. Results go to ``benchmarks/results/bench_depth.{json,csv,png}``.

    nice python benchmarks/bench_depth.py                   # depths 100 300 1000 3000 10000
    python benchmarks/bench_depth.py --depths 100 300 --steps 2 --out /tmp/bd
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import torch
cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"]); torch.set_flush_denormal(True)
from cnnmft.pytorch.models import VanillaCNN
F = torch.nn.functional
seg = None if cfg["segments"] == "none" else cfg["segments"]
net = VanillaCNN(cfg["depth"], cfg["channels"], stem_strides=(1, 2), impl=cfg["impl"],
                 checkpoint_segments=seg, generator=torch.Generator().manual_seed(0))
x = torch.randn(cfg["batch"], 1, 8, 8); y = torch.randint(0, 10, (cfg["batch"],))
# warm-up on the first two deep layers (library buffers), so the peak below is the step's own
h = x
for conv in net.stem:
    h = torch.tanh(conv(h))
F.cross_entropy(net.readout(net.block(h, upto=2).mean((2, 3))), y).backward()
net.zero_grad(set_to_none=True)
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range(cfg["steps"]):
    net.zero_grad(set_to_none=True)
    t = time.perf_counter()
    F.cross_entropy(net(x), y).backward()
    times.append(time.perf_counter() - t)
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
# bare convolution cost of the same step
aten = torch.ops.aten
c = cfg["channels"]
with torch.no_grad():
    xp = torch.randn(cfg["batch"], c, 6, 6)
    gy = torch.randn(cfg["batch"], c, 4, 4)
    w = net.block.weight
    bare = []
    for _ in range(max(1, cfg["steps"] - 1)):
        t = time.perf_counter()
        for i in range(cfg["depth"]):
            torch.nn.functional.conv2d(xp, w[i])
            aten.convolution_backward(gy, xp, w[i], None, [1, 1], [0, 0], [1, 1], False, [0, 0],
                                      1, [True, True, False])
        bare.append(time.perf_counter() - t)
impl = net.block.resolved_impl(torch.zeros(1, c, 4, 4))
times_sorted = sorted(times[1:] if len(times) > 1 else times)
print(json.dumps({"step_s": times_sorted[len(times_sorted) // 2], "first_step_s": times[0],
                  "bare_s": min(bare), "peak_extra_mb": (rss1 - rss0) / 1024.0,
                  "rss_before_mb": rss0 / 1024.0, "impl_resolved": impl,
                  "param_mb": sum(p.numel() for p in net.parameters()) * 4 / 2**20}))
"""


def run_child(cfg, timeout):
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.perf_counter() - t0
    return out


def plot(rows, impls, channels, batch, out):
    """Step time and memory against depth (``bench_depth.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(1, 3, figsize=(16, 4))
    for impl in impls:
        rs = [r for r in rows if r["impl"] == impl and "step_s" in r]
        if not rs:
            continue
        d = np.array([r["depth"] for r in rs], dtype=float)
        ax[0].loglog(d, [r["step_s"] for r in rs], "o-", label=impl)
        ax[1].loglog(d, [max(r["peak_extra_mb"], 0.1) for r in rs], "o-", label=impl)
        ax[2].loglog(
            d, [max(r["peak_extra_mb"] - r["param_mb"], 0.1) for r in rs], "o-", label=impl
        )
    rs = [r for r in rows if r["impl"] == impls[0] and "bare_s" in r]
    ax[0].loglog(
        [r["depth"] for r in rs], [r["bare_s"] for r in rs], "k--", label="bare convolutions"
    )
    fused = [r for r in rows if r["impl"] == "fused" and "step_s" in r]
    if fused:
        d = np.array([r["depth"] for r in fused], dtype=float)
        ref = fused[0]["peak_extra_mb"] - fused[0]["param_mb"]
        ax[2].loglog(d, max(ref, 0.1) * np.sqrt(d / d[0]), "k:", label="~ sqrt(depth)")
    ax[0].set(xlabel="depth", ylabel="seconds per training step")
    ax[1].set(xlabel="depth", ylabel="peak extra memory of a step (MB)")
    ax[2].set(xlabel="depth", ylabel="peak extra memory minus gradients (MB)")
    for a in ax:
        a.legend(fontsize=8)
    fig.suptitle(f"VanillaCNN step cost, c={channels}, 4x4 maps, batch {batch} (shared 2-core CPU)")
    fig.tight_layout()
    fig.savefig(out / "bench_depth.png", dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--depths", type=int, nargs="+", default=[100, 300, 1000, 3000, 10_000])
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--impls", nargs="+", default=["autograd", "autograd-nockpt", "fused", "dense"])
    p.add_argument(
        "--nockpt-max-depth",
        type=int,
        default=3000,
        help="skip the no-checkpointing runs above this depth",
    )
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--replot", action="store_true", help="redraw from OUT/bench_depth.json")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        saved = json.loads((out / "bench_depth.json").read_text())
        impls = list(dict.fromkeys(r["impl"] for r in saved["rows"]))
        plot(saved["rows"], impls, saved["meta"]["channels"], saved["meta"]["batch"], out)
        return 0

    rows = []
    for depth in args.depths:
        for impl in args.impls:
            nockpt = impl.endswith("-nockpt")
            if nockpt and depth > args.nockpt_max_depth:
                continue
            cfg = {
                "depth": depth,
                "channels": args.channels,
                "batch": args.batch,
                "steps": args.steps,
                "threads": args.threads,
                "impl": impl.replace("-nockpt", ""),
                "segments": "none" if nockpt else "auto",
            }
            r = run_child(cfg, args.timeout)
            row = {"depth": depth, "impl": impl, **r}
            if "error" not in r:
                row["step_over_bare"] = r["step_s"] / r["bare_s"]
                row["per_layer_us"] = 1e6 * r["step_s"] / depth
                # gradients take one copy of the parameters; the rest is activations
                row["activation_mb"] = r["peak_extra_mb"] - r["param_mb"]
                print(
                    f"depth {depth:6d} {impl:16s} step {r['step_s']:8.3f} s "
                    f"({row['per_layer_us']:7.1f} us/layer)  bare conv {r['bare_s']:8.3f} s  "
                    f"ratio {row['step_over_bare']:5.2f}  peak +{r['peak_extra_mb']:8.1f} MB",
                    flush=True,
                )
            else:
                print(f"depth {depth:6d} {impl:16s} error: {r['error']}", flush=True)
            rows.append(row)

    meta = {
        "channels": args.channels,
        "batch": args.batch,
        "spatial": "4x4",
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "note": "2-core machine shared with other jobs while measured: absolute times are "
        "inflated by contention; ratios measured in the same process are fairer",
    }
    (out / "bench_depth.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    keys = [
        "depth",
        "impl",
        "step_s",
        "bare_s",
        "step_over_bare",
        "per_layer_us",
        "peak_extra_mb",
        "param_mb",
        "activation_mb",
        "impl_resolved",
    ]
    with open(out / "bench_depth.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(keys)
        for r in rows:
            w.writerow([r.get(k, "") for k in keys])
    plot(rows, args.impls, args.channels, args.batch, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
