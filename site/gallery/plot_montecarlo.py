r"""Theory against a finite numpy CNN.

The pre-activation variance $q^l$ of a Monte Carlo CNN (circular padding, 3x3 Gaussian kernels
with uniform $v$, 64 channels, 8 draws; error bars are two standard errors) against the
length map of the mean field (docs/theory.md, sections 1 and 2.2), for tanh in the ordered and
the chaotic phase. The theory line is the spatial mean of the diagonal of the covariance map
computed by `propagate_covariance` for the same input.
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import cnnmft
from cnnmft import montecarlo, plotting

out = Path(os.environ.get("CNNMFT_GALLERY_OUT", "."))

x = np.random.default_rng(1).normal(size=(8, 8, 3))  # one 8x8 input with 3 channels
v = cnnmft.variance_profile("uniform", 3)
depth = 10
fig, ax = plt.subplots(figsize=(6.5, 4))
numbers = {"layer": np.arange(1, depth + 1)}
for sw2, color in ((1.5, "C0"), (2.5, "C3")):
    sim = montecarlo.simulate(
        x[None], "tanh", sw2, 0.05, depth, width=64, n_draws=8, rng=0, progress=False
    )
    q_mc, se = sim.q[:, 0], sim.q_stderr[:, 0]  # layers 1..depth, the one input
    theory = cnnmft.propagate_covariance(
        x, "tanh", sw2, 0.05, v, depth, layers="all", progress=False
    )
    q = theory.q_mean[1:, 0]  # layer 0 is the input Gram matrix
    ax.plot(numbers["layer"], q, "-", color=color, label=rf"theory $\sigma_w^2$={sw2}")
    ax.errorbar(
        numbers["layer"],
        q_mc,
        yerr=2 * se,
        fmt="o",
        ms=4,
        color=color,
        label=rf"Monte Carlo $\sigma_w^2$={sw2}",
    )
    numbers[f"q_theory_{sw2}"] = np.array(q)
    numbers[f"q_mc_{sw2}"] = q_mc
    numbers[f"q_mc_stderr_{sw2}"] = se
ax.set_xlabel("layer l")
ax.set_ylabel(r"$q^l$")
ax.legend(fontsize=8)
plotting.save_figure(fig, out / "montecarlo.png", numbers)
