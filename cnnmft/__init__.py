"""cnnmft: the mean-field theory of deep convolutional networks at initialisation.

After Xiao, Bahri, Sohl-Dickstein, Schoenholz and Pennington, "Dynamical Isometry and a Mean
Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural Networks"
(ICML 2018). The theory the code follows is stated in ``docs/theory.md``. ``import cnnmft``
loads neither torch, matplotlib nor dask. Documented submodules beyond this page:
``cnnmft.pytorch`` (extra ``torch``), ``cnnmft.sweeps`` (extra ``distributed``),
``cnnmft.plotting`` (every figure), ``cnnmft.network`` (layer lists of real CNNs),
``cnnmft.montecarlo`` and ``cnnmft.conventions``.
"""

# ruff: noqa: I001  (imports are grouped by concept, in the order of the paper, not sorted)

from importlib.metadata import PackageNotFoundError, version

# Results and their status codes
from cnnmft.results import CriticalPoint, FixedPoint, Result, Status, status_counts, status_names

# Activations and Gaussian expectations
from cnnmft import gaussian
from cnnmft.activations import (
    Activation,
    available_activations,
    get_activation,
    register_activation,
)

# Fixed points and the order-chaos phase diagram
from cnnmft.meanfield import c_map, critical_point, critical_sigma_w2, fixed_point, q_map
from cnnmft.phase import PhaseDiagram, phase_diagram

# Depth scales and the trainable depth
from cnnmft.meanfield import depth_scale, trainable_depth

# Fourier modes and variance profiles
from cnnmft.fourier import (
    ModeDepthScales,
    kernel_offsets,
    linearized_spectrum,
    mode_depth_scales,
    mode_eigenvalues,
    variance_profile,
)

# The CNN covariance map
from cnnmft.covariance import CovarianceResult, covariance_map, propagate_covariance
from cnnmft import network
from cnnmft.network import NetworkResult, propagate_network

# The input-output Jacobian spectrum
from cnnmft.spectrum import (
    JacobianMoments,
    Spectrum,
    d2_law,
    jacobian_moments,
    jacobian_spectrum,
    universal_spectrum,
)

# Kernels: orthogonal and Gaussian, and framework conventions
from cnnmft import conventions
from cnnmft.orthogonal import (
    block_orthogonal,
    conv_singular_values,
    delta_orthogonal,
    gaussian_kernel,
    haar_orthogonal,
    tap_energy,
    tunable_orthogonal,
)

# Monte Carlo on a numpy CNN
from cnnmft import montecarlo
from cnnmft.montecarlo import circular_conv, jacobian_singular_values, mode_decay, simulate

# Checks of the theory against simulation
from cnnmft import checks

# Threads for numba, BLAS and torch
from cnnmft._threads import get_num_threads, limit_threads, set_num_threads

try:
    __version__ = version("cnnmft")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

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
