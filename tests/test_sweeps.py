"""Tests of the torch-free Dask engine :mod:`cnnmft.sweeps`: store, checksums, resume, scheduling.

The cell functions are stand-ins whose answers are known in closed form; the cluster is a real
``distributed.LocalCluster`` with 2 single-threaded worker processes, and one test starts a plain
``dask scheduler`` and two ``dask worker`` processes in a folder of their own.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from cnnmft.results import Status  # noqa: E402
from cnnmft.sweeps import (  # noqa: E402
    CellStore,
    agreement_fraction,
    cell_key,
    check_worker_paths,
    dask_client,
    run_cells,
)

pytestmark = [
    # dask/tornado may warn about sockets or event loops closing while a worker is killed
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture(scope="module")
def client():
    """One local cluster with 2 single-threaded worker processes for the module."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
    )
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


def test_store_roundtrip_checksum_and_stray_tmp(tmp_path):
    store = CellStore(tmp_path / "s")
    p = {"depth": 3, "sigma_w2": 1.25}
    store.put(
        p,
        {"acc": np.float64(0.75), "loss": np.array([1.0, 0.5]), "status": Status.NONFINITE},
        elapsed_s=0.1,
    )
    (store.cells_dir / ".deadbeef.123.tmp").write_text('{"key": "half')  # killed writer
    rec = store.get(p)
    assert rec["params"] == p and rec["status"] == "OK"
    assert rec["result"] == {"acc": 0.75, "loss": [1.0, 0.5], "status": "NONFINITE"}
    assert len(store) == 1 and list(store.records()) == [cell_key(p)]
    assert store.check() == {}
    with pytest.raises(TypeError, match="JSON"):
        store.put({"x": 1}, {"bad": object()})
    with pytest.raises(ValueError, match="result"):
        store.put({"x": 1}, None)
    assert store.get({"x": 1}) is None and len(store) == 1  # nothing half-written


def _corrupt(store, how):
    """Damage the one record of `store` in one of several ways; return the expected reason."""
    f = next(store.cells_dir.glob("*.json"))
    text = f.read_text()
    if how == "truncated":
        f.write_text(text[: len(text) // 2])
        return "not valid JSON"
    if how == "flipped":
        i = text.index('"y": ') + 5
        f.write_text(text[:i] + ("7" if text[i] != "7" else "8") + text[i + 1 :])
        return "checksum"
    if how == "empty":
        f.write_bytes(b"")
        return "not valid JSON"
    if how == "binary":
        f.write_bytes(b"\xff\xfe\x00garbage")
        return "unreadable"
    rec = json.loads(text)
    if how == "no-result":  # a record that claims OK without a result, checksum recomputed
        from cnnmft.sweeps import _checksum

        rec["result"] = None
        rec["checksum"] = _checksum(rec)
        f.write_text(json.dumps(rec))
        return "without a result"
    if how == "renamed":
        f.rename(f.with_name("0" * 20 + ".json"))
        return "key does not match"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncated", "flipped", "empty", "binary", "no-result", "renamed"])
def test_damaged_cell_file_is_detected(tmp_path, how):
    store = CellStore(tmp_path / "s")
    store.put({"x": 2}, {"y": 4.5})
    why = _corrupt(store, how)
    bad = store.check()
    assert len(bad) == 1 and why in next(iter(bad.values()))
    assert store.records() == {} and store.get({"x": 2}) is None
    store.check(quarantine=True)
    assert len(store) == 0 and len(list(store.cells_dir.glob("*.corrupt"))) == 1


def test_agreement_fraction_counts_cells():
    t = np.array([[True, False], [True, True]])
    p = np.array([[True, True], [False, True]])
    assert agreement_fraction(t, p) == 0.5
    with pytest.raises(ValueError, match="shape"):
        agreement_fraction(t, p[:1])


# ------------------------------------------------------------------ engine on a local cluster


def test_damaged_cells_are_recomputed_and_others_kept(client, tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    fn = _logging_square(str(log))
    cells = [{"x": x} for x in range(4)]
    run_cells(fn, cells, tmp_path / "s", scheduler=client, progress=False)
    store = CellStore(tmp_path / "s")
    f1, f2 = store.file(cell_key({"x": 1})), store.file(cell_key({"x": 2}))
    f1.write_text(f1.read_text()[:40])  # a writer killed mid-write without the atomic rename
    f2.write_text(f2.read_text().replace('"y": 4.5', '"y": 9.5'))  # flipped on disk
    recs = run_cells(fn, cells, tmp_path / "s", scheduler=client, progress=False)
    assert [r["result"]["y"] for r in recs] == [x * x + 0.5 for x in range(4)]
    assert [_calls(log, x) for x in range(4)] == [1, 2, 2, 1]
    assert len(list(store.cells_dir.glob("*.corrupt"))) == 2


def test_cell_status_comes_from_the_result(client, tmp_path):
    def fn(params):
        return {"y": 1, "status": "NONFINITE" if params["x"] else Status.OK}

    recs = run_cells(fn, [{"x": 0}, {"x": 1}], tmp_path / "s", scheduler=client, progress=False)
    assert [r["status"] for r in recs] == ["OK", "NONFINITE"]
    # a NONFINITE cell is a finished answer: not rerun
    recs2 = run_cells(
        lambda p: {"y": 2}, [{"x": 0}, {"x": 1}], tmp_path / "s", scheduler=client, progress=False
    )
    assert [r["result"]["y"] for r in recs2] == [1, 1]


def test_shared_object_reaches_every_cell(client, tmp_path):
    data = np.arange(1000.0)

    def fn(params, shared):
        return {"s": float(shared[params["i"] :].sum())}

    recs = run_cells(
        fn,
        [{"i": i} for i in (0, 10, 999)],
        tmp_path / "s",
        scheduler=client,
        shared=data,
        progress=False,
    )
    assert [r["result"]["s"] for r in recs] == [float(data[i:].sum()) for i in (0, 10, 999)]


def test_check_worker_paths(client, tmp_path):
    check_worker_paths(client, [str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="lacks .*nowhere"):
        check_worker_paths(client, [str(tmp_path / "nowhere")])


def test_scheduler_arguments_are_checked(tmp_path):
    with pytest.raises(FileNotFoundError, match="scheduler_file"):
        with dask_client(scheduler_file=tmp_path / "none.json"):
            pass
    with pytest.raises(TypeError, match="scheduler"):
        with dask_client(scheduler=3):
            pass
    with pytest.raises(ValueError, match="not both"):
        with dask_client("tcp://127.0.0.1:1", scheduler_file=tmp_path / "x"):
            pass


def test_run_cells_stores_resumes_and_extends(client, tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    fn = _logging_square(str(log))
    cells = [{"x": x} for x in range(6)]
    seen = []
    recs = run_cells(
        fn,
        cells,
        tmp_path / "store",
        scheduler=client,
        progress=lambda i, n, r: seen.append((i, n)),
    )
    assert [r["result"]["y"] for r in recs] == [x * x + 0.5 for x in range(6)]
    assert seen[-1] == (6, 6) and len(seen) == 6
    assert all(_calls(log, x) == 1 for x in range(6))
    # rerun: nothing is recomputed; extended grid: only the new cells run
    recs2 = run_cells(
        fn, cells + [{"x": 6}, {"x": 7}], tmp_path / "store", scheduler=client, progress=False
    )
    assert [r["result"]["y"] for r in recs2] == [x * x + 0.5 for x in range(8)]
    assert [_calls(log, x) for x in range(8)] == [1] * 8
    assert [r["finished_at"] for r in recs2[:6]] == [r["finished_at"] for r in recs]


def test_failing_cell_is_stored_as_failed_and_retried(client, tmp_path):
    flag = tmp_path / "ok"

    def fn(params):
        if params["x"] == 1 and not os.path.exists(str(flag)):
            raise FloatingPointError("loss became non-finite")
        return {"y": params["x"]}

    recs = run_cells(
        fn, [{"x": 0}, {"x": 1}], tmp_path / "s", scheduler=client, retries=0, progress=False
    )
    assert [r["status"] for r in recs] == ["OK", "FAILED"]
    assert "non-finite" in recs[1]["error"]
    flag.write_text("1")
    recs = run_cells(fn, [{"x": 0}, {"x": 1}], tmp_path / "s", scheduler=client, progress=False)
    assert [r["status"] for r in recs] == ["OK", "OK"] and recs[1]["result"] == {"y": 1}


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
            from cnnmft.sweeps import CellStore, cell_key

            st, pid = CellStore(store_dir), str(os.getpid())
            mine = [
                int(f.name[:-4])
                for f in log.iterdir()
                if int(f.name[:-4]) != 3 and pid in f.read_text().split()
            ]
            t0 = time.monotonic()
            while (
                any(st.get(cell_key({"x": x})) is None for x in mine) and time.monotonic() - t0 < 30
            ):
                time.sleep(0.02)
            open(str(marker), "w").close()
            os._exit(1)  # the worker process dies mid-cell; its nanny restarts it
        time.sleep(0.05)
        return out

    recs = run_cells(fn, [{"x": x} for x in range(8)], store_dir, scheduler=client, progress=False)
    assert marker.exists()
    assert [r["status"] for r in recs] == ["OK"] * 8
    assert [r["result"]["y"] for r in recs] == [x * x + 0.5 for x in range(8)]
    # the killed cell ran twice; every other cell exactly once (one thread per worker)
    assert [_calls(log, x) for x in range(8)] == [1, 1, 1, 2, 1, 1, 1, 1]


_DRIVER = textwrap.dedent("""
    import os, sys, time
    from cnnmft.sweeps import run_cells

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
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store_dir), str(log)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
    assert all(
        r["status"] == "OK" and r["result"]["y"] == 3 * r["params"]["x"] for r in before.values()
    )
    done_x = sorted(r["params"]["x"] for r in before.values())

    log2 = tmp_path / "log2"
    log2.mkdir()
    recs = run_cells(
        _logging_square(str(log2)),
        [{"x": x} for x in range(40)],
        store_dir,
        scheduler=client,
        progress=False,
    )
    # finished cells are kept exactly as stored; only the others ran again
    for x in range(40):
        assert _calls(log2, x) == (0 if x in done_x else 1)
        y = recs[x]["result"]["y"]
        assert y == (3 * x if x in done_x else x * x + 0.5)
    assert {k: v for k, v in CellStore(store_dir).records().items() if k in before} == before


_EXTERNAL = textwrap.dedent("""
    import json
    import sys
    import cloudpickle
    from cnnmft.sweeps import run_cells

    def cell(params):
        import os, threading
        from cnnmft import _threads
        return {"y": params["x"] * 2, "cwd": os.getcwd(), "pid": os.getpid(),
                "threads": _threads.get_num_threads(),
                "omp": os.environ.get("OMP_NUM_THREADS")}

    if __name__ == "__main__":
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
        recs = run_cells(cell, [{"x": x} for x in range(6)], sys.argv[1],
                         scheduler_file=sys.argv[2], progress=True)
        res = [r["result"] for r in recs]
        print("RESULT", json.dumps([[r["y"] for r in res], sorted({r["cwd"] for r in res}),
                                    sorted({r["threads"] for r in res}),
                                    sorted({str(r["omp"]) for r in res})]))
""")


@pytest.mark.slow
def test_plain_dask_scheduler_and_workers_in_their_own_folders(tmp_path):
    """The recipe of docs/trainability.md: `dask scheduler` + `dask worker` processes."""
    exe = Path(sys.executable).parent
    dask_cli = shutil.which("dask", path=str(exe)) or shutil.which("dask")
    if dask_cli is None:
        pytest.skip("the `dask` command is not installed")
    sfile = tmp_path / "scheduler.json"
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    dask_cli,
                    "scheduler",
                    "--scheduler-file",
                    str(sfile),
                    "--port",
                    "0",
                    "--dashboard-address",
                    ":0",
                ],
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        deadline = time.monotonic() + 60
        while not sfile.exists():
            assert time.monotonic() < deadline, "scheduler did not start"
            time.sleep(0.2)
        for i in range(2):
            wdir = tmp_path / f"worker{i}"
            wdir.mkdir()
            procs.append(
                subprocess.Popen(
                    [
                        dask_cli,
                        "worker",
                        "--scheduler-file",
                        str(sfile),
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "1",
                        "--local-directory",
                        str(wdir),
                    ],
                    cwd=wdir,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        driver = tmp_path / "driver" / "drive.py"
        driver.parent.mkdir()
        driver.write_text(_EXTERNAL)
        out = subprocess.run(
            [sys.executable, str(driver), str(tmp_path / "store"), str(sfile)],
            cwd=driver.parent,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT"))
        ys, cwds, threads, omp = json.loads(line[len("RESULT") :])
        assert ys == [0, 2, 4, 6, 8, 10]
        assert all(str(tmp_path / "worker") in c for c in cwds)  # not the driver's folder
        assert threads == [1] and omp == ["1"]  # one thread each (worker plugin)
        assert "dashboard" in out.stderr.lower()
        assert len(CellStore(tmp_path / "store").records()) == 6
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
