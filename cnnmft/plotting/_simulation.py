"""Figures of simulations: Monte Carlo statistics and theory-against-simulation checks."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnmft.plotting._base import _axes

# ------------------------------------------------------------------------------------------------
# Monte Carlo
# ------------------------------------------------------------------------------------------------


def simulation(sim: Any, ax: Any = None, *, input: int = 0) -> Any:
    """Monte Carlo variance ``q^l`` of one input per layer (±2 standard errors).

    With two or more inputs the correlation ``c^l`` between inputs 0 and 1 is drawn too.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnmft import montecarlo
    >>> x = np.random.default_rng(0).normal(size=(2, 6, 1))
    >>> sim = montecarlo.simulate(x, "tanh", 1.5, 0.05, 3, width=8, n_draws=2, rng=0)
    >>> len(simulation(sim).get_lines()) > 0
    True
    """
    ax = _axes(ax)
    q = np.asarray(sim.q, dtype=float)
    layers = np.arange(1, q.shape[0] + 1)
    se = np.asarray(sim.q_stderr, dtype=float)
    ax.errorbar(layers, q[:, input], yerr=2 * se[:, input], fmt="o-", ms=3, label=r"$q^l$ (±2 se)")
    c = np.asarray(sim.c, dtype=float)
    if c.ndim == 3 and c.shape[1] >= 2:
        ax.errorbar(
            layers,
            c[:, 0, 1],
            yerr=2 * np.asarray(sim.c_stderr)[:, 0, 1],
            fmt="s--",
            ms=3,
            label=r"$c^l$ of inputs 0, 1 (±2 se)",
        )
    ax.set_xlabel("layer l")
    ax.set_title(f"Monte Carlo, width {sim.width}, {sim.n_draws} draws")
    ax.legend(fontsize=8)
    return ax


def mode_decay(md: Any, ax: Any = None) -> Any:
    """Amplitude of each tracked Fourier mode of a perturbation per layer (log axis).

    Examples
    --------
    >>> from cnnmft import montecarlo, variance_profile
    >>> md = montecarlo.mode_decay("tanh", 2.5, 0.05, 3, (8,), q_star=1.06396, c_star=0.446804,
    ...                            modes=[1, 2], width=8, v=variance_profile("uniform", 3, ndim=1),
    ...                            n_draws=2, rng=0)
    >>> mode_decay(md).get_yscale()
    'log'
    """
    ax = _axes(ax)
    amp = np.abs(np.asarray(md.amplitude, dtype=float))
    se = np.asarray(md.amplitude_stderr, dtype=float)
    amp = amp.reshape(amp.shape[0], -1)
    se = se.reshape(amp.shape)
    modes = np.asarray(md.modes).reshape(amp.shape[1], -1)
    for i in range(amp.shape[1]):
        ax.errorbar(
            np.arange(1, amp.shape[0] + 1),
            amp[:, i],
            yerr=2 * se[:, i],
            fmt="o-",
            ms=3,
            label=f"mode {tuple(modes[i].tolist())}",
        )
    ax.set_yscale("log")
    ax.set_xlabel("layer l")
    ax.set_ylabel("mode amplitude (±2 se)")
    ax.set_title(f"mode decay ({md.kind})")
    ax.legend(fontsize=7)
    return ax


def jacobian_sample(js: Any, ax: Any = None, *, bins: int = 60) -> Any:
    """Histogram of the sampled eigenvalues of ``J J^T`` (:class:`JacobianSample`).

    Examples
    --------
    >>> from cnnmft import montecarlo
    >>> js = montecarlo.jacobian_singular_values("tanh", 1.5, 0.05, 3, (4,), width=8, n_draws=2,
    ...                                          rng=0)
    >>> len(jacobian_sample(js).patches)
    60
    """
    ax = _axes(ax)
    ev = np.asarray(js.eigenvalues, dtype=float).ravel()
    ev = ev[np.isfinite(ev)]
    ax.hist(ev, bins=bins, density=True, alpha=0.6, label=f"{js.n_draws} draws, width {js.width}")
    ax.set_xlabel(r"eigenvalue of $JJ^T$")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return ax


def check(res: Any) -> Any:
    """Overlay figure of one theory-vs-simulation check: theory lines, Monte Carlo points.

    Draws from ``res.curves`` (a dict of arrays) by ``res.group``; returns the Figure, or None
    for a check without curves or of a group without a figure.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> res = SimpleNamespace(name="cov", group="covariance", status="pass",
    ...                       curves={"theory": [0.5, 1.0], "mc": [0.51, 0.98],
    ...                               "se": [0.01, 0.02]})
    >>> check(res).axes[0].get_title()
    'cov: pass'
    """
    import matplotlib.pyplot as plt

    if not res.curves:
        return None
    c = {k: np.asarray(v) for k, v in res.curves.items()}
    draw = _CHECK_FIGURES.get(res.group)
    fig = draw(plt, c) if draw is not None else None
    if fig is None:
        return None
    status = getattr(res.status, "name", res.status)
    fig.axes[0].set_title(f"{res.name}: {status}", fontsize=9)
    fig.tight_layout()
    return fig


def _check_trajectory(plt: Any, c: dict[str, Any]) -> Any:
    """q^l and c^l per layer, theory lines and Monte Carlo points, ordered and chaotic."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for label, col in (("ordered", "C0"), ("chaotic", "C3")):
        if f"{label}_layers" not in c:
            continue
        lay = c[f"{label}_layers"]
        for ax, what in zip(axes, ("q", "c")):
            ax.plot(lay, c[f"{label}_{what}_theory"], "-", color=col, label=f"theory {label}")
            ax.errorbar(lay, c[f"{label}_{what}_mc"], yerr=2 * c[f"{label}_{what}_se"], fmt="o",
                        ms=3, color=col, label=f"MC {label} (±2 se)")  # fmt: skip
            ax.set_xlabel("layer l")
            ax.set_ylabel(f"{what}^l")
    axes[0].legend(fontsize=7)
    return fig


def _check_covariance(plt: Any, c: dict[str, Any]) -> Any:
    """Monte Carlo against theory, entry by entry, with the diagonal."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.errorbar(c["theory"], c["mc"], yerr=2 * c["se"], fmt=".", ms=2, alpha=0.5)
    lo, hi = float(np.min(c["theory"])), float(np.max(c["theory"]))
    ax.plot([lo, hi], [lo, hi], "k-", lw=1)
    ax.set_xlabel("theory Sigma entry")
    ax.set_ylabel("Monte Carlo (±2 se)")
    return fig


def _check_modes(plt: Any, c: dict[str, Any]) -> Any:
    """Mode amplitudes per layer (log axis), theory lines and Monte Carlo points."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for i, f in enumerate(c["modes"]):
        ax.semilogy(c["layers"], np.abs(c["amp_theory"][:, i]), "-", color=f"C{i}",
                    label=f"theory f={f}")  # fmt: skip
        ax.errorbar(c["layers"], np.abs(c["amp_mc"][:, i]), yerr=2 * c["amp_se"][:, i], fmt="o",
                    ms=3, color=f"C{i}", label=f"MC f={f}")  # fmt: skip
    ax.set_xlabel("layer l")
    ax.set_ylabel("mode amplitude")
    ax.legend(fontsize=7)
    return fig


def _check_jacobian(plt: Any, c: dict[str, Any]) -> Any:
    """Top singular values against their limit, or the eigenvalue histogram against theory."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if "eigenvalues" not in c:
        k = np.arange(1, len(c["top"]) + 1)
        ax.errorbar(k, c["top"], yerr=2 * c["top_se"], fmt="o", label="MC top singular values")
        ax.axhline(float(c["sqrt_lambda_max"]), color="k", lw=1,
                   label="sqrt(lambda_max), infinite width")  # fmt: skip
        ax.set_xlabel("rank")
    else:
        ax.hist(c["eigenvalues"], bins=60, density=True, alpha=0.5, label="MC eigenvalues of JJ^T")
        if "cdf_x" in c:
            x, y = np.asarray(c["cdf_x"]), np.asarray(c["cdf_y"])
            ax.plot(0.5 * (x[1:] + x[:-1]), np.diff(y) / np.diff(x), "k-", lw=1,
                    label="free probability")  # fmt: skip
        ax.set_xlabel("eigenvalue")
    ax.legend(fontsize=7)
    return fig


# the figure of each check group (groups not listed have none)
_CHECK_FIGURES = {
    "fixed point": _check_trajectory,
    "trajectory": _check_trajectory,
    "covariance": _check_covariance,
    "modes": _check_modes,
    "jacobian": _check_jacobian,
}


def spectrum_against_samples(
    theory: Any, eigenvalues: Any, ax: Any = None, *, bins: int = 40, title: str | None = None
) -> Any:
    """Sampled eigenvalues of ``J J^T`` (histogram of log10) against a :class:`Spectrum`.

    Bins are logarithmic from ``1e-8 lambda_max`` (or the smallest positive sample) to the
    largest of the samples and ``lambda_max``; both are drawn as densities of ``log10 lambda``.

    Examples
    --------
    >>> import numpy as np, cnnmft
    >>> s = cnnmft.jacobian_spectrum("tanh", 1.05, 2.01e-5, 8, n_points=50)
    >>> eig = np.random.default_rng(0).uniform(0.5, 1.3, size=100)
    >>> spectrum_against_samples(s, eig, title="L = 8").get_title()
    'L = 8'
    """
    ax = _axes(ax, (4.0, 3.4))
    eig = np.sort(np.asarray(eigenvalues, dtype=float).ravel())
    lam_max = float(theory.lambda_max)
    positive = eig[eig > 0]
    lo = max(lam_max * 1e-8, positive.min() if positive.size else 1e-12)
    edges = np.logspace(np.log10(lo), np.log10(max(eig.max(), lam_max) * 1.05), bins)
    ax.hist(
        eig,
        bins=edges,
        weights=np.full(eig.size, 1.0 / eig.size) / np.diff(np.log10(edges)).mean(),
        alpha=0.4,
        label="Monte Carlo",
    )
    lam = np.asarray(theory.lam, dtype=float)
    order = np.argsort(lam)
    lam = lam[order]
    dens = np.asarray(theory.density, dtype=float)[order] * lam * np.log(10.0)
    ok = lam > 0
    ax.semilogx(lam[ok], dens[ok], "k", lw=1.2, label="free probability")
    ax.set_xlabel(r"$\lambda$")
    if title:
        ax.set_title(title, fontsize=9)
    return ax
