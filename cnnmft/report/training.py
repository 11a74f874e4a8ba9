"""Report section: training vanilla tanh CNNs at depth (Delta-orthogonal against Gaussian).

Trains :class:`cnnmft.pytorch.VanillaCNN` on the digits at increasing depth with
Delta-orthogonal kernels at the critical point (q* = 1/depth), and a Gaussian-kernel network at
the largest depth, all with the same budget; draws the training curves by depth and init and the
kernel-gradient norm of every layer at initialisation. The full 10,000-layer run is
``benchmarks/ten_thousand_layers.py`` (its committed output is described in docs/training.md).
Needs the ``torch`` extra (the section is skipped without it).
"""

from __future__ import annotations

import html

import numpy as np

TITLE = "Training at depth: vanilla tanh CNNs, Delta-orthogonal against Gaussian"


def _settings(quick):
    if quick:
        return dict(depths=(10, 100), steps=30, channels=8, eval_every=15, max_test=200,
                    eval_samples=200)
    return dict(depths=(10, 100, 1000), steps=150, channels=16, eval_every=25, max_test=None,
                eval_samples=360)


def build(ctx) -> str:
    """Train the depth series (small with ``ctx.quick``), save figures and numbers, return HTML."""
    import torch  # noqa: F401 - skip the section cleanly without the extra

    from cnnmft.pytorch.train import TrainConfig, plot_training, train

    s = _settings(ctx.quick)
    base = dict(dataset="digits", channels=s["channels"], stem_strides=(1, 2, 2), batch_size=32,
                optimizer="adam", lr=1e-3, deep_lr_scale="1/depth", readout_scale="1/sqrt(q*)",
                steps=s["steps"], eval_every=s["eval_every"], eval_samples=s["eval_samples"],
                max_test=s["max_test"], seed=int(ctx.rng), num_threads=1, plots=False)
    runs, labels = [], []
    for depth in s["depths"]:
        runs.append(train(TrainConfig(depth=depth, init="delta_orthogonal", **base),
                          progress=ctx.progress))
        labels.append(f"Delta-orthogonal, depth {depth}")
    deepest = max(s["depths"])
    runs.append(train(TrainConfig(depth=deepest, init="gaussian", **base),
                      progress=ctx.progress))
    labels.append(f"Gaussian, depth {deepest}")

    fig = plot_training(runs, labels=labels,
                        title=f"digits, {s['steps']} Adam steps, critical point q* = 1/depth")
    rows = []
    table = {"label": [], "depth": [], "sigma_w2": [], "sigma_b2": [], "test_accuracy": [],
             "train_accuracy": [], "final_loss": [], "grad_norm_first_over_last": [],
             "seconds_per_step": []}
    for r, lab in zip(runs, labels):
        g = r.init_grad_norms
        ratio = float(g[0] / g[-1]) if len(g) else float("nan")
        cfg = r.settings
        for k, v in (("label", lab), ("depth", cfg["depth"]), ("sigma_w2", r.sigma_w2),
                     ("sigma_b2", r.sigma_b2), ("test_accuracy", r.test_accuracy),
                     ("train_accuracy", r.train_accuracy), ("final_loss", r.final_loss),
                     ("grad_norm_first_over_last", ratio), ("seconds_per_step", r.step_time)):
            table[k].append(v)
        rows.append(f"<tr><td>{html.escape(lab)}</td><td>{r.sigma_w2:.6g}</td>"
                    f"<td>{r.sigma_b2:.3g}</td><td>{r.test_accuracy:.3f}</td>"
                    f"<td>{ratio:.3g}</td><td>{r.step_time:.3g}</td></tr>")
    curves = {}
    for r, lab in zip(runs, labels):
        key = lab.replace(", ", "_").replace(" ", "_").replace("-", "_").lower()
        curves[f"{key}_loss"] = r.loss
        curves[f"{key}_init_grad_norms"] = r.init_grad_norms
        curves[f"{key}_eval_step"] = r.eval_step
        curves[f"{key}_test_acc"] = r.test_acc
    parts = [
        "<p>Vanilla tanh CNNs (no residual connections, no normalisation) on the 8x8 digits: "
        "stem to 2x2 feature maps, a deep block of 3x3 circular convolutions, global average "
        "pooling, linear readout. Kernels Delta-orthogonal at the critical point with "
        "q* = 1/depth, or Gaussian (uniform v) at the same point; the same budget for all. "
        "The deep block's learning rate is divided by the depth, and the pooled features are "
        "multiplied by 1/sqrt(q*) (docs/training.md explains both). Right panel: with "
        "Delta-orthogonal kernels the gradient reaching each layer is the same at every depth "
        "(dynamical isometry); with Gaussian kernels it decays towards the input.</p>",
        ctx.figure("training_by_depth", fig,
                   "Training loss, accuracy (solid test, dashed train) and per-layer gradient "
                   "norm at initialisation, by depth and kernel initialisation."),
        ctx.numbers("training_by_depth", {k: np.asarray(v) for k, v in table.items()
                                          if k != "label"}),
        ctx.numbers("training_curves", curves),
        "<table><tr><th>run</th><th>sigma_w2</th><th>sigma_b2</th><th>test accuracy</th>"
        "<th>grad norm layer 1 / layer L</th><th>s/step</th></tr>" + "".join(rows) + "</table>",
    ]
    return "\n".join(parts)
