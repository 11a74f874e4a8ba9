"""cnnmft: the mean-field theory of deep convolutional networks at initialisation.

After Xiao, Bahri, Sohl-Dickstein, Schoenholz and Pennington, "Dynamical Isometry and a Mean
Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural Networks"
(ICML 2018). The theory the code follows is stated in ``docs/theory.md``. Documented submodules
beyond this page: ``cnnmft.pytorch`` (extra ``torch``), ``cnnmft.sweeps`` (extra
``distributed``), ``cnnmft.plotting`` (every figure), ``cnnmft.network`` (layer lists of real
CNNs), ``cnnmft.montecarlo`` and ``cnnmft.conventions``.

The names are loaded lazily (Scientific Python SPEC 1): ``import cnnmft`` imports no numpy,
scipy or numba, and a name's module is imported the first time the name (or the submodule,
``cnnmft.phase``) is used, so ``cnnmft --help`` is instant.

Examples
--------
>>> import cnnmft
>>> round(float(cnnmft.critical_sigma_w2("tanh", 0.05).sigma_w2), 5)
1.76095
>>> cnnmft.results.Status.OK.name
'OK'
"""

# ruff: noqa: I001  (imports are grouped by concept, in the order of the paper, not sorted)

import importlib
from typing import TYPE_CHECKING

# The one place in the package that imports by name: tests/test_layering.py checks that this
# table is a literal, that every module defines its names, and that it lists exactly the names
# of the TYPE_CHECKING block below (what type checkers and editors read) and of __all__.
# A name equal to its module's name is the submodule itself.
# fmt: off
_LAZY = {
    "__version__": "_version",
    # Results and their status codes
    "CriticalPoint": "results", "FixedPoint": "results", "Result": "results",
    "Status": "results", "status_counts": "results", "status_names": "results",
    # Activations and Gaussian expectations
    "gaussian": "gaussian", "Activation": "activations", "available_activations": "activations",
    "get_activation": "activations", "register_activation": "activations",
    # Fixed points and the order-chaos phase diagram
    "c_map": "meanfield", "critical_point": "meanfield", "critical_sigma_w2": "meanfield",
    "fixed_point": "meanfield", "q_map": "meanfield",
    "PhaseDiagram": "phase", "phase_diagram": "phase",
    # Depth scales and the trainable depth
    "depth_scale": "meanfield", "trainable_depth": "meanfield",
    # Fourier modes and variance profiles
    "ModeDepthScales": "fourier", "kernel_offsets": "fourier", "linearized_spectrum": "fourier",
    "mode_depth_scales": "fourier", "mode_eigenvalues": "fourier", "variance_profile": "fourier",
    # The CNN covariance map
    "CovarianceResult": "covariance", "covariance_map": "covariance",
    "propagate_covariance": "covariance",
    "network": "network", "NetworkResult": "network", "propagate_network": "network",
    # The input-output Jacobian spectrum
    "JacobianMoments": "spectrum", "Spectrum": "spectrum", "d2_law": "spectrum",
    "jacobian_moments": "spectrum", "jacobian_spectrum": "spectrum",
    "universal_spectrum": "spectrum",
    # Kernels: orthogonal and Gaussian, and framework conventions
    "conventions": "conventions", "block_orthogonal": "orthogonal",
    "conv_singular_values": "orthogonal", "delta_orthogonal": "orthogonal",
    "gaussian_kernel": "orthogonal", "haar_orthogonal": "orthogonal",
    "tap_energy": "orthogonal", "tunable_orthogonal": "orthogonal",
    # Monte Carlo on a numpy CNN
    "montecarlo": "montecarlo", "circular_conv": "montecarlo",
    "jacobian_singular_values": "montecarlo", "mode_decay": "montecarlo",
    "simulate": "montecarlo",
    # Checks of the theory against simulation
    "checks": "checks",
    # Threads for numba, BLAS and torch
    "get_num_threads": "_threads", "limit_threads": "_threads", "set_num_threads": "_threads",
}
# public submodules, also reachable as attributes (`cnnmft.phase.QUANTITIES`)
_SUBMODULES = (
    "activations", "checks", "cli", "commands", "conventions", "covariance", "fourier",
    "gaussian", "meanfield", "montecarlo", "network", "orthogonal", "phase", "plotting",
    "pytorch", "report", "results", "spectrum", "sweeps",
)
# fmt: on

if TYPE_CHECKING:  # the same names, in the same order, for type checkers and editors
    from ._version import __version__
    from .results import CriticalPoint, FixedPoint, Result, Status, status_counts, status_names
    from . import gaussian
    from .activations import Activation, available_activations, get_activation
    from .activations import register_activation
    from .meanfield import c_map, critical_point, critical_sigma_w2, fixed_point, q_map
    from .phase import PhaseDiagram, phase_diagram
    from .meanfield import depth_scale, trainable_depth
    from .fourier import ModeDepthScales, kernel_offsets, linearized_spectrum
    from .fourier import mode_depth_scales, mode_eigenvalues, variance_profile
    from .covariance import CovarianceResult, covariance_map, propagate_covariance
    from . import network
    from .network import NetworkResult, propagate_network
    from .spectrum import JacobianMoments, Spectrum, d2_law, jacobian_moments
    from .spectrum import jacobian_spectrum, universal_spectrum
    from . import conventions
    from .orthogonal import block_orthogonal, conv_singular_values, delta_orthogonal
    from .orthogonal import gaussian_kernel, haar_orthogonal, tap_energy, tunable_orthogonal
    from . import montecarlo
    from .montecarlo import circular_conv, jacobian_singular_values, mode_decay, simulate
    from . import checks
    from ._threads import get_num_threads, limit_threads, set_num_threads


def __getattr__(name):
    """Import the module of `name` on first use and keep the name here (PEP 562)."""
    module = _LAZY.get(name, name if name in _SUBMODULES else None)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    mod = importlib.import_module(f"{__name__}.{module}")
    value = mod if name == module else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


# fmt: off
__all__ = [
    "__version__",
    "CriticalPoint", "FixedPoint", "Result", "Status", "status_counts", "status_names",
    "gaussian", "Activation", "available_activations", "get_activation", "register_activation",
    "c_map", "critical_point", "critical_sigma_w2", "fixed_point", "q_map", "PhaseDiagram",
    "phase_diagram",
    "depth_scale", "trainable_depth",
    "ModeDepthScales", "kernel_offsets", "linearized_spectrum", "mode_depth_scales",
    "mode_eigenvalues", "variance_profile",
    "CovarianceResult", "covariance_map", "propagate_covariance", "network", "NetworkResult",
    "propagate_network",
    "JacobianMoments", "Spectrum", "d2_law", "jacobian_moments", "jacobian_spectrum",
    "universal_spectrum",
    "conventions", "block_orthogonal", "conv_singular_values", "delta_orthogonal",
    "gaussian_kernel", "haar_orthogonal", "tap_energy", "tunable_orthogonal",
    "montecarlo", "circular_conv", "jacobian_singular_values", "mode_decay", "simulate",
    "checks",
    "get_num_threads", "limit_threads", "set_num_threads",
]
# fmt: on
