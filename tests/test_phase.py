"""Phase diagrams: the grid solver (warm starts, Mehler series) against independent references."""

import math

import numpy as np
import pytest

import cnnmft
from cnnmft import Status
from tests.test_meanfield import erf_reference


def test_erf_grid_against_closed_forms():
    sw = np.linspace(0.3, 10, 13)
    sb = np.array([0.0, 0.01, 0.3, 2.0])
    pd = cnnmft.phase_diagram("erf", sw, sb)
    for i, a in enumerate(sw):
        for j, b in enumerate(sb):
            q, c, chi1, chic = erf_reference(a, b)
            assert pd.q_star[i, j] == pytest.approx(q, rel=1e-9, abs=1e-12)
            assert pd.c_star[i, j] == pytest.approx(c, abs=1e-9)
            assert pd.chi_c[i, j] == pytest.approx(chic, rel=1e-9)
    # critical line: sigma_w2 = (pi/4) sqrt(1 + 4 q*) there
    cs = pd.critical_sigma_w2
    assert cs[0] == pytest.approx(math.pi / 4, rel=1e-12)


def test_tanh_mehler_series_agrees_with_direct_quadrature():
    # the grid solver uses the Hermite (Mehler) series of the c-map in the chaotic phase; the
    # point solver uses direct bivariate quadrature: two independent algorithms
    sw = np.linspace(1.2, 9.0, 14)
    sb = np.array([0.0, 0.05, 0.7, 2.0])
    pd = cnnmft.phase_diagram("tanh", sw, sb)
    W, B = np.meshgrid(sw, sb, indexing="ij")
    fp = cnnmft.fixed_point("tanh", W, B, method="quadrature")
    np.testing.assert_allclose(pd.q_star, fp.q_star, rtol=1e-12)
    np.testing.assert_allclose(pd.c_star, fp.c_star, atol=1e-11)
    np.testing.assert_allclose(pd.chi_c, fp.chi_c, rtol=1e-10)
    np.testing.assert_array_equal(pd.status, fp.status)
    assert (pd.chi_1 > 1).mean() > 0.5  # the chaotic phase is exercised


def test_critical_line_separates_phases():
    sw = np.linspace(0.5, 4.0, 36)
    sb = np.array([0.01, 0.05, 0.2])
    pd = cnnmft.phase_diagram("tanh", sw, sb)
    for j in range(sb.size):
        ordered = sw < pd.critical_sigma_w2[j]
        assert (pd.chi_1[ordered, j] < 1).all() and (pd.chi_1[~ordered, j] > 1).all()
        assert (pd.c_star[ordered, j] == 1).all() and (pd.c_star[~ordered, j] < 1).all()


def test_relu_statuses_and_save_load(tmp_path):
    pd = cnnmft.phase_diagram("relu", [1.0, 1.5, 2.5], [0.0, 0.1])
    assert pd.status[2, 1] == Status.INFINITE and pd.status[0, 0] == Status.ZERO
    for suffix in (".npz", ".json"):
        back = cnnmft.PhaseDiagram.load(pd.save(tmp_path / f"pd{suffix}"))
        for name in ("q_star", "c_star", "xi_c", "status", "critical_sigma_w2"):
            np.testing.assert_array_equal(getattr(back, name), getattr(pd, name))
        assert back.activation == "relu"
    d = pd.to_dict()
    assert set(cnnmft.phase.QUANTITIES) <= set(d)


def test_bad_grid():
    with pytest.raises(ValueError, match="`sigma_w2`"):
        cnnmft.phase_diagram("tanh", [0.0, 1.0], [0.1])
    with pytest.raises(ValueError, match="non-empty"):
        cnnmft.phase_diagram("tanh", [], [0.1])


@pytest.mark.parametrize("act", ["tanh", "erf", "hard_tanh"])
def test_chebyshev_tables_agree_with_direct_quadrature(act):
    # tables of E[phi^2], d/dq E[phi^2], E[phi'^2] and the Mehler coefficients in log q against
    # per-point direct quadrature (method="quadrature" on the point solver)
    sw = np.linspace(0.4, 9.5, 23)
    sb = np.array([0.0, 0.003, 0.05, 0.6, 1.9])
    pd = cnnmft.phase_diagram(act, sw, sb, method="tables", critical_line=False)
    W, B = np.meshgrid(sw, sb, indexing="ij")
    fp = cnnmft.fixed_point(act, W, B, method="quadrature")
    np.testing.assert_allclose(pd.q_star, fp.q_star, rtol=1e-11)
    np.testing.assert_allclose(pd.chi_1, fp.chi_1, rtol=1e-11)
    np.testing.assert_allclose(pd.chi_q, fp.chi_q, rtol=1e-11)
    np.testing.assert_allclose(pd.c_star, fp.c_star, atol=1e-10)
    np.testing.assert_allclose(pd.chi_c, fp.chi_c, rtol=1e-9)
    np.testing.assert_array_equal(pd.status, fp.status)


def test_tables_rejected_for_unbounded():
    with pytest.raises(ValueError, match="bounded"):
        cnnmft.phase_diagram("relu", [1.0], [0.1], method="tables")
