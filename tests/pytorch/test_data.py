"""Data loaders: Fashion-MNIST from Debian's package, IDX headers, CIFAR pickles that cannot run
code, labels and pixels checked."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from cnnmft.pytorch import data as D  # noqa: E402
from cnnmft.pytorch.data import load_dataset, read_cifar_batch, read_idx  # noqa: E402

FASHION = Path(D.FASHION_MNIST_DIRS[0])


def _idx(path, arr, magic=None, shape=None, gz=False):
    arr = np.asarray(arr, dtype=np.uint8)
    shape = arr.shape if shape is None else shape
    head = struct.pack(">HBB", 0, 0x08, len(shape)) if magic is None else magic
    raw = head + struct.pack(">" + "I" * len(shape), *shape) + arr.tobytes()
    with (gzip.open if gz else open)(path, "wb") as fh:
        fh.write(raw)
    return path


def _fake_idx_set(d, n_train=20, n_test=10, gz=True):
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    _idx(d / f"train-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_train, 28, 28)), gz=gz)
    _idx(d / f"train-labels-idx1-ubyte{sfx}", np.arange(n_train) % 10, gz=gz)
    _idx(d / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_test, 28, 28)), gz=gz)
    _idx(d / f"t10k-labels-idx1-ubyte{sfx}", np.arange(n_test) % 10, gz=gz)


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian package dataset-fashion-mnist absent")
def test_fashion_mnist_from_the_debian_package():
    d = load_dataset("fashion-mnist", max_test=2000)
    assert d.name == "fashion-mnist"
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (2000, 1, 28, 28)
    # official Fashion-MNIST: 6,000 training images of each of the 10 classes
    np.testing.assert_array_equal(np.bincount(d.y_train), np.full(10, 6000))
    # standardised with the training set's statistics
    assert abs(float(d.x_train.mean())) < 1e-4 and abs(float(d.x_train.std()) - 1) < 1e-4
    assert load_dataset("Fashion_MNIST", max_train=10, max_test=10).name == "fashion-mnist"


def test_fashion_mnist_missing_names_the_apt_package(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "FASHION_MNIST_DIRS", (str(tmp_path / "nowhere"),))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")


def test_idx_folder_named_for_what_it_is(tmp_path):
    _fake_idx_set(tmp_path)
    assert load_dataset("fashion-mnist", tmp_path).name == "fashion-mnist"
    assert load_dataset("mnist", tmp_path).name == "mnist"


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_roundtrip(tmp_path, gz):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    name = "a-idx3-ubyte.gz" if gz else "a-idx3-ubyte"
    np.testing.assert_array_equal(read_idx(_idx(tmp_path / name, a, gz=gz)), a)


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda p: p.write_bytes(b"\x00\x00"), "magic number"),
        (lambda p: p.write_bytes(b"\x01\x00\x08\x01" + bytes(8)), "magic number"),
        (lambda p: p.write_bytes(b"\x00\x00\x0d\x01" + bytes(8)), "element type"),
        (lambda p: p.write_bytes(b"\x00\x00\x08\x09" + bytes(8)), "number of dimensions"),
        (lambda p: p.write_bytes(b"\x00\x00\x08\x03" + bytes(6)), "dimension sizes"),
        (
            lambda p: p.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 10) + bytes(3)),
            "dimension sizes",
        ),
    ],
)
def test_malformed_idx_header_names_file_and_field(tmp_path, make, field):
    p = tmp_path / "bad-idx1-ubyte"
    make(p)
    with pytest.raises(ValueError, match=field) as exc:
        read_idx(p)
    assert "bad-idx1-ubyte" in str(exc.value)


def test_idx_labels_out_of_range_refused(tmp_path):
    _fake_idx_set(tmp_path, gz=False)
    _idx(tmp_path / "train-labels-idx1-ubyte", np.full(20, 11))
    with pytest.raises(ValueError, match="0..9.*11|11"):
        load_dataset("mnist", tmp_path)


def _cifar(d, data=None, labels=None, n=4):
    d.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"batch_label": b"x",
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8) if data is None else data,
            b"labels": list(rng.integers(0, 10, n)) if labels is None else labels,
            b"filenames": [b"f"] * n,
        }
        with open(d / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    return d


def test_cifar10_batches_load(tmp_path):
    d = load_dataset("cifar10", _cifar(tmp_path / "cifar-10-batches-py"))
    assert d.name == "cifar10" and d.x_train.shape == (20, 3, 32, 32)
    assert d.y_train.dtype == np.int64 and d.y_test.shape == (4,)


@pytest.mark.parametrize("proto", [2, 4, 5])
def test_cifar_reader_protocols(tmp_path, proto):
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    p = tmp_path / "b"
    p.write_bytes(pickle.dumps({b"data": data, b"labels": [3, 9]}, protocol=proto))
    x, y = read_cifar_batch(p)
    np.testing.assert_array_equal(x.reshape(2, -1), data)
    np.testing.assert_array_equal(y, [3, 9])
    # labels stored as numpy integer scalars
    p.write_bytes(pickle.dumps({b"data": data, b"labels": list(np.array([4, 7]))}, protocol=proto))
    np.testing.assert_array_equal(read_cifar_batch(p)[1], [4, 7])


class _SubArray(np.ndarray):
    """An ndarray subclass: its pickle names a class outside numpy, which must be refused."""


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["os.system", "eval", "object-array", "subclass"])
def test_malicious_cifar_pickle_refused_and_code_not_run(tmp_path, kind):
    marker = tmp_path / "code-ran"
    if kind == "os.system":
        payload = pickle.dumps({b"data": _Evil(marker), b"labels": [0]}, protocol=2)
    elif kind == "eval":

        class E:
            def __reduce__(self):
                return (eval, (f"open({str(marker)!r}, 'w')",))

        payload = pickle.dumps({b"data": E(), b"labels": [0]})
    elif kind == "object-array":
        arr = np.array([_Evil(marker)], dtype=object)
        payload = pickle.dumps({b"data": arr, b"labels": [0]})
    else:
        payload = pickle.dumps(
            {b"data": np.zeros((1, 3072), np.uint8).view(_SubArray), b"labels": [0]}
        )
    p = tmp_path / "data_batch_1"
    p.write_bytes(payload)
    with pytest.raises(ValueError, match="data_batch_1"):
        read_cifar_batch(p)
    assert not marker.exists()


@pytest.mark.parametrize(
    "labels, data, match",
    [
        ([0, 1, 10, 2], None, "0..9"),
        ([0, -1, 2, 3], None, "0..9"),
        (None, np.full((4, 3072), np.nan), "non-finite"),
        (None, np.full((4, 3072), 300.0), "0..255"),
        (None, np.zeros((4, 100), np.uint8), "3072"),
    ],
)
def test_cifar_bad_labels_and_pixels_refused(tmp_path, labels, data, match):
    d = _cifar(tmp_path / "c", data=data, labels=labels)
    with pytest.raises(ValueError, match=match):
        load_dataset("cifar10", d)


def test_unknown_dataset_and_missing_dir():
    with pytest.raises(ValueError, match="dataset"):
        load_dataset("imagenet")
    with pytest.raises(FileNotFoundError, match="data_dir"):
        load_dataset("mnist")
