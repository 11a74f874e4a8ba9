"""Datasets for training: digits (embedded default), Fashion-MNIST, MNIST and CIFAR-10.

* ``digits``: the 1,797 8x8 handwritten digits shipped with scikit-learn (real data, no download);
  a seeded stratified split gives the test set.
* ``digits28``: the same digits resized to 28x28 (bilinear): MNIST-shaped input, still offline.
* ``fashion-mnist``: Zalando's 60,000/10,000 28x28 clothing images, the IDX files installed by
  Debian's package ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``, in
  ``/usr/share/datasets/fashion-mnist``) or found in ``data_dir``.
* ``mnist``: the IDX files of the MNIST distribution (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``), gzipped
  (``.gz``) or not, in ``data_dir`` (or ``data_dir/mnist``, ``data_dir/MNIST/raw``).
* ``cifar10``: the python pickle batches (``data_batch_1`` ... ``data_batch_5``, ``test_batch``) in
  ``data_dir`` or ``data_dir/cifar-10-batches-py``, read by a restricted unpickler that admits
  only dicts, lists, bytes, numbers and numpy arrays of plain numbers (:func:`read_cifar_batch`):
  a crafted batch cannot run code. Labels outside 0..9 and non-finite pixels are refused.

Images come back as float arrays ``(N, C, H, W)`` standardised per channel with the training
set's mean and standard deviation; labels as int64 ``(N,)``.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnmft import _validation as V

__all__ = [
    "Dataset",
    "load_dataset",
    "DATASETS",
    "read_idx",
    "read_cifar_batch",
    "FASHION_MNIST_DIRS",
]

DATASETS = ("digits", "digits28", "fashion-mnist", "mnist", "cifar10")

#: Where ``fashion-mnist`` is looked for when no `data_dir` is given (Debian's package).
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
_ALIASES = {
    "fashionmnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
}


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


def load_dataset(
    name="digits", data_dir=None, *, test_fraction=0.2, seed=0, max_train=None, max_test=None
) -> Dataset:
    """Load a dataset as standardised float32 arrays.

    Parameters
    ----------
    name : {"digits", "digits28", "fashion-mnist", "mnist", "cifar10"}
        Dataset.
    data_dir : str or Path, optional
        Folder with the IDX files or the CIFAR-10 python batches (not used for digits;
        fashion-mnist defaults to :data:`FASHION_MNIST_DIRS`).
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
        A file is malformed (the message names the file and the field: magic number, sizes,
        labels outside 0..9, non-finite pixels, pickle content that is not a CIFAR batch).

    Examples
    --------
    >>> d = load_dataset("digits")
    >>> d.name, d.x_train.shape, d.x_test.shape
    ('digits', (1437, 1, 8, 8), (360, 1, 8, 8))
    """
    key = str(name).lower()
    name = V.as_choice(_ALIASES.get(key, key), "dataset", DATASETS)
    if name in ("digits", "digits28"):
        xtr, ytr, xte, yte = _digits(test_fraction, seed)
        if name == "digits28":
            xtr, xte = _resize(xtr, 28), _resize(xte, 28)
    elif name == "fashion-mnist":
        xtr, ytr, xte, yte = _mnist(_fashion_dir(data_dir), "Fashion-MNIST")
    elif name == "mnist":
        xtr, ytr, xte, yte = _mnist(_need_dir(data_dir, "mnist"), "MNIST")
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
            + ("the four IDX files" if "mnist" in name else "the CIFAR-10 python batches")
            + "; the offline default is 'digits'"
        )
    d = Path(data_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"`data_dir` {str(d)!r} is not a folder")
    return d


def _fashion_dir(data_dir):
    if data_dir is not None:
        return _need_dir(data_dir, "fashion-mnist")
    for d in FASHION_MNIST_DIRS:
        if Path(d).is_dir():
            return Path(d)
    raise FileNotFoundError(
        "dataset 'fashion-mnist' not found: install Debian's package with `apt-get install "
        "dataset-fashion-mnist` (it puts the IDX files in "
        f"{FASHION_MNIST_DIRS[0]}), or pass `data_dir` (CLI: --data-dir) with the four "
        "Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz], ...)"
    )


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
        for cand in (
            stem,
            stem + ".gz",
            stem.replace("-idx", ".idx"),
            stem.replace("-idx", ".idx") + ".gz",
        ):
            p = base / cand
            tried.append(str(p))
            if p.is_file():
                return p
    return tried


def read_idx(path) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a uint8 array.

    The format: a big-endian int32 magic number ``0x00000800 + ndim`` (two zero bytes, the
    element type 0x08 = unsigned byte, the number of dimensions), then ``ndim`` big-endian int32
    sizes, then the data.

    Raises
    ------
    ValueError
        The file cannot be read, or a header field (magic number, element type, number of
        dimensions, a dimension size, data length) is wrong; the message names the file and the
        field.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read IDX file {str(path)!r}: {exc}") from None
    where = f"IDX file {str(path)!r}"
    if len(raw) < 4:
        raise ValueError(
            f"{where}: header field 'magic number' is truncated ({len(raw)} bytes, needs 4)"
        )
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0:
        raise ValueError(
            f"{where}: header field 'magic number' is 0x{raw[:4].hex()}, its first "
            "two bytes must be zero (expected 0x00000801 for labels or 0x00000803 "
            "for images)"
        )
    if dtype_code != 0x08:
        raise ValueError(
            f"{where}: header field 'element type' is 0x{dtype_code:02x}, only "
            "0x08 (unsigned byte) is supported"
        )
    if not 1 <= ndim <= 4:
        raise ValueError(f"{where}: header field 'number of dimensions' is {ndim}, expected 1 to 4")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ValueError(
            f"{where}: header field 'dimension sizes' is truncated: {ndim} sizes "
            f"need {head} header bytes, the file has {len(raw)}"
        )
    shape = struct.unpack(">" + "I" * ndim, raw[4:head])
    n = int(np.prod(shape, dtype=np.int64))
    if len(raw) - head != n:
        raise ValueError(
            f"{where}: header field 'dimension sizes' announces shape {shape} "
            f"({n} bytes) but the file holds {len(raw) - head} data bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(shape)


def _mnist(d, label="MNIST"):
    paths, missing = {}, []
    for key, stem in _MNIST_FILES.items():
        p = _find(d, stem, ("", "mnist", "MNIST/raw", "raw"))
        if isinstance(p, list):
            missing.append(f"{stem}[.gz]")
        else:
            paths[key] = p
    if missing:
        raise FileNotFoundError(
            f"{label} files missing in {str(d)!r} (also looked in mnist/, MNIST/raw/, raw/): "
            f"{', '.join(missing)}. Expected the four IDX files of the {label} distribution: "
            + ", ".join(f"{s}[.gz]" for s in _MNIST_FILES.values())
        )
    arrays = {k: read_idx(p) for k, p in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(
                f"{label} {split} files in {str(d)!r} do not match: images of "
                f"shape {x.shape}, "
                f"labels of shape {y.shape} (expected (N, H, W) and (N,))"
            )
        if y.size and y.max() > 9:
            raise ValueError(
                f"{label} {split} labels in {str(paths[split + '_labels'])!r} must "
                f"be 0..9, found {int(y.max())}"
            )
    f = lambda a: a.astype(np.float64)[:, None] / 255.0  # noqa: E731
    return (
        f(arrays["train_images"]),
        arrays["train_labels"],
        f(arrays["test_images"]),
        arrays["test_labels"],
    )


# ------------------------------------------------------------------------------------- CIFAR-10

_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR_TEST = ["test_batch"]


def _np_reconstruct(cls, shape, typecode):
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(
            f"array reconstruction of {cls!r} refused (only numpy.ndarray)"
        )
    return np.ndarray.__new__(np.ndarray, shape, typecode)


def _np_dtype(spec, align=False, copy=False):
    dt = np.dtype(spec, align, copy)
    if dt.hasobject:
        raise pickle.UnpicklingError(f"dtype {spec!r} holds Python objects: refused")
    return dt


def _latin1_bytes(text, encoding="latin1"):
    # protocol-2 pickles written by Python 3 carry raw bytes as ``_codecs.encode(str, 'latin1')``
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only _codecs.encode(str, 'latin1') is allowed")
    return text.encode("latin1")


def _np_frombuffer(buf, dtype, shape, order="C"):
    # protocol 5 rebuilds arrays from a byte buffer
    dt = _np_dtype(dtype)
    return np.frombuffer(bytes(buf), dtype=dt).reshape(shape, order=order).copy()


def _np_scalar(dtype, data=None):
    # numpy scalars (e.g. np.int64 labels) pickle as scalar(dtype, raw bytes)
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise pickle.UnpicklingError("only numeric numpy scalars are allowed")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that admits only the containers and numpy pieces a CIFAR-10 batch needs.

    Dicts, lists, tuples, bytes, strings and numbers are built by the pickle machine itself; the
    only globals allowed are numpy's array reconstructor (checked to build a plain ndarray),
    ``numpy.dtype`` (no object dtypes) and ``_codecs.encode`` limited to latin-1 text (how
    Python 3 writes raw bytes in protocol 2). Anything else, e.g. ``os.system`` or ``builtins.eval``
    in a crafted file, raises before it can be called.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _np_dtype,
        ("numpy._core.numeric", "_frombuffer"): _np_frombuffer,
        ("numpy.core.numeric", "_frombuffer"): _np_frombuffer,
        ("numpy._core.multiarray", "scalar"): _np_scalar,
        ("numpy.core.multiarray", "scalar"): _np_scalar,
        ("_codecs", "encode"): _latin1_bytes,
    }

    def find_class(self, module, name):
        """Return an admitted global, refuse every other one."""
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed in a CIFAR-10 batch"
            ) from None


def read_cifar_batch(path):
    """Read one CIFAR-10 python batch safely: ``(images uint8 (N, 3, 32, 32), labels (N,))``.

    Raises
    ------
    ValueError
        The file is not a CIFAR-10 batch: a pickle that asks for anything but containers and
        numpy arrays (refused before any of it runs), missing keys, wrong shapes, labels
        outside 0..9, non-finite or out-of-range pixels. The message names the file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        obj = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a malformed file
        raise ValueError(
            f"cannot read CIFAR-10 batch {str(path)!r}: {type(exc).__name__}: {exc}"
        ) from None
    where = f"CIFAR-10 batch {str(path)!r}"
    if not isinstance(obj, dict):
        raise ValueError(
            f"{where} holds a {type(obj).__name__}, expected a dict with keys b'data' and b'labels'"
        )
    data = obj.get(b"data", obj.get("data"))
    labels = obj.get(b"labels", obj.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{where} lacks b'data' or b'labels' (keys: {sorted(map(str, obj))})")
    try:
        data = np.asarray(data)
        labels = np.asarray(labels)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{where}: 'data'/'labels' are not arrays ({exc})") from None
    if data.dtype.kind not in "uif" or labels.dtype.kind not in "ui":
        raise ValueError(
            f"{where}: 'data' must be numeric and 'labels' integers, got dtypes "
            f"{data.dtype} and {labels.dtype}"
        )
    if data.ndim != 2 or data.shape[1] != 3072 or labels.ndim != 1 or len(labels) != len(data):
        raise ValueError(
            f"{where} is malformed: 'data' of shape {data.shape} and 'labels' of "
            f"shape {labels.shape} (expected (N, 3072) and (N,))"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(
            f"{where}: 'labels' must be 0..9, found values from {int(labels.min())} "
            f"to {int(labels.max())}"
        )
    if data.dtype.kind == "f":
        bad = ~np.isfinite(data)
        if bad.any():
            raise ValueError(
                f"{where}: 'data' holds {int(bad.sum())} non-finite pixel values (NaN or inf)"
            )
    if data.size and (data.min() < 0 or data.max() > 255):
        raise ValueError(
            f"{where}: 'data' pixel values must be in 0..255, found {data.min()} to {data.max()}"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _cifar10(d):
    base = d / "cifar-10-batches-py" if (d / "cifar-10-batches-py").is_dir() else d
    missing = [n for n in _CIFAR_TRAIN + _CIFAR_TEST if not (base / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 batches missing in {str(base)!r}: {', '.join(missing)}. Expected the python "
            "version of CIFAR-10 (data_batch_1..5 and test_batch, as in cifar-10-python.tar.gz), "
            "either directly in --data-dir or in --data-dir/cifar-10-batches-py"
        )
    tr = [read_cifar_batch(base / n) for n in _CIFAR_TRAIN]
    te = read_cifar_batch(base / "test_batch")
    xtr = np.concatenate([a for a, _ in tr]).astype(np.float64) / 255.0
    ytr = np.concatenate([b for _, b in tr])
    return xtr, ytr, te[0].astype(np.float64) / 255.0, te[1]
