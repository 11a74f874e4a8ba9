"""``cnnmft trainability``: theory against training, on a Dask cluster.

Two studies (docs/theory.md, sections 5.2-5.3), trained as ensembles (one grouped computation
per depth and seed):

* ``phase`` (default): every ``(depth, sigma_w2, learning rate, seed)`` at fixed ``sigma_b2``;
  heat map of the trained cells with ``6 xi_c``, and its agreement next to the best depth-only
  and sigma_w2-only rules.
* ``modes``: fixed depth at criticality, kernels with spatial variance profiles from delta to
  binomial (orthogonal and Gaussian); training speed and test accuracy against predicted per-mode
  depth scales.

Finished cells are stored under ``--store`` as they complete; rerunning skips them.

Every setting is a field of :class:`TrainabilitySettings` and gets its flag (``--field-name``),
its default and its help from there, as ``cnnmft train`` does from ``TrainConfig``; the
defaults are the library's (the signatures of ``trainability_sweep`` and ``modewise_study``, the
default grids and each study's fixed training settings), read from its source so that ``--help``
imports neither torch nor dask. ``--config FILE`` (TOML or JSON) sets any of them, the flags
typed win, and the settings the study used are saved as ``OUT/resolved_config.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnmft.commands import _config as cfg
from cnnmft.commands._common import (
    Output,
    add_common,
    check_range,
    need_memory,
    workers_ignore_sigint,
)

# The library's defaults, read from its source (importing it would import torch for --help):
# the sweep's signature and grids, the modes study's signature, and the fixed training settings
# of each study. Every setting below takes its default from here unless it is the command's own.
_PYTORCH = Path(__file__).resolve().parents[1] / "pytorch"
EXPERIMENTS, PROFILES = _PYTORCH / "experiments.py", _PYTORCH / "profiles.py"
_SWEEP = cfg.signature_defaults(EXPERIMENTS, "trainability_sweep")
_MODES = cfg.signature_defaults(PROFILES, "modewise_study")
_GRID = {
    n: cfg.literal_from_source(EXPERIMENTS, n)
    for n in ("DEFAULT_SIGMA_W2", "DEFAULT_DEPTHS", "DEFAULT_LRS", "DEFAULT_SEEDS")
}
TRAINING = {
    "phase": cfg.literal_from_source(EXPERIMENTS, "TRAINABILITY_DEFAULTS"),
    "modes": cfg.literal_from_source(PROFILES, "MODEWISE_DEFAULTS"),
}
STUDIES = ("phase", "modes")
_ABSENT = object()


def _frozen(value):
    return tuple(value) if isinstance(value, list) else value


def _setting(help_text, *, default=_ABSENT, phase=_ABSENT, modes=_ABSENT, shown=None):
    """A field of :class:`TrainabilitySettings`: its help and the default of each study using it.

    ``default`` alone: a setting of the command itself (``shown``: what ``None`` means there).
    ``phase``/``modes``: the library's default in that study; a setting both studies use with
    different defaults gets ``None`` (filled in per study by :func:`resolve`).
    """
    per_study = {k: _frozen(v) for k, v in (("phase", phase), ("modes", modes)) if v is not _ABSENT}
    if default is _ABSENT:
        values = set(per_study.values())
        default = values.pop() if len(values) == 1 else None
    meta = {"help": help_text, "studies": tuple(per_study) or STUDIES, "per_study": per_study}
    if shown is not None:
        meta["shown"] = shown
    return dataclasses.field(default=_frozen(default), metadata=meta)


@dataclass(frozen=True)
class TrainabilitySettings:
    """Every setting of ``cnnmft trainability``: one flag each (``--name``), one config key each."""

    study: str = _setting(
        "phase: accuracy over (sigma_w2, depth) against 6 xi_c; modes: variance profile v at "
        "criticality",
        default="phase",
    )
    out: str = _setting(
        "output folder (figure, numbers, resolved_config.json)", default="trainability"
    )
    store: str | None = _setting(
        "folder of finished cells; rerunning skips them", default=None, shown="OUT/cells"
    )
    scheduler: str | None = _setting(
        "address of a running Dask scheduler, e.g. tcp://host:8786",
        default=None,
        shown="an in-process local cluster",
    )
    scheduler_file: str | None = _setting(
        "scheduler file of a running cluster (dask scheduler --scheduler-file)", default=None
    )
    workers: int = _setting(
        "worker processes of the local cluster",
        phase=_SWEEP["n_workers"],
        modes=_MODES["n_workers"],
    )
    ship_data: bool = _setting(
        "send the dataset to the workers (when they cannot read its files)",
        phase=_SWEEP["ship_data"],
        modes=_MODES["ship_data"],
    )
    act: str = _setting("activation", phase=_SWEEP["act"], modes=_MODES["act"])
    sigma_b2: float = _setting(
        "bias variance; the modes study trains at the critical sigma_w2 for it",
        phase=_SWEEP["sigma_b2"],
        modes=_MODES["sigma_b2"],
    )
    seeds: tuple[int, ...] | None = _setting(
        "seeds of the initial weights and of the data order",
        phase=_GRID["DEFAULT_SEEDS"],
        modes=_MODES["seeds"],
    )
    dataset: str = _setting(
        "fashion-mnist, digits, digits28, mnist or cifar10",
        phase=TRAINING["phase"]["dataset"],
        modes=TRAINING["modes"]["dataset"],
    )
    data_dir: str | None = _setting("folder with the dataset's files", default=None)
    device: str | None = _setting("torch device of every run, e.g. cuda", default=None, shown="cpu")
    steps: int | None = _setting(
        "training steps per run", **{k: v["steps"] for k, v in TRAINING.items()}
    )
    channels: int | None = _setting(
        "width of the deep block", **{k: v["channels"] for k, v in TRAINING.items()}
    )
    batch_size: int | None = _setting(
        "batch size", **{k: v["batch_size"] for k, v in TRAINING.items()}
    )
    optimizer: str | None = _setting(
        "sgd or adam", **{k: v["optimizer"] for k, v in TRAINING.items()}
    )
    momentum: float | None = _setting(
        "momentum of SGD", **{k: v["momentum"] for k, v in TRAINING.items()}
    )
    max_test: int | None = _setting(
        "test images evaluated per run", **{k: v["max_test"] for k, v in TRAINING.items()}
    )
    stem_strides: tuple[int, ...] | None = _setting(
        "strides of the stem convolutions before the deep block",
        **{k: v["stem_strides"] for k, v in TRAINING.items()},
    )
    sigma_w2: tuple[float, ...] = _setting("weight variances", phase=_GRID["DEFAULT_SIGMA_W2"])
    depths: tuple[int, ...] = _setting("depths", phase=_GRID["DEFAULT_DEPTHS"])
    lrs: tuple[float, ...] = _setting(
        "learning-rate grid; per cell the lowest final training loss wins",
        phase=_GRID["DEFAULT_LRS"],
    )
    k_se: float = _setting(
        "'trained' means test accuracy above chance by K_SE standard errors", phase=_SWEEP["k_se"]
    )
    factor: float = _setting("the rule judged is depth <= FACTOR xi_c", phase=_SWEEP["factor"])
    init: str = _setting("kernel initialisation", phase=TRAINING["phase"]["init"])
    t: tuple[float, ...] = _setting(
        "tunable-profile parameters in [0, 0.5] (0 delta, 0.5 uniform-like)", modes=_MODES["t"]
    )
    depth: int = _setting("depth of every run", modes=_MODES["depth"])
    kinds: tuple[str, ...] = _setting("kernel kinds", modes=_MODES["kinds"])
    lr: float = _setting("learning rate", modes=TRAINING["modes"]["lr"])
    eval_train: int = _setting(
        "training images evaluated for the training accuracy",
        modes=TRAINING["modes"]["eval_train"],
    )


SETTINGS = {f.name: f for f in dataclasses.fields(TrainabilitySettings)}
CHOICES = {"study": STUDIES, "kinds": ("orthogonal", "gaussian"), "optimizer": ("sgd", "adam")}
METAVARS = {"scheduler": "ADDRESS", "scheduler_file": "PATH", "sigma_w2": "S", "depths": "L"}
# keyword of the library call for a setting, where it differs from the setting's name
LIBRARY_NAMES = {"workers": "n_workers"}
CLUSTER = ("out", "store", "scheduler", "scheduler_file", "workers", "ship_data")


def options():
    """The :class:`~cnnmft.commands._config.Option` list of :class:`TrainabilitySettings`."""
    return cfg.options_from_dataclass(TrainabilitySettings)


def _default_text(name) -> str | None:
    meta = SETTINGS[name].metadata
    per_study = meta["per_study"]
    if len(set(per_study.values())) < 2:
        return meta.get("shown")
    return ", ".join(f"{cfg._show_default(v)} ({k})" for k, v in per_study.items())


def configure(p):
    """Add ``STUDY``, one flag per setting of :class:`TrainabilitySettings` and ``--config``."""
    opts = [o for o in options() if o.name != "study"]
    p.add_argument(
        "study",
        nargs="?",
        default=argparse.SUPPRESS,  # absent: the config file's or the default study
        metavar="{phase,modes}",  # checked by resolve(): argparse would check the SUPPRESS default
        help=f"{SETTINGS['study'].metadata['help']} (default: phase)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="TOML or JSON file of settings (keys as the flags, - or _; a "
        "[trainability] table or the top level); flags typed here win",
    )
    groups = {"output, storage and cluster": list(CLUSTER)}
    for title, studies in (("both studies", STUDIES), ("phase study", ("phase",))):
        groups[title] = [
            o.name
            for o in opts
            if SETTINGS[o.name].metadata["studies"] == studies and o.name not in CLUSTER
        ]
    groups["modes study"] = [
        o.name for o in opts if SETTINGS[o.name].metadata["studies"] == ("modes",)
    ]
    overrides = {n: {"choices": c} for n, c in CHOICES.items() if n != "study"}
    for name, meta in METAVARS.items():
        overrides.setdefault(name, {})["metavar"] = meta
    for o in opts:
        text = _default_text(o.name)
        if text:
            overrides.setdefault(o.name, {})["default_text"] = text
    found = cfg.add_options(p, opts, groups=groups, overrides=overrides)
    p.set_defaults(_options={"study": next(o for o in options() if o.name == "study"), **found})
    add_common(p)


def resolve(args):
    """Defaults, ``--config`` and typed flags merged, each study's defaults filled in.

    Returns ``(values, origin)`` as :func:`cnnmft.commands._config.resolve`; a setting whose
    default depends on the study gets that study's value (origin ``"default"``).
    """
    file_values = cfg.load_config_file(args.config, "trainability") if args.config else {}
    values, origin = cfg.resolve(args._options, args, file_values)
    study = values["study"]
    if study not in STUDIES:
        raise ValueError(f"the study must be 'phase' or 'modes', got {study!r}")
    for name, value in values.items():
        meta = SETTINGS[name].metadata
        if origin[name] == "flag" and study not in meta["studies"]:
            other = meta["studies"][0]
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} is a setting of the {other} study: `trainability {other}`")
        if value is None and study in meta["per_study"]:
            values[name] = meta["per_study"][study]
    return values, origin


def library_call(values):
    """``(function name, positional, keywords)`` of the library call for resolved `values`.

    Every setting the study uses is passed explicitly (so the resolved config saved with the
    result is what ran); ``data_dir`` and ``device`` only when set. ``stem_strides`` goes as a
    list, as in the library's own defaults (it is part of each stored cell's key).
    """
    study = values["study"]
    kw = {}
    for name, f in SETTINGS.items():
        if name == "study" or study not in f.metadata["studies"] or name in ("out",):
            continue
        if name in ("data_dir", "device") and values[name] is None:
            continue
        kw[LIBRARY_NAMES.get(name, name)] = values[name]
    kw["stem_strides"] = list(kw["stem_strides"])
    if study == "phase":
        return "trainability_sweep", (kw.pop("sigma_w2"), kw.pop("depths")), kw
    return "modewise_study", (), kw


def _precheck(values):
    """Refuse impossible depths and a sweep whose deepest ensemble could not fit, before work."""
    if values["study"] == "modes":
        check_range(values["depth"], "--depth", 1)
        return
    for depth in values["depths"]:
        check_range(depth, "--depths", 1)
    if not values["depths"]:
        return  # the library names the empty grid
    channels, deepest = values["channels"], max(values["depths"])
    members = len(values["sigma_w2"]) * len(values["lrs"])
    # one ensemble trains every (sigma_w2, lr) member: float32 weights, gradients, momentum
    params = float(deepest) * (channels * channels * 9 + channels) * members
    need_memory(
        params * 4 * 3,
        f"--depths {deepest} with {members} ensemble members of width "
        f"{channels} ({params:.3g} parameters)",
    )


@contextlib.contextmanager
def _scheduler(values, out):
    """The scheduler to use: a local cluster whose workers ignore Ctrl-C, or the given one."""
    if values["scheduler"] is not None or values["scheduler_file"] is not None:
        yield values["scheduler"], values["scheduler_file"]
        return
    check_range(values["workers"], "--workers", 1)
    from cnnmft.sweeps import dask_client  # dask: only when a sweep starts

    with contextlib.ExitStack() as stack:
        with workers_ignore_sigint():  # Ctrl-C reaches the driver only
            client = stack.enter_context(
                dask_client(n_workers=values["workers"], show_dashboard=not out.quiet)
            )
        yield client, None


def _print_modes(out, res):
    for ik, kind in enumerate(res.kinds):
        for it, t in enumerate(res.t):
            out.result(
                f"{kind:10s} t={t:4.2f}: test acc "
                f"{np.nanmean(res.test_accuracy[ik, it]):.3f}, mean loss "
                f"{np.nanmean(res.loss_auc[ik, it]):.3f}, xi(slowest mode) "
                f"{res.xi_slowest[it]:.3g}"
            )
        out.result(
            f"{kind}: slope of test accuracy in t {res.slope_test_accuracy[ik]:+.4f}"
            f" +- {res.slope_se[ik]:.4f}"
        )


def run(args) -> int:
    """Run the chosen study, write figure and numbers, print the summary."""
    out = Output(args)
    values, origin = resolve(args)
    _precheck(values)  # before torch, matplotlib or a cluster start

    import matplotlib

    matplotlib.use("Agg")  # the command line chooses the backend, never the library

    from cnnmft.pytorch import experiments, profiles

    outdir = Path(values["out"])
    outdir.mkdir(parents=True, exist_ok=True)
    values["store"] = values["store"] or str(outdir / "cells")
    args._interrupt_hint = (
        f"finished cells are kept in {values['store']}/; run the same command again to resume"
    )
    study = values["study"]
    used = {k: v for k, v in values.items() if study in SETTINGS[k].metadata["studies"]}
    cfg.save_resolved(outdir / "resolved_config.json", "trainability", used, origin)
    name, positional, kw = library_call(values)
    with _scheduler(values, out) as (scheduler, scheduler_file):
        kw.update(scheduler=scheduler, scheduler_file=scheduler_file, progress=out.progress)
        res = getattr(experiments if study == "phase" else profiles, name)(*positional, **kw)
    stem = "trainability" if study == "phase" else "modewise"
    res.save(outdir / f"{stem}.npz")
    res.save(outdir / f"{stem}.json")
    plot = experiments.plot_trainability if study == "phase" else profiles.plot_modewise
    ax = plot(res)
    getattr(ax, "figure", ax).savefig(outdir / f"{stem}.png", dpi=120, bbox_inches="tight")
    if study == "phase":
        out.result(res.summary())
    else:
        _print_modes(out, res)
    out.data({"study": study, "out": str(outdir), "result": res.to_dict()})
    out.note(f"written to {outdir}/ (settings in resolved_config.json)")
    return 0
