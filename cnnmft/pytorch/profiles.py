r"""Generalisation against the spatial variance profile at the critical point (the paper's RQ4).

At the order-chaos critical point the zero Fourier mode of the correlation map is marginal for
every variance profile ``v``, but a non-zero mode ``f`` decays with its own depth scale
(docs/theory.md, section 2.4)

.. math:: \xi_{c,f} = -1/\log(\chi_{c^*} |\lambda_f|), \qquad
          \lambda_f = \sum_\beta v_\beta e^{2\pi i \langle f, \beta\rangle / n},

so a delta profile keeps all spatial information to any depth, and spreading the variance over
the kernel filters the non-zero modes out within a few layers. [1]_ report that this costs test
accuracy at depth. :func:`modewise_study` trains, at one depth and the critical point, networks
whose kernels follow the tunable family from delta (``t = 0``) to uniform-like (``t = 1/2``),
exactly orthogonal (:func:`cnnmft.pytorch.tunable_orthogonal_`) or Gaussian with the same ``v``,
and puts test accuracy and training speed next to the predicted per-mode depth scales
(:func:`cnnmft.mode_depth_scales`). Every ``(kind, t)`` of one seed trains as one ensemble.

References
----------
.. [1] L. Xiao, Y. Bahri, J. Sohl-Dickstein, S. S. Schoenholz, J. Pennington, "Dynamical Isometry
   and a Mean Field Theory of CNNs", ICML 2018, arXiv:1806.05393, Sections 2.4 and 5.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from cnnmft import plotting
from cnnmft._validation import as_float_array, as_int
from cnnmft.fourier import mode_depth_scales, variance_profile
from cnnmft.meanfield import critical_sigma_w2
from cnnmft.pytorch import experiments as E
from cnnmft.results import ResultMixin, Status

__all__ = [
    "ModewiseStudy",
    "modewise_study",
    "plot_modewise",
    "mode_scales_for_profile",
    "MODEWISE_DEFAULTS",
]

#: Fixed training settings of the mode-wise study (override with keyword arguments).
MODEWISE_DEFAULTS = {
    "dataset": "fashion-mnist",
    "channels": 8,
    "steps": 300,
    "batch_size": 16,
    "optimizer": "sgd",
    "momentum": 0.9,
    "lr": 0.01,
    "max_test": 1000,
    "eval_train": 1000,
    "stem_strides": [1, 2, 2],
}


def mode_scales_for_profile(act, sigma_w2, sigma_b2, v, spatial_shape):
    """Per-mode correlation depth scales ``xi_{c,f}`` for profile `v`, shape `spatial_shape`.

    :func:`cnnmft.mode_depth_scales` with marginal modes (``chi_c |lam_f| >= 1``, where rounding
    at the critical point can give a huge negative value) reported as ``inf``.

    Examples
    --------
    >>> sw = float(critical_sigma_w2("tanh", 0.05).sigma_w2)
    >>> xi = mode_scales_for_profile("tanh", sw, 0.05, variance_profile("delta", 3), (7, 7))
    >>> bool(np.isinf(xi).all())
    True
    """
    xi = np.asarray(
        mode_depth_scales(act, sigma_w2, sigma_b2, v, spatial_shape).xi_c, dtype=np.float64
    ).reshape(tuple(spatial_shape))
    return np.where((xi < 0) | (xi > 1e12), np.inf, xi)


@dataclass(frozen=True)
class ModewiseStudy(ResultMixin):
    """Test accuracy and training speed against the variance profile, with the theory.

    Attributes
    ----------
    act : str
    depth : int
    sigma_w2, sigma_b2 : float
        The critical point used.
    t : ndarray, shape (n_t,)
        Profile parameter: 0 delta, 1/2 uniform-like (``variance_profile("tunable", 3, t=t)``).
    kinds : ndarray of str, shape (n_k,)
        "orthogonal" and/or "gaussian".
    spatial_shape : ndarray of int, shape (2,)
        Grid of the deep block (7x7 for 28x28 images and stem strides (1, 2, 2)).
    seeds : ndarray of int, shape (n_s,)
    test_accuracy, train_accuracy, loss_auc : ndarray, shape (n_k, n_t, n_s)
        Per run (NaN where it diverged or did not run). ``loss_auc``: mean training loss over
        the recorded steps (lower = faster training).
    status : ndarray of int, shape (n_k, n_t, n_s)
        :class:`cnnmft.Status` per run.
    loss : ndarray, shape (n_k, n_t, n_points)
        Training-loss curves, mean over seeds, every ``loss_every`` steps.
    loss_every : int
    xi_slowest : ndarray, shape (n_t,)
        Predicted depth scale of the slowest-decaying non-zero mode.
    surviving_fraction : ndarray, shape (n_t,)
        Fraction of non-zero modes with ``xi_{c,f} >= depth``.
    slope_test_accuracy, slope_se : ndarray, shape (n_k,)
        Least-squares slope of test accuracy against ``t`` over all runs and its standard error:
        an effect of the profile shows as a slope many standard errors from zero.
    config : str
    """

    act: str
    depth: int
    sigma_w2: float
    sigma_b2: float
    t: np.ndarray
    kinds: np.ndarray
    spatial_shape: np.ndarray
    seeds: np.ndarray
    test_accuracy: np.ndarray
    train_accuracy: np.ndarray
    loss_auc: np.ndarray
    status: np.ndarray
    loss: np.ndarray
    loss_every: int
    xi_slowest: np.ndarray
    surviving_fraction: np.ndarray
    slope_test_accuracy: np.ndarray
    slope_se: np.ndarray
    config: str = "{}"


def _slope(t, y):
    """OLS slope of y on t over finite points, with its standard error (NaN if < 3 points)."""
    t = np.asarray(t, float).ravel()
    y = np.asarray(y, float).ravel()
    ok = np.isfinite(y)
    t, y = t[ok], y[ok]
    if t.size < 3 or np.ptp(t) == 0:
        return math.nan, math.nan
    tc = t - t.mean()
    b = float(np.sum(tc * (y - y.mean())) / np.sum(tc**2))
    resid = y - y.mean() - b * tc
    se = math.sqrt(float(np.sum(resid**2)) / (t.size - 2) / float(np.sum(tc**2)))
    return b, se


def _theory(act, sigma_w2, sigma_b2, t, depth, spatial_shape):
    xi_slowest, surviving = np.empty(len(t)), np.empty(len(t))
    for i, tt in enumerate(t):
        v = variance_profile("tunable", 3, ndim=len(spatial_shape), t=float(tt))
        xi = mode_scales_for_profile(act, sigma_w2, sigma_b2, v, spatial_shape).ravel()[1:]
        xi_slowest[i] = float(np.max(xi)) if xi.size else np.inf
        surviving[i] = float(np.mean(xi >= depth)) if xi.size else 1.0
    return xi_slowest, surviving


def _critical(act, sigma_w2, sigma_b2):
    sigma_b2 = float(as_float_array(sigma_b2, "sigma_b2", low=0.0))
    if sigma_w2 is None:
        sigma_w2 = float(np.asarray(critical_sigma_w2(act, sigma_b2).sigma_w2))
        if not math.isfinite(sigma_w2):
            raise ValueError(
                f"no critical sigma_w2 for act={act!r}, sigma_b2={sigma_b2!r}; give `sigma_w2`"
            )
    return float(as_float_array(sigma_w2, "sigma_w2", low=0.0, low_open=True)), sigma_b2


def modewise_study(
    t=(0.0, 0.05, 0.15, 0.3, 0.5),
    *,
    depth=32,
    kinds=("orthogonal", "gaussian"),
    sigma_w2=None,
    sigma_b2=0.05,
    act="tanh",
    seeds=(0, 1, 2),
    store=None,
    scheduler=None,
    scheduler_file=None,
    n_workers=1,
    progress=True,
    ship_data=False,
    cell_fn=None,
    **train_kwargs,
) -> ModewiseStudy:
    """Train at one depth at criticality with variance profiles from delta to uniform-like.

    Parameters
    ----------
    t : sequence of float in [0, 1/2]
        Profile parameters.
    depth : int, default 32
    kinds : sequence of {"orthogonal", "gaussian"}
    sigma_w2, sigma_b2 : float
        Default: ``sigma_b2 = 0.05`` and the critical ``sigma_w2`` for it.
    act : str
    seeds : sequence of int
        One ensemble task per seed (all ``(kind, t)`` members in it).
    store, scheduler, scheduler_file, n_workers, progress, ship_data, cell_fn
        As in :func:`cnnmft.pytorch.experiments.trainability_sweep`.
    **train_kwargs
        Overrides of :data:`MODEWISE_DEFAULTS`.

    Returns
    -------
    ModewiseStudy

    References
    ----------
    .. [1] Xiao et al., ICML 2018, arXiv:1806.05393, Sections 2.4 and 5.

    Examples
    --------
    >>> study = modewise_study([0.0, 0.5], depth=8, dataset="digits", stem_strides=[1, 2],
    ...                        steps=30, store="modes")  # doctest: +SKIP
    >>> study.slope_test_accuracy, study.slope_se  # doctest: +SKIP
    """
    t = np.atleast_1d(as_float_array(t, "t", low=0.0, high=0.5))
    depth = as_int(depth, "depth", low=1)
    kinds = tuple(kinds)
    for k in kinds:
        if k not in ("orthogonal", "gaussian"):
            raise ValueError(f"`kinds` entries must be 'orthogonal' or 'gaussian', got {k!r}")
    seeds = np.array([as_int(s, "seeds", low=0) for s in seeds], dtype=np.int64)
    if not seeds.size or not kinds or not t.size:
        raise ValueError("`t`, `kinds` and `seeds` must not be empty")
    sigma_w2, sigma_b2 = _critical(act, sigma_w2, sigma_b2)
    unknown = sorted(set(train_kwargs) - set(MODEWISE_DEFAULTS) - {"data_dir", "device"})
    if unknown:
        raise ValueError(
            f"unknown training settings {unknown}; allowed: "
            f"{sorted(set(MODEWISE_DEFAULTS) | {'data_dir', 'device'})}"
        )
    fixed = dict(MODEWISE_DEFAULTS, **train_kwargs)
    lr = float(fixed.pop("lr"))
    fixed.update(act=str(act), depth=depth, sigma_b2=sigma_b2)
    members = [
        {
            "sigma_w2": sigma_w2,
            "lr": lr,
            "t": float(tt),
            **(
                {"init": "tunable_orthogonal"}
                if k == "orthogonal"
                else {"init": "gaussian", "v": "tunable"}
            ),
        }
        for k in kinds
        for tt in t
    ]
    cells = [dict(fixed, seed=int(s), members=members) for s in seeds]
    records = E._run(
        cell_fn or E.ensemble_cell,
        cells,
        store,
        fixed,
        scheduler,
        scheduler_file,
        n_workers,
        progress,
        ship_data,
        None,
    )
    return _study_result(records, act, depth, sigma_w2, sigma_b2, t, kinds, seeds, fixed, lr)


def _study_result(records, act, depth, sigma_w2, sigma_b2, t, kinds, seeds, fixed, lr):
    nk, nt, ns = len(kinds), len(t), len(seeds)
    te, tr, auc = (np.full((nk, nt, ns), np.nan) for _ in range(3))
    status = np.full((nk, nt, ns), int(Status.INTERRUPTED), dtype=np.int64)
    curves, every = {}, 1
    for js, rec in enumerate(records):
        if rec is None:
            continue
        if rec["status"] != Status.OK.name:
            status[:, :, js] = int(Status.FAILED)
            continue
        every = int(rec["result"].get("loss_every", 1))
        for idx, m in enumerate(rec["result"]["members"]):
            ik, it = divmod(idx, nt)
            status[ik, it, js] = int(Status[m["status"]])
            if m["status"] != Status.OK.name:
                continue
            te[ik, it, js] = m["test_accuracy"]
            tr[ik, it, js] = m.get("train_accuracy", np.nan)
            c = np.array([np.nan if v is None else v for v in m["loss"]], dtype=float)
            auc[ik, it, js] = float(np.nanmean(c)) if np.isfinite(c).any() else np.nan
            curves[(ik, it, js)] = c
    n_pts = max((len(c) for c in curves.values()), default=0)
    loss = np.full((nk, nt, ns, n_pts), np.nan)
    for (ik, it, js), c in curves.items():
        loss[ik, it, js, : len(c)] = c
    ok = np.isfinite(loss).any(axis=2)
    loss_m = np.where(
        ok,
        np.nansum(np.nan_to_num(loss), axis=2) / np.maximum(np.isfinite(loss).sum(axis=2), 1),
        np.nan,
    )
    image = {"digits": 8, "cifar10": 32}.get(fixed["dataset"], 28)  # the others are 28x28
    for st in fixed["stem_strides"]:
        image = (image - 1) // int(st) + 1
    shape = (image, image)
    xi_slowest, surviving = _theory(act, sigma_w2, sigma_b2, t, depth, shape)
    tt = np.broadcast_to(t[None, :, None], te.shape)
    slopes = [_slope(tt[ik], te[ik]) for ik in range(nk)]
    return ModewiseStudy(
        act=str(act),
        depth=depth,
        sigma_w2=sigma_w2,
        sigma_b2=sigma_b2,
        t=t,
        kinds=np.array(kinds),
        spatial_shape=np.array(shape),
        seeds=seeds,
        test_accuracy=te,
        train_accuracy=tr,
        loss_auc=auc,
        status=status,
        loss=loss_m,
        loss_every=every,
        xi_slowest=xi_slowest,
        surviving_fraction=surviving,
        slope_test_accuracy=np.array([s[0] for s in slopes]),
        slope_se=np.array([s[1] for s in slopes]),
        config=json.dumps(dict(fixed, lr=lr), sort_keys=True),
    )


plot_modewise = plotting.modewise  # the figure lives with the others in cnnmft.plotting


def _plot_axes(result, ax=None, **kwargs):
    """:meth:`ModewiseStudy.plot`: the three panels; returns the first Axes."""
    if ax is not None:
        raise ValueError(
            "the variance-profile figure has three panels: call plot_modewise("
            "study, axes=[ax0, ax1, ax2]) to draw it on given Axes"
        )
    return plot_modewise(result, **kwargs).axes[0]


plotting.register("ModewiseStudy", _plot_axes)
