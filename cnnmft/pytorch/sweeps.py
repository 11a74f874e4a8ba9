"""Trainability sweeps on Dask distributed: the paper's phase-diagram and mode-wise experiments.

Two experiments test the mean-field theory against real training ([1]_, Figure 2 and the
non-uniform-variance study; THEORY.md §5.2, §5.3):

* :func:`trainability_sweep` trains one small Gaussian-initialised vanilla CNN per cell of a
  ``(depth, sigma_w2)`` grid at fixed ``sigma_b2`` and compares the cells that trained with the
  mean-field prediction ``depth <= 6 xi_c(sigma_w2)`` (:func:`cnnmft.trainable_depth`).
* :func:`modewise_study` trains CNNs of one depth at the critical point with kernels whose spatial
  variance profile ``v`` runs from delta to binomial (exactly orthogonal kernels of the tunable
  family, and Gaussian kernels with the same ``v``) and puts training speed and test accuracy next
  to the predicted per-mode depth scales (:func:`cnnmft.fourier.mode_depth_scales`).

Both are built on :func:`run_cells`, a small, general engine: any picklable function of one
``dict`` of parameters returning a JSON-serialisable ``dict`` is mapped over a list of cells on a
Dask cluster (an in-process :class:`distributed.LocalCluster` by default, or a running scheduler
given by its address). Every finished cell is written at once, atomically, to a
:class:`CellStore` (one small JSON file per cell, named by a hash of its parameters), so

* rerunning the same sweep skips the cells that are already stored;
* killing the driver loses only the cells that were running; killing a worker loses only the
  cells it was running, plus any result it had finished in the few milliseconds before the
  driver collected it (Dask reschedules those cells on another worker);
* a sweep can be extended (more depths, more ``sigma_w2``) and only the new cells run.

References
----------
.. [1] L. Xiao, Y. Bahri, J. Sohl-Dickstein, S. S. Schoenholz, J. Pennington, "Dynamical Isometry
   and a Mean Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural
   Networks", ICML 2018, arXiv:1806.05393.
.. [2] S. S. Schoenholz, J. Gilmer, S. Ganguli, J. Sohl-Dickstein, "Deep Information Propagation",
   ICLR 2017, arXiv:1611.01232 (the ``6 xi_c`` rule).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import math
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from cnnmft.results import ResultMixin

__all__ = [
    "CellStore",
    "cell_key",
    "run_cells",
    "dask_client",
    "TrainabilitySweep",
    "trainability_sweep",
    "trainability_cell",
    "plot_trainability",
    "ModewiseStudy",
    "modewise_study",
    "modewise_cell",
    "plot_modewise",
]


# --------------------------------------------------------------------------------------------
# The store: one JSON file per finished cell, written atomically
# --------------------------------------------------------------------------------------------

def _canonical(params: dict) -> str:
    """JSON text of `params` with sorted keys and floats in their shortest exact repr."""
    def norm(x):
        if isinstance(x, dict):
            return {str(k): norm(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [norm(v) for v in x]
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return [norm(v) for v in x.tolist()]
        return x

    return json.dumps(norm(params), sort_keys=True, separators=(",", ":"), allow_nan=True)


def cell_key(params: dict) -> str:
    """Content key of a cell: the first 20 hex digits of the SHA-1 of its canonical JSON.

    Two cells with equal parameters (same keys, same values; dict order does not matter) get the
    same key, so a stored result is found again by a later run of the same sweep.

    Examples
    --------
    >>> cell_key({"a": 1, "b": 2.5}) == cell_key({"b": 2.5, "a": 1})
    True
    """
    if not isinstance(params, dict):
        raise ValueError(f"`params` must be a dict of cell parameters, got {type(params).__name__}")
    return hashlib.sha1(_canonical(params).encode()).hexdigest()[:20]


class CellStore:
    """A folder of finished cells, one JSON file per cell, each written atomically.

    A record is ``{"key", "params", "result", "status", "error", "elapsed_s", "worker",
    "finished_at"}``; ``status`` is ``"ok"`` or ``"error"``. Files are written to a temporary
    name in the same folder, flushed and fsync'ed, then renamed over the final name
    (:func:`os.replace`, atomic on POSIX and Windows), so a reader never sees half a record and a
    process killed mid-write leaves at most a stray ``*.tmp`` file, which is ignored.

    Parameters
    ----------
    path : str or Path
        The folder (created if needed). Records live in ``path/cells/``.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.cells_dir = self.path / "cells"
        self.cells_dir.mkdir(parents=True, exist_ok=True)

    def __repr__(self):
        return f"CellStore({str(self.path)!r}, {len(self)} cells)"

    def __len__(self):
        return sum(1 for _ in self.cells_dir.glob("*.json"))

    def file(self, key: str) -> Path:
        """Path of the record for `key`."""
        return self.cells_dir / f"{key}.json"

    def get(self, params_or_key) -> dict | None:
        """Return the stored record of a cell (by params dict or key), or None."""
        key = params_or_key if isinstance(params_or_key, str) else cell_key(params_or_key)
        f = self.file(key)
        try:
            return json.loads(f.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:  # cannot happen with atomic writes; treat as missing
            return None

    def records(self) -> dict:
        """All stored records as ``{key: record}``."""
        out = {}
        for f in self.cells_dir.glob("*.json"):
            try:
                rec = json.loads(f.read_text())
            except (json.JSONDecodeError, OSError):
                continue
            out[rec.get("key", f.stem)] = rec
        return out

    def put(self, params: dict, result: Any = None, *, status: str = "ok", error: str | None = None,
            elapsed_s: float | None = None, worker: str | None = None) -> Path:
        """Write one record atomically and return its path."""
        key = cell_key(params)
        rec = {"key": key, "params": json.loads(_canonical(params)), "result": result,
               "status": status, "error": error, "elapsed_s": elapsed_s, "worker": worker,
               "finished_at": time.time()}
        text = json.dumps(rec, sort_keys=True, allow_nan=True, default=_json_default)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=self.cells_dir)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.file(key))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return self.file(key)


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"cell results must be JSON-serialisable; got {type(x).__name__}")


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------

def _timed_call(fn, params):
    """Run one cell on a worker; return (result, elapsed seconds, worker name)."""
    import socket

    t0 = time.perf_counter()
    result = fn(dict(params))
    elapsed = time.perf_counter() - t0
    try:
        from distributed import get_worker

        worker = get_worker().address
    except Exception:  # noqa: BLE001 - run outside a worker
        worker = f"{socket.gethostname()}:{os.getpid()}"
    return result, elapsed, worker


def _make_client(scheduler, n_workers, threads_per_worker, worker_env):
    """Return (client, cluster-or-None, owns_client)."""
    from distributed import Client, LocalCluster

    if scheduler is not None and not isinstance(scheduler, str):
        return scheduler, None, False  # a distributed.Client given by the caller
    if scheduler:
        return Client(scheduler), None, True
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.update(worker_env or {})
    # dashboard on a free port (":0"): a fixed port would clash with other clusters on the machine
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                           processes=True, dashboard_address=":0", silence_logs=40, env=env)
    return Client(cluster), cluster, True


@contextlib.contextmanager
def dask_client(scheduler=None, *, n_workers: int = 2, threads_per_worker: int = 1):
    """Context manager yielding a ``distributed.Client`` for several sweeps in a row.

    ``scheduler=None`` starts a local cluster of `n_workers` single-threaded processes and
    closes it on exit; a string connects to a running scheduler. Pass the client as
    ``scheduler=`` to :func:`run_cells`, :func:`trainability_sweep` or :func:`modewise_study`
    to skip the cluster start-up of each call.

    Examples
    --------
    >>> with dask_client(n_workers=2) as client:  # doctest: +SKIP
    ...     sweep = trainability_sweep(scheduler=client)
    ...     study = modewise_study(scheduler=client)
    """
    from cnnmft._validation import as_int

    n_workers = as_int(n_workers, "n_workers", low=1)
    threads_per_worker = as_int(threads_per_worker, "threads_per_worker", low=1)
    client, cluster, owns = _make_client(scheduler, n_workers, threads_per_worker, None)
    try:
        yield client
    finally:
        if owns:
            client.close()
        if cluster is not None:
            cluster.close()


def run_cells(fn: Callable[[dict], Any], cells: Iterable[dict], store, *, scheduler=None,
              n_workers: int = 2, threads_per_worker: int = 1, retries: int = 0,
              retry_failed: bool = True, progress=True, worker_env: dict | None = None) -> list:
    """Map a cell function over parameter dicts on Dask, storing each result as it finishes.

    Parameters
    ----------
    fn : callable
        ``fn(params: dict) -> result``; must be picklable (a module-level function, or a closure,
        which Dask's cloudpickle sends by value) and return something JSON-serialisable (dicts,
        lists, numbers, strings; numpy scalars and arrays are converted).
    cells : iterable of dict
        One dict of parameters per cell. Its content (not its order) is the cell's identity.
    store : CellStore or str or Path
        Where finished cells go (see :class:`CellStore`).
    scheduler : None, str or distributed.Client, optional
        None (default): start an in-process :class:`distributed.LocalCluster` with `n_workers`
        worker processes and close it at the end. A string: the address of a running scheduler
        (e.g. ``"tcp://10.0.0.5:8786"``); the store must be on the machine running this function,
        workers need only cnnmft installed. A ``Client``: used as is and left open.
    n_workers, threads_per_worker : int
        Size of the local cluster (ignored with a scheduler).
    retries : int
        Dask retries of a cell whose function raised (a killed worker does not count: Dask
        reschedules its running cells on its own).
    retry_failed : bool
        Rerun cells whose stored status is ``"error"`` (default True). Finished ``"ok"`` cells
        are never rerun.
    progress : bool or callable
        True: a tqdm bar; a callable is called as ``progress(n_done, n_total, record)`` after
        each cell; False: silent.
    worker_env : dict, optional
        Extra environment variables for local worker processes.

    Returns
    -------
    list of dict
        The stored record of every cell, in the order of `cells`. Cells whose function raised are
        stored with ``status="error"`` and the exception text in ``"error"``.

    Notes
    -----
    The driver (this function) writes the store, so workers need no shared filesystem. A cell is
    stored the moment its future completes; Ctrl-C cancels the remaining futures and closes the
    local cluster, keeping everything stored so far. Cells are identified by their content hash,
    so duplicates in `cells` run once.
    """
    from cnnmft._validation import as_int

    n_workers = as_int(n_workers, "n_workers", low=1)
    threads_per_worker = as_int(threads_per_worker, "threads_per_worker", low=1)
    retries = as_int(retries, "retries", low=0)
    if not callable(fn):
        raise ValueError(f"`fn` must be callable, got {type(fn).__name__}")
    if not isinstance(store, CellStore):
        store = CellStore(store)
    cells = [dict(c) for c in cells]
    for c in cells:
        cell_key(c)  # validates and checks JSON-ability early
    keys = [cell_key(c) for c in cells]
    unique = dict(zip(keys, cells))
    done = store.records()
    todo = {k: c for k, c in unique.items()
            if not (k in done and (done[k].get("status") == "ok" or not retry_failed))}

    bar = None
    n_total, n_done = len(unique), len(unique) - len(todo)
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_total, initial=n_done, desc="cells", unit="cell", smoothing=0.1)
    callback = progress if callable(progress) else None

    if todo:
        from distributed import as_completed

        client, cluster, owns = _make_client(scheduler, n_workers, threads_per_worker, worker_env)
        futures = {}
        run_id = uuid.uuid4().hex[:8]  # fresh Dask keys: an erred key may linger on the scheduler
        try:
            for k, c in todo.items():
                fut = client.submit(_timed_call, fn, c, key=f"cell-{k}-{run_id}", pure=False,
                                    retries=retries)
                futures[fut.key] = (k, c, fut)
            for fut in as_completed([v[2] for v in futures.values()]):
                k, c, _ = futures.pop(fut.key)
                if fut.status == "error":
                    exc = fut.exception()
                    store.put(c, None, status="error", error=f"{type(exc).__name__}: {exc}")
                else:
                    result, elapsed, worker = fut.result()
                    store.put(c, result, elapsed_s=elapsed, worker=worker)
                fut.release()
                n_done += 1
                if bar is not None:
                    bar.update(1)
                if callback is not None:
                    callback(n_done, n_total, store.get(k))
        except BaseException:
            for _, _, fut in futures.values():
                fut.cancel()
            raise
        finally:
            if bar is not None:
                bar.close()
            if owns:
                client.close()
            if cluster is not None:
                cluster.close()
    elif bar is not None:
        bar.close()

    final = store.records()
    return [final[k] for k in keys]


# --------------------------------------------------------------------------------------------
# Helpers shared by the two experiments
# --------------------------------------------------------------------------------------------

def _predicted_depth(act, sigma_w2, sigma_b2, factor):
    """``factor * xi_c`` from :func:`cnnmft.trainable_depth` as a float array (inf allowed)."""
    import cnnmft

    res = cnnmft.trainable_depth(act, sigma_w2, sigma_b2, factor=factor)
    for name in ("depth", "trainable_depth", "value", "max_depth"):
        if hasattr(res, name):
            res = getattr(res, name)
            break
    return np.asarray(res, dtype=np.float64)


def _check_train_kwargs(train_kwargs: dict) -> None:
    """Reject training settings that :class:`cnnmft.pytorch.train.TrainConfig` does not know."""
    _train = importlib.import_module("cnnmft.pytorch.train")
    known = set(_train.TrainConfig.__dataclass_fields__)
    unknown = sorted(set(train_kwargs) - known)
    if unknown:
        raise ValueError(f"unknown training settings {unknown}; allowed: the fields of "
                         f"cnnmft.pytorch.train.TrainConfig ({', '.join(sorted(known))})")


def _train_cell(params: dict) -> dict:
    """Run one short training described by `params` with :func:`cnnmft.pytorch.train.train`."""
    import torch

    _train = importlib.import_module("cnnmft.pytorch.train")

    config = _train.TrainConfig(**_train_config_kwargs(params))
    torch.set_num_threads(int(config.num_threads or 1))
    t0 = time.perf_counter()
    res = _train.train(config, progress=False)
    elapsed = time.perf_counter() - t0
    return _summarise_train_result(res, elapsed)


def _train_config_kwargs(params: dict) -> dict:
    """Map a cell's parameters onto :class:`cnnmft.pytorch.train.TrainConfig` fields.

    ``init="orthogonal"`` with ``t`` means the tunable orthogonal family; ``init="gaussian"``
    with ``t`` means Gaussian kernels with the tunable profile ``v``; Gaussian without ``t``
    uses the uniform profile. Cells evaluate once at the end, write nothing, use one thread and
    keep all activations (no checkpointing: the networks are small).
    """
    _train = importlib.import_module("cnnmft.pytorch.train")

    known = set(_train.TrainConfig.__dataclass_fields__)
    cfg = {"eval_every": 0, "plots": False, "out_dir": None, "num_threads": 1,
           "checkpoint_segments": None}
    cfg.update({k: v for k, v in params.items() if k in known})
    init, t = params.get("init", "gaussian"), params.get("t")
    if init == "orthogonal":
        cfg["init"] = "tunable_orthogonal"
    elif init == "gaussian" and t is not None:
        cfg["v"] = "tunable"
    if isinstance(cfg.get("stem_strides"), list):
        cfg["stem_strides"] = tuple(cfg["stem_strides"])
    return cfg


def _last(x, default=float("nan")):
    try:
        arr = np.asarray(x, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return default
    return float(arr[-1]) if arr.size else default


def _summarise_train_result(res, elapsed) -> dict:
    """Turn a training result into the small JSON record stored per cell."""
    get = (lambda k, d=None: res.get(k, d)) if isinstance(res, dict) else \
        (lambda k, d=None: getattr(res, k, d))
    loss = get("train_loss", get("loss", None))
    loss = [] if loss is None else [float(x) for x in np.asarray(loss, dtype=np.float64).ravel()]
    out = {
        "train_accuracy": float(get("train_accuracy", _last(get("train_acc", [])))),
        "test_accuracy": float(get("test_accuracy", _last(get("test_acc", [])))),
        "final_loss": _last(loss),
        "loss": loss,
        "status": int(get("status", 0)),
        "train_seconds": float(elapsed),
    }
    return out


def _loss_speed(loss):
    """Mean of the training-loss history: the area under the curve per step (lower = faster)."""
    arr = np.asarray(loss, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


# --------------------------------------------------------------------------------------------
# Experiment 1: accuracy over (depth, sigma_w2) against 6 xi_c
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainabilitySweep(ResultMixin):
    """Accuracy of short training runs over a ``(depth, sigma_w2)`` grid, with the theory.

    Attributes
    ----------
    act : str
        Activation name.
    sigma_w2 : ndarray, shape (n_w,)
        Weight variances (x axis).
    depth : ndarray of int, shape (n_d,)
        Depths of the deep block (y axis).
    sigma_b2 : float
        Bias variance, fixed across the grid.
    train_accuracy, test_accuracy, final_loss : ndarray, shape (n_d, n_w)
        Per cell, after the training budget; NaN for cells that failed (see `status`).
    status : ndarray of int, shape (n_d, n_w)
        The training run's :class:`~cnnmft.results.Status` (0 OK; -3 NONFINITE: the loss
        became non-finite and training stopped), or -1 where the cell function raised (the
        message is in the store).
    predicted_depth : ndarray, shape (n_w,)
        ``factor * xi_c(sigma_w2)`` from :func:`cnnmft.trainable_depth` (inf at criticality).
    factor : float
        The multiple of ``xi_c`` (6, Schoenholz et al. 2017).
    threshold : float
        A cell counts as trained when its final training accuracy is ``>= threshold``.
    trained, predicted : ndarray of bool, shape (n_d, n_w)
        ``train_accuracy >= threshold`` and ``depth <= predicted_depth``.
    agreement : float
        Fraction of cells where `trained` equals `predicted` (cells with failed status count as
        not trained).
    config : str
        JSON of the fixed training settings shared by all cells (dataset, steps, width, ...).
    seconds : float
        Wall-clock time of the sweep in this call (0 if every cell was stored already).
    """

    act: str
    sigma_w2: np.ndarray
    depth: np.ndarray
    sigma_b2: float
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    final_loss: np.ndarray
    status: np.ndarray
    predicted_depth: np.ndarray
    factor: float
    threshold: float
    trained: np.ndarray
    predicted: np.ndarray
    agreement: float
    config: str = "{}"
    seconds: float = 0.0

    def summary(self) -> str:
        """One paragraph: grid, threshold, agreement and its confusion counts."""
        t, p = self.trained, self.predicted
        return (f"{self.act} CNN, sigma_b2={self.sigma_b2:g}, {len(self.depth)} depths x "
                f"{len(self.sigma_w2)} sigma_w2: 'trained' = final train accuracy >= "
                f"{self.threshold:g}; agreement with depth <= {self.factor:g} xi_c: "
                f"{self.agreement:.3f} ({int((t & p).sum())} both, {int((~t & ~p).sum())} "
                f"neither, {int((t & ~p).sum())} trained beyond the bound, "
                f"{int((~t & p).sum())} predicted but not trained)")


def agreement_fraction(trained, predicted) -> float:
    """Fraction of cells where ``trained == predicted`` (both boolean arrays of one shape)."""
    trained = np.asarray(trained, dtype=bool)
    predicted = np.asarray(predicted, dtype=bool)
    if trained.shape != predicted.shape:
        raise ValueError(f"`trained` {trained.shape} and `predicted` {predicted.shape} differ "
                         "in shape")
    if trained.size == 0:
        raise ValueError("`trained` is empty")
    return float(np.mean(trained == predicted))


#: Fixed training settings of every trainability cell (override with keyword arguments).
TRAINABILITY_DEFAULTS = {
    "dataset": "digits",
    "init": "gaussian",
    "channels": 16,
    "steps": 150,
    "batch_size": 64,
    "optimizer": "sgd",
    "lr": 0.01,
    "momentum": 0.9,
}

#: Default grid of the trainability sweep (12 x 10 cells).
DEFAULT_SIGMA_W2 = tuple(float(x) for x in np.round(np.linspace(0.5, 3.8, 12), 2))
DEFAULT_DEPTHS = (2, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def trainability_cell(params: dict) -> dict:
    """Train one Gaussian-initialised CNN described by `params`; the default cell function.

    `params` holds the keys of :class:`cnnmft.pytorch.train.TrainConfig` (``depth``,
    ``sigma_w2``, ``sigma_b2``, ``act``, ``dataset``, ``steps``, ...). Returns
    ``{"train_accuracy", "test_accuracy", "final_loss", "loss", "status", "train_seconds"}``.
    Runs with one torch thread (cells run in parallel, one per worker).
    """
    return _train_cell(params)


def trainability_sweep(sigma_w2=None, depth=None, *, sigma_b2=0.05, act="tanh", store=None,
                       threshold=0.3, factor=6.0, seed=0, scheduler=None, n_workers=2,
                       progress=True, cell_fn=None, **train_kwargs) -> TrainabilitySweep:
    r"""Train one short run per ``(depth, sigma_w2)`` cell and compare with ``depth <= 6 xi_c``.

    The paper's Figure 2 experiment ([1]_; THEORY.md §5.2-5.3): vanilla CNNs with Gaussian kernels
    (uniform ``v``) at fixed ``sigma_b2`` are trainable only where signals propagate, i.e. when
    the depth is at most a few correlation depth scales,

    .. math:: L \le 6\,\xi_c(\sigma_w^2, \sigma_b^2), \qquad \xi_c = -1/\log\chi_{c^*},

    a band centred on the critical ``sigma_w2`` where ``xi_c`` diverges ([2]_).

    Parameters
    ----------
    sigma_w2 : array_like, shape (n_w,), optional
        Weight variances (default :data:`DEFAULT_SIGMA_W2`: 12 values from 0.5 to 3.8).
    depth : array_like of int, shape (n_d,), optional
        Depths (default :data:`DEFAULT_DEPTHS`: ``(2, 4, 6, 8, 12, 16, 24, 32, 48, 64)``).
    sigma_b2 : float, default 0.05
        Bias variance.
    act : str, default "tanh"
    store : str or Path or CellStore, optional
        Where finished cells are kept (default: a temporary folder, so nothing is resumable).
        Rerunning with the same store skips stored cells.
    threshold : float, default 0.3
        "Trained" means final training accuracy (on a fixed subset of 1000 training images)
        ``>= threshold``. For the 10-class digits data (chance 0.1) and the default budget
        (150 SGD steps of batch 64, 16 channels), 0.3 = three times chance: the network has left
        the chance plateau within the budget. A fixed budget makes "trainable" budget-dependent:
        deep networks near criticality that would train with more steps count as not trained.
    factor : float, default 6
        Multiple of ``xi_c`` used as the predicted maximum depth.
    seed : int, default 0
        Seed of every cell (the same data order and initial draw across cells).
    scheduler : None, str or distributed.Client
        See :func:`run_cells` (None: a local cluster of `n_workers` processes).
    n_workers : int, default 2
    progress : bool or callable
        See :func:`run_cells`.
    cell_fn : callable, optional
        Replaces :func:`trainability_cell` (for tests and custom training); called with the
        parameter dict, must return at least ``train_accuracy``.
    **train_kwargs
        Fixed training settings for every cell (``dataset``, ``steps``, ``channels``,
        ``batch_size``, ``lr``, ...), overriding :data:`TRAINABILITY_DEFAULTS`.

    Returns
    -------
    TrainabilitySweep

    References
    ----------
    .. [1] Xiao et al., ICML 2018, arXiv:1806.05393, Figure 2.
    .. [2] Schoenholz et al., ICLR 2017, arXiv:1611.01232.
    """
    from cnnmft._validation import as_float_array, as_int

    if sigma_w2 is None:
        sigma_w2 = DEFAULT_SIGMA_W2
    if depth is None:
        depth = DEFAULT_DEPTHS
    sigma_w2 = np.atleast_1d(as_float_array(sigma_w2, "sigma_w2", low=0.0, low_open=True))
    depth = np.atleast_1d(np.asarray(depth))
    if sigma_w2.ndim != 1 or depth.ndim != 1:
        raise ValueError("`sigma_w2` and `depth` must be 1-D lists of grid values")
    depth = np.array([as_int(d, "depth", low=1) for d in depth], dtype=np.int64)
    sigma_b2 = float(as_float_array(sigma_b2, "sigma_b2", low=0.0))
    threshold = float(as_float_array(threshold, "threshold", low=0.0, high=1.0))
    factor = float(as_float_array(factor, "factor", low=0.0, low_open=True))
    seed = as_int(seed, "seed", low=0)
    if cell_fn is None:
        _check_train_kwargs(train_kwargs)
    fixed = dict(TRAINABILITY_DEFAULTS)
    fixed.update(train_kwargs)
    fixed.update(act=str(act), sigma_b2=sigma_b2, seed=seed)
    cells = [dict(fixed, depth=int(d), sigma_w2=float(s)) for d in depth for s in sigma_w2]

    predicted_depth = _predicted_depth(act, sigma_w2, sigma_b2, factor)
    tmp = None
    if store is None:
        tmp = tempfile.TemporaryDirectory(prefix="cnnmft-sweep-")
        store = tmp.name
    t0 = time.perf_counter()
    try:
        records = run_cells(cell_fn or trainability_cell, cells, store, scheduler=scheduler,
                            n_workers=n_workers, progress=progress)
    finally:
        if tmp is not None:
            tmp.cleanup()
    seconds = time.perf_counter() - t0
    shape = (len(depth), len(sigma_w2))
    grids = {k: np.full(shape, np.nan) for k in ("train_accuracy", "test_accuracy", "final_loss")}
    status = np.zeros(shape, dtype=np.int64)
    for idx, rec in enumerate(records):
        i, j = divmod(idx, len(sigma_w2))
        res = rec.get("result") or {}
        if rec.get("status") != "ok":
            status[i, j] = -1
            continue
        for k in grids:
            val = res.get(k)
            grids[k][i, j] = np.nan if val is None else float(val)
        status[i, j] = int(res.get("status", 0))
    acc = grids["train_accuracy"]
    trained = np.where(np.isfinite(acc), acc, -np.inf) >= threshold
    predicted = depth[:, None] <= predicted_depth[None, :]
    return TrainabilitySweep(
        act=str(act), sigma_w2=sigma_w2, depth=depth, sigma_b2=sigma_b2,
        train_accuracy=acc, test_accuracy=grids["test_accuracy"],
        final_loss=grids["final_loss"], status=status, predicted_depth=predicted_depth,
        factor=factor, threshold=threshold, trained=trained, predicted=predicted,
        agreement=agreement_fraction(trained, predicted),
        config=json.dumps({k: v for k, v in fixed.items()}, sort_keys=True), seconds=seconds)


def plot_trainability(sweep: TrainabilitySweep, *, which="train_accuracy", ax=None,
                      n_curve=400, logy=None):
    """Heatmap of accuracy over ``(sigma_w2, depth)`` with the ``factor * xi_c`` curve on top.

    Parameters
    ----------
    sweep : TrainabilitySweep
    which : {"train_accuracy", "test_accuracy"}
    ax : matplotlib Axes, optional
    n_curve : int
        Points of the theory curve (computed on a fine ``sigma_w2`` grid spanning the sweep).
    logy : bool, optional
        Logarithmic depth axis (default: when the depths span more than a factor 8).

    Returns
    -------
    matplotlib.figure.Figure
        Cells that count as trained are marked with dots; the dotted vertical line is the
        critical ``sigma_w2`` (where ``xi_c`` diverges).
    """
    import matplotlib.patheffects as pe
    import matplotlib.pyplot as plt

    import cnnmft

    if which not in ("train_accuracy", "test_accuracy"):
        raise ValueError(f"`which` must be 'train_accuracy' or 'test_accuracy', got {which!r}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
    else:
        fig = ax.figure
    x = np.asarray(sweep.sigma_w2, dtype=float)
    y = np.asarray(sweep.depth, dtype=float)
    z = np.asarray(getattr(sweep, which), dtype=float)
    if logy is None:
        logy = y.max() / y.min() > 8

    def edges(c, log=False):
        if len(c) == 1:
            return np.array([c[0] * 0.8, c[0] * 1.25]) if log else np.array([c[0] - .5, c[0] + .5])
        if log:
            return np.exp(edges(np.log(c)))
        mid = 0.5 * (c[1:] + c[:-1])
        return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])

    xe, ye = edges(x), edges(y, logy)
    xe[0] = max(xe[0], 0.5 * x[0])  # sigma_w2 > 0
    if not logy:
        ye[0] = max(ye[0], 0.5 * y[0])
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(z), cmap="viridis", vmin=0.0, vmax=1.0,
                         shading="flat")
    fig.colorbar(mesh, ax=ax, label=which.replace("_", " ") + " (grey: not run)")
    ax.set_facecolor("0.85")
    xs = np.linspace(xe[0], xe[-1], n_curve)
    curve = _predicted_depth(sweep.act, xs, sweep.sigma_b2, sweep.factor)
    ax.plot(xs, np.where(np.isfinite(curve), curve, 1e9), color="tab:red", lw=2.2,
            path_effects=[pe.Stroke(linewidth=3.8, foreground="w"), pe.Normal()],
            label=f"{sweep.factor:g} $\\xi_c$ (theory)")
    try:
        sw_c = float(np.asarray(cnnmft.critical_sigma_w2(sweep.act, sweep.sigma_b2).sigma_w2))
        if xe[0] < sw_c < xe[-1]:
            ax.axvline(sw_c, color="w", ls=":", lw=1.4,
                       path_effects=[pe.Stroke(linewidth=2.4, foreground="0.3"), pe.Normal()],
                       label=f"critical $\\sigma_w^2$={sw_c:.3g}")
    except (ValueError, TypeError):  # no critical point for this activation / sigma_b2
        pass
    ii, jj = np.nonzero(np.asarray(sweep.trained))
    ax.scatter(x[jj], y[ii], s=9, c="k", marker="o",
               label=f"trained (acc $\\geq$ {sweep.threshold:g})")
    if logy:
        ax.set_yscale("log")
        ax.set_yticks(y)
        ax.set_yticklabels([str(int(d)) for d in y])
        ax.minorticks_off()
    ax.set_ylim(ye[0], ye[-1])
    ax.set_xlim(xe[0], xe[-1])
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel("depth L")
    ax.set_title(f"{sweep.act}, $\\sigma_b^2$={sweep.sigma_b2:g}: agreement "
                 f"{sweep.agreement:.2f}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize="small",
              frameon=False)
    return fig


# --------------------------------------------------------------------------------------------
# Experiment 2: spatial variance profile v at criticality (mode-wise study)
# --------------------------------------------------------------------------------------------

def mode_scales_for_profile(act, sigma_w2, sigma_b2, v, spatial_shape):
    r"""Per-mode correlation depth scales ``xi_{c,f} = -1/log(chi_c |lam_f|)`` for a profile `v`.

    Uses :func:`cnnmft.fourier.mode_depth_scales` when available, otherwise the same formula
    from :func:`cnnmft.fixed_point` (``chi_c``) and :func:`cnnmft.fourier.mode_eigenvalues`
    (THEORY.md §2.4). Returns an array of shape `spatial_shape` (``inf`` for marginal modes,
    including those that rounding puts a hair above ``chi_c |lam_f| = 1`` at criticality).
    """
    from cnnmft import fourier

    fn = getattr(fourier, "mode_depth_scales", None)
    if fn is not None:
        res = fn(act, sigma_w2, sigma_b2, v, spatial_shape)
        xi = np.asarray(getattr(res, "xi_c", res), dtype=np.float64)
        # chi_c <= 1 in theory; at a numerically critical point chi_c |lam| can exceed 1 by a
        # rounding error, which turns xi = -1/log(.) into a huge negative number: marginal.
        return np.where((xi < 0) | (xi > 1e12), np.inf, xi)
    import cnnmft

    chi_c = float(np.asarray(cnnmft.fixed_point(act, sigma_w2, sigma_b2).chi_c).ravel()[0])
    lam = np.abs(fourier.mode_eigenvalues(v, spatial_shape))
    prod = np.minimum(chi_c * lam, 1.0)
    with np.errstate(divide="ignore"):
        xi = -1.0 / np.log(prod)
    return np.where(prod >= 1.0, np.inf, xi)


@dataclass(frozen=True)
class ModewiseStudy(ResultMixin):
    """Training speed and test accuracy against the spatial variance profile, with the theory.

    Attributes
    ----------
    act : str
    depth : int
        Depth of the deep block (all runs).
    sigma_w2, sigma_b2 : float
        The critical point used.
    t : ndarray, shape (n_t,)
        Parameter of the tunable profile family: ``t = 0`` delta (Delta-orthogonal), ``t = 1/2``
        binomial (block-orthogonal, Algorithm 1).
    kinds : ndarray of str, shape (n_k,)
        ``"orthogonal"`` (exactly orthogonal kernels of the family) and/or ``"gaussian"``
        (Gaussian kernels with the same ``v``).
    spatial_shape : ndarray of int, shape (d,)
        Grid of the deep block, on which the Fourier modes live.
    train_accuracy, test_accuracy : ndarray, shape (n_k, n_t)
        Final accuracies, mean over seeds.
    test_accuracy_se : ndarray, shape (n_k, n_t)
        Standard error of the test accuracy over seeds (NaN with one seed).
    loss_auc : ndarray, shape (n_k, n_t)
        Mean training loss over all steps (area under the loss curve per step; lower means
        faster training), mean over seeds.
    loss : ndarray, shape (n_k, n_t, n_steps)
        Training-loss curves, mean over seeds.
    xi_slowest : ndarray, shape (n_t,)
        Predicted depth scale of the slowest-decaying non-zero Fourier mode.
    surviving_fraction : ndarray, shape (n_t,)
        Predicted fraction of non-zero modes with ``xi_{c,f} >= depth`` (modes that still carry
        spatial information at the output).
    n_seeds : int
    config : str
        JSON of the fixed training settings.
    """

    act: str
    depth: int
    sigma_w2: float
    sigma_b2: float
    t: np.ndarray
    kinds: np.ndarray
    spatial_shape: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    test_accuracy_se: np.ndarray
    loss_auc: np.ndarray
    loss: np.ndarray
    xi_slowest: np.ndarray
    surviving_fraction: np.ndarray
    n_seeds: int
    config: str = "{}"


#: Fixed training settings of every mode-wise cell (override with keyword arguments).
MODEWISE_DEFAULTS = {
    "dataset": "digits",
    "channels": 16,
    "steps": 300,
    "batch_size": 64,
    "optimizer": "sgd",
    "lr": 0.02,
    "momentum": 0.9,
}


def modewise_cell(params: dict) -> dict:
    """Train one CNN with a tunable-profile kernel (``params["init"]``, ``params["t"]``)."""
    return _train_cell(params)


def modewise_study(t=(0.0, 0.01, 0.03, 0.1, 0.25, 0.5), *, depth=16,
                   kinds=("orthogonal", "gaussian"),
                   sigma_w2=None, sigma_b2=0.05, act="tanh", spatial_shape=None, seeds=(0, 1, 2),
                   store=None, scheduler=None, n_workers=2, progress=True, cell_fn=None,
                   **train_kwargs) -> ModewiseStudy:
    r"""Train at fixed depth at criticality with variance profiles from delta to binomial.

    The paper's generalisation study ([1]_, THEORY.md §5.2-5.3): at the critical point the zero
    Fourier mode is marginal for every ``v``, but a non-zero mode ``f`` decays with the depth
    scale

    .. math:: \xi_{c,f} = -1 / \log\left(\chi_{c^*} |\lambda_f|\right),\qquad
              \lambda_f = \sum_\beta v_\beta e^{2\pi i \langle f, \beta\rangle / n},

    so a delta profile (``t = 0``) keeps all spatial information to any depth, and spreading the
    variance (``t -> 1/2``) filters the non-zero modes out over a few layers. Orthogonal kernels
    from the tunable family (:func:`cnnmft.pytorch.tunable_orthogonal_`) keep the Jacobian
    well-conditioned for every ``t``; Gaussian kernels with the same ``v`` do not.

    Parameters
    ----------
    t : sequence of float in [0, 1/2]
        Profile parameters (``variance_profile("tunable", 3, t=t)``).
    depth : int, default 16
    kinds : sequence of {"orthogonal", "gaussian"}
    sigma_w2, sigma_b2 : float, optional
        Default: ``sigma_b2 = 0.05`` and the critical ``sigma_w2`` for it
        (:func:`cnnmft.critical_sigma_w2`; 1.761 for tanh). ``sigma_b2=None`` with
        ``sigma_w2=None``: the critical point with ``q* = 1/depth`` (the authors' demo rule;
        its small signals train slowly at the default budget).
    act : str, default "tanh"
    spatial_shape : tuple of int, optional
        Grid of the deep block for the per-mode prediction (default: inferred from the dataset
        and the stem strides, (4, 4) for digits).
    seeds : sequence of int
        One run per seed; accuracies are averaged, with a standard error.
    store, scheduler, n_workers, progress, cell_fn
        As in :func:`trainability_sweep`.
    **train_kwargs
        Fixed training settings, overriding :data:`MODEWISE_DEFAULTS`.

    Returns
    -------
    ModewiseStudy

    References
    ----------
    .. [1] Xiao et al., ICML 2018, arXiv:1806.05393, Sections 2.4 and 5.
    """
    import cnnmft
    from cnnmft._validation import as_float_array, as_int
    from cnnmft.fourier import variance_profile

    t = np.atleast_1d(as_float_array(t, "t", low=0.0, high=0.5))
    depth = as_int(depth, "depth", low=1)
    kinds = tuple(kinds)
    for k in kinds:
        if k not in ("orthogonal", "gaussian"):
            raise ValueError(f"`kinds` entries must be 'orthogonal' or 'gaussian', got {k!r}")
    seeds = [as_int(s, "seeds", low=0) for s in seeds]
    if not seeds or not kinds or t.size == 0:
        raise ValueError("`t`, `kinds` and `seeds` must not be empty")
    if sigma_w2 is None and sigma_b2 is None:
        cp = cnnmft.critical_point(act, 1.0 / depth)
        sigma_w2, sigma_b2 = float(cp.sigma_w2), float(cp.sigma_b2)
    elif sigma_w2 is None:
        sigma_b2 = float(as_float_array(sigma_b2, "sigma_b2", low=0.0))
        sigma_w2 = float(np.asarray(cnnmft.critical_sigma_w2(act, sigma_b2).sigma_w2))
        if not math.isfinite(sigma_w2):
            raise ValueError(f"no critical sigma_w2 for act={act!r}, sigma_b2={sigma_b2!r}; "
                             "give `sigma_w2`")
    elif sigma_b2 is None:
        raise ValueError(f"`sigma_w2` = {sigma_w2!r} was given without `sigma_b2`")
    sigma_w2 = float(as_float_array(sigma_w2, "sigma_w2", low=0.0, low_open=True))
    sigma_b2 = float(as_float_array(sigma_b2, "sigma_b2", low=0.0))
    if cell_fn is None:
        _check_train_kwargs(train_kwargs)
    fixed = dict(MODEWISE_DEFAULTS)
    fixed.update(train_kwargs)
    fixed.update(act=str(act), depth=depth, sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    if spatial_shape is None:
        spatial_shape = _deep_spatial_shape(fixed)
    spatial_shape = tuple(int(n) for n in np.atleast_1d(spatial_shape))

    cells = [dict(fixed, init=k, t=float(tt), seed=s) for k in kinds for tt in t for s in seeds]
    tmp = None
    if store is None:
        tmp = tempfile.TemporaryDirectory(prefix="cnnmft-modes-")
        store = tmp.name
    try:
        records = run_cells(cell_fn or modewise_cell, cells, store, scheduler=scheduler,
                            n_workers=n_workers, progress=progress)
    finally:
        if tmp is not None:
            tmp.cleanup()

    nk, nt, ns = len(kinds), t.size, len(seeds)
    tr = np.full((nk, nt, ns), np.nan)
    te = np.full((nk, nt, ns), np.nan)
    auc = np.full((nk, nt, ns), np.nan)
    curves = {}
    for idx, rec in enumerate(records):
        ik, rem = divmod(idx, nt * ns)
        it, js = divmod(rem, ns)
        res = rec.get("result") or {}
        if rec.get("status") != "ok":
            continue
        tr[ik, it, js] = res.get("train_accuracy", np.nan)
        te[ik, it, js] = res.get("test_accuracy", np.nan)
        loss = res.get("loss") or []
        auc[ik, it, js] = _loss_speed(loss)
        curves[(ik, it, js)] = np.asarray(loss, dtype=np.float64)
    n_steps = max((len(c) for c in curves.values()), default=0)
    loss = np.full((nk, nt, ns, n_steps), np.nan)
    for (ik, it, js), c in curves.items():
        loss[ik, it, js, :len(c)] = c
    with np.errstate(invalid="ignore"), _quiet_nanmean():
        se = (np.nanstd(te, axis=2, ddof=1) / np.sqrt(np.sum(np.isfinite(te), axis=2))
              if ns > 1 else np.full((nk, nt), np.nan))
        tr_m, te_m, auc_m = (np.nanmean(a, axis=2) for a in (tr, te, auc))
        loss_m = np.nanmean(loss, axis=2)

    xi_slowest = np.empty(nt)
    surviving = np.empty(nt)
    for i, tt in enumerate(t):
        v = variance_profile("tunable", 3, ndim=len(spatial_shape), t=float(tt))
        xi = mode_scales_for_profile(act, sigma_w2, sigma_b2, v, spatial_shape).ravel()[1:]
        xi_slowest[i] = float(np.max(xi)) if xi.size else np.inf
        surviving[i] = float(np.mean(xi >= depth)) if xi.size else 1.0
    return ModewiseStudy(
        act=str(act), depth=depth, sigma_w2=sigma_w2, sigma_b2=sigma_b2, t=t,
        kinds=np.array(kinds), spatial_shape=np.array(spatial_shape), train_accuracy=tr_m,
        test_accuracy=te_m, test_accuracy_se=se, loss_auc=auc_m, loss=loss_m,
        xi_slowest=xi_slowest, surviving_fraction=surviving, n_seeds=ns,
        config=json.dumps(fixed, sort_keys=True))


class _quiet_nanmean:
    """Silence numpy's 'Mean of empty slice' warnings (all-NaN cells stay NaN)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


_IMAGE_SIZE = {"digits": 8, "mnist": 28, "cifar10": 32}


def _deep_spatial_shape(params) -> tuple:
    """Grid of the deep block: the image size after the stem's 3x3, padding-1 convolutions.

    The stem strides default as in :func:`cnnmft.pytorch.train.build_model`: ``(1, 2)`` for
    digits (8x8 -> 4x4), ``(1, 2, 2)`` otherwise (28 -> 7, 32 -> 8).
    """
    dataset = params.get("dataset", "digits")
    if dataset not in _IMAGE_SIZE:
        raise ValueError(f"`dataset` must be one of {sorted(_IMAGE_SIZE)} to infer the deep-block "
                         f"grid, got {dataset!r}; pass `spatial_shape`")
    n = _IMAGE_SIZE[dataset]
    strides = params.get("stem_strides") or ((1, 2) if dataset == "digits" else (1, 2, 2))
    for st in strides:
        n = (n - 1) // int(st) + 1
    return (n, n)


def plot_modewise(study: ModewiseStudy, *, axes=None):
    """Three panels: loss curves, test accuracy against ``t``, predicted mode depth scales.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    else:
        fig = axes[0].figure
    ax0, ax1, ax2 = axes
    cmap = plt.get_cmap("viridis")
    styles = {"orthogonal": "-", "gaussian": "--"}
    for ik, kind in enumerate(study.kinds):
        for it, tt in enumerate(study.t):
            col = cmap(tt / 0.5 * 0.9)
            ax0.plot(study.loss[ik, it], styles.get(str(kind), ":"), color=col, lw=1.2,
                     label=f"{kind}, t={tt:g}" if ik == 0 or it in (0, len(study.t) - 1) else None)
        ax1.errorbar(study.t, study.test_accuracy[ik], yerr=study.test_accuracy_se[ik],
                     fmt="o" + styles.get(str(kind), ":"), capsize=3, label=f"{kind}: test")
        ax1.plot(study.t, study.train_accuracy[ik], "x" + styles.get(str(kind), ":"), alpha=0.6,
                 label=f"{kind}: train")
    ax0.set_xlabel("step")
    ax0.set_ylabel("training loss")
    ax0.set_title(f"depth {study.depth}, critical ($\\sigma_w^2$={study.sigma_w2:.4g})")
    ax0.legend(fontsize="x-small", ncol=2)
    ax1.set_xlabel("t  (0 = delta, 0.5 = binomial)")
    ax1.set_ylabel("accuracy")
    ax1.legend(fontsize="small")
    ax2.plot(study.t, study.xi_slowest, "o-", label=r"$\xi_c$ of slowest non-zero mode")
    ax2.axhline(study.depth, color="k", ls=":", label=f"depth {study.depth}")
    ax2.set_yscale("log")
    ax2.set_xlabel("t")
    ax2.set_ylabel("predicted depth scale")
    ax2b = ax2.twinx()
    ax2b.plot(study.t, study.surviving_fraction, "s--", color="C3",
              label=r"modes with $\xi_{c,f} \geq$ depth")
    ax2b.set_ylabel("fraction of non-zero modes surviving", color="C3")
    ax2b.set_ylim(-0.02, 1.02)
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax2b.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize="x-small")
    fig.tight_layout()
    return fig
