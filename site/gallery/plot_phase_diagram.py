r"""Phase diagram and the order-chaos line.

The correlation depth scale $\xi_c$ of a tanh network over the plane of weight and bias
variances, with the critical line $\chi_1 = 1$ where it diverges (docs/theory.md, section 1).
The second panel draws the critical lines of tanh and erf parametrised by the fixed point $q^*$.
The same $q^*$, $c^*$ and critical line hold for a CNN with any variance profile (section 2.6).
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import cnnmft
from cnnmft import plotting

out = Path(os.environ.get("CNNMFT_GALLERY_OUT", "."))

pd = cnnmft.phase_diagram("tanh", np.linspace(0.5, 4.0, 70), np.linspace(0.0, 0.5, 36))
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
pd.plot(ax=ax1)  # xi_c on a log colour scale, critical line dashed

q = np.geomspace(1e-4, 3.0, 200)
for act in ("tanh", "erf"):
    cnnmft.critical_point(act, q).plot(ax=ax2, label=act)
ax2.set_xlim(0.5, 3.0)
ax2.set_ylim(0.0, 0.25)
fig.tight_layout()
line = {"sigma_b2": pd.sigma_b2, "critical_sigma_w2": pd.critical_sigma_w2}
plotting.save_figure(fig, out / "phase_diagram.png", line)
pd.save(out / "phase_diagram.npz")  # the whole grid, reloadable with PhaseDiagram.load
