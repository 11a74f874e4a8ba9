"""Write notebooks/07_trainability.ipynb (run: python notebooks/make_07_trainability.py)."""

import os

import nbformat as nbf

cells = []


def md(s):
    """Append a markdown cell."""
    cells.append(nbf.v4.new_markdown_cell(s))


def code(s):
    """Append a code cell."""
    cells.append(nbf.v4.new_code_cell(s))


md("""# Theory against training: trainable depth and variance profiles

Mean-field theory says a vanilla CNN trains only when its depth is at most a few correlation depth
scales, `L <= 6 xi_c(sigma_w2, sigma_b2)` (Schoenholz et al. 2017; Xiao et al. 2018, Fig. 2).
`cnnmft.pytorch.sweeps` checks this against real training: one short run per `(depth, sigma_w2)`
cell, spread over a Dask cluster, each finished cell stored at once so a sweep can be stopped and
resumed. This notebook runs a tiny version (a few seconds per cell); the full 12 x 10 sweep is
`cnnmft trainability` or `benchmarks/trainability_sweep.py`.""")
code("""import numpy as np
import matplotlib.pyplot as plt
import cnnmft
from cnnmft.pytorch.sweeps import (dask_client, trainability_sweep, plot_trainability,
                                   modewise_study, plot_modewise, CellStore)""")
md("""## 1. The prediction: 6 xi_c

At `sigma_b2 = 0.05` the tanh network is critical at `sigma_w2 = 1.761`, where `xi_c` diverges.
On the ordered side (small `sigma_w2`) all inputs collapse onto one correlation; on the chaotic
side they decorrelate. Either way information about the input survives only about `xi_c`
layers.""")
code("""sw = np.linspace(0.5, 3.8, 200)
bound = cnnmft.trainable_depth("tanh", sw, 0.05, factor=6)
print("critical sigma_w2:", float(cnnmft.critical_sigma_w2("tanh", 0.05).sigma_w2))
plt.semilogy(sw, bound); plt.xlabel("sigma_w2"); plt.ylabel("6 xi_c"); plt.ylim(1, 1e4);""")
md("""## 2. A tiny sweep on a local Dask cluster

Two worker processes; each cell trains an 8-channel CNN on 400 digits for 40 Adam steps (far
too few to train deep networks: 'trained' here only means the accuracy left chance, >= 0.3). The
store is a folder of JSON files, one per finished cell.""")
code("""tiny = dict(steps=40, channels=8, optimizer="adam", lr=0.01, max_train=400, max_test=200,
            eval_samples=400)
with dask_client(n_workers=2) as client:
    sweep = trainability_sweep([0.5, 1.76, 3.5], [2, 12], sigma_b2=0.05, store="cells-phase",
                               scheduler=client, progress=False, **tiny)
    # running it again finds every cell in the store and trains nothing
    again = trainability_sweep([0.5, 1.76, 3.5], [2, 12], sigma_b2=0.05, store="cells-phase",
                               scheduler=client, progress=False, **tiny)
    study = modewise_study([0.0, 0.5], depth=6, seeds=(0,), store="cells-modes",
                           scheduler=client, progress=False, **tiny)
print(sweep.summary())
print("stored cells:", len(CellStore("cells-phase")),
      "| rerun took", round(again.seconds, 2), "s")""")
code("""plot_trainability(sweep);""")
md("""The agreement number counts the cells where "trained" equals "depth <= 6 xi_c". With a real
budget (the default 150 steps and 16 channels) see `benchmarks/results/trainability_sweep.png`.

## 3. Variance profiles at criticality

Kernels whose variance profile runs from delta (`t = 0`, Delta-orthogonal) to binomial
(`t = 0.5`, block-orthogonal): the zero Fourier mode is marginal at criticality for every
profile, but non-zero modes decay like `|lambda_f|^L`. Right panel: the predicted depth scale of
the slowest non-zero mode on the 4x4 grid of the deep block.""")
code("""plot_modewise(study)
for ik, kind in enumerate(study.kinds):
    for it, t in enumerate(study.t):
        print(f"{kind:10s} t={t:.2f}: test accuracy {study.test_accuracy[ik, it]:.2f}, "
              f"slowest-mode xi {study.xi_slowest[it]:.3g}")""")

nb = nbf.v4.new_notebook()
nb["cells"] = cells
nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                "language": "python"}
here = os.path.dirname(os.path.abspath(__file__))
nbf.write(nb, os.path.join(here, "07_trainability.ipynb"))
print("written")
