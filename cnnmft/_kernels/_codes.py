"""Status codes for the numba kernels, as plain ints.

The kernels may not import :mod:`cnnmft.results`, so they read the values of
:class:`cnnmft.results.Status` from here; ``tests/test_hostile_codes.py`` asserts that every
constant equals the enum member of the same name.
"""

OK = 0
ZERO = 1
INFINITE = 2
MARGINAL = 3
BISTABLE = 4
UNSTABLE = 5
INACCURATE = 6
MAXITER = -2
NONFINITE = -3
NO_SOLUTION = -4
INTERRUPTED = -5

NAMES = (
    "OK",
    "ZERO",
    "INFINITE",
    "MARGINAL",
    "BISTABLE",
    "UNSTABLE",
    "INACCURATE",
    "MAXITER",
    "NONFINITE",
    "NO_SOLUTION",
    "INTERRUPTED",
)
