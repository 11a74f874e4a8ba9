"""cnnmft.network against independent references: brute force, identities, closed forms."""

import sys
from pathlib import Path

import numpy as np
import pytest

from cnnmft import variance_profile
from cnnmft.covariance import propagate_covariance
from cnnmft.fourier import mode_eigenvalues
from cnnmft.meanfield import fixed_point
from cnnmft.network import (
    Act,
    AvgPool,
    Conv,
    Dense,
    GlobalAvgPool,
    NetworkResult,
    backward_mode_depth_scales,
    conv_stack,
    predict,
    propagate_network,
    vanilla_network,
)

sys.path.insert(0, str(Path(__file__).parent))
import _network_reference as R  # noqa: E402


def _pair(rng, B=2, shape=(5,), c=3):
    return rng.normal(size=(B,) + shape + (c,))


def _nets(act, pad, st, v):
    k = len(v)
    lib = [
        Conv(k, st, pad, 1.6, 0.1, v),
        Act(act),
        Conv(3, 1, "zero", 1.3, 0.05, "uniform"),
        Act(act),
        GlobalAvgPool(),
        Dense(1.2, 0.1),
    ]
    ref = [
        ("conv", (k,), (st,), pad, 1.6, v, 0.1),
        ("act", act),
        ("conv", (3,), (1,), "zero", 1.3, np.full(3, 1 / 3), 0.05),
        ("act", act),
        ("gap",),
        ("dense", 1.2, 0.1),
    ]
    return lib, ref


@pytest.mark.parametrize(
    "act,pad,st",
    [
        ("tanh", "zero", 2),
        ("erf", "same_tf", 2),
        ("relu", "valid", 1),
        ("relu", "circular", 2),
        ("hard_tanh", "zero", 1),
        ("linear", "same_tf", 3),
    ],
)
def test_brute_force_reference_1d(act, pad, st, rng):
    x = _pair(rng, shape=(6,))
    v = np.array([0.2, 0.5, 0.3])
    lib, ref = _nets(act, pad, st, v)
    r = propagate_network(x, lib)
    K, T, outs = R.forward(x, ref)
    assert np.max(np.abs(r.nngp - K)) <= 1e-9 * np.max(np.abs(K))
    assert np.max(np.abs(r.ntk_out - T)) <= 1e-9 * np.max(np.abs(T))
    # per-layer covariances (position-dependent near the borders) too
    for i in (0, 2):
        B, P = 2, outs[i].shape[0] // 2
        got = r.cov[str(i)].transpose(0, 2, 1, 3).reshape(B * P, B * P)
        assert np.max(np.abs(got - outs[i])) <= 1e-9 * np.max(np.abs(outs[i]))


def test_brute_force_reference_2d_even_kernel_and_pool(rng):
    x = _pair(rng, shape=(5, 4), c=2)
    v = variance_profile("binomial", (2, 3))
    lib = [
        Conv((2, 3), (2, 1), "zero", 1.4, 0.2, v),
        Act("erf"),
        AvgPool((1, 2)),
        Conv(3, 1, "same_tf", 1.1, 0.0, "uniform"),
        Act("erf"),
        GlobalAvgPool(),
        Dense(2.0, 0.3),
    ]
    r = propagate_network(x, lib)
    # reference: conv, act, then the pooling and the rest by explicit loops
    K1, sh = R.conv_moment(
        x.reshape(-1, 2) @ x.reshape(-1, 2).T / 2, 2, (5, 4), (2, 3), (2, 1), "zero", 1.4 * v, 0.2
    )
    assert np.max(np.abs(_flat(r.cov["0"]) - K1)) <= 1e-12
    E0 = R.expect_matrix("erf", K1, 0)
    P = int(np.prod(sh))
    pool = np.zeros((sh[0] * (sh[1] // 2), P))
    for a in range(sh[0]):
        for b in range(sh[1] // 2):
            for j in range(2):
                pool[a * (sh[1] // 2) + b, a * sh[1] + 2 * b + j] = 0.5
    Mp = np.kron(np.eye(2), pool)
    K2 = Mp @ E0 @ Mp.T
    S3, sh3 = R.conv_moment(
        K2, 2, (sh[0], sh[1] // 2), (3, 3), (1, 1), "same_tf", 1.1 * np.full(9, 1 / 9), 0.0
    )
    E3 = R.expect_matrix("erf", S3, 0)
    P3 = int(np.prod(sh3))
    avg = np.kron(np.eye(2), np.full((1, P3), 1 / P3))
    nngp = 2.0 * avg @ E3 @ avg.T + 0.3
    assert np.max(np.abs(r.nngp - nngp)) <= 1e-12


def _flat(c):
    B = c.shape[0]
    d = (c.ndim - 2) // 2
    P = int(np.prod(c.shape[2 : 2 + d]))
    return c.reshape(B, B, P, P).transpose(0, 2, 1, 3).reshape(B * P, B * P)


@pytest.mark.parametrize("act", ["tanh", "relu", "erf"])
def test_circular_equals_propagate_covariance(act, rng):
    x = rng.normal(size=(2, 6, 6, 3))
    v = variance_profile("binomial", 3)
    net = conv_stack(act, 1.7, 0.1, v, 4, padding="circular")
    r = propagate_network(x, net, store="last")
    ref = propagate_covariance(x, act, 1.7, 0.1, v, 4)
    assert np.max(np.abs(r.cov[str(len(net) - 1)] - ref.cov[0])) <= 1e-12


def test_zero_padding_interior_equals_circular(rng):
    x = rng.normal(size=(1, 12, 12, 2))
    v = variance_profile("uniform", 3)
    depth = 3
    zero = propagate_network(
        x, conv_stack("tanh", 1.5, 0.05, v, depth, padding="zero"), store="last"
    ).cov[str(2 * depth - 2)][0, 0]
    circ = propagate_network(
        x, conv_stack("tanh", 1.5, 0.05, v, depth, padding="circular"), store="last"
    ).cov[str(2 * depth - 2)][0, 0]
    inner = slice(depth, 12 - depth)
    # pixels farther than depth * (k // 2) from the border never see the padding
    assert (
        np.max(np.abs(zero[inner, inner, inner, inner] - circ[inner, inner, inner, inner])) <= 1e-13
    )
    # the border pixels do: position-dependent variances
    assert abs(zero[0, 0, 0, 0] - circ[0, 0, 0, 0]) > 1e-2
    # a delta profile never reads a padded cell: every pixel equals the circular value
    d = variance_profile("delta", 3)
    z = propagate_network(
        x, conv_stack("tanh", 1.5, 0.05, d, depth, padding="zero"), store="last"
    ).cov[str(2 * depth - 2)]
    c = propagate_network(
        x, conv_stack("tanh", 1.5, 0.05, d, depth, padding="circular"), store="last"
    ).cov[str(2 * depth - 2)]
    assert np.max(np.abs(z - c)) <= 1e-14


def _conv_matrix(n, k, s, pad, v):
    """Dense (n_out, n) matrices per tap by applying a numpy.pad-based convolution to the basis."""
    before = {"zero": k // 2, "valid": 0}[pad]
    n_out = (n + 2 * before - k) // s + 1
    mats = []
    for j in range(k):
        T = np.zeros((n_out, n))
        for col in range(n):
            e = np.zeros(n)
            e[col] = 1.0
            ep = np.pad(e, (before, before + k))
            T[:, col] = ep[j + s * np.arange(n_out)]
        mats.append(T)
    return mats


def test_linear_network_closed_form(rng):
    """Linear activation: Sigma^L by explicit matrix products of the convolution matrices."""
    x = rng.normal(size=(2, 9, 4))
    v = np.array([0.3, 0.3, 0.4])
    net = [
        Conv(3, 2, "zero", 1.5, 0.1, v),
        Act("linear"),
        Conv(3, 1, "valid", 0.8, 0.2, v),
        Act("linear"),
        Dense(1.3, 0.05),
    ]
    r = propagate_network(x, net)
    X = x.reshape(18, 4)
    K = X @ X.T / 4
    theta = np.zeros_like(K)
    for n, s, pad, sw, sb in [(9, 2, "zero", 1.5, 0.1), (5, 1, "valid", 0.8, 0.2)]:
        Ts = [np.kron(np.eye(2), T) for T in _conv_matrix(n, 3, s, pad, v)]
        S = sum(sw * vt * T @ K @ T.T for vt, T in zip(v, Ts)) + sb
        theta = S + sum(sw * vt * T @ theta @ T.T for vt, T in zip(v, Ts))
        K = S
    P = K.shape[0] // 2
    nngp = (
        1.3
        * np.array(
            [
                [np.trace(K[a * P : (a + 1) * P, b * P : (b + 1) * P]) / P for b in range(2)]
                for a in range(2)
            ]
        )
        + 0.05
    )
    ntk = nngp + 1.3 * np.array(
        [
            [np.trace(theta[a * P : (a + 1) * P, b * P : (b + 1) * P]) / P for b in range(2)]
            for a in range(2)
        ]
    )
    assert np.max(np.abs(r.nngp - nngp)) <= 1e-13 * np.max(np.abs(nngp))
    assert np.max(np.abs(r.ntk_out - ntk)) <= 1e-13 * np.max(np.abs(ntk))


def test_ntk_equals_sum_of_layer_contributions(rng):
    x = rng.normal(size=(3, 7, 6, 2))
    net = [
        Conv(3, 2, "zero", 1.8, 0.1),
        Act("tanh"),
        Conv(3, 1, "circular", 1.2, 0.3, "binomial"),
        Act("relu"),
        AvgPool(2, 1),
        Conv(2, 1, "valid", 1.1, 0.0),
        Act("erf"),
        GlobalAvgPool(),
        Dense(1.5, 0.2),
    ]
    r = propagate_network(x, net)
    assert r.status == 0
    np.testing.assert_allclose(r.ntk_contrib.sum(axis=0), r.ntk_out, rtol=1e-12, atol=0)
    # the readout's own share is its NNGP kernel; the last weights see a gradient of 1
    np.testing.assert_allclose(r.ntk_contrib[-1], r.nngp, rtol=1e-14)
    assert np.all(r.bias_grad2[-1] == 1.0)


def test_backward_modes_circular():
    """Per-pixel gradient map at the fixed point of a circular net: eigenvalues chi_1 lam_f."""
    act, sw, sb = "tanh", 1.5, 0.05
    v = variance_profile("uniform", 3)
    fp = fixed_point(act, sw, sb)
    q = float(np.asarray(fp.q_star))
    n = 6
    # one layer Act -> Conv at the fixed point: G_h = E[phi'^2] * A^T(G_out) on diagonal G
    from cnnmft import gaussian
    from cnnmft._network_layers import resolve

    lin = resolve([Conv(3, 1, "circular", sw, sb, v)], (n, n))[0]
    e1 = float(gaussian.expect(act, q, (1, 1)))
    M = np.empty((n * n, n * n))
    for i in range(n * n):
        G = np.zeros((n * n, n * n))
        G[i, i] = 1.0
        M[:, i] = e1 * np.diag(lin.adjoint(G, 1))
    eig = np.sort(np.abs(np.linalg.eigvals(M)))
    r = backward_mode_depth_scales(act, sw, sb, v, (n, n))
    np.testing.assert_allclose(eig, np.sort(r.gain_diag.ravel()), atol=1e-13)
    lam = np.abs(mode_eigenvalues(v, (n, n)))
    np.testing.assert_allclose(r.gain_diag, float(np.asarray(fp.chi_1)) * lam, rtol=1e-14)
    # ordered phase: c* = 1, the off-diagonal gain is chi_1 too
    assert abs(r.chi_c_back - r.chi_1) <= 1e-12


def test_predict_matches_layer_list_and_follows_the_q_map():
    cfg = {
        "depth": 12,
        "channels": 8,
        "stem_strides": (1, 2),
        "init": "delta_orthogonal",
        "q_star": 0.05,
    }
    p = predict(cfg, input_shape=(8, 8))
    net = vanilla_network(cfg)
    r = propagate_network(None, net, gram=np.eye(2 * 64), spatial_shape=(8, 8))
    np.testing.assert_array_equal(p.q, r.q)
    # delta profile in the deep block: every pixel follows the fully-connected q-map
    from cnnmft.meanfield import q_map

    start = r.cov["2"]  # after the stem (input 0)
    qpix = np.einsum("ijij->ij", start[0, 0])
    sw, sb = p.config["sigma_w2"], p.config["sigma_b2"]
    for layer in range(1, 13):
        qpix = np.asarray(q_map("tanh", qpix, sw, sb))
        np.testing.assert_allclose(p.q[1 + layer, 0], qpix.mean(), rtol=1e-12)
    assert p.trainable_depth > 1e6  # critical point
    # E||df/dW||^2 scales with the model's input channels (8 in the block)
    np.testing.assert_allclose(p.weight_grad2[3], 8 * r.weight_grad2[3])


def test_geometry_torch_and_tf_conventions():
    from cnnmft._network_layers import axis_geometry

    n_out, idx, mask = axis_geometry(8, 3, 2, "zero")  # torch padding=1
    assert n_out == 4 and idx[0, 0] == 0 and not mask[0, 0] and idx[0, 1] == 0
    n_out, idx, mask = axis_geometry(8, 3, 2, "same_tf")  # TF: pad 0 before, 1 after
    assert n_out == 4 and mask[0].all() and idx[0].tolist() == [0, 1, 2] and not mask[3, 2]
    assert axis_geometry(7, 3, 2, "valid")[0] == 3
    assert axis_geometry(7, 3, 2, "circular")[1][3].tolist() == [5, 6, 0]


def test_bad_input_messages(rng):
    x = rng.normal(size=(1, 5, 2))
    with pytest.raises(ValueError, match="padding"):
        propagate_network(x, [Conv(3, 1, "reflect")])
    with pytest.raises(ValueError, match=r"network\[0\]"):
        propagate_network(x, [Act("tanh")])
    with pytest.raises(ValueError, match="does not fit"):
        propagate_network(x, [Conv(7, 1, "valid")])
    with pytest.raises(TypeError, match=r"network\[1\]"):
        propagate_network(x, [Conv(3), "tanh"])
    with pytest.raises(ValueError, match="sigma_w2"):
        propagate_network(x, [Conv(3, 1, "zero", -1.0)])


def test_result_save_load(tmp_path, rng):
    x = rng.normal(size=(2, 5, 2))
    r = propagate_network(
        x, conv_stack("erf", 1.2, 0.1, "uniform", 2, kernel_size=3, readout=(1.0, 0.0))
    )
    for suffix in (".json", ".npz"):
        back = NetworkResult.load(r.save(tmp_path / f"r{suffix}"))
        assert back == r


def test_padded_covariance_fields(rng):
    from cnnmft._network_engine import padded_covariance

    x = rng.normal(size=(7, 7, 2))
    v = variance_profile("uniform", 3)
    d = padded_covariance(x, "erf", 1.5, 0.05, v, 3, layers="all", padding="zero")
    ref = propagate_network(x[None], conv_stack("erf", 1.5, 0.05, v, 3, padding="zero"))
    assert d["cov"].shape == (4, 7, 7, 7, 7)
    np.testing.assert_array_equal(d["cov"][3], ref.cov["4"][0, 0])
    np.testing.assert_allclose(d["cov"][0], np.einsum("ijc,klc->ijkl", x, x) / 2, atol=1e-15)
    np.testing.assert_allclose(d["q_mean"][1:, 0], ref.q[:, 0], rtol=1e-14)
    # strides shrink the map: layers of different grids cannot be stacked
    with pytest.raises(ValueError, match="different grids"):
        padded_covariance(x, "erf", 1.5, 0.05, v, 2, layers="all", stride=[2, 1])
    one = padded_covariance(x, "erf", 1.5, 0.05, v, 2, stride=[2, 1], padding="same_tf")
    assert one["cov"].shape == (1, 4, 4, 4, 4)


def test_brute_force_reference_3d(rng):
    x = rng.normal(size=(1, 3, 3, 2, 2))
    v = variance_profile("binomial", (3, 2, 2))
    lib = [
        Conv((3, 2, 2), (2, 1, 2), "zero", 1.5, 0.1, v),
        Act("erf"),
        GlobalAvgPool(),
        Dense(1.0, 0.0),
    ]
    ref = [
        ("conv", (3, 2, 2), (2, 1, 2), "zero", 1.5, v.ravel(), 0.1),
        ("act", "erf"),
        ("gap",),
        ("dense", 1.0, 0.0),
    ]
    r = propagate_network(x, lib)
    K, T, _ = R.forward(x, ref)
    assert abs(r.nngp[0, 0] - K[0, 0]) <= 1e-12 * abs(K[0, 0])
    assert abs(r.ntk_out[0, 0] - T[0, 0]) <= 1e-12 * abs(T[0, 0])


@pytest.mark.parametrize("scale", [1e-4, 1.0, 40.0])
def test_pair_expectations_extreme_variances(scale, rng):
    """Tiny (critical q* ~ 1/L) and large variances (series too long: pairwise quadrature)."""
    from cnnmft._network_expect import pair_expectations

    X = rng.normal(size=(4, 6))
    S = scale * (X @ X.T / 6 + 0.1)
    for order in (0, 1):
        got = pair_expectations("tanh", S, order)
        ref = R.expect_matrix("tanh", S, order)
        assert np.max(np.abs(got - ref)) <= 1e-12 * max(1.0, np.max(np.abs(ref))), order


def test_propagate_covariance_padding_and_stride_keywords(rng):
    x = rng.normal(size=(2, 7, 7, 3))
    v = variance_profile("binomial", 3)
    res = propagate_covariance(x, "tanh", 1.5, 0.05, v, 3, padding="zero", layers=[1, 2, 3])
    net = conv_stack("tanh", 1.5, 0.05, v, 3, padding="zero")
    ref = propagate_network(x, net)
    assert res.method == "dense" and res.cov.shape == (3, 2, 2, 7, 7, 7, 7)
    np.testing.assert_array_equal(res.cov[2], ref.cov["4"])
    assert res.cov[2][0, 0, 0, 0, 0, 0] < res.cov[2][0, 0, 3, 3, 3, 3]  # border variance
    st = propagate_covariance(x[0], "erf", 1.5, 0.05, v, 2, padding="same_tf", stride=[2, 1])
    assert st.cov.shape == (1, 4, 4, 4, 4)
    # circular stride 1 keeps the circular engine
    circ = propagate_covariance(x[0], "erf", 1.5, 0.05, v, 2)
    assert circ.method != "dense"
    with pytest.raises(ValueError, match="padding"):
        propagate_covariance(x, "tanh", 1.5, 0.05, v, 2, padding="reflect")
