"""Variance profiles, mode eigenvalues, per-mode depth scales, linearised spectrum (issue 3).

Oracles: closed forms (Dirichlet kernel, cos^2, the t-family formula), the [D] tables of
docs/theory.md section 2.4 and section 4.3, the fully-connected depth scales of
cnnmft.fixed_point, and a finite-difference Jacobian of the covariance map computed here with an
independent Gauss-Hermite implementation of the map.
"""

import numpy as np
import pytest
from scipy.special import roots_hermitenorm

from cnnmft.fourier import (
    linearized_spectrum,
    mode_depth_scales,
    mode_eigenvalues,
    variance_profile,
)
from cnnmft.meanfield import fixed_point

# ----------------------------------------------------------------------------- profiles


@pytest.mark.parametrize("kind", ["uniform", "delta", "binomial"])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, (3, 5), (2, 4), (3, 3, 3), (2, 2, 2)])
def test_profile_normalised_nonnegative(kind, size):
    v = variance_profile(kind, size)
    shape = (size,) * 2 if isinstance(size, int) else size
    assert v.shape == shape
    assert np.all(v >= 0)
    assert v.sum() == pytest.approx(1.0, abs=1e-15)


def test_profile_values():
    np.testing.assert_allclose(
        variance_profile("binomial", 5, ndim=1), np.array([1, 4, 6, 4, 1]) / 16, rtol=0, atol=1e-16
    )
    np.testing.assert_allclose(variance_profile("uniform", 3), np.full((3, 3), 1 / 9), atol=1e-16)
    d = variance_profile("delta", 4, ndim=1)
    np.testing.assert_array_equal(d, [0, 1, 0, 0])  # centre (k - 1) // 2
    b = variance_profile("binomial", 3)
    np.testing.assert_allclose(b, np.outer([1, 2, 1], [1, 2, 1]) / 16, atol=1e-16)


@pytest.mark.parametrize("t", [0.0, 0.1, 0.25, 0.5])
def test_tunable_family(t):
    w = variance_profile("tunable", 3, ndim=1, t=t)
    np.testing.assert_allclose(w, [t * (1 - t), (1 - t) ** 2 + t**2, t * (1 - t)], atol=1e-15)
    np.testing.assert_allclose(variance_profile("tunable", 3, t=t), np.outer(w, w), atol=1e-15)


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_tunable_end_points(k):
    np.testing.assert_allclose(
        variance_profile("tunable", k, ndim=1, t=0.0),
        variance_profile("delta", k, ndim=1),
        atol=1e-15,
    )
    np.testing.assert_allclose(
        variance_profile("tunable", k, ndim=1, t=0.5),
        variance_profile("binomial", k, ndim=1),
        atol=1e-15,
    )


def test_tunable_energy_theory_4_3():
    # THEORY 4.3 [D]: t = 0.1 -> centre 0.6724, edges 0.0738, corners 0.0081
    v = variance_profile("tunable", 3, t=0.1)
    assert v[1, 1] == pytest.approx(0.6724, abs=1e-4)
    assert v[0, 1] == pytest.approx(0.0738, abs=1e-4)
    assert v[0, 0] == pytest.approx(0.0081, abs=1e-4)


def test_user_array_normalised_or_rejected():
    v = variance_profile([1.0, 2.0, 1.0])
    np.testing.assert_allclose(v, [0.25, 0.5, 0.25])
    with pytest.raises(ValueError, match="sum to 1"):
        variance_profile([1.0, 2.0, 1.0], normalize=False)
    with pytest.raises(ValueError, match="v"):
        variance_profile([1.0, -0.1, 1.0])
    with pytest.raises(ValueError, match="positive sum"):
        variance_profile([0.0, 0.0])
    with pytest.raises(ValueError, match="finite"):
        variance_profile([np.nan, 1.0])
    with pytest.raises(ValueError, match="axes"):
        variance_profile(np.ones((2, 2, 2, 2)))


def test_profile_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        variance_profile("gaussian", 3)
    with pytest.raises(ValueError, match="`t`"):
        variance_profile("tunable", 3)
    with pytest.raises(ValueError, match="`t`"):
        variance_profile("tunable", 3, t=0.7)
    with pytest.raises(ValueError, match="`t`"):
        variance_profile("uniform", 3, t=0.1)
    with pytest.raises(ValueError, match="kernel_size"):
        variance_profile("uniform", 0)
    with pytest.raises(ValueError, match="kernel_size"):
        variance_profile("uniform", None)


# ----------------------------------------------------------------------------- eigenvalues


@pytest.mark.parametrize("n", [5, 6, 7, 8, 16])
@pytest.mark.parametrize("m", [0, 1, 2])
def test_uniform_1d_is_dirichlet_kernel(n, m):
    k = 2 * m + 1
    if k > n:
        pytest.skip("kernel larger than grid")
    lam = mode_eigenvalues(variance_profile("uniform", k, ndim=1), n)
    f = np.arange(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.sin(k * np.pi * f / n) / (k * np.sin(np.pi * f / n))
    ref[0] = 1.0
    np.testing.assert_allclose(lam.real, ref, atol=1e-14)
    np.testing.assert_allclose(lam.imag, 0, atol=1e-15)


def test_binomial_and_tunable_closed_forms():
    n = 9
    theta = 2 * np.pi * np.arange(n) / n
    lam = mode_eigenvalues(variance_profile("binomial", 3, ndim=1), n)
    np.testing.assert_allclose(lam.real, np.cos(theta / 2) ** 2, atol=1e-15)
    t = 0.2
    lam = mode_eigenvalues(variance_profile("tunable", 3, ndim=1, t=t), n)
    np.testing.assert_allclose(lam.real, 1 - 2 * t * (1 - t) * (1 - np.cos(theta)), atol=1e-15)


def test_separable_2d_is_product_and_sign_convention():
    rng = np.random.default_rng(3)
    a, b = rng.random(3), rng.random(4)
    a /= a.sum()
    b /= b.sum()
    lam = mode_eigenvalues(np.outer(a, b), (7, 9))
    la = mode_eigenvalues(a, 7)
    lb = mode_eigenvalues(b, 9)
    np.testing.assert_allclose(lam, np.outer(la, lb), atol=1e-15)
    # explicit DFT with the + sign and offsets j - (k - 1) // 2
    f = np.arange(7)
    beta = np.arange(3) - 1
    ref = (a[None, :] * np.exp(2j * np.pi * f[:, None] * beta[None, :] / 7)).sum(axis=1)
    np.testing.assert_allclose(la, ref, atol=1e-15)


@pytest.mark.parametrize(
    "kind, n, second, smallest",
    [
        ("uniform", 8, 0.80474, 0.0191),
        ("uniform", 7, 0.74899, 0.0342),
        ("binomial", 8, 0.85355, 0.0),
        ("binomial", 7, 0.81174, 0.00245),
    ],
)
def test_theory_table_2_4(kind, n, second, smallest):
    mag = np.sort(np.abs(mode_eigenvalues(variance_profile(kind, 3), (n, n))).ravel())[::-1]
    assert mag[0] == pytest.approx(1.0, abs=1e-15)
    assert mag[1] == pytest.approx(second, abs=1e-5)
    assert mag[-1] == pytest.approx(smallest, abs=1e-4)


def test_eigenvalue_invariants_random_profiles():
    rng = np.random.default_rng(0)
    for _ in range(20):
        shape = tuple(rng.integers(1, 5, size=rng.integers(1, 4)))
        v = rng.random(shape)
        grid = tuple(s + int(rng.integers(0, 4)) for s in shape)
        lam = mode_eigenvalues(v / v.sum(), grid)
        assert lam.shape == grid
        assert lam.flat[0] == pytest.approx(1.0, abs=1e-14)
        assert np.all(np.abs(lam) <= 1 + 1e-14)


def test_delta_all_ones():
    lam = mode_eigenvalues(variance_profile("delta", 3), (5, 6))
    np.testing.assert_allclose(lam, 1.0, atol=1e-15)


def test_eigenvalue_errors():
    v = variance_profile("uniform", 3)
    with pytest.raises(ValueError, match="axes"):
        mode_eigenvalues(v, 8)
    with pytest.raises(ValueError, match="larger than the grid"):
        mode_eigenvalues(v, (2, 8))
    with pytest.raises(TypeError, match="variance_profile"):
        mode_eigenvalues("uniform", (8, 8))


# ----------------------------------------------------------------------------- depth scales


def test_zero_mode_is_fully_connected_and_delta_gives_it_everywhere():
    sw = np.array([1.0, 1.5, 2.5, 4.0])
    fp = fixed_point("tanh", sw, 0.05)
    r = mode_depth_scales("tanh", sw, 0.05, variance_profile("uniform", 3), (8, 8))
    np.testing.assert_allclose(r.xi_c[:, 0, 0], fp.xi_c, rtol=1e-14)
    np.testing.assert_allclose(r.xi_q[:, 0, 0], fp.xi_q, rtol=1e-14)
    assert np.all(r.xi_c <= r.xi_c[:, :1, :1] + 1e-12)
    d = mode_depth_scales("tanh", sw, 0.05, variance_profile("delta", 3), (8, 8))
    np.testing.assert_allclose(
        d.xi_c, np.broadcast_to(fp.xi_c[:, None, None], d.xi_c.shape), rtol=1e-12
    )


def test_mode_depth_scales_theory_2_4():
    # THEORY 2.4 [D]: tanh, sigma_b2 = 0.05, sigma_w2 = 1.5, uniform 3x3 on 8x8
    r = mode_depth_scales("tanh", 1.5, 0.05, variance_profile("uniform", 3), (8, 8))
    vals = np.unique(np.round(r.xi_c, 2))[::-1]
    np.testing.assert_allclose(vals[:4], [15.79, 3.56, 2.01, 0.86], atol=0.006)
    # at criticality the non-zero modes do not depend on sigma: xi = -1/log|lam|
    crit = mode_depth_scales("tanh", 1.760955, 0.05, variance_profile("binomial", 3), (8, 8))
    mag = np.abs(crit.lam)
    sel = (mag < 0.999) & (mag > 0)
    chi = float(crit.chi_c)
    np.testing.assert_allclose(crit.xi_c[sel], -1 / np.log(chi * mag[sel]), rtol=1e-12)
    assert np.max(crit.xi_c[sel]) == pytest.approx(6.315, abs=2e-3)


def test_tunable_mode_depth_scales_theory_4_3():
    # THEORY 4.3 [D]: first non-zero mode on 8x8 at criticality: 18.5 (t=0.1), 8.6 (0.25), 6.3 (0.5)
    for t, ref in [(0.1, 18.5), (0.25, 8.6), (0.5, 6.3)]:
        lam = np.abs(mode_eigenvalues(variance_profile("tunable", 3, t=t), (8, 8)))
        assert -1 / np.log(np.sort(lam.ravel())[-2]) == pytest.approx(ref, abs=0.05)


# ----------------------------------------------------------------------------- spectrum

_Z, _W = roots_hermitenorm(80)
_W = _W / _W.sum()


def _c_gh(q1, q2, s, sw2, sb2):
    """Independent reference: sigma_w2 E[tanh(u1) tanh(u2)] + sigma_b2 by 80x80 Gauss-Hermite."""
    q1, q2, s = np.broadcast_arrays(*(np.asarray(t, dtype=float) for t in (q1, q2, s)))
    a = np.sqrt(q1)[..., None, None]
    rho = np.clip(s / np.sqrt(q1 * q2), -1, 1)[..., None, None]
    b = np.sqrt(q2)[..., None, None]
    z1 = _Z[:, None]
    z2 = _Z[None, :]
    u1 = a * z1
    u2 = b * (rho * z1 + np.sqrt(1 - rho**2) * z2)
    w = _W[:, None] * _W[None, :]
    return sw2 * np.sum(w * np.tanh(u1) * np.tanh(u2), axis=(-2, -1)) + sb2


def _map_1d(sig, v, sw2, sb2):
    d = np.diag(sig)
    C = _c_gh(d[:, None], d[None, :], sig, sw2, sb2)
    out = np.zeros_like(C)
    offs = np.arange(len(v)) - (len(v) - 1) // 2
    for w, o in zip(v, offs):
        out += w * np.roll(np.roll(C, -o, axis=0), -o, axis=1)
    return out


def test_linearized_spectrum_matches_finite_differences_and_theory():
    n, v, sw2, sb2 = 6, np.array([0.2, 0.6, 0.2]), 2.5, 0.05
    fp = fixed_point("tanh", sw2, sb2)
    q, c = float(fp.q_star), float(fp.c_star)
    star = q * ((1 - c) * np.eye(n) + c)
    iu = np.triu_indices(n)
    base = _map_1d(star, v, sw2, sb2)
    np.testing.assert_allclose(base, star, atol=1e-10)  # it is the fixed point
    h = 1e-5
    J = np.empty((iu[0].size, iu[0].size))
    for j, (a, b) in enumerate(zip(*iu)):
        E = np.zeros((n, n))
        E[a, b] = E[b, a] = 1.0
        up = _map_1d(star + h * E, v, sw2, sb2)
        down = _map_1d(star - h * E, v, sw2, sb2)
        J[:, j] = (up - down)[iu] / (2 * h)
    fd = np.sort(np.linalg.eigvals(J).real)[::-1]
    ours = linearized_spectrum("tanh", sw2, sb2, v, n)
    assert ours.size == n * (n + 1) // 2
    np.testing.assert_allclose(ours, fd, atol=2e-6)
    # THEORY 2.4 [D] list
    ref = (
        [0.91872] * 3
        + [0.73497] * 4
        + [0.42846]
        + [0.36749] * 6
        + [0.34277] * 2
        + [0.18374] * 2
        + [0.17139] * 2
        + [0.08569]
    )
    np.testing.assert_allclose(ours, sorted(ref, reverse=True), atol=1e-5)


def test_linearized_spectrum_counts():
    e = linearized_spectrum("tanh", 1.5, 0.05, variance_profile("uniform", 3), (4, 4), n_inputs=2)
    N = 16
    assert e.size == 2 * N * (N + 1) // 2 + N * N


def test_modes_command_writes_numbers(tmp_path, capsys):
    import argparse

    from cnnmft.commands import modes

    p = argparse.ArgumentParser()
    modes.configure(p)
    out = tmp_path / "modes.csv"
    args = p.parse_args(
        ["--sigma-w2", "1.5", "--profile", "binomial", "--grid", "6", "5", "--out", str(out)]
    )
    assert modes.run(args) == 0
    assert "xi_c" in capsys.readouterr().out
    data = np.genfromtxt(out, delimiter=",", names=True)
    assert data.size == 30
    r = mode_depth_scales("tanh", 1.5, 0.05, variance_profile("binomial", 3), (6, 5))
    np.testing.assert_allclose(data["xi_c"], r.xi_c.ravel(), rtol=1e-12)
    np.testing.assert_allclose(data["abs_lam"], np.abs(r.lam).ravel(), atol=1e-15)
