"""Every figure of the library, in one place.

Each function imports matplotlib inside itself, draws from a result's own numbers (it computes
no theory), returns the Axes (or the Figure for multi-panel figures) and never chooses a
backend: only the command line and the report call ``matplotlib.use``. Result objects draw
themselves through :func:`plot_result` (``result.plot(ax=None)``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["plot_result"]


def _axes(ax=None, figsize=(5.5, 4.0)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def generic(result: Any, ax=None, **kwargs):
    """Line plot of a result's main 1-D array fields against its first coordinate."""
    ax = _axes(ax)
    dims, coords, data = result._grid()
    x = next(iter(coords.values()))
    for name, y in data.items():
        y = np.asarray(y, dtype=float)
        if y.ndim == 1:
            ax.plot(x, y, ".-", label=name)
    ax.set_xlabel(dims[0])
    ax.set_title(type(result).__name__)
    ax.legend(fontsize=8)
    return ax


_REGISTRY: dict = {}


def plot_result(result: Any, ax=None, **kwargs):
    """Draw `result` with the function registered for its type; returns the Axes."""
    if not dataclasses.is_dataclass(result):
        raise TypeError(f"`result` must be a cnnmft result object, got {type(result).__name__}")
    fn = _REGISTRY.get(type(result).__name__, generic)
    return fn(result, ax=ax, **kwargs)
