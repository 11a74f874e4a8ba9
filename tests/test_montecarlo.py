"""Tests of the numpy CNN and its Monte Carlo estimators.

References used here are independent of cnnmft's theory code: explicit loops with np.roll for the
convolution, the exact first-layer covariance, the erf closed form
E[erf(u1) erf(u2)] = (2/pi) arcsin(2 S12 / sqrt((1 + 2 S11)(1 + 2 S22))) for the second layer
(exact in expectation at any width, because layer-1 pre-activations are exactly Gaussian given
the input), and exact identities for linear networks. Tolerances come from the reported standard
errors with a Bonferroni threshold over the number of compared entries.
"""

import itertools

import numpy as np
import pytest
from scipy.stats import norm, t

from cnnmft import montecarlo as mc


def zcrit(m, dof=None, alpha=1e-3):
    """Bonferroni threshold for m two-sided comparisons; Student t when the stderr has `dof`."""
    p = alpha / (2 * m)
    return norm.isf(p) if dof is None else t.isf(p, dof)


def naive_conv(x, w):
    """Reference: loop over taps, np.roll, einsum over channels."""
    ks = w.shape[2:]
    axes = tuple(range(1, 1 + len(ks)))
    out = np.zeros(x.shape[:-1] + (w.shape[0],))
    for idx in itertools.product(*[range(k) for k in ks]):
        beta = [i - (k - 1) // 2 for i, k in zip(idx, ks)]
        xs = np.roll(x, shift=[-b for b in beta], axis=axes)  # xs[alpha] = x[alpha + beta]
        out += np.einsum("...i,ji->...j", xs, w[(slice(None), slice(None)) + idx])
    return out


@pytest.mark.parametrize(
    "spatial,kshape,cin,cout",
    [
        ((7,), (3,), 3, 5),
        ((8,), (4,), 2, 2),
        ((6, 5), (3, 2), 4, 3),
        ((5, 5), (1, 1), 3, 6),
        ((4, 3, 5), (3, 3, 3), 2, 2),
    ],
)
def test_circular_conv_matches_loop_and_adjoint(spatial, kshape, cin, cout):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2,) + spatial + (cin,))
    w = rng.standard_normal((cout, cin) + kshape)
    y = mc.circular_conv(x, w)
    np.testing.assert_allclose(y, naive_conv(x, w), atol=1e-12)
    u = rng.standard_normal(y.shape)
    xt = mc.circular_conv(u, w, transpose=True)
    assert xt.shape == x.shape
    assert np.vdot(u, y) == pytest.approx(np.vdot(xt, x), rel=1e-12)


def test_circular_conv_wraps_around():
    x = np.arange(5.0).reshape(1, 5, 1)
    y = mc.circular_conv(x, np.array([[[1.0, 0.0, 0.0]]]))  # tap offset -1: x(alpha - 1)
    np.testing.assert_array_equal(y[0, :, 0], [4.0, 0.0, 1.0, 2.0, 3.0])


def test_circular_conv_rejects_bad_shapes():
    with pytest.raises(ValueError, match="kernel"):
        mc.circular_conv(np.zeros((1, 3, 2)), np.zeros((2, 2, 5)))
    with pytest.raises(ValueError, match="channels"):
        mc.circular_conv(np.zeros((1, 6, 3)), np.zeros((2, 2, 3)))


@pytest.mark.parametrize("kind", ["delta_orthogonal", "block_orthogonal"])
def test_orthogonal_kernels_preserve_norm_in_the_numpy_cnn(kind):
    rng = np.random.default_rng(2)
    w = mc.sample_kernel(kind, (16, 8, 3, 3), sigma_w2=2.0, rng=rng)
    x = rng.standard_normal((3, 7, 7, 8))
    y = mc.circular_conv(x, w)
    ratio = np.linalg.norm(y.reshape(3, -1), axis=1) / np.linalg.norm(x.reshape(3, -1), axis=1)
    np.testing.assert_allclose(ratio, np.sqrt(2.0), rtol=1e-10)


def test_gaussian_kernel_variance_convention():
    rng = np.random.default_rng(3)
    v = np.array([0.25, 0.5, 0.25])
    w = mc.sample_kernel("gaussian", (400, 50, 3), 1.7, v=v, rng=rng)
    emp = (w**2).mean(axis=(0, 1))
    se = (w**2).std(axis=(0, 1)) / np.sqrt(400 * 50)
    target = 1.7 * v / 50  # Var w = sigma_w2 v_beta / c_in
    assert np.all(np.abs(emp - target) < zcrit(3) * se)


def test_gaussian_inputs_have_exact_gram():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((12, 12))
    g = a @ a.T / 12
    x = mc.gaussian_inputs(g, (2, 3), 40, rng=rng)
    assert x.shape == (2, 2, 3, 40)
    xf = x.reshape(12, 40)
    np.testing.assert_allclose(xf @ xf.T / 40, g, atol=1e-12)


def _apply_a(m, v, sp):
    """[A * M]_{alpha, alpha'} = sum_beta v_beta M_{alpha+beta, alpha'+beta} (explicit loop)."""
    P = int(np.prod(sp))
    m = m.reshape(sp + sp)
    out = np.zeros_like(m)
    d = len(sp)
    for idx in itertools.product(*[range(k) for k in v.shape]):
        beta = [i - (k - 1) // 2 for i, k in zip(idx, v.shape)]
        shift = [-b for b in beta] * 2
        out += v[idx] * np.roll(m, shift=shift, axis=tuple(range(2 * d)))
    return out.reshape(P, P)


def _erf_c(s, sw2, sb2):
    d = np.diag(s)
    arg = 2 * s / np.sqrt(np.outer(1 + 2 * d, 1 + 2 * d))
    return sw2 * (2 / np.pi) * np.arcsin(arg) + sb2


def _sim_first_layers(sw2, v, rng, n_draws=16, width=128):
    sp = (5, 5)
    P = 25
    g0 = np.random.default_rng(11).standard_normal((P, P))
    gram = 0.6 * (g0 @ g0.T / P) + 0.2 * np.eye(P)
    x = mc.gaussian_inputs(gram, sp, 48, rng=rng)
    sim = mc.simulate(
        x,
        "erf",
        sw2,
        0.1,
        depth=2,
        width=width,
        v=v,
        kernel_size=3,
        n_draws=n_draws,
        cov_layers=(1, 2),
        rng=rng,
    )
    return gram, sim


@pytest.mark.parametrize("vname", ["uniform", "binomial"])
def test_covariance_first_two_layers_match_exact_expectation(vname):
    from cnnmft.fourier import variance_profile

    v = variance_profile(vname, 3, ndim=2)
    sw2, sb2 = 1.6, 0.1
    gram, sim = _sim_first_layers(sw2, vname, rng=5)
    s1 = sw2 * _apply_a(gram, v, (5, 5)) + sb2
    s2 = _apply_a(_erf_c(s1, sw2, sb2), v, (5, 5))
    cov = sim.cov[:, 0].reshape(2, 25, 25)
    se = sim.cov_stderr[:, 0].reshape(2, 25, 25)
    z = np.abs(np.stack([s1, s2]) - cov) / se
    assert z.max() < zcrit(z.size, dof=sim.n_draws - 1), z.max()
    # the spatially averaged variance, and q_pos, agree with the covariance diagonal
    np.testing.assert_allclose(sim.q_pos[1, 0].ravel(), np.diag(cov[1]), rtol=1e-12)


def test_wrong_sigma_w_convention_is_detected():
    """Using sigma_w (std) where sigma_w2 belongs must fail the same z-test."""
    from cnnmft.fourier import variance_profile

    v = variance_profile("uniform", 3, ndim=2)
    sw2, sb2 = 1.6, 0.1
    gram, sim = _sim_first_layers(sw2, "uniform", rng=5)
    wrong = np.sqrt(sw2)
    s1 = wrong * _apply_a(gram, v, (5, 5)) + sb2
    s2 = _apply_a(_erf_c(s1, wrong, sb2), v, (5, 5))
    cov = sim.cov[:, 0].reshape(2, 25, 25)
    se = sim.cov_stderr[:, 0].reshape(2, 25, 25)
    z = np.abs(np.stack([s1, s2]) - cov) / se
    assert z.max() > zcrit(z.size, dof=sim.n_draws - 1), z.max()
    assert np.mean(z**2) > 2.5  # calibrated: about 1.15 (t with 15 dof) for the right theory


def test_single_draw_channel_stderr_is_consistent():
    """With one draw the stderr comes from channels; it must cover the exact layer-1 value."""
    sw2, sb2 = 1.6, 0.1
    rng = np.random.default_rng(6)
    gram = 0.5 * np.eye(4) + 0.3
    x = mc.gaussian_inputs(gram, (4,), 16, rng=rng)
    sim = mc.simulate(
        x, "erf", sw2, sb2, depth=1, width=4000, kernel_size=1, n_draws=1, cov_layers=(1,), rng=rng
    )
    s1 = sw2 * gram + sb2
    z = np.abs(sim.cov[0, 0] - s1) / sim.cov_stderr[0, 0]
    assert z.max() < zcrit(16)
    # channel stderr of a variance ~ sqrt(2/c) * variance for Gaussian channels
    np.testing.assert_allclose(
        np.diag(sim.cov_stderr[0, 0]), np.sqrt(2 / 4000) * np.diag(s1), rtol=0.15
    )


def test_q_and_c_trajectories_follow_erf_maps():
    sw2, sb2 = 1.5, 0.1
    q1, c1 = 1.2, 0.3
    q_in, c_in = (q1 - sb2) / sw2, (q1 * c1 - sb2) / (q1 - sb2)
    g = q_in * np.array([[1.0, c_in], [c_in, 1.0]])
    x = mc.gaussian_inputs(g, (1,), 512, rng=7)
    depth = 5
    sim = mc.simulate(x, "erf", sw2, sb2, depth, width=512, kernel_size=1, n_draws=24, rng=7)
    q, c = [q1], [c1]
    for _ in range(depth - 1):
        s = np.array([[q[-1], q[-1] * c[-1]], [q[-1] * c[-1], q[-1]]])
        nxt = _erf_c(s, sw2, sb2)
        q.append(nxt[0, 0])
        c.append(nxt[0, 1] / nxt[0, 0])
    zq = np.abs(sim.q[:, 0] - q) / sim.q_stderr[:, 0]
    zc = np.abs(sim.c[:, 0, 1] - c) / sim.c_stderr[:, 0, 1]
    assert max(zq.max(), zc.max()) < zcrit(2 * depth, dof=23)
    assert sim.q_draws.shape == (24, depth, 2)


def test_mode_decay_linear_network_is_sigma_w2_lambda():
    """Linear activation: the covariance difference obeys D^{l+1} = sigma_w2 A * D^l exactly."""
    n = 12
    sw2 = 0.9
    modes = [1, 2]
    md = mc.mode_decay(
        "linear",
        sw2,
        0.1,
        5,
        (n,),
        q_star=1.0,
        c_star=0.5,
        modes=modes,
        width=192,
        kind="c",
        eps=0.1,
        v="uniform",
        n_draws=8,
        rng=8,
    )
    theta = 2 * np.pi * np.array(modes) / n
    lam = (1 + 2 * np.cos(theta)) / 3
    z = np.abs(md.rate - sw2 * lam) / md.rate_stderr
    assert z.max() < zcrit(len(modes), dof=7), (md.rate, sw2 * lam)
    # layer-1 amplitude is sigma_w2 lambda_f (normalised to the input pattern)
    z1 = np.abs(md.amplitude[0] - sw2 * lam) / md.amplitude_stderr[0]
    assert z1.max() < zcrit(len(modes), dof=7)


def test_mode_decay_rejects_bad_arguments():
    with pytest.raises(ValueError, match="fit_layers"):
        mc.mode_decay(
            "tanh",
            2.5,
            0.05,
            4,
            (8,),
            q_star=1.06,
            c_star=0.45,
            modes=[1],
            width=16,
            fit_layers=(3, 9),
        )
    with pytest.raises(ValueError, match="kind"):
        mc.mode_decay(
            "tanh", 2.5, 0.05, 4, (8,), q_star=1.06, c_star=0.45, modes=[1], width=16, kind="x"
        )


def test_jacobian_linear_orthogonal_is_exact_isometry():
    sw2, depth = 1.3, 4
    js = mc.jacobian_singular_values(
        "linear",
        sw2,
        0.0,
        depth,
        (6,),
        width=8,
        q_input=1.0,
        kernel="block_orthogonal",
        kernel_size=3,
        n_draws=2,
        rng=9,
    )
    np.testing.assert_allclose(js.eigenvalues, sw2**depth, rtol=1e-10)
    assert js.var == pytest.approx(0.0, abs=1e-10)


def test_jacobian_linear_gaussian_mean_is_unbiased():
    """E tr(J^T J)/N = sigma_w2^L exactly for Gaussian weights at any width."""
    sw2, depth = 0.8, 3
    js = mc.jacobian_singular_values(
        "linear", sw2, 0.0, depth, (1,), width=64, kernel_size=1, n_draws=12, rng=10
    )
    assert abs(js.m1 - sw2**depth) < zcrit(1, dof=11) * js.m1_stderr


def test_jacobian_stochastic_agrees_with_exact_on_the_same_network():
    args = ("tanh", 1.05, 2.01e-5, 4, (6,))
    kw = dict(width=12, q_input=0.0259, kernel="gaussian", kernel_size=3, n_draws=1, n_top=3)
    ex = mc.jacobian_singular_values(*args, method="exact", rng=12, **kw)
    st = mc.jacobian_singular_values(*args, method="stochastic", n_probes=64, rng=12, **kw)
    np.testing.assert_allclose(st.top, ex.top, rtol=1e-6)  # same draw: same network
    assert abs(st.m1 - ex.m1) < zcrit(2, dof=63) * st.m1_stderr
    assert abs(st.m2 - ex.m2) < zcrit(2, dof=63) * st.m2_stderr


def test_bad_arguments_name_the_argument():
    x = np.ones((1, 4, 3))
    with pytest.raises(ValueError, match="sigma_w2"):
        mc.simulate(x, "tanh", -1.0, 0.1, 2, width=4)
    with pytest.raises(ValueError, match="kernel_size"):
        mc.simulate(x, "tanh", 1.0, 0.1, 2, width=4, kernel_size=5)
    with pytest.raises(ValueError, match="kernel"):
        mc.simulate(x, "tanh", 1.0, 0.1, 2, width=4, kernel="nope")
    with pytest.raises(ValueError, match="exact"):
        mc.jacobian_singular_values("tanh", 1.0, 0.0, 2, (100,), width=100)


def test_simulation_result_roundtrip(tmp_path):
    x = np.ones((1, 4, 3))
    s = mc.simulate(x, "tanh", 1.2, 0.1, 2, width=8, n_draws=2, cov_layers=(2,), rng=0)
    p = s.save(tmp_path / "s.npz")
    back = mc.Simulation.load(p)
    np.testing.assert_array_equal(back.cov, s.cov)
    assert back.n_draws == 2


def test_overflow_is_reported_in_status():
    from cnnmft import Status

    x = np.ones((1, 4, 8))
    with np.errstate(over="ignore", invalid="ignore"):
        s = mc.simulate(x, "relu", 1e60, 0.0, 12, width=8, n_draws=2, rng=0)
    assert s.status == Status.NONFINITE
    ok = mc.simulate(x, "relu", 2.0, 0.0, 3, width=8, n_draws=2, rng=0)
    assert ok.status == Status.OK


def test_mode_decay_2d_linear_network_q_kind():
    """2D grid, diagonal (variance) modes: rate sigma_w2 * lambda_f with lambda_f of the 3x3
    binomial profile, cos^2(theta_1/2) cos^2(theta_2/2)."""
    n = 6
    sw2 = 0.8
    modes = [(1, 0), (1, 1)]
    md = mc.mode_decay(
        "linear",
        sw2,
        0.1,
        4,
        (n, n),
        q_star=1.0,
        c_star=0.3,
        modes=modes,
        width=96,
        kind="q",
        eps=0.2,
        v="binomial",
        n_draws=8,
        rng=13,
    )
    th = np.array([np.prod([np.cos(np.pi * f / n) ** 2 for f in m]) for m in modes]) * sw2
    z = np.abs(md.rate - th) / md.rate_stderr
    assert z.max() < zcrit(len(modes), dof=7), (md.rate, th)
    assert md.modes.shape == (2, 2)
