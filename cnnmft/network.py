r"""Mean-field theory of the CNNs people build: padding, strides, pooling, readout, gradients, NTK.

A network is a list of layers (:class:`Conv`, :class:`Act`, :class:`AvgPool`,
:class:`GlobalAvgPool`, :class:`Dense`), e.g. the :class:`~cnnmft.pytorch.VanillaCNN` stem, its
deep block, global average pooling and the linear readout::

    [Conv(3, 1, "zero", sw2, sb2), Act("tanh"), Conv(3, 2, "zero", sw2, sb2), Act("tanh"),
     Conv(3, 1, "circular", sw2, sb2), Act("tanh"), ..., GlobalAvgPool(), Dense(1.0, 0.0)]

:func:`propagate_network` runs three exact recursions over every (input, pixel) pair of a batch,
in the infinite-channel limit with i.i.d. Gaussian weights ``N(0, sigma_w2 v_beta / c_in)``
(docs/theory.md, sections 2.2 and 2.5):

* forward, the second moments: a linear layer maps the second moment ``K`` of its input to the
  pre-activation covariance ``Sigma = sum_t w_t E_t K E_t^T + sigma_b2`` (``E_t``: which input
  pixel tap ``t`` of each output pixel reads, nothing on zero padding; ``w_t = sigma_w2 v_t``),
  an activation maps ``Sigma`` to ``K = E[phi(h) phi(h')]`` (:mod:`cnnmft._network_expect`);
  the readout's covariance is the NNGP kernel;
* the neural tangent kernel (NTK parametrisation: each parameter scaled by its initial standard
  deviation): ``Theta = Sigma + sum_t w_t E_t Theta_x E_t^T`` at a linear layer,
  ``Theta_x = E[phi'(h) phi'(h')] * Theta`` at an activation;
* backward, under gradient independence, the channel-summed gradient second moment
  ``G = sum_c E[df/dy_c df/dy'_c]`` at every layer output: ``G_in = sum_t w_t E_t^T G E_t``
  through a linear layer, ``G_h = E[phi' phi'] * G_x`` through an activation, ``G = 1`` at the
  readout.
  Per linear layer, ``E||df/dW||_F^2 = c_in sum_t <G, E_t K E_t^T>`` (standard
  parametrisation), ``E||df/db||^2 = <G, 1>``, and the NTK is the sum of ``<G, Sigma>`` over
  layers (checked as an identity in the tests).

Everything is dense over the ``B P`` (input, pixel) pairs: exact for any padding, stride, profile
and input, position-dependent variances near zero-padded borders included; cost per layer
``O(taps (B P)^2)`` plus the bivariate expectations.

References
----------
.. [1] L. Xiao, Y. Bahri, J. Sohl-Dickstein, S. S. Schoenholz, J. Pennington, "Dynamical Isometry
   and a Mean Field Theory of CNNs", ICML 2018, arXiv:1806.05393.
.. [2] A. Jacot, F. Gabriel, C. Hongler, "Neural Tangent Kernel", NeurIPS 2018, arXiv:1806.07572.
.. [3] R. Novak et al., "Bayesian Deep Convolutional Networks with Many Channels are Gaussian
   Processes", ICLR 2019, arXiv:1810.05148.
"""

from __future__ import annotations

from cnnmft._network_engine import NetworkResult, conv_stack, propagate_network
from cnnmft._network_layers import PADDINGS, Act, AvgPool, Conv, Dense, GlobalAvgPool
from cnnmft._network_mc import NetworkSimulation, simulate_network
from cnnmft._network_theory import (
    BackwardModeDepthScales,
    BorderEffects,
    Prediction,
    backward_mode_depth_scales,
    border_effects,
    predict,
    vanilla_network,
)

__all__ = [
    # layers
    "Conv",
    "Act",
    "AvgPool",
    "GlobalAvgPool",
    "Dense",
    "PADDINGS",
    "conv_stack",
    "vanilla_network",
    # exact infinite-width recursions
    "propagate_network",
    "NetworkResult",
    "backward_mode_depth_scales",
    "BackwardModeDepthScales",
    # predictions and border effects
    "predict",
    "Prediction",
    "border_effects",
    "BorderEffects",
    # Monte Carlo
    "simulate_network",
    "NetworkSimulation",
]
