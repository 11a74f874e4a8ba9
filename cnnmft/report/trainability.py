"""Report section: theory against training (trainable depth and the variance-profile study).

Trains small tanh CNNs on the digits data on a local Dask cluster: an accuracy heatmap over
``(sigma_w2, depth)`` with ``6 xi_c`` drawn over it and the agreement fraction, then the
mode-wise study at criticality. Cells are stored under ``<report>/cells/`` so a rebuilt report
reuses them. Needs the ``torch`` and ``distributed`` extras (the section is skipped without them).
"""

from __future__ import annotations

import html

TITLE = "Theory against training: trainable depth and variance profiles"


def _settings(quick):
    if quick:
        tiny = dict(steps=40, channels=8, optimizer="adam", lr=0.01, max_train=400,
                    max_test=200, eval_samples=400)
        phase = dict(sigma_w2=(0.5, 1.76, 3.5), depth=(2, 16), **tiny)
        modes = dict(t=(0.0, 0.5), depth=8, seeds=(0,), **tiny)
    else:
        phase = dict(sigma_w2=(0.5, 0.95, 1.4, 1.85, 2.3, 2.75, 3.2, 3.8),
                     depth=(2, 4, 8, 16, 32, 48))
        modes = dict()
    return phase, modes


def build(ctx) -> str:
    """Run both studies (small in ``ctx.quick``), save figures and numbers, return HTML."""
    import distributed  # noqa: F401 - skip the section cleanly when the extra is missing

    from cnnmft.pytorch import sweeps

    phase_kw, modes_kw = _settings(ctx.quick)
    store = ctx.outdir / "cells"
    with sweeps.dask_client(n_workers=2) as client:
        res = sweeps.trainability_sweep(store=store / "phase", seed=ctx.rng,
                                        progress=ctx.progress,
                                        scheduler=client, **phase_kw)
        study = sweeps.modewise_study(store=store / "modes", progress=ctx.progress,
                                      scheduler=client,
                                      **modes_kw)
    parts = [
        "<p>Vanilla tanh CNNs with Gaussian kernels (uniform v) at sigma_b2 = "
        f"{res.sigma_b2:g}, one short training run per cell. The white curve is the mean-field "
        f"prediction {res.factor:g} xi_c(sigma_w2) for the deepest trainable network "
        "(Schoenholz et al. 2017; Xiao et al. 2018, Fig. 2). Dots: cells that trained.</p>",
        ctx.figure("trainability_heatmap", sweeps.plot_trainability(res),
                   "Final training accuracy over (sigma_w2, depth) with 6 xi_c."),
        ctx.numbers("trainability_sweep", res.to_dict()),
        f"<p><b>Agreement:</b> {html.escape(res.summary())}. Training budget: "
        f"<code>{html.escape(res.config)}</code>. A fixed budget makes 'trained' "
        "budget-dependent: deep cells near criticality that need more steps count as not "
        "trained.</p>",
    ]
    parts += [
        f"<p>Depth {study.depth} at the critical point (sigma_w2 = {study.sigma_w2:.5g}, "
        f"sigma_b2 = {study.sigma_b2:.3g}); kernels with the tunable variance profile "
        "v(t) from delta (t = 0) to binomial (t = 0.5): exactly orthogonal (solid) and Gaussian "
        "with the same v (dashed). Right: predicted depth scale of the slowest non-zero "
        f"Fourier mode on the {'x'.join(map(str, study.spatial_shape))} grid of the deep block "
        "and the fraction of modes whose depth scale exceeds the depth.</p>",
        ctx.figure("modewise_study", sweeps.plot_modewise(study),
                   "Training loss, accuracy and predicted mode depth scales against t."),
        ctx.numbers("modewise_study", study.to_dict()),
    ]
    return "\n".join(parts)
