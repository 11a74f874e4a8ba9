"""The result of a training run (:class:`TrainResult`) and the files a run writes.

CSV logs, ``config.json``, ``result.json`` and the figure with its numbers.

Split from :mod:`cnnmft.pytorch.train` (which calls :func:`write_outputs` at the end of a run).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnmft import plotting
from cnnmft._util import atomic_write, atomic_write_text
from cnnmft.results import ResultMixin, Status

__all__ = ["TrainResult", "plot_training", "write_outputs"]


@dataclass(frozen=True, eq=False)
class TrainResult(ResultMixin):
    """Outcome of :func:`train`.

    Attributes
    ----------
    config : str
        The :class:`TrainConfig` as JSON (``lr`` resolved).
    dataset : str
        What the data is ("fashion-mnist", "digits", "mnist", "cifar10", ...).
    sigma_w2, sigma_b2 : float
        Variances actually used (the critical point when the config left them None).
    loss : ndarray, shape (n_steps,)
        Training loss at each completed step (finite values only).
    lr : ndarray, shape (n_steps,)
        Learning rate used at each step.
    grad_norm_layers : ndarray of int, shape (k,)
        1-based deep-block layers whose gradient norm is logged.
    grad_norms : ndarray, shape (n_steps, k)
        Kernel-gradient norms of those layers at each step (NaN when the block is frozen).
    init_grad_norms : ndarray, shape (depth,)
        Kernel-gradient norm of every deep layer at the first step (at initialisation).
    weight_movement : ndarray, shape (depth,)
        ``||W_l(end) - W_l(0)||_F / ||W_l(0)||_F`` for every deep layer l.
    eval_step : ndarray of int, shape (n_eval,)
        Steps at which accuracies were measured (0 = before training).
    train_acc, test_acc, test_loss : ndarray, shape (n_eval,)
        Accuracies (in [0, 1]) and test loss at those steps.
    train_accuracy, test_accuracy : float
        Final accuracies (last evaluation).
    n_test : int
        Test examples behind `test_accuracy`.
    final_loss : float
        Last finite training loss (NaN if no step ran).
    steps_done : int
        Completed optimisation steps.
    status : int
        :class:`~cnnmft.results.Status`: OK, NONFINITE (the loss diverged), AT_CHANCE (the final
        test accuracy is within three standard errors of chance) or INTERRUPTED.
    message : str
        Human-readable summary (why the run stopped).
    wall_time : float
        Seconds spent in this call (excluding earlier runs that were resumed).
    step_time : float
        Median seconds per optimisation step in this call.
    n_params : int
        Trainable parameters.
    """

    config: str
    dataset: str
    sigma_w2: float
    sigma_b2: float
    loss: np.ndarray
    lr: np.ndarray
    grad_norm_layers: np.ndarray
    grad_norms: np.ndarray
    init_grad_norms: np.ndarray
    weight_movement: np.ndarray
    eval_step: np.ndarray
    train_acc: np.ndarray
    test_acc: np.ndarray
    test_loss: np.ndarray
    train_accuracy: float
    test_accuracy: float
    n_test: int
    final_loss: float
    steps_done: int
    status: int
    message: str
    wall_time: float
    step_time: float
    n_params: int

    @property
    def success(self) -> bool:
        """True if the run finished and learned (status OK)."""
        return int(self.status) == int(Status.OK)

    @property
    def settings(self) -> dict:
        """The config as a dict."""
        return json.loads(self.config)


def _write_csv(path, header, rows):
    with atomic_write(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def write_outputs(res, out: Path, plots=True):
    """Write ``steps.csv``, ``eval.csv``, ``config.json``, ``result.json`` and the figure."""
    layers = [int(i) for i in res.grad_norm_layers]
    rows = [
        [i + 1, repr(float(res.loss[i])), repr(float(res.lr[i]))]
        + [repr(float(g)) for g in res.grad_norms[i]]
        for i in range(len(res.loss))
    ]
    _write_csv(
        out / "steps.csv", ["step", "loss", "lr"] + [f"grad_norm_layer_{i}" for i in layers], rows
    )
    _write_csv(
        out / "eval.csv",
        ["step", "train_acc", "test_acc", "test_loss"],
        [
            [int(s), repr(float(a)), repr(float(b)), repr(float(c))]
            for s, a, b, c in zip(res.eval_step, res.train_acc, res.test_acc, res.test_loss)
        ],
    )
    atomic_write_text(out / "config.json", json.dumps(res.settings, indent=1))
    res.save(out / "result.json")
    if plots:
        plot_training([res], path=out / "training.png")


def plot_training(results, labels=None, path=None, title=None):
    """Figure of training loss, test accuracy and gradient norm per layer at initialisation.

    Parameters
    ----------
    results : list of TrainResult
    labels : list of str, optional
        Legend labels (default: depth and init from each config).
    path : str or Path, optional
        Save the figure here (PNG) and close it.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure or Path
        The figure, or the path when `path` is given (its numbers go beside it, ``.npz``).
    """
    from matplotlib.figure import Figure

    fig = plotting.training(results, labels, title, fig=Figure(figsize=(14, 3.8)))
    if path is not None:
        np.savez(Path(path).with_suffix(".npz"), **_curves(results))
        fig.savefig(path, dpi=110)
        return Path(path)
    return fig


def _curves(results):
    out = {}
    for i, r in enumerate(results):
        out[f"run{i}_loss"] = r.loss
        out[f"run{i}_eval_step"] = r.eval_step
        out[f"run{i}_test_acc"] = r.test_acc
        out[f"run{i}_train_acc"] = r.train_acc
        out[f"run{i}_init_grad_norms"] = r.init_grad_norms
    return out
