"""Write notebooks/08_network.ipynb (then execute it: jupyter nbconvert --execute --inplace)."""

import os

import nbformat as nbf

cells = []


def md(s):
    """Append a markdown cell."""
    cells.append(nbf.v4.new_markdown_cell(s))


def code(s):
    """Append a code cell."""
    cells.append(nbf.v4.new_code_cell(s))


md("""# The CNNs people build: padding, strides, pooling, readout, gradients and the NTK

`cnnmft.network` runs the exact infinite-width recursions over a *layer list*: zero, valid,
TF-"SAME" or circular padding, strides, average and global average pooling, a linear readout.
It returns every layer's pixel-pair covariance (border pixels included), the NNGP kernel and
the neural tangent kernel of the readout, and the backward (gradient) statistics of every
layer. Here: a small network, Monte Carlo of finite numpy CNNs with a backward pass, the
border effects of zero padding, and the prediction for a `VanillaCNN` config.""")
code("""import numpy as np
import matplotlib.pyplot as plt
from cnnmft import variance_profile
from cnnmft.network import (Act, AvgPool, Conv, Dense, GlobalAvgPool, propagate_network,
                            simulate_network, border_effects, backward_mode_depth_scales,
                            predict)""")
md("""## 1. A heterogeneous network, exact and simulated

A zero-padded stride-2 stem, 2x2 average pooling, a binomial-profile convolution, global average
pooling and a readout, for two 8x8 inputs.""")
code("""net = [Conv(3, 2, "zero", 1.6, 0.1), Act("tanh"), AvgPool(2),
       Conv(3, 1, "zero", 1.4, 0.05, "binomial"), Act("tanh"), GlobalAvgPool(), Dense(1.0, 0.1)]
x = np.random.default_rng(3).normal(size=(2, 8, 8, 3))
th = propagate_network(x, net)
sim = simulate_network(x, net, 128, n_draws=32, n_readout=32, rng=7)
print("NNGP theory\\n", th.nngp.round(5), "\\nMonte Carlo\\n", sim.nngp.round(5),
      "\\n+- ", sim.nngp_stderr.round(5))
print("NTK theory\\n", th.ntk_out.round(5), "\\nMonte Carlo\\n", sim.ntk.round(5),
      "\\n+- ", sim.ntk_stderr.round(5))
print("layer contributions to the NTK sum to it:",
      np.allclose(th.ntk_contrib.sum(axis=0), th.ntk_out))""")
md("""The variance of the first layer's pre-activations is lower at the border, where zero
padding removes taps; the Monte Carlo sees the same profile.""")
code("""q_th = np.einsum("ijij->ij", th.cov["0"][0, 0])
P = q_th.size
q_mc = np.diag(sim.cov["0"])[:P].reshape(q_th.shape)
fig, ax = plt.subplots(1, 2, figsize=(8, 3.2))
for a, m, t in zip(ax, (q_th, q_mc), ("theory", "Monte Carlo (width 128)")):
    im = a.imshow(m, vmin=q_th.min(), vmax=q_th.max()); a.set_title(t)
fig.colorbar(im, ax=ax); plt.show()""")
md("""## 2. Gradients: the backward recursion per layer

Expected squared gradient norms of a readout logit with respect to every layer's weights
(divided by the input channels), biases and pre-activations, against the backward pass of the
numpy CNN.""")
code("""layers = np.arange(len(th.linear))
fig, ax = plt.subplots(figsize=(6, 3.2))
rows = [("weights / c_in", th.weight_grad2, sim.weight_grad2, sim.weight_grad2_stderr),
        ("pre-activations", th.preact_grad2, sim.preact_grad2, sim.preact_grad2_stderr)]
for name, t, m, s in rows:
    line = ax.plot(layers, t[:, 0], "-", label=f"{name} theory")[0]
    ax.errorbar(layers, m[:, 0], 2 * s[:, 0], fmt="o", color=line.get_color(), label="MC ±2 se")
ax.set(xlabel="linear layer", ylabel="E||df/d.||^2", yscale="log"); ax.legend(fontsize=7)
plt.show()""")
md("""Per Fourier mode, at the fixed point of a circular network, the gradient variance of mode
f grows by `chi_1 |lambda_f|` per layer backwards:""")
code("""r = backward_mode_depth_scales("tanh", 1.5, 0.05, variance_profile("uniform", 3), (8, 8))
print("chi_1 =", round(r.chi_1, 5))
print("xi_grad for f = (0, 0..4):", r.xi_grad[0, :5].round(3))""")
md("""## 3. Border effects of zero padding

Started at the circular fixed point, a stack of zero-padded convolutions settles to its own,
position-dependent state: the corner variance drops, and the gains that set the depth scales
(spectral radii of the linearised maps) approach the circular `chi` only as the map grows.""")
code("""b = border_effects("tanh", 1.5, 0.05, variance_profile("uniform", 3), [4, 6, 8, 12],
                   depth=20)
print("sizes        ", b.sizes)
print("q corner/q*  ", b.q_corner.round(4))
print("gain_grad    ", b.gain_grad.round(5), " circular chi_1 =", round(b.chi_1, 5))
print("xi_grad      ", b.xi_grad.round(2), " circular:", round(-1 / np.log(b.chi_1), 2))
plt.imshow(b.q_map["12"]); plt.colorbar(); plt.title("q / q* after 20 zero-padded layers")
plt.show()""")
md("""## 4. Predictions for a VanillaCNN

`predict` reads a `VanillaCNN` (or its keyword arguments) and returns q^l, c^l, gradient norms
with the model's channel counts, the NTK and the trainable depth `6 xi_c`.""")
code("""p = predict({"depth": 20, "channels": 16, "sigma_w2": 1.5, "sigma_b2": 0.05,
             "stem_strides": (1, 2), "init": "gaussian"}, input_shape=(8, 8))
print("trainable depth 6 xi_c =", round(p.trainable_depth, 1))
for pad in ("circular", "zeros"):
    crit = predict({"depth": 12, "sigma_w2": 1.760955, "sigma_b2": 0.05, "stem_strides": (1, 2),
                    "padding": pad, "init": "gaussian"}, input_shape=(8, 8))
    print(f"critical point, {pad} deep block on 4x4 maps: backward gain per layer "
          f"{crit.grad_gain:.4f}, xi_grad = {crit.xi_grad:.1f}")
fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
ax[0].plot(p.q[:, 0], "o-"); ax[0].axhline(p.q_star, ls=":")
ax[0].set(title="q^l", xlabel="linear layer")
ax[1].plot(p.c, "o-", label="between inputs")
ax[1].plot(p.c_spatial[:, 0], "s-", label="between pixels")
ax[1].set(title="c^l", xlabel="linear layer"); ax[1].legend(); plt.show()""")

nb = nbf.v4.new_notebook()
nb["cells"] = cells
nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "08_network.ipynb")
nbf.write(nb, path)
print("written", path)
