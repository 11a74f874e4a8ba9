"""Hostile inputs to the public theory API: every call ends in a right answer, a Status that
says what went wrong, or a ValueError/TypeError naming the argument.

Property-based (hypothesis, small example counts) and table-driven. The right answers are
checked against closed forms (erf, relu) and exact identities.
"""

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnmft
from cnnmft import Status
from cnnmft.gaussian import expect, expect2

ALL_STATUS = {int(s) for s in Status}
BAD_VALUES = [
    math.nan,
    math.inf,
    -math.inf,
    -1.0,
    1 + 2j,
    True,
    "1.5",
    None,
    [[1.0], [2.0, 3.0]],
    np.array([1.0, np.nan]),
    np.array([1 + 0j]),
    object(),
]
_FAST = settings(
    max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def _named_error(excinfo, names):
    """The message names one of the arguments in backticks."""
    msg = str(excinfo.value)
    assert any(f"`{n}`" in msg or f"`{n}[" in msg for n in names), msg
    return msg


def _check_statuses(result):
    for f in ("status", "point_status"):
        if hasattr(result, f):
            vals = np.unique(np.asarray(getattr(result, f)))
            assert set(int(v) for v in vals) <= ALL_STATUS, (f, vals)


# ---------------------------------------------------------------------------------------------
# table-driven: every bad value for every variance argument is refused with its name

SCALAR_CALLS = {
    "fixed_point": (lambda w, b: cnnmft.fixed_point("tanh", w, b)),
    "critical_point": (lambda w, b: cnnmft.critical_point("tanh", w)),
    "critical_sigma_w2": (lambda w, b: cnnmft.critical_sigma_w2("tanh", b)),
    "q_map": (lambda w, b: cnnmft.q_map("tanh", 1.0, w, b)),
    "c_map": (lambda w, b: cnnmft.c_map("tanh", 0.5, 1.0, w, b)),
    "trainable_depth": (lambda w, b: cnnmft.trainable_depth("tanh", w, b)),
    "phase_diagram": (lambda w, b: cnnmft.phase_diagram("tanh", w, b, critical_line=False)),
    "mode_depth_scales": (
        lambda w, b: cnnmft.mode_depth_scales("tanh", w, b, [0.25, 0.5, 0.25], 5)
    ),
    "linearized_spectrum": (
        lambda w, b: cnnmft.linearized_spectrum("tanh", w, b, [0.25, 0.5, 0.25], 4)
    ),
    "jacobian_spectrum": (lambda w, b: cnnmft.jacobian_spectrum("tanh", w, b, 4, n_points=16)),
    "jacobian_moments": (lambda w, b: cnnmft.jacobian_moments("tanh", w, b, 4)),
}
NAMES = ("sigma_w2", "sigma_b2", "q_star")
# the variance arguments each call takes: critical_sigma_w2 has no sigma_w2 (it solves for
# it) and critical_point no sigma_b2 (it solves for it), so those pairs are not cases at all
_TAKES = {"critical_sigma_w2": ("b",), "critical_point": ("w",)}
VARIANCE_CASES = [
    (call, which) for call in sorted(SCALAR_CALLS) for which in _TAKES.get(call, ("w", "b"))
]


@pytest.mark.parametrize("call, which", VARIANCE_CASES, ids=[f"{c}-{w}" for c, w in VARIANCE_CASES])
@pytest.mark.parametrize("bad", BAD_VALUES, ids=repr)
def test_bad_variances_are_refused_by_name(call, which, bad):
    f = SCALAR_CALLS[call]
    args = (bad, 0.05) if which == "w" else (1.5, bad)
    with pytest.raises((ValueError, TypeError)) as ei:
        f(*args)
    _named_error(ei, NAMES)


@pytest.mark.parametrize("call", sorted(SCALAR_CALLS))
def test_empty_arrays(call):
    f = SCALAR_CALLS[call]
    try:
        out = f(np.zeros(0), np.zeros(0))
    except (ValueError, TypeError) as e:
        assert re.search(r"`\w+`", str(e)), str(e)
        return
    if hasattr(out, "q_star"):
        assert np.asarray(out.q_star).size == 0


def test_wrong_shapes_name_the_arguments():
    with pytest.raises(ValueError, match="`sigma_w2`.*`sigma_b2`"):
        cnnmft.fixed_point("tanh", np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="`v`"):
        cnnmft.mode_eigenvalues(np.ones((2, 2, 2, 2)) / 16, (4, 4, 4, 4))
    with pytest.raises(ValueError, match="kernel larger than the grid"):
        cnnmft.mode_eigenvalues([0.2, 0.2, 0.2, 0.2, 0.2], 3)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "3", 10**9])
def test_bad_depth(bad):
    with pytest.raises((ValueError, TypeError)) as ei:
        cnnmft.jacobian_spectrum("tanh", 1.5, 0.05, bad)
    _named_error(ei, ["depth"])


@pytest.mark.parametrize("v", [[-0.1, 1.1], [0.0, 0.0], [np.nan, 1.0], "nonsense", [1 + 1j, 0]])
def test_bad_profiles(v):
    with pytest.raises((ValueError, TypeError)) as ei:
        cnnmft.variance_profile(v, 2, ndim=1) if isinstance(v, str) else cnnmft.variance_profile(v)
    _named_error(ei, ["v", "kind"])


@pytest.mark.parametrize(
    "make, arg",
    [
        (lambda: cnnmft.delta_orthogonal((4, 8, 3)), None),
        (lambda: cnnmft.delta_orthogonal((4, 2, 0)), "shape[2] (kernel size)"),
        (lambda: cnnmft.block_orthogonal((4, 4, 3), sigma_w2=-1.0), "sigma_w2"),
        (lambda: cnnmft.block_orthogonal((4, 4, 3), rank="x"), "rank"),
        (lambda: cnnmft.gaussian_kernel((4, 4, 3), sigma_w2=math.nan), "sigma_w2"),
        (lambda: cnnmft.gaussian_kernel((4, 4, 3), v=[0.5, 0.5]), "v"),
        (lambda: cnnmft.gaussian_kernel((4, 4, 3), sigma_w2=1j), "sigma_w2"),
        (lambda: cnnmft.conv_singular_values(np.ones((2, 2)), 4), None),
        (lambda: cnnmft.haar_orthogonal(0), "n"),
        (lambda: cnnmft.haar_orthogonal(3, 4), "m"),
        (lambda: cnnmft.delta_orthogonal((10**6, 10**6, 3)), None),
    ],
)
def test_kernel_generators_refuse_bad_requests(make, arg):
    with pytest.raises((ValueError, TypeError)) as ei:
        make()
    if arg is not None:
        assert f"`{arg}`" in str(ei.value), str(ei.value)


@pytest.mark.parametrize("q", [math.nan, -1.0, math.inf, 1j, "1"])
def test_gaussian_expectations_refuse_bad_variances(q):
    with pytest.raises((ValueError, TypeError)) as ei:
        expect("tanh", q)
    _named_error(ei, ["q"])
    with pytest.raises((ValueError, TypeError)) as ei:
        expect2("tanh", q, 1.0, 0.5)
    _named_error(ei, ["q1"])


def test_gaussian_expectations_refuse_bad_orders_and_correlations():
    with pytest.raises((ValueError, TypeError)) as ei:
        expect("tanh", 1.0, orders=(0, 7))
    _named_error(ei, ["orders"])
    with pytest.raises((ValueError, TypeError)) as ei:
        expect2("tanh", 1.0, 1.0, 1.5)
    _named_error(ei, ["c"])


def test_propagate_covariance_argument_validation():
    x = np.ones((6, 2))
    v = cnnmft.variance_profile("uniform", 3, ndim=1)
    for kwargs, name in [
        (dict(sigma_w2=1j), "sigma_w2"),
        (dict(sigma_b2=-1.0), "sigma_b2"),
        (dict(depth=-1), "depth"),
        (dict(x=np.full((6, 2), np.nan)), "x"),
    ]:
        args = dict(x=x, act="tanh", sigma_w2=1.5, sigma_b2=0.05, v=v, depth=3)
        args.update(kwargs)
        with pytest.raises((ValueError, TypeError)) as ei:
            cnnmft.propagate_covariance(**args)
        _named_error(ei, [name])
    with pytest.raises(ValueError):
        cnnmft.covariance_map(np.array([[1.0, 2.0], [0.0, 1.0]]), "tanh", 1.5, 0.05, [1.0])


# ---------------------------------------------------------------------------------------------
# property-based: right answers or statuses over wide ranges, one bad element poisons nothing

log_sw = st.floats(-3.0, 3.0)
log_sb = st.floats(-300.0, 2.0)


def _erf_v(q):
    """E[erf(sqrt(q) z)^2] = (2/pi) asin(2q / (1 + 2q)), written without the cancellation of
    asin near 1 for large q: asin(1 - e) = pi/2 - 2 asin(sqrt(e/2)), e = 1/(1 + 2q)."""
    if q < 1.0:
        return 2.0 / math.pi * math.asin(2.0 * q / (1.0 + 2.0 * q))
    return 1.0 - 4.0 / math.pi * math.asin(math.sqrt(0.5 / (1.0 + 2.0 * q)))


@_FAST
@given(lw=st.floats(-3.0, 300.0), lb=log_sb)
def test_erf_fixed_point_matches_closed_form(lw, lb):
    sw, sb = 10.0**lw, 10.0**lb
    fp = cnnmft.fixed_point("erf", sw, sb)
    _check_statuses(fp)
    q = float(fp.q_star)
    assert fp.status in (Status.OK, Status.MARGINAL) and math.isfinite(q)
    assert abs(sw * _erf_v(q) + sb - q) <= 1e-11 * q


@_FAST
@given(sw=st.floats(0.01, 10.0), lb=log_sb)
def test_relu_fixed_point_closed_form(sw, lb):
    sb = 10.0**lb
    fp = cnnmft.fixed_point("relu", sw, sb)
    if sw < 2.0:
        assert fp.status == Status.OK
        assert abs(float(fp.q_star) / (sb / (1 - sw / 2)) - 1) < 1e-13
    else:
        assert fp.status == Status.INFINITE and math.isinf(float(fp.q_star))


@_FAST
@given(
    act=st.sampled_from(["tanh", "gelu", "swish", "softplus", "selu", "sigmoid"]),
    lw=log_sw,
    lb=st.floats(-12.0, 2.0),
)
def test_fixed_point_outcome_is_a_status_and_consistent(act, lw, lb):
    sw, sb = 10.0**lw, 10.0**lb
    fp = cnnmft.fixed_point(act, sw, sb)
    _check_statuses(fp)
    st_ = Status(int(fp.status))
    q = float(fp.q_star)
    if st_ in (Status.OK, Status.MARGINAL) or (st_ == Status.BISTABLE and math.isfinite(q)):
        assert math.isfinite(q) and q >= sb * (1 - 1e-15)
        qn = float(cnnmft.q_map(act, q, sw, sb))
        assert abs(qn - q) <= 1e-9 * q
    if st_ == Status.BISTABLE:
        assert float(fp.q_star_low) < float(fp.q_unstable) <= float(fp.q_star_high)
    if st_ < 0:
        assert not math.isfinite(q) or fp.status == Status.MAXITER


@_FAST
@given(idx=st.integers(0, 3), bad=st.sampled_from([math.nan, -1.0, math.inf]))
def test_one_bad_element_is_named_not_silently_propagated(idx, bad):
    sw = np.array([0.5, 1.5, 2.5, 4.0])
    sw[idx] = bad
    with pytest.raises(ValueError, match="`sigma_w2`"):
        cnnmft.fixed_point("tanh", sw, 0.05)


@_FAST
@given(
    vals=st.lists(
        st.sampled_from([0.5, 1.5, 2.0, 2.3025, 3.0, 1e-300, 1e300, 1e13]), min_size=2, max_size=5
    )
)
def test_troubled_elements_do_not_poison_the_rest(vals):
    # elements that end in INFINITE, BISTABLE or huge q* next to ordinary ones: every element
    # equals its scalar result
    sw = np.array(vals)
    for act in ("gelu", "relu", "tanh"):
        fp = cnnmft.fixed_point(act, sw, 0.05)
        for i, s in enumerate(vals):
            one = cnnmft.fixed_point(act, s, 0.05)
            assert int(fp.status[i]) == int(one.status)
            np.testing.assert_array_equal(fp.q_star[i], one.q_star)
            np.testing.assert_array_equal(fp.chi_c[i], one.chi_c)


@_FAST
@given(lb=st.floats(-300.0, 150.0))
def test_critical_line_is_a_critical_point_or_a_status(lb):
    sb = 10.0**lb
    cp = cnnmft.critical_sigma_w2("erf", sb)
    _check_statuses(cp)
    assert cp.status in (Status.OK, Status.MARGINAL)
    q, sw = float(cp.q_star), float(cp.sigma_w2)
    # erf closed forms: E[phi'^2] = (4/pi) / sqrt(1 + 4q), E[phi^2] = _erf_v(q)
    assert abs(sw * (4 / math.pi) / math.sqrt(1 + 4 * q) - 1) < 1e-12
    assert abs(sw * _erf_v(q) + sb - q) <= 1e-12 * q + 1e-300


@_FAST
@given(q=st.floats(1e-300, 1e300), c=st.floats(-1.0, 1.0))
def test_expect2_erf_closed_form_over_all_scales(q, c):
    got = float(expect2("erf", q, q, c))
    x = 2 * c * q / (1 + 2 * q)
    if x > 0.5:  # asin(x) = pi/2 - 2 asin(sqrt((1 - x)/2)), 1 - x without cancellation
        omx = (1 + 2 * q * (1 - c)) / (1 + 2 * q)
        want = 1 - 4 / math.pi * math.asin(math.sqrt(0.5 * omx))
    else:
        want = 2 / math.pi * math.asin(x)
    assert abs(got - want) <= 1e-12 + 1e-10 * abs(want)


@_FAST
@given(q=st.floats(0.0, 1e300))
def test_expect_relu_closed_form_over_all_scales(q):
    assert abs(float(expect("relu", q)) - q / 2) <= 1e-13 * q + 1e-300


@_FAST
@given(
    lw=st.floats(-1.0, 1.0),
    lb=st.floats(-6.0, 0.0),
    L=st.integers(1, 64),
    w=st.sampled_from(["orthogonal", "gaussian"]),
)
def test_jacobian_spectrum_mass_and_mean(lw, lb, L, w):
    s = cnnmft.jacobian_spectrum("erf", 10.0**lw, 10.0**lb, L, w, n_points=64)
    _check_statuses(s)
    if s.status in (Status.OK, Status.INACCURATE):
        assert abs(s.mass - 1) < 2e-3
        # closed form for erf: E[phi'^2] = (4/pi)/sqrt(1 + 4q)
        m1 = (10.0**lw * 4 / math.pi / math.sqrt(1 + 4 * s.q_star)) ** L
        assert abs(s.m1 / m1 - 1) < 1e-12
    else:
        assert s.status < 0 or s.status == Status.INFINITE


@_FAST
@given(n=st.integers(1, 8), c_in=st.integers(1, 4), k=st.integers(1, 4))
def test_kernels_are_isometries_or_refused(n, c_in, k):
    c_out = c_in + n - 1
    ker = cnnmft.block_orthogonal((c_out, c_in, k), sigma_w2=2.0, rng=n)
    s = cnnmft.conv_singular_values(ker, max(k, 3))
    np.testing.assert_allclose(s, math.sqrt(2.0), rtol=1e-12)
    ker = cnnmft.delta_orthogonal((c_out, c_in, k, k), rng=n)
    np.testing.assert_allclose(cnnmft.conv_singular_values(ker, (k, k)), 1.0, rtol=1e-12)


def test_depth_scale_edges():
    xi = cnnmft.depth_scale([0.0, 1.0, 0.5, 2.0])
    assert xi[0] == 0 and math.isinf(xi[1])
    assert abs(xi[2] - 1 / math.log(2)) < 1e-15 and xi[3] < 0
    with pytest.raises(TypeError, match="`chi`"):
        cnnmft.depth_scale(1j)
