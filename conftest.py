"""Collection rules for ``python -m pytest --doctest-modules cnnmft``.

The docstring examples of optional stacks are collected only where the stack is installed:
``cnnmft/pytorch`` needs torch, ``cnnmft/sweeps.py`` needs dask.distributed. Examples that draw
figures pick the headless backend themselves.
"""

import importlib.util

collect_ignore_glob = []
if importlib.util.find_spec("torch") is None:
    collect_ignore_glob += ["cnnmft/pytorch/*"]
if importlib.util.find_spec("distributed") is None:
    collect_ignore_glob += ["cnnmft/sweeps.py"]
