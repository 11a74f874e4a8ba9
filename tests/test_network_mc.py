"""cnnmft.network against Monte Carlo: finite numpy CNNs with a backward pass (SE tolerances)."""

import numpy as np
import pytest
from scipy.stats import t as student_t

from cnnmft.network import (
    Act,
    AvgPool,
    Conv,
    Dense,
    GlobalAvgPool,
    propagate_network,
    simulate_network,
)


def _zcrit(m, n_draws, alpha=1e-3):
    return float(student_t.isf(alpha / (2 * m), n_draws - 1))


def _z(theory, mean, se):
    theory, mean, se = (np.ravel(a) for a in (theory, mean, se))
    keep = se > 0
    return np.abs(theory[keep] - mean[keep]) / se[keep]


NET = [
    Conv(3, 2, "zero", 1.6, 0.1),
    Act("tanh"),
    AvgPool(2),
    Conv(3, 1, "zero", 1.4, 0.05, "binomial"),
    Act("tanh"),
    GlobalAvgPool(),
    Dense(1.0, 0.1),
]


def test_forward_nngp_gradients_and_ntk_match_monte_carlo():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 8, 8, 3))
    th = propagate_network(x, NET)
    n = 48
    mc = simulate_network(x, NET, 128, n_draws=n, n_readout=32, rng=7)
    assert mc.status == 0
    checks = {
        "nngp": _z(th.nngp, mc.nngp, mc.nngp_stderr),
        "ntk": _z(th.ntk_out, mc.ntk, mc.ntk_stderr),
        "weight_grad2": _z(th.weight_grad2, mc.weight_grad2, mc.weight_grad2_stderr),
        "bias_grad2": _z(th.bias_grad2, mc.bias_grad2, mc.bias_grad2_stderr),
        "preact_grad2": _z(th.preact_grad2, mc.preact_grad2, mc.preact_grad2_stderr),
    }
    B = 2
    for key in mc.cov:
        c = th.cov[key]
        P = int(np.prod(c.shape[2 : 2 + (c.ndim - 2) // 2]))
        flat = c.reshape(B, B, P, P).transpose(0, 2, 1, 3).reshape(B * P, B * P)
        checks["cov" + key] = _z(flat, mc.cov[key], mc.cov_stderr[key])
    m = sum(z.size for z in checks.values())
    zc = _zcrit(m, n)
    worst = {k: float(z.max()) for k, z in checks.items()}
    assert max(worst.values()) < zc, (worst, zc)
    # the gradient statistics are not trivially satisfied: the errors are small
    pos = th.weight_grad2 > 0
    rel = np.abs(th.weight_grad2[pos] - mc.weight_grad2[pos]) / th.weight_grad2[pos]
    assert rel.max() < 0.1


def test_relu_deep_zero_padded_gradient_norms():
    """Deeper, relu, stride-2 zero padding: the per-layer gradient norms (backward recursion)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1, 9, 9, 2))
    net = [
        Conv(3, 1, "zero", 2.0, 0.0),
        Act("relu"),
        Conv(3, 2, "zero", 2.0, 0.0),
        Act("relu"),
        Conv(3, 1, "zero", 2.0, 0.0),
        Act("relu"),
        Conv(3, 1, "zero", 2.0, 0.0),
        Act("relu"),
        GlobalAvgPool(),
        Dense(1.0, 0.0),
    ]
    th = propagate_network(x, net)
    n = 40
    mc = simulate_network(x, net, 96, n_draws=n, n_readout=8, rng=11)
    z = np.concatenate(
        [
            _z(th.weight_grad2, mc.weight_grad2, mc.weight_grad2_stderr),
            _z(th.preact_grad2, mc.preact_grad2, mc.preact_grad2_stderr),
            _z(th.ntk_out, mc.ntk, mc.ntk_stderr),
        ]
    )
    assert z.max() < _zcrit(z.size, n), z


@pytest.mark.slow
def test_wide_network_many_draws():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 10, 10, 3))
    net = [
        Conv(3, 2, "same_tf", 1.7, 0.05),
        Act("erf"),
        Conv(3, 1, "circular", 1.3, 0.1),
        Act("erf"),
        Conv(3, 2, "valid", 1.5, 0.0),
        Act("erf"),
        GlobalAvgPool(),
        Dense(1.2, 0.05),
    ]
    th = propagate_network(x, net)
    n = 200
    mc = simulate_network(x, net, 256, n_draws=n, n_readout=64, rng=13)
    z = np.concatenate(
        [
            _z(th.nngp, mc.nngp, mc.nngp_stderr),
            _z(th.ntk_out, mc.ntk, mc.ntk_stderr),
            _z(th.weight_grad2, mc.weight_grad2, mc.weight_grad2_stderr),
        ]
    )
    assert z.max() < _zcrit(z.size, n), z
