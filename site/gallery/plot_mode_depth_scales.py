r"""One depth scale per spatial Fourier mode.

A CNN's covariance map averages each pixel pair along the diagonal with the variance profile
$v$, so Fourier mode $f$ decays with its own depth scale
$\xi_{c,f} = -1/\log(\chi_{c^*}|\lambda_f|)$, $\lambda_f$ the DFT of $v$ (docs/theory.md,
section 2.4). The zero mode keeps the fully-connected $\xi_c$ for every profile; the delta
profile (Delta-orthogonal kernels) gives it to every mode.
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import cnnmft
from cnnmft import plotting

out = Path(os.environ.get("CNNMFT_GALLERY_OUT", "."))

profiles = {"uniform": {}, "binomial": {}, "tunable": {"t": 0.1}, "delta": {}}
fig, ax = plt.subplots(figsize=(6.5, 4.2))
numbers = {}
for kind, kw in profiles.items():
    v = cnnmft.variance_profile(kind, 3, **kw)
    res = cnnmft.mode_depth_scales("tanh", 1.5, 0.05, v, (8, 8))
    label = kind if not kw else f"{kind} t={kw['t']}"
    res.plot(ax=ax, label=label)
    numbers[label.replace(" ", "_")] = np.sort(res.xi_c.ravel())[::-1]
ax.set_title(r"tanh, $\sigma_w^2 = 1.5$, $\sigma_b^2 = 0.05$, 3x3 kernels on 8x8")
plotting.save_figure(fig, out / "mode_depth_scales.png", numbers)
