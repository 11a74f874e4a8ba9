"""Theory against training: trainable depth over ``(sigma_w2, depth)`` and the variance profile.

Two experiments of [1]_ (docs/theory.md, sections 5.2 and 5.3), both trained as ensembles
(:mod:`cnnmft.pytorch.ensemble`: every network of one depth in one grouped computation) on the
resumable Dask engine :mod:`cnnmft.sweeps`:

* :func:`trainability_sweep` (Figure 2): vanilla tanh CNNs with Gaussian kernels over a grid of
  ``sigma_w2`` and depths, several seeds and a small learning-rate grid; a network is *trained*
  when its test accuracy beats chance by ``k_se`` standard errors. The result compares the
  mean-field rule ``depth <= 6 xi_c`` with the best depth-only and sigma_w2-only rules on the
  same cells and fits the factor ``k`` of ``k xi_c`` per seed.
* :func:`modewise_study` (in :mod:`cnnmft.pytorch.profiles`) trains at the critical point with
  kernels whose spatial variance profile runs from delta to uniform-like.

References
----------
.. [1] L. Xiao, Y. Bahri, J. Sohl-Dickstein, S. S. Schoenholz, J. Pennington, "Dynamical Isometry
   and a Mean Field Theory of CNNs", ICML 2018, arXiv:1806.05393.
.. [2] S. S. Schoenholz, J. Gilmer, S. Ganguli, J. Sohl-Dickstein, "Deep Information Propagation",
   ICLR 2017, arXiv:1611.01232 (the ``6 xi_c`` rule).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import torch

from cnnmft import plotting, sweeps
from cnnmft._validation import as_float_array, as_int
from cnnmft.meanfield import critical_sigma_w2, trainable_depth
from cnnmft.pytorch import data as _data
from cnnmft.pytorch.ensemble import train_ensemble
from cnnmft.pytorch.models import VanillaCNN
from cnnmft.results import ResultMixin, Status

__all__ = [
    "TrainabilitySweep",
    "trainability_sweep",
    "ensemble_cell",
    "plot_trainability",
    "TRAINABILITY_DEFAULTS",
    "DEFAULT_SIGMA_W2",
    "DEFAULT_DEPTHS",
    "DEFAULT_LRS",
    "GPU_PROFILE",
    "chance_threshold",
    "load_cell_data",
]

#: Fixed training settings of every trainability cell (override with keyword arguments).
TRAINABILITY_DEFAULTS = {
    "dataset": "fashion-mnist",
    "channels": 8,
    "steps": 150,
    "batch_size": 16,
    "optimizer": "sgd",
    "momentum": 0.9,
    "max_test": 500,
    "stem_strides": [1, 2, 2],
    "init": "gaussian",
}

#: Default grid: both phases, 6 xi_c from 14 (ordered) through infinity to 42 (chaotic) at
#: sigma_b2 = 0.05, depths 4..512.
DEFAULT_SIGMA_W2 = (0.8, 1.3, 1.76, 2.1, 2.8, 4.0)
DEFAULT_DEPTHS = (4, 8, 16, 32, 64, 128, 256, 512)
DEFAULT_LRS = (0.01, 0.04)
DEFAULT_SEEDS = (0, 1)

#: The same sweep sized for one large GPU (H100/H200), estimated (not measured) at about 8 min:
#: ~2.7 TFLOP of grouped convolutions per step for 20 members x 2,044 layers at 16 channels and
#: batch 32, plus ~70 us of kernel launches per layer and step, for 500 steps.
GPU_PROFILE = {
    "sigma_w2": (0.6, 0.9, 1.2, 1.5, 1.65, 1.76, 1.9, 2.2, 2.8, 4.0),
    "depth": (4, 8, 16, 32, 64, 128, 256, 512, 1024),
    "lrs": (0.01, 0.04),
    "seeds": (0, 1, 2),
    "train": {"channels": 16, "steps": 500, "batch_size": 32, "max_test": 10000, "device": "cuda"},
}


def chance_threshold(num_classes: int, n_test: int, k_se: float) -> float:
    r"""Test accuracy above which a classifier beats chance by `k_se` standard errors.

    .. math:: a_{\min} = p_0 + k\sqrt{p_0 (1 - p_0) / n},\qquad p_0 = 1/\text{classes}

    (the binomial standard error of the accuracy of a chance-level classifier on `n_test`
    images).

    Examples
    --------
    >>> round(chance_threshold(10, 1000, 5), 4)
    0.1474
    """
    p0 = 1.0 / as_int(num_classes, "num_classes", low=2)
    n = as_int(n_test, "n_test", low=1)
    k = float(as_float_array(k_se, "k_se", low=0.0))
    return p0 + k * math.sqrt(p0 * (1 - p0) / n)


_DATA_CACHE: dict = {}


def load_cell_data(params: dict):
    """``(x_train, y_train, x_test, y_test)`` torch tensors of the dataset a cell names.

    Kept in a per-process cache (one entry per dataset and subset sizes), so a worker that runs
    many cells reads the files once.

    Examples
    --------
    >>> x_tr, y_tr, x_te, y_te = load_cell_data({"dataset": "digits"})  # doctest: +SKIP
    >>> tuple(x_tr.shape[1:])  # doctest: +SKIP
    (1, 8, 8)
    """
    key = tuple(str(params.get(k)) for k in ("dataset", "data_dir", "max_test", "max_train"))
    if key in _DATA_CACHE:
        return _DATA_CACHE[key]
    data = _data.load_dataset(
        params["dataset"],
        params.get("data_dir"),
        max_test=params.get("max_test"),
        max_train=params.get("max_train"),
    )
    out = tuple(
        torch.from_numpy(np.ascontiguousarray(a))
        for a in (data.x_train, data.y_train, data.x_test, data.y_test)
    )
    _DATA_CACHE.clear()
    _DATA_CACHE[key] = out
    return out


def _build_members(params, x_train):
    """The initial VanillaCNN of every member of an ensemble cell (same seed for all)."""
    nets = []
    for m in params["members"]:
        gen = torch.Generator().manual_seed(int(params["seed"]))
        nets.append(
            VanillaCNN(
                int(params["depth"]),
                int(params["channels"]),
                in_channels=int(x_train.shape[1]),
                init=m.get("init", params.get("init", "gaussian")),
                sigma_w2=float(m["sigma_w2"]),
                sigma_b2=float(params["sigma_b2"]),
                v=m.get("v", "uniform"),
                t=m.get("t"),
                act=params["act"],
                stem_strides=tuple(params["stem_strides"]),
                impl="autograd",
                checkpoint_segments=None,
                generator=gen,
            )
        )
    return nets


def _eval_sets(params, x_tr, y_tr, x_te, y_te):
    sets = {"test": (x_te, y_te)}
    n = int(params.get("eval_train") or 0)
    if n:
        sets["train"] = (x_tr[:n], y_tr[:n])
    return sets


def ensemble_cell(params: dict, shared=None) -> dict:
    """Train every member of one ensemble cell; the cell function of both experiments.

    `params` has ``depth``, ``seed``, ``sigma_b2``, ``act``, ``channels``, ``steps``,
    ``batch_size``, ``momentum``, ``optimizer``, ``dataset`` (+ ``data_dir``, ``max_test``),
    ``stem_strides`` (+ ``eval_train``: also evaluate on that many training images) and
    ``members``: a list of dicts with ``sigma_w2`` and ``lr`` (and
    optionally ``init``, ``v``, ``t``). `shared`, when given, is the data tuple of
    :func:`load_cell_data` shipped by the driver. Returns ``{"members": [...], "status",
    "seconds_per_step", "loss_every"}`` with per member ``test_accuracy``, ``final_loss`` (mean
    training loss over the last tenth of the steps), ``loss`` (every ``loss_every``-th step),
    ``status``, ``stopped_at`` (and ``train_accuracy`` with ``eval_train``).

    Examples
    --------
    >>> out = ensemble_cell(dict(TRAINABILITY_DEFAULTS, dataset="digits", stem_strides=[1, 2],
    ...                          depth=2, steps=5, act="tanh", sigma_b2=0.05, seed=0,
    ...                          members=[{"sigma_w2": 1.76, "lr": 0.02}]))  # doctest: +SKIP
    >>> out["members"][0]["status"]  # doctest: +SKIP
    'OK'
    """
    x_tr, y_tr, x_te, y_te = shared if shared is not None else load_cell_data(params)
    nets = _build_members(params, x_tr)
    steps = int(params["steps"])
    device = torch.device(params.get("device", "cpu"))
    if device.type != "cpu":
        nets = [n.to(device) for n in nets]
        x_tr, y_tr, x_te, y_te = (a.to(device) for a in (x_tr, y_tr, x_te, y_te))
    out = train_ensemble(
        nets,
        x_tr,
        y_tr,
        lr=[m["lr"] for m in params["members"]],
        steps=steps,
        batch_size=int(params["batch_size"]),
        momentum=float(params["momentum"]),
        optimizer=params["optimizer"],
        seeds=[int(params["seed"])] * len(nets),
        eval_sets=_eval_sets(params, x_tr, y_tr, x_te, y_te),
    )
    every = max(1, steps // 50)
    train_acc = out.get("train_accuracy")
    tail = out["loss"][-max(1, steps // 10) :]
    members = []
    for g, m in enumerate(params["members"]):
        ok = out["status"][g] == Status.OK
        members.append(
            {
                **m,
                "test_accuracy": float(out["test_accuracy"][g]) if ok else None,
                "final_loss": float(np.mean(tail[:, g])) if ok else None,
                "loss": [None if not np.isfinite(v) else float(v) for v in out["loss"][::every, g]],
                "status": out["status"][g].name,
                "stopped_at": int(out["stopped_at"][g]),
                **(
                    {}
                    if train_acc is None
                    else {"train_accuracy": float(train_acc[g]) if ok else None}
                ),
            }
        )
    return {
        "members": members,
        "status": "OK",
        "seconds_per_step": out["seconds_per_step"],
        "loss_every": every,
        "n_test": int(len(y_te)),
    }


@dataclass(frozen=True)
class TrainabilitySweep(ResultMixin):
    """Trained cells over ``(seed, depth, sigma_w2)`` against ``depth <= factor * xi_c``.

    Attributes
    ----------
    act : str
    sigma_w2 : ndarray, shape (n_w,)
    depth : ndarray of int, shape (n_d,)
    sigma_b2 : float
    lrs : ndarray, shape (n_lr,)
    seeds : ndarray of int, shape (n_s,)
    test_accuracy, final_loss : ndarray, shape (n_s, n_lr, n_d, n_w)
        Per run (NaN where the run diverged or did not run; see `status`).
    status : ndarray of int, shape (n_s, n_lr, n_d, n_w)
        :class:`cnnmft.Status` per run: OK, NONFINITE (the loss diverged; counts as not
        trained), INTERRUPTED (no record: the sweep stopped first) or FAILED (the cell raised).
    best_lr : ndarray, shape (n_s, n_d, n_w)
        Learning rate with the lowest final training loss (chosen without the test set).
    best_accuracy : ndarray, shape (n_s, n_d, n_w)
        Test accuracy at `best_lr` (NaN for cells with no finished run).
    threshold : float
        "Trained" means ``best_accuracy > threshold`` (:func:`chance_threshold`).
    k_se : float
        Standard errors above chance in `threshold`.
    trained : ndarray of bool, shape (n_s, n_d, n_w)
    valid : ndarray of bool, shape (n_s, n_d, n_w)
        Cells with a finished (OK or NONFINITE) run at every learning rate; only those count.
    predicted_depth : ndarray, shape (n_w,)
        ``factor * xi_c(sigma_w2)`` (inf at criticality).
    factor : float
    agreement : float
        Fraction of valid cells where ``trained == (depth <= predicted_depth)``.
    agreement_depth_rule, best_depth : float, float
        Best rule "depth <= D trains" (D over the grid depths, 0 and inf) and its agreement.
    agreement_sigma_rule : float
        Best rule that looks at sigma_w2 only (per-column majority: an upper bound on any such
        rule).
    k_fit, k_fit_per_seed : float, ndarray (n_s,)
        Factor ``k`` whose rule ``depth <= k xi_c`` agrees best (exact optimum, see
        :func:`fit_k`), over all seeds and per seed (the spread of the fit).
    agreement_k_fit : float
    config : str
        JSON of the fixed training settings.
    seconds : float
        Wall time of this call.
    """

    act: str
    sigma_w2: np.ndarray
    depth: np.ndarray
    sigma_b2: float
    lrs: np.ndarray
    seeds: np.ndarray
    test_accuracy: np.ndarray
    final_loss: np.ndarray
    status: np.ndarray
    best_lr: np.ndarray
    best_accuracy: np.ndarray
    threshold: float
    k_se: float
    trained: np.ndarray
    valid: np.ndarray
    predicted_depth: np.ndarray
    factor: float
    agreement: float
    agreement_depth_rule: float
    best_depth: float
    agreement_sigma_rule: float
    k_fit: float
    k_fit_per_seed: np.ndarray
    agreement_k_fit: float
    config: str = "{}"
    seconds: float = 0.0

    def summary(self) -> str:
        """One paragraph: definition of trained and the three rules' agreements."""
        n = int(self.valid.sum())
        return (
            f"{self.act} CNN, sigma_b2={self.sigma_b2:g}, {len(self.depth)} depths x "
            f"{len(self.sigma_w2)} sigma_w2 x {len(self.seeds)} seeds ({n} cells with "
            f"results): 'trained' = test accuracy at the best of {len(self.lrs)} learning "
            f"rates > {self.threshold:.4f} (chance + {self.k_se:g} s.e.); agreement of "
            f"depth <= {self.factor:g} xi_c: {self.agreement:.3f}; best depth-only rule "
            f"(depth <= {self.best_depth:g}): {self.agreement_depth_rule:.3f}; best "
            f"sigma_w2-only rule: {self.agreement_sigma_rule:.3f}; fitted k = "
            f"{self.k_fit:.3g} (per seed {', '.join(f'{k:.3g}' for k in self.k_fit_per_seed)})"
            f", agreement {self.agreement_k_fit:.3f}"
        )


def _predicted_depth(act, sigma_w2, sigma_b2, factor):
    return np.asarray(trainable_depth(act, sigma_w2, sigma_b2, factor=factor), dtype=np.float64)


def _agree(trained, predicted, valid):
    return float(np.mean(trained[valid] == predicted[valid])) if valid.any() else math.nan


def fit_k(trained, valid, depth, xi_c):
    """``(k, agreement)``: the factor of ``depth <= k xi_c`` that agrees best with `trained`.

    `trained` and `valid` are ``(..., n_d, n_w)``. The agreement is piecewise constant in ``k``
    and changes only where ``k = depth_i / xi_c_j``, so every such breakpoint is tried (exact
    optimum, no grid). Returned ``k`` is the geometric middle of the first best interval
    ``[k_a, k_b)`` (``1.5 k_a`` when the interval is unbounded).
    """
    d = np.asarray(depth, float)[:, None]
    xi = np.asarray(xi_c, float)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        cand = (d / xi).ravel()
    cand = np.unique(cand[np.isfinite(cand) & (cand > 0)])
    if not valid.any():
        return math.nan, math.nan
    cand = np.concatenate([cand[:1] / 2 if cand.size else [1.0], cand])
    scores = np.array(
        [_agree(trained, np.broadcast_to(d <= k * xi, trained.shape), valid) for k in cand]
    )
    i = int(np.argmax(scores))
    k = math.sqrt(cand[i] * cand[i + 1]) if i + 1 < cand.size else 1.5 * cand[i]
    return float(k), float(scores[i])


def _rules(trained, valid, depth):
    """Best depth-threshold rule (agreement, D) and best sigma-only rule (column majority)."""
    d = np.asarray(depth, float)
    best, best_d = -1.0, math.nan
    for D in np.concatenate([[0.0], d, [np.inf]]):
        a = _agree(trained, np.broadcast_to(d[:, None] <= D, trained.shape), valid)
        if a > best + 1e-12:
            best, best_d = a, float(D)
    n = valid.sum()
    t_col = (trained & valid).sum(axis=tuple(range(trained.ndim - 1)))
    v_col = valid.sum(axis=tuple(range(valid.ndim - 1)))
    sigma = float(np.maximum(t_col, v_col - t_col).sum() / n) if n else math.nan
    return best, best_d, sigma


def _assemble(records, cells, seeds, lrs, depth, sigma_w2):
    """Fill the (n_s, n_lr, n_d, n_w) arrays from the stored records of the ensemble cells."""
    shape = (len(seeds), len(lrs), len(depth), len(sigma_w2))
    acc, loss = np.full(shape, np.nan), np.full(shape, np.nan)
    status = np.full(shape, int(Status.INTERRUPTED), dtype=np.int64)
    si = {int(s): i for i, s in enumerate(seeds)}
    di = {int(d): i for i, d in enumerate(depth)}
    wi = {float(w): i for i, w in enumerate(sigma_w2)}
    li = {float(r): i for i, r in enumerate(lrs)}
    n_test = None
    for rec, cell in zip(records, cells):
        i, j = si[int(cell["seed"])], di[int(cell["depth"])]
        if rec is None:
            continue
        if rec["status"] != Status.OK.name:
            for m in cell["members"]:
                status[i, li[float(m["lr"])], j, wi[float(m["sigma_w2"])]] = int(Status.FAILED)
            continue
        n_test = rec["result"].get("n_test", n_test)
        for m in rec["result"]["members"]:
            idx = (i, li[float(m["lr"])], j, wi[float(m["sigma_w2"])])
            status[idx] = int(Status[m["status"]])
            if m["status"] == Status.OK.name:
                acc[idx], loss[idx] = m["test_accuracy"], m["final_loss"]
    return acc, loss, status, n_test


def _select_lr(acc, loss, status, lrs):
    """Best learning rate per (seed, depth, sigma_w2) by final training loss."""
    finished = np.isin(status, (int(Status.OK), int(Status.NONFINITE)))
    valid = finished.all(axis=1)
    key = np.where(np.isfinite(loss), loss, np.inf)
    pick = np.argmin(key, axis=1)
    best_acc = np.take_along_axis(acc, pick[:, None], axis=1)[:, 0]
    best_lr = np.asarray(lrs, float)[pick]
    none_ok = ~np.isfinite(key).any(axis=1)
    best_acc = np.where(none_ok, np.nan, best_acc)  # every lr diverged: not trained
    best_lr = np.where(none_ok, np.nan, best_lr)
    return best_acc, best_lr, valid


def trainability_sweep(
    sigma_w2=None,
    depth=None,
    *,
    sigma_b2=0.05,
    act="tanh",
    lrs=None,
    seeds=None,
    store=None,
    k_se=5.0,
    factor=6.0,
    scheduler=None,
    scheduler_file=None,
    n_workers=1,
    progress=True,
    ship_data=False,
    cell_fn=None,
    compute=True,
    **train_kwargs,
) -> TrainabilitySweep:
    r"""Train Gaussian-initialised CNNs over ``(sigma_w2, depth)``; judge ``depth <= 6 xi_c``.

    The paper's Figure 2 ([1]_; docs/theory.md, section 5.2): a vanilla CNN trains when signals
    propagate through it, i.e. for depths up to a few correlation depth scales,

    .. math:: L \le 6\,\xi_c(\sigma_w^2, \sigma_b^2), \qquad \xi_c = -1/\log\chi_{c^*}.

    One Dask task trains every ``(sigma_w2, lr)`` of one ``(depth, seed)`` as an ensemble
    (:func:`ensemble_cell`); tasks run cheapest first and are stored as they finish, so an
    interrupted sweep resumes and a partial one still gives a result (missing runs carry
    ``Status.INTERRUPTED`` and are left out of every agreement).

    Parameters
    ----------
    sigma_w2 : array_like, shape (n_w,), optional
        Default :data:`DEFAULT_SIGMA_W2` (both phases; 6 xi_c from 14 to 42 at the ends).
    depth : array_like of int, shape (n_d,), optional
        Default :data:`DEFAULT_DEPTHS` ``(4, ..., 512)``.
    sigma_b2 : float, default 0.05
    act : str, default "tanh"
    lrs : sequence of float, optional
        Learning-rate grid (default :data:`DEFAULT_LRS`); per cell the rate with the lowest final
        training loss is kept (the test set plays no part in the choice).
    seeds : sequence of int, optional
        Default ``(0, 1)``; seed of the initial weights and of the data order.
    store : str or Path or CellStore, optional
        Where finished tasks are kept (default: a temporary folder: nothing is resumable).
    k_se : float, default 5
        A cell is trained when its test accuracy exceeds chance by `k_se` binomial standard
        errors on the test set (:func:`chance_threshold`).
    factor : float, default 6
    scheduler, scheduler_file, n_workers
        See :func:`cnnmft.sweeps.dask_client`.
    progress : bool or callable
    ship_data : bool
        Load the data on the driver and send it to the workers (for workers that cannot read
        the dataset's files); otherwise workers read it and the files are checked up front.
    cell_fn : callable, optional
        Replaces :func:`ensemble_cell` (tests).
    compute : bool
        False: start nothing, build the result from what `store` holds (a running or interrupted
        sweep); missing runs are ``INTERRUPTED``.
    **train_kwargs
        Overrides of :data:`TRAINABILITY_DEFAULTS` (``dataset``, ``data_dir``, ``steps``,
        ``channels``, ``batch_size``, ``max_test``, ``device``, ...).

    Returns
    -------
    TrainabilitySweep

    References
    ----------
    .. [1] Xiao et al., ICML 2018, arXiv:1806.05393, Figure 2.
    .. [2] Schoenholz et al., ICLR 2017, arXiv:1611.01232.

    Examples
    --------
    >>> sweep = trainability_sweep([0.8, 1.76, 4.0], [2, 16], dataset="digits",
    ...                            stem_strides=[1, 2], steps=30, store="cells")  # doctest: +SKIP
    >>> print(sweep.summary())  # doctest: +SKIP
    """
    # over 80 lines with its numpydoc docstring; the body (argument checks, cells, run) is ~40
    sigma_w2 = np.atleast_1d(
        as_float_array(
            DEFAULT_SIGMA_W2 if sigma_w2 is None else sigma_w2, "sigma_w2", low=0.0, low_open=True
        )
    )
    depth = np.array(
        [
            as_int(d, "depth", low=1)
            for d in np.atleast_1d(DEFAULT_DEPTHS if depth is None else depth)
        ],
        dtype=np.int64,
    )
    lrs = np.atleast_1d(
        as_float_array(DEFAULT_LRS if lrs is None else lrs, "lrs", low=0.0, low_open=True)
    )
    seeds = np.array(
        [as_int(s, "seeds", low=0) for s in (DEFAULT_SEEDS if seeds is None else seeds)],
        dtype=np.int64,
    )
    for name, arr in (("sigma_w2", sigma_w2), ("depth", depth), ("lrs", lrs), ("seeds", seeds)):
        if arr.ndim != 1 or arr.size == 0 or len(np.unique(arr)) != arr.size:
            raise ValueError(
                f"`{name}` must be a non-empty 1-D list of distinct values, got {arr.tolist()}"
            )
    sigma_b2 = float(as_float_array(sigma_b2, "sigma_b2", low=0.0))
    k_se = float(as_float_array(k_se, "k_se", low=0.0))
    factor = float(as_float_array(factor, "factor", low=0.0, low_open=True))
    unknown = sorted(
        set(train_kwargs) - set(TRAINABILITY_DEFAULTS) - {"data_dir", "max_train", "device"}
    )
    if unknown:
        allowed = sorted(set(TRAINABILITY_DEFAULTS) | {"data_dir", "max_train", "device"})
        raise ValueError(f"unknown training settings {unknown}; allowed: {allowed}")
    fixed = dict(TRAINABILITY_DEFAULTS, **train_kwargs, act=str(act), sigma_b2=sigma_b2)
    members = [{"sigma_w2": float(w), "lr": float(r)} for w in sigma_w2 for r in lrs]
    cells = [dict(fixed, depth=int(d), seed=int(s), members=members) for s in seeds for d in depth]
    t0 = time.perf_counter()
    if compute:
        records = _run(
            cell_fn or ensemble_cell,
            cells,
            store,
            fixed,
            scheduler,
            scheduler_file,
            n_workers,
            progress,
            ship_data,
            lambda c: -int(c["depth"]),
        )
    else:
        if store is None:
            raise ValueError("`compute=False` needs the `store` of a sweep")
        done = (store if isinstance(store, sweeps.CellStore) else sweeps.CellStore(store)).records()
        records = [done.get(sweeps.cell_key(c)) for c in cells]
    return _sweep_result(
        records,
        cells,
        act,
        sigma_w2,
        depth,
        sigma_b2,
        lrs,
        seeds,
        k_se,
        factor,
        fixed,
        time.perf_counter() - t0,
    )


def _run(
    fn, cells, store, fixed, scheduler, scheduler_file, n_workers, progress, ship_data, priority
):
    """Run the cells on Dask, shipping the data or checking the workers can read it."""
    tmp = None
    if store is None:
        tmp = tempfile.TemporaryDirectory(prefix="cnnmft-sweep-")
        store = tmp.name
    try:
        shared = load_cell_data(fixed) if ship_data else None
        with sweeps.dask_client(
            scheduler,
            scheduler_file=scheduler_file,
            n_workers=n_workers,
            show_dashboard=progress is True,
        ) as client:
            if not ship_data and fixed.get("dataset") in ("fashion-mnist", "mnist", "cifar10"):
                sweeps.check_worker_paths(client, [_data_dir(fixed)])
            return sweeps.run_cells(
                fn,
                cells,
                store,
                scheduler=client,
                progress=progress,
                shared=shared,
                priority=priority,
            )
    finally:
        if tmp is not None:
            tmp.cleanup()


def _data_dir(fixed):
    if fixed.get("data_dir"):
        return str(fixed["data_dir"])
    if fixed["dataset"] != "fashion-mnist":
        raise ValueError(f"dataset {fixed['dataset']!r} needs `data_dir`")
    return _data.FASHION_MNIST_DIRS[0]


def _sweep_result(
    records, cells, act, sigma_w2, depth, sigma_b2, lrs, seeds, k_se, factor, fixed, seconds
):
    acc, loss, status, n_test = _assemble(records, cells, seeds, lrs, depth, sigma_w2)
    n_test = int(n_test or fixed.get("max_test") or 1000)
    threshold = chance_threshold(10, n_test, k_se)
    best_acc, best_lr, valid = _select_lr(acc, loss, status, lrs)
    trained = np.where(np.isfinite(best_acc), best_acc, -np.inf) > threshold
    pred_depth = _predicted_depth(act, sigma_w2, sigma_b2, factor)
    xi_c = pred_depth / factor
    predicted = np.broadcast_to(depth[:, None] <= pred_depth[None, :], trained.shape)
    a_depth, best_d, a_sigma = _rules(trained, valid, depth)
    k_all, a_k = fit_k(trained, valid, depth, xi_c)
    k_seed = np.array([fit_k(trained[i], valid[i], depth, xi_c)[0] for i in range(len(seeds))])
    return TrainabilitySweep(
        act=str(act),
        sigma_w2=sigma_w2,
        depth=depth,
        sigma_b2=sigma_b2,
        lrs=lrs,
        seeds=seeds,
        test_accuracy=acc,
        final_loss=loss,
        status=status,
        best_lr=best_lr,
        best_accuracy=best_acc,
        threshold=threshold,
        k_se=k_se,
        trained=trained,
        valid=valid,
        predicted_depth=pred_depth,
        factor=factor,
        agreement=_agree(trained, predicted, valid),
        agreement_depth_rule=a_depth,
        best_depth=best_d,
        agreement_sigma_rule=a_sigma,
        k_fit=k_all,
        k_fit_per_seed=k_seed,
        agreement_k_fit=a_k,
        config=json.dumps({k: v for k, v in fixed.items()}, sort_keys=True),
        seconds=seconds,
    )


def plot_trainability(sweep: TrainabilitySweep, *, ax=None, n_curve=400):
    """Heat map of the fraction of seeds trained over ``(sigma_w2, depth)`` with the theory.

    Drawn: the fraction of seeds whose best run beat chance (colour; grey where no result),
    ``factor * xi_c`` and the fitted ``k xi_c`` curves, and the critical ``sigma_w2``. Returns the
    Figure, drawn by :func:`cnnmft.plotting.trainability` with the mean-field curve evaluated at
    `n_curve` points.

    Examples
    --------
    >>> fig = plot_trainability(TrainabilitySweep.load("trainability_sweep.npz"))  # doctest: +SKIP
    """
    sw_c = float(np.asarray(critical_sigma_w2(sweep.act, sweep.sigma_b2).sigma_w2))
    return plotting.trainability(
        sweep,
        ax=ax,
        curve=lambda xs: _predicted_depth(sweep.act, xs, sweep.sigma_b2, sweep.factor),
        critical_sigma_w2=sw_c,
        n_curve=n_curve,
    )


def _plot_axes(result, ax=None, **kwargs):
    """:meth:`TrainabilitySweep.plot`: the heat map on `ax`; returns the Axes."""
    fig = plot_trainability(result, ax=ax, **kwargs)
    return ax if ax is not None else fig.axes[0]


plotting.register("TrainabilitySweep", _plot_axes)
