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
`cnnmft.pytorch.experiments` checks this against real training. Every `(sigma_w2, learning rate)`
of one `(depth, seed)` trains as ONE ensemble (grouped convolutions, `cnnmft.pytorch.ensemble`),
the ensembles are spread over a Dask cluster (`cnnmft.sweeps`) and stored as they finish, so a
sweep can be stopped and resumed. This notebook runs a tiny version on the embedded digits (a
minute); the default sweep (Fashion-MNIST, depths 4..512) is `benchmarks/trainability_sweep.py`,
whose committed figure and numbers are read at the end.""")
code("""import json, pathlib
import numpy as np
import matplotlib.pyplot as plt
import cnnmft
from cnnmft.sweeps import CellStore, dask_client
from cnnmft.pytorch.experiments import TrainabilitySweep, plot_trainability, trainability_sweep
from cnnmft.pytorch.profiles import modewise_study, plot_modewise""")
md("""## 1. The prediction: 6 xi_c

At `sigma_b2 = 0.05` the tanh network is critical at `sigma_w2 = 1.761`, where `xi_c` diverges.
On the ordered side (small `sigma_w2`) all inputs collapse onto one correlation; on the chaotic
side they decorrelate. Either way information about the input survives only about `xi_c`
layers.""")
code("""sw = np.linspace(0.5, 4.5, 200)
bound = cnnmft.trainable_depth("tanh", sw, 0.05, factor=6)
print("critical sigma_w2:", float(cnnmft.critical_sigma_w2("tanh", 0.05).sigma_w2))
plt.semilogy(sw, bound); plt.xlabel("sigma_w2"); plt.ylabel("6 xi_c"); plt.ylim(1, 1e4);""")
md("""## 2. A tiny sweep on a local Dask cluster

One worker process; each task trains every `(sigma_w2, lr)` of one depth as an ensemble of
4-channel CNNs on the digits for 30 SGD steps (far too few for deep networks). "Trained" means
test accuracy above chance by 5 binomial standard errors. The store is a folder of checksummed
JSON files, one per finished task.""")
code("""tiny = dict(dataset="digits", stem_strides=[1, 2], steps=30, channels=4, max_test=300)
grid = dict(sigma_w2=[0.8, 1.76, 4.0], depth=[2, 16], lrs=[0.02, 0.05], seeds=[0])
with dask_client(n_workers=1) as client:
    sweep = trainability_sweep(**grid, store="cells-phase", scheduler=client, progress=False,
                               **tiny)
    study = modewise_study([0.0, 0.5], depth=8, seeds=(0, 1), store="cells-modes",
                           scheduler=client, progress=False, eval_train=200, **tiny)
# built again from the store alone: nothing is trained
again = trainability_sweep(**grid, store="cells-phase", compute=False, **tiny)
print(sweep.summary())
print("stored tasks:", len(CellStore("cells-phase")), "| same result from the store:",
      bool((again.trained == sweep.trained).all()))""")
code("""plot_trainability(sweep);""")
md("""## 3. The default sweep (committed results)

Fashion-MNIST on 7x7 maps, 6 sigma_w2 across both phases, depths 4..512, 2 learning rates,
2 seeds, 150 SGD steps of batch 16, 8 channels. The agreement of `6 xi_c` is shown next to the
best depth-only rule and the best sigma_w2-only rule on the same cells, with the fitted `k` of
`k xi_c` (docs/trainability.md discusses what the numbers say).""")
code("""res_dir = pathlib.Path(cnnmft.__file__).resolve().parents[1] / "benchmarks" / "results"
if (res_dir / "trainability_sweep.npz").exists():
    default = TrainabilitySweep.load(res_dir / "trainability_sweep.npz")
    print(default.summary())
    summary = json.loads((res_dir / "trainability_sweep_summary.json").read_text())
    print("fraction trained by depth:", summary["fraction_trained_by_depth"])
    plot_trainability(default)
else:
    print("run benchmarks/trainability_sweep.py to produce the default sweep")""")
md("""## 4. Variance profiles at criticality

Kernels whose variance profile runs from delta (`t = 0`) to uniform-like (`t = 0.5`): the zero
Fourier mode is marginal at criticality for every profile, but non-zero modes decay like
`|lambda_f|^L`. Right panel: the predicted depth scale of the slowest non-zero mode on the 4x4
grid of the deep block (digits).""")
code("""plot_modewise(study)
for ik, kind in enumerate(study.kinds):
    for it, t in enumerate(study.t):
        print(f"{kind:10s} t={t:.2f}: test accuracy {np.mean(study.test_accuracy[ik, it]):.2f}, "
              f"slowest-mode xi {study.xi_slowest[it]:.3g}")""")

nb = nbf.v4.new_notebook()
nb["cells"] = cells
nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
here = os.path.dirname(os.path.abspath(__file__))
nbf.write(nb, os.path.join(here, "07_trainability.ipynb"))
print("written")
