"""Tests of the Dask sweep engine, its store and resume logic, and the trainability experiments.

The engine tests use small stand-in cell functions whose answers are known in closed form; the
cluster is a real ``distributed.LocalCluster`` with 2 worker processes.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
distributed = pytest.importorskip("distributed")

from cnnmft.pytorch.sweeps import (  # noqa: E402
    CellStore,
    agreement_fraction,
    cell_key,
    run_cells,
)

pytestmark = [
    pytest.mark.torch,
    # dask/tornado may warn about sockets or event loops closing while a worker is killed
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(scope="module")
def client():
    """One local cluster with 2 single-threaded worker processes for the module."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=50)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def _logging_square(log_dir):
    """A cell function y = x**2 + 0.5 that appends one line per call to log_dir/<x>.log."""

    def fn(params):
        with open(os.path.join(log_dir, f"{params['x']}.log"), "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return {"y": params["x"] ** 2 + 0.5}

    return fn


def _calls(log_dir, x):
    p = Path(log_dir) / f"{x}.log"
    return len(p.read_text().split()) if p.exists() else 0


# ------------------------------------------------------------------ store


def test_cell_key_ignores_order_and_separates_values():
    assert cell_key({"a": 1, "b": 2.5}) == cell_key({"b": 2.5, "a": 1})
    assert cell_key({"a": 1, "b": 2.5}) != cell_key({"a": 1, "b": 2.5000000001})
    assert cell_key({"a": np.float64(0.1)}) == cell_key({"a": 0.1})
    with pytest.raises(ValueError, match="params"):
        cell_key([1, 2])


def test_store_roundtrip_atomic_files(tmp_path):
    store = CellStore(tmp_path / "s")
    p = {"depth": 3, "sigma_w2": 1.25}
    store.put(p, {"acc": np.float64(0.75), "loss": np.array([1.0, 0.5])}, elapsed_s=0.1)
    # a stray temporary file from a killed writer is ignored
    (store.cells_dir / ".deadbeef.123.tmp").write_text('{"key": "half')
    rec = store.get(p)
    assert rec["params"] == p and rec["status"] == "ok"
    assert rec["result"] == {"acc": 0.75, "loss": [1.0, 0.5]}
    assert len(store) == 1 and list(store.records()) == [cell_key(p)]
    with pytest.raises(TypeError, match="JSON"):
        store.put({"x": 1}, {"bad": object()})
    assert store.get({"x": 1}) is None and len(store) == 1  # nothing half-written


def test_agreement_fraction_counts_cells():
    t = np.array([[True, False], [True, True]])
    p = np.array([[True, True], [False, True]])
    assert agreement_fraction(t, p) == 0.5
    with pytest.raises(ValueError, match="shape"):
        agreement_fraction(t, p[:1])


# ------------------------------------------------------------------ engine on a local cluster


def test_run_cells_stores_resumes_and_extends(client, tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    fn = _logging_square(str(log))
    cells = [{"x": x} for x in range(6)]
    seen = []
    recs = run_cells(fn, cells, tmp_path / "store", scheduler=client,
                     progress=lambda i, n, r: seen.append((i, n)))
    assert [r["result"]["y"] for r in recs] == [x * x + 0.5 for x in range(6)]
    assert seen[-1] == (6, 6) and len(seen) == 6
    assert all(_calls(log, x) == 1 for x in range(6))
    # rerun: nothing is recomputed; extended grid: only the new cells run
    recs2 = run_cells(fn, cells + [{"x": 6}, {"x": 7}], tmp_path / "store", scheduler=client,
                      progress=False)
    assert [r["result"]["y"] for r in recs2] == [x * x + 0.5 for x in range(8)]
    assert [_calls(log, x) for x in range(8)] == [1] * 8
    assert [r["finished_at"] for r in recs2[:6]] == [r["finished_at"] for r in recs]


def test_failing_cell_is_stored_as_error_and_retried(client, tmp_path):
    flag = tmp_path / "ok"

    def fn(params):
        if params["x"] == 1 and not os.path.exists(str(flag)):
            raise FloatingPointError("loss became non-finite")
        return {"y": params["x"]}

    recs = run_cells(fn, [{"x": 0}, {"x": 1}], tmp_path / "s", scheduler=client, retries=0,
                     progress=False)
    assert [r["status"] for r in recs] == ["ok", "error"]
    assert "non-finite" in recs[1]["error"]
    flag.write_text("1")
    recs = run_cells(fn, [{"x": 0}, {"x": 1}], tmp_path / "s", scheduler=client, progress=False)
    assert [r["status"] for r in recs] == ["ok", "ok"] and recs[1]["result"] == {"y": 1}


def test_killed_worker_loses_only_its_running_cell(client, tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    marker = tmp_path / "killed-once"
    inner = _logging_square(str(log))

    store_dir = tmp_path / "s"

    def fn(params):
        out = inner(params)
        if params["x"] == 3 and not os.path.exists(str(marker)):
            # Wait until the driver has stored every earlier cell of this worker (a result still
            # in the worker's memory would be lost with it and recomputed), then die mid-cell.
            from cnnmft.pytorch.sweeps import CellStore, cell_key

            st, pid = CellStore(store_dir), str(os.getpid())
            mine = [int(f.name[:-4]) for f in log.iterdir()
                    if int(f.name[:-4]) != 3 and pid in f.read_text().split()]
            t0 = time.monotonic()
            while (any(st.get(cell_key({"x": x})) is None for x in mine)
                   and time.monotonic() - t0 < 30):
                time.sleep(0.02)
            open(str(marker), "w").close()
            os._exit(1)  # the worker process dies mid-cell; its nanny restarts it
        time.sleep(0.05)
        return out

    recs = run_cells(fn, [{"x": x} for x in range(8)], store_dir, scheduler=client,
                     progress=False)
    assert marker.exists()
    assert [r["status"] for r in recs] == ["ok"] * 8
    assert [r["result"]["y"] for r in recs] == [x * x + 0.5 for x in range(8)]
    # the killed cell ran twice; every other cell exactly once (one thread per worker)
    assert [_calls(log, x) for x in range(8)] == [1, 1, 1, 2, 1, 1, 1, 1]


_DRIVER = textwrap.dedent("""
    import os, sys, time
    from cnnmft.pytorch.sweeps import run_cells

    def slow(params):
        time.sleep(0.4)
        with open(os.path.join(sys.argv[2], f"{params['x']}.log"), "a") as fh:
            fh.write("1\\n")
        return {"y": 3 * params["x"]}

    if __name__ == "__main__":
        run_cells(slow, [{"x": x} for x in range(40)], sys.argv[1], n_workers=2, progress=False)
""")


def test_killed_sweep_resumes_without_losing_finished_cells(client, tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER)
    store_dir, log = tmp_path / "store", tmp_path / "log"
    log.mkdir()
    proc = subprocess.Popen([sys.executable, str(script), str(store_dir), str(log)],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        store = CellStore(store_dir)
        deadline = time.monotonic() + 90
        while len(store) < 4:
            assert proc.poll() is None, "driver ended before it was killed"
            assert time.monotonic() < deadline, "no cells finished in 90 s"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its worker processes
        proc.wait()
    before = store.records()
    assert 4 <= len(before) < 40
    assert all(r["status"] == "ok" and r["result"]["y"] == 3 * r["params"]["x"]
               for r in before.values())
    done_x = sorted(r["params"]["x"] for r in before.values())

    log2 = tmp_path / "log2"
    log2.mkdir()
    recs = run_cells(_logging_square(str(log2)), [{"x": x} for x in range(40)], store_dir,
                     scheduler=client, progress=False)
    # finished cells are kept exactly as stored; only the others ran again
    for x in range(40):
        assert _calls(log2, x) == (0 if x in done_x else 1)
        y = recs[x]["result"]["y"]
        assert y == (3 * x if x in done_x else x * x + 0.5)
    assert {k: v for k, v in CellStore(store_dir).records().items() if k in before} == before


# ------------------------------------------------------------------ experiments with stand-in cells


def _toy_trainability(params):
    """Stand-in for training: 'trains' (accuracy 0.9) iff depth <= 60, else chance (0.1)."""
    acc = 0.9 if params["depth"] <= 60 else 0.1
    return {"train_accuracy": acc, "test_accuracy": acc - 0.05, "final_loss": 1.0 - acc,
            "status": 0}


def test_trainability_sweep_agreement_against_reference_depth_scales(client, tmp_path):
    from cnnmft.pytorch.sweeps import plot_trainability, trainability_sweep

    # THEORY.md §7.2 [D], tanh, sigma_b2 = 0.05: 6 xi_c = 21.8, 94.7, 151 at sigma_w2 = 1, 1.5, 2
    sw = [1.0, 1.5, 2.0]
    depths = [10, 50, 100, 200]
    res = trainability_sweep(sw, depths, sigma_b2=0.05, store=tmp_path / "s", scheduler=client,
                             cell_fn=_toy_trainability, progress=False, threshold=0.5)
    np.testing.assert_allclose(res.predicted_depth, [21.8, 94.7, 151.3], rtol=2e-3)
    expected_pred = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=bool)
    expected_trained = np.array([[1, 1, 1], [1, 1, 1], [0, 0, 0], [0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(res.predicted, expected_pred)
    np.testing.assert_array_equal(res.trained, expected_trained)
    assert res.agreement == pytest.approx(10 / 12)
    assert res.train_accuracy.shape == (4, 3) and np.all(res.status == 0)
    np.testing.assert_allclose(res.test_accuracy, res.train_accuracy - 0.05)
    # the result round-trips and the figure draws
    path = res.save(tmp_path / "sweep.npz")
    back = type(res).load(path)
    np.testing.assert_array_equal(back.trained, res.trained)
    assert back.agreement == res.agreement and "10" not in back.summary()[:0]
    import matplotlib

    matplotlib.use("Agg")
    fig = plot_trainability(res)
    assert len(fig.axes) == 2
    # a coarse grid whose cell edges would reach sigma_w2 <= 0 still draws
    coarse = trainability_sweep([0.5, 1.76, 3.5], [2], store=tmp_path / "s2", scheduler=client,
                                cell_fn=_toy_trainability, progress=False)
    assert len(plot_trainability(coarse).axes) == 2
    # bad input names the argument
    with pytest.raises(ValueError, match="threshold"):
        trainability_sweep(sw, depths, threshold=1.5, cell_fn=_toy_trainability, progress=False)
    with pytest.raises(ValueError, match="depth"):
        trainability_sweep(sw, [0, 5], cell_fn=_toy_trainability, progress=False)
    with pytest.raises(ValueError, match="chanels"):
        trainability_sweep(sw, depths, chanels=8, progress=False)


def _toy_modes(params):
    sign = 1.0 if params["init"] == "orthogonal" else -1.0
    acc = 0.5 + sign * params["t"] / 10 + 0.02 * params["seed"]
    return {"train_accuracy": acc + 0.1, "test_accuracy": acc,
            "loss": [2.0, 1.0 + params["t"], 0.5 + params["t"]], "status": 0}


def test_modewise_study_aggregates_and_predicts_mode_scales(client, tmp_path):
    from cnnmft.pytorch.sweeps import modewise_study, plot_modewise

    ts = [0.0, 0.1, 0.25, 0.5]
    res = modewise_study(ts, depth=10, spatial_shape=(8, 8), seeds=(0, 1, 2), store=tmp_path / "s",
                         scheduler=client, cell_fn=_toy_modes, progress=False)
    t = np.array(ts)
    seeds_acc = 0.02 * np.arange(3)
    for ik, sign in enumerate([1.0, -1.0]):
        np.testing.assert_allclose(res.test_accuracy[ik], 0.5 + sign * t / 10 + seeds_acc.mean())
        np.testing.assert_allclose(res.test_accuracy_se[ik],
                                   np.std(seeds_acc, ddof=1) / np.sqrt(3), rtol=1e-9)
        np.testing.assert_allclose(res.loss_auc[ik], (2.0 + 1.0 + t + 0.5 + t) / 3)
        np.testing.assert_allclose(res.loss[ik, :, 2], 0.5 + t)
    # critical point: chi_c = 1, so the slowest non-zero mode f = (1, 0) on the 8x8 grid has
    # |lam| = 1 - 2t(1-t)(1 - cos(2 pi / 8)) (THEORY.md §4.3, §7.4) and xi = -1/log|lam|
    lam = 1 - 2 * t[1:] * (1 - t[1:]) * (1 - np.cos(2 * np.pi / 8))
    np.testing.assert_allclose(res.xi_slowest[1:], -1 / np.log(lam), rtol=1e-6)
    assert res.xi_slowest[0] > 1e6  # delta profile: every mode marginal (inf up to chi_c - 1)
    np.testing.assert_allclose(res.xi_slowest[1:], [18.5, 8.6, 6.3], atol=0.06)  # THEORY §4.3
    assert res.surviving_fraction[0] == 1.0 and 0 <= res.surviving_fraction[-1] < 0.1
    import matplotlib

    matplotlib.use("Agg")
    assert len(plot_modewise(res).axes) == 4
    with pytest.raises(ValueError, match="kinds"):
        modewise_study(ts, kinds=("uniform",), cell_fn=_toy_modes, progress=False)


# ------------------------------------------------------------------ wiring to the real trainer


def test_cell_parameters_map_onto_train_config():
    from cnnmft.pytorch.sweeps import _train_config_kwargs

    orth = _train_config_kwargs({"init": "orthogonal", "t": 0.1, "depth": 4, "stem_strides": [1]})
    assert orth["init"] == "tunable_orthogonal" and orth["t"] == 0.1
    assert orth["stem_strides"] == (1,) and orth["eval_every"] == 0 and orth["plots"] is False
    gauss_t = _train_config_kwargs({"init": "gaussian", "t": 0.25})
    assert gauss_t["init"] == "gaussian" and gauss_t["v"] == "tunable"
    uniform = _train_config_kwargs({"init": "gaussian", "sigma_w2": 1.5})
    assert "v" not in uniform and uniform["sigma_w2"] == 1.5
    assert "unknown_key" not in _train_config_kwargs({"unknown_key": 1})


def test_trainability_cell_runs_the_real_trainer():
    from cnnmft.pytorch.sweeps import trainability_cell

    out = trainability_cell({"dataset": "digits", "init": "gaussian", "depth": 2, "channels": 4,
                             "steps": 12, "batch_size": 32, "lr": 0.01, "sigma_w2": 1.76,
                             "sigma_b2": 0.05, "act": "tanh", "seed": 0, "max_train": 300,
                             "max_test": 100, "eval_samples": 200})
    assert len(out["loss"]) == 12 and out["final_loss"] == out["loss"][-1]
    assert 0.0 <= out["train_accuracy"] <= 1.0 and 0.0 <= out["test_accuracy"] <= 1.0
    assert out["status"] == 0 and np.all(np.isfinite(out["loss"]))
    json.dumps(out)  # storable


def test_cli_trainability_on_a_given_scheduler(client, tmp_path):
    import argparse

    from cnnmft.commands import trainability as cmd

    parser = argparse.ArgumentParser()
    cmd.configure(parser)
    out = tmp_path / "out"
    args = parser.parse_args(["--sigma-w2", "1.0", "2.0", "--depths", "2", "30", "--steps", "6",
                              "--channels", "4", "--scheduler", client.scheduler.address,
                              "--out", str(out)])
    rc = cmd.run(args)
    assert rc == 0
    for name in ("trainability.png", "trainability.npz", "trainability.json"):
        assert (out / name).stat().st_size > 0
    from cnnmft.pytorch.sweeps import TrainabilitySweep

    res = TrainabilitySweep.load(out / "trainability.npz")
    assert res.train_accuracy.shape == (2, 2) and len(CellStore(out / "cells")) == 4
    # 6 xi_c at sigma_b2 = 0.05: 21.8 (sigma_w2 = 1) and 151 (sigma_w2 = 2), THEORY.md §7.2
    np.testing.assert_array_equal(res.predicted, [[True, True], [False, True]])
