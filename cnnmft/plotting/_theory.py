"""Figures of the theory: fixed points, phase diagrams, Fourier modes, covariances, spectra."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnmft.plotting._base import QUANTITIES, _axes, _finite

# ------------------------------------------------------------------------------------------------
# mean field: fixed points, phase diagrams, critical lines
# ------------------------------------------------------------------------------------------------


def phase_diagram(pd: Any, quantity: str = "xi_c", ax: Any = None, *, log: bool = True) -> Any:
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

    Examples
    --------
    >>> import cnnmft
    >>> pd = cnnmft.phase_diagram("erf", [1.0, 1.5, 2.0], [0.0, 0.1])
    >>> phase_diagram(pd, "chi_1").get_title()
    'erf: chi_1'
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
    im = ax.pcolormesh(
        pd.sigma_w2, pd.sigma_b2, _finite(z), shading="auto", norm=norm, cmap="viridis"
    )
    plt.colorbar(im, ax=ax, label=quantity)
    line = np.asarray(pd.critical_sigma_w2, dtype=float)
    ok = np.isfinite(line)
    ax.plot(
        line[ok], np.asarray(pd.sigma_b2)[ok], "w--", lw=1.5, label=r"critical line $\chi_1 = 1$"
    )
    ax.set_xlim(np.min(pd.sigma_w2), np.max(pd.sigma_w2))
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel(r"$\sigma_b^2$")
    ax.set_title(f"{pd.activation}: {quantity}")
    if ok.any():
        ax.legend(loc="upper left", fontsize=8)
    return ax


def fixed_point(fp: Any, ax: Any = None, *, quantities: Sequence[str] = ("chi_1", "chi_q")) -> Any:
    """Slopes (or any `quantities`) of a :class:`FixedPoint` against ``sigma_w2``.

    A 0-d fixed point draws one marker per quantity; a 2-D one draws one line per column of
    ``sigma_b2``.

    Examples
    --------
    >>> import cnnmft
    >>> fp = cnnmft.fixed_point("tanh", [1.0, 2.0, 3.0], 0.05)
    >>> [line.get_label() for line in fixed_point(fp).get_lines()][:2]
    ['chi_1', 'chi_q']
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


def critical_line(cp: Any, ax: Any = None, *, label: str | None = None) -> Any:
    """The order-chaos line ``chi_1 = 1`` of a :class:`CriticalPoint` in the variance plane.

    Examples
    --------
    >>> import cnnmft
    >>> cp = cnnmft.critical_point("erf", [0.1, 0.5, 1.0])
    >>> critical_line(cp).get_lines()[0].get_xdata().size
    3
    """
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


def mode_depth_scales(
    mds: Any, ax: Any = None, *, label: str | None = None, cap: float = 1e4
) -> Any:
    """Depth scale of every spatial Fourier mode, sorted (slowest first), on a log axis.

    Infinite depth scales (the zero mode at criticality) are drawn at `cap`.

    Examples
    --------
    >>> import cnnmft
    >>> v = cnnmft.variance_profile("uniform", 3)
    >>> r = cnnmft.mode_depth_scales("tanh", 1.5, 0.05, v, (4, 4))
    >>> mode_depth_scales(r).get_lines()[0].get_ydata().size  # one point per mode of the 4x4 grid
    16
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


def covariance(res: Any, ax: Any = None) -> Any:
    """Mean pre-activation variance per computed layer of a :class:`CovarianceResult`.

    Examples
    --------
    >>> import numpy as np, cnnmft
    >>> v = cnnmft.variance_profile("uniform", 3)
    >>> res = cnnmft.propagate_covariance(np.ones((4, 4, 1)), "tanh", 1.5, 0.05, v, 3, layers="all")
    >>> covariance(res).get_lines()[0].get_xdata().tolist()
    [0, 1, 2, 3]
    """
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


def spectrum(sp: Any, ax: Any = None, *, log: bool = True) -> Any:
    """Density of the eigenvalues ``lambda`` of ``J J^T`` from a :class:`Spectrum`.

    With `log`, the density of ``log10 lambda`` on a log axis (spectra that span decades).

    Examples
    --------
    >>> import cnnmft
    >>> s = cnnmft.jacobian_spectrum("tanh", 1.05, 2.01e-5, 4, n_points=50)
    >>> spectrum(s).get_xscale()
    'log'
    """
    ax = _axes(ax, (6.5, 4.0))
    lam = np.asarray(sp.lam, dtype=float)
    order = np.argsort(lam)
    lam, dens = lam[order], np.asarray(sp.density, dtype=float)[order]
    label = f"{sp.weights}, L = {sp.depth}"
    if log:
        ok = lam > 0
        ax.semilogx(
            lam[ok],
            dens[ok] * lam[ok] * np.log(10.0),
            "-" if sp.weights == "orthogonal" else "--",
            label=label,
        )
        ax.set_ylabel(r"density of $\log_{10}\lambda$")
    else:
        ax.plot(lam, dens, label=label)
        ax.set_ylabel("density")
    ax.set_xlabel(r"eigenvalue $\lambda$ of $JJ^T$ (singular value$^2$)")
    ax.legend(fontsize=7)
    return ax


def sv_densities(results: Sequence[Any], ax: Any = None) -> Any:
    """Several :class:`Spectrum` densities of ``log10 lambda`` on one axis; returns the Figure.

    Examples
    --------
    >>> import cnnmft
    >>> spectra = [cnnmft.jacobian_spectrum("tanh", 1.05, 2.01e-5, L, n_points=50)
    ...            for L in (4, 16)]
    >>> len(sv_densities(spectra).axes[0].get_lines())
    2
    """
    ax = _axes(ax, (6.5, 4.0))
    for s in results:
        spectrum(s, ax=ax, log=True)
    return ax.figure


def jacobian_moments(m: Any, ax: Any = None) -> Any:
    """Mean and variance of the ``J J^T`` spectrum per layer count from :class:`JacobianMoments`.

    Draws ``m1`` and ``variance`` against their index (depth) on a log axis.

    Examples
    --------
    >>> import cnnmft
    >>> m = cnnmft.jacobian_moments("tanh", 1.05, 2.01e-5, 16)
    >>> [line.get_label() for line in jacobian_moments(m).get_lines()]
    ['m1', 'variance']
    """
    ax = _axes(ax)
    for name in ("m1", "variance"):
        y = np.atleast_1d(_finite(getattr(m, name)))
        ax.semilogy(np.arange(1, y.size + 1), np.abs(y), "o-", label=name)
    ax.set_xlabel("point")
    ax.set_title("Jacobian spectrum moments")
    ax.legend(fontsize=8)
    return ax


def sv_density(
    results: Sequence[Any], ax: Any = None, *, log: bool = True, floor: float = 1e-4
) -> Any:
    """Densities of the singular values of ``J`` for several :class:`Spectrum`, one line each.

    With `log` the density axis is logarithmic and cut at `floor` times the highest peak, so a
    spike (a deep, isometric network) does not flatten the others.

    Examples
    --------
    >>> import cnnmft
    >>> s = cnnmft.jacobian_spectrum("tanh", 1.05, 2.01e-5, 16, n_points=50)
    >>> sv_density([s]).get_yscale()
    'log'
    """
    ax = _axes(ax, (6.5, 4.0))
    top = 0.0
    for s in results:
        order = np.argsort(s.sv)
        y = np.asarray(s.sv_density, dtype=float)[order]
        ax.plot(np.asarray(s.sv)[order], y, label=f"{s.weights}, L = {s.depth}")
        top = max(top, float(np.nanmax(y)) if y.size else 0.0)
    if log and top > 0:
        ax.set_yscale("log")
        ax.set_ylim(top * floor, top * 2)
    ax.set_xlabel("singular value of J")
    ax.set_ylabel("density" + (" (log scale)" if log else ""))
    ax.legend(fontsize=8)
    return ax


def sorted_values(
    values: dict[str, Any],
    ax: Any = None,
    *,
    xlabel: str = "quantile",
    ylabel: str = "value",
    title: str | None = None,
) -> Any:
    """Each named array sorted and drawn against its quantile (e.g. operator singular values).

    Line widths decrease along the dict so that curves lying on top of each other stay visible.

    Examples
    --------
    >>> ax = sorted_values({"a": [3.0, 1.0, 2.0]}, ylabel="singular value")
    >>> ax.get_lines()[0].get_ydata().tolist()
    [1.0, 2.0, 3.0]
    """
    ax = _axes(ax, (7.0, 4.0))
    n = max(len(values), 1)
    for i, (label, v) in enumerate(values.items()):
        s = np.sort(np.asarray(v, dtype=float).ravel())
        ax.plot(
            np.linspace(0, 1, s.size), s, lw=1.5 + 3.5 * (n - 1 - i) / max(n - 1, 1), label=label
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend()
    return ax


def tap_profiles(
    offsets: Any, measured: dict[str, Any], stderr: dict[str, Any], expected: dict[str, Any]
) -> Any:
    """One panel per kernel kind: measured tap energies (bars, ±2 se) against the profile v.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> v = {"binomial": np.array([0.25, 0.5, 0.25])}
    >>> fig = tap_profiles([-1, 0, 1], v, {"binomial": np.zeros(3)}, v)
    >>> len(fig.axes)
    1
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(measured), figsize=(2.6 * len(measured), 3), sharey=True, squeeze=False
    )
    for ax, key in zip(axes[0], measured):
        ax.bar(
            offsets,
            measured[key],
            yerr=2 * np.asarray(stderr[key]),
            color="C0",
            alpha=0.7,
            label="measured",
        )
        ax.plot(offsets, expected[key], "ko", label="mean-field v")
        ax.set_title(key.replace("_", " "))
        ax.set_xlabel("tap offset")
    axes[0, 0].set_ylabel("fraction of kernel energy")
    axes[0, 0].legend()
    fig.tight_layout()
    return fig


def correlation_snapshots(
    res: Any, layers: Sequence[int], pixel: tuple[int, ...] | None = None
) -> Any:
    """Correlation of one pixel with every pixel at chosen layers of a :class:`CovarianceResult`.

    Needs a single 2-D input (``cov`` of shape ``(n_layers, H, W, H, W)``) recorded at the chosen
    `layers`. `pixel` defaults to the centre.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, cnnmft
    >>> x = np.random.default_rng(0).normal(size=(5, 5, 2))
    >>> v = cnnmft.variance_profile("uniform", 3)
    >>> res = cnnmft.propagate_covariance(x, "tanh", 1.76, 0.05, v, 4, layers=[1, 4])
    >>> len(correlation_snapshots(res, [1, 4]).axes)
    2
    """
    import matplotlib.pyplot as plt

    cov = np.asarray(res.cov)
    stored = [int(x) for x in np.asarray(res.layers)]
    h, w = cov.shape[1:3]
    p = pixel or (h // 2, w // 2)
    fig, axes = plt.subplots(1, len(layers), figsize=(2.0 * len(layers), 2.3), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        cv = cov[stored.index(int(layer))]
        corr = cv[p] / np.sqrt(cv[p + p] * np.einsum("ijij->ij", cv))
        ax.imshow(corr, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_title(f"layer {layer}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def decay_against_prediction(
    layers: Any,
    measured: Any,
    predicted: Any,
    ax: Any = None,
    *,
    label: str = "measured",
    prediction_label: str = "prediction",
    ylabel: str = "amplitude",
) -> Any:
    """A decaying quantity per layer (points, log axis) against its predicted exponential.

    Examples
    --------
    >>> ax = decay_against_prediction([1, 2, 3], [1.0, 0.5, 0.26], [1.0, 0.5, 0.25])
    >>> ax.get_yscale()
    'log'
    """
    ax = _axes(ax, (6.0, 3.6))
    ax.semilogy(layers, np.maximum(np.asarray(measured, dtype=float), 1e-300), ".", label=label)
    ax.semilogy(layers, predicted, "--", label=prediction_label)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return ax
