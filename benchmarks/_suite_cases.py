"""The headline cases of the benchmark suite (see ``benchmarks/_suite.py`` for the runner).

Each case is a :class:`Case`: ``make(quick)`` builds the inputs and returns the function to time
(``run()``, its result is kept from the last call); ``first()`` is the smallest call that loads
(or compiles) the same kernels, timed as the first call of a fresh process; ``check(result,
quick)`` returns the accuracy reached against an independent reference (mpmath, a high-order
Gauss-Hermite rule written here, a closed form, dense numpy linear algebra) as
``{"error": float, "reference": str}``; ``baseline(quick)`` times the peer or baseline measured
in the same run (neural-tangents where /work/nt-venv or ``--nt-python`` provides it, otherwise
the numpy / scipy implementation named in its ``name``), returning ``{"name", "s", "scale",
"error"}`` where ``s * scale`` is the baseline's time for the case's whole problem.

The baselines are imported from the detailed per-topic scripts (``bench_meanfield.py``,
``bench_covariance.py``, ``bench_spectrum.py``, ``bench_orthogonal.py``, ``bench_conv.py``),
so each baseline is written once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

SW_CRIT, SB_CRIT = 1.760955, 0.05  # tanh, near the critical line (bench_covariance)


@dataclass
class Case:
    name: str
    title: str
    make: Callable[[bool], Callable[[], Any]]
    first: Callable[[], Any]
    check: Callable[[Any, bool], dict] | None = None
    baseline: Callable[[bool], dict] | None = None
    goals: dict = field(default_factory=dict)
    peer: str | None = None  # key of the neural-tangents peer result, if any


# ------------------------------------------------------------------------------------------------
# independent references
# ------------------------------------------------------------------------------------------------


def mp_q_chi(act: str, sw: float, sb: float, dps: int = 30) -> tuple[float, float]:
    """q* and chi_1 = sw E[phi'(sqrt(q*) z)^2] by mpmath quadrature and root finding."""
    import mpmath as mp

    mp.mp.dps = dps
    phi = {"tanh": mp.tanh, "erf": mp.erf}[act]
    dphi = {
        "tanh": lambda u: mp.sech(u) ** 2,
        "erf": lambda u: 2 / mp.sqrt(mp.pi) * mp.exp(-u * u),
    }[act]

    def gauss(f):
        return mp.quad(lambda z: f(z) * mp.exp(-z * z / 2), [-mp.inf, 0, mp.inf]) / mp.sqrt(
            2 * mp.pi
        )

    def g(q):
        return sw * gauss(lambda z: phi(mp.sqrt(q) * z) ** 2) + sb - q

    q = mp.findroot(g, (mp.mpf(1e-6), mp.mpf(sw + sb + 1)), solver="anderson")
    chi = sw * gauss(lambda z: dphi(mp.sqrt(q) * z) ** 2)
    return float(q), float(chi)


def _gh(n: int):
    from scipy.special import roots_hermitenorm

    z, w = roots_hermitenorm(n)
    return z, w / w.sum()


def gh_nodes(q: np.ndarray) -> np.ndarray:
    """Nodes per axis for a ~1e-16 Gauss-Hermite error on tanh at variances up to `q`.

    tanh has poles at distance pi / (2 sqrt(q)) from the real axis in the standard-normal
    variable, so the error of the n-point rule falls like exp(-c sqrt(n / q)); measured against
    mpmath (q = 5.5, rho = -0.8: 1.4e-8 at n = 200, 1e-16 at n = 800) 1e-16 needs n ~ 150 q.
    Rounded up to a multiple of 40, at least 120.
    """
    need = np.ceil(160.0 * np.asarray(q, dtype=float) / 40.0) * 40.0
    return np.clip(need, 120, 2400).astype(int)


def gh_pair(phi, q1, q2, s, nodes=None, chunk_points: int = 4_000_000) -> np.ndarray:
    """E[phi(u1) phi(u2)] for (u1, u2) ~ N(0, [[q1, s], [s, q2]]) by a Gauss-Hermite tensor rule.

    Cholesky form u1 = sqrt(q1) z1, u2 = sqrt(q2) (rho z1 + sqrt(1 - rho^2) z2): the integrand is
    smooth for every rho. `nodes` per axis: an int, or None for :func:`gh_nodes` of each entry's
    larger variance (grouped, so the cost follows the variances).
    """
    q1, q2, s = (np.ravel(np.asarray(a, dtype=float)) for a in (q1, q2, s))
    n_each = np.full(s.size, int(nodes)) if nodes is not None else gh_nodes(np.maximum(q1, q2))
    rho = np.clip(s / np.sqrt(q1 * q2), -1.0, 1.0)
    out = np.empty(s.size)
    for n in np.unique(n_each):
        z, w = _gh(int(n))
        W = w[:, None] * w[None, :]
        idx = np.flatnonzero(n_each == n)
        step = max(1, chunk_points // (n * n))
        for lo in range(0, idx.size, step):
            sl = idx[lo : lo + step]
            u1 = np.sqrt(q1[sl])[:, None, None] * z[None, :, None]
            u2 = np.sqrt(q2[sl])[:, None, None] * (
                rho[sl, None, None] * z[None, :, None]
                + np.sqrt(1.0 - rho[sl] ** 2)[:, None, None] * z[None, None, :]
            )
            out[sl] = np.sum(W * phi(u1) * phi(u2), axis=(1, 2))
    return out


def conv_sum(M: np.ndarray, v: np.ndarray, n1: int, n2: int) -> np.ndarray:
    """(A * M)(a, b) = sum_t v_t M(a + t, b + t) on the circular n1 x n2 grid (full matrix)."""
    M4 = M.reshape(n1, n2, n1, n2)
    k1, k2 = v.shape
    out = np.zeros_like(M4)
    for i in range(k1):
        for j in range(k2):
            if v[i, j] != 0.0:
                a, b = i - (k1 - 1) // 2, j - (k2 - 1) // 2
                out += v[i, j] * np.roll(M4, (-a, -b, -a, -b), axis=(0, 1, 2, 3))
    return out.reshape(n1 * n2, n1 * n2)


def reference_layer(K: np.ndarray, phi, sw, sb, v, n1, n2, nodes=None) -> np.ndarray:
    """One layer of the covariance map sw * A * E[phi phi](K) + sb, by :func:`gh_pair`."""
    N = K.shape[0]
    iu = np.triu_indices(N)
    d = np.diag(K)
    C = np.empty((N, N))
    C[iu] = gh_pair(phi, d[iu[0]], d[iu[1]], K[iu], nodes)
    C[iu[1], iu[0]] = C[iu]
    return sw * conv_sum(C, v, n1, n2) + sb


def gram(x: np.ndarray) -> np.ndarray:
    """Input Gram matrix over (input, pixel) pairs: X X^T / c_in."""
    X = x.reshape(-1, x.shape[-1])
    return X @ X.T / x.shape[-1]


def fft_singular_values(kernel: np.ndarray, grid) -> np.ndarray:
    """Singular values of a circular 2-D convolution by FFT + one dense SVD per frequency."""
    c_out, c_in, k1, k2 = kernel.shape
    n1, n2 = grid
    padded = np.zeros((c_out, c_in, n1, n2))
    padded[:, :, :k1, :k2] = kernel
    spec = np.fft.fft2(padded, axes=(2, 3))
    return np.concatenate(
        [np.linalg.svd(spec[:, :, a, b], compute_uv=False) for a in range(n1) for b in range(n2)]
    )


def _inputs_8x8(batch: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 8, 3) if batch is None else (batch, 8, 8, 3))


# ------------------------------------------------------------------------------------------------
# fixed points and phase diagrams
# ------------------------------------------------------------------------------------------------


def _fp_points(quick):
    rng = np.random.default_rng(1)
    n = 2000 if quick else 20000
    return rng.uniform(0.1, 10.0, n), rng.uniform(0.0, 2.0, n)


def make_fixed_point(quick):
    import cnnmft

    sw, sb = _fp_points(quick)
    return lambda: cnnmft.fixed_point("tanh", sw, sb)


def first_fixed_point():
    import cnnmft

    cnnmft.fixed_point("tanh", [1.5, 2.5], 0.05)


def check_fixed_point(res, quick):
    sw, sb = _fp_points(quick)
    idx = np.random.default_rng(2).choice(sw.size, 4 if quick else 10, replace=False)
    err = 0.0
    for i in idx:
        q, chi = mp_q_chi("tanh", float(sw[i]), float(sb[i]))
        err = max(err, abs(res.q_star[i] - q) / q, abs(res.chi_1[i] - chi) / chi)
    return {"error": float(err), "reference": f"mpmath q*, chi_1 at {idx.size} points (rel.)"}


def baseline_fixed_point(quick):
    from benchmarks.bench_meanfield import scipy_baseline

    sw, sb = _fp_points(quick)
    m = 20 if quick else 50
    t = time.perf_counter()
    for a, b in zip(sw[:m], sb[:m]):
        scipy_baseline(float(a), float(b))
    per = (time.perf_counter() - t) / m
    return {
        "name": "scipy quad + brentq (q*, chi_1 only), per point x points",
        "s": per,
        "scale": sw.size,
    }


def _pd_grid(quick):
    n = 200 if quick else 1000
    return np.linspace(0.1, 10.0, n), np.linspace(0.0, 2.0, n)


def make_phase_diagram(quick):
    import cnnmft

    sw, sb = _pd_grid(quick)
    return lambda: cnnmft.phase_diagram("tanh", sw, sb)


def first_phase_diagram():
    import cnnmft

    cnnmft.phase_diagram("tanh", [1.0, 2.0], [0.05], critical_line=False)


def check_phase_diagram(pd, quick):
    sw, sb = _pd_grid(quick)
    rng = np.random.default_rng(3)
    err = 0.0
    k = 4 if quick else 8
    for i, j in zip(rng.integers(0, sw.size, k), rng.integers(1, sb.size, k)):
        q, chi = mp_q_chi("tanh", float(sw[i]), float(sb[j]))
        err = max(err, abs(pd.q_star[i, j] - q) / q, abs(pd.chi_1[i, j] - chi) / chi)
    return {"error": float(err), "reference": f"mpmath q*, chi_1 at {k} grid points (rel.)"}


def baseline_phase_diagram(quick):
    out = baseline_fixed_point(True)
    sw, sb = _pd_grid(quick)
    out["scale"] = sw.size * sb.size
    return out


# ------------------------------------------------------------------------------------------------
# covariance map
# ------------------------------------------------------------------------------------------------


def _uniform3():
    from cnnmft import variance_profile

    return variance_profile("uniform", 3)


def _delta3():
    from cnnmft import variance_profile

    return variance_profile("delta", 3)


def make_cov(act, batch=None, sw=SW_CRIT, sb=SB_CRIT, depth=128):
    def make(quick):
        from cnnmft import propagate_covariance

        x, v = _inputs_8x8(batch), _uniform3()
        return lambda: propagate_covariance(x, act, sw, sb, v, depth, progress=False)

    return make


def _all_layers(act, batch=None):
    """Every layer of the 8x8 x 128 case (for the accuracy checks; not timed)."""
    from cnnmft import propagate_covariance

    return propagate_covariance(
        _inputs_8x8(batch), act, SW_CRIT, SB_CRIT, _uniform3(), 128, layers="all", progress=False
    )


def first_cov(act, batch=None):
    def first():
        from cnnmft import propagate_covariance

        propagate_covariance(
            _inputs_8x8(batch), act, SW_CRIT, SB_CRIT, _uniform3(), 2, progress=False
        )

    return first


def check_cov_tanh(res, quick):
    """First layers against the Gauss-Hermite reference map, and the final layer one step on."""
    x, v = _inputs_8x8(), _uniform3()
    K = SW_CRIT * conv_sum(gram(x), v, 8, 8) + SB_CRIT
    res_all = _all_layers("tanh")
    final = float(np.max(np.abs(res_all.cov[-1] - res.cov[-1])))  # the timed call's layer
    cov = res_all.cov.reshape(res_all.cov.shape[0], 64, 64)
    err = float(np.max(np.abs(cov[1] - K)))
    nref = 2 if quick else 4
    for layer in range(2, nref + 1):
        K = reference_layer(K, np.tanh, SW_CRIT, SB_CRIT, v, 8, 8)
        err = max(err, float(np.max(np.abs(cov[layer] - K))))
    step = reference_layer(cov[-2], np.tanh, SW_CRIT, SB_CRIT, v, 8, 8)
    err = max(err, float(np.max(np.abs(cov[-1] - step))), final)
    return {
        "error": err,
        "reference": f"Gauss-Hermite map (n >= 160 q nodes per axis): layers "
        f"1-{nref} propagated, final layer one step from the "
        "previous",
    }


def _blocks(M: np.ndarray, v: np.ndarray, batch: int) -> np.ndarray:
    """conv_sum on every (input a, input b) block of a (batch * 64)^2 matrix."""
    M4 = M.reshape(batch, 64, batch, 64)
    out = np.empty_like(M4)
    for a in range(batch):
        for b in range(batch):
            out[a, :, b, :] = conv_sum(np.ascontiguousarray(M4[a, :, b, :]), v, 8, 8)
    return out.reshape(batch * 64, batch * 64)


def check_cov_erf(res, quick, batch=None):
    """Every layer against the arcsin closed form propagated in numpy (cross-input included)."""
    x, v = _inputs_8x8(batch), _uniform3()
    B = batch or 1
    N = 64 * B
    K = SW_CRIT * _blocks(gram(x), v, B) + SB_CRIT
    timed = res
    res = _all_layers("erf", batch)
    err = float(np.max(np.abs(res.cov[-1] - timed.cov[-1])))  # the timed call's layer
    depth = res.cov.shape[0] - 1
    for layer in range(1, depth + 1):
        got = res.cov[layer]
        got = got.transpose(0, 2, 3, 1, 4, 5).reshape(N, N) if batch else got.reshape(N, N)
        err = max(err, float(np.max(np.abs(got - K))))
        d = 1.0 + 2.0 * np.diag(K)
        C = 2.0 / np.pi * np.arcsin(np.clip(2.0 * K / np.sqrt(np.outer(d, d)), -1.0, 1.0))
        K = SW_CRIT * _blocks(C, v, B) + SB_CRIT
    return {"error": err, "reference": f"arcsin closed form in numpy, all {depth} layers"}


def baseline_cov_numpy(quick):
    from benchmarks.bench_covariance import baseline_layers

    x, v = _inputs_8x8(), _uniform3()
    t = time.perf_counter()
    baseline_layers(x, v, 128)
    return {
        "name": "numpy Gauss-Hermite 20^2 per-layer baseline (bench_covariance)",
        "s": time.perf_counter() - t,
        "scale": 1,
    }


def _big_x():
    return np.random.default_rng(0).normal(size=(32, 32, 3))


def make_cov_big(kind):
    def make(quick):
        from cnnmft import propagate_covariance

        v = _delta3() if kind == "delta" else _uniform3()
        depth = 1000 if quick else 10000
        x = _big_x()
        return lambda: propagate_covariance(
            x, "tanh", SW_CRIT, SB_CRIT, v, depth, layers=[1, 2, depth], progress=False
        )

    return make


def first_cov_big(kind):
    def first():
        from cnnmft import propagate_covariance

        v = _delta3() if kind == "delta" else _uniform3()
        propagate_covariance(_big_x()[:8, :8], "tanh", SW_CRIT, SB_CRIT, v, 2, progress=False)

    return first


def check_cov_big(kind):
    def check(res, quick):
        q_star, _ = mp_q_chi("tanh", SW_CRIT, SB_CRIT)
        v = _delta3() if kind == "delta" else _uniform3()
        cov = res.cov.reshape(res.cov.shape[0], 1024, 1024)
        K1 = SW_CRIT * conv_sum(gram(_big_x()), v, 32, 32) + SB_CRIT
        err1 = float(np.max(np.abs(cov[0] - K1)))
        # layer 2 at 40 random entries by the Gauss-Hermite map of the returned layer 1
        rng = np.random.default_rng(4)
        a, b = rng.integers(0, 1024, 40), rng.integers(0, 1024, 40)
        d = np.diag(K1)
        ref2 = np.zeros(40)
        for i in range(3):
            for j in range(3):
                if v[i, j] == 0.0:
                    continue
                sa = _shift(a, i - 1, j - 1)
                sb_ = _shift(b, i - 1, j - 1)
                ref2 += v[i, j] * gh_pair(np.tanh, d[sa], d[sb_], K1[sa, sb_])
        ref2 = SW_CRIT * ref2 + SB_CRIT
        err2 = float(np.max(np.abs(cov[1][a, b] - ref2)))
        errq = float(np.max(np.abs(np.diag(cov[-1]) - q_star)))
        return {
            "error": max(err1, err2),
            "final_variance_vs_mpmath_q_star": errq,
            "reference": "layer 1 exact, layer 2 at 40 entries by Gauss-Hermite (n >= 160 q); "
            "final variances vs mpmath q*",
        }

    return check


def _shift(flat, di, dj, n=32):
    r, c = np.divmod(flat, n)
    return ((r + di) % n) * n + (c + dj) % n


# ------------------------------------------------------------------------------------------------
# spectra, orthogonal kernels, convolutions
# ------------------------------------------------------------------------------------------------

SPEC_SW, SPEC_SB = 1.05, 2.01e-5


def make_spectrum(quick):
    from cnnmft import jacobian_spectrum

    depth = 1000 if quick else 10000
    return lambda: jacobian_spectrum("tanh", SPEC_SW, SPEC_SB, depth, "orthogonal", n_points=2000)


def first_spectrum():
    from cnnmft import jacobian_spectrum

    jacobian_spectrum("tanh", SPEC_SW, SPEC_SB, 10, "orthogonal", n_points=50)


def check_spectrum(s, quick):
    import mpmath as mp

    q, _ = mp_q_chi("tanh", SPEC_SW, SPEC_SB)
    mp.mp.dps = 30
    mu1 = mp.quad(
        lambda z: mp.sech(mp.sqrt(q) * z) ** 4 * mp.exp(-z * z / 2), [-mp.inf, 0, mp.inf]
    ) / mp.sqrt(2 * mp.pi)
    log_m1 = float(s.depth * mp.log(SPEC_SW * mu1))
    mean = float(np.sum(s.quad_weights * s.lam * s.density) + np.sum(s.atom_mass * s.atom_lam))
    scale = 1.0 if s.normalized else math.exp(log_m1)
    return {
        "error": abs(mean / scale - 1.0),
        "mass_minus_1": float(s.mass - 1.0),
        "log_m1_vs_mpmath": abs(float(s.log_m1) - log_m1),
        "reference": "first moment of the density vs (sw E[phi'^2])^L by mpmath (rel.)",
    }


def baseline_spectrum(quick):
    from benchmarks.bench_spectrum import mc_per_layer

    q, _ = mp_q_chi("tanh", SPEC_SW, SPEC_SB)
    depth = 1000 if quick else 10000
    per_layer, t_svd = mc_per_layer(
        256, 8 if quick else 16, "orthogonal", q, SPEC_SW, SPEC_SB, np.random.default_rng(0)
    )
    return {
        "name": "dense Monte Carlo Jacobian, width 256, per layer x depth + SVD "
        "(one draw of 256 eigenvalues)",
        "s": per_layer * depth + t_svd,
        "scale": 1,
    }


def _orth_size(quick):
    return (64, 3) if quick else (512, 3)


def make_orthogonal(quick):
    from cnnmft import block_orthogonal

    c, k = _orth_size(quick)
    rng = np.random.default_rng(0)
    return lambda: block_orthogonal((c, c, k, k), 1.0, rng)


def first_orthogonal():
    from cnnmft import block_orthogonal, delta_orthogonal

    block_orthogonal((4, 4, 3, 3), 1.0, 0)
    delta_orthogonal((4, 4, 3, 3), 1.0, 0)


def check_orthogonal(kern, quick):
    c, k = _orth_size(quick)
    sv = fft_singular_values(kern, (k + 1, k + 1))
    return {
        "error": float(np.max(np.abs(sv - 1.0))),
        "reference": f"numpy FFT + SVD on a {k + 1}x{k + 1} grid (all singular values = 1)",
    }


def baseline_orthogonal(quick):
    from benchmarks.bench_orthogonal import naive_block_orthogonal_2d

    c, k = _orth_size(quick)
    t = time.perf_counter()
    naive_block_orthogonal_2d(c, c, k, np.random.default_rng(0))
    return {
        "name": "naive per-tap construction (bench_orthogonal)",
        "s": time.perf_counter() - t,
        "scale": 1,
    }


def _sv_kernel(quick):
    c = 32 if quick else 128
    rng = np.random.default_rng(5)
    return rng.standard_normal((c, c, 3, 3)) / math.sqrt(9 * c)


def make_conv_sv(quick):
    from cnnmft import conv_singular_values

    kern = _sv_kernel(quick)
    return lambda: conv_singular_values(kern, (16, 16))


def first_conv_sv():
    from cnnmft import conv_singular_values

    conv_singular_values(np.ones((2, 2, 3, 3)), (4, 4))


def check_conv_sv(sv, quick):
    kern = _sv_kernel(quick)
    c = kern.shape[0]
    if c <= 32:
        # dense matrix of the circular convolution on a 6x6 grid, then its SVD
        ref = _dense_conv_sv(kern, 6)
        from cnnmft import conv_singular_values

        got = np.sort(np.ravel(conv_singular_values(kern, (6, 6))))
        return {
            "error": float(np.max(np.abs(got - ref))),
            "reference": "SVD of the dense circular-convolution matrix on a 6x6 grid",
        }
    ref = np.sort(fft_singular_values(kern, (16, 16)))
    return {
        "error": float(np.max(np.abs(np.sort(np.ravel(sv)) - ref))),
        "reference": "numpy FFT + dense SVD per frequency on the 16x16 grid",
    }


def _dense_conv_sv(kern, n):
    c_out, c_in, k1, k2 = kern.shape
    M = np.zeros((n, n, c_out, n, n, c_in))
    for a in range(n):
        for b in range(n):
            for i in range(k1):
                for j in range(k2):
                    M[a, b, :, (a + i) % n, (b + j) % n, :] += kern[:, :, i, j]
    return np.sort(np.linalg.svd(M.reshape(n * n * c_out, n * n * c_in), compute_uv=False))


def baseline_conv_sv(quick):
    kern = _sv_kernel(quick)
    t = time.perf_counter()
    fft_singular_values(kern, (16, 16))
    return {"name": "numpy FFT + SVD per frequency", "s": time.perf_counter() - t, "scale": 1}


def _conv_inputs(quick):
    rng = np.random.default_rng(0)
    c, batch, n = (64, 8, 8) if quick else (128, 16, 16)
    return rng.standard_normal((batch, n, n, c)), rng.standard_normal((c, c, 3, 3))


def make_circular_conv(quick):
    from cnnmft import circular_conv

    x, w = _conv_inputs(quick)
    return lambda: circular_conv(x, w)


def first_circular_conv():
    from cnnmft import circular_conv

    circular_conv(np.ones((1, 4, 4, 2)), np.ones((2, 2, 3, 3)))


def check_circular_conv(out, quick):
    from benchmarks.bench_conv import per_tap_gemm

    x, w = _conv_inputs(quick)
    return {
        "error": float(np.max(np.abs(out - per_tap_gemm(x, w)))),
        "reference": "per-tap np.roll + matmul (bench_conv)",
    }


def baseline_circular_conv(quick):
    from benchmarks.bench_conv import per_tap_loop

    x, w = _conv_inputs(quick)
    t = time.perf_counter()
    per_tap_loop(x, w)
    return {
        "name": "per-tap np.roll + einsum loop (bench_conv)",
        "s": time.perf_counter() - t,
        "scale": 1,
    }


# ------------------------------------------------------------------------------------------------
# the registry
# ------------------------------------------------------------------------------------------------

CASES = [
    Case(
        "fixed_point",
        "fixed_point tanh, 20,000 points (quick 2,000)",
        make_fixed_point,
        first_fixed_point,
        check_fixed_point,
        baseline_fixed_point,
    ),
    Case(
        "phase_diagram",
        "phase_diagram tanh 1000x1000 (quick 200x200)",
        make_phase_diagram,
        first_phase_diagram,
        check_phase_diagram,
        baseline_phase_diagram,
        goals={"warm_s": 10.0},
    ),
    Case(
        "cov_tanh_8x8",
        "covariance 8x8 x 128 layers, tanh",
        make_cov("tanh"),
        first_cov("tanh"),
        check_cov_tanh,
        baseline_cov_numpy,
        goals={"warm_s": 0.05, "error": 1e-12, "vs_peer": 300.0},
        peer="tanh",
    ),
    Case(
        "cov_erf_8x8",
        "covariance 8x8 x 128 layers, erf",
        make_cov("erf"),
        first_cov("erf"),
        check_cov_erf,
        None,
        goals={"vs_peer": 10.0, "error": 1e-12},
        peer="erf",
    ),
    Case(
        "cov_erf_8x8_batch4",
        "covariance 8x8 x 128 layers, erf, batch of 4",
        make_cov("erf", batch=4),
        first_cov("erf", batch=4),
        lambda r, q: check_cov_erf(r, q, batch=4),
        None,
        goals={"vs_peer": 10.0},
        peer="erf_batch4",
    ),
    Case(
        "cov_delta_32x32",
        "covariance 32x32 x 10,000 layers, delta v (quick 1,000)",
        make_cov_big("delta"),
        first_cov_big("delta"),
        check_cov_big("delta"),
        None,
        goals={"warm_s": 5.0},
    ),
    Case(
        "cov_uniform_32x32",
        "covariance 32x32 x 10,000 layers, uniform v (quick 1,000)",
        make_cov_big("uniform"),
        first_cov_big("uniform"),
        check_cov_big("uniform"),
        None,
        goals={"warm_s": 5.0},
    ),
    Case(
        "jacobian_spectrum",
        "Jacobian spectrum tanh, depth 10,000, orthogonal, 2,000 points",
        make_spectrum,
        first_spectrum,
        check_spectrum,
        baseline_spectrum,
        goals={"warm_s": 0.5},
    ),
    Case(
        "orthogonal_kernel",
        "block_orthogonal 3x3, c=512 (quick 64)",
        make_orthogonal,
        first_orthogonal,
        check_orthogonal,
        baseline_orthogonal,
        goals={"warm_s": 0.5},
    ),
    Case(
        "conv_singular_values",
        "conv_singular_values c=128 on 16x16 (quick 32)",
        make_conv_sv,
        first_conv_sv,
        check_conv_sv,
        baseline_conv_sv,
    ),
    Case(
        "circular_conv",
        "circular_conv c=128, batch 16, 16x16, 3x3 (quick 64, 8, 8x8)",
        make_circular_conv,
        first_circular_conv,
        check_circular_conv,
        baseline_circular_conv,
    ),
]

BY_NAME = {c.name: c for c in CASES}
