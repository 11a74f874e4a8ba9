"""Figures of training: loss curves, trainability heatmaps, the variance-profile study."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cnnmft.plotting._base import _axes

# ------------------------------------------------------------------------------------------------
# training and trainability
# ------------------------------------------------------------------------------------------------


def train_result(r: Any, ax: Any = None) -> Any:
    """Training loss per step of one :class:`TrainResult` (log axis).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> r = SimpleNamespace(loss=[2.3, 1.1, 0.6], test_accuracy=0.8)
    >>> train_result(r).get_title()
    'test accuracy 0.800'
    """
    ax = _axes(ax)
    loss = np.asarray(r.loss, dtype=float)
    if loss.size:
        ax.plot(np.arange(1, loss.size + 1), loss, lw=0.8)
    ax.set(
        xlabel="step",
        ylabel="training loss",
        yscale="log",
        title=f"test accuracy {float(r.test_accuracy):.3f}",
    )
    return ax


def training(
    results: Sequence[Any],
    labels: Sequence[str] | None = None,
    title: str | None = None,
    *,
    fig: Any = None,
) -> Any:
    """Training loss, accuracy and initial gradient norm per layer for several runs.

    Parameters
    ----------
    results : sequence of TrainResult
    labels : sequence of str, optional
        Legend labels (default: init and depth from each run's settings).
    title : str, optional
    fig : matplotlib.figure.Figure, optional
        An empty figure to draw into (e.g. a ``matplotlib.figure.Figure`` made without pyplot,
        as a training job that only writes files does); default: a new pyplot figure.

    Returns
    -------
    matplotlib.figure.Figure
        Three panels.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> r = SimpleNamespace(loss=[2.3, 1.1], eval_step=[1, 2], test_acc=[0.5, 0.7],
    ...                     train_acc=[0.5, 0.8], init_grad_norms=[1.0, 0.9])
    >>> len(training([r], labels=["depth 2"]).axes)
    3
    """
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(14, 3.8))
    if labels is None:
        labels = [f"{r.settings['init']}, depth {r.settings['depth']}" for r in results]
    ax = fig.subplots(1, 3)
    for r, lab in zip(results, labels):
        if len(r.loss):
            ax[0].plot(np.arange(1, len(r.loss) + 1), r.loss, lw=0.8, label=lab)
        ax[1].plot(r.eval_step, r.test_acc, "o-", ms=3, label=lab + " (test)")
        ax[1].plot(r.eval_step, r.train_acc, "--", lw=0.8, color=ax[1].lines[-1].get_color())
        if len(r.init_grad_norms):
            ax[2].semilogy(
                np.arange(1, len(r.init_grad_norms) + 1), r.init_grad_norms, lw=0.8, label=lab
            )
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


def _log_edges(c):
    """Cell edges of a grid: the midpoints, and half a step beyond each end."""
    c = np.asarray(c, dtype=float)
    if len(c) == 1:
        return np.array([c[0] * 0.8, c[0] * 1.25])
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def trainability(
    sweep: Any,
    *,
    ax: Any = None,
    curve: tuple[Any, Any] | Callable[[Any], Any] | None = None,
    critical_sigma_w2: float | None = None,
    n_curve: int = 400,
) -> Any:
    """Heat map of the fraction of seeds trained over ``(sigma_w2, depth)`` with the theory.

    Parameters
    ----------
    sweep : TrainabilitySweep
        ``trained`` and ``valid`` of shape ``(seeds, depth, sigma_w2)``, ``predicted_depth``
        (``factor * xi_c`` at the grid's ``sigma_w2``), ``factor``, ``k_fit`` and the agreement
        scores ``agreement``, ``agreement_depth_rule``, ``agreement_sigma_rule``.
    ax : matplotlib Axes, optional
    curve : (x, y) or callable, optional
        ``factor * xi_c`` on a fine ``sigma_w2`` grid (computed by the caller with the mean
        field), or a function ``y = curve(x)`` that computes it, evaluated at `n_curve` points
        across the heat map; default: the sweep's ``predicted_depth`` at its grid points.
    critical_sigma_w2 : float, optional
        Drawn as a dotted vertical line when inside the grid (ignored when not finite).
    n_curve : int
        Points at which a callable `curve` is evaluated.

    Returns
    -------
    matplotlib.figure.Figure
        Depth on a log axis; grey cells have no result.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> trained = np.array([[[True, True], [False, True]]])  # (seed, depth, sigma_w2)
    >>> sweep = SimpleNamespace(sigma_w2=np.array([1.5, 2.0]), depth=np.array([10, 100]),
    ...                         trained=trained, valid=np.ones_like(trained),
    ...                         predicted_depth=np.array([95.0, 151.0]), factor=6.0,
    ...                         k_fit=5.0, act="tanh", sigma_b2=0.05, agreement=0.75,
    ...                         agreement_depth_rule=0.5, agreement_sigma_rule=0.5)
    >>> trainability(sweep, critical_sigma_w2=1.76).axes[0].get_ylabel()
    'depth L'
    """
    # over 80 lines with its numpydoc docstring; the body is ~55 lines
    import matplotlib.patheffects as pe

    ax = _axes(ax, (6.6, 4.8))
    fig = ax.figure
    x = np.asarray(sweep.sigma_w2, dtype=float)
    y = np.asarray(sweep.depth, dtype=float)
    valid = np.asarray(sweep.valid, dtype=bool)
    n_valid = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        hits = (np.asarray(sweep.trained, dtype=bool) & valid).sum(axis=0)
        frac = np.where(n_valid > 0, hits / n_valid, np.nan)
    xe = _log_edges(x)
    xe[0] = max(xe[0], 0.5 * x[0])  # sigma_w2 > 0
    ye = np.exp(_log_edges(np.log(y))) if len(y) > 1 else np.array([y[0] * 0.8, y[0] * 1.25])
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(frac), cmap="viridis", vmin=0, vmax=1,
                         shading="flat")  # fmt: skip
    fig.colorbar(mesh, ax=ax, label="fraction of seeds trained (grey: no result)")
    ax.set_facecolor("0.85")
    if callable(curve):
        xs = np.linspace(xe[0], xe[-1], n_curve)
        ys = curve(xs)
    else:
        xs, ys = curve if curve is not None else (x, sweep.predicted_depth)
    ys = np.asarray(ys, dtype=float)
    big = 10 * ye[-1]
    halo = [pe.Stroke(linewidth=3.8, foreground="w"), pe.Normal()]
    ax.plot(xs, np.where(np.isfinite(ys), ys, big), color="tab:red", lw=2.2, path_effects=halo,
            label=f"{sweep.factor:g} $\\xi_c$ (theory)")  # fmt: skip
    k_fit = float(getattr(sweep, "k_fit", np.nan))
    if np.isfinite(k_fit):
        kc = ys / sweep.factor * k_fit
        ax.plot(xs, np.where(np.isfinite(kc), kc, big), color="tab:orange", lw=1.6, ls="--",
                label=f"fitted {k_fit:.2g} $\\xi_c$")  # fmt: skip
    if critical_sigma_w2 is not None and xe[0] < critical_sigma_w2 < xe[-1]:  # False for NaN
        ax.axvline(critical_sigma_w2, color="w", ls=":", lw=1.4,
                   path_effects=[pe.Stroke(linewidth=2.4, foreground="0.3"), pe.Normal()],
                   label=f"critical $\\sigma_w^2$={critical_sigma_w2:.3g}")  # fmt: skip
    ax.set_yscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels([str(int(d)) for d in y])
    ax.minorticks_off()
    ax.set_ylim(ye[0], ye[-1])
    ax.set_xlim(xe[0], xe[-1])
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel("depth L")
    ax.set_title(f"{sweep.act}, $\\sigma_b^2$={sweep.sigma_b2:g}: agreement "
                 f"{sweep.factor:g}$\\xi_c$ {sweep.agreement:.2f}, depth rule "
                 f"{sweep.agreement_depth_rule:.2f}, $\\sigma_w^2$ rule "
                 f"{sweep.agreement_sigma_rule:.2f}", fontsize="medium")  # fmt: skip
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize="small",
              frameon=False)  # fmt: skip
    return fig


def modewise(study: Any, *, axes: Any = None) -> Any:
    """Three panels: loss curves, test accuracy against ``t``, predicted mode depth scales.

    Parameters
    ----------
    study : ModewiseStudy
        ``loss`` of shape ``(kinds, t, steps)`` recorded every ``loss_every`` steps,
        ``test_accuracy`` of shape ``(kinds, t, seeds)`` (NaN for runs that did not finish), the
        fitted slopes ``slope_test_accuracy`` and ``slope_se`` per kind, ``xi_slowest`` and
        ``surviving_fraction`` per ``t``.
    axes : sequence of three matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> study = SimpleNamespace(kinds=np.array(["orthogonal"]), t=np.array([0.0, 0.5]), depth=8,
    ...                         sigma_w2=1.05, loss=np.ones((1, 2, 5)), loss_every=10,
    ...                         test_accuracy=np.array([[[0.9, 0.8], [0.8, 0.7]]]),
    ...                         slope_test_accuracy=np.array([-0.2]), slope_se=np.array([0.1]),
    ...                         xi_slowest=np.array([np.inf, 6.3]),
    ...                         surviving_fraction=np.array([1.0, 0.0]))
    >>> len(modewise(study).axes)
    4
    """
    # over 80 lines with its numpydoc docstring; the body is ~60 lines
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    else:
        fig = axes[0].figure
    ax0, ax1, ax2 = axes
    cmap = plt.get_cmap("viridis")
    styles = {"orthogonal": "-", "gaussian": "--"}
    steps = np.arange(study.loss.shape[-1]) * study.loss_every
    for ik, kind in enumerate(study.kinds):
        ls = styles.get(str(kind), ":")
        for it, tt in enumerate(study.t):
            ax0.plot(
                steps,
                study.loss[ik, it],
                ls,
                color=cmap(tt / 0.5 * 0.9),
                lw=1.1,
                label=f"{kind}, t={tt:g}" if it in (0, len(study.t) - 1) else None,
            )
        acc = np.asarray(study.test_accuracy[ik], dtype=float)
        n = np.isfinite(acc).sum(axis=1)
        mean = np.array([np.mean(r[np.isfinite(r)]) if k else np.nan for r, k in zip(acc, n)])
        se = np.array([np.nanstd(r, ddof=1) / np.sqrt(k) if k > 1 else np.nan
                       for r, k in zip(acc, n)])  # fmt: skip
        ax1.errorbar(
            study.t,
            mean,
            yerr=se,
            fmt="o" + ls,
            capsize=3,
            label=f"{kind} (slope {study.slope_test_accuracy[ik]:+.3f} "
            f"$\\pm$ {study.slope_se[ik]:.3f})",
        )
    ax0.set(
        xlabel="step",
        ylabel="training loss",
        title=f"depth {study.depth}, critical ($\\sigma_w^2$={study.sigma_w2:.4g})",
    )
    ax0.legend(fontsize="x-small")
    ax1.set(xlabel="t  (0 delta, 0.5 uniform-like)", ylabel="test accuracy (mean $\\pm$ s.e.)")
    ax1.legend(fontsize="x-small")
    ax2.plot(study.t, study.xi_slowest, "o-", label=r"$\xi_c$ of slowest non-zero mode")
    ax2.axhline(study.depth, color="k", ls=":", label=f"depth {study.depth}")
    ax2.set(xlabel="t", ylabel="predicted depth scale", yscale="log")
    ax2b = ax2.twinx()
    ax2b.plot(
        study.t,
        study.surviving_fraction,
        "s--",
        color="C3",
        label=r"modes with $\xi_{c,f} \geq$ depth",
    )
    ax2b.set_ylabel("fraction of non-zero modes surviving", color="C3")
    ax2b.set_ylim(-0.02, 1.02)
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax2b.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize="x-small")
    fig.tight_layout()
    return fig
