r"""Jacobian spectra: orthogonal against Gaussian kernels.

The free-probability density of the eigenvalues of $JJ^T$ for tanh at a critical point with
small $q^*$, as depth grows (docs/theory.md, sections 3 and 6). With orthogonal kernels the
spectrum stays concentrated near 1 (dynamical isometry); with Gaussian kernels its spread grows
at least linearly in depth.
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt

import cnnmft
from cnnmft import plotting

out = Path(os.environ.get("CNNMFT_GALLERY_OUT", "."))

sw2, sb2 = 1.05, 2.01e-5  # on the tanh critical line, q* = 0.0259
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
rows = {"weights": [], "depth": [], "variance": [], "lambda_max": []}
for weights, ax in zip(("orthogonal", "gaussian"), axes):
    spectra = [
        cnnmft.jacobian_spectrum("tanh", sw2, sb2, depth, weights, n_points=400)
        for depth in (4, 16, 64)
    ]
    plotting.sv_densities(spectra, ax=ax)
    ax.set_title(f"{weights} kernels")
    for s in spectra:
        rows["weights"].append(weights)
        rows["depth"].append(s.depth)
        rows["variance"].append(s.variance)
        rows["lambda_max"].append(s.lambda_max)
fig.tight_layout()
plotting.save_figure(fig, out / "spectrum.png", rows)
