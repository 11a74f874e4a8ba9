"""The plotting layer: every figure function returns its Axes/Figure and saves its numbers."""

import json

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")  # the test chooses the backend; the library never does

import matplotlib.pyplot as plt  # noqa: E402

import cnnmft  # noqa: E402
from cnnmft import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_save_figure_writes_image_and_numbers(tmp_path):
    ax = plotting.sorted_values({"a": [3.0, 1.0, 2.0]})
    p = plotting.save_figure(ax, tmp_path / "f.png", {"a": [1.0, 2.0, 3.0]})
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "f.csv").read_text().splitlines() == ["a", "1.0", "2.0", "3.0"]
    p = plotting.save_figure(plt.figure(), tmp_path / "g.png", {"x": 1.5})
    assert json.loads((tmp_path / "g.json").read_text()) == {"x": 1.5}


def test_sorted_values_draws_sorted_curves():
    ax = plotting.sorted_values({"a": [3.0, 1.0, 2.0], "b": [0.0, 5.0]}, ylabel="s")
    ys = [line.get_ydata().tolist() for line in ax.get_lines()]
    assert ys == [[1.0, 2.0, 3.0], [0.0, 5.0]]
    assert ax.get_ylabel() == "s"


def test_tap_profiles_one_panel_per_kind():
    off = np.arange(3) - 1
    m = {"delta": np.array([0, 1, 0.0]), "binomial": np.array([0.25, 0.5, 0.25])}
    se = {k: np.zeros(3) for k in m}
    fig = plotting.tap_profiles(off, m, se, m)
    assert len(fig.axes) == 2


def test_correlation_snapshots_and_decay():
    x = np.random.default_rng(0).normal(size=(5, 5, 2))
    res = cnnmft.propagate_covariance(
        x,
        "tanh",
        1.76,
        0.05,
        cnnmft.variance_profile("uniform", 3),
        4,
        layers=[1, 4],
        progress=False,
    )
    fig = plotting.correlation_snapshots(res, [1, 4])
    img = fig.axes[0].get_images()[0].get_array()
    assert img.shape == (5, 5) and img[2, 2] == pytest.approx(1.0)  # a pixel with itself
    ax = plotting.decay_against_prediction([1, 2, 3], [1.0, 0.5, 0.25], [1.0, 0.5, 0.25])
    assert len(ax.get_lines()) == 2


def test_spectrum_figures():
    s = cnnmft.jacobian_spectrum("tanh", 1.05, 2.01e-5, 8, n_points=60)
    ax = plotting.sv_density([s])
    assert ax.get_yscale() == "log"
    eig = np.random.default_rng(0).uniform(0.5, 1.4, size=200)
    ax = plotting.spectrum_against_samples(s, eig, title="t")
    assert ax.get_title() == "t" and len(ax.patches) > 10


def test_unknown_result_types_get_the_generic_figure():
    import dataclasses

    from cnnmft.results import Result

    @dataclasses.dataclass(frozen=True)
    class Curve(Result):
        x: np.ndarray
        y: np.ndarray

    ax = Curve(np.arange(4.0), np.arange(4.0) ** 2).plot()
    assert ax.get_lines()[0].get_ydata().tolist() == [0.0, 1.0, 4.0, 9.0]
    with pytest.raises(TypeError, match="result"):
        plotting.plot_result(3)
