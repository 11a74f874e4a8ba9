"""Tests of the theory-against-training experiments (:mod:`cnnmft.pytorch.experiments`,
:mod:`cnnmft.pytorch.profiles`) on a real local Dask cluster.

The aggregation and the three rules are checked with stand-in cell functions whose answers are
known, against agreements counted by hand; one test runs the real ensemble cell and the command
line on a tiny grid.
"""

import argparse
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
distributed = pytest.importorskip("distributed")

from cnnmft.pytorch import experiments as E  # noqa: E402
from cnnmft.pytorch import profiles as P  # noqa: E402
from cnnmft.results import Status  # noqa: E402
from cnnmft.sweeps import CellStore  # noqa: E402

pytestmark = [
    pytest.mark.torch,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
    )
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def _toy_ensemble(params):
    """Stand-in: a member 'trains' (accuracy 0.9) iff depth <= 60; lr 0.1 has the lower loss
    except at sigma_w2 = 2 where lr 0.1 diverges; chance (0.1) otherwise."""
    out = []
    for m in params["members"]:
        trains = params["depth"] <= 60
        if m["sigma_w2"] == 2.0 and m["lr"] == 0.1:
            out.append(
                {
                    **m,
                    "test_accuracy": None,
                    "final_loss": None,
                    "loss": [2.3, None],
                    "status": "NONFINITE",
                    "stopped_at": 1,
                }
            )
            continue
        acc = (0.9 if trains else 0.1) - (0.2 if m["lr"] == 0.01 else 0.0)
        out.append(
            {
                **m,
                "test_accuracy": acc,
                "final_loss": 1.0 - acc,
                "loss": [2.3, 1 - acc],
                "status": "OK",
                "stopped_at": -1,
            }
        )
    return {
        "members": out,
        "status": "OK",
        "seconds_per_step": 0.0,
        "loss_every": 1,
        "n_test": 1000,
    }


def test_chance_threshold_is_a_binomial_bound():
    # p0 = 0.1, n = 1000: s.e. = sqrt(0.09 / 1000) = 0.0094868
    assert E.chance_threshold(10, 1000, 5) == pytest.approx(0.1 + 5 * 0.0094868, abs=1e-6)
    with pytest.raises(ValueError, match="n_test"):
        E.chance_threshold(10, 0, 5)


def test_trainability_sweep_rules_and_k_fit(client, tmp_path):
    sw, depths = [1.0, 1.5, 2.0], [10, 50, 100, 200]
    res = E.trainability_sweep(
        sw,
        depths,
        lrs=[0.01, 0.1],
        seeds=[0, 1],
        sigma_b2=0.05,
        store=tmp_path / "s",
        scheduler=client,
        cell_fn=_toy_ensemble,
        progress=False,
    )
    # 6 xi_c at tanh, sigma_b2 = 0.05 (docs/theory.md, section 7.2): 21.8, 94.7, 151
    np.testing.assert_allclose(res.predicted_depth, [21.8, 94.7, 151.3], rtol=2e-3)
    assert res.test_accuracy.shape == (2, 2, 4, 3) and res.valid.all()
    assert (res.status[:, 1, :, 2] == int(Status.NONFINITE)).all()
    # lr 0.1 wins by training loss except where it diverged (sigma_w2 = 2): lr 0.01 there
    np.testing.assert_array_equal(res.best_lr[0, 0], [0.1, 0.1, 0.01])
    trained = np.array([[1, 1, 1], [1, 1, 1], [0, 0, 0], [0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(res.trained[0], trained)
    np.testing.assert_array_equal(res.trained[1], trained)
    # 6 xi_c predicts [[1,1,1],[0,1,1],[0,0,1],[0,0,0]]: 10 of 12 cells agree per seed
    assert res.agreement == pytest.approx(10 / 12)
    assert res.agreement_depth_rule == 1.0 and res.best_depth == 50
    assert res.agreement_sigma_rule == pytest.approx(0.5)  # every column half trained
    # k fit against a brute-force scan of k, rule evaluated cell by cell
    xi = res.predicted_depth / 6

    def agree(k, seeds=(0, 1)):
        hits = [
            (d <= k * xi[j]) == res.trained[s, i, j]
            for s in seeds
            for i, d in enumerate(depths)
            for j in range(3)
        ]
        return np.mean(hits)

    brute = max(agree(k) for k in np.geomspace(0.1, 100, 4001))
    assert res.agreement_k_fit == pytest.approx(brute)
    assert agree(res.k_fit) == pytest.approx(res.agreement_k_fit)
    for s in (0, 1):
        assert agree(res.k_fit_per_seed[s], (s,)) == pytest.approx(
            max(agree(k, (s,)) for k in np.geomspace(0.1, 100, 4001))
        )
    back = type(res).load(res.save(tmp_path / "sweep.npz"))
    assert back.agreement == res.agreement and "depth-only" in back.summary()
    # built again from the store alone, without a cluster
    again = E.trainability_sweep(
        sw, depths, lrs=[0.01, 0.1], seeds=[0, 1], store=tmp_path / "s", compute=False
    )
    np.testing.assert_array_equal(again.trained, res.trained)
    import matplotlib

    matplotlib.use("Agg")
    assert len(E.plot_trainability(res).axes) == 2


def test_missing_cells_are_interrupted_and_do_not_count(client, tmp_path):
    kw = dict(lrs=[0.01, 0.1], seeds=[0, 1], store=tmp_path / "s")
    E.trainability_sweep(
        [1.0, 1.5], [10, 200], scheduler=client, cell_fn=_toy_ensemble, progress=False, **kw
    )
    store = CellStore(tmp_path / "s")
    victim = next(
        f
        for f in store.cells_dir.glob("*.json")
        if json.loads(f.read_text())["params"]["depth"] == 200
    )
    victim.write_text(victim.read_text()[:100])  # a damaged file is no result
    res = E.trainability_sweep([1.0, 1.5], [10, 200], compute=False, **kw)
    assert (res.status == int(Status.INTERRUPTED)).sum() == 4  # one task: 2 sigma_w2 x 2 lrs
    assert res.valid.sum() == 6  # (seed, depth, sigma_w2) cells: one task of 2 missing
    assert np.isnan(res.best_accuracy[~res.valid]).all()
    # agreement over the 6 valid cells only: trained iff depth 10; 6 xi_c = 21.8, 94.7
    assert res.agreement == pytest.approx(1.0)


def test_trainability_sweep_refuses_bad_input():
    with pytest.raises(ValueError, match="depth"):
        E.trainability_sweep([1.0], [0, 5], cell_fn=_toy_ensemble, progress=False)
    with pytest.raises(ValueError, match="chanels"):
        E.trainability_sweep([1.0], [2], chanels=8, progress=False)
    with pytest.raises(ValueError, match="lrs"):
        E.trainability_sweep([1.0], [2], lrs=[0.1, 0.1], progress=False)
    with pytest.raises(ValueError, match="store"):
        E.trainability_sweep([1.0], [2], compute=False)


def _toy_modes(params):
    out = []
    for m in params["members"]:
        sign = 1.0 if m["init"] == "tunable_orthogonal" else -1.0
        acc = 0.5 + sign * m["t"] / 10 + 0.02 * params["seed"]
        out.append(
            {
                **m,
                "test_accuracy": acc,
                "train_accuracy": acc + 0.1,
                "final_loss": 1.0,
                "loss": [2.0, 1.0 + m["t"], 0.5 + m["t"]],
                "status": "OK",
                "stopped_at": -1,
            }
        )
    return {"members": out, "status": "OK", "seconds_per_step": 0.0, "loss_every": 5, "n_test": 100}


def test_modewise_study_aggregates_and_predicts_mode_scales(client, tmp_path):
    ts = [0.0, 0.1, 0.25, 0.5]
    res = P.modewise_study(
        ts,
        depth=10,
        seeds=(0, 1, 2),
        store=tmp_path / "s",
        scheduler=client,
        cell_fn=_toy_modes,
        progress=False,
    )
    t = np.array(ts)
    assert res.test_accuracy.shape == (2, 4, 3)
    for ik, sign in enumerate([1.0, -1.0]):
        np.testing.assert_allclose(res.test_accuracy[ik].mean(axis=1), 0.5 + sign * t / 10 + 0.02)
        np.testing.assert_allclose(res.slope_test_accuracy[ik], sign / 10, atol=1e-12)
        np.testing.assert_allclose(res.loss_auc[ik].mean(axis=1), (3.5 + 2 * t) / 3)
        np.testing.assert_allclose(res.loss[ik, :, 2], 0.5 + t)
    assert res.loss_every == 5 and tuple(res.spatial_shape) == (7, 7)
    # critical point: chi_c = 1, the slowest non-zero mode on the 7x7 grid has
    # |lam| = 1 - 2t(1-t)(1 - cos(2 pi / 7)) (docs/theory.md, section 4.3), xi = -1/log|lam|
    lam = 1 - 2 * t[1:] * (1 - t[1:]) * (1 - np.cos(2 * np.pi / 7))
    np.testing.assert_allclose(res.xi_slowest[1:], -1 / np.log(lam), rtol=1e-6)
    assert np.isinf(res.xi_slowest[0]) and res.surviving_fraction[0] == 1.0
    assert 0 <= res.surviving_fraction[-1] < 0.1
    import matplotlib

    matplotlib.use("Agg")
    assert len(P.plot_modewise(res).axes) == 4
    with pytest.raises(ValueError, match="kinds"):
        P.modewise_study(ts, kinds=("uniform",), cell_fn=_toy_modes, progress=False)


def test_real_ensemble_cell_is_storable():
    params = dict(
        E.TRAINABILITY_DEFAULTS,
        dataset="digits",
        stem_strides=[1, 2],
        depth=2,
        channels=4,
        steps=8,
        max_test=100,
        act="tanh",
        sigma_b2=0.05,
        seed=0,
        eval_train=50,
        members=[{"sigma_w2": 1.76, "lr": 0.02}, {"sigma_w2": 4.0, "lr": 0.05}],
    )
    out = E.ensemble_cell(params)
    json.dumps(out)
    for m, sw in zip(out["members"], (1.76, 4.0)):
        assert m["status"] == "OK" and m["sigma_w2"] == sw and m["stopped_at"] == -1
        assert 0 <= m["test_accuracy"] <= 1 and len(m["loss"]) == 8
        assert 0 <= m["train_accuracy"] <= 1 and np.isfinite(m["final_loss"])
        assert m["final_loss"] == pytest.approx(m["loss"][-1])  # last tenth of 8 steps: 1 step
    assert out["n_test"] == 100 and out["loss_every"] == 1


def test_cli_trainability_on_a_given_scheduler(client, tmp_path):
    from cnnmft.commands import trainability as cmd

    parser = argparse.ArgumentParser()
    cmd.configure(parser)
    out = tmp_path / "out"
    args = parser.parse_args(
        [
            "--sigma-w2",
            "1.0",
            "2.0",
            "--depths",
            "2",
            "30",
            "--steps",
            "6",
            "--channels",
            "4",
            "--dataset",
            "digits",
            "--seeds",
            "0",
            "--lrs",
            "0.02",
            "--scheduler",
            client.scheduler.address,
            "--out",
            str(out),
        ]
    )
    assert cmd.run(args) == 0
    for name in ("trainability.png", "trainability.npz", "trainability.json"):
        assert (out / name).stat().st_size > 0
    res = E.TrainabilitySweep.load(out / "trainability.npz")
    assert res.test_accuracy.shape == (1, 1, 2, 2) and len(CellStore(out / "cells")) == 2
    np.testing.assert_allclose(res.predicted_depth, [21.8, 151.3], rtol=2e-3)
