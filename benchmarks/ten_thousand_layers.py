"""The 10,000-layer check on Fashion-MNIST, the paper's plain protocol, with controls.

Vanilla tanh CNNs (no residuals, no normalisation), Fashion-MNIST 28x28 -> two stride-2 stem
convolutions -> the deep block on 7x7 maps with circular padding -> global average pooling ->
linear readout (std sqrt(1/C)). Critical point with q* = 1/depth. SGD with momentum 0.9, ONE
learning rate for every parameter, ``lr = c / depth`` (``--lr-constant``, or ``--lr DEPTH=LR``).

At every depth of ``--depths`` (default 10, 100, 10,000), the same budget (steps, batch, data
order) for:

* ``delta``: Delta-orthogonal deep block, trained;
* ``frozen``: the same network with the deep block frozen at its initial weights (stem and
  readout train): what the network learns *without* the deep block learning;
* ``gaussian``: Gaussian kernels (uniform v) at the same depth and critical point, trained;

and, once, ``linear``: a linear classifier on the pixels with the same SGD budget (best of a
small learning-rate grid), plus an L2-regularised logistic regression trained to convergence on
the full training set (what a linear model can reach at all).

Seeds: ``--seeds`` at the shallow depths, ``--deep-seeds`` at the deepest. Every run writes its
own folder with a checksummed checkpoint every ``--checkpoint-every`` steps; rerunning the script
skips finished runs and resumes an interrupted one where it stopped (``nohup``-friendly).
``numbers.json`` and the figure are rewritten after every run.

    nohup nice python benchmarks/ten_thousand_layers.py > results/log.txt &     # the check
    python benchmarks/ten_thousand_layers.py --quick --out /tmp/q               # CI size
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

KINDS = ("delta", "frozen", "gaussian")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--depths", type=int, nargs="+", default=[10, 100, 10_000])
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--max-deep-steps", type=int, default=300, help="cap on the steps of the deepest runs"
    )
    p.add_argument(
        "--deep-until",
        default=None,
        help="stop stepping the deepest runs by this time (HH:MM UTC, or seconds "
        "from now); the shallow runs then get the same number of steps",
    )
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument(
        "--lr-constant",
        type=float,
        default=None,
        help="lr = constant / depth (default: cnnmft's LR_DEPTH_CONSTANT)",
    )
    p.add_argument(
        "--lr",
        nargs="*",
        default=[],
        metavar="DEPTH=LR",
        help="explicit learning rate for a depth (overrides the rule)",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds at the shallow depths")
    p.add_argument("--deep-seeds", type=int, default=1, help="seeds at the deepest depth")
    p.add_argument("--max-test", type=int, default=1000, help="test images (same subset for all)")
    p.add_argument("--eval-samples", type=int, default=250)
    p.add_argument("--eval-every", type=int, default=0, help="shallow runs only")
    p.add_argument("--checkpoint-every", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--impl", default="fused")
    p.add_argument("--quick", action="store_true", help="CI size: depths 4 and 40, 20 steps")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "ten_thousand"))
    args = p.parse_args(argv)
    if args.quick:
        args.depths, args.max_deep_steps, args.seeds, args.deep_seeds = [4, 40], 12, 2, 1
        args.channels, args.max_test, args.eval_samples = 8, 200, 100
        args.checkpoint_every = 5
    return args


def _lr(args, depth):
    from cnnmft.pytorch.config import LR_DEPTH_CONSTANT, lr_for_depth

    for item in args.lr:
        d, v = item.split("=")
        if int(d) == depth:
            return float(v)
    return lr_for_depth(depth, args.lr_constant or LR_DEPTH_CONSTANT)


def make_config(args, kind, depth, seed, steps):
    from cnnmft.pytorch.train import TrainConfig

    deepest = depth == max(args.depths)
    return TrainConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        depth=depth,
        channels=args.channels,
        init="gaussian" if kind == "gaussian" else "delta_orthogonal",
        freeze_block=kind == "frozen",
        stem_strides=(2, 2),
        optimizer="sgd",
        lr=_lr(args, depth),
        momentum=args.momentum,
        steps=steps,
        batch_size=args.batch_size,
        eval_every=0 if deepest else args.eval_every,
        eval_start=not deepest,
        eval_samples=args.eval_samples,
        seed=seed,
        max_test=args.max_test,
        max_train=getattr(args, "max_train", None),
        impl=args.impl if depth else "auto",
        num_threads=args.threads,
        device=getattr(args, "device", "cpu"),
        tf32=getattr(args, "tf32", False),
        out_dir=str(Path(args.out) / "runs" / f"{kind}_depth{depth}_seed{seed}"),
        checkpoint_every=args.checkpoint_every,
        resume=True,
        plots=False,
        grad_norm_layers=tuple(sorted({1, max(depth // 2, 1), depth})) if depth else None,
    )


def _finished(args, key, steps):
    from cnnmft.pytorch.train import TrainResult

    done = Path(args.out) / "runs" / key / "result.json"
    if done.is_file():
        res = TrainResult.load(done)
        if steps is None or res.steps_done >= steps:
            return res
    return None


def _report(key, res):
    moved = np.median(res.weight_movement) if len(res.weight_movement) else 0.0
    print(
        f"{key}: {res.message}; test acc {res.test_accuracy:.4f}, final loss "
        f"{res.final_loss:.4f}, {res.step_time:.3f} s/step, median weight movement "
        f"{moved:.3g}",
        flush=True,
    )


def run_cnn(args, kind, depth, seed, steps):
    """One run of `steps` steps through :func:`cnnmft.pytorch.train.train` (resumable)."""
    import warnings

    from cnnmft.pytorch.train import train

    key = f"{kind}_depth{depth}_seed{seed}"
    res = _finished(args, key, steps)
    if res is not None:
        return key, res
    cfg = make_config(args, kind, depth, seed, steps)
    print(f"--- {key}: lr {cfg.validate().lr:.3g}, {steps} steps", flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = train(cfg, progress=False)
    for w in caught:
        print(f"warning: {w.message}", flush=True)
    _report(key, res)
    return key, res


def run_deep_interleaved(args, depth, seed, until):
    """The deepest runs, stepped in turn so they share one step count, until `until` (epoch s).

    Each run is a :class:`cnnmft.pytorch.train._Run` (setup / step / evaluate / checkpoint):
    one step of each kind per round, a checkpoint of each every ``--checkpoint-every`` rounds,
    stop when the next round and the final evaluations would pass `until` or at
    ``--max-deep-steps``; then evaluate each on the same test images and save its result.
    """
    import dataclasses

    import torch

    from cnnmft.pytorch.train import _result, _Run
    from cnnmft.results import Status

    keys = {k: f"{k}_depth{depth}_seed{seed}" for k in KINDS}
    done = {k: _finished(args, key, None) for k, key in keys.items()}
    if all(r is not None for r in done.values()):
        return {keys[k]: r for k, r in done.items()}
    runs, t0 = {}, time.perf_counter()
    for k in KINDS:
        r = _Run(make_config(args, k, depth, seed, args.max_deep_steps).validate())
        r.resume()
        r.model.train()
        runs[k] = r
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    step_times = {k: [] for k in KINDS}
    n = min(r.step for r in runs.values())
    print(
        f"--- depth {depth}, seed {seed}: interleaved {', '.join(KINDS)} from step {n}", flush=True
    )
    while n < args.max_deep_steps:
        round_t = time.perf_counter()
        for k, r in runs.items():
            if r.step > n:
                continue
            ts = time.perf_counter()
            if r.train_step() is None:
                raise RuntimeError(f"{keys[k]}: the loss became non-finite at step {r.step}")
            step_times[k].append(time.perf_counter() - ts)
        n += 1
        dt = time.perf_counter() - round_t
        if n % args.checkpoint_every == 0:
            for r in runs.values():
                r.save()
        # measured (depth 1,000, width 8): evaluating 1,000 images in batches of 512 costs
        # about 5 training steps of batch 32, i.e. images / batch / 6 steps
        eval_cost = dt * (args.max_test + args.eval_samples) / args.batch_size / 6
        losses = ", ".join(f"{k} {r.hist['loss'][-1]:.4f}" for k, r in runs.items())
        print(f"round {n}: {dt:.1f} s (loss {losses}), load {os.getloadavg()[0]:.1f}", flush=True)
        if time.time() + dt + eval_cost * 1.3 > until:
            break
    out = {}
    for k, r in runs.items():
        r.config = dataclasses.replace(r.config, steps=r.step)
        r.evaluate()
        r.save()
        res = _result(r, Status.OK, "", step_times[k], t0)
        res.save(Path(r.config.out_dir) / "result.json")
        _report(keys[k], res)
        out[keys[k]] = res
    return out


def run_linear(args, seed):
    """Linear classifier on the pixels with the CNNs' SGD budget (best of a small lr grid)."""
    import torch
    import torch.nn.functional as F

    from cnnmft.pytorch.data import load_dataset
    from cnnmft.pytorch.train import _Batches

    data = load_dataset(args.dataset, args.data_dir, seed=seed, max_test=args.max_test)
    xtr = torch.as_tensor(data.x_train).flatten(1)
    ytr = torch.as_tensor(data.y_train)
    xte = torch.as_tensor(data.x_test).flatten(1)
    yte = torch.as_tensor(data.y_test)
    best = None
    for lr in (0.001, 0.003, 0.01, 0.03, 0.1):
        gen = torch.Generator().manual_seed(seed)
        lin = torch.nn.Linear(xtr.shape[1], 10)
        with torch.no_grad():
            lin.weight.normal_(0.0, 1.0, generator=gen).mul_(xtr.shape[1] ** -0.5)
            lin.bias.zero_()
        opt = torch.optim.SGD(lin.parameters(), lr=lr, momentum=args.momentum)
        batches = _Batches(len(ytr), args.batch_size, seed)
        losses = []
        for _ in range(args.steps):
            idx = batches.next()
            loss = F.cross_entropy(lin(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        with torch.no_grad():
            acc = float((lin(xte).argmax(1) == yte).float().mean())
        if best is None or acc > best["test_acc"]:
            best = {"lr": lr, "test_acc": acc, "loss": losses}
    return best


def run_logistic(args):
    """L2 logistic regression to convergence on the full training set (sklearn, lbfgs)."""
    from sklearn.linear_model import LogisticRegression

    from cnnmft.pytorch.data import load_dataset

    data = load_dataset(args.dataset, args.data_dir, seed=0, max_test=args.max_test)
    t0 = time.perf_counter()
    clf = LogisticRegression(max_iter=300, C=0.1)
    clf.fit(data.x_train.reshape(len(data.y_train), -1), data.y_train)
    acc = float(clf.score(data.x_test.reshape(len(data.y_test), -1), data.y_test))
    return {
        "test_acc": acc,
        "n_train": int(len(data.y_train)),
        "seconds": time.perf_counter() - t0,
        "C": 0.1,
        "max_iter": 300,
    }


def _per_depth_checks(args, table):
    """Trained against frozen and Gaussian against chance at every depth, on that depth's seeds.

    "By more than the seed spread": the gap of the means exceeds the larger of the two runs'
    seed ranges at that depth (None with one seed); the standard error of the gap is that of the
    difference of two accuracies near 1/2 on ``n_test`` images.
    """
    out = {}
    for depth in args.depths:
        d, f, g = (table.get(f"{k}_depth{depth}") for k in KINDS)
        row = {}
        if d and f:
            gap = d["test_acc_mean"] - f["test_acc_mean"]
            se = float(np.sqrt(0.5 / d["n_test"]))
            spread = max(d["test_acc_range"], f["test_acc_range"])
            several = d["seeds"] > 1 and f["seeds"] > 1
            row.update(
                trained_minus_frozen=gap,
                standard_error_of_the_gap=se,
                largest_seed_range=spread if several else None,
                trained_beats_frozen_by_more_than_seed_spread=(
                    bool(gap > spread) if several else None
                ),
                every_trained_seed_above_every_frozen_seed=bool(
                    min(d["test_acc"]) > max(f["test_acc"])
                ),
                trained_beats_frozen_by_more_than_3_standard_errors=bool(gap > 3 * se),
            )
        if g:
            row["gaussian_at_chance_within_3se"] = bool(
                g["test_acc_mean"] <= 0.1 + 3 * np.sqrt(0.09 / g["n_test"])
            )
        out[str(depth)] = row
    return out


def summarise(args, results, linear, logistic, t_begin):
    table = {}
    for depth in args.depths:
        for kind in KINDS:
            rs = [r for k, r in results.items() if k.startswith(f"{kind}_depth{depth}_")]
            if not rs:
                continue
            acc = np.array([r.test_accuracy for r in rs])
            moved = np.stack([r.weight_movement for r in rs]) if depth else np.zeros((1, 0))
            table[f"{kind}_depth{depth}"] = {
                "depth": depth,
                "kind": kind,
                "seeds": len(rs),
                "lr": rs[0].settings["lr"],
                "test_acc": acc.tolist(),
                "test_acc_mean": float(acc.mean()),
                "test_acc_range": float(acc.max() - acc.min()),
                "test_acc_std": float(acc.std(ddof=1)) if len(acc) > 1 else None,
                "final_loss": [r.final_loss for r in rs],
                "loss_first10_mean": [float(np.mean(r.loss[:10])) for r in rs],
                "loss_last10_mean": [float(np.mean(r.loss[-10:])) for r in rs],
                "status": [r.message for r in rs],
                "weight_movement_median": float(np.median(moved)) if moved.size else None,
                "weight_movement_first_layer": float(moved[:, 0].mean()) if moved.size else None,
                "weight_movement_last_layer": float(moved[:, -1].mean()) if moved.size else None,
                "weight_movement_max": float(moved.max()) if moved.size else None,
                "step_time_s": float(np.median([r.step_time for r in rs])),
                "sigma_w2": rs[0].sigma_w2,
                "sigma_b2": rs[0].sigma_b2,
                "n_test": rs[0].n_test,
            }
    checks = {}
    deep = max(args.depths)
    d, f, g = (table.get(f"{k}_depth{deep}") for k in KINDS)
    ranges = [v["test_acc_range"] for v in table.values() if v["seeds"] > 1]
    if d and f:
        gap = d["test_acc_mean"] - f["test_acc_mean"]
        checks["deep_trained_minus_frozen"] = gap
        # one standard error of the difference of two accuracies on n_test images
        se = float(np.sqrt(0.5 / d["n_test"]))
        checks["standard_error_of_the_gap"] = se
        checks["largest_seed_range_any_depth"] = max(ranges) if ranges else None
        # with one seed there is no spread to compare with: the flag is then left undecided
        checks["trained_beats_frozen_by_more_than_seed_spread"] = (
            bool(gap > max(ranges)) if ranges else None
        )
        checks["trained_beats_frozen_by_more_than_3_standard_errors"] = bool(gap > 3 * se)
    if g:
        se = 3 * np.sqrt(0.09 / g["n_test"])
        checks["gaussian_deep_test_acc"] = g["test_acc_mean"]
        checks["gaussian_at_chance_within_3se"] = bool(g["test_acc_mean"] <= 0.1 + se)
    checks["per_depth"] = _per_depth_checks(args, table)
    numbers = {
        "dataset": args.dataset,
        "depths": args.depths,
        "channels": args.channels,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "momentum": args.momentum,
        "optimizer": "sgd, one learning rate for every parameter",
        "stem": "two 3x3 stride-2 convolutions (28x28 -> 7x7 maps in the deep block)",
        "readout_init_std": f"sqrt(1/{args.channels})",
        "q_star": "1/depth",
        "max_test": args.max_test,
        "runs": table,
        "linear_same_budget": linear,
        "logistic_regression_converged": logistic,
        "checks": checks,
        "total_minutes_this_invocation": (time.perf_counter() - t_begin) / 60,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch threads {args.threads}, load average {os.getloadavg()[0]:.1f} at "
        "the end (shared machine)",
    }
    out = Path(args.out)
    tmp = out / "numbers.json.tmp"
    tmp.write_text(json.dumps(numbers, indent=1))
    os.replace(tmp, out / "numbers.json")
    return numbers


def figure(args, results, numbers):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 8))
    ax = fig.subplots(2, 2).ravel()
    colours = {"delta": "C0", "frozen": "C1", "gaussian": "C3"}
    styles = dict(zip(args.depths, ("-", "--", ":", "-.")))
    curves = {}
    for key, r in sorted(results.items()):
        kind, depth = key.split("_")[0], int(key.split("_")[1][5:])
        if not key.endswith("_seed0") or not len(r.loss):
            continue
        k = max(1, min(10, len(r.loss) // 5))
        smooth = np.convolve(r.loss, np.ones(k) / k, mode="valid")
        ax[0].plot(
            np.arange(k, len(r.loss) + 1),
            smooth,
            styles.get(depth, "-"),
            color=colours[kind],
            lw=1,
            label=f"{kind}, depth {depth}",
        )
        curves[f"loss_{key}"] = r.loss
        if kind != "frozen" and depth:
            ax[2].semilogy(
                np.arange(1, depth + 1),
                np.maximum(r.weight_movement, 1e-12),
                styles.get(depth, "-"),
                color=colours[kind],
                lw=0.8,
                label=f"{kind}, depth {depth}",
            )
            curves[f"weight_movement_{key}"] = r.weight_movement
        if depth == max(args.depths) and kind != "frozen" and len(r.init_grad_norms):
            ax[3].semilogy(
                np.arange(1, depth + 1), r.init_grad_norms, color=colours[kind], lw=0.8, label=kind
            )
            curves[f"init_grad_norms_{key}"] = r.init_grad_norms
    ax[0].set(xlabel="step", ylabel="training loss (running mean)", title="training loss, seed 0")
    ax[0].axhline(np.log(10), color="grey", lw=0.6, ls=":")
    runs = numbers["runs"]
    x = np.arange(len(args.depths))
    for j, kind in enumerate(KINDS):
        m = [runs.get(f"{kind}_depth{d}", {}).get("test_acc", [np.nan]) for d in args.depths]
        for i, accs in enumerate(m):
            ax[1].plot(
                np.full(len(accs), i + 0.2 * (j - 1)),
                accs,
                "o",
                ms=4,
                color=colours[kind],
                label=kind if i == 0 else None,
            )
    if numbers["linear_same_budget"]:
        ax[1].axhline(
            np.mean([v["test_acc"] for v in numbers["linear_same_budget"]]),
            color="k",
            lw=0.8,
            ls="--",
            label="linear on pixels, same budget",
        )
    if numbers["logistic_regression_converged"]:
        ax[1].axhline(
            numbers["logistic_regression_converged"]["test_acc"],
            color="k",
            lw=0.8,
            ls=":",
            label="logistic regression, converged",
        )
    ax[1].axhline(0.1, color="grey", lw=0.6)
    ax[1].set(
        xticks=x,
        xticklabels=[str(d) for d in args.depths],
        xlabel="depth",
        ylabel="test accuracy (each point a seed)",
        ylim=(0, 1),
        title=f"{args.steps} SGD steps, batch {args.batch_size}",
    )
    ax[2].set(
        xlabel="deep layer l",
        ylabel="||W_l - W_l(0)|| / ||W_l(0)||",
        title="how far each deep layer moved",
    )
    ax[3].set(
        xlabel="deep layer l",
        ylabel="||dL/dW_l|| at initialisation",
        title=f"gradient per layer at init, depth {max(args.depths)}",
    )
    for a in ax:
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7)
    fig.suptitle(
        f"vanilla tanh CNN on {args.dataset}, width {args.channels}, q* = 1/depth, "
        "SGD with one learning rate, lr = c/depth"
    )
    fig.tight_layout()
    out = Path(args.out)
    np.savez(out / "ten_thousand_layers_curves.npz", **curves)
    fig.savefig(out / "ten_thousand_layers.png", dpi=100)


def _parse_until(text):
    """``HH:MM`` (UTC, today) or seconds from now -> epoch seconds."""
    if text is None:
        return float("inf")
    if ":" in text:
        import datetime as _dt

        now = _dt.datetime.now(_dt.timezone.utc)
        hh, mm = (int(v) for v in text.split(":"))
        t = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
        return t.timestamp()
    return time.time() + float(text)


def main(argv=None):
    args = parse(argv)
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(args), indent=1))
    t_begin = time.perf_counter()
    results, linear, logistic = {}, [], None
    deepest = max(args.depths)
    until = _parse_until(args.deep_until)
    args.steps = args.max_deep_steps
    for seed in range(args.deep_seeds):
        results.update(run_deep_interleaved(args, deepest, seed, until))
        numbers = summarise(args, results, linear, logistic, t_begin)
        figure(args, results, numbers)
    args.steps = min(r.steps_done for r in results.values())
    print(f"deep runs: {args.steps} steps; every other run gets the same budget", flush=True)
    lin_file = out / "linear.json"
    saved = json.loads(lin_file.read_text()) if lin_file.is_file() else {}
    if saved.get("steps") == args.steps:
        linear, logistic = saved["linear"], saved["logistic"]
    else:
        linear = [run_linear(args, s) for s in range(args.seeds)]
        logistic = None if args.quick else run_logistic(args)
        lin_file.write_text(
            json.dumps({"steps": args.steps, "linear": linear, "logistic": logistic})
        )
    print(
        f"linear classifier, same budget: {[round(v['test_acc'], 4) for v in linear]}; "
        f"logistic regression converged: {logistic}",
        flush=True,
    )
    numbers = summarise(args, results, linear, logistic, t_begin)
    for depth in sorted(d for d in args.depths if d != deepest):
        for seed in range(args.seeds):
            for kind in KINDS:
                key, res = run_cnn(args, kind, depth, seed, args.steps)
                results[key] = res
                numbers = summarise(args, results, linear, logistic, t_begin)
                figure(args, results, numbers)
    print(json.dumps(numbers["checks"], indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
