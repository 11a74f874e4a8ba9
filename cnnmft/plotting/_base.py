"""Shared pieces of the plotting package: new axes, NaN-safe arrays, saving with numbers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cnnmft._util import atomic_write, write_table

QUANTITIES = ("q_star", "c_star", "chi_1", "chi_q", "chi_c", "xi_q", "xi_c")


def _axes(ax: Any = None, figsize=(5.5, 4.0)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _finite(y):
    y = np.asarray(y, dtype=float)
    return np.where(np.isfinite(y), y, np.nan)


def save_figure(
    fig: Any,
    path: str | os.PathLike,
    numbers: Mapping[str, Any] | None = None,
    *,
    dpi: int = 110,
    close: bool = True,
) -> Path:
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

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> _ = ax.plot([1, 2, 3], [1, 4, 9])
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> save_figure(fig, d / "squares.png", {"x": [1, 2, 3], "y": [1, 4, 9]}).name
    'squares.png'
    >>> sorted(p.name for p in d.iterdir())
    ['squares.csv', 'squares.png']
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
