r"""Theory against simulation: every prediction of cnnmft checked on the numpy CNN.

Each check simulates a small random network with :mod:`cnnmft.montecarlo`, computes the matching
prediction with the theory modules, and returns a :class:`CheckResult` row: the largest
``|z|`` (difference over its Monte Carlo standard error) and, for spectra, a Kolmogorov-Smirnov
distance, each with its pass threshold and the pass flag.

Pass rules (no single tolerance for everything):

* ``z``: every compared number must satisfy ``|theory - mc| <= z_crit * stderr`` with the
  Bonferroni threshold ``z_crit = F^{-1}(1 - alpha / (2 m))`` for the ``m`` numbers of that
  check and a family-wise ``alpha`` (default 1e-3), ``F`` the Student-t law with
  ``n_draws - 1`` degrees of freedom (the stderr is estimated from ``n_draws`` independent
  networks). Finite-width bias is removed where it matters (Jacobian moments: Richardson
  extrapolation from widths ``c`` and ``2c``) or kept below the stderr by the choice of sizes.
* ``KS``: the distance between the pooled Monte Carlo eigenvalues and the theory CDF must not
  exceed the largest KS distance between two independent simulated networks of the same size
  (the theory must be as close to the simulation as another simulation is).

A check whose theory function is missing from this installation returns a row with status
``Verdict.NOT_AVAILABLE`` (it neither passes nor fails). Run all of them with
:func:`run_checks` or ``cnnmft validate``. This module computes and compares only: the overlay
figures are :func:`cnnmft.plotting.check`, the HTML table is written by the report
(:mod:`cnnmft.report.validation`).

References
----------
.. [1] Xiao et al., ICML 2018, arXiv:1806.05393, Sections 2-3.
.. [2] Pennington, Schoenholz, Ganguli, NeurIPS 2017, arXiv:1711.04735.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.stats import ks_2samp

from cnnmft import _validation as V
from cnnmft import covariance, fourier, meanfield, spectrum
from cnnmft import montecarlo as mc
from cnnmft._checks_base import (
    CheckResult,
    ValidationResult,
    Verdict,
    _zcheck,
    z_threshold,
)
from cnnmft._network_checks import NETWORK_CHECKS
from cnnmft.fourier import variance_profile

__all__ = [
    "Verdict",
    "CheckResult",
    "ValidationResult",
    "CHECKS",
    "run_check",
    "run_checks",
    "z_threshold",
]


# tanh reference points (docs/theory.md section 7): ordered near-critical, chaotic, critical
ORDERED = (1.5, 0.05)
CHAOTIC = (2.5, 0.05)
CRITICAL = (1.05, 2.01e-5)


class _Missing(Exception):
    pass


_THEORY = {
    "meanfield": meanfield,
    "covariance": covariance,
    "fourier": fourier,
    "spectrum": spectrum,
}


def _theory(module, name):
    """The theory function ``cnnmft.<module>.<name>``; ``_Missing`` when it is not there."""
    try:
        return getattr(_THEORY[module], name)
    except (KeyError, AttributeError):
        raise _Missing(f"cnnmft.{module}.{name} is not available") from None


def _fp(act, sw, sb):
    fixed_point = _theory("meanfield", "fixed_point")
    fp = fixed_point(act, np.atleast_1d(float(sw)), np.atleast_1d(float(sb)))
    return {
        k: float(np.asarray(getattr(fp, k)).ravel()[0])
        for k in ("q_star", "c_star", "chi_1", "chi_q", "chi_c")
    }


def _fixed_point_gram(q_in, c_in, batch, P):
    """Gram over (input, position) of a translation-invariant state.

    Variance q_in, correlation c_in between different inputs and between positions alike.
    """
    m = batch * P
    return q_in * ((1 - c_in) * np.eye(m) + c_in * np.ones((m, m)))


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------

# (width, draws) per check family, quick / full. Draws set the t degrees of freedom of the
# stderr (draws - 1), hence the strength of each check; widths keep finite-width bias small.
_SIZES = {
    "fixed_point": ((64, 16), (160, 24)),
    "trajectories": ((384, 24), (768, 32)),
    "covariance": ((96, 32), (192, 48)),
    "modes": ((128, 16), (256, 24)),
    "jacobian_fc": ((64, 12), (256, 12)),
    "jacobian_conv": ((16, 12), (48, 12)),
}


def _sizes(quick, family="fixed_point"):
    width, draws = _SIZES[family][0 if quick else 1]
    return dict(width=width, draws=draws)


def check_fixed_point(quick=True, rng=0, *, theory_override=None):
    """q* (ordered tanh) and c* (chaotic tanh): inputs placed at the fixed point stay there."""
    res = CheckResult(
        "fixed_point",
        "fixed point",
        "tanh 2D 6x6 CNN, uniform 3x3 Gaussian kernels: q^l at (1.5, 0.05) and "
        "c^l at (2.5, 0.05) stay at the theory fixed point q*, c*",
    )
    s = _sizes(quick)
    depth = 6 if quick else 12
    th, mcv, se, curves = [], [], [], {}
    for label, (sw, sb) in (("ordered", ORDERED), ("chaotic", CHAOTIC)):
        fp = theory_override(sw, sb) if theory_override else _fp("tanh", sw, sb)
        q_in = (fp["q_star"] - sb) / sw
        c_in = (fp["q_star"] * fp["c_star"] - sb) / (fp["q_star"] - sb)
        sp = (6, 6)
        g = _fixed_point_gram(q_in, c_in, 2, 36)
        x = mc.gaussian_inputs(g, sp, max(s["width"], 72), rng=rng)
        sim = mc.simulate(x, "tanh", sw, sb, depth, width=s["width"], n_draws=s["draws"], rng=rng)
        layers = np.arange(1, depth + 1)
        th.append(np.full(depth, fp["q_star"]))
        mcv.append(sim.q[:, 0])
        se.append(sim.q_stderr[:, 0])
        curves[f"{label}_layers"] = layers
        curves[f"{label}_q_theory"] = np.full(depth, fp["q_star"])
        curves[f"{label}_q_mc"] = sim.q[:, 0]
        curves[f"{label}_q_se"] = sim.q_stderr[:, 0]
        curves[f"{label}_c_theory"] = np.full(depth, fp["c_star"])
        curves[f"{label}_c_mc"] = sim.c[:, 0, 1]
        curves[f"{label}_c_se"] = sim.c_stderr[:, 0, 1]
        if label == "chaotic":
            th.append(np.full(depth, fp["c_star"]))
            mcv.append(sim.c[:, 0, 1])
            se.append(sim.c_stderr[:, 0, 1])
    res.curves = curves
    res.status = (
        Verdict.PASS
        if _zcheck(
            res, np.concatenate(th), np.concatenate(mcv), np.concatenate(se), dof=s["draws"] - 1
        )
        else Verdict.FAIL
    )
    return res


def check_trajectories(quick=True, rng=0, *, theory_override=None):
    """q^l and c^l from inputs away from the fixed point follow the iterated q- and c-maps."""
    res = CheckResult(
        "trajectories",
        "trajectory",
        "tanh FC (width c, 1 position), q^1 = 2.0 and c^1 = 0.2: q^l, c^l vs the "
        "iterated q_map / c_map at (1.5, 0.05) and (2.5, 0.05)",
    )
    if theory_override is None:
        q_map = _theory("meanfield", "q_map")
        c_map = _theory("meanfield", "c_map")
    else:
        q_map, c_map = theory_override
    s = _sizes(quick, "trajectories")
    depth = 10 if quick else 20
    width = s["width"]
    th, mcv, se, curves = [], [], [], {}
    for label, (sw, sb) in (("ordered", ORDERED), ("chaotic", CHAOTIC)):
        q1, c1 = 2.0, 0.2
        q_in = (q1 - sb) / sw
        c_in = (q1 * c1 - sb) / (q1 - sb)
        g = np.array([[q_in, q_in * c_in], [q_in * c_in, q_in]])
        x = mc.gaussian_inputs(g, (1,), width, rng=rng)
        sim = mc.simulate(
            x, "tanh", sw, sb, depth, width=width, kernel_size=1, n_draws=s["draws"], rng=rng
        )
        q, c = [q1], [c1]
        one = np.ones(1)  # 1-element arrays: every argument has the same shape
        for _ in range(depth - 1):
            c.append(
                float(np.ravel(c_map("tanh", c[-1] * one, q[-1] * one, sw * one, sb * one))[0])
            )
            q.append(float(np.ravel(q_map("tanh", q[-1] * one, sw * one, sb * one))[0]))
        q, c = np.array(q), np.array(c)
        th += [q, c]
        mcv += [sim.q[:, 0], sim.c[:, 0, 1]]
        se += [sim.q_stderr[:, 0], sim.c_stderr[:, 0, 1]]
        curves.update(
            {
                f"{label}_layers": np.arange(1, depth + 1),
                f"{label}_q_theory": q,
                f"{label}_q_mc": sim.q[:, 0],
                f"{label}_q_se": sim.q_stderr[:, 0],
                f"{label}_c_theory": c,
                f"{label}_c_mc": sim.c[:, 0, 1],
                f"{label}_c_se": sim.c_stderr[:, 0, 1],
            }
        )
    res.curves = curves
    res.status = (
        Verdict.PASS
        if _zcheck(
            res, np.concatenate(th), np.concatenate(mcv), np.concatenate(se), dof=s["draws"] - 1
        )
        else Verdict.FAIL
    )
    return res


def _smooth_input_gram(sp, rng):
    """Return a non-uniform, spatially correlated input Gram matrix on the grid `sp`."""
    rng = V.make_rng(rng)
    P = int(np.prod(sp))
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in sp], indexing="ij"), -1).reshape(P, -1)
    d = np.abs(grid[:, None, :] - grid[None, :, :])
    d = np.minimum(d, np.array(sp) - d)
    k = np.exp(-0.5 * (d**2).sum(-1) / 1.5**2)
    scale = 0.4 + 0.8 * rng.random(P)
    return 0.7 * (np.sqrt(np.outer(scale, scale)) * (0.6 * k + 0.4 * np.eye(P)))


def _covariance_check(name, v, kernel, quick, rng, propagate=None):
    res = CheckResult(
        name,
        "covariance",
        f"tanh 2D 6x6 CNN at (1.5, 0.05), {kernel} kernels 3x3 with v = {v}: full "
        "pixel-pair covariance at layers 1, 2, 4 (and 8) vs propagate_covariance",
    )
    if propagate is None:
        propagate = _theory("covariance", "propagate_covariance")
    s = _sizes(quick, "covariance")
    sp = (6, 6)
    sw, sb = ORDERED
    layers = (1, 2, 4) if quick else (1, 2, 4, 8)
    depth = max(layers)
    gram = _smooth_input_gram(sp, rng)
    x = mc.gaussian_inputs(gram, sp, max(s["width"], 72), rng=rng)
    sim = mc.simulate(
        x,
        "tanh",
        sw,
        sb,
        depth,
        width=s["width"],
        kernel=kernel,
        v=v,
        n_draws=s["draws"],
        cov_layers=layers,
        rng=rng,
    )

    vp = variance_profile(v, 3, ndim=2)
    out = propagate(x[0], "tanh", sw, sb, vp, depth, layers=list(layers))
    theory = np.asarray(out.cov).reshape(len(layers), *sim.cov.shape[2:])
    res.curves = {
        "theory": theory.ravel(),
        "mc": sim.cov[:, 0].ravel(),
        "se": sim.cov_stderr[:, 0].ravel(),
    }
    res.status = (
        Verdict.PASS
        if _zcheck(res, theory, sim.cov[:, 0], sim.cov_stderr[:, 0], dof=s["draws"] - 1)
        else Verdict.FAIL
    )
    return res


def check_covariance_uniform(quick=True, rng=0, propagate=None):
    """Spatial covariance, Gaussian kernels, uniform v."""
    return _covariance_check("covariance_uniform", "uniform", "gaussian", quick, rng, propagate)


def check_covariance_binomial(quick=True, rng=0, propagate=None):
    """Spatial covariance, binomial v, block-orthogonal kernels (docs/theory.md 2.7).

    Quick mode uses Gaussian kernels: drawing Algorithm-1 kernels would dominate its run time.
    """
    kernel = "gaussian" if quick else "block_orthogonal"
    return _covariance_check("covariance_binomial", "binomial", kernel, quick, rng, propagate)


def check_covariance_delta(quick=True, rng=0, propagate=None):
    """Spatial covariance, Delta-orthogonal kernels, delta v."""
    return _covariance_check("covariance_delta", "delta", "delta_orthogonal", quick, rng, propagate)


def _mode_check(name, v, kind, quick, rng, theory_override=None):
    res = CheckResult(
        name,
        "modes",
        f"tanh 1D n=16 CNN at (2.5, 0.05) (chaotic, chi_c* = 0.919), Gaussian "
        f"3-tap kernels v = {v}: per-layer decay of an injected {kind}-perturbation"
        f" in modes f = 1, 2, 3 vs chi_{kind}* lambda_f",
    )
    mode_eigenvalues = _theory("fourier", "mode_eigenvalues")

    sw, sb = CHAOTIC
    fp = theory_override(sw, sb) if theory_override else _fp("tanh", sw, sb)
    n = 16
    vp = variance_profile(v, 3, ndim=1)
    lam = mode_eigenvalues(vp, n).real
    modes = [1, 2, 3]
    chi = fp["chi_c"] if kind == "c" else fp["chi_q"]
    rate_th = chi * lam[modes]
    s = _sizes(quick, "modes")
    depth = (8 if quick else 14) if kind == "c" else 4
    # fit each mode while its predicted amplitude is above 0.15 of the start (>= 2 steps)
    last = 1 + np.floor(np.log(0.15) / np.log(np.clip(np.abs(rate_th), 1e-9, 0.999)))
    fit = np.stack([np.ones(len(modes)), np.clip(last, 3, depth)], -1).astype(int)
    md = mc.mode_decay(
        "tanh",
        sw,
        sb,
        depth,
        (n,),
        q_star=fp["q_star"],
        c_star=fp["c_star"],
        modes=modes,
        width=s["width"],
        kind=kind,
        eps=0.1,
        v=v,
        n_draws=s["draws"],
        fit_layers=fit,
        rng=rng,
    )
    layers = np.arange(1, depth + 1)
    amp_th = sw * lam[modes][None, :] * rate_th[None, :] ** (layers[:, None] - 1)
    res.curves = {
        "layers": layers,
        "modes": np.array(modes),
        "rate_theory": rate_th,
        "rate_mc": md.rate,
        "rate_se": md.rate_stderr,
        "amp_theory": amp_th,
        "amp_mc": md.amplitude,
        "amp_se": md.amplitude_stderr,
    }
    res.status = (
        Verdict.PASS
        if _zcheck(res, rate_th, md.rate, md.rate_stderr, dof=s["draws"] - 1)
        else Verdict.FAIL
    )
    res.note = "rates " + ", ".join(
        f"f={f}: {a:.3f}±{e:.3f} (th {t:.3f})"
        for f, a, e, t in zip(modes, md.rate, md.rate_stderr, rate_th)
    )
    return res


def check_modes_uniform(quick=True, rng=0):
    """Off-diagonal mode decay, uniform v."""
    return _mode_check("modes_uniform", "uniform", "c", quick, rng)


def check_modes_binomial(quick=True, rng=0):
    """Off-diagonal mode decay, binomial v."""
    return _mode_check("modes_binomial", "binomial", "c", quick, rng)


def check_modes_delta(quick=True, rng=0):
    """Off-diagonal mode decay, delta v (every mode decays like the FC c-map)."""
    return _mode_check("modes_delta", "delta", "c", quick, rng)


def check_modes_q(quick=True, rng=0):
    """Diagonal (variance) mode decay, uniform v: chi_q* lambda_f."""
    return _mode_check("modes_q_uniform", "uniform", "q", quick, rng)


def _spectrum_theory(depth, weights):
    """Theory moments (m1, variance), CDF (ascending grid) and lambda_max from cnnmft.spectrum."""
    jacobian_spectrum = _theory("spectrum", "jacobian_spectrum")
    sp = jacobian_spectrum("tanh", *CRITICAL, depth, weights)
    if getattr(sp, "normalized", False):
        raise _Missing("jacobian_spectrum returned a normalised spectrum (overflow)")
    lam, cdf = np.asarray(sp.lam, dtype=np.float64), np.asarray(sp.cdf, dtype=np.float64)
    order = np.argsort(lam)
    return float(sp.m1), float(sp.variance), (lam[order], cdf[order]), float(sp.lambda_max)


def _ks(sorted_sample, cdf_x, cdf_y):
    """KS distance, the supremum taken over sample points inside the tabulated theory range.

    Below the first grid point the theory CDF is not resolved (e.g. the integrable spike at 0
    of Gaussian-weight spectra).
    """
    n = sorted_sample.size
    inside = (sorted_sample >= cdf_x[0]) & (sorted_sample <= cdf_x[-1])
    f = np.interp(sorted_sample, cdf_x, cdf_y)
    hi = np.arange(1, n + 1) / n - f
    lo = f - np.arange(n) / n
    return float(max(np.max(hi[inside], initial=0.0), np.max(lo[inside], initial=0.0)))


def _ks2(a, b):
    # the statistic only (no p-value is used): the asymptotic method never warns about the
    # exact distribution being out of reach
    return float(ks_2samp(a, b, method="asymp").statistic)


def _jacobian_check(name, weights, kernel, conv, quick, rng):
    shape = "1D n=8 CNN, 3-tap" if conv else "FC"
    res = CheckResult(
        name,
        "jacobian",
        f"tanh at the critical point (1.05, 2.01e-5), q* = 0.0259, {shape} "
        f"{kernel} weights: JJ^T eigenvalues vs free probability ({weights})",
    )
    depth = 8 if quick else 16
    m1_th, var_th, cdf, lmax_th = _spectrum_theory(depth, weights)
    fp = _fp("tanh", *CRITICAL)
    sizes = _sizes(quick, "jacobian_conv" if conv else "jacobian_fc")
    sp, k = ((8,), 3) if conv else ((1,), 1)
    width, draws = sizes["width"], sizes["draws"]
    runs = []
    for w in (width, 2 * width):
        runs.append(
            mc.jacobian_singular_values(
                "tanh",
                *CRITICAL,
                depth,
                sp,
                width=w,
                q_input=fp["q_star"],
                kernel=kernel,
                kernel_size=k,
                n_draws=draws,
                method="exact",
                rng=rng,
            )
        )
    js0, js = runs
    # finite width biases the moments by O(1/width): Richardson-extrapolate widths c and 2c
    m1 = 2 * js.m1 - js0.m1
    m1_se = float(np.hypot(2 * js.m1_stderr, js0.m1_stderr))
    var = 2 * js.var - js0.var
    var_se = float(np.hypot(2 * js.var_stderr, js0.var_stderr))
    ok = _zcheck(res, [m1_th, var_th], [m1, var], [m1_se, var_se], dof=draws - 1)
    pooled = np.sort(js.eigenvalues.ravel())
    res.curves = {
        "eigenvalues": pooled,
        "m1": np.array([m1, m1_se]),
        "var": np.array([var, var_se]),
        "widths": np.array([width, 2 * width]),
        "var_by_width": np.array([js0.var, js.var]),
    }
    if cdf is not None:
        res.ks = _ks(pooled, *cdf)
        pairs = [
            _ks2(js.eigenvalues[i], js.eigenvalues[j])
            for i in range(draws)
            for j in range(i + 1, draws)
        ]
        res.ks_crit = float(max(pairs))
        res.curves["cdf_x"], res.curves["cdf_y"] = cdf
        ok = ok and res.ks <= res.ks_crit
    res.note = (
        f"extrapolated m1 {m1:.4f}±{m1_se:.4f} (th {m1_th:.4f}); var {var:.4f}±"
        f"{var_se:.4f} (th {var_th:.4f}; at widths {width}, {2 * width}: "
        f"{js0.var:.4f}, {js.var:.4f}); max eigenvalue "
        f"{js.top[0] ** 2:.3f} (th edge {lmax_th:.3f})"
    )
    res.status = Verdict.PASS if ok else Verdict.FAIL
    return res


def check_jacobian_fc_orthogonal(quick=True, rng=0):
    """FC orthogonal network Jacobian spectrum."""
    return _jacobian_check(
        "jacobian_fc_orthogonal", "orthogonal", "delta_orthogonal", False, quick, rng
    )


def check_jacobian_fc_gaussian(quick=True, rng=0):
    """FC Gaussian network Jacobian spectrum."""
    return _jacobian_check("jacobian_fc_gaussian", "gaussian", "gaussian", False, quick, rng)


def check_jacobian_conv_delta(quick=True, rng=0):
    """Delta-orthogonal CNN Jacobian spectrum (the FC orthogonal prediction)."""
    return _jacobian_check(
        "jacobian_conv_delta_orthogonal", "orthogonal", "delta_orthogonal", True, quick, rng
    )


def check_jacobian_conv_block(quick=True, rng=0):
    """Block-orthogonal (Algorithm 1) CNN Jacobian spectrum (the FC orthogonal prediction)."""
    return _jacobian_check(
        "jacobian_conv_block_orthogonal", "orthogonal", "block_orthogonal", True, quick, rng
    )


def check_jacobian_conv_gaussian(quick=True, rng=0):
    """Gaussian-kernel CNN Jacobian spectrum (the FC Gaussian prediction)."""
    return _jacobian_check("jacobian_conv_gaussian", "gaussian", "gaussian", True, quick, rng)


def check_jacobian_large_stochastic(quick=True, rng=0):
    """Large 2D Delta-orthogonal CNN: Hutchinson mean of JJ^T and ARPACK top singular values."""
    res = CheckResult(
        "jacobian_large_stochastic",
        "jacobian",
        "tanh at the critical point (1.05, 2.01e-5), 2D 8x8 Delta-orthogonal CNN, "
        "matrix-free: Hutchinson m1 of JJ^T vs free probability; the largest "
        "singular values (ARPACK) are reported against sqrt(lambda_max)",
    )
    depth = 8 if quick else 16
    m1_th, var_th, _cdf, lmax_th = _spectrum_theory(depth, "orthogonal")
    fp = _fp("tanh", *CRITICAL)
    width, draws = (32, 6) if quick else (64, 6)
    js = mc.jacobian_singular_values(
        "tanh",
        *CRITICAL,
        depth,
        (8, 8),
        width=width,
        q_input=fp["q_star"],
        kernel="delta_orthogonal",
        kernel_size=3,
        n_draws=draws,
        method="stochastic",
        n_probes=8,
        n_top=3,
        rng=rng,
    )
    ok = _zcheck(res, [m1_th], [js.m1], [js.m1_stderr], dof=draws - 1)
    res.curves = {
        "top": js.top,
        "top_se": js.top_stderr,
        "m1": np.array([js.m1, js.m1_stderr]),
        "sqrt_lambda_max": np.array(np.sqrt(lmax_th)),
    }
    res.note = (
        f"N = {64 * width}; m1 {js.m1:.4f}±{js.m1_stderr:.4f} (th {m1_th:.4f}); var "
        f"{js.var:.4f}±{js.var_stderr:.4f} (th {var_th:.4f}, finite width biases it up);"
        f" top singular values {np.round(js.top, 3).tolist()} vs sqrt(lambda_max) "
        f"{np.sqrt(lmax_th):.3f}"
    )
    res.status = Verdict.PASS if ok else Verdict.FAIL
    return res


CHECKS = {
    "fixed_point": check_fixed_point,
    "trajectories": check_trajectories,
    "covariance_uniform": check_covariance_uniform,
    "covariance_binomial": check_covariance_binomial,
    "covariance_delta": check_covariance_delta,
    "modes_uniform": check_modes_uniform,
    "modes_binomial": check_modes_binomial,
    "modes_delta": check_modes_delta,
    "modes_q_uniform": check_modes_q,
    "jacobian_fc_orthogonal": check_jacobian_fc_orthogonal,
    "jacobian_fc_gaussian": check_jacobian_fc_gaussian,
    "jacobian_conv_delta_orthogonal": check_jacobian_conv_delta,
    "jacobian_conv_block_orthogonal": check_jacobian_conv_block,
    "jacobian_conv_gaussian": check_jacobian_conv_gaussian,
    "jacobian_large_stochastic": check_jacobian_large_stochastic,
    **NETWORK_CHECKS,
}
"""Registry of checks: name -> ``f(quick, rng) -> CheckResult``."""

_GROUPS = {"fixed_point": "fixed point", "trajectories": "trajectory"}


def _summary(f):
    doc = getattr(f, "__doc__", None) or getattr(f, "__name__", "check")
    return doc.strip().splitlines()[0]


def run_check(name, quick=True, rng=0) -> CheckResult:
    """Run one check by name; a missing theory module gives a ``not available`` row.

    Parameters
    ----------
    name : str
        A key of :data:`CHECKS`.
    quick : bool
        Small networks (seconds) instead of the full sizes.
    rng : int
        Seed of the simulated networks.

    Returns
    -------
    CheckResult
        The row: verdict, largest ``|z|`` and its threshold, KS distance, curves.

    Examples
    --------
    >>> res = run_check("fixed_point", quick=True, rng=0)
    >>> str(res.status), res.z <= res.z_crit, res.n_compared
    ('pass', True, 18)
    """
    V.as_choice(name, "name", CHECKS)
    t0 = time.perf_counter()
    try:
        res = CHECKS[name](quick=quick, rng=rng)
    except _Missing as exc:
        group = _GROUPS.get(name, name.split("_")[0])
        res = CheckResult(
            name, group, _summary(CHECKS[name]), status=Verdict.NOT_AVAILABLE, note=str(exc)
        )
    except (ArithmeticError, ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
        group = _GROUPS.get(name, name.split("_")[0])
        res = CheckResult(
            name,
            group,
            _summary(CHECKS[name]),
            status=Verdict.ERROR,
            note=f"{type(exc).__name__}: {exc}",
        )
    res.seconds = time.perf_counter() - t0
    return res


def run_checks(names=None, *, quick=True, rng=0, progress=None) -> ValidationResult:
    """Run several checks (all by default) and collect the table.

    Parameters
    ----------
    names : list of str, optional
        Subset of :data:`CHECKS`.
    quick : bool
        Small networks (about 2 minutes for all on a laptop core) instead of the full sizes
        (under 20 minutes).
    rng : int
        Base seed; check ``i`` uses ``rng + i``.
    progress : callable, optional
        Called as ``progress(i, n, result)`` after each check.

    Returns
    -------
    ValidationResult

    Examples
    --------
    >>> out = run_checks(["fixed_point"], quick=True, rng=0)
    >>> out.ok, out.failed, [c.name for c in out.checks]
    (True, [], ['fixed_point'])
    """
    names = list(CHECKS) if names is None else list(names)
    for n in names:
        V.as_choice(n, "names", CHECKS)
    t0 = time.perf_counter()
    out = []
    for i, n in enumerate(names):
        res = run_check(n, quick=quick, rng=int(rng) + i)
        out.append(res)
        if progress is not None:
            progress(i + 1, len(names), res)
    return ValidationResult(checks=out, quick=quick, seconds=time.perf_counter() - t0)
