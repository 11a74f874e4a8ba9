r"""Every figure of the library, in one place.

Each function here imports matplotlib inside itself, draws from the numbers a result already
holds (it computes no theory: curves that need the mean-field maps are passed in by the
caller), returns the Axes (or the Figure for a multi-panel figure) and never chooses a backend:
only the command line and the report call ``matplotlib.use``. Results draw themselves through
:func:`plot_result`, so ``result.plot(ax: Any = None)`` works for every result type;
:func:`save_figure` writes a figure together with its numbers.

This package imports nothing from :mod:`cnnmft` but the plumbing in :mod:`cnnmft._util`, so any
layer may use it. Its figures live in ``_theory`` (mean field, modes, covariances, spectra),
``_simulation`` (Monte Carlo, checks) and ``_training`` (training, trainability); all are
re-exported here.

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
from collections.abc import Callable
from typing import Any

import numpy as np

from cnnmft.plotting._base import QUANTITIES, _axes, _finite, save_figure
from cnnmft.plotting._simulation import (
    check,
    jacobian_sample,
    mode_decay,
    simulation,
    spectrum_against_samples,
)
from cnnmft.plotting._theory import (
    correlation_snapshots,
    covariance,
    critical_line,
    decay_against_prediction,
    fixed_point,
    jacobian_moments,
    mode_depth_scales,
    phase_diagram,
    sorted_values,
    spectrum,
    sv_densities,
    sv_density,
    tap_profiles,
)
from cnnmft.plotting._training import modewise, train_result, trainability, training

__all__ = [
    "QUANTITIES",
    "check",
    "correlation_snapshots",
    "covariance",
    "critical_line",
    "decay_against_prediction",
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
    "sorted_values",
    "spectrum",
    "spectrum_against_samples",
    "sv_densities",
    "sv_density",
    "tap_profiles",
    "train_result",
    "trainability",
    "training",
]


# ------------------------------------------------------------------------------------------------
# dispatch
# ------------------------------------------------------------------------------------------------


def generic(result: Any, ax: Any = None) -> Any:
    """Line plot of a result's main array fields against its first coordinate.

    The fallback of :func:`plot_result` for result types without a figure of their own. When
    no field labels the first axis, the first numeric field of the main shape is the abscissa.

    Examples
    --------
    >>> import dataclasses, numpy as np
    >>> from cnnmft.results import Result
    >>> @dataclasses.dataclass(frozen=True)
    ... class Curve(Result):
    ...     x: np.ndarray
    ...     y: np.ndarray
    >>> generic(Curve(np.arange(3.0), np.arange(3.0) ** 2)).get_xlabel()
    'x'
    """
    ax = _axes(ax)
    dims, coords, data = result._grid()
    numeric = {
        k: a for k, (vdims, a) in data.items() if a.dtype.kind in "biuf" and vdims[:1] == dims[:1]
    }  # fields along axis 0
    xname = dims[0]
    x = np.asarray(next(iter(coords.values())))
    if xname.startswith("index_") and len(numeric) >= 2 and next(iter(numeric.values())).ndim == 1:
        xname = next(iter(numeric))
        x = numeric.pop(xname)
    for name, y in numeric.items():
        ax.plot(x, _finite(y).reshape(x.size, -1), ".-", label=name)
    ax.set_xlabel(xname)
    ax.set_title(type(result).__name__)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return ax


def _as_axes(fn):
    def draw(result, ax: Any = None, **kwargs):
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
    """Make `fn(result, ax: Any = None, **kwargs)` the figure of results of class `type_name`.

    For result types defined outside this module's knowledge (new modules register their own
    figure function, which should live here too).

    Examples
    --------
    >>> import dataclasses, numpy as np
    >>> from cnnmft.results import Result
    >>> @dataclasses.dataclass(frozen=True)
    ... class Histogram(Result):
    ...     counts: np.ndarray
    >>> register("Histogram", lambda r, ax=None: sorted_values({"counts": r.counts}, ax=ax))
    >>> Histogram(np.array([3, 1, 2])).plot().get_lines()[0].get_ydata().tolist()
    [1.0, 2.0, 3.0]
    """
    _REGISTRY[str(type_name)] = fn


def plot_result(result: Any, ax: Any = None, **kwargs) -> Any:
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

    Examples
    --------
    >>> import cnnmft
    >>> fp = cnnmft.fixed_point("tanh", [1.0, 2.0], 0.05)
    >>> plot_result(fp).get_xlabel() == fp.plot().get_xlabel()
    True
    """
    if not dataclasses.is_dataclass(result) or isinstance(result, type):
        raise TypeError(f"`result` must be a cnnmft result object, got {type(result).__name__}")
    fn = _REGISTRY.get(type(result).__name__, generic)
    return fn(result, ax=ax, **kwargs)
