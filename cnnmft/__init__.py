"""cnnmft: the mean-field theory of deep convolutional networks, complete, exact and fast.

After Xiao, Bahri, Sohl-Dickstein, Schoenholz and Pennington, "Dynamical Isometry and a Mean
Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural Networks"
(ICML 2018). ``import cnnmft`` loads neither torch nor matplotlib; the PyTorch backend is
``cnnmft.pytorch`` (extra ``torch``).
"""

__version__ = "0.1.0"

# --- plumbing and engine (issue 2) -------------------------------------------------------------
from cnnmft import gaussian
from cnnmft.activations import (
    Activation,
    available_activations,
    get_activation,
    register_activation,
)

# --- fully-connected mean field and phase diagrams (issue 2) ----------------------------------
from cnnmft.meanfield import (
    c_map,
    critical_point,
    critical_sigma_w2,
    depth_scale,
    fixed_point,
    q_map,
    trainable_depth,
)
from cnnmft.phase import PhaseDiagram, phase_diagram
from cnnmft.results import CriticalPoint, FixedPoint, Status

__all__ = [
    "__version__",
    "Activation", "available_activations", "get_activation", "register_activation",
    "CriticalPoint", "FixedPoint", "Status",
    "c_map", "critical_point", "critical_sigma_w2", "depth_scale", "fixed_point", "q_map",
    "trainable_depth", "PhaseDiagram", "phase_diagram", "gaussian",
]

# --- other modules: each engineer appends an import line and extends __all__ below ------------

# --- orthogonal and Gaussian kernels, gain conventions (issue 4) ------------------------------
from cnnmft import conventions  # noqa: E402
from cnnmft.orthogonal import (  # noqa: E402
    block_orthogonal,
    conv_singular_values,
    delta_orthogonal,
    gaussian_kernel,
    haar_orthogonal,
    tap_energy,
    tunable_orthogonal,
)

__all__ += [
    "conventions", "block_orthogonal", "conv_singular_values", "delta_orthogonal",
    "gaussian_kernel", "haar_orthogonal", "tap_energy", "tunable_orthogonal",
]

# --- numpy CNN Monte Carlo and theory-vs-simulation validation (issue 5) ----------------------
from cnnmft import montecarlo, validate  # noqa: E402
from cnnmft.montecarlo import (  # noqa: E402
    circular_conv,
    jacobian_singular_values,
    mode_decay,
    simulate,
)

__all__ += ["montecarlo", "validate", "circular_conv", "jacobian_singular_values", "mode_decay",
            "simulate"]

# --- convolutional mean field: Fourier modes and the covariance map (issue 3) -----------------
from cnnmft.covariance import CovarianceResult, covariance_map, propagate_covariance  # noqa: E402
from cnnmft.fourier import (  # noqa: E402
    ModeDepthScales,
    linearized_spectrum,
    mode_depth_scales,
    mode_eigenvalues,
    variance_profile,
)

__all__ += ["CovarianceResult", "covariance_map", "propagate_covariance", "ModeDepthScales",
            "linearized_spectrum", "mode_depth_scales", "mode_eigenvalues", "variance_profile"]

# --- free-probability Jacobian spectra (issue 6) -----------------------------------------------
from cnnmft.spectrum import (  # noqa: E402
    JacobianMoments,
    Spectrum,
    jacobian_moments,
    jacobian_spectrum,
    universal_spectrum,
)

__all__ += ["JacobianMoments", "Spectrum", "jacobian_moments", "jacobian_spectrum",
            "universal_spectrum"]

# --- one thread policy for numba, BLAS and torch (docs/performance.md) --------------------------
from cnnmft._threads import get_num_threads, limit_threads, set_num_threads  # noqa: E402

__all__ += ["get_num_threads", "limit_threads", "set_num_threads"]
