r"""Orthogonal kernels are exact isometries.

Sorted singular values of the circular convolution operator (computed exactly with the FFT,
docs/theory.md, section 3) for a Delta-orthogonal kernel, a random orthogonal kernel of
Algorithm 1, the tunable orthogonal family and a Gaussian kernel, all 3x3 with 32 channels on an
8x8 grid. The orthogonal kinds sit at 1 to rounding; the Gaussian one spreads out.
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import cnnmft
from cnnmft import plotting

out = Path(os.environ.get("CNNMFT_GALLERY_OUT", "."))

rng = np.random.default_rng(0)
shape = (32, 32, 3, 3)
kernels = {
    "delta orthogonal": cnnmft.delta_orthogonal(shape, 1.0, rng),
    "block orthogonal": cnnmft.block_orthogonal(shape, 1.0, rng),
    "tunable orthogonal t=0.25": cnnmft.tunable_orthogonal(shape, 1.0, 0.25, rng),
    "gaussian, uniform v": cnnmft.gaussian_kernel(shape, 1.0, "uniform", rng),
}
fig, ax = plt.subplots(figsize=(6.5, 4))
numbers = {}
for (label, kernel), lw in zip(kernels.items(), (5, 3, 2, 1.5)):
    s = np.sort(cnnmft.conv_singular_values(kernel, (8, 8)).ravel())
    ax.plot(np.linspace(0, 1, s.size), s, lw=lw, label=label)
    numbers[label.replace(" ", "_")] = s
ax.set_xlabel("quantile")
ax.set_ylabel("singular value of the convolution")
ax.legend()
plotting.save_figure(fig, out / "kernels.png", numbers)
