"""Write notebooks/04_spectrum.ipynb (run: python notebooks/make_04_spectrum.py)."""

import os

import nbformat as nbf

cells = []


def md(s):
    """Append a markdown cell."""
    cells.append(nbf.v4.new_markdown_cell(s))


def code(s):
    """Append a code cell."""
    cells.append(nbf.v4.new_code_cell(s))


md("""# Jacobian spectra and dynamical isometry

A deep network trains fast when its input-output Jacobian `J` keeps every singular value near 1
(*dynamical isometry*). For a network at its fixed point, free probability gives the whole
spectrum of `J J^T` from two ingredients: the weight ensemble (orthogonal or Gaussian) and the
law of `phi'(h)^2` with `h ~ N(0, q*)`. A CNN with Delta-orthogonal or block-orthogonal kernels
has the spectrum of an orthogonal fully connected network; with Gaussian kernels, of a Gaussian
one (Xiao et al. 2018, Section 3; Pennington, Schoenholz and Ganguli 2017).""")
code("""import numpy as np
import matplotlib.pyplot as plt
import cnnmft""")

md("""## 1. One spectrum: moments, edges, quantiles

tanh at the critical point (sigma_w2, sigma_b2) = (1.05, 2.01e-5), q* = 0.0259, 16 layers.
The mean `m1 = (sigma_w2 mu1)^L` and variance `m1^2 L (mu2/mu1^2 - 1 - s1)` are closed forms;
the density integrates to 1 and reproduces them.""")
code("""s = cnnmft.jacobian_spectrum("tanh", 1.05, 2.01e-5, 16, "orthogonal")
mean = np.sum(s.quad_weights * s.lam * s.density)
var = np.sum(s.quad_weights * s.lam**2 * s.density) - mean**2
print(f"q* = {s.q_star:.5f}, status {s.status}, mass {s.mass:.12f}")
print(f"mean {mean:.8f} (formula {s.m1:.8f}), variance {var:.8f} (formula {s.variance:.8f})")
print(f"lambda_max = {s.lambda_max:.5f}, largest singular value {s.sv_max:.5f}")
print("quantiles 1%, 50%, 99%:", s.quantile([0.01, 0.5, 0.99]).round(4))""")

md("""## 2. Orthogonal against Gaussian weights as depth grows

Orthogonal kernels keep the spectrum within a factor of a few of 1; Gaussian kernels spread it
over many decades (variance at least L), whatever the activation. Densities of `log10 lambda`.""")
code("""fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for w, ax in zip(["orthogonal", "gaussian"], axes):
    for L in [4, 16, 64, 256, 1024]:
        r = cnnmft.jacobian_spectrum("tanh", 1.05, 2.01e-5, L, w, n_points=300)
        o = np.argsort(r.lam)
        ax.semilogx(r.lam[o], r.density[o] * r.lam[o] * np.log(10), label=f"L = {L}")
    ax.set_title(f"{w} weights"); ax.set_xlabel("eigenvalue of J J^T"); ax.legend(fontsize=8)
axes[0].set_ylabel("density of log10(lambda)")
plt.show()""")

md("""## 3. The theory against an exact Jacobian

A numpy CNN (`cnnmft.montecarlo`, circular padding) with Delta-orthogonal kernels, 4 positions
and 128 channels, 16 layers, started at q*. Its JJ^T eigenvalues against the free-probability
density, and the Kolmogorov-Smirnov distance computed with the exact theory CDF at every
eigenvalue (`lam=` evaluates the spectrum at given points).""")
code("""mc = cnnmft.jacobian_singular_values("tanh", 1.05, 2.01e-5, 16, (4,), width=128,
                                     q_input=s.q_star, kernel="delta_orthogonal",
                                     kernel_size=3, n_draws=1, rng=0)
eig = np.sort(mc.eigenvalues.ravel())
cdf = cnnmft.jacobian_spectrum("tanh", 1.05, 2.01e-5, 16, "orthogonal", lam=eig).cdf
ks = np.max(np.abs(cdf - np.arange(1, eig.size + 1) / eig.size))
o = np.argsort(s.lam)
plt.hist(eig, bins=40, density=True, alpha=0.4, label=f"CNN, {eig.size} eigenvalues")
plt.plot(s.lam[o], s.density[o], "k", label="free probability")
plt.xlabel("eigenvalue of J J^T"); plt.legend(); plt.title(f"KS distance {ks:.3f}")
plt.show()""")

md("""## 4. Critical q* = 1/L: isometry at 10,000 layers, and the universal limit

On the tanh critical line `mu2/mu1^2 - 1 = 8 q*^2 + ...`, so with the authors' rule q* = 1/L
the spread `L (mu2/mu1^2 - 1)` shrinks like 8/L. For a fixed spread s, deep spectra approach a
one-parameter universal law, `M^{-1}(m) = ((1+m)/m) exp(s m)` (Pennington et al. 2018).""")
code("""for L in [16, 1250, 10000]:
    cp = cnnmft.critical_point("tanh", 1.0 / L)
    r = cnnmft.jacobian_spectrum("tanh", float(cp.sigma_w2), float(cp.sigma_b2), L,
                                 "orthogonal", q_star=1.0 / L, n_points=300)
    print(f"L = {L:6d}: sigma_w2 = {float(cp.sigma_w2):.7f}, variance {r.variance:.5f}, "
          f"singular values in [{np.sqrt(r.quantile(0.001)):.4f}, {r.sv_max:.4f}]")
u = cnnmft.universal_spectrum(1.0)
print(f"universal law, s = 1: lambda_max = {u.lambda_max:.4f}, lambda_min = {u.lambda_min:.4f}")""")

md("""## 5. Any activation, closed forms as checks

ReLU and hard-tanh have 0/1 laws of `phi'^2`, so their spectra have point masses (reported in
`atom_lam`, `atom_mass`); the variances are the closed forms `L (1-p)/p` (orthogonal) and `L/p`
(Gaussian) at criticality. Linear Gaussian networks give the Fuss-Catalan law.""")
code("""for act, sw2, sb2 in [("relu", 2.0, 0.0), ("hard_tanh", 1.047669, 0.00889545),
                     ("erf", 1.114280, 0.01), ("selu", 1.0, 0.0)]:
    for w in ["orthogonal", "gaussian"]:
        r = cnnmft.jacobian_spectrum(act, sw2, sb2, 16, w, n_points=200)
        print(f"{act:9s} {w:10s} var {r.variance:9.4f}  lambda_max {r.lambda_max:9.4f}  "
              f"atoms {np.round(r.atom_lam, 4).tolist()} x {np.round(r.atom_mass, 4).tolist()}")""")

nb = nbf.v4.new_notebook()
nb["cells"] = cells
nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                "language": "python"}
nbf.write(nb, os.path.join(os.path.dirname(os.path.abspath(__file__)), "04_spectrum.ipynb"))
print("written")
