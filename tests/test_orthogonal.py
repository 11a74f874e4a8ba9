"""Tests of cnnmft.orthogonal against independent references.

References used here: a dense circular-convolution matrix built tap by tap with ``np.roll`` and
diagonalised by a plain SVD; exact identities (Parseval, P(I-P)=0 consequences); binomial and
tunable profiles recomputed here from their closed forms; scipy.stats.ortho_group as an
independent Haar sampler; Monte Carlo means compared within a few standard errors.
"""

import zlib
from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from cnnmft.orthogonal import (
    block_orthogonal,
    conv_singular_values,
    delta_orthogonal,
    gaussian_kernel,
    haar_orthogonal,
    tap_energy,
    tunable_orthogonal,
)


# ------------------------------------------------------------------------------------------
# independent references
# ------------------------------------------------------------------------------------------
def circ_conv(kernel, x):
    """y_j(a) = sum_i sum_b K[j,i,b] x_i(a + b - (k-1)//2), indices mod n (explicit taps)."""
    d = kernel.ndim - 2
    ks = kernel.shape[2:]
    y = np.zeros((kernel.shape[0],) + x.shape[1:])
    for pos in np.ndindex(*ks):
        shift = tuple(-(p - (k - 1) // 2) for p, k in zip(pos, ks))
        xs = np.roll(x, shift, axis=tuple(range(1, 1 + d)))
        y += np.tensordot(kernel[(slice(None), slice(None)) + pos], xs, axes=(1, 0))
    return y


def zero_pad_conv(kernel, x):
    """Same as circ_conv but with zero padding ("SAME", (k-1)//2 cells before)."""
    d = kernel.ndim - 2
    ks = kernel.shape[2:]
    grid = x.shape[1:]
    pads = [(0, 0)] + [((k - 1) // 2, k // 2) for k in ks]
    xp = np.pad(x, pads)
    y = np.zeros((kernel.shape[0],) + grid)
    for pos in np.ndindex(*ks):
        sl = (slice(None),) + tuple(slice(p, p + n) for p, n in zip(pos, grid))
        y += np.tensordot(kernel[(slice(None), slice(None)) + pos], xp[sl], axes=(1, 0))
    assert d == len(grid)
    return y


def dense_operator(kernel, grid):
    c_in = kernel.shape[1]
    n_in = c_in * int(np.prod(grid))
    cols = []
    for e in np.eye(n_in):
        cols.append(circ_conv(kernel, e.reshape((c_in,) + tuple(grid))).ravel())
    return np.array(cols).T


def binomial_1d(k):
    return np.array([comb(k - 1, j) for j in range(k)], float) / 2.0 ** (k - 1)


def tunable_1d(k, t):
    # rank fractions alternate 1-t, t, 1-t, ...; each block puts (rho, 1-rho) on two taps
    w = np.ones(1)
    for b in range(k - 1):
        rho = 1 - t if b % 2 == 0 else t
        w = np.convolve(w, [rho, 1 - rho])
    return w


def outer(ws):
    out = np.ones(())
    for w in ws:
        out = np.multiply.outer(out, w)
    return out


# ------------------------------------------------------------------------------------------
# conv_singular_values
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,grid",
    [
        ((3, 2, 3), (5,)),
        ((2, 3, 2), (4,)),  # c_in > c_out
        ((2, 2, 4), (3,)),  # kernel larger than the grid: taps wrap
        ((2, 3, 2, 3), (3, 4)),
        ((2, 2, 2, 2, 2), (2, 3, 2)),
    ],
)
def test_conv_singular_values_match_dense_svd(shape, grid):
    rng = np.random.default_rng(1)
    kern = rng.standard_normal(shape)
    dense = dense_operator(kern, grid)
    ref = np.sort(np.linalg.svd(dense, compute_uv=False))[::-1][: min(shape[:2]) * np.prod(grid)]
    got = conv_singular_values(kern, grid)
    assert got.shape == tuple(grid) + (min(shape[:2]),)
    np.testing.assert_allclose(np.sort(got.ravel())[::-1], ref, rtol=1e-12, atol=1e-12)


def test_conv_singular_values_parseval():
    rng = np.random.default_rng(2)
    kern = gaussian_kernel((7, 5, 3, 3), 1.7, "uniform", rng)
    s = conv_singular_values(kern, (6, 6))
    np.testing.assert_allclose((s**2).sum(), 36 * (kern**2).sum(), rtol=1e-12)


def test_conv_singular_values_errors():
    with pytest.raises(ValueError, match="spatial_shape"):
        conv_singular_values(np.zeros((2, 2, 3, 3)), (4,))
    with pytest.raises(ValueError, match="kernel"):
        conv_singular_values(np.zeros((2, 2)), 4)
    with pytest.raises(ValueError, match="kernel"):
        conv_singular_values(np.full((2, 2, 3), np.nan), 4)


# ------------------------------------------------------------------------------------------
# exact isometry
# ------------------------------------------------------------------------------------------
ISO_CASES = (
    [((6, 4, k), (9,)) for k in range(1, 8)]
    + [((5, 3, k, k), (8, 8)) for k in range(1, 8)]
    + [((4, 4, 3, 5), (6, 7)), ((4, 2, 2, 1), (5, 3))]
    + [((3, 2, k, k, k), (4, 4, 5)) for k in (1, 2, 3, 4)]
)


@pytest.mark.parametrize("shape,grid", ISO_CASES)
@pytest.mark.parametrize("gen", ["delta", "block", "tunable"])
def test_operator_is_exact_isometry(shape, grid, gen):
    sigma_w2 = 1.7
    rng = np.random.default_rng(zlib.crc32(repr((shape, gen)).encode()))
    if gen == "delta":
        kern = delta_orthogonal(shape, sigma_w2, rng)
    elif gen == "block":
        kern = block_orthogonal(shape, sigma_w2, rng)
    else:
        kern = tunable_orthogonal(shape, sigma_w2, 0.2, rng)
    assert kern.shape == shape and kern.dtype == np.float64
    s = conv_singular_values(kern, grid)
    np.testing.assert_allclose(s, np.sqrt(sigma_w2), rtol=1e-12)


@pytest.mark.parametrize("shape", [(6, 4, 3), (6, 3, 4, 4), (4, 4, 2, 3), (3, 2, 3, 3, 3)])
def test_norm_preserved_by_direct_circular_convolution(shape):
    rng = np.random.default_rng(3)
    d = len(shape) - 2
    grid = (7, 6, 5)[:d]
    for kern in (
        block_orthogonal(shape, 2.5, rng),
        tunable_orthogonal(shape, 2.5, 0.3, rng),
        delta_orthogonal(shape, 2.5, rng),
    ):
        for _ in range(3):
            x = rng.standard_normal((shape[1],) + grid)
            y = circ_conv(kern, x)
            np.testing.assert_allclose(
                np.linalg.norm(y), np.sqrt(2.5) * np.linalg.norm(x), rtol=1e-12
            )


@pytest.mark.parametrize("shape", [(8, 5, 3), (8, 8, 4), (6, 3, 2, 4), (4, 4, 3, 3, 3)])
def test_delta_orthogonal_isometry_under_zero_padding(shape):
    rng = np.random.default_rng(4)
    kern = delta_orthogonal(shape, 3.14**2, rng)
    d = len(shape) - 2
    x = rng.standard_normal((shape[1],) + (5, 4, 6)[:d])
    np.testing.assert_allclose(
        np.linalg.norm(zero_pad_conv(kern, x)), 3.14 * np.linalg.norm(x), rtol=1e-12
    )


def test_block_orthogonal_not_isometric_under_zero_padding():
    # the boundary breaks exact isometry (documented); shows the zero-padding test has teeth
    rng = np.random.default_rng(5)
    kern = block_orthogonal((8, 8, 3, 3), 1.0, rng)
    x = rng.standard_normal((8, 4, 4))
    ratio = np.linalg.norm(zero_pad_conv(kern, x)) / np.linalg.norm(x)
    assert abs(ratio - 1) > 1e-3


def test_delta_orthogonal_structure_and_even_centre():
    rng = np.random.default_rng(6)
    kern = delta_orthogonal((7, 3, 4, 5), 2.0, rng)
    h = kern[:, :, 1, 2]  # (k-1)//2 = 1 for k = 4, 2 for k = 5
    np.testing.assert_allclose(h.T @ h, 2.0 * np.eye(3), atol=1e-13)
    mask = np.ones((4, 5), bool)
    mask[1, 2] = False
    assert np.all(kern[:, :, mask] == 0)


def test_tunable_endpoints():
    rng = np.random.default_rng(7)
    kern = tunable_orthogonal((6, 4, 4, 3), 1.0, 0.0, rng)
    e = tap_energy(kern)
    ref = np.zeros((4, 3))
    ref[1, 1] = 1.0
    np.testing.assert_allclose(e, ref, atol=1e-13)
    h = kern[:, :, 1, 1]
    np.testing.assert_allclose(h.T @ h, np.eye(4), atol=1e-13)


def test_tunable_half_is_algorithm_1():
    # t = 1/2: every projection has rank law Binomial(c, 1/2), the same draws as Algorithm 1
    a = tunable_orthogonal((8, 6, 4, 4), 1.0, 0.5, 3)
    b = block_orthogonal((8, 6, 4, 4), 1.0, 3)
    np.testing.assert_array_equal(a, b)


def test_parseval_total_energy_is_exact():
    rng = np.random.default_rng(8)
    for kern in (
        block_orthogonal((9, 5, 4, 4), 0.7, rng),
        tunable_orthogonal((9, 5, 5), 0.7, 0.1, rng),
    ):
        np.testing.assert_allclose((kern**2).sum(), 0.7 * 5, rtol=1e-12)


def test_sigma_w2_zero_gives_zero_kernel():
    assert not block_orthogonal((4, 4, 3), 0.0, 0).any()


# ------------------------------------------------------------------------------------------
# tap-energy profiles: Monte Carlo within the standard error
# ------------------------------------------------------------------------------------------
def _mc_profile(draw, n):
    es = np.array([tap_energy(draw(i)) for i in range(n)])
    return es.mean(axis=0), es.std(axis=0, ddof=1) / np.sqrt(n)


def _assert_profile(mean, se, ref):
    z = np.abs(mean - ref) / np.maximum(se, 1e-15)
    assert np.all((z < 5.0) | (np.abs(mean - ref) < 1e-12)), (mean, ref, z.max())


@pytest.mark.parametrize("ks", [(3, 3), (4,), (2, 3)])
def test_block_orthogonal_profile_is_binomial(ks):
    rng = np.random.default_rng(9)
    mean, se = _mc_profile(lambda i: block_orthogonal((24, 16) + ks, 1.0, rng), 150)
    ref = outer([binomial_1d(k) for k in ks])
    _assert_profile(mean, se, ref)
    # the profile is not uniform (test has power): centre of 3x3 is 1/4, not 1/9
    if ks == (3, 3):
        assert abs(mean[1, 1] - 0.25) < 0.02 and abs(mean[0, 0] - 1 / 16) < 0.01


@pytest.mark.parametrize("ks,t", [((3, 3), 0.1), ((5,), 0.25), ((4, 4), 0.3)])
def test_tunable_profile_matches_family_formula(ks, t):
    rng = np.random.default_rng(10)
    mean, se = _mc_profile(lambda i: tunable_orthogonal((20, 12) + ks, 1.0, t, rng), 150)
    _assert_profile(mean, se, outer([tunable_1d(k, t) for k in ks]))


def test_tunable_profile_matches_variance_profile():
    fourier = pytest.importorskip("cnnmft.fourier")
    rng = np.random.default_rng(11)
    mean, se = _mc_profile(lambda i: tunable_orthogonal((20, 20, 3, 3), 1.0, 0.1, rng), 150)
    _assert_profile(mean, se, fourier.variance_profile("tunable", (3, 3), t=0.1))
    # docs/theory.md 4.3 [D]: centre (1-t)^2+t^2 squared = 0.6724 at t = 0.1
    assert abs(mean[1, 1] - 0.6724) < 0.02
    mean, se = _mc_profile(lambda i: block_orthogonal((20, 20, 3, 3), 1.0, rng), 100)
    _assert_profile(mean, se, fourier.variance_profile("binomial", (3, 3)))


def test_fixed_rank_mode_profile():
    # c_out even, t = 1/2: ranks exactly c/2, expected profile exactly binomial
    rng = np.random.default_rng(12)
    mean, se = _mc_profile(lambda i: block_orthogonal((16, 8, 3), 1.0, rng, rank="fixed"), 150)
    _assert_profile(mean, se, binomial_1d(3))
    # t = 1/4, c_out = 20: rank fractions exactly 3/4 and 1/4
    mean, se = _mc_profile(
        lambda i: tunable_orthogonal((20, 20, 3), 1.0, 0.25, rng, rank="fixed"), 150
    )
    _assert_profile(mean, se, tunable_1d(3, 0.25))


# ------------------------------------------------------------------------------------------
# Haar distribution
# ------------------------------------------------------------------------------------------
def test_haar_columns_orthonormal_and_shapes():
    q = haar_orthogonal(7, 3, rng=0)
    assert q.shape == (7, 3)
    np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-14)
    with pytest.raises(ValueError, match="`m`"):
        haar_orthogonal(3, 4)


def test_haar_determinant_signs_balanced():
    rng = np.random.default_rng(13)
    dets = np.array([np.linalg.det(haar_orthogonal(5, rng=rng)) for _ in range(600)])
    np.testing.assert_allclose(np.abs(dets), 1.0, atol=1e-12)
    assert stats.binomtest(int((dets > 0).sum()), 600, 0.5).pvalue > 1e-4
    # Delta-orthogonal centre taps: |det| = 1 and both signs occur (TF's check)
    centres = [delta_orthogonal((6, 6, 3), 1.0, rng)[:, :, 1] for _ in range(70)]
    d = np.array([np.linalg.det(c) for c in centres])
    np.testing.assert_allclose(np.abs(d), 1.0, atol=1e-12)
    assert (d > 0).any() and (d < 0).any()


def _first_entry_sq(sample):
    return np.array([q[0, 0] ** 2 for q in sample])


def test_haar_entries_follow_beta_law_and_sign_symmetry():
    # for Haar O(n), q e1 is uniform on the sphere: q00^2 ~ Beta(1/2, (n-1)/2), sign symmetric
    rng = np.random.default_rng(14)
    n = 6
    sample = [haar_orthogonal(n, 2, rng=rng) for _ in range(1500)]
    assert stats.kstest(_first_entry_sq(sample), stats.beta(0.5, (n - 1) / 2).cdf).pvalue > 1e-4
    pos = sum(q[0, 0] > 0 for q in sample)
    assert stats.binomtest(int(pos), 1500, 0.5).pvalue > 1e-4
    pos = sum(q[2, 1] > 0 for q in sample)
    assert stats.binomtest(int(pos), 1500, 0.5).pvalue > 1e-4


def test_haar_test_has_power_against_unfixed_qr():
    # the plain QR without the sign fix is not Haar; the same test must reject it
    rng = np.random.default_rng(15)
    pos = sum(np.linalg.qr(rng.standard_normal((6, 6)))[0][0, 0] > 0 for _ in range(1500))
    assert stats.binomtest(int(pos), 1500, 0.5).pvalue < 1e-10


def test_haar_eigenphases_match_scipy_ortho_group():
    rng = np.random.default_rng(16)
    n, m = 6, 500
    ours = np.concatenate(
        [np.abs(np.angle(np.linalg.eigvals(haar_orthogonal(n, rng=rng)))) for _ in range(m)]
    )
    ref_mats = stats.ortho_group.rvs(n, size=m, random_state=np.random.default_rng(17))
    ref = np.concatenate([np.abs(np.angle(np.linalg.eigvals(q))) for q in ref_mats])
    assert stats.ks_2samp(ours, ref).pvalue > 1e-4
    # traces: E tr Q = 0, E (tr Q)^2 = 1 for Haar O(n), n >= 2 (Diaconis-Shahshahani)
    tr = np.array([np.trace(haar_orthogonal(n, rng=rng)) for _ in range(4000)])
    assert abs(tr.mean()) < 5 * tr.std() / np.sqrt(tr.size)
    sq = tr**2
    assert abs(sq.mean() - 1) < 5 * sq.std() / np.sqrt(sq.size)


# ------------------------------------------------------------------------------------------
# Gaussian kernels
# ------------------------------------------------------------------------------------------
def test_gaussian_kernel_tap_variances():
    rng = np.random.default_rng(18)
    c_out, c_in = 64, 32
    v = np.array([[0.1, 0.2], [0.3, 0.4]])
    kern = gaussian_kernel((c_out, c_in, 2, 2), 2.0, v, rng)
    # per tap: sum of squares / (sigma_w2 v / c_in) ~ chi^2 with c_out c_in dof
    n = c_out * c_in
    stat = (kern**2).sum(axis=(0, 1)) / (2.0 * v / c_in)
    z = (stat - n) / np.sqrt(2 * n)
    assert np.all(np.abs(z) < 5)
    assert np.all(np.abs(kern.mean(axis=(0, 1))) < 5 * np.sqrt(2.0 * v / c_in / n))


def test_gaussian_kernel_operator_spectrum_is_marchenko_pastur():
    # square Gaussian kernel: the symbol at a generic frequency is complex Ginibre with entry
    # variance sigma_w2 / c whatever v is, so (1/c) E tr (M^*M)^2 = 2 sigma_w2^2 (MP, ratio 1);
    # at the real frequencies (0 and pi) it is 2 + 1/c. Checked over many draws.
    rng = np.random.default_rng(23)
    c, sw2, n = 24, 1.5, 40
    m2 = []
    for _ in range(n):
        kern = gaussian_kernel((c, c, 3, 3), sw2, "binomial", rng)
        s = conv_singular_values(kern, (4, 4))
        m2.append((s**4).mean(axis=-1) / sw2**2)
    m2 = np.array(m2)  # (n, 4, 4)
    real = np.zeros((4, 4), bool)
    real[np.ix_([0, 2], [0, 2])] = True
    for mask, ref in ((~real, 2.0), (real, 2.0 + 1.0 / c)):
        vals = m2[:, mask].ravel()
        assert abs(vals.mean() - ref) < 5 * vals.std(ddof=1) / np.sqrt(vals.size)


def test_gaussian_kernel_string_profiles_and_separable_array():
    rng = np.random.default_rng(19)
    kern = gaussian_kernel((4, 4, 3, 3), 1.0, "delta", rng)
    mask = np.ones((3, 3), bool)
    mask[1, 1] = False
    assert np.all(kern[:, :, mask] == 0) and np.any(kern[:, :, 1, 1] != 0)
    a = gaussian_kernel((3, 2, 3, 3), 1.0, [0.25, 0.5, 0.25], 5)
    b = gaussian_kernel((3, 2, 3, 3), 1.0, np.outer([0.25, 0.5, 0.25], [0.25, 0.5, 0.25]), 5)
    np.testing.assert_array_equal(a, b)


def test_gaussian_kernel_bad_profiles():
    with pytest.raises(ValueError, match="sum to 1"):
        gaussian_kernel((2, 2, 3), 1.0, [0.2, 0.2, 0.2])
    with pytest.raises(ValueError, match="shape"):
        gaussian_kernel((2, 2, 3), 1.0, [0.5, 0.5])
    with pytest.raises(ValueError, match="`v`"):
        gaussian_kernel((2, 2, 2), 1.0, [1.5, -0.5])


# ------------------------------------------------------------------------------------------
# arguments, errors, reproducibility
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gen", [delta_orthogonal, block_orthogonal, tunable_orthogonal])
def test_c_in_greater_than_c_out_is_a_clear_error(gen):
    with pytest.raises(ValueError, match=r"c_in <= c_out.*c_out=4, c_in=8.*semi_orthogonal"):
        gen((4, 8, 3), 1.0)


@pytest.mark.parametrize("gen", ["delta", "block", "tunable"])
@pytest.mark.parametrize(
    "shape,grid", [((3, 7, 3), (6,)), ((2, 5, 4, 3), (5, 6)), ((2, 3, 2, 2, 2), (3, 4, 3))]
)
def test_semi_orthogonal_co_isometry(gen, shape, grid):
    rng = np.random.default_rng(20)
    f = {
        "delta": delta_orthogonal,
        "block": block_orthogonal,
        "tunable": lambda *a, **k: tunable_orthogonal(a[0], a[1], 0.3, a[2], **k),
    }[gen]
    kern = f(shape, 2.0, rng, semi_orthogonal=True)
    assert kern.shape == shape
    # all c_out * N singular values equal sigma_w: the operator times its adjoint is 2 I
    np.testing.assert_allclose(conv_singular_values(kern, grid), np.sqrt(2.0), rtol=1e-12)
    dense = dense_operator(kern, grid)
    np.testing.assert_allclose(dense @ dense.T, 2.0 * np.eye(dense.shape[0]), atol=1e-12)
    # an input in the row space keeps its norm (times sigma_w); a generic one loses some
    x = rng.standard_normal(dense.shape[1])
    assert np.linalg.norm(dense @ x) < np.sqrt(2.0) * np.linalg.norm(x) * (1 - 1e-3)
    xr = dense.T @ rng.standard_normal(dense.shape[0])
    np.testing.assert_allclose(
        np.linalg.norm(dense @ xr), np.sqrt(2.0) * np.linalg.norm(xr), rtol=1e-12
    )


def test_semi_orthogonal_profile_unchanged():
    rng = np.random.default_rng(21)
    mean, se = _mc_profile(
        lambda i: block_orthogonal((8, 16, 3), 1.0, rng, semi_orthogonal=True), 150
    )
    _assert_profile(mean, se, binomial_1d(3))


@pytest.mark.parametrize("bad", [(4, 4), (4, 4, 3, 3, 3, 3), (4, 0, 3), (4, 4, 0)])
def test_bad_shapes(bad):
    with pytest.raises(ValueError, match="shape"):
        block_orthogonal(bad)


def test_bad_scalars():
    with pytest.raises(ValueError, match="sigma_w2"):
        delta_orthogonal((4, 4, 3), -1.0)
    with pytest.raises(ValueError, match="`t`"):
        tunable_orthogonal((4, 4, 3), 1.0, 0.7)
    with pytest.raises(ValueError, match="rank"):
        block_orthogonal((4, 4, 3), 1.0, rank="half")
    with pytest.raises(TypeError, match="shape"):
        block_orthogonal(4)


@pytest.mark.parametrize("gen", [delta_orthogonal, block_orthogonal, tunable_orthogonal])
def test_reproducible_for_a_seed(gen):
    a, b, c = (
        gen((6, 4, 3, 3), 1.0, rng=3),
        gen((6, 4, 3, 3), 1.0, rng=3),
        gen((6, 4, 3, 3), 1.0, rng=4),
    )
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_scale_is_linear_in_sigma_w():
    a = block_orthogonal((6, 4, 3, 3), 1.0, rng=3)
    b = block_orthogonal((6, 4, 3, 3), 9.0, rng=3)
    np.testing.assert_allclose(b, 3.0 * a, rtol=1e-15)


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------
def test_kernels_command(tmp_path, capsys):
    import argparse
    import json

    from cnnmft.commands import kernels

    p = argparse.ArgumentParser()
    kernels.configure(p)
    npy, js = tmp_path / "k.npy", tmp_path / "k.json"
    args = p.parse_args(
        [
            "--kind",
            "block",
            "--c-out",
            "12",
            "--c-in",
            "6",
            "--kernel-size",
            "4",
            "--gain",
            "1.5",
            "--convention",
            "tf>=1.13",
            "--save",
            str(npy),
            "--json",
            str(js),
            "--seed",
            "3",
        ]
    )
    assert kernels.run(args) == 0
    out = capsys.readouterr().out
    assert "sigma_w2 = 2.25" in out and "exact isometry" in out
    kern = np.load(npy)
    assert kern.shape == (12, 6, 4)
    np.testing.assert_allclose(conv_singular_values(kern, 9), 1.5, rtol=1e-12)
    data = json.loads(js.read_text())
    np.testing.assert_allclose([data["s_min"], data["s_max"]], 1.5, rtol=1e-12)
    np.testing.assert_allclose(data["expected_profile"], binomial_1d(4), rtol=1e-15)
    with pytest.raises(ValueError, match="convention"):
        kernels.run(p.parse_args(["--gain", "1.0"]))
    assert kernels.run(p.parse_args(["--list-conventions"])) == 0
    assert "`tf>=1.13`" in capsys.readouterr().out


def test_report_section_quick(tmp_path):
    pytest.importorskip("matplotlib")
    import csv

    from cnnmft.report import ReportContext
    from cnnmft.report import kernels as section

    ctx = ReportContext(outdir=tmp_path, quick=True, rng=0)
    frag = section.build(ctx)
    assert "kernels_tap_energy" in frag
    assert (tmp_path / "figures" / "kernels_tap_energy.png").exists()
    with open(tmp_path / "data" / "kernels_singular_value_range.csv") as fh:
        rows = {r["kind"]: r for r in csv.DictReader(fh)}
    for kind in ("delta", "block", "tunable"):
        assert float(rows[kind]["max_rel_dev"]) < 1e-12
    assert float(rows["gaussian"]["max_rel_dev"]) > 0.3


# ------------------------------------------------------------------------------------------
# property tests and mean-field moments
# ------------------------------------------------------------------------------------------
@given(
    c_in=st.integers(1, 5),
    extra=st.integers(0, 4),
    d=st.integers(1, 3),
    k=st.integers(1, 5),
    n=st.integers(1, 6),
    t=st.floats(0.0, 0.5),
    sigma_w2=st.floats(0.1, 4.0),
    seed=st.integers(0, 2**31),
)
@settings(deadline=None, max_examples=40)
def test_property_isometry_any_shape_any_grid(c_in, extra, d, k, n, t, sigma_w2, seed):
    # grids smaller than the kernel included: the symbol is unitary at every root of unity
    ks = (k,) * d if d < 3 else (min(k, 3),) * 3
    shape = (c_in + extra, c_in) + ks
    for kern in (
        block_orthogonal(shape, sigma_w2, seed),
        tunable_orthogonal(shape, sigma_w2, t, seed),
    ):
        s = conv_singular_values(kern, (n,) * d)
        np.testing.assert_allclose(s, np.sqrt(sigma_w2), rtol=1e-12)


@pytest.mark.parametrize("gen", ["block", "tunable"])
def test_cross_tap_second_moments_vanish(gen):
    # mean-field equivalence with a Gaussian kernel needs E sum_ji K[j,i,b] K[j,i,b'] = 0, b != b'
    rng = np.random.default_rng(22)
    c, n = 16, 200
    draws = []
    for _ in range(n):
        kern = (
            block_orthogonal((c, c, 3, 3), 1.0, rng)
            if gen == "block"
            else tunable_orthogonal((c, c, 3, 3), 1.0, 0.2, rng)
        )
        flat = kern.reshape(c * c, 9)
        draws.append(flat.T @ flat / c)
    draws = np.array(draws)
    mean = draws.mean(axis=0)
    se = draws.std(axis=0, ddof=1) / np.sqrt(n)
    off = ~np.eye(9, dtype=bool)
    assert np.all(np.abs(mean[off]) < 5 * se[off] + 1e-12), np.abs(mean[off] / se[off]).max()
    assert np.all(np.diag(mean) > 0.02)


@pytest.mark.parametrize(
    "gen,v",
    [
        ("block", binomial_1d(3)),
        ("tunable", tunable_1d(3, 0.2)),
        ("delta", np.array([0.0, 1.0, 0.0])),
    ],
)
def test_one_layer_covariance_is_the_mean_field_map(gen, v):
    # E (1/c) sum_j y_j(a) y_j(a') = sigma_w2 sum_b v_b Sigma_in(a+b, a'+b)  (the map A * Sigma)
    rng = np.random.default_rng(24)
    c, n, draws, sw2 = 12, 7, 300, 1.3
    x = rng.standard_normal((c, n)) * np.linspace(0.5, 1.5, n)  # not translation invariant
    sig_in = x.T @ x / c
    ref = np.zeros((n, n))
    for b, vb in zip((-1, 0, 1), v):
        ref += sw2 * vb * np.roll(sig_in, (-b, -b), axis=(0, 1))
    outs = []
    for _ in range(draws):
        if gen == "block":
            kern = block_orthogonal((c, c, 3), sw2, rng)
        elif gen == "tunable":
            kern = tunable_orthogonal((c, c, 3), sw2, 0.2, rng)
        else:
            kern = delta_orthogonal((c, c, 3), sw2, rng)
        y = circ_conv(kern, x)
        outs.append(y.T @ y / c)
    outs = np.array(outs)
    mean, se = outs.mean(axis=0), outs.std(axis=0, ddof=1) / np.sqrt(draws)
    assert np.all(np.abs(mean - ref) < 5 * se + 1e-12), np.abs((mean - ref) / (se + 1e-15)).max()
