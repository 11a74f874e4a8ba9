"""The covariance map deep into both phases and at criticality, past every regime switch.

References, independent of cnnmft.covariance:

* ``_Reference``: the full (B N) x (B N) covariance matrix, one bivariate expectation per
  distinct pair of entries by a tensor Gauss-Hermite (200 nodes) or composite Gauss-Legendre
  rule (tanh, see ``_Reference.rule``) or the closed forms (erf arcsine, relu arc-cosine), and
  ``A`` by explicit circular ``np.roll`` of both pixel indices. Slow and plain; used for small
  grids up to a few hundred layers (thousands for the closed forms).
* exact identities for 1,000 and 10,000 layers: the variances equal ``q*`` and the off-diagonal
  entries ``q* c*`` of :func:`cnnmft.fixed_point` (a separate solver with its own tests); once
  the covariance is translation invariant every displacement follows the fully-connected
  correlation map, checked with :func:`cnnmft.meanfield.c_map`.

The contract: every layer within 1e-9 (relative to q*) of the reference.
"""

import numpy as np
import pytest
from scipy.special import roots_hermitenorm

import cnnmft._covariance_engine as engmod
import cnnmft.covariance as covmod
from cnnmft import critical_point, fixed_point, variance_profile
from cnnmft.covariance import covariance_map, propagate_covariance
from cnnmft.meanfield import c_map
from cnnmft.results import Status

CHAOS = (3.0, 0.05)  # tanh: q* = 1.428, c* = 0.299, chi_1 = 1.21 (chaotic)
ORDER = (1.2, 0.05)  # tanh: chi_1 < 1, c* = 1
CRIT = (1.760955, 0.05)  # tanh: chi_1 = 1 to about 1e-6
TOL = 1e-9


# ----------------------------------------------------------------------------- reference


class _Reference:
    """Plain full-matrix propagation of Sigma -> A * C(Sigma) (see the module docstring)."""

    def __init__(self, act, sw2, sb2, v, B, spatial):
        self.act, self.sw2, self.sb2, self.v = act, sw2, sb2, np.asarray(v, float)
        self.B, self.spatial = B, tuple(spatial)

    @staticmethod
    def rule(qmax):
        """Nodes and weights in z ~ N(0, 1) good to ~1e-15 for tanh(sqrt(q) z), q <= qmax.

        Gauss-Hermite (200 nodes) for q <= 1.5; a composite 10-point Gauss-Legendre rule on
        [-9, 9] with panels of width min(0.5, 0.6 / sqrt(q)) for larger variances (tanh is
        analytic in a strip of half-width pi / (2 sqrt(q)); Gauss-Hermite converges slowly).
        """
        if qmax <= 1.5:
            z, w = roots_hermitenorm(200)
            return z, w / w.sum()
        h = min(0.5, 0.6 / np.sqrt(qmax))
        n = int(np.ceil(18 / h))
        e = np.linspace(-9, 9, n + 1)
        x, wg = np.polynomial.legendre.leggauss(10)
        z = ((e[:-1] + e[1:])[:, None] / 2 + (e[1:] - e[:-1])[:, None] / 2 * x).ravel()
        w = ((e[1:] - e[:-1])[:, None] / 2 * wg).ravel() * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
        return z, w

    def expect(self, q1, q2, s):
        """E[phi(u1) phi(u2)] for (u1, u2) ~ N(0, [[q1, s], [s, q2]]) (flat arrays)."""
        if self.act == "erf":
            x = np.clip(2 * s / np.sqrt((1 + 2 * q1) * (1 + 2 * q2)), -1, 1)
            return 2 / np.pi * np.arcsin(x)
        sq = np.sqrt(q1 * q2)
        rho = np.clip(np.divide(s, sq, out=np.zeros_like(s), where=sq > 0), -1, 1)
        if self.act == "relu":
            return sq / (2 * np.pi) * (np.sqrt(1 - rho**2) + (np.pi - np.arccos(rho)) * rho)
        z, w = self.rule(float(max(q1.max(), q2.max())))
        # the integrand is even under (z1, z2) -> (-z1, -z2) (tanh is odd): keep z1 > 0, twice
        half = z > 0
        z1, w1 = z[half], 2 * w[half]
        out = np.empty(s.size)
        for lo in range(0, s.size, 16):
            sl = slice(lo, lo + 16)
            r = rho[sl, None, None]
            u1 = np.sqrt(q1[sl])[:, None] * z1[None, :]
            u2 = np.sqrt(q2[sl])[:, None, None] * (
                r * z1[None, :, None] + np.sqrt(1 - r * r) * z[None, None, :]
            )
            out[sl] = np.sum(np.tanh(u1) * (np.tanh(u2) @ w) * w1, axis=1)
        return out

    def apply_a(self, K):
        d = len(self.spatial)
        M = K.reshape((self.B,) + self.spatial + (self.B,) + self.spatial)
        out = np.zeros_like(M)
        axes = tuple(range(1, 1 + d)) + tuple(range(2 + d, 2 + 2 * d))
        for idx in np.ndindex(self.v.shape):
            if self.v[idx] == 0:
                continue
            off = [i - (k - 1) // 2 for i, k in zip(idx, self.v.shape)]
            out += self.v[idx] * np.roll(M, tuple(-o for o in off) * 2, axis=axes)
        return out.reshape(K.shape)

    def layers(self, x, depth):
        """Yield (layer, full matrix) for layers 0..depth."""
        x = np.asarray(x, float)
        X = x.reshape(-1, x.shape[-1])
        K = X @ X.T / x.shape[-1]
        yield 0, K
        K = self.sw2 * self.apply_a(K) + self.sb2
        yield 1, K
        iu = np.triu_indices(K.shape[0])
        for layer in range(2, depth + 1):
            d = np.diag(K)
            e = self.expect(d[iu[0]], d[iu[1]], K[iu])
            C = np.empty_like(K)
            C[iu] = self.sw2 * e + self.sb2
            C[iu[1], iu[0]] = C[iu]
            K = self.apply_a(C)
            yield layer, K


def _full(res, B, spatial, batched):
    N = int(np.prod(spatial))
    L = res.cov.shape[0]
    if batched:
        return res.cov.reshape((L, B, B, N, N)).transpose(0, 1, 3, 2, 4).reshape(L, B * N, B * N)
    return res.cov.reshape(L, N, N)


def _compare(x, act, sw2, sb2, v, depth, *, batched=False, **kw):
    """Max error over layers 0..depth (relative to q*) and the result."""
    B = x.shape[0] if batched else 1
    spatial = x.shape[1:-1] if batched else x.shape[:-1]
    res = propagate_covariance(x, act, sw2, sb2, v, depth, layers="all", **kw)
    assert res.status == Status.OK and res.completed == depth
    got = _full(res, B, spatial, batched)
    qs = float(fixed_point(act, sw2, sb2).q_star)
    err = 0.0
    ref = _Reference(act, sw2, sb2, v, B, spatial)
    for layer, K in ref.layers(x, depth):
        err = max(err, float(np.max(np.abs(got[layer] - K))) / qs)
    return err, res, got


def _fp(act, sw2, sb2):
    fp = fixed_point(act, sw2, sb2)
    return float(fp.q_star), float(fp.c_star)


def _offdiag(K):
    return K[~np.eye(K.shape[0], dtype=bool)]


# ----------------------------------------------------------------------------- vs reference


def test_chaotic_1d_every_layer_past_every_switch():
    """tanh, sigma_w2 = 3, uniform 3-tap kernel, random 8-pixel input, 250 layers: the
    per-pixel, common-variance, linear and translation-invariant regimes all occur."""
    x = np.random.default_rng(0).normal(size=(8, 3))
    v = variance_profile("uniform", 3, ndim=1)
    err, res, got = _compare(x, "tanh", *CHAOS, v, 250)
    assert 0 < res.common_layer < res.linear_layer < res.ti_layer < 250
    assert err <= TOL
    qs, cs = _fp("tanh", *CHAOS)
    assert np.max(np.abs(np.diagonal(got[100:], axis1=1, axis2=2) - qs)) <= TOL * qs
    assert np.max(np.abs(res.q_mean[100:, 0] - qs)) <= TOL * qs
    assert np.max(np.abs(_offdiag(got[-1]) - qs * cs)) <= TOL * qs


@pytest.mark.slow
def test_chaotic_1d_16_pixels_every_layer_to_300():
    """The reported case: random 16-pixel input (before the fix: error 5e-7 at layer 128, the
    variances collapsed to q* c* by layer 300)."""
    x = np.random.default_rng(0).normal(size=(16, 3))
    v = variance_profile("uniform", 3, ndim=1)
    err, res, got = _compare(x, "tanh", *CHAOS, v, 300)
    assert 0 < res.common_layer < res.linear_layer < res.ti_layer < 300
    assert err <= TOL


@pytest.mark.parametrize("sw2,sb2", [ORDER, CRIT])
def test_ordered_and_critical_1d_every_layer(sw2, sb2):
    x = np.random.default_rng(1).normal(size=(8, 3))
    v = variance_profile("uniform", 3, ndim=1)
    err, res, _ = _compare(x, "tanh", sw2, sb2, v, 250)
    assert res.common_layer > 0
    assert err <= TOL


def test_chaotic_batch_cross_input_entries():
    """Two inputs: the same-pixel cross-input entries are off-diagonal (correlation map), the
    diagonal of each input is a variance (pinned); a duplicated input stays identical."""
    rng = np.random.default_rng(2)
    x0 = 0.6 * rng.normal(size=(5, 2))
    x = np.stack([x0, 0.4 * rng.normal(size=(5, 2)), x0])
    v = np.array([0.25, 0.5, 0.25])
    err, res, got = _compare(x, "tanh", *CHAOS, v, 200, batched=True)
    assert res.common_layer > 0 and res.ti_layer > 0
    assert err <= TOL
    # input 0 and input 2 are the same: their cross block stays the auto block (to rounding;
    # correlation 1 is unstable in the chaotic phase, a drift would grow like chi_1^l)
    qs = _fp("tanh", *CHAOS)[0]
    assert np.max(np.abs(res.cov[:, 0, 2] - res.cov[:, 0, 0])) <= 1e-14 * qs
    np.testing.assert_array_equal(res.cov[-1, 0, 2], res.cov[-1, 0, 0])


def test_chaotic_delta_profile_tabulated(monkeypatch):
    """v = delta: each entry evolves alone; force the tabulated iterates on a small grid."""
    monkeypatch.setattr(covmod, "_TAB_MIN", 8)
    x = np.random.default_rng(3).normal(size=(8, 3))
    v = variance_profile("delta", 3, ndim=1)
    err, res, _ = _compare(x, "tanh", *CHAOS, v, 200)
    assert res.common_layer > 0
    assert err <= TOL


@pytest.mark.parametrize(
    "act,sw2,sb2", [("erf", 3.0, 0.05), ("erf", 1.375839, 0.05), ("relu", 1.5, 0.1)]
)
def test_closed_forms_1d_every_layer_to_2000(act, sw2, sb2):
    x = np.random.default_rng(4).normal(size=(16, 3))
    v = variance_profile("uniform", 3, ndim=1)
    err, res, got = _compare(x, act, sw2, sb2, v, 2000)
    assert err <= TOL
    qs, cs = _fp(act, sw2, sb2)
    assert np.max(np.abs(np.diagonal(got[-1]) - qs)) <= TOL * qs
    if act == "erf" and sw2 == 3.0:
        assert np.max(np.abs(_offdiag(got[-1]) - qs * cs)) <= TOL * qs


def test_erf_3d_chaotic_every_layer():
    x = np.random.default_rng(5).normal(size=(4, 4, 4, 2))
    v = variance_profile("binomial", (3, 3, 3))
    err, res, got = _compare(x, "erf", 3.0, 0.05, v, 400)
    assert err <= TOL
    qs, cs = _fp("erf", 3.0, 0.05)
    assert np.max(np.abs(_offdiag(got[-1]) - qs * cs)) <= TOL * qs


@pytest.mark.slow
def test_chaotic_2d_8x8_every_layer_to_200():
    """The reported 2D case (diagonal 1.2998 instead of 1.428 at layer 200 before the fix)."""
    x = np.random.default_rng(6).normal(size=(8, 8, 3))
    v = variance_profile("uniform", 3)
    err, res, _ = _compare(x, "tanh", *CHAOS, v, 200)
    assert res.linear_layer > 0
    assert err <= TOL


@pytest.mark.slow
@pytest.mark.parametrize("sw2,sb2", [CHAOS, ORDER, CRIT])
def test_binomial_2d_6x6_every_layer(sw2, sb2):
    x = np.random.default_rng(7).normal(size=(6, 6, 3))
    v = variance_profile("binomial", 3)
    err, res, _ = _compare(x, "tanh", sw2, sb2, v, 250)
    assert err <= TOL


@pytest.mark.slow
def test_tanh_3d_chaotic_every_layer():
    x = np.random.default_rng(8).normal(size=(4, 4, 4, 2))
    v = variance_profile("uniform", (3, 3, 3))
    err, res, _ = _compare(x, "tanh", *CHAOS, v, 150)
    assert err <= TOL


@pytest.mark.slow
def test_chaotic_1d_every_layer_to_1000():
    x = np.random.default_rng(0).normal(size=(16, 3))
    v = variance_profile("uniform", 3, ndim=1)
    err, _, _ = _compare(x, "tanh", *CHAOS, v, 1000)
    assert err <= TOL


# ----------------------------------------------------------------------------- deep identities


def _deep(x, act, sw2, sb2, v, layers, **kw):
    res = propagate_covariance(x, act, sw2, sb2, v, max(layers), layers=layers, **kw)
    assert res.status == Status.OK and res.completed == max(layers)
    return res, res.cov.reshape(len(layers), -1, int(np.sqrt(res.cov[0].size)))


@pytest.mark.parametrize("case", ["1d", "2d", "delta"])
def test_deep_chaotic_reaches_fully_connected_fixed_point(case):
    rng = np.random.default_rng(9)
    if case == "1d":
        x, v = rng.normal(size=(16, 3)), variance_profile("uniform", 3, ndim=1)
    elif case == "2d":
        x, v = rng.normal(size=(8, 8, 3)), variance_profile("uniform", 3)
    else:
        x, v = rng.normal(size=(8, 8, 3)), variance_profile("delta", 3)
    qs, cs = _fp("tanh", *CHAOS)
    res, K = _deep(x, "tanh", *CHAOS, v, [128, 1000, 10_000])
    for k in K:
        assert np.max(np.abs(np.diagonal(k) - qs)) <= TOL * qs
    for k in K[1:]:
        assert np.max(np.abs(_offdiag(k) - qs * cs)) <= TOL * qs
    assert np.max(np.abs(res.q_mean[128:] - qs)) <= TOL * qs


def _c_map_iterate(K, qs, sw2, sb2, n):
    c = np.clip(K[0] / qs, -1, 1)  # correlations of pixel 0 with every pixel
    for _ in range(n):
        c = np.asarray(c_map("tanh", c, qs, sw2, sb2))
    return qs * c


@pytest.mark.parametrize("sw2,sb2", [ORDER, CRIT, CHAOS])
def test_deep_translation_invariant_layers_follow_the_fully_connected_c_map(sw2, sb2):
    """Once translation invariant, every displacement obeys the fully-connected map: layer
    1,100 from layer 1,000 by 100 iterations of cnnmft.meanfield.c_map; layer 10,000 reaches
    q* on the diagonal and q* c* off it (geometric convergence off criticality)."""
    x = np.random.default_rng(10).normal(size=(12, 3))
    v = variance_profile("binomial", 3, ndim=1)
    res, K = _deep(x, "tanh", sw2, sb2, v, [1000, 1100, 10_000])
    assert 0 < res.ti_layer <= 1000
    qs, cs = _fp("tanh", sw2, sb2)
    for k in K:
        assert np.max(np.abs(np.diagonal(k) - qs)) <= TOL * qs
    assert np.max(np.abs(K[1][0] - _c_map_iterate(K[0], qs, sw2, sb2, 100))) <= TOL * qs
    if sw2 != CRIT[0]:
        assert np.max(np.abs(_offdiag(K[2]) - qs * cs)) <= TOL * qs
    else:  # 1 - c decays like 1 / l: closer to q* than at layer 1,000, not there yet
        assert np.all(_offdiag(K[2]) > _offdiag(K[0])) and np.all(_offdiag(K[2]) < qs)


@pytest.mark.slow
def test_critical_10000_layers_follow_the_fully_connected_c_map():
    x = np.random.default_rng(10).normal(size=(12, 3))
    v = variance_profile("binomial", 3, ndim=1)
    res, K = _deep(x, "tanh", *CRIT, v, [1000, 10_000])
    qs = _fp("tanh", *CRIT)[0]
    assert np.max(np.abs(K[1][0] - _c_map_iterate(K[0], qs, *CRIT, 9000))) <= TOL * qs


def _exact_critical(q_star):
    cp = critical_point("tanh", q_star)  # chi_1 = 1 exactly; chi_q = 0.98 at q* = 0.01
    return float(cp.sigma_w2), float(cp.sigma_b2)


@pytest.mark.parametrize("shape", [(8, 3), (16, 16, 3)])
def test_exact_critical_small_q_star_reaches_the_common_variance(shape):
    """At q* = 0.01 (chi_q = 0.98) the rounding of the q-map moves its fixed point by ~1e-13:
    the variances must still be recognised as converged (an absolute series tail, and then a
    tolerance too tight for 256 interpolated variances, kept v = delta per pixel for all
    layers), and end at the separate solver's q*."""
    sw2, sb2 = _exact_critical(0.01)
    x = np.random.default_rng(12).normal(size=shape)
    v = variance_profile("delta", 3, ndim=len(shape) - 1)
    res = propagate_covariance(x, "tanh", sw2, sb2, v, 2500)
    qs = _fp("tanh", sw2, sb2)[0]
    n = int(np.prod(shape[:-1]))
    assert 0 < res.common_layer < 2000
    assert np.max(np.abs(np.diag(res.cov[-1].reshape(n, n)) - qs)) <= 1e-12 * qs


@pytest.mark.slow
def test_exact_critical_small_q_star_delta_every_layer():
    sw2, sb2 = _exact_critical(0.01)
    x = np.random.default_rng(12).normal(size=(4, 3))
    err, res, got = _compare(x, "tanh", sw2, sb2, variance_profile("delta", 3, ndim=1), 2000)
    assert 0 < res.common_layer < 2000
    assert err <= TOL
    qs = _fp("tanh", sw2, sb2)[0]
    assert np.max(np.abs(np.diagonal(got[-1]) - qs)) <= 1e-12 * qs


# ----------------------------------------------------------------------------- determinism


def test_same_call_bit_identical_whatever_layers_chunks_progress_threads(monkeypatch):
    x = np.random.default_rng(11).normal(size=(9, 8, 2))
    v = variance_profile("uniform", 3)
    args = (x, "tanh", *CHAOS, v, 700)
    seen = []
    a = propagate_covariance(*args, layers="all")
    b = propagate_covariance(
        *args,
        layers=[57, 130, 300, 700],
        chunk_seconds=1e-9,
        progress=lambda done, total: seen.append(done),
    )
    monkeypatch.setattr(engmod, "_blocks", lambda work: 3)  # the row-block kernels
    c = propagate_covariance(*args, layers=[130, 700])
    assert len(seen) > 4 and seen[-1] == 700
    assert a.linear_layer > 0 and a.ti_layer > 0
    assert (a.common_layer, a.linear_layer, a.ti_layer) == (
        b.common_layer,
        b.linear_layer,
        b.ti_layer,
    )
    for res in (b, c):
        for i, layer in enumerate(res.layers):
            assert np.array_equal(res.cov[i], a.cov[layer])
    np.testing.assert_array_equal(a.q_mean, c.q_mean)


@pytest.mark.parametrize("act", ["erf", "relu", "linear"])
@pytest.mark.parametrize("kind", ["uniform", "delta"])
def test_closed_forms_bit_identical_whatever_layers_and_chunks(act, kind):
    """The closed-form layers run many at a time in one compiled call: where a call stops
    (requested layers, chunk size) changes neither the values nor the layer where the state
    becomes translation invariant."""
    x = np.random.default_rng(14).normal(size=(2, 6, 5, 2))
    v = variance_profile(kind, 3)
    sw2 = {"erf": 1.5, "relu": 1.9, "linear": 0.9}[act]
    args = (x, act, sw2, 0.05, v, 160)
    a = propagate_covariance(*args, layers="all")
    b = propagate_covariance(*args, layers=[1, 2, 37, 38, 99, 160], chunk_seconds=1e-9)
    assert a.ti_layer == b.ti_layer
    if kind == "uniform":
        assert 0 < a.ti_layer < 160
    for i, layer in enumerate(b.layers):
        assert np.array_equal(b.cov[i], a.cov[layer])
    np.testing.assert_array_equal(a.q_mean, b.q_mean)


def test_delta_tabulation_does_not_depend_on_requested_layers(monkeypatch):
    monkeypatch.setattr(covmod, "_TAB_MIN", 8)
    x = np.random.default_rng(12).normal(size=(16, 2))
    v = variance_profile("delta", 3, ndim=1)
    a = propagate_covariance(x, "tanh", *CHAOS, v, 400, layers=[90, 400])
    b = propagate_covariance(x, "tanh", *CHAOS, v, 400, layers=[90, 91, 250, 400])
    assert np.array_equal(a.cov[0], b.cov[0]) and np.array_equal(a.cov[1], b.cov[3])


# ----------------------------------------------------------------------------- covariance_map


def test_covariance_map_refuses_invalid_covariances():
    v = np.array([0.25, 0.5, 0.25])
    rng = np.random.default_rng(13)
    M = rng.normal(size=(6, 6))
    K = M @ M.T
    out = covariance_map(K, "erf", 1.5, 0.05, v)
    ref = _Reference("erf", 1.5, 0.05, v, 1, (6,))
    d = np.diag(K)
    C = 1.5 * ref.expect(d[:, None] + 0 * K, d[None, :] + 0 * K, K).reshape(6, 6) + 0.05
    np.testing.assert_allclose(out, ref.apply_a(C), atol=1e-14)
    asym = K.copy()
    asym[0, 1] += 1e-6
    with pytest.raises(ValueError, match="symmetric"):
        covariance_map(asym, "erf", 1.5, 0.05, v)
    lam, U = np.linalg.eigh(K)
    lam[0] = -1e-3 * lam[-1]
    with pytest.raises(ValueError, match="positive semi-definite"):
        covariance_map((U * lam) @ U.T, "erf", 1.5, 0.05, v)
    bad = K.copy()
    bad[2, 2] = np.inf
    with pytest.raises(ValueError, match="finite"):
        covariance_map(bad, "erf", 1.5, 0.05, v)
    # rounding-level asymmetry and a singular (rank-one) covariance are accepted
    r = rng.normal(size=6)
    covariance_map(np.outer(r, r) * (1 + 1e-15 * np.triu(np.ones((6, 6)))), "erf", 1.5, 0.05, v)


@pytest.mark.slow
def test_variances_beyond_the_series_range_use_the_direct_quadrature():
    # tanh at sigma_w2 = 200: q ~ 130, whose Hermite series would need ~26,000 terms (the
    # series is capped at 4096); the engine switches to the direct bivariate quadrature
    x = np.random.default_rng(7).standard_normal((8, 3))
    v = variance_profile("uniform", 3, ndim=1)
    err, res, _ = _compare(x, "tanh", 200.0, 0.05, v, 3)
    assert res.method == "direct"
    assert err <= TOL


def test_huge_variances_of_smooth_activations_answer_promptly():
    # softplus at sigma_w2 = 1e6 used to build a Hermite table of 2e8 terms (minutes, then
    # MemoryError); now the variances are served by the direct quadrature
    x = np.random.default_rng(8).standard_normal((4, 4, 3))
    res = propagate_covariance(x, "softplus", 1e6, 0.05, variance_profile("uniform", 3), 4)
    assert res.status == Status.OK and res.method == "direct"
    q = np.einsum("ijij->ij", res.cov[-1])
    assert np.all(np.isfinite(q)) and np.all(q > 0)


def test_mehler_coefficients_refuse_a_series_too_long_to_build():
    with pytest.raises(ValueError, match="`q` up to 1e\\+06 would need"):
        covmod.mehler_coefficients("tanh", [1e6])
