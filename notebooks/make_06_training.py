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
data (scikit-learn's digits embedded; Fashion-MNIST from Debian's package; MNIST and CIFAR-10
from files) and a training API (`train`).
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
md("""## 3. The plain protocol, with the frozen-block control

The paper's protocol: SGD with momentum 0.9 and ONE learning rate for every parameter,
`lr = 0.3 / depth` (`cnnmft.pytorch.config.lr_for_depth`, measured on a grid: docs/training.md),
readout std `sqrt(1/C)`, critical point with `q* = 1/depth`. Three runs per depth with the same
budget and batches: Delta-orthogonal trained; the same network with the deep block frozen at its
initial weights (`freeze_block=True`: only the stem and the readout learn); Gaussian kernels at
the same point. If the trained network does not beat the frozen one, the deep block is not what
learns.""")
code("""import warnings
base = dict(dataset="digits", channels=8, steps=150, batch_size=32, eval_every=50,
            max_test=200, eval_samples=200, num_threads=1, plots=False)
runs, labels = [], []
for depth in (10, 100):
    for kind in ("delta", "frozen", "gaussian"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # at-chance runs: see the status
            r = train(TrainConfig(depth=depth, init="gaussian" if kind == "gaussian"
                                  else "delta_orthogonal", freeze_block=kind == "frozen",
                                  **base), progress=False)
        runs.append(r); labels.append(f"{kind}, depth {depth}")
        print(f"{kind:9s} depth {depth:4d}: lr {r.settings['lr']:.3g}, test accuracy "
              f"{r.test_accuracy:.3f}, status {cnnmft.Status(r.status).name}, median weight "
              f"movement {np.median(r.weight_movement):.2e}")
plot_training(runs, labels=labels);""")
md("""On the 8x8 digits (4x4 maps in the deep block, 8 channels, 150 steps, 200 test images) the
plain protocol learns slowly: read the statuses above. A run that ends at chance says so
(`AT_CHANCE`) instead of "finished". The measurement with enough data and three seeds per depth
is the Fashion-MNIST check in section 5.""")
md("""## 4. From the command line

```
cnnmft train --dataset fashion-mnist --depth 100 --channels 8 --steps 150 --batch-size 32 \\
    --out runs/d100 --checkpoint-every 50          # test accuracy 0.275, 521 s at load 20
cnnmft train ... --out runs/d100 --resume           # continues the same run, bit for bit
cnnmft train --depth 10 --freeze-block              # the control
torchrun --nproc_per_node 2 -m cnnmft train --depth 100 --steps 50   # DDP
```

Checkpoints carry a sha256 checksum and load with `torch.load(weights_only=True)`; a damaged
one is refused with its file named. A run that ends at chance says so (`Status.AT_CHANCE`).""")
md("""## 5. The committed 10,000-layer check

`benchmarks/ten_thousand_layers.py` runs the same comparison on Fashion-MNIST (7x7 maps in the
deep block) at depths 10, 100 and 10,000; its numbers are committed next to it. docs/training.md
says what they show and what they do not.""")
code("""import json, pathlib
for name in ("ten_thousand",):
    f = pathlib.Path("..") / "benchmarks" / "results" / name / "numbers.json"
    if not f.is_file():
        continue
    n = json.loads(f.read_text())
    print(f"{name}: {n['steps']} steps, width {n['channels']}, batch {n['batch_size']}")
    for k, v in n["runs"].items():
        print(f"  {k:22s} test accuracy {', '.join(f'{a:.3f}' for a in v['test_acc'])}")
    print("  checks:", n["checks"])""")

nb = nbf.v4.new_notebook()
nb["cells"] = cells
nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "06_training.ipynb")
nbf.write(nb, path)
print("wrote", path)
