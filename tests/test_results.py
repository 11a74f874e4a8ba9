"""The one result idiom: equality through save/load, success, tables and plots for every type.

Equality rule under test (``cnnmft.results.values_equal``): arrays are equal when shapes and
entries agree, with NaN equal to NaN at the same place, so a result holding NaN cells (the NaN
critical line of ReLU, an overflowed Monte Carlo layer) equals its saved and reloaded copy.
"""

import dataclasses

import numpy as np
import pytest

import cnnmft
from cnnmft import montecarlo, network
from cnnmft.results import Result, ResultMixin, Status, status_counts, status_names, values_equal


def _digit():
    return np.random.default_rng(0).normal(size=(6, 6, 2))


BUILDERS = {
    "FixedPoint": lambda: cnnmft.fixed_point("tanh", [0.8, 1.5, 3.0], 0.05),
    # relu has no critical line (NaN cells) and infinite fixed points for sigma_w2 > 2
    "PhaseDiagram": lambda: cnnmft.phase_diagram(
        "relu", np.linspace(0.5, 3.0, 5), np.linspace(0.0, 0.3, 3)
    ),
    "CriticalPoint": lambda: cnnmft.critical_sigma_w2("tanh", [0.0, 0.05, 0.2]),
    "ModeDepthScales": lambda: cnnmft.mode_depth_scales(
        "tanh", 1.5, 0.05, cnnmft.variance_profile("uniform", 3), (4, 4)
    ),
    "CovarianceResult": lambda: cnnmft.propagate_covariance(
        _digit(),
        "tanh",
        1.5,
        0.05,
        cnnmft.variance_profile("uniform", 3),
        3,
        layers="all",
        progress=False,
    ),
    "Spectrum": lambda: cnnmft.jacobian_spectrum("tanh", 1.760955, 0.05, 8, n_points=80),
    "JacobianMoments": lambda: cnnmft.jacobian_moments("tanh", 1.760955, 0.05, 8),
    "Simulation": lambda: montecarlo.simulate(
        _digit(), "tanh", 1.5, 0.05, 3, width=8, n_draws=2, rng=0, progress=False
    ),
    "JacobianSample": lambda: montecarlo.jacobian_singular_values(
        "tanh", 1.5, 0.05, 3, (4,), width=8, n_draws=2, rng=0, progress=False
    ),
    "ModeDecay": lambda: montecarlo.mode_decay(
        "tanh",
        2.5,
        0.05,
        3,
        (8,),
        q_star=1.06396,
        c_star=0.446804,
        modes=[1, 2],
        width=8,
        v=cnnmft.variance_profile("uniform", 3, ndim=1),
        n_draws=2,
        rng=0,
        progress=False,
    ),
    "NetworkResult": lambda: network.propagate_network(
        np.random.default_rng(0).normal(size=(2, 5, 5, 2)),
        [
            network.Conv(3, 1, "zero", 1.5, 0.05),
            network.Act("erf"),
            network.GlobalAvgPool(),
            network.Dense(1.0, 0.0),
        ],
    ),
    "NetworkSimulation": lambda: network.simulate_network(
        np.random.default_rng(0).normal(size=(2, 5, 2)),
        [
            network.Conv(3, 1, "zero", 1.5, 0.05),
            network.Act("tanh"),
            network.GlobalAvgPool(),
            network.Dense(1.0, 0.0),
        ],
        8,
        n_draws=2,
        rng=0,
    ),
    "BackwardModeDepthScales": lambda: network.backward_mode_depth_scales(
        "tanh", 1.5, 0.05, cnnmft.variance_profile("uniform", 3), (4, 4)
    ),
    "Prediction": lambda: network.predict(
        {"depth": 2, "sigma_w2": 1.5, "sigma_b2": 0.05, "channels": 4, "stem_strides": (1,)},
        input_shape=(4, 4),
    ),
    "BorderEffects": lambda: network.border_effects(
        "tanh", 1.5, 0.05, [0.25, 0.5, 0.25], [6, 8], depth=4
    ),
}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def result(request):
    return BUILDERS[request.param]()


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_equal_to_itself_through_save_and_load(result, tmp_path, suffix):
    assert isinstance(result, Result)
    assert result == result
    back = type(result).load(result.save(tmp_path / f"r{suffix}"))
    assert back == result and result == back
    assert not (back != result)


def _result_types():
    import importlib
    import pkgutil

    found = set()
    for m in pkgutil.walk_packages(cnnmft.__path__, "cnnmft."):
        if m.name.split(".")[1] in ("pytorch", "commands", "report", "cli", "__main__", "sweeps"):
            continue  # torch/dask results are covered by their own tests
        mod = importlib.import_module(m.name)
        for obj in vars(mod).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, Result)
                and obj is not Result
                and obj.__module__ == mod.__name__
            ):
                found.add(obj.__name__)
    return found


def test_every_result_type_is_covered_here():
    assert _result_types() <= set(BUILDERS), sorted(_result_types() - set(BUILDERS))


def test_nan_cells_survive_the_round_trip(tmp_path):
    pd = BUILDERS["PhaseDiagram"]()
    assert np.isnan(pd.critical_sigma_w2[pd.sigma_b2 > 0]).all()  # relu: chi_1 = 1 only at 0
    assert type(pd).load(pd.save(tmp_path / "p.npz")) == pd


def test_a_changed_field_breaks_equality():
    fp = BUILDERS["FixedPoint"]()
    other = dataclasses.replace(fp, q_star=np.asarray(fp.q_star) * (1 + 1e-15) + 1e-300)
    assert fp != other
    assert fp != BUILDERS["CriticalPoint"]()  # different types: unequal, no exception
    assert (fp == 3) is False


def test_comparing_two_spectra_never_raises():
    a = BUILDERS["Spectrum"]()
    b = dataclasses.replace(a, density=np.asarray(a.density) * 2)  # same shapes, other values
    assert (a == b) is False and (a != b) is True
    c = dataclasses.replace(a, lam=np.asarray(a.lam)[:-1])  # another shape
    assert (a == c) is False


def test_load_refuses_another_type(tmp_path):
    p = BUILDERS["CriticalPoint"]().save(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="CriticalPoint"):
        cnnmft.FixedPoint.load(p)


def test_success_reads_status():
    fp = BUILDERS["FixedPoint"]()
    np.testing.assert_array_equal(fp.success, np.asarray(fp.status) >= 0)
    assert BUILDERS["Spectrum"]().success is True


def test_values_equal_rules():
    assert values_equal(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]))
    assert values_equal(1, 1.0) and values_equal("a", np.array("a"))
    assert not values_equal(np.zeros((2, 1)), np.zeros(2))
    assert values_equal({"a": [1.0, np.nan]}, {"a": np.array([1.0, np.nan])})
    assert not values_equal(None, 0) and values_equal(None, None)
    assert not values_equal("1", 1)


def test_status_helpers_and_alias():
    assert ResultMixin is Result
    codes = np.array([0, 0, -3, int(Status.INTERRUPTED)])
    assert status_counts(codes) == {"OK": 2, "NONFINITE": 1, "INTERRUPTED": 1}
    assert status_names(codes).tolist() == ["OK", "OK", "NONFINITE", "INTERRUPTED"]


def test_subclass_dataclass_eq_does_not_override():
    @dataclasses.dataclass(frozen=True)  # eq=True by default: Result's equality must win
    class R(Result):
        x: np.ndarray
        status: int = 0

    assert R(np.array([np.nan])) == R(np.array([np.nan]))
    with pytest.raises(TypeError):
        hash(R(np.zeros(1)))

    @dataclasses.dataclass(frozen=True)
    class Tolerant(Result):
        x: float

        def __eq__(self, other):  # a subclass may define its own equality...
            return abs(self.x - other.x) < 0.5

    @dataclasses.dataclass(frozen=True)
    class Child(Tolerant):  # ...and its subclasses keep it
        pass

    assert Child(1.0) == Child(1.2)


def test_to_dataframe_and_xarray_on_a_grid():
    pd_ = pytest.importorskip("pandas")
    pd = BUILDERS["PhaseDiagram"]()
    df = pd.to_dataframe()
    assert isinstance(df, pd_.DataFrame)
    assert len(df) == pd.sigma_w2.size * pd.sigma_b2.size
    row = df.iloc[pd.sigma_b2.size + 2]  # C order: (i_w, i_b) = (1, 2)
    assert row["sigma_w2"] == pd.sigma_w2[1] and row["sigma_b2"] == pd.sigma_b2[2]
    assert row["chi_1"] == pd.chi_1[1, 2]
    pytest.importorskip("xarray")
    ds = pd.to_xarray()
    assert ds["chi_1"].dims == ("sigma_w2", "sigma_b2")
    assert (
        float(ds["chi_1"].sel(sigma_w2=pd.sigma_w2[3], sigma_b2=pd.sigma_b2[0])) == pd.chi_1[3, 0]
    )
    assert ds.attrs["activation"] == "relu"
    assert ds["critical_sigma_w2"].dims == ("sigma_b2",)  # a field on one axis of the grid


def test_to_xarray_keeps_fields_on_some_axes():
    pytest.importorskip("xarray")
    r = cnnmft.mode_depth_scales(
        "tanh", [1.5, 2.0], 0.05, cnnmft.variance_profile("uniform", 3), (4, 4)
    )
    ds = r.to_xarray()
    assert ds["xi_c"].shape == (2, 4, 4) and ds["xi_c"].dims[0] == "sigma_w2"
    assert ds["q_star"].dims == ("sigma_w2",)
    assert ds["lam"].dims == ds["xi_c"].dims[1:]
    df = r.to_dataframe()
    assert len(df) == 32 and (df["q_star"].to_numpy()[:16] == r.q_star[0]).all()


def test_every_result_plots(result):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = result.plot()
    assert hasattr(ax, "plot") and ax.figure is not None
    plt.close("all")
