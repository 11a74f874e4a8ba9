"""Resumable parameter sweeps on Dask distributed (torch-free): cells, their store, scheduling.

:func:`run_cells` maps any picklable function of one ``dict`` of parameters (a *cell*) over a
list of cells on a Dask cluster and writes every finished cell at once, atomically, to a
:class:`CellStore`: one small JSON file per cell, named by a hash of its parameters and carrying a
checksum of its content. Therefore

* rerunning the same sweep skips the cells already stored, and a sweep can be extended (more
  values along an axis) so that only the new cells run;
* killing the driver loses only the cells that were running; a killed worker loses only its
  running cells (Dask reschedules them on another worker);
* a file that is not a valid record (a truncated or hand-edited file, flipped bytes, a record
  whose key does not match its parameters, an ``OK`` record without a result) is detected by
  :meth:`CellStore.check`, set aside as ``*.json.corrupt`` and recomputed.

Every record carries a :class:`cnnmft.Status`: ``OK``, ``FAILED`` (the cell function raised; the
message is kept) or whatever the cell reports in ``result["status"]``.

Where the work runs (:func:`dask_client`): an in-process :class:`distributed.LocalCluster` of
single-threaded worker processes by default; a running scheduler by address (``tcp://host:8786``)
or by its scheduler file (``dask scheduler --scheduler-file F``; how SLURM/dask-jobqueue clusters
are usually joined); or any ``distributed.Client`` passed in. Workers get one thread each for
numba, BLAS and torch (:func:`cnnmft._threads.dask_worker_plugin`), so ``k`` workers on ``k``
cores do not oversubscribe. The driver writes the store, so workers need no shared filesystem;
input files they read must be visible to them, which :func:`check_worker_paths` verifies up front.
docs/trainability.md has the recipes (plain ``dask scheduler`` + ``dask worker``, SLURM).

The experiments built on this engine (trainable depth, variance profiles) live in
:mod:`cnnmft.pytorch.experiments`; torch is never imported here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from cnnmft import _threads
from cnnmft._util import atomic_write_text, progress_bar
from cnnmft._validation import as_int
from cnnmft.results import Status

__all__ = [
    "CellStore",
    "cell_key",
    "run_cells",
    "dask_client",
    "check_worker_paths",
    "agreement_fraction",
]

log = logging.getLogger("cnnmft.sweeps")


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


def _norm(x):
    if isinstance(x, dict):
        return {str(k): _norm(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_norm(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return [_norm(v) for v in x.tolist()]
    if isinstance(x, Status):
        return x.name
    return x


def _canonical(obj) -> str:
    """JSON text of `obj` with sorted keys and floats in their shortest exact repr."""
    return json.dumps(_norm(obj), sort_keys=True, separators=(",", ":"), allow_nan=True)


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


def _checksum(rec: dict) -> str:
    body = {k: v for k, v in rec.items() if k != "checksum"}
    return hashlib.sha256(_canonical(body).encode()).hexdigest()


def _status_of(name) -> Status:
    if isinstance(name, str) and name in Status.__members__:
        return Status[name]
    raise ValueError(f"unknown status {name!r}")


class CellStore:
    """A folder of finished cells, one JSON file per cell, each written atomically and checksummed.

    A record is ``{"key", "params", "result", "status", "error", "elapsed_s", "worker",
    "finished_at", "checksum"}``; ``status`` is the name of a :class:`cnnmft.Status` and
    ``checksum`` the SHA-256 of the rest. Files are written under a temporary name, fsync'ed and
    renamed over the final name, so a process killed mid-write leaves at most a stray ``.*.tmp``
    file (ignored). Anything else that is not a valid record is reported by :meth:`check`.

    Parameters
    ----------
    path : str or Path
        The folder (created if needed). Records live in ``path/cells/``.

    Examples
    --------
    >>> import tempfile
    >>> store = CellStore(tempfile.mkdtemp())
    >>> _ = store.put({"x": 2}, {"y": 4})
    >>> store.get({"x": 2})["result"], store.get({"x": 2})["status"]
    ({'y': 4}, 'OK')
    """

    def __init__(self, path):
        self.path = Path(path)
        self.cells_dir = self.path / "cells"
        self.cells_dir.mkdir(parents=True, exist_ok=True)

    def __repr__(self):
        return f"CellStore({str(self.path)!r}, {len(self)} files)"

    def __len__(self):
        return sum(1 for _ in self.cells_dir.glob("*.json"))

    def file(self, key: str) -> Path:
        """Path of the record for `key`."""
        return self.cells_dir / f"{key}.json"

    def _read(self, f: Path) -> tuple[dict | None, str | None]:
        """Return ``(record, None)`` for a valid file, ``(None, reason)`` otherwise."""
        try:
            text = f.read_text()
        except FileNotFoundError:
            return None, "missing"
        except (OSError, UnicodeDecodeError) as exc:
            return None, f"unreadable ({type(exc).__name__}: {exc})"
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, f"not valid JSON ({exc.msg} at byte {exc.pos} of {len(text)})"
        if not isinstance(rec, dict) or not {"key", "params", "status", "checksum"} <= set(rec):
            return None, "not a cell record (keys missing)"
        if rec["checksum"] != _checksum(rec):
            return None, "checksum mismatch (content changed after it was written)"
        if (
            not isinstance(rec["params"], dict)
            or rec["key"] != f.stem
            or cell_key(rec["params"]) != rec["key"]
        ):
            return None, "key does not match the file name or the parameters"
        try:
            status = _status_of(rec["status"])
        except ValueError:
            return None, f"unknown status {rec['status']!r}"
        if status == Status.OK and rec.get("result") is None:
            return None, "status OK without a result"
        return rec, None

    def get(self, params_or_key) -> dict | None:
        """Return the valid stored record of a cell (by params dict or key), or None."""
        key = params_or_key if isinstance(params_or_key, str) else cell_key(params_or_key)
        return self._read(self.file(key))[0]

    def records(self) -> dict:
        """All valid stored records as ``{key: record}`` (invalid files are left out)."""
        out = {}
        for f in sorted(self.cells_dir.glob("*.json")):
            rec, _ = self._read(f)
            if rec is not None:
                out[rec["key"]] = rec
        return out

    def check(self, *, quarantine: bool = False) -> dict:
        """Files that are not valid records: ``{file name: reason}``.

        With ``quarantine=True`` each one is renamed to ``<name>.corrupt`` (kept for inspection,
        no longer read), so the cell counts as missing and is recomputed by :func:`run_cells`.
        """
        bad = {}
        for f in sorted(self.cells_dir.glob("*.json")):
            rec, why = self._read(f)
            if rec is None:
                bad[f.name] = why
                if quarantine:
                    with contextlib.suppress(OSError):
                        os.replace(f, f.with_name(f.name + ".corrupt"))
        return bad

    def put(
        self,
        params: dict,
        result: Any = None,
        *,
        status: Status = Status.OK,
        error: str | None = None,
        elapsed_s: float | None = None,
        worker: str | None = None,
    ) -> Path:
        """Write one record atomically and return its path."""
        status = Status(status)
        if status == Status.OK and result is None:
            raise ValueError("`result` is None for a cell stored with status OK")
        key = cell_key(params)
        rec = {
            "key": key,
            "params": json.loads(_canonical(params)),
            "result": json.loads(_dumps(result)),
            "status": status.name,
            "error": error,
            "elapsed_s": elapsed_s,
            "worker": worker,
            "finished_at": time.time(),
        }
        rec["checksum"] = _checksum(rec)
        return atomic_write_text(self.file(key), json.dumps(rec, sort_keys=True, allow_nan=True))


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"cell results must be JSON-serialisable; got {type(x).__name__}")


def _dumps(result) -> str:
    return json.dumps(_norm_result(result), allow_nan=True, default=_json_default)


def _norm_result(x):
    if isinstance(x, Status):
        return x.name
    if isinstance(x, dict):
        return {str(k): _norm_result(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_norm_result(v) for v in x]
    return x


def agreement_fraction(trained, predicted) -> float:
    """Fraction of cells where ``trained == predicted`` (boolean arrays of one shape).

    Examples
    --------
    >>> agreement_fraction([True, False], [True, True])
    0.5
    """
    trained = np.asarray(trained, dtype=bool)
    predicted = np.asarray(predicted, dtype=bool)
    if trained.shape != predicted.shape:
        raise ValueError(
            f"`trained` {trained.shape} and `predicted` {predicted.shape} differ in shape"
        )
    if trained.size == 0:
        raise ValueError("`trained` is empty")
    return float(np.mean(trained == predicted))


# --------------------------------------------------------------------------------------------
# Scheduling
# --------------------------------------------------------------------------------------------


def _timed_call(fn, params, shared, threads):
    """Run one cell on a worker with `threads` threads; return (result, seconds, worker)."""
    t0 = time.perf_counter()
    with _threads.limit_threads(threads):
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        result = fn(dict(params)) if shared is None else fn(dict(params), shared)
    elapsed = time.perf_counter() - t0
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):  # run outside a worker
        worker = f"{socket.gethostname()}:{os.getpid()}"
    return result, elapsed, worker


def _make_client(scheduler, scheduler_file, n_workers, threads_per_worker):
    """Return (client, cluster-or-None, owns_client)."""
    from distributed import Client, LocalCluster

    if scheduler is not None and scheduler_file is not None:
        raise ValueError("give `scheduler` or `scheduler_file`, not both")
    if scheduler is not None and not isinstance(scheduler, str):
        if not isinstance(scheduler, Client):
            raise TypeError(
                f"`scheduler` must be None, an address string or a "
                f"distributed.Client, got {type(scheduler).__name__}"
            )
        return scheduler, None, False
    if scheduler_file is not None:
        if not Path(scheduler_file).is_file():
            raise FileNotFoundError(
                f"`scheduler_file` {str(scheduler_file)!r} does not exist "
                "(written by `dask scheduler --scheduler-file PATH`)"
            )
        client, cluster = Client(scheduler_file=str(scheduler_file)), None
    elif scheduler:
        client, cluster = Client(scheduler), None
    else:
        # dashboard on a free port (":0"): a fixed port would clash with other clusters
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=":0",
            silence_logs=40,
            env=_threads.worker_env(1),
        )
        client = Client(cluster)
    client.register_plugin(_threads.dask_worker_plugin(1))
    return client, cluster, True


@contextlib.contextmanager
def dask_client(
    scheduler=None,
    *,
    scheduler_file=None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    show_dashboard: bool = True,
):
    """Context manager yielding a ``distributed.Client`` (one thread per worker task).

    Parameters
    ----------
    scheduler : None, str or distributed.Client
        None: start a local cluster of `n_workers` single-threaded processes, closed on exit.
        A string: the address of a running scheduler (``tcp://host:8786``). A client: used as is.
    scheduler_file : str or Path, optional
        The JSON file written by ``dask scheduler --scheduler-file PATH`` (or by a
        dask-jobqueue cluster), instead of an address.
    n_workers, threads_per_worker : int
        Size of the local cluster.
    show_dashboard : bool
        Print the dashboard link to stderr.

    Examples
    --------
    >>> with dask_client(n_workers=2) as client:  # doctest: +SKIP
    ...     records = run_cells(fn, cells, "store", scheduler=client)
    """
    n_workers = as_int(n_workers, "n_workers", low=1)
    threads_per_worker = as_int(threads_per_worker, "threads_per_worker", low=1)
    client, cluster, owns = _make_client(scheduler, scheduler_file, n_workers, threads_per_worker)
    if show_dashboard:
        print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
    try:
        yield client
    finally:
        if owns:
            client.close()
        if cluster is not None:
            cluster.close()


def _exists_all(paths):
    return {p: os.path.exists(p) for p in paths}


def check_worker_paths(client, paths) -> None:
    """Raise FileNotFoundError unless every worker of `client` sees every path in `paths`.

    Use it before a sweep whose cells read input files on the workers (a dataset folder): a
    worker on another host, or started in another working directory, may not see a path that
    the driver sees. Relative paths are resolved on each worker, so pass absolute ones.

    Examples
    --------
    >>> check_worker_paths(client, ["/usr/share/datasets/fashion-mnist"])  # doctest: +SKIP
    """
    paths = [str(p) for p in paths]
    seen = client.run(_exists_all, paths)
    missing = {w: [p for p, ok in r.items() if not ok] for w, r in seen.items()}
    missing = {w: m for w, m in missing.items() if m}
    if not seen:
        raise RuntimeError("the Dask cluster has no workers; start some before the sweep")
    if missing:
        lines = "; ".join(f"{w} lacks {', '.join(m)}" for w, m in sorted(missing.items()))
        raise FileNotFoundError(
            f"workers cannot see input files: {lines}. Put the data on a path every worker "
            "sees (a shared filesystem, or the same path on every host), or ship it with the "
            "cells (`shared=` of run_cells; `ship_data=True` of the experiments)"
        )


def _todo(store, unique, retry_failed):
    bad = store.check(quarantine=True)
    for name, why in bad.items():
        log.warning("cell file %s is invalid (%s): recomputing it", name, why)
    done = store.records()
    return {
        k: c
        for k, c in unique.items()
        if not (k in done and (done[k]["status"] != Status.FAILED.name or not retry_failed))
    }


def _submitter(client, fn, todo, shared, retries, threads, priority):
    """Return ``submit(n) -> list of (key, cell, future)`` that submits the next `n` cells.

    With a `priority`, cells go out highest first and only as workers free up (so the order is
    kept strictly, whatever the scheduler's queueing); without one, all at once.
    """
    run_id = uuid.uuid4().hex[:8]  # fresh Dask keys: an erred key may linger on the scheduler
    shared_f = None
    if shared is not None:
        shared_f = client.scatter(shared, broadcast=True, hash=False)
    items = list(todo.items())
    if priority is not None:
        items.sort(key=lambda kv: -int(priority(kv[1])))
    queue = iter(items)

    def submit(n):
        out = []
        for k, c in queue:
            fut = client.submit(
                _timed_call,
                fn,
                c,
                shared_f,
                threads,
                key=f"cell-{k}-{run_id}",
                pure=False,
                retries=retries,
            )
            out.append((k, c, fut))
            if len(out) >= n:
                break
        return out

    return submit


def _store_future(store, fut, c):
    if fut.status == "error":
        exc = fut.exception()
        store.put(c, None, status=Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        return
    result, elapsed, worker = fut.result()
    st = Status.OK
    if isinstance(result, dict) and "status" in result:
        st = (
            Status[result["status"]]
            if isinstance(result["status"], str)
            else Status(result["status"])
        )
    store.put(
        c,
        result,
        status=st if result is not None else Status.FAILED,
        elapsed_s=elapsed,
        worker=worker,
        error=None if result is not None else "cell returned None",
    )


def run_cells(
    fn: Callable[..., Any],
    cells: Iterable[dict],
    store,
    *,
    scheduler=None,
    scheduler_file=None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    threads_per_cell: int = 1,
    retries: int = 0,
    retry_failed: bool = True,
    progress=True,
    shared=None,
    priority=None,
) -> list:
    """Map a cell function over parameter dicts on Dask, storing each result as it finishes.

    Parameters
    ----------
    fn : callable
        ``fn(params: dict) -> result`` (or ``fn(params, shared)`` when `shared` is given);
        picklable (a module-level function, or a closure that cloudpickle sends by value),
        returning something JSON-serialisable (numpy scalars and arrays are converted). A
        ``"status"`` entry of a dict result (a :class:`cnnmft.Status` or its name) becomes the
        record's status.
    cells : iterable of dict
        One dict of parameters per cell. Its content (not its order) is the cell's identity.
    store : CellStore or str or Path
        Where finished cells go (see :class:`CellStore`).
    scheduler, scheduler_file, n_workers, threads_per_worker
        Where the cells run (see :func:`dask_client`); a client passed in is left open.
    threads_per_cell : int
        Threads of numba, BLAS and torch inside each cell (default 1: no oversubscription when
        every core runs one worker).
    retries : int
        Dask retries of a cell whose function raised (a killed worker does not count).
    retry_failed : bool
        Rerun cells stored with status ``FAILED`` (default True). Other cells are never rerun.
    progress : bool or callable
        True: a tqdm bar and the dashboard link on stderr; a callable is called as
        ``progress(n_done, n_total, record)`` after each cell; False: silent.
    shared : object, optional
        Sent once to every worker (``client.scatter(..., broadcast=True)``) and passed to every
        call as the second argument: how to ship a dataset to workers that cannot read it. It is
        not part of the cells' keys: name what it is in the parameters.
    priority : callable, optional
        ``priority(params) -> int``: higher values run first, strictly: cells are handed to the
        cluster one per free worker thread, in that order (e.g. cheap cells first, so an
        interrupted sweep has the most cells). Without it every cell is submitted at once.

    Returns
    -------
    list of dict
        The stored record of every cell, in the order of `cells`; cells with no valid record
        (the sweep was interrupted) are ``None``.

    Notes
    -----
    The driver writes the store, so workers need no shared filesystem. Files that are not valid
    records (:meth:`CellStore.check`) are renamed ``*.corrupt``, logged on the ``cnnmft.sweeps``
    logger and recomputed. Ctrl-C cancels the remaining futures and keeps what is stored.
    Duplicated cells run once.

    Examples
    --------
    >>> recs = run_cells(lambda p: {"y": p["x"] ** 2}, [{"x": 1}, {"x": 2}],
    ...                  "store")  # doctest: +SKIP
    >>> [r["result"]["y"] for r in recs]  # doctest: +SKIP
    [1, 4]
    """
    n_workers = as_int(n_workers, "n_workers", low=1)
    threads_per_worker = as_int(threads_per_worker, "threads_per_worker", low=1)
    threads_per_cell = as_int(threads_per_cell, "threads_per_cell", low=1)
    retries = as_int(retries, "retries", low=0)
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}")
    if not isinstance(store, CellStore):
        store = CellStore(store)
    cells = [dict(c) for c in cells]
    keys = [cell_key(c) for c in cells]  # validates and checks JSON-ability early
    unique = dict(zip(keys, cells))
    todo = _todo(store, unique, retry_failed)

    n_total, n_done = len(unique), len(unique) - len(todo)
    bar = None
    if progress is True:
        bar = progress_bar(n_total, initial=n_done, desc="cells", unit="cell", smoothing=0.1)
    callback = progress if callable(progress) else None
    try:
        if todo:
            _run_todo(
                fn,
                todo,
                store,
                scheduler,
                scheduler_file,
                n_workers,
                threads_per_worker,
                threads_per_cell,
                retries,
                progress,
                shared,
                priority,
                bar,
                callback,
                n_done,
                n_total,
            )
    finally:
        if bar is not None:
            bar.close()
    final = store.records()
    return [final.get(k) for k in keys]


def _run_todo(
    fn,
    todo,
    store,
    scheduler,
    scheduler_file,
    n_workers,
    threads_per_worker,
    threads_per_cell,
    retries,
    progress,
    shared,
    priority,
    bar,
    callback,
    n_done,
    n_total,
):
    from distributed import as_completed

    client, cluster, owns = _make_client(scheduler, scheduler_file, n_workers, threads_per_worker)
    if progress is True and owns:
        print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
    futures = {}
    try:
        submit = _submitter(client, fn, todo, shared, retries, threads_per_cell, priority)
        width = len(todo) if priority is None else max(1, sum(client.nthreads().values()))
        pending = as_completed()
        for k, c, fut in submit(width):
            futures[fut.key] = (k, c, fut)
            pending.add(fut)
        for fut in pending:
            k, c, _ = futures.pop(fut.key)
            _store_future(store, fut, c)
            fut.release()
            for k2, c2, f2 in submit(1):
                futures[f2.key] = (k2, c2, f2)
                pending.add(f2)
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
        if owns:
            client.close()
        if cluster is not None:
            cluster.close()
