r"""Every figure of the library, in one place.

Each function here imports matplotlib inside itself, draws from the numbers a result already
holds (it computes no theory: curves that need the mean-field maps are passed in by the
caller), returns the Axes (or the Figure for a multi-panel figure) and never chooses a backend:
only the command line and the report call ``matplotlib.use``. Results draw themselves through
:func:`plot_result`, so ``result.plot(ax=None)`` works for every result type;
:func:`save_figure` writes a figure together with its numbers.

This module imports nothing from :mod:`cnnmft` but the plumbing in :mod:`cnnmft._util`, so any
layer may use it.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")  # a script chooses the backend, the library never does
>>> import numpy as np
>>> import cnnmft
>>> pd = cnnmft.phase_diagram("erf", np.linspace(0.5, 3, 6), np.linspace(0, 0.3, 4))
>>> ax = pd.plot()
>>> ax.get_xlabel()
'$\\sigma_w^2$'
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnmft._util import atomic_write, write_table

__all__ = [
    "check",
    "covariance",
    "critical_line",
    "fixed_point",
    "generic",
    "jacobian_moments",
    "jacobian_sample",
    "mode_decay",
    "mode_depth_scales",
    "modewise",
    "phase_diagram",
    "plot_result",
    "register",
    "save_figure",
    "simulation",
    "spectrum",
    "sv_densities",
    "train_result",
    "trainability",
    "training",
]

QUANTITIES = ("q_star", "c_star", "chi_1", "chi_q", "chi_c", "xi_q", "xi_c")


def _axes(ax=None, figsize=(5.5, 4.0)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _finite(y):
    y = np.asarray(y, dtype=float)
    return np.where(np.isfinite(y), y, np.nan)


def save_figure(fig: Any, path: str | os.PathLike, numbers: Mapping[str, Any] | None = None, *,
                dpi: int = 110, close: bool = True) -> Path:
    """Save `fig` (a Figure or an Axes) to `path` atomically, and its `numbers` beside it.

    The numbers go to a file of the same stem through :func:`cnnmft._util.write_table` (CSV for
    equal-length columns, JSON for scalars, NPZ for grids), so every figure can be redrawn or
    checked without rerunning the computation.

    Parameters
    ----------
    fig : matplotlib Figure or Axes
    path : path-like
        Image file; the format follows the suffix (``.png``, ``.svg``, ``.pdf``).
    numbers : mapping, optional
        Named columns or arrays drawn in the figure.
    dpi : int
    close : bool
        Close the figure afterwards (frees its memory in long scripts).

    Returns
    -------
    Path
        The image written.
    """
    fig = getattr(fig, "figure", fig)
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format=fmt, dpi=dpi, bbox_inches="tight")
    if numbers is not None:
        write_table(path.with_suffix(""), numbers)
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------
# mean field: fixed points, phase diagrams, critical lines
# ------------------------------------------------------------------------------------------------


def phase_diagram(pd: Any, quantity: str = "xi_c", ax=None, *, log: bool = True):
    """Image of `quantity` over the ``(sigma_w2, sigma_b2)`` grid with the critical line.

    Parameters
    ----------
    pd : PhaseDiagram
    quantity : {"q_star", "c_star", "chi_1", "chi_q", "chi_c", "xi_q", "xi_c"}
    ax : matplotlib Axes, optional
    log : bool
        Logarithmic colour scale (depth scales span decades near the critical line).

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    if quantity not in QUANTITIES:
        raise ValueError(f"`quantity` must be one of {QUANTITIES}, got {quantity!r}")
    ax = _axes(ax, (5.5, 4.2))
    z = np.asarray(getattr(pd, quantity), dtype=float).T
    positive = np.isfinite(z) & (z > 0)
    norm = None
    if log and positive.any():
        norm = LogNorm(vmin=max(z[positive].min(), 1e-3), vmax=z[positive].max())
    im = ax.pcolormesh(pd.sigma_w2, pd.sigma_b2, _finite(z), shading="auto", norm=norm,
                       cmap="viridis")
    plt.colorbar(im, ax=ax, label=quantity)
    line = np.asarray(pd.critical_sigma_w2, dtype=float)
    ok = np.isfinite(line)
    ax.plot(line[ok], np.asarray(pd.sigma_b2)[ok], "w--", lw=1.5,
            label=r"critical line $\chi_1 = 1$")
    ax.set_xlim(np.min(pd.sigma_w2), np.max(pd.sigma_w2))
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel(r"$\sigma_b^2$")
    ax.set_title(f"{pd.activation}: {quantity}")
    if ok.any():
        ax.legend(loc="upper left", fontsize=8)
    return ax


def fixed_point(fp: Any, ax=None, *, quantities: Sequence[str] = ("chi_1", "chi_q")):
    """Slopes (or any `quantities`) of a :class:`FixedPoint` against ``sigma_w2``.

    A 0-d fixed point draws one marker per quantity; a 2-D one draws one line per column of
    ``sigma_b2``.
    """
    ax = _axes(ax)
    x = np.broadcast_to(np.asarray(fp.sigma_w2, dtype=float), np.shape(fp.q_star))
    for i, name in enumerate(quantities):
        y = np.broadcast_to(_finite(getattr(fp, name)), x.shape)
        if x.ndim == 0:
            ax.plot([x], [y], "o", color=f"C{i}", label=name)
        else:
            order = np.argsort(x.reshape(x.shape[0], -1)[:, 0]) if x.ndim > 1 else np.argsort(x)
            ax.plot(x[order], y[order], ".-", color=f"C{i}", label=name)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_title(f"{fp.activation}: fixed point")
    ax.legend(fontsize=8)
    return ax


def critical_line(cp: Any, ax=None, *, label: str | None = None):
    """The order-chaos line ``chi_1 = 1`` of a :class:`CriticalPoint` in the variance plane."""
    ax = _axes(ax)
    x, y = _finite(cp.sigma_w2).ravel(), _finite(cp.sigma_b2).ravel()
    order = np.argsort(y)
    ax.plot(x[order], y[order], ".-" if x.size < 30 else "-", label=label or cp.activation)
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel(r"$\sigma_b^2$")
    ax.set_title(r"order-chaos critical line $\chi_1 = 1$")
    ax.legend(fontsize=8)
    return ax


# ------------------------------------------------------------------------------------------------
# convolutional mean field: Fourier modes and the covariance map
# ------------------------------------------------------------------------------------------------


def mode_depth_scales(mds: Any, ax=None, *, label: str | None = None, cap: float = 1e4):
    """Depth scale of every spatial Fourier mode, sorted (slowest first), on a log axis.

    Infinite depth scales (the zero mode at criticality) are drawn at `cap`.
    """
    ax = _axes(ax, (6.5, 4.0))
    xi = np.asarray(mds.xi_c, dtype=float)
    nmode = int(np.prod(np.shape(mds.lam))) if np.ndim(mds.lam) else 1
    xi = xi.reshape(-1, nmode)
    for row in xi:
        s = np.sort(np.minimum(row, cap))[::-1]
        ax.semilogy(np.arange(s.size), s, ".-", label=label)
    ax.set_xlabel("mode (sorted by depth scale)")
    ax.set_ylabel(r"$\xi_{c,f}$ (layers)")
    ax.set_title(f"{mds.activation}: depth scale per Fourier mode")
    if label:
        ax.legend(fontsize=8)
    return ax


def covariance(res: Any, ax=None):
    """Mean pre-activation variance per computed layer of a :class:`CovarianceResult`."""
    ax = _axes(ax)
    q = np.asarray(res.q_mean, dtype=float)
    q = q.reshape(q.shape[0], -1)  # (layers, inputs)
    layers = np.asarray(res.layers) if np.size(res.layers) == q.shape[0] else np.arange(len(q))
    ax.plot(layers, _finite(q), ".-" if len(q) < 60 else "-")
    ax.set_xlabel("layer l")
    ax.set_ylabel(r"mean $\Sigma^l_{\alpha\alpha}$")
    ax.set_title(f"{res.activation}: covariance map, {int(res.completed)} layers")
    return ax


# ------------------------------------------------------------------------------------------------
# Jacobian spectra
# ------------------------------------------------------------------------------------------------


def spectrum(sp: Any, ax=None, *, log: bool = True):
    """Density of the eigenvalues ``lambda`` of ``J J^T`` from a :class:`Spectrum`.

    With `log`, the density of ``log10 lambda`` on a log axis (spectra that span decades).
    """
    ax = _axes(ax, (6.5, 4.0))
    lam = np.asarray(sp.lam, dtype=float)
    order = np.argsort(lam)
    lam, dens = lam[order], np.asarray(sp.density, dtype=float)[order]
    label = f"{sp.weights}, L = {sp.depth}"
    if log:
        ok = lam > 0
        ax.semilogx(lam[ok], dens[ok] * lam[ok] * np.log(10.0),
                    "-" if sp.weights == "orthogonal" else "--", label=label)
        ax.set_ylabel(r"density of $\log_{10}\lambda$")
    else:
        ax.plot(lam, dens, label=label)
        ax.set_ylabel("density")
    ax.set_xlabel(r"eigenvalue $\lambda$ of $JJ^T$ (singular value$^2$)")
    ax.legend(fontsize=7)
    return ax


def sv_densities(results: Sequence[Any], ax=None):
    """Several :class:`Spectrum` densities of ``log10 lambda`` on one axis; returns the Figure."""
    ax = _axes(ax, (6.5, 4.0))
    for s in results:
        spectrum(s, ax=ax, log=True)
    return ax.figure


def jacobian_moments(m: Any, ax=None):
    """Mean and variance of the ``J J^T`` spectrum per layer count from :class:`JacobianMoments`.

    Draws ``m1`` and ``variance`` against their index (depth) on a log axis.
    """
    ax = _axes(ax)
    for name in ("m1", "variance"):
        y = np.atleast_1d(_finite(getattr(m, name)))
        ax.semilogy(np.arange(1, y.size + 1), np.abs(y), "o-", label=name)
    ax.set_xlabel("point")
    ax.set_title("Jacobian spectrum moments")
    ax.legend(fontsize=8)
    return ax


# ------------------------------------------------------------------------------------------------
# Monte Carlo
# ------------------------------------------------------------------------------------------------


def simulation(sim: Any, ax=None, *, input: int = 0):
    """Monte Carlo variance ``q^l`` of one input per layer (±2 standard errors).

    With two or more inputs the correlation ``c^l`` between inputs 0 and 1 is drawn too.
    """
    ax = _axes(ax)
    q = np.asarray(sim.q, dtype=float)
    layers = np.arange(1, q.shape[0] + 1)
    se = np.asarray(sim.q_stderr, dtype=float)
    ax.errorbar(layers, q[:, input], yerr=2 * se[:, input], fmt="o-", ms=3,
                label=r"$q^l$ (±2 se)")
    c = np.asarray(sim.c, dtype=float)
    if c.ndim == 3 and c.shape[1] >= 2:
        ax.errorbar(layers, c[:, 0, 1], yerr=2 * np.asarray(sim.c_stderr)[:, 0, 1], fmt="s--",
                    ms=3, label=r"$c^l$ of inputs 0, 1 (±2 se)")
    ax.set_xlabel("layer l")
    ax.set_title(f"Monte Carlo, width {sim.width}, {sim.n_draws} draws")
    ax.legend(fontsize=8)
    return ax


def mode_decay(md: Any, ax=None):
    """Amplitude of each tracked Fourier mode of a perturbation per layer (log axis)."""
    ax = _axes(ax)
    amp = np.abs(np.asarray(md.amplitude, dtype=float))
    se = np.asarray(md.amplitude_stderr, dtype=float)
    amp = amp.reshape(amp.shape[0], -1)
    se = se.reshape(amp.shape)
    modes = np.asarray(md.modes).reshape(amp.shape[1], -1)
    for i in range(amp.shape[1]):
        ax.errorbar(np.arange(1, amp.shape[0] + 1), amp[:, i], yerr=2 * se[:, i], fmt="o-", ms=3,
                    label=f"mode {tuple(modes[i].tolist())}")
    ax.set_yscale("log")
    ax.set_xlabel("layer l")
    ax.set_ylabel("mode amplitude (±2 se)")
    ax.set_title(f"mode decay ({md.kind})")
    ax.legend(fontsize=7)
    return ax


def jacobian_sample(js: Any, ax=None, *, bins: int = 60):
    """Histogram of the sampled eigenvalues of ``J J^T`` (:class:`JacobianSample`)."""
    ax = _axes(ax)
    ev = np.asarray(js.eigenvalues, dtype=float).ravel()
    ev = ev[np.isfinite(ev)]
    ax.hist(ev, bins=bins, density=True, alpha=0.6, label=f"{js.n_draws} draws, width {js.width}")
    ax.set_xlabel(r"eigenvalue of $JJ^T$")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return ax


def check(res: Any):
    """Overlay figure of one theory-vs-simulation check: theory lines, Monte Carlo points.

    Draws from ``res.curves`` (a dict of arrays) by ``res.group``; returns the Figure, or None
    for a check without curves or of a group without a figure.
    """
    import matplotlib.pyplot as plt

    c = res.curves
    if not c:
        return None
    if res.group in ("fixed point", "trajectory"):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        for label, col in (("ordered", "C0"), ("chaotic", "C3")):
            if f"{label}_layers" not in c:
                continue
            lay = c[f"{label}_layers"]
            for ax, what in zip(axes, ("q", "c")):
                ax.plot(lay, c[f"{label}_{what}_theory"], "-", color=col, label=f"theory {label}")
                ax.errorbar(lay, c[f"{label}_{what}_mc"], yerr=2 * c[f"{label}_{what}_se"],
                            fmt="o", ms=3, color=col, label=f"MC {label} (±2 se)")
                ax.set_xlabel("layer l")
                ax.set_ylabel(f"{what}^l")
        axes[0].legend(fontsize=7)
    elif res.group == "covariance":
        fig, ax = plt.subplots(figsize=(4.2, 4))
        ax.errorbar(c["theory"], c["mc"], yerr=2 * c["se"], fmt=".", ms=2, alpha=0.5)
        lo, hi = float(np.min(c["theory"])), float(np.max(c["theory"]))
        ax.plot([lo, hi], [lo, hi], "k-", lw=1)
        ax.set_xlabel("theory Sigma entry")
        ax.set_ylabel("Monte Carlo (±2 se)")
    elif res.group == "modes":
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for i, f in enumerate(c["modes"]):
            ax.semilogy(c["layers"], np.abs(c["amp_theory"][:, i]), "-", color=f"C{i}",
                        label=f"theory f={f}")
            ax.errorbar(c["layers"], np.abs(c["amp_mc"][:, i]), yerr=2 * c["amp_se"][:, i],
                        fmt="o", ms=3, color=f"C{i}", label=f"MC f={f}")
        ax.set_xlabel("layer l")
        ax.set_ylabel("mode amplitude")
        ax.legend(fontsize=7)
    elif res.group == "jacobian" and "eigenvalues" not in c:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        k = np.arange(1, len(c["top"]) + 1)
        ax.errorbar(k, c["top"], yerr=2 * c["top_se"], fmt="o", label="MC top singular values")
        ax.axhline(float(c["sqrt_lambda_max"]), color="k", lw=1,
                   label="sqrt(lambda_max), infinite width")
        ax.set_xlabel("rank")
        ax.legend(fontsize=7)
    elif res.group == "jacobian":
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.hist(c["eigenvalues"], bins=60, density=True, alpha=0.5,
                label="MC eigenvalues of JJ^T")
        if "cdf_x" in c:
            x, y = np.asarray(c["cdf_x"]), np.asarray(c["cdf_y"])
            ax.plot(0.5 * (x[1:] + x[:-1]), np.diff(y) / np.diff(x), "k-", lw=1,
                    label="free probability")
        ax.set_xlabel("eigenvalue")
        ax.legend(fontsize=7)
    else:
        return None
    status = getattr(res.status, "name", res.status)
    fig.axes[0].set_title(f"{res.name}: {status}", fontsize=9)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------
# training and trainability
# ------------------------------------------------------------------------------------------------


def train_result(r: Any, ax=None):
    """Training loss per step of one :class:`TrainResult` (log axis)."""
    ax = _axes(ax)
    loss = np.asarray(r.loss, dtype=float)
    if loss.size:
        ax.plot(np.arange(1, loss.size + 1), loss, lw=0.8)
    ax.set(xlabel="step", ylabel="training loss", yscale="log",
           title=f"test accuracy {float(r.test_accuracy):.3f}")
    return ax


def training(results: Sequence[Any], labels: Sequence[str] | None = None,
             title: str | None = None):
    """Training loss, accuracy and initial gradient norm per layer for several runs.

    Returns
    -------
    matplotlib.figure.Figure
        Three panels.
    """
    import matplotlib.pyplot as plt

    if labels is None:
        labels = [f"{r.settings['init']}, depth {r.settings['depth']}" for r in results]
    fig, ax = plt.subplots(1, 3, figsize=(14, 3.8))
    for r, lab in zip(results, labels):
        if len(r.loss):
            ax[0].plot(np.arange(1, len(r.loss) + 1), r.loss, lw=0.8, label=lab)
        ax[1].plot(r.eval_step, r.test_acc, "o-", ms=3, label=lab + " (test)")
        ax[1].plot(r.eval_step, r.train_acc, "--", lw=0.8, color=ax[1].lines[-1].get_color())
        if len(r.init_grad_norms):
            ax[2].semilogy(np.arange(1, len(r.init_grad_norms) + 1), r.init_grad_norms, lw=0.8,
                           label=lab)
    ax[0].set(xlabel="step", ylabel="training loss", yscale="log")
    ax[1].set(xlabel="step", ylabel="accuracy (solid test, dashed train)", ylim=(0, 1.02))
    ax[1].axhline(0.1, color="grey", lw=0.6, ls=":")
    ax[2].set(xlabel="deep layer l", ylabel="||dL/dW_l|| at initialisation")
    for a in ax:
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _edges(c, log=False):
    c = np.asarray(c, dtype=float)
    if len(c) == 1:
        return np.array([c[0] * 0.8, c[0] * 1.25]) if log else np.array([c[0] - .5, c[0] + .5])
    if log:
        return np.exp(_edges(np.log(c)))
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def trainability(sweep: Any, *, which: str = "train_accuracy", ax=None,
                 curve: tuple[Any, Any] | None = None, critical_sigma_w2: float | None = None,
                 logy: bool | None = None):
    """Heatmap of accuracy over ``(sigma_w2, depth)`` with the predicted trainable depth.

    Parameters
    ----------
    sweep : TrainabilitySweep
    which : {"train_accuracy", "test_accuracy"}
    ax : matplotlib Axes, optional
    curve : (x, y), optional
        The theory curve ``factor * xi_c`` on a fine ``sigma_w2`` grid (computed by the
        caller); default: the sweep's own ``predicted_depth`` at its grid points.
    critical_sigma_w2 : float, optional
        Drawn as a dotted vertical line when inside the grid.
    logy : bool, optional
        Logarithmic depth axis (default: when the depths span more than a factor 8).

    Returns
    -------
    matplotlib.figure.Figure
        Cells that count as trained are marked with dots.
    """
    import matplotlib.patheffects as pe

    if which not in ("train_accuracy", "test_accuracy"):
        raise ValueError(f"`which` must be 'train_accuracy' or 'test_accuracy', got {which!r}")
    ax = _axes(ax, (6.4, 4.6))
    fig = ax.figure
    x = np.asarray(sweep.sigma_w2, dtype=float)
    y = np.asarray(sweep.depth, dtype=float)
    z = np.asarray(getattr(sweep, which), dtype=float)
    if logy is None:
        logy = y.max() / y.min() > 8
    xe, ye = _edges(x), _edges(y, logy)
    xe[0] = max(xe[0], 0.5 * x[0])  # sigma_w2 > 0
    if not logy:
        ye[0] = max(ye[0], 0.5 * y[0])
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(z), cmap="viridis", vmin=0.0, vmax=1.0,
                         shading="flat")
    fig.colorbar(mesh, ax=ax, label=which.replace("_", " ") + " (grey: not run)")
    ax.set_facecolor("0.85")
    xs, ys = curve if curve is not None else (x, sweep.predicted_depth)
    ys = np.asarray(ys, dtype=float)
    ax.plot(xs, np.where(np.isfinite(ys), ys, 1e9), color="tab:red", lw=2.2,
            path_effects=[pe.Stroke(linewidth=3.8, foreground="w"), pe.Normal()],
            label=f"{sweep.factor:g} $\\xi_c$ (theory)")
    if critical_sigma_w2 is not None and xe[0] < critical_sigma_w2 < xe[-1]:
        ax.axvline(critical_sigma_w2, color="w", ls=":", lw=1.4,
                   path_effects=[pe.Stroke(linewidth=2.4, foreground="0.3"), pe.Normal()],
                   label=f"critical $\\sigma_w^2$={critical_sigma_w2:.3g}")
    ii, jj = np.nonzero(np.asarray(sweep.trained))
    ax.scatter(x[jj], y[ii], s=9, c="k", marker="o",
               label=f"trained (acc $\\geq$ {sweep.threshold:g})")
    ax.set_ylim(ye[0], ye[-1])
    ax.set_xlim(xe[0], xe[-1])
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel("depth")
    ax.set_title(f"{sweep.act}, $\\sigma_b^2$={sweep.sigma_b2:g}: agreement "
                 f"{float(sweep.agreement):.2f}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, fontsize="small")
    return fig


def modewise(study: Any, *, axes=None):
    """Three panels: loss curves, accuracy against ``t``, predicted mode depth scales.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    else:
        fig = axes[0].figure
    ax0, ax1, ax2 = axes
    cmap = plt.get_cmap("viridis")
    styles = {"orthogonal": "-", "gaussian": "--"}
    for ik, kind in enumerate(study.kinds):
        for it, tt in enumerate(study.t):
            ax0.plot(study.loss[ik, it], styles.get(str(kind), ":"), color=cmap(tt / 0.5 * 0.9),
                     lw=1.2,
                     label=f"{kind}, t={tt:g}" if ik == 0 or it in (0, len(study.t) - 1) else None)
        ax1.errorbar(study.t, study.test_accuracy[ik], yerr=study.test_accuracy_se[ik],
                     fmt="o" + styles.get(str(kind), ":"), capsize=3, label=f"{kind}: test")
        ax1.plot(study.t, study.train_accuracy[ik], "x" + styles.get(str(kind), ":"), alpha=0.6,
                 label=f"{kind}: train")
    ax0.set_xlabel("step")
    ax0.set_ylabel("training loss")
    ax0.set_title(f"depth {study.depth}, critical ($\\sigma_w^2$={study.sigma_w2:.4g})")
    ax0.legend(fontsize="x-small", ncol=2)
    ax1.set_xlabel("t  (0 = delta, 0.5 = binomial)")
    ax1.set_ylabel("accuracy")
    ax1.legend(fontsize="small")
    ax2.plot(study.t, study.xi_slowest, "o-", label=r"$\xi_c$ of slowest non-zero mode")
    ax2.axhline(study.depth, color="k", ls=":", label=f"depth {study.depth}")
    ax2.set_yscale("log")
    ax2.set_xlabel("t")
    ax2.set_ylabel("predicted depth scale")
    ax2b = ax2.twinx()
    ax2b.plot(study.t, study.surviving_fraction, "s--", color="C3",
              label=r"modes with $\xi_{c,f} \geq$ depth")
    ax2b.set_ylabel("fraction of non-zero modes surviving", color="C3")
    ax2b.set_ylim(-0.02, 1.02)
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax2b.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize="x-small")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------
# dispatch
# ------------------------------------------------------------------------------------------------


def generic(result: Any, ax=None):
    """Line plot of a result's main array fields against its first coordinate.

    The fallback of :func:`plot_result` for result types without a figure of their own.
    """
    ax = _axes(ax)
    dims, coords, data = result._grid()
    x = np.asarray(next(iter(coords.values())))
    for name, y in data.items():
        y = np.asarray(y)
        if y.dtype.kind in "biuf":
            ax.plot(x, _finite(y).reshape(x.size, -1), ".-", label=name)
    ax.set_xlabel(dims[0])
    ax.set_title(type(result).__name__)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return ax


def _as_axes(fn):
    def draw(result, ax=None, **kwargs):
        if ax is not None:
            kwargs["axes" if fn is modewise else "ax"] = ax
        out = fn(result, **kwargs)
        return out.axes[0] if hasattr(out, "axes") and not hasattr(out, "plot") else out

    return draw


_REGISTRY: dict[str, Callable[..., Any]] = {
    "PhaseDiagram": lambda r, ax=None, **kw: phase_diagram(r, ax=ax, **kw),
    "FixedPoint": fixed_point,
    "CriticalPoint": critical_line,
    "ModeDepthScales": mode_depth_scales,
    "CovarianceResult": covariance,
    "Spectrum": spectrum,
    "JacobianMoments": jacobian_moments,
    "Simulation": simulation,
    "ModeDecay": mode_decay,
    "JacobianSample": jacobian_sample,
    "TrainResult": train_result,
    "TrainabilitySweep": _as_axes(trainability),
    "ModewiseStudy": _as_axes(modewise),
}


def register(type_name: str, fn: Callable[..., Any]) -> None:
    """Make `fn(result, ax=None, **kwargs)` the figure of results of class `type_name`.

    For result types defined outside this module's knowledge (new modules register their own
    figure function, which should live here too).
    """
    _REGISTRY[str(type_name)] = fn


def plot_result(result: Any, ax=None, **kwargs):
    """Draw `result` with the figure function of its type; returns the Axes.

    Parameters
    ----------
    result : a cnnmft result object
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    **kwargs
        Passed to the figure function (e.g. ``quantity="chi_1"`` for a PhaseDiagram).

    Returns
    -------
    matplotlib Axes
        For multi-panel figures, the first panel (its ``.figure`` is the whole figure).
    """
    if not dataclasses.is_dataclass(result) or isinstance(result, type):
        raise TypeError(f"`result` must be a cnnmft result object, got {type(result).__name__}")
    fn = _REGISTRY.get(type(result).__name__, generic)
    return fn(result, ax=ax, **kwargs)
