"""Tests of the theory-vs-simulation checks (:mod:`cnnmft.checks`) and ``cnnmft validate``.

Small versions of the theory-vs-simulation checks must pass with the real theory and must FAIL
when the theory is deliberately wrong (the sigma_w-for-sigma_w2 convention slip).
"""

import argparse

import numpy as np
import pytest
from scipy.stats import kstest, norm, t

from cnnmft import checks as vl
from cnnmft.report.validation import write_validation_report


def test_z_threshold_is_bonferroni_normal_or_t():
    assert vl.z_threshold(1) == pytest.approx(norm.isf(5e-4))
    assert vl.z_threshold(100, alpha=0.01) == pytest.approx(norm.isf(5e-5))
    assert vl.z_threshold(10, dof=5) == pytest.approx(t.isf(5e-5, 5))
    assert vl.z_threshold(1000) > vl.z_threshold(10)


def test_ks_helper_matches_scipy_inside_the_grid():
    rng = np.random.default_rng(0)
    x = np.sort(rng.random(500))
    grid = np.linspace(0, 1, 1001)
    assert vl._ks(x, grid, grid) == pytest.approx(kstest(x, "uniform").statistic, abs=1e-12)


def test_trajectories_pass_with_the_theory():
    res = vl.run_check("trajectories", quick=True, rng=0)
    assert res.status == "pass", res.row()
    assert res.n_compared == 40
    assert res.z <= res.z_crit


def _wrong_convention_maps():
    """The q- and c-maps evaluated with sigma_w (the std) where sigma_w2 belongs."""
    from cnnmft.meanfield import c_map, q_map

    def q_wrong(act, q, sw2, sb2):
        return q_map(act, q, np.sqrt(sw2), sb2)

    def c_wrong(act, c, q, sw2, sb2):
        return c_map(act, c, q, np.sqrt(sw2), sb2)

    return q_wrong, c_wrong


def test_trajectories_fail_with_wrong_sigma_w_convention():
    res = vl.check_trajectories(quick=True, rng=0, theory_override=_wrong_convention_maps())
    assert res.status == "fail"
    assert res.z > 2 * res.z_crit


def test_fixed_point_check_fails_with_wrong_convention():
    from cnnmft.meanfield import fixed_point

    def wrong(sw2, sb2):
        fp = fixed_point("tanh", np.atleast_1d(np.sqrt(sw2)), np.atleast_1d(float(sb2)))
        return {
            k: float(np.ravel(getattr(fp, k))[0])
            for k in ("q_star", "c_star", "chi_1", "chi_q", "chi_c")
        }

    res = vl.check_fixed_point(quick=True, rng=1, theory_override=wrong)
    assert res.status == "fail", res.row()


def test_mode_decay_delta_passes():
    res = vl.run_check("modes_delta", quick=True, rng=0)
    assert res.status == "pass", res.row()
    assert res.curves["rate_mc"].shape == (3,)


def test_missing_theory_gives_not_available_row(monkeypatch):
    def missing(module, name):
        raise vl._Missing(f"cnnmft.{module}.{name} is not available")

    monkeypatch.setattr(vl, "_theory", missing)
    res = vl.run_check("modes_uniform", quick=True)
    assert res.status == "not available"
    assert "not available" in res.note
    out = vl.ValidationResult([res], quick=True, seconds=0.0)
    assert out.ok and not res.passed


def test_theory_error_counts_as_failure(monkeypatch):
    def boom(**kw):
        raise FloatingPointError("diverged")

    monkeypatch.setitem(vl.CHECKS, "modes_uniform", boom)
    res = vl.run_check("modes_uniform")
    assert res.status == "error"
    assert not vl.ValidationResult([res], quick=True, seconds=0.0).ok


def _run_cli(argv):
    from cnnmft.commands import validate as cmd

    p = argparse.ArgumentParser()
    cmd.configure(p)
    return cmd.run(p.parse_args(argv))


def test_cli_writes_table_and_figures(tmp_path, capsys):
    rc = _run_cli(["--quick", "--checks", "trajectories", "--out", str(tmp_path)])
    assert rc == 0
    assert (tmp_path / "table.csv").read_text().startswith("name,group,status")
    assert (tmp_path / "figures" / "trajectories.png").stat().st_size > 1000
    assert (tmp_path / "index.html").exists()
    assert "trajectories" in capsys.readouterr().out


def test_cli_exits_nonzero_on_failure(tmp_path, monkeypatch):
    monkeypatch.setitem(
        vl.CHECKS,
        "trajectories",
        lambda quick, rng: vl.check_trajectories(
            quick, rng, theory_override=_wrong_convention_maps()
        ),
    )
    rc = _run_cli(["--quick", "--checks", "trajectories", "--out", str(tmp_path), "--no-figures"])
    assert rc == 1


def test_covariance_check_passes_and_fails_with_wrong_convention():
    cov = pytest.importorskip("cnnmft.covariance")
    if not hasattr(cov, "propagate_covariance"):
        pytest.skip("propagate_covariance not available")
    good = vl.check_covariance_uniform(quick=True, rng=0)
    assert good.status == "pass", good.row()

    def wrong(x, act, sw2, sb2, v, depth, **kw):
        return cov.propagate_covariance(x, act, np.sqrt(sw2), sb2, v, depth, **kw)

    bad = vl.check_covariance_uniform(quick=True, rng=0, propagate=wrong)
    assert bad.status == "fail"
    assert bad.z > 1.5 * bad.z_crit


@pytest.mark.parametrize(
    "group,curves",
    [
        (
            "jacobian",
            {
                "top": np.array([1.2, 1.1]),
                "top_se": np.array([0.01, 0.01]),
                "sqrt_lambda_max": np.array(1.13),
                "m1": np.array([1.0, 0.01]),
            },
        ),
        (
            "jacobian",
            {
                "eigenvalues": np.linspace(0.3, 1.3, 50),
                "cdf_x": np.linspace(0, 2, 20),
                "cdf_y": np.linspace(0, 1, 20),
            },
        ),
        ("covariance", {"theory": np.arange(3.0), "mc": np.arange(3.0), "se": np.ones(3)}),
        (
            "modes",
            {
                "layers": np.arange(1, 4),
                "modes": np.array([1]),
                "amp_theory": np.ones((3, 1)),
                "amp_mc": np.ones((3, 1)),
                "amp_se": np.ones((3, 1)),
            },
        ),
    ],
)
def test_every_figure_kind_renders(group, curves, tmp_path):
    res = vl.CheckResult("x", group, "d", status="pass", curves=curves)
    out = write_validation_report(vl.ValidationResult([res], quick=True, seconds=1.0), tmp_path)
    assert out.exists()
    assert (tmp_path / "figures" / "x.png").exists()
