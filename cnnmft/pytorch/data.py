"""Datasets for training: scikit-learn's digits (offline default), MNIST and CIFAR-10.

* ``digits``: the 1,797 8x8 handwritten digits shipped with scikit-learn (real data, no download);
  a seeded stratified split gives the test set.
* ``digits28``: the same digits resized to 28x28 (bilinear): MNIST-shaped input, still offline.
* ``mnist``: the IDX files of the MNIST distribution (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``), gzipped
  (``.gz``) or not, in ``data_dir`` (or ``data_dir/mnist``, ``data_dir/MNIST/raw``).
* ``cifar10``: the python pickle batches (``data_batch_1`` ... ``data_batch_5``, ``test_batch``) in
  ``data_dir`` or ``data_dir/cifar-10-batches-py``. Pickle files can run code when loaded: only
  use batches from the official distribution.

Images come back as float arrays ``(N, C, H, W)`` standardised per channel with the training
set's mean and standard deviation; labels as int64 ``(N,)``.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnmft import _validation as V

__all__ = ["Dataset", "load_dataset", "DATASETS", "read_idx"]

DATASETS = ("digits", "digits28", "mnist", "cifar10")


@dataclass(frozen=True)
class Dataset:
    """Train and test arrays of one dataset.

    Attributes
    ----------
    name : str
    x_train : ndarray, shape (n_train, C, H, W), float32
    y_train : ndarray, shape (n_train,), int64
    x_test : ndarray, shape (n_test, C, H, W), float32
    y_test : ndarray, shape (n_test,), int64
    num_classes : int
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def in_channels(self) -> int:
        """Number of input channels C."""
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> tuple:
        """``(H, W)``."""
        return tuple(int(s) for s in self.x_train.shape[2:])


def load_dataset(name="digits", data_dir=None, *, test_fraction=0.2, seed=0, max_train=None,
                 max_test=None) -> Dataset:
    """Load a dataset as standardised float32 arrays.

    Parameters
    ----------
    name : {"digits", "mnist", "cifar10"}
        Dataset.
    data_dir : str or Path, optional
        Folder with the MNIST IDX files or the CIFAR-10 python batches (not used for digits).
    test_fraction : float
        Fraction of the digits held out for testing (stratified, seeded by `seed`).
    seed : int
        Seed of the digits split and of the subsets taken by `max_train`/`max_test`.
    max_train, max_test : int, optional
        Keep a random subset of this size (handy for quick runs).

    Returns
    -------
    Dataset

    Raises
    ------
    FileNotFoundError
        A file is missing: the message lists the files expected and where they were looked for.
    ValueError
        A file is malformed (wrong magic number, sizes that do not match, bad pickle content).
    """
    name = V.as_choice(str(name).lower().replace("-", ""), "dataset", DATASETS)
    if name in ("digits", "digits28"):
        xtr, ytr, xte, yte = _digits(test_fraction, seed)
        if name == "digits28":
            xtr, xte = _resize(xtr, 28), _resize(xte, 28)
    elif name == "mnist":
        xtr, ytr, xte, yte = _mnist(_need_dir(data_dir, "mnist"))
    else:
        xtr, ytr, xte, yte = _cifar10(_need_dir(data_dir, "cifar10"))
    rng = np.random.default_rng(seed)
    if max_train is not None:
        m = V.as_int(max_train, "max_train", low=1)
        if m < len(ytr):
            idx = np.sort(rng.choice(len(ytr), m, replace=False))
            xtr, ytr = xtr[idx], ytr[idx]
    if max_test is not None:
        m = V.as_int(max_test, "max_test", low=1)
        if m < len(yte):
            idx = np.sort(rng.choice(len(yte), m, replace=False))
            xte, yte = xte[idx], yte[idx]
    xtr = xtr.astype(np.float64)
    xte = xte.astype(np.float64)
    mean = xtr.mean(axis=(0, 2, 3), keepdims=True)
    std = xtr.std(axis=(0, 2, 3), keepdims=True)
    std[std == 0] = 1.0
    xtr = ((xtr - mean) / std).astype(np.float32)
    xte = ((xte - mean) / std).astype(np.float32)
    return Dataset(name, xtr, ytr.astype(np.int64), xte, yte.astype(np.int64), 10)


def _need_dir(data_dir, name):
    if data_dir is None:
        raise FileNotFoundError(
            f"dataset {name!r} is read from local files: pass `data_dir` (CLI: --data-dir) with "
            + ("the four MNIST IDX files" if name == "mnist" else "the CIFAR-10 python batches")
            + "; the offline default is 'digits'")
    d = Path(data_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"`data_dir` {str(d)!r} is not a folder")
    return d


def _digits(test_fraction, seed):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    tf = float(V.as_float_array(test_fraction, "test_fraction", low=0.0, high=1.0, low_open=True))
    if tf >= 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction!r}")
    d = load_digits()
    x = (d.images / 16.0)[:, None, :, :]
    y = d.target
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=tf, random_state=int(seed), stratify=y)
    return xtr, ytr, xte, yte


def _resize(x, size):
    """Bilinear resize of ``(N, C, h, w)`` images to ``size x size`` (align-corners grid)."""
    n, c, h, w = x.shape

    def axis(src, dst):
        pos = np.linspace(0, src - 1, dst)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, src - 1)
        return lo, hi, pos - lo
    (r0, r1, fr), (c0, c1, fc) = axis(h, size), axis(w, size)
    rows = x[:, :, r0, :] * (1 - fr)[:, None] + x[:, :, r1, :] * fr[:, None]
    return rows[:, :, :, c0] * (1 - fc) + rows[:, :, :, c1] * fc


# ---------------------------------------------------------------------------------------- MNIST

_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _find(d, stem, subdirs):
    tried = []
    for sub in subdirs:
        base = d / sub if sub else d
        for cand in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                     stem.replace("-idx", ".idx") + ".gz"):
            p = base / cand
            tried.append(str(p))
            if p.is_file():
                return p
    return tried


def read_idx(path) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a uint8 array.

    The format: magic number ``0x00000800 + ndim`` for unsigned bytes (big-endian int32), then
    ``ndim`` big-endian int32 sizes, then the data.

    Raises
    ------
    ValueError
        If the magic number, the element type or the size does not match.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read IDX file {str(path)!r}: {exc}") from None
    if len(raw) < 4:
        raise ValueError(f"{str(path)!r} is not an IDX file: only {len(raw)} bytes")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or not 1 <= ndim <= 4:
        raise ValueError(f"{str(path)!r} is not an unsigned-byte IDX file: magic number "
                         f"0x{raw[:4].hex()} (expected 0x00000801 for labels or 0x00000803 for "
                         "images)")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ValueError(f"{str(path)!r} is truncated: header needs {head} bytes")
    shape = struct.unpack(">" + "I" * ndim, raw[4:head])
    n = int(np.prod(shape))
    if len(raw) - head != n:
        raise ValueError(f"{str(path)!r} is malformed: its header announces shape {shape} "
                         f"({n} bytes) but it holds {len(raw) - head} data bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(shape)


def _mnist(d):
    paths, missing = {}, []
    for key, stem in _MNIST_FILES.items():
        p = _find(d, stem, ("", "mnist", "MNIST/raw", "raw"))
        if isinstance(p, list):
            missing.append(f"{stem}[.gz]")
        else:
            paths[key] = p
    if missing:
        raise FileNotFoundError(
            f"MNIST files missing in {str(d)!r} (also looked in mnist/, MNIST/raw/, raw/): "
            f"{', '.join(missing)}. Expected the four IDX files of the MNIST distribution: "
            + ", ".join(f"{s}[.gz]" for s in _MNIST_FILES.values()))
    arrays = {k: read_idx(p) for k, p in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"MNIST {split} files do not match: images of shape {x.shape}, "
                             f"labels of shape {y.shape} (expected (N, H, W) and (N,))")
        if y.size and y.max() > 9:
            raise ValueError(f"MNIST {split} labels must be 0..9, found {int(y.max())}")
    f = lambda a: a.astype(np.float64)[:, None] / 255.0  # noqa: E731
    return (f(arrays["train_images"]), arrays["train_labels"], f(arrays["test_images"]),
            arrays["test_labels"])


# ------------------------------------------------------------------------------------- CIFAR-10

_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR_TEST = ["test_batch"]


def _cifar_batch(path):
    try:
        with open(path, "rb") as fh:
            obj = pickle.load(fh, encoding="bytes")
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a malformed file
        raise ValueError(f"cannot read CIFAR-10 batch {str(path)!r}: {type(exc).__name__}: "
                         f"{exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"CIFAR-10 batch {str(path)!r} holds a {type(obj).__name__}, expected "
                         "a dict with keys b'data' and b'labels'")
    data = obj.get(b"data", obj.get("data"))
    labels = obj.get(b"labels", obj.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"CIFAR-10 batch {str(path)!r} lacks b'data' or b'labels' "
                         f"(keys: {sorted(map(str, obj))})")
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(f"CIFAR-10 batch {str(path)!r} is malformed: data of shape "
                         f"{data.shape} and {len(labels)} labels (expected (N, 3072) and N)")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar10(d):
    base = d / "cifar-10-batches-py" if (d / "cifar-10-batches-py").is_dir() else d
    missing = [n for n in _CIFAR_TRAIN + _CIFAR_TEST if not (base / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 batches missing in {str(base)!r}: {', '.join(missing)}. Expected the python "
            "version of CIFAR-10 (data_batch_1..5 and test_batch, as in cifar-10-python.tar.gz), "
            "either directly in --data-dir or in --data-dir/cifar-10-batches-py")
    tr = [_cifar_batch(base / n) for n in _CIFAR_TRAIN]
    te = _cifar_batch(base / "test_batch")
    xtr = np.concatenate([a for a, _ in tr]).astype(np.float64) / 255.0
    ytr = np.concatenate([b for _, b in tr])
    return xtr, ytr, te[0].astype(np.float64) / 255.0, te[1]
