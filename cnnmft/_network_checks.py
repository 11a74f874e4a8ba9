r"""Checks of :mod:`cnnmft.network` against Monte Carlo, as rows of the validation table.

Each function ``check_*(quick=True, rng=0)`` simulates finite numpy CNNs of a layer list
(:func:`cnnmft.network.simulate_network`, with its backward pass) and compares them with the
exact infinite-width recursions of :func:`cnnmft.network.propagate_network`; the result is a
:class:`cnnmft.checks.CheckResult` with the largest ``|z|`` and its Bonferroni threshold
(Student-t, ``n_draws - 1`` degrees of freedom), as every check of :mod:`cnnmft.checks`.
:data:`NETWORK_CHECKS` maps their names to them.
"""

from __future__ import annotations

import numpy as np

from cnnmft import _checks_base as _checks
from cnnmft.network import (
    Act,
    AvgPool,
    Conv,
    Dense,
    GlobalAvgPool,
    propagate_network,
    simulate_network,
)

__all__ = [
    "NETWORK_CHECKS",
    "check_network_forward",
    "check_network_gradients",
    "check_network_ntk",
]


def _sizes(quick):
    return {"width": 96, "draws": 24} if quick else {"width": 192, "draws": 100}


def _inputs(rng, shape, c=3, B=2):
    return np.random.default_rng(rng).normal(size=(B,) + shape + (c,))


def _verdict(res, theory, mean, se, dof):
    ok = _checks._zcheck(res, theory, mean, se, dof=dof)
    res.status = _checks.Verdict.PASS if ok else _checks.Verdict.FAIL
    res.curves = {"theory": np.ravel(theory), "mc": np.ravel(mean), "se": np.ravel(se)}
    return res


def _flat(c, B):
    d = (c.ndim - 2) // 2
    P = int(np.prod(c.shape[2 : 2 + d]))
    return c.reshape(B, B, P, P).transpose(0, 2, 1, 3).reshape(B * P, B * P)


def check_network_forward(quick=True, rng=0):
    """Zero padding, strides, pooling: per-layer covariances (borders included) and the NNGP."""
    net = [
        Conv(3, 2, "zero", 1.6, 0.1),
        Act("tanh"),
        AvgPool(2),
        Conv(3, 1, "zero", 1.4, 0.05, "binomial"),
        Act("tanh"),
        GlobalAvgPool(),
        Dense(1.0, 0.1),
    ]
    res = _checks.CheckResult(
        "network_forward",
        "network",
        "tanh 2D 8x8, zero-padded stride-2 conv, 2x2 average pool, zero-padded conv, global "
        "average pool, readout: every pixel-pair covariance and the NNGP kernel vs "
        "propagate_network",
    )
    s = _sizes(quick)
    x = _inputs(rng, (8, 8))
    th = propagate_network(x, net)
    sim = simulate_network(x, net, s["width"], n_draws=s["draws"], n_readout=32, rng=rng)
    theory = [th.nngp.ravel()] + [_flat(th.cov[k], 2).ravel() for k in sim.cov]
    mean = [sim.nngp.ravel()] + [sim.cov[k].ravel() for k in sim.cov]
    se = [sim.nngp_stderr.ravel()] + [sim.cov_stderr[k].ravel() for k in sim.cov]
    return _verdict(
        res, np.concatenate(theory), np.concatenate(mean), np.concatenate(se), s["draws"] - 1
    )


def check_network_gradients(quick=True, rng=0):
    """Backward recursion: E||df/dW||^2, E||df/db||^2 and E||df/dh||^2 of every layer."""
    net = [
        Conv(3, 1, "zero", 2.0, 0.0),
        Act("relu"),
        Conv(3, 2, "zero", 2.0, 0.0),
        Act("relu"),
        Conv(3, 1, "zero", 2.0, 0.0),
        Act("relu"),
        GlobalAvgPool(),
        Dense(1.0, 0.0),
    ]
    res = _checks.CheckResult(
        "network_gradients",
        "network",
        "relu 2D 9x9 at the He point, zero padding, a stride-2 layer, global average pool and "
        "readout: per-layer squared gradient norms (weights, biases, pre-activations) vs the "
        "backward mean-field recursion",
    )
    s = _sizes(quick)
    x = _inputs(rng, (9, 9), B=1)
    th = propagate_network(x, net)
    sim = simulate_network(x, net, s["width"], n_draws=s["draws"], n_readout=4, rng=rng)
    pairs = [
        (th.weight_grad2, sim.weight_grad2, sim.weight_grad2_stderr),
        (th.bias_grad2, sim.bias_grad2, sim.bias_grad2_stderr),
        (th.preact_grad2, sim.preact_grad2, sim.preact_grad2_stderr),
    ]
    return _verdict(
        res, *(np.concatenate([np.ravel(p[i]) for p in pairs]) for i in range(3)), s["draws"] - 1
    )


def check_network_ntk(quick=True, rng=0):
    """Neural tangent kernel of a mixed-padding erf CNN against the empirical NTK."""
    net = [
        Conv(3, 2, "same_tf", 1.7, 0.05),
        Act("erf"),
        Conv(3, 1, "circular", 1.3, 0.1),
        Act("erf"),
        Conv(3, 1, "valid", 1.5, 0.0),
        Act("erf"),
        GlobalAvgPool(),
        Dense(1.2, 0.05),
    ]
    res = _checks.CheckResult(
        "network_ntk",
        "network",
        "erf 2D 8x8, TF-SAME stride 2, circular and valid convolutions, global average pool, "
        "readout: NTK (NTK parametrisation) of 3 inputs vs the empirical NTK of finite networks",
    )
    s = _sizes(quick)
    x = _inputs(rng, (8, 8), B=3)
    th = propagate_network(x, net)
    sim = simulate_network(x, net, s["width"], n_draws=s["draws"], n_readout=4, rng=rng)
    iu = np.triu_indices(3)
    return _verdict(res, th.ntk_out[iu], sim.ntk[iu], sim.ntk_stderr[iu], s["draws"] - 1)


NETWORK_CHECKS = {
    "network_forward": check_network_forward,
    "network_gradients": check_network_gradients,
    "network_ntk": check_network_ntk,
}
"""Registry: name -> ``f(quick, rng) -> CheckResult`` (for :data:`cnnmft.checks.CHECKS`)."""
