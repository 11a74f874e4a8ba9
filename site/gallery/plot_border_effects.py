r"""Zero padding against the circular theory.

The mean field of section 2 of docs/theory.md is exact for circular padding. With zero padding
the border pixels see fewer inputs, so a finite map never reaches the circular fixed point
everywhere; `cnnmft.network.border_effects` computes the exact per-pixel state of a
zero-padded tanh CNN (3-tap profile $v = (1/4, 1/2, 1/4)$, 40 layers) for several map sizes and
the slopes of its linearised maps. The border pixels stay about a third off the circular
fixed point $q^*$ whatever the size, but the centre pixel approaches it exponentially fast in
the map size, and the gradient gain per layer approaches the circular value $\chi_1$ from
below.
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from cnnmft import network, plotting

out = Path(os.environ.get("CNNMFT_GALLERY_OUT", "."))

sizes = [4, 6, 8, 12, 16, 24, 32]
b = network.border_effects("tanh", 1.5, 0.05, [0.25, 0.5, 0.25], sizes, depth=40, progress=False)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
ax1.plot(sizes, b.gain_grad, "o-", label="zero padding")
ax1.axhline(float(b.chi_1), color="k", ls=":", label=r"circular: $\chi_1$")
ax1.set_xlabel("map size n")
ax1.set_ylabel("gradient gain per layer")
ax1.legend()
ax2.semilogy(sizes, np.abs(np.asarray(b.q_dev_max, dtype=float)), "s-", label="largest (border)")
ax2.semilogy(
    sizes,
    np.maximum(np.abs(np.asarray(b.q_dev_center, dtype=float)), 1e-16),
    "o-",
    label="centre pixel",
)
ax2.set_xlabel("map size n")
ax2.set_ylabel(r"$|q_\alpha / q^* - 1|$")
ax2.legend()
fig.tight_layout()
plotting.save_figure(
    fig,
    out / "border_effects.png",
    {
        "size": sizes,
        "gain_grad": b.gain_grad,
        "q_dev_max": b.q_dev_max,
        "q_dev_center": b.q_dev_center,
    },
)
