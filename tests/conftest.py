import importlib
import os

import numpy as np
import pytest

# Make hypothesis deterministic and patient with first-call numba compilation.
try:
    from hypothesis import settings

    settings.register_profile("cnnmft", deadline=None, max_examples=40, derandomize=True)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "cnnmft"))
except ImportError:  # pragma: no cover
    pass


_importorskip = pytest.importorskip


def _importorskip_no_own_modules(modname, *args, **kwargs):
    """``pytest.importorskip`` that never hides a broken cnnmft module behind a skip.

    A cnnmft module is skipped only when an optional third-party stack it needs (torch, dask,
    ...) is missing; any other import error of our own code fails the test.
    """
    if modname.split(".")[0] != "cnnmft":
        return _importorskip(modname, *args, **kwargs)
    try:
        return importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] != "cnnmft":
            pytest.skip(f"{modname} needs the optional module {exc.name}")
        raise


pytest.importorskip = _importorskip_no_own_modules


@pytest.fixture
def rng():
    return np.random.default_rng(20180605)
