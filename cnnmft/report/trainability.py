"""Report section: theory against training (trainable depth and the variance-profile study).

Trains small tanh CNNs as ensembles on a local Dask cluster: the trained cells over
``(sigma_w2, depth)`` with ``6 xi_c`` drawn over them, the agreement of ``6 xi_c`` next to the
best depth-only and sigma_w2-only rules and the fitted ``k`` of ``k xi_c``; then the
variance-profile study at criticality. Quick mode uses the embedded digits data (8x8 images, 4x4
maps); the full report uses Fashion-MNIST (7x7 maps) when its files are installed. Cells are
stored under ``<report>/cells/`` so a rebuilt report reuses them. Needs the ``torch`` and
``distributed`` extras (the section is skipped without them).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from cnnmft import sweeps

TITLE = "Theory against training: trainable depth and variance profiles"


def _settings(quick):
    if quick:
        tiny = dict(dataset="digits", stem_strides=[1, 2], steps=30, channels=4, max_test=300)
        phase = dict(sigma_w2=(0.8, 1.76, 4.0), depth=(2, 16), lrs=(0.02, 0.05), seeds=(0,), **tiny)
        modes = dict(t=(0.0, 0.5), depth=8, seeds=(0, 1), **tiny, eval_train=200)
    else:
        data = (
            {}
            if Path("/usr/share/datasets/fashion-mnist").is_dir()
            else dict(dataset="digits", stem_strides=[1, 2])
        )
        phase = dict(depth=(4, 8, 16, 32, 64, 128), **data)
        modes = dict(**data)
    return phase, modes


def build(ctx) -> str:
    """Run both studies (small in ``ctx.quick``), save figures and numbers, return HTML."""
    import distributed  # noqa: F401 - skip the section cleanly when the extra is missing

    from cnnmft.pytorch import experiments, profiles

    phase_kw, modes_kw = _settings(ctx.quick)
    store = ctx.outdir / "cells"
    with sweeps.dask_client(n_workers=1, show_dashboard=False) as client:
        res = experiments.trainability_sweep(
            store=store / "phase", progress=False, scheduler=client, **phase_kw
        )
        study = profiles.modewise_study(
            store=store / "modes", progress=False, scheduler=client, **modes_kw
        )
    parts = [
        "<p>Vanilla tanh CNNs with Gaussian kernels (uniform v) at sigma_b2 = "
        f"{res.sigma_b2:g}, every (sigma_w2, learning rate, seed) of one depth trained as one "
        f"ensemble. The red curve is the mean-field prediction {res.factor:g} xi_c(sigma_w2) "
        "for the deepest trainable network (Schoenholz et al. 2017; Xiao et al. 2018, Fig. 2); "
        "the dashed one the fitted k xi_c.</p>",
        ctx.figure(
            "trainability_heatmap",
            experiments.plot_trainability(res),
            "Fraction of seeds trained over (sigma_w2, depth) with 6 xi_c.",
        ),
        ctx.numbers("trainability_sweep", res.to_dict()),
        f"<p><b>Agreement:</b> {html.escape(res.summary())}. Training budget: "
        f"<code>{html.escape(json.dumps(json.loads(res.config)))}</code>. A fixed budget makes "
        "'trained' budget-dependent: deep cells near criticality that need more steps count "
        "as not trained, which favours a depth-only rule.</p>",
    ]
    parts += [
        f"<p>Depth {study.depth} at the critical point (sigma_w2 = {study.sigma_w2:.5g}, "
        f"sigma_b2 = {study.sigma_b2:.3g}); kernels with the tunable variance profile "
        "v(t) from delta (t = 0) to uniform-like (t = 0.5): exactly orthogonal (solid) and "
        "Gaussian with the same v (dashed). Right: predicted depth scale of the slowest "
        f"non-zero Fourier mode on the {'x'.join(map(str, study.spatial_shape))} grid of the "
        "deep block and the fraction of modes whose depth scale exceeds the depth.</p>",
        ctx.figure(
            "modewise_study",
            profiles.plot_modewise(study),
            "Training loss, accuracy and predicted mode depth scales against t.",
        ),
        ctx.numbers("modewise_study", study.to_dict()),
        "<p>Slope of test accuracy against t: "
        + ", ".join(
            f"{k} {b:+.3f} &plusmn; {s:.3f}"
            for k, b, s in zip(study.kinds, study.slope_test_accuracy, study.slope_se)
        )
        + ".</p>",
    ]
    return "\n".join(parts)
