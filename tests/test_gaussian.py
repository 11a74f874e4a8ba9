"""Gaussian expectations against closed forms and mpmath adaptive quadrature."""

import math

import numpy as np
import pytest

import cnnmft
from cnnmft import gaussian
from tests import _references as R

QS = [1e-6, 1e-3, 0.1, 1.0, 7.5, 100.0, 1e4]


@pytest.mark.parametrize("q", QS)
def test_relu_erf_linear_closed_forms(q):
    assert gaussian.expect("relu", q) == pytest.approx(q / 2, rel=1e-13)
    assert gaussian.expect("relu", q, (1, 1)) == pytest.approx(0.5, rel=1e-13)
    assert gaussian.expect("linear", q) == pytest.approx(q, rel=1e-13)
    assert gaussian.expect("erf", q) == pytest.approx(
        2 / math.pi * math.asin(2 * q / (1 + 2 * q)), rel=1e-12
    )
    assert gaussian.expect("erf", q, (1, 1)) == pytest.approx(
        4 / math.pi / math.sqrt(1 + 4 * q), rel=1e-12
    )
    assert gaussian.expect("hard_tanh", q) == pytest.approx(R.hard_tanh_var(q), rel=1e-12)
    assert gaussian.expect("hard_tanh", q, (1, 1)) == pytest.approx(
        math.erf(1 / math.sqrt(2 * q)), rel=1e-12
    )


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softplus", "gelu", "swish", "selu"])
@pytest.mark.parametrize("q", [1e-4, 0.5, 30.0, 1e4])
def test_smooth_activations_against_mpmath(name, q):
    ref = float(R.mp_expect(name, q))
    got = float(gaussian.expect(name, q))
    assert got == pytest.approx(ref, rel=1e-12, abs=1e-300)
    ref1 = float(R.mp_expect(name, q, lambda p, d: d * d))
    assert float(gaussian.expect(name, q, (1, 1))) == pytest.approx(ref1, rel=1e-12)


def test_moments_of_dphi2_tanh():
    q = 0.025921
    mu2 = float(R.mp_expect("tanh", q, lambda p, d: d**4))
    assert float(gaussian.expect("tanh", q, (1, 1, 1, 1))) == pytest.approx(mu2, rel=1e-12)


@pytest.mark.parametrize("c", [-1.0, -0.999999, -0.3, 0.0, 0.5, 0.99, 0.9999999, 1.0])
@pytest.mark.parametrize("q1,q2", [(1.0, 1.0), (0.01, 3.0), (50.0, 0.2), (1e4, 1e4)])
def test_bivariate_closed_forms(q1, q2, c):
    q12 = c * math.sqrt(q1 * q2)
    assert float(gaussian.expect2("erf", q1, q2, c)) == pytest.approx(
        R.erf_map(q1, q2, q12), rel=1e-11, abs=1e-14
    )
    if abs(c) < 1:
        assert float(gaussian.expect2("erf", q1, q2, c, (1, 1))) == pytest.approx(
            R.erf_dmap(q1, q2, q12), rel=1e-10
        )
    assert float(gaussian.expect2("relu", q1, q2, c)) == pytest.approx(
        R.relu_map(q1, q2, c), rel=1e-11, abs=1e-14 * math.sqrt(q1 * q2)
    )
    assert float(gaussian.expect2("relu", q1, q2, c, (1, 1))) == pytest.approx(
        R.step_map(c), rel=1e-11, abs=1e-14
    )
    assert float(gaussian.expect2("linear", q1, q2, c)) == pytest.approx(q12, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize(
    "q1,q2,c",
    [(1.0, 1.0, 0.5), (2.0, 0.5, 0.999), (10.0, 10.0, 0.3), (0.5, 0.5, -0.9), (1e3, 2e3, 0.8)],
)
def test_bivariate_tanh_and_hard_tanh_against_adaptive_quadrature(q1, q2, c):
    for name in ("tanh", "hard_tanh"):
        ref = float(R.sp_expect2(name, q1, q2, c))
        assert float(gaussian.expect2(name, q1, q2, c)) == pytest.approx(ref, rel=1e-11, abs=1e-14)
    ref = float(R.sp_expect2("tanh", q1, q2, c, which=(1, 1)))
    assert float(gaussian.expect2("tanh", q1, q2, c, (1, 1))) == pytest.approx(
        ref, rel=1e-10, abs=1e-14
    )


def test_bivariate_limit_c_to_one_is_the_variance():
    # c = 1 with q1 = q2 is E[phi^2]: a different code path (no inner smoothing)
    for name in ("tanh", "gelu", "hard_tanh", "selu"):
        for q in (0.3, 4.0):
            assert float(gaussian.expect2(name, q, q, 1.0)) == pytest.approx(
                float(R.mp_expect(name, q)), rel=1e-12
            )


def test_broadcasting_and_shapes():
    out = gaussian.expect2("erf", np.ones((3, 1)), 1.0, np.linspace(0, 0.9, 4))
    assert out.shape == (3, 4)
    assert gaussian.expect("tanh", np.ones((2, 5))).shape == (2, 5)


@pytest.mark.parametrize(
    "bad,match", [(dict(q=-1.0), "`q`"), (dict(q=np.nan), "`q`"), (dict(q=np.inf), "`q`")]
)
def test_bad_input_expect(bad, match):
    with pytest.raises(ValueError, match=match):
        gaussian.expect("tanh", **bad)


def test_bad_input_messages():
    with pytest.raises(ValueError, match=r"`c` must be in \[-1, 1\]; got 1.5"):
        gaussian.expect2("tanh", 1.0, 1.0, 1.5)
    with pytest.raises(ValueError, match="`act` must be one of"):
        gaussian.expect("tahn", 1.0)
    with pytest.raises(ValueError, match="`orders`"):
        gaussian.expect("tanh", 1.0, (3,))
    with pytest.raises(ValueError, match="cannot be broadcast"):
        gaussian.expect2("tanh", np.ones(3), np.ones(4), 0.5)


def test_custom_activation_matches_closed_form():
    act = cnnmft.register_activation(
        "my_erf_gauss", math.erf, kinks=(), odd=True, bounded=True, overwrite=True
    )
    for q in (0.1, 2.0):
        assert float(gaussian.expect(act, q)) == pytest.approx(
            2 / math.pi * math.asin(2 * q / (1 + 2 * q)), rel=1e-12
        )
        # derivative by finite differences: a few digits lost, as documented
        assert float(gaussian.expect(act, q, (1, 1))) == pytest.approx(
            4 / math.pi / math.sqrt(1 + 4 * q), rel=1e-8
        )
    assert float(gaussian.expect2(act, 1.0, 2.0, 0.4)) == pytest.approx(
        R.erf_map(1.0, 2.0, 0.4 * math.sqrt(2.0)), rel=1e-11
    )
