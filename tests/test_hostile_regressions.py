"""Regressions of wrong answers and crashes at the edges of the theory API.

Every number is checked against an independent reference: mpmath quadrature of the Gaussian
integrals, closed forms (relu, erf), or exact identities (mass and mean of a spectral law).
"""

import math

import mpmath as mp
import numpy as np
import pytest

from cnnmft import (
    Status,
    block_orthogonal,
    critical_sigma_w2,
    delta_orthogonal,
    fixed_point,
    gaussian_kernel,
    haar_orthogonal,
    jacobian_spectrum,
    linearized_spectrum,
    phase_diagram,
    propagate_covariance,
    variance_profile,
)

mp.mp.dps = 20


def _gelu(x):
    return x * mp.erfc(-x / mp.sqrt(2)) / 2


def _dgelu(x):
    return mp.erfc(-x / mp.sqrt(2)) / 2 + x * mp.npdf(x)


def _d2gelu(x):
    return mp.npdf(x) * (2 - x * x)


def _dswish(x):
    s = 1 / (1 + mp.exp(-x))
    return s * (1 + x * (1 - s))


def _swish(x):
    return x / (1 + mp.exp(-x))


def _softplus(x):
    return mp.log1p(mp.exp(x))


def _gauss(f, q):
    """E[f(sqrt(q) z)] by mpmath quadrature (split at 0)."""
    s = mp.sqrt(q)
    g = lambda z: f(s * z) * mp.npdf(z)  # noqa: E731
    return mp.quad(g, [-12, -3, 0, 3, 12])


def _g(phi, sw, sb, q):
    """q-map minus identity, by mpmath."""
    return sw * _gauss(lambda u: phi(u) ** 2, q) + sb - q


@pytest.mark.parametrize(
    "name, phi, sw",
    [pytest.param("gelu", _gelu, 2.3025, marks=pytest.mark.slow), ("swish", _swish, 2.4)],
)
def test_bistable_q_map_reports_both_attractors(name, phi, sw):
    sb = 0.05
    fp = fixed_point(name, sw, sb)
    assert fp.status == Status.BISTABLE
    low, rep, high = float(fp.q_star_low), float(fp.q_unstable), float(fp.q_star_high)
    assert 0 < low < rep and math.isinf(high)
    for q in (low, rep):  # both are fixed points of the map (reference quadrature)
        assert abs(_g(phi, sw, sb, q)) < 1e-11 * q
    # low attracts (g changes sign + -> -), rep repels (- -> +), q^l diverges above rep
    eps = 1e-4
    assert _g(phi, sw, sb, low * (1 - eps)) > 0 > _g(phi, sw, sb, low * (1 + eps))
    assert _g(phi, sw, sb, rep * (1 - eps)) < 0 < _g(phi, sw, sb, rep * (1 + eps))
    assert _g(phi, sw, sb, 10.0) > 0 and _g(phi, sw, sb, 1e4) > 0
    # q_star is the fate of q^0 = 1
    if rep > 1:
        assert abs(float(fp.q_star) / low - 1) < 1e-12
    else:
        assert math.isinf(float(fp.q_star))


def test_bistable_elements_match_scalar_calls():
    sw = np.array([1.5, 2.3025, 2.45, 3.5])
    fp = fixed_point("gelu", sw, 0.05)
    for i, s in enumerate(sw):
        one = fixed_point("gelu", float(s), 0.05)
        assert int(fp.status[i]) == int(one.status)
        np.testing.assert_array_equal(fp.q_star[i], one.q_star)
        np.testing.assert_array_equal(fp.q_unstable[i], one.q_unstable)


def test_critical_point_of_gelu_is_flagged_unstable():
    cp = critical_sigma_w2("gelu", 0.05)
    sw, q = float(cp.sigma_w2), float(cp.q_star)
    # independent check that it is a critical point: chi_1 = 1 and q = sw E[phi^2] + sb
    assert abs(sw * _gauss(lambda u: _dgelu(u) ** 2, q) - 1) < 1e-10
    assert abs(_g(_gelu, sw, 0.05, q)) < 1e-10
    # d/dq E[phi^2] = E[phi'^2 + phi phi''] (Stein's lemma twice)
    chi_q = sw * _gauss(lambda u: _dgelu(u) ** 2 + _gelu(u) * _d2gelu(u), q)
    assert chi_q > 1.05  # the fixed point repels
    assert cp.status == Status.UNSTABLE
    assert abs(float(cp.chi_q) - float(chi_q)) < 1e-8


def test_critical_point_of_tanh_stays_stable_and_ok():
    cp = critical_sigma_w2("tanh", 0.05)
    assert cp.status == Status.OK and float(cp.chi_q) < 1


def test_erf_at_huge_weight_variance():
    sw, sb = 1e300, 0.05

    def v(q):
        return 2 / mp.pi * mp.asin(2 * q / (1 + 2 * q))

    q = mp.mpf(sw)
    for _ in range(20):
        q = sw * v(q) + sb
    fp = fixed_point("erf", sw, sb)
    assert fp.status == Status.OK
    assert abs(float(fp.q_star) / float(q) - 1) < 1e-13


@pytest.mark.parametrize("sw, sb", [(1.5, 0.1), (1.999999, 1e-12), (0.5, 0.0), (1e-300, 3.0)])
def test_relu_fixed_points_are_exact(sw, sb):
    want = float(mp.mpf(sb) / (1 - mp.mpf(sw) / 2))  # q* = sb / (1 - sw/2), from the floats
    fp = fixed_point("relu", sw, sb)
    assert fp.status in (Status.OK, Status.ZERO)
    assert abs(float(fp.q_star) - want) <= 1e-12 * want


@pytest.mark.parametrize("act, sw", [("relu", 2.0), ("softplus", 2.0), ("relu", 2.5)])
def test_no_finite_fixed_point_is_infinite(act, sw):
    fp = fixed_point(act, sw, 1e-12)
    assert fp.status == Status.INFINITE and math.isinf(float(fp.q_star))


def test_softplus_map_has_no_fixed_point_at_two():
    # the reason: E[softplus(u)^2] > q/2 for every q, so q^l grows without bound
    for q in (1.0, 1e3, 1e6):
        assert _gauss(lambda u: _softplus(u) ** 2, q) - q / 2 > 0


@pytest.mark.parametrize("sw", [1e13, 1e20, 1e200])
def test_bounded_activation_has_finite_fixed_point(sw):
    sb = 0.05

    def deficit(q):  # 1 - E[tanh^2] = E[sech^2(sqrt(q) z)], no cancellation
        s = mp.sqrt(q)
        return mp.quad(lambda x: mp.sech(x) ** 2 * mp.npdf(x / s), [-60, 0, 60]) / s

    q = mp.mpf(sw)
    for _ in range(10):
        q = sw * (1 - deficit(q)) + sb
    fp = fixed_point("tanh", sw, sb)
    assert fp.status == Status.OK
    assert abs(float(fp.q_star) / float(q) - 1) < 1e-13


@pytest.mark.parametrize(
    "act, d1", [pytest.param("gelu", _dgelu, marks=pytest.mark.slow), ("swish", _dswish)]
)
def test_jacobian_spectrum_with_a_zero_of_phi_prime(act, d1):
    sw, sb, L = 1.5, 0.1, 16
    s = jacobian_spectrum(act, sw, sb, L, n_points=400)
    assert s.status == Status.OK
    mu1 = _gauss(lambda u: d1(u) ** 2, s.q_star)
    m1 = float((sw * mu1) ** L)
    assert abs(s.m1 / m1 - 1) < 1e-9
    # the density integrates to 1 and its mean is m1 (exact identity of the law)
    assert abs(s.mass - 1) < 1e-6
    assert abs(np.sum(s.quad_weights * s.density * s.lam) / m1 - 1) < 1e-5
    assert set(np.unique(s.point_status)) <= {int(x) for x in Status}


def test_jacobian_spectrum_tiny_q_star_is_bounded_and_right():
    sw, L, q = 1.5, 16, 1e-12
    s = jacobian_spectrum("tanh", sw, 0.1, L, q_star=q, n_points=64)
    assert s.status == Status.INACCURATE  # reported as a point mass: the law is 1e-12 wide
    d = lambda u: mp.sech(u) ** 4  # noqa: E731
    mu1 = _gauss(d, q)
    var = _gauss(lambda u: (d(u) - mu1) ** 2, q)
    assert abs(s.m1 / float((sw * mu1) ** L) - 1) < 1e-13
    assert abs(s.spread / float(L * var / mu1**2) - 1) < 1e-3


def test_phase_diagram_with_huge_bias_variance():
    pd = phase_diagram("tanh", [1.0, 2.0], [0.05, 1e100])
    # at q* ~ sigma_b2 = 1e100: E[sech^4(sqrt(q) z)] = (4/3) / sqrt(2 pi q) (1 + O(1/q))
    want = 0.75 * math.sqrt(2 * math.pi * 1e100)
    assert abs(pd.critical_sigma_w2[1] / want - 1) < 1e-10
    assert np.all(pd.status == Status.OK)


def test_linearized_spectrum_refuses_a_map_without_fixed_point():
    with pytest.raises(ValueError, match="no finite fixed point.*INFINITE"):
        linearized_spectrum("relu", 3.0, 0.1, [0.25, 0.5, 0.25], 6)


@pytest.mark.parametrize("bad", [2.0 + 1j, np.array([2.0 + 0j]), True, "2.0"])
def test_non_real_variances_are_refused(bad):
    with pytest.raises(TypeError, match="`sigma_w2`"):
        fixed_point("tanh", bad, 0.05)


@pytest.mark.parametrize(
    "make",
    [
        lambda: delta_orthogonal((20000, 20000, 3, 3)),
        lambda: block_orthogonal((20000, 20000, 3, 3)),
        lambda: gaussian_kernel((20000, 20000, 3, 3)),
        lambda: haar_orthogonal(10**6),
    ],
)
def test_kernels_too_large_for_memory_are_refused_up_front(make):
    with pytest.raises(ValueError, match=r"needs about [0-9.e+]+ GiB of memory"):
        make()


def test_ctrl_c_is_interrupted_not_maxiter():
    x = np.random.default_rng(1).normal(size=(6, 2))

    def stop(done, total):
        if done >= 2:
            raise KeyboardInterrupt

    res = propagate_covariance(
        x, "tanh", 1.5, 0.05, variance_profile("uniform", 3, ndim=1), 20, progress=stop
    )
    assert res.status == Status.INTERRUPTED and res.interrupted


def test_hermite_coefficients_match_mpmath():
    from cnnmft._kernels import _act, _maps, _quad

    q, kmax = 0.7, 40
    ws = _quad.new_workspace()
    coef = np.zeros(kmax + 1)
    v, s = _maps.hermite_coef(_act.TANH, q, kmax, ws, coef)
    for k, tol in ((0, 1e-13), (1, 1e-13), (3, 1e-13), (7, 1e-13), (15, 1e-10)):
        he = lambda z, k=k: mp.hermite(k, z / mp.sqrt(2)) / mp.mpf(2) ** (mp.mpf(k) / 2)  # noqa: E731
        want = _gauss_z(lambda z: mp.tanh(mp.sqrt(q) * z) * he(z)) / mp.sqrt(mp.factorial(k))
        # the rule stops at |z| = 9, which He_15 z^15-weighs: 1e-11 at k = 15 (1e-14 on a_k^2)
        assert abs(coef[k] - float(want)) < tol
    # the Parseval total E[phi^2] from the same rule, and sum a_k^2 below it (the tail)
    ephi2 = float(_gauss(lambda u: mp.tanh(u) ** 2, q))
    assert abs(v - ephi2) < 1e-14
    assert 0 <= ephi2 - np.sum(coef**2) < 1e-8
    sq = np.zeros(kmax + 1)
    _maps.hermite_sq(_act.TANH, q, kmax, ws, sq)
    np.testing.assert_array_equal(sq, coef**2)


def _gauss_z(f):
    return mp.quad(lambda z: f(z) * mp.npdf(z), [-12, -3, 0, 3, 12])


def test_erf_covariance_at_huge_weight_variance():
    # the arcsine closed form of the covariance engine must not overflow at q ~ 1e300
    sw, sb = 1e300, 0.05
    x = np.ones((4, 1))
    res = propagate_covariance(
        x, "erf", sw, sb, variance_profile("delta", 1, ndim=1), 2, layers="all"
    )
    q1 = mp.mpf(sw) * 1 + sb  # layer 1: sigma_w2 x x^T / c_in + sigma_b2
    q2 = sw * 2 / mp.pi * mp.asin(2 * q1 / (1 + 2 * q1)) + sb
    assert res.status == Status.OK
    got = np.asarray(res.cov)[list(res.layers).index(2)]
    # was sigma_b2 = 0.05 (overflow); the arcsine at x = 1 - O(eps) still costs ~1e-8
    np.testing.assert_allclose(got, float(q2), rtol=5e-8)
