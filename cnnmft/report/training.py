"""Report section: training vanilla tanh CNNs at depth, with the frozen-block control.

Trains :class:`cnnmft.pytorch.VanillaCNN` with the paper's plain protocol (SGD with momentum,
one learning rate ``0.3/depth`` for every parameter, critical point with q* = 1/depth) at two
depths, three ways with the same budget: Delta-orthogonal trained, the same network with its deep
block frozen at initialisation (what stem and readout learn alone), and Gaussian kernels at the
same point. Quick mode uses the embedded digits; the full report uses Fashion-MNIST when
Debian's ``dataset-fashion-mnist`` is installed. The 10,000-layer run is
``benchmarks/ten_thousand_layers.py`` (its committed numbers are in docs/training.md). Needs the
``torch`` extra (the section is skipped without it).
"""

from __future__ import annotations

import html
import warnings
from pathlib import Path

import numpy as np

TITLE = "Training at depth: Delta-orthogonal, frozen-block control and Gaussian"

KINDS = (
    ("delta", "Delta-orthogonal, trained"),
    ("frozen", "Delta-orthogonal, deep block frozen"),
    ("gaussian", "Gaussian, trained"),
)


def _settings(quick):
    from cnnmft.pytorch.data import FASHION_MNIST_DIRS

    if quick:
        return dict(
            dataset="digits", depths=(10, 100), steps=30, channels=8, max_test=200, eval_samples=200
        )
    fashion = Path(FASHION_MNIST_DIRS[0]).is_dir()
    return dict(
        dataset="fashion-mnist" if fashion else "digits",
        depths=(10, 100),
        steps=150,
        channels=8,
        max_test=1000,
        eval_samples=250,
    )


def build(ctx) -> str:
    """Train the runs (small with ``ctx.quick``), save figures and numbers, return HTML."""
    import torch  # noqa: F401 - skip the section cleanly without the extra

    from cnnmft.pytorch.train import TrainConfig, plot_training, train

    s = _settings(ctx.quick)
    base = dict(
        dataset=s["dataset"],
        channels=s["channels"],
        batch_size=32,
        optimizer="sgd",
        momentum=0.9,
        steps=s["steps"],
        eval_every=max(s["steps"] // 3, 1),
        eval_samples=s["eval_samples"],
        max_test=s["max_test"],
        seed=int(ctx.rng),
        num_threads=1,
        plots=False,
    )
    runs, labels = [], []
    for depth in s["depths"]:
        for kind, label in KINDS:
            cfg = TrainConfig(
                depth=depth,
                init="gaussian" if kind == "gaussian" else "delta_orthogonal",
                freeze_block=kind == "frozen",
                **base,
            )
            with warnings.catch_warnings():
                # a run at chance is reported in the table (its status), not as a warning
                warnings.simplefilter("ignore", RuntimeWarning)
                runs.append(train(cfg, progress=ctx.progress))
            labels.append(f"{label}, depth {depth}")

    fig = plot_training(
        runs,
        labels=labels,
        title=f"{s['dataset']}, {s['steps']} SGD steps, one learning rate "
        "0.3/depth, critical point q* = 1/depth",
    )
    rows = []
    table = {
        "depth": [],
        "sigma_w2": [],
        "sigma_b2": [],
        "test_accuracy": [],
        "final_loss": [],
        "median_weight_movement": [],
        "seconds_per_step": [],
    }
    for r, lab in zip(runs, labels):
        moved = float(np.median(r.weight_movement)) if len(r.weight_movement) else 0.0
        for k, v in (
            ("depth", r.settings["depth"]),
            ("sigma_w2", r.sigma_w2),
            ("sigma_b2", r.sigma_b2),
            ("test_accuracy", r.test_accuracy),
            ("final_loss", r.final_loss),
            ("median_weight_movement", moved),
            ("seconds_per_step", r.step_time),
        ):
            table[k].append(v)
        rows.append(
            f"<tr><td>{html.escape(lab)}</td><td>{r.settings['lr']:.3g}</td>"
            f"<td>{r.test_accuracy:.3f}</td><td>{r.final_loss:.3f}</td>"
            f"<td>{moved:.2e}</td><td>{html.escape(r.message.split(':')[0])}</td></tr>"
        )
    curves = {}
    for i, r in enumerate(runs):
        curves[f"run{i}_loss"] = r.loss
        curves[f"run{i}_test_acc"] = r.test_acc
        curves[f"run{i}_eval_step"] = r.eval_step
        curves[f"run{i}_weight_movement"] = r.weight_movement
    parts = [
        f"<p>Vanilla tanh CNNs (no residual connections, no normalisation) on {s['dataset']}: "
        "a strided stem, a deep block of 3x3 circular convolutions, global average pooling, a "
        "linear readout with std sqrt(1/C). The paper's plain protocol: SGD with momentum 0.9 "
        "and one learning rate, 0.3/depth, for every parameter; critical point with "
        "q* = 1/depth. Three runs per depth with the same budget and batches: Delta-orthogonal "
        "trained, the same network with the deep block frozen at initialisation (the control: "
        "what stem and readout learn through a fixed random block) and Gaussian kernels at the "
        "same point. Right panel: the gradient of each deep layer at initialisation, flat for "
        "Delta-orthogonal (dynamical isometry).</p>",
        ctx.figure(
            "training_by_depth",
            fig,
            "Training loss, accuracy (solid test, dashed train) and per-layer gradient "
            "norm at initialisation, by depth, initialisation and control.",
        ),
        ctx.numbers("training_by_depth", {k: np.asarray(v) for k, v in table.items()}),
        ctx.numbers("training_curves", curves),
        "<table><tr><th>run</th><th>lr</th><th>test accuracy</th><th>final loss</th>"
        "<th>median relative weight movement</th><th>status</th></tr>" + "".join(rows) + "</table>",
    ]
    return "\n".join(parts)
