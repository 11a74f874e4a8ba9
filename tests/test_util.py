"""The shared plumbing in cnnmft._util: progress, BLAS limits, atomic writes, tables."""

import csv
import json

import numpy as np
import pytest

from cnnmft import _util


def test_atomic_write_leaves_target_untouched_on_error(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with _util.atomic_write(p) as fh:
            fh.write("half")
            raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert list(tmp_path.iterdir()) == [p]  # no stray temporary file


def test_atomic_write_creates_parents_and_binary(tmp_path):
    p = _util.atomic_write_bytes(tmp_path / "a" / "b.bin", b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError, match="`mode`"):
        with _util.atomic_write(tmp_path / "x", "a"):
            pass


def test_write_table_csv_round_trips_floats_exactly(tmp_path):
    x = np.array([0.1, 1 / 3, np.nan, -np.inf, 1e-300])
    p = _util.write_table(tmp_path / "t.csv", {"i": np.arange(5), "x": x})
    with open(p, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["i"]) for r in rows] == [0, 1, 2, 3, 4]
    back = np.array([float(r["x"]) for r in rows])
    np.testing.assert_array_equal(back, x)  # equal bit for bit, NaN at the same place


def test_write_table_rows_and_missing_cells(tmp_path):
    p = _util.write_table(tmp_path / "r.csv", [{"a": 1, "b": "x"}, {"a": 2}])
    assert p.read_text().splitlines() == ["a,b", "1,x", "2,"]


def test_write_table_json_is_strict(tmp_path):
    p = _util.write_table(tmp_path / "s", {"a": 1.5, "b": float("nan"), "n": np.int64(3)})
    assert p.suffix == ".json"
    assert json.loads(p.read_text()) == {"a": 1.5, "b": None, "n": 3}


def test_write_table_npz_for_grids(tmp_path):
    g = np.arange(6.0).reshape(2, 3)
    p = _util.write_table(tmp_path / "g", {"grid": g, "x": [1, 2, 3]})
    assert p.suffix == ".npz"
    with np.load(p, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["grid"], g)


def test_write_table_rejects_ragged_csv_and_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match="equal length"):
        _util.write_table(tmp_path / "t.csv", {"a": [1, 2], "b": [1]})
    with pytest.raises(ValueError, match="`path`"):
        _util.write_table(tmp_path / "t.txt", {"a": [1]})


def test_progress_callback_forms():
    seen = []
    cb, bar = _util.progress_callback(lambda d, t: seen.append((d, t)), 3)
    cb(3, 3)
    assert seen == [(3, 3)] and bar is None
    assert _util.progress_callback(None, 3) == (None, None)
    old = _util.set_quiet(True)
    try:
        assert _util.progress_callback(True, 3) == (None, None)
        bar = _util.progress_bar(5)
        bar.update(2)
        assert bar.n == 2 and not hasattr(bar, "format_dict")  # the silent stand-in
    finally:
        _util.set_quiet(old)


def test_progress_bar_counts(capsys):
    cb, bar = _util.progress_callback(True, 4, desc="t")
    cb(2, 4)
    cb(4, 4)
    assert bar.n == 4
    bar.close()


def test_blas_threads_limits_the_pool():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    infos = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    if not infos:
        pytest.skip("no BLAS visible to threadpoolctl")
    with _util.blas_threads(1):
        inside = [
            i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
        ]
    assert inside and all(n == 1 for n in inside)
    with pytest.raises(ValueError, match="`limit`"):
        _util.blas_threads(0)
