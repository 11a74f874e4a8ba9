"""CNN covariance map Sigma -> A * C(Sigma) (issue 3).

The reference here is written independently of cnnmft.covariance: the full (B N) x (B N)
covariance matrix, the map C by 80- or 120-point Gauss-Hermite tensor quadrature (tanh) or by the
closed forms (erf arcsine, relu arc-cosine), and A by explicit circular rolls of both pixel indices.
Reductions to the fully-connected network use cnnmft.meanfield (a separate code path).
"""

import numpy as np
import pytest
from scipy.special import roots_hermitenorm

import cnnmft._covariance_engine as engmod
import cnnmft.covariance as covmod
from cnnmft.covariance import covariance_map, propagate_covariance
from cnnmft.fourier import variance_profile
from cnnmft.meanfield import c_map, q_map
from cnnmft.results import Status

SW_CRIT, SB = 1.760955, 0.05


def _gh(n):
    z, w = roots_hermitenorm(n)
    return z, w / w.sum()


def _expect(act, q1, q2, s, nodes=100):
    q1, q2, s = np.broadcast_arrays(q1, q2, s)
    if act == "erf":
        x = np.clip(2 * s / np.sqrt((1 + 2 * q1) * (1 + 2 * q2)), -1, 1)
        return 2 / np.pi * np.arcsin(x)
    sq = np.sqrt(q1 * q2)
    rho = np.clip(np.divide(s, sq, out=np.zeros_like(s), where=sq > 0), -1, 1)
    if act == "relu":
        return sq / (2 * np.pi) * (np.sqrt(1 - rho**2) + (np.pi - np.arccos(rho)) * rho)
    z, w = _gh(nodes)
    u1 = np.sqrt(q1)[..., None, None] * z[:, None]
    u2 = np.sqrt(q2)[..., None, None] * (
        rho[..., None, None] * z[:, None] + np.sqrt(1 - rho**2)[..., None, None] * z[None, :]
    )
    return np.sum(w[:, None] * w[None, :] * np.tanh(u1) * np.tanh(u2), axis=(-2, -1))


def _apply_a(K, v, B, spatial):
    """[A * K]_{(a,alpha),(b,alpha')} = sum_beta v_beta K_{(a,alpha+beta),(b,alpha'+beta)}."""
    d = len(spatial)
    M = K.reshape((B,) + spatial + (B,) + spatial)
    out = np.zeros_like(M)
    for idx in np.ndindex(v.shape):
        if v[idx] == 0:
            continue
        off = [i - (k - 1) // 2 for i, k in zip(idx, v.shape)]
        shift = tuple(-o for o in off) * 2
        axes = tuple(range(1, 1 + d)) + tuple(range(2 + d, 2 + 2 * d))
        out += v[idx] * np.roll(M, shift, axis=axes)
    return out.reshape(K.shape)


def _reference(x, act, sw2, sb2, v, depth, nodes=100):
    """All layers 0..depth of the map, full matrices (B*N, B*N)."""
    x = np.asarray(x, float)
    batched = x.ndim == v.ndim + 2
    if not batched:
        x = x[None]
    B, spatial, c = x.shape[0], x.shape[1:-1], x.shape[-1]
    X = x.reshape(-1, c)
    K = X @ X.T / c
    out = [K]
    K = sw2 * _apply_a(K, v, B, spatial) + sb2
    out.append(K)
    for _ in range(depth - 1):
        d = np.diag(K)
        C = sw2 * _expect(act, d[:, None], d[None, :], K, nodes) + sb2
        K = _apply_a(C, v, B, spatial)
        out.append(K)
    return np.array(out), B, spatial


def _as_full(cov, B, spatial, batched):
    N = int(np.prod(spatial))
    L = cov.shape[0]
    if batched:
        c = cov.reshape((L, B, B, N, N)).transpose(0, 1, 3, 2, 4)
        return c.reshape(L, B * N, B * N)
    return cov.reshape(L, N, N)


# ----------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("act", ["tanh", "erf", "relu"])
def test_every_layer_matches_direct_quadrature_1d(act):
    rng = np.random.default_rng(1)
    x = 0.8 * rng.normal(size=(6, 3))
    v = np.array([0.2, 0.6, 0.2])
    sw2 = {"tanh": SW_CRIT, "erf": 1.375839, "relu": 1.9}[act]
    ref, B, sp = _reference(x, act, sw2, SB, v, 8, nodes=140)
    res = propagate_covariance(x, act, sw2, SB, v, 8, layers="all")
    assert res.status == Status.OK
    np.testing.assert_array_equal(res.layers, np.arange(9))
    got = _as_full(res.cov, B, sp, False)
    assert np.max(np.abs(got - ref)) <= 1e-9


@pytest.mark.parametrize("act", ["tanh", "erf"])
def test_batch_2d_cross_covariances_match_reference(act):
    rng = np.random.default_rng(2)
    x = 0.7 * rng.normal(size=(2, 4, 3, 2))
    v = variance_profile("binomial", 3)
    ref, B, sp = _reference(x, act, 1.6, 0.1, v, 4, nodes=120)
    res = propagate_covariance(x, act, 1.6, 0.1, v, 4, layers=[0, 1, 2, 4])
    assert res.cov.shape == (4, 2, 2, 4, 3, 4, 3)
    got = _as_full(res.cov, B, sp, True)
    assert np.max(np.abs(got - ref[[0, 1, 2, 4]])) <= 1e-9
    # symmetry of the returned covariance
    np.testing.assert_allclose(got, got.transpose(0, 2, 1), atol=0)


def test_asymmetric_and_even_kernel_2d():
    rng = np.random.default_rng(5)
    x = 0.7 * rng.normal(size=(5, 4, 2))
    v = rng.random((2, 3))
    v /= v.sum()
    ref, B, sp = _reference(x, "erf", 1.4, 0.05, v, 5)
    res = propagate_covariance(x, "erf", 1.4, 0.05, v, 5, layers="all")
    assert np.max(np.abs(_as_full(res.cov, B, sp, False) - ref)) <= 1e-12


def test_deep_critical_tanh_through_all_reductions():
    """200 layers at the critical point: per-pixel, common-variance and translation-invariant
    phases all occur and every layer stays within 1e-9 of the direct quadrature."""
    rng = np.random.default_rng(7)
    x = 0.6 * rng.normal(size=(8, 2))
    v = variance_profile("uniform", 3, ndim=1)
    depth = 200
    ref, B, sp = _reference(x, "tanh", SW_CRIT, SB, v, depth, nodes=80)
    res = propagate_covariance(x, "tanh", SW_CRIT, SB, v, depth, layers="all")
    assert 0 < res.common_layer < res.ti_layer < depth
    got = _as_full(res.cov, B, sp, False)
    assert np.max(np.abs(got - ref)) <= 1e-9
    np.testing.assert_allclose(
        res.q_mean[:, 0], np.diagonal(ref, axis1=1, axis2=2).mean(axis=1), atol=1e-9
    )


def test_delta_profile_tabulated_iterates(monkeypatch):
    """v = delta: after the variances settle every entry follows one scalar map, whose iterates
    are interpolated; force that path on a small grid and compare with the reference."""
    monkeypatch.setattr(covmod, "_TAB_MIN", 8)
    rng = np.random.default_rng(11)
    x = 0.6 * rng.normal(size=(9, 2))
    v = variance_profile("delta", 3, ndim=1)
    depth = 150
    ref, B, sp = _reference(x, "tanh", SW_CRIT, SB, v, depth, nodes=80)
    res = propagate_covariance(x, "tanh", SW_CRIT, SB, v, depth, layers=[60, 61, 100, 150])
    assert res.common_layer > 0
    got = _as_full(res.cov, B, sp, False)
    assert np.max(np.abs(got - ref[[60, 61, 100, 150]])) <= 1e-9


# ----------------------------------------------------------------------------- identities


def test_a_leaves_translation_invariant_matrices_unchanged():
    # linear activation, sigma_w2 = 1, sigma_b2 = 0: C is the identity, so the map is A alone
    rng = np.random.default_rng(0)
    n1, n2 = 5, 6
    # t(delta) = t(-delta) with a non-negative spectrum: a valid translation-invariant covariance
    t = np.fft.ifft2(np.abs(np.fft.fft2(rng.normal(size=(n1, n2)))) ** 2).real
    i = np.arange(n1)
    j = np.arange(n2)
    T = t[
        (i[None, None, :, None] - i[:, None, None, None]) % n1,
        (j[None, None, None, :] - j[None, :, None, None]) % n2,
    ]
    v = rng.random((3, 3))
    v /= v.sum()
    np.testing.assert_allclose(covariance_map(T, "linear", 1.0, 0.0, v), T, atol=1e-14)
    # and on a general matrix it is the explicit diagonal average
    M = rng.normal(size=(n1 * n2, n1 * n2))
    M = M @ M.T
    out = covariance_map(M.reshape(n1, n2, n1, n2), "linear", 1.0, 0.0, v)
    np.testing.assert_allclose(out.reshape(n1 * n2, -1), _apply_a(M, v, 1, (n1, n2)), atol=1e-12)


def test_delta_profile_is_fully_connected_map_per_pixel_pair():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 3, 5))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)  # every pixel has the same variance
    v = variance_profile("delta", 3)
    res = propagate_covariance(x, "tanh", 2.0, 0.05, v, 3, layers=[1, 2, 3])
    S1, S2, S3 = (r.reshape(9, 9)[:2] for r in res.cov)  # two rows keep c_map quick
    q1 = S1[0, 0]
    np.testing.assert_allclose(np.diag(S1), q1, rtol=1e-14)
    np.testing.assert_allclose(res.cov[0].reshape(9, 9).diagonal(), q1, rtol=1e-14)
    q2 = float(q_map("tanh", q1, 2.0, 0.05))
    np.testing.assert_allclose(res.cov[1].reshape(9, 9).diagonal(), q2, rtol=1e-12)
    c1 = np.clip(S1 / q1, -1, 1)
    np.testing.assert_allclose(S2 / q2, c_map("tanh", c1, q1, 2.0, 0.05), atol=1e-12)
    q3 = float(q_map("tanh", q2, 2.0, 0.05))
    c2 = np.clip(S2 / q2, -1, 1)
    np.testing.assert_allclose(S3 / q3, c_map("tanh", c2, q2, 2.0, 0.05), atol=1e-12)


def test_one_pixel_grid_is_fully_connected_network():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 1, 7))
    x /= np.linalg.norm(x, axis=-1, keepdims=True) / np.sqrt(7)  # both inputs: |x|^2 / c = 1
    res = propagate_covariance(x, "tanh", 1.5, 0.05, np.ones(1), 30, layers="all")
    q = 1.5 * 1.0 + 0.05
    c = float(x[0, 0] @ x[1, 0] / 7)
    cs = 1.5 * c + 0.05
    c = cs / q
    for layer in range(1, 31):
        S = res.cov[layer].reshape(2, 2)
        assert S[0, 0] == pytest.approx(q, rel=1e-12)
        assert S[0, 1] / S[0, 0] == pytest.approx(c, abs=1e-12)
        c = float(c_map("tanh", c, q, 1.5, 0.05))
        q = float(q_map("tanh", q, 1.5, 0.05))


def test_layer_zero_is_input_gram_and_default_is_last_layer():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(4, 4, 3))
    v = variance_profile("uniform", 3)
    res = propagate_covariance(x, "relu", 1.5, 0.1, v, 3, layers=[0])
    X = x.reshape(16, 3)
    np.testing.assert_allclose(res.cov[0].reshape(16, 16), X @ X.T / 3, atol=1e-15)
    last = propagate_covariance(x, "relu", 1.5, 0.1, v, 3)
    np.testing.assert_array_equal(last.layers, [3])
    assert last.completed == 3 and not last.interrupted
    empty = propagate_covariance(x, "relu", 1.5, 0.1, v, 0)
    np.testing.assert_array_equal(empty.layers, [0])


# ----------------------------------------------------------------------------- errors, interrupt


def test_bad_inputs():
    v = variance_profile("uniform", 3)
    x = np.ones((4, 4, 2))
    with pytest.raises(ValueError, match="larger than the grid"):
        propagate_covariance(np.ones((2, 4, 2)), "tanh", 1.5, 0.05, v, 3)
    with pytest.raises(ValueError, match="axes"):
        propagate_covariance(x, "tanh", 1.5, 0.05, np.ones((1, 1, 1, 3)) / 3, 3)
    with pytest.raises(ValueError, match="spatial axes"):
        propagate_covariance(np.ones((4, 2)), "tanh", 1.5, 0.05, v, 3)
    with pytest.raises(ValueError, match="depth"):
        propagate_covariance(x, "tanh", 1.5, 0.05, v, -1)
    bad = x.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        propagate_covariance(bad, "tanh", 1.5, 0.05, v, 3)
    with pytest.raises(ValueError, match="sigma_w2"):
        propagate_covariance(x, "tanh", 0.0, 0.05, v, 3)
    with pytest.raises(ValueError, match="layers"):
        propagate_covariance(x, "tanh", 1.5, 0.05, v, 3, layers=[5])
    with pytest.raises(ValueError, match="method"):
        propagate_covariance(x, "tanh", 1.5, 0.05, v, 3, method="fast")
    with pytest.raises(ValueError, match="sum to 1"):
        propagate_covariance(x, "tanh", 1.5, 0.05, 2 * v, 3)
    with pytest.raises(TypeError, match="variance_profile"):
        propagate_covariance(x, "tanh", 1.5, 0.05, "uniform", 3)


def test_interrupt_returns_partial_result():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(5, 5, 2))
    seen = []

    def stop(done, total):
        seen.append(done)
        if done >= 3:
            raise KeyboardInterrupt

    res = propagate_covariance(
        x, "erf", 1.4, 0.05, variance_profile("uniform", 3), 50, layers="all", progress=stop
    )
    assert res.interrupted and res.status == Status.INTERRUPTED
    assert res.completed == 3
    np.testing.assert_array_equal(res.layers, [0, 1, 2, 3])
    assert seen[-1] == 3


def test_overflow_is_reported_in_status():
    # relu with sigma_w2 > 2: the variance doubles per layer and overflows after ~1000 layers
    x = np.random.default_rng(1).normal(size=(4, 2))
    res = propagate_covariance(
        x, "relu", 4.0, 0.1, np.array([0.25, 0.5, 0.25]), 3000, layers=[10, 3000]
    )
    assert res.status == Status.NONFINITE
    assert res.completed < 3000
    np.testing.assert_array_equal(res.layers, [10])
    assert np.all(np.isfinite(res.cov))


@pytest.mark.parametrize("act", ["sigmoid", "gelu", "softplus", "swish"])
def test_other_smooth_activations_match_adaptive_quadrature(act):
    # the Mehler series (default) against the adaptive bivariate quadrature of every entry
    x = np.random.default_rng(0).normal(size=(5, 2))
    v = np.array([0.25, 0.5, 0.25])
    fast = propagate_covariance(x, act, 1.5, 0.1, v, 6, layers="all")
    assert fast.method == "mehler"
    ref = propagate_covariance(x, act, 1.5, 0.1, v, 6, layers="all", method="direct")
    assert np.max(np.abs(fast.cov - ref.cov)) <= 1e-12


def test_linear_regime_matches_full_layers(monkeypatch):
    """Deviations from translation invariance below 1e-8 evolve per Fourier mode; the result
    agrees with running every layer in full."""
    rng = np.random.default_rng(12)
    x = rng.normal(size=(9, 7, 2))
    v = variance_profile("binomial", 3)
    layers = [80, 150, 300, 600]
    fast = propagate_covariance(x, "tanh", SW_CRIT, SB, v, 600, layers=layers)
    monkeypatch.setattr(covmod, "_LIN_TOL", 0.0)
    full = propagate_covariance(x, "tanh", SW_CRIT, SB, v, 600, layers=layers)
    assert 0 < fast.linear_layer < fast.ti_layer and full.linear_layer == -1
    assert np.max(np.abs(fast.cov - full.cov)) <= 1e-12


def test_covariance_command_saves_result(tmp_path, capsys):
    import argparse

    from cnnmft.commands import covariance as cmd
    from cnnmft.covariance import CovarianceResult

    p = argparse.ArgumentParser()
    cmd.configure(p)
    out = tmp_path / "cov.npz"
    args = p.parse_args(
        [
            "--input",
            "random",
            "--grid",
            "5",
            "5",
            "--act",
            "erf",
            "--depth",
            "12",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert cmd.run(args) == 0
    assert "mean corr" in capsys.readouterr().out
    res = CovarianceResult.load(out)
    np.testing.assert_array_equal(res.layers, [1, 10, 12])
    assert res.cov.shape == (3, 5, 5, 5, 5)


def test_three_dimensional_grid():
    rng = np.random.default_rng(13)
    x = 0.7 * rng.normal(size=(3, 4, 3, 2))
    v = variance_profile("binomial", (3, 2, 3))
    ref, B, sp = _reference(x, "erf", 1.5, 0.05, v, 4)
    res = propagate_covariance(x, "erf", 1.5, 0.05, v, 4, layers="all")
    assert res.cov.shape == (5, 3, 4, 3, 3, 4, 3)
    assert np.max(np.abs(_as_full(res.cov, B, sp, False) - ref)) <= 1e-12


def test_pace_probes_the_slower_kernels_less_and_less_often(monkeypatch):
    """Serial vs row blocks: the loser is retried after 16, 32, 64, ... calls (at most 1024),
    and the schedule restarts when the winner changes. Synthetic timings, no clock."""
    monkeypatch.setattr(engmod, "_blocks", lambda work: 2)
    pace = engmod.Pace()
    cost = {1: 1.0, 2: 10.0}  # row blocks ten times slower (cores taken by other processes)
    picks = []
    for _ in range(3000):
        nb = pace.pick(10**9)
        picks.append(nb)
        pace.done(nb, cost[nb])
    probes = [i for i, nb in enumerate(picks[2:], start=2) if nb == 2]
    gaps = np.diff(probes).tolist()
    assert picks[:2] == [1, 2] and gaps[:6] == [32, 64, 128, 256, 512, 1024]
    assert len(probes) <= 8
    cost[1] = 100.0  # now serial loses: the next probe switches, then row blocks stay
    for _ in range(1100):
        nb = pace.pick(10**9)
        picks.append(nb)
        pace.done(nb, cost[nb])
    assert picks[-1] == 2 and picks[-1000:].count(1) <= 7


def test_branch_free_arcsine_of_the_erf_layers_against_mpmath():
    """The vectorisable arcsine of the closed-form erf layers (``_closed._asin``): within 3 ulp of
    mpmath's arcsine at 50 digits over [-1, 1], at the seams of its two formulas (0.5), at the
    ends (+-1, 1 - eps), tiny and subnormal arguments; NaN stays NaN; exact at 0 and +-1."""
    import math

    import mpmath
    import numba

    from cnnmft._kernels import _closed

    @numba.njit
    def asin_all(x, out):
        for i in range(x.shape[0]):
            out[i] = _closed._asin(x[i])

    rng = np.random.default_rng(7)
    eps = np.finfo(float).eps
    special = [0.0, 1.0, 0.5, np.nextafter(0.5, 0), np.nextafter(0.5, 1), 1 - eps / 2, 1 - eps]
    special += [1 - 1e-12, 0.975, 1e-8, 1e-200, 5e-324, 2.2e-308, 0.25, 0.7071067811865476]
    x = np.concatenate([special, rng.uniform(0, 1, 3000), 10.0 ** rng.uniform(-20, 0, 1000)])
    x = np.concatenate([x, -x])
    out = np.empty_like(x)
    asin_all(x, out)
    with mpmath.workdps(50):
        ref = np.array([float(mpmath.asin(mpmath.mpf(float(t)))) for t in x])
    ulp = np.spacing(np.abs(ref))
    ulp[ref == 0] = 5e-324
    assert np.max(np.abs(out - ref) / ulp) <= 3.0
    assert out[0] == 0.0 and out[1] == math.pi / 2 and out[len(x) // 2 + 1] == -math.pi / 2
    nan = np.array([np.nan])
    asin_all(nan, nan)
    assert np.isnan(nan[0])


@pytest.mark.parametrize("step", [1, 2])
def test_series_term_table_against_its_definition(step):
    """``_term_table``: per |rho| bin, the smallest n >= 1 with sum_{t >= n} max|c_t|^2 r^t <=
    tol (r = |rho| or rho^2), against that definition evaluated with exact-rounded sums."""
    import math

    from cnnmft._covariance_series import _term_table

    rng = np.random.default_rng(3)
    k = np.arange(60)
    coef = rng.normal(size=(5, 60)) * np.exp(-0.5 * k)[None, :]
    cmax2 = np.max(np.abs(coef), axis=0) ** 2
    tol = 1e-17
    got = _term_table(coef, step, nbins=32, tol=tol)
    for i in range(32):
        rho = (i + 1) / 32
        r = rho if step == 1 else rho * rho
        tails = [math.fsum(cmax2[t:] * r ** np.arange(t, 60)) for t in range(60)]
        want = next((t for t in range(60) if tails[t] <= tol), 60)
        assert got[i] == max(want, 1)


@pytest.mark.parametrize("act", ["tanh", "softplus", "swish"])
def test_mehler_coefficients_against_mpmath(act):
    """c_k(q) = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!) against mpmath quadrature at 30 digits,
    for an odd activation (its odd orders from half the rule, its even orders exactly 0) and
    two that are not odd, at small and large variances and orders up to 24."""
    import mpmath

    from cnnmft.activations import get_activation

    phis = {
        "tanh": mpmath.tanh,
        "softplus": lambda x: mpmath.log1p(mpmath.exp(x)),
        "swish": lambda x: x / (1 + mpmath.exp(-x)),
    }
    ks = [0, 1, 2, 3, 5, 8, 13, 24]
    qs = np.array([0.3, 2.5])
    coef, _ = covmod.mehler_coefficients(act, qs, kmax=64)
    odd = get_activation(act).odd
    with mpmath.workdps(30):
        for i, q in enumerate(qs):
            sq = mpmath.sqrt(q)
            for k in ks:
                if odd and k % 2 == 0:
                    assert coef[i, k] == 0.0
                    continue

                def f(z, k=k):
                    he = mpmath.hermite(k, z / mpmath.sqrt(2)) / mpmath.sqrt(2) ** k
                    return phis[act](sq * z) * he * mpmath.npdf(z)

                ref = mpmath.quad(f, [-mpmath.inf, -6, -2, 0, 2, 6, mpmath.inf])
                ref /= mpmath.sqrt(mpmath.factorial(k))
                assert abs(coef[i, k] - float(ref)) <= 2e-15 * max(1.0, abs(float(ref))), (q, k)
