"""Write notebooks/06_training.ipynb (run: python notebooks/make_06_training.py)."""

import os

import nbformat as nbf

cells = []


def md(s):
    """Append a markdown cell."""
    cells.append(nbf.v4.new_markdown_cell(s))


def code(s):
    """Append a code cell."""
    cells.append(nbf.v4.new_code_cell(s))


md("""# Training vanilla tanh CNNs at depth

Xiao et al. (2018) trained vanilla tanh CNNs - no residual connections, no batch norm - with
10,000 layers. What makes it possible is the initialisation alone: Delta-orthogonal kernels at
the order-chaos critical point give every layer the same gradient (dynamical isometry), while
Gaussian kernels at the same point do not. `cnnmft.pytorch` has the network (`VanillaCNN`), the
data (scikit-learn's digits offline; MNIST and CIFAR-10 from files) and a training API (`train`).
This notebook uses small widths and depths so it runs in seconds; the 10,000-layer run is
`benchmarks/ten_thousand_layers.py`.""")
code("""import numpy as np
import matplotlib.pyplot as plt
import torch
import cnnmft
from cnnmft.pytorch import VanillaCNN, TrainConfig, train, plot_training
torch.set_num_threads(1)""")
md("""## 1. The critical point with q* = 1/depth

The authors' demo picks the point of the critical line (`chi_1 = 1`) whose fixed point is
`q* = 1/depth`: the spread of the Jacobian's singular values then shrinks with depth.""")
code("""for depth in (10, 100, 1000, 10000):
    cp = cnnmft.critical_point("tanh", 1 / depth)
    sw, sb = float(cp.sigma_w2), float(cp.sigma_b2)
    print(f"depth {depth:6d}: sigma_w2 = {sw:.7f}, sigma_b2 = {sb:.3e}")""")
md("""## 2. Gradients at initialisation: flat against vanishing

One backward pass through a 500-layer network on a batch of digits; the norm of the gradient of
each deep layer's kernel.""")
code("""from cnnmft.pytorch.data import load_dataset
data = load_dataset("digits")
x = torch.as_tensor(data.x_train[:64]); y = torch.as_tensor(data.y_train[:64])
norms = {}
for init in ("delta_orthogonal", "gaussian"):
    net = VanillaCNN(500, 8, init=init, stem_strides=(1, 2, 2),
                     generator=torch.Generator().manual_seed(0))
    torch.nn.functional.cross_entropy(net(x), y).backward()
    norms[init] = net.grad_norms().numpy()
    print(init, "layer 1 / layer 500:", norms[init][0] / norms[init][-1])
for k, v in norms.items():
    plt.semilogy(np.arange(1, 501), v, label=k)
plt.xlabel("deep layer"); plt.ylabel("||dL/dW_l||"); plt.legend();""")
md("""## 3. Training curves by depth and initialisation

The same budget for every run: 40 Adam steps. The deep block's learning rate is divided by the
depth (`deep_lr_scale="1/depth"`: with isometric Jacobians a step moves the output by about
depth x lr), and the pooled features are multiplied by `1/sqrt(q*)` (`readout_scale`), because
deep in the block the activations shrink to the fixed point, std `sqrt(q*)`.""")
code("""base = dict(channels=8, stem_strides=(1, 2, 2), steps=40, batch_size=32, optimizer="adam",
            lr=1e-3, deep_lr_scale="1/depth", readout_scale="1/sqrt(q*)", eval_every=20,
            max_test=200, eval_samples=200, num_threads=1, plots=False)
runs = [train(TrainConfig(depth=10, **base), progress=False),
        train(TrainConfig(depth=200, **base), progress=False),
        train(TrainConfig(depth=200, init="gaussian", **base), progress=False)]
for r in runs:
    print(r.settings["init"], r.settings["depth"], "test accuracy", round(r.test_accuracy, 3))
plot_training(runs, labels=["Delta-orthogonal, depth 10", "Delta-orthogonal, depth 200",
                            "Gaussian, depth 200"]);""")
md("""## 4. From the command line

```
cnnmft train --depth 1000 --channels 16 --stem-strides 1 2 2 --optimizer adam --lr 1e-3 \\
    --deep-lr-scale 1/depth --steps 200 --out runs/d1000          # metrics CSV/JSON, plots
cnnmft train --depth 1000 ... --out runs/d1000 --resume            # continues the same run
torchrun --nproc_per_node 2 -m cnnmft.pytorch.distributed --depth 1000 --steps 200   # DDP
```

The result object holds the loss history, accuracies and gradient norms, and saves/loads as
JSON or NPZ.""")
code("""r = runs[1]
print(r.message, "| final loss", round(r.final_loss, 4), "| steps", r.steps_done)
print("logged layers", r.grad_norm_layers, "grad norms at the last step", r.grad_norms[-1])""")

nb = nbf.v4.new_notebook()
nb["cells"] = cells
nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "06_training.ipynb")
nbf.write(nb, path)
print("wrote", path)
