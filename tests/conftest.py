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


@pytest.fixture
def rng():
    return np.random.default_rng(20180605)
