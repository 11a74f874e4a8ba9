"""Collection rules for ``python -m pytest --doctest-modules cnnmft``.

The docstring examples of optional stacks are collected only where the stack is installed:
``cnnmft/pytorch`` needs torch, ``cnnmft/sweeps.py`` needs dask.distributed. Examples that draw
figures pick the headless backend themselves; figures are closed after every test.
"""

import importlib.util
import sys

import pytest

collect_ignore_glob = []
if importlib.util.find_spec("torch") is None:
    collect_ignore_glob += ["cnnmft/pytorch/*"]
if importlib.util.find_spec("distributed") is None:
    collect_ignore_glob += ["cnnmft/sweeps.py"]


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test or a docstring example opened (matplotlib warns past 20)."""
    yield
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close("all")
