"""The command line: lazy commands, generated parsers, config files, JSON, errors, Ctrl-C.

Numbers printed by the commands are checked against independent references (Gauss-Hermite
quadrature written here, exact memory arithmetic); the help-time budget (0.3 s) is measured in
``benchmarks/bench_cli.py``, not asserted here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from cnnmft.cli import COMMANDS, main
from cnnmft.commands import _config as cfg
from cnnmft.commands._common import format_bytes, translate, workers_ignore_sigint


def _python(code, **kw):
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, **kw
    )


# ------------------------------------------------------------------------------- lazy commands


def test_top_level_help_imports_no_command_module():
    code = textwrap.dedent("""
        import sys
        import cnnmft
        before = set(sys.modules)
        from cnnmft import cli
        try:
            cli.main(["--help"])
        except SystemExit:
            pass
        new = sorted(m for m in set(sys.modules) - before
                     if m.startswith(("cnnmft.", "torch", "matplotlib", "dask", "sklearn")))
        print("NEW", new)
    """)
    res = _python(code)
    assert res.returncode == 0, res.stderr
    assert "NEW ['cnnmft.cli']" in res.stdout, res.stdout
    for name in COMMANDS:
        assert name in res.stdout


def test_train_help_lists_every_field_without_torch():
    code = (
        "import sys\nfrom cnnmft.cli import main\ntry:\n    main(['train', '--help'])\n"
        "except SystemExit:\n    pass\nprint('TORCH', 'torch' in sys.modules)"
    )
    res = _python(code)
    assert res.returncode == 0, res.stderr
    assert "TORCH False" in res.stdout
    text = " ".join(res.stdout.split())
    opts = cfg.options_from_source(
        cfg.Path(cfg.__file__).parents[1] / "pytorch" / "train.py", "TrainConfig"
    )
    assert len(opts) > 30
    for opt in opts:
        assert opt.flag in text, opt.name
        assert opt.help, f"TrainConfig.{opt.name} has no help text"
    assert text.count("(default:") >= len(opts)
    assert "--config FILE" in text and "--threads" in text and "--out" in text


def test_source_reading_matches_the_dataclass():
    pytest.importorskip("torch")
    from cnnmft.pytorch.train import TrainConfig

    from_source = cfg.options_from_source(
        cfg.Path(cfg.__file__).parents[1] / "pytorch" / "train.py", "TrainConfig"
    )
    assert from_source == cfg.options_from_dataclass(TrainConfig)


def test_version_is_the_installed_metadata(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"cnnmft {metadata.version('cnnmft')}"


def _tanh_fixed_point(sw, sb):
    """q* of tanh by fixed-point iteration with 200-node Gauss-Hermite (independent of cnnmft)."""
    z, w = np.polynomial.hermite_e.hermegauss(200)
    w = w / w.sum()
    q = 1.0
    for _ in range(2000):
        q = sw * np.sum(w * np.tanh(np.sqrt(q) * z) ** 2) + sb
    return q


def test_python_dash_m_json_on_stdout():
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "cnnmft",
            "fixed-point",
            "--sigma-w2",
            "2.5",
            "1.2",
            "--sigma-b2",
            "0.05",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    points = data["points"]
    assert [p["status"] for p in points] == ["OK", "OK"]
    for p in points:
        assert p["q_star"] == pytest.approx(_tanh_fixed_point(p["sigma_w2"], 0.05), rel=1e-10)


def test_json_to_a_file_keeps_the_table_on_stdout(tmp_path, capsys):
    target = tmp_path / "fp.json"
    assert main(["fixed-point", "--sigma-w2", "1.5", "--json", str(target)]) == 0
    out = capsys.readouterr().out
    assert "q_star" in out and "OK" in out  # the human table is still printed
    data = json.loads(target.read_text())
    assert data["points"][0]["q_star"] == pytest.approx(_tanh_fixed_point(1.5, 0.05), rel=1e-10)


def test_quiet_prints_results_only(tmp_path, capsys):
    assert main(["fixed-point", "--sigma-w2", "1.5", "-q", "--out", str(tmp_path / "f.npz")]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "saved" not in out


# ------------------------------------------------------------------------- errors and limits


def test_errors_name_the_flag(capsys):
    assert main(["fixed-point", "--sigma-w2", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--sigma-w2 must be" in err and "`sigma_w2`" not in err
    assert main(["spectrum", "--depth", "0"]) == 2
    assert "--depth must be in [1, 1e+06]" in capsys.readouterr().err
    assert main(["covariance", "--depth", "0"]) == 2
    assert "--depth must be in [1, inf]; got 0" in capsys.readouterr().err


def test_translate_leaves_unknown_names():
    msg = "`sigma_w2` and `other` must agree"
    assert translate(msg, {"sigma_w2": "--sigma-w2"}) == "--sigma-w2 and `other` must agree"


def test_impossible_train_is_refused_before_torch():
    code = (
        "import sys\nfrom cnnmft.cli import main\n"
        "rc = main(['train', '--depth', '100000000'])\n"
        "print('RC', rc, 'TORCH', 'torch' in sys.modules)"
    )
    res = _python(code)
    assert "RC 2 TORCH False" in res.stdout, res.stdout + res.stderr
    # 1e8 layers x (16*16*9 + 16) float32 parameters x (weights, gradients, momentum)
    need = 1e8 * (16 * 16 * 9 + 16) * 4 * 3
    assert f"at least {format_bytes(need)} of memory" in res.stderr
    assert "--depth 100000000" in res.stderr
    res = _python("from cnnmft.cli import main; print('RC', main(['train', '--depth', '0']))")
    assert "RC 2" in res.stdout and "--depth must be in [1, inf]; got 0" in res.stderr


def test_impossible_grids_are_refused(capsys):
    assert main(["phase", "--sigma-w2", "0.5", "4", "1e9", "--sigma-b2", "0", "1", "1e6"]) == 2
    err = capsys.readouterr().err
    assert "would need at least" in err and "PB" in err
    assert main(["kernels", "--c-out", "100000"]) == 2
    assert "(--c-out, --c-in, --kernel-size)" in capsys.readouterr().err


def test_format_bytes():
    assert format_bytes(999) == "999 B"
    assert format_bytes(2.5e9) == "2.5 GB"
    assert format_bytes(3.2e12) == "3.2 TB"


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    from cnnmft.commands import fixed_point

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(fixed_point, "run", interrupted)
    assert main(["fixed-point", "--sigma-w2", "1"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["cnnmft fixed-point: interrupted"]


def _sleep_forever():  # target of the spawned child below
    time.sleep(60)


def test_children_started_inside_ignore_ctrl_c():
    import multiprocessing as mp

    handler = signal.getsignal(signal.SIGINT)
    ctx = mp.get_context("spawn")
    with workers_ignore_sigint():
        child = ctx.Process(target=_sleep_forever)
        child.start()
    assert signal.getsignal(signal.SIGINT) is handler
    try:
        time.sleep(1.0)  # let the child's interpreter start (it keeps the ignored SIGINT)
        os.kill(child.pid, signal.SIGINT)
        child.join(2.0)
        assert child.is_alive(), "the child died from SIGINT"
    finally:
        child.terminate()
        child.join(10)


# ----------------------------------------------------------------- generated parsers, configs


@dataclass
class _Toy:
    depth: int = field(default=10, metadata={"help": "layers"})
    sigma_w2: float | None = field(default=None, metadata={"help": "weight variance"})
    plots: bool = field(default=True, metadata={"help": "draw"})
    strides: tuple = field(default=(1, 2), metadata={"help": "strides"})
    scale: object = field(default=1.0, metadata={"help": "a number or 1/depth"})
    name: str = "x"


def _toy_parser():
    import argparse

    p = argparse.ArgumentParser()
    opts = cfg.add_options(p, cfg.options_from_dataclass(_Toy), aliases={"depth": ["-L"]})
    return p, opts


def test_generated_flags_types_and_defaults():
    p, opts = _toy_parser()
    values, origin = cfg.resolve(opts, p.parse_args([]))
    assert values == dataclasses.asdict(_Toy()) and set(origin.values()) == {"default"}
    args = p.parse_args(
        ["-L", "7", "--sigma-w2", "none", "--no-plots", "--strides", "3", "4", "--scale", "1/depth"]
    )
    values, origin = cfg.resolve(opts, args)
    assert values["depth"] == 7 and values["sigma_w2"] is None and values["plots"] is False
    assert values["strides"] == (3, 4) and values["scale"] == "1/depth"
    assert origin["depth"] == "flag" and origin["name"] == "default"
    assert cfg.resolve(opts, p.parse_args(["--scale", "0.5"]))[0]["scale"] == 0.5
    with pytest.raises(SystemExit):
        p.parse_args(["--depth", "ten"])


def test_source_reader_handles_field_helpers(tmp_path):
    src = textwrap.dedent("""
        import dataclasses
        from dataclasses import dataclass

        def _f(default, help):
            return dataclasses.field(default=default, metadata={"help": help})

        @dataclass
        class Cfg:
            depth: int = _f(10, "layers " "of the block")
            lr: float | None = _f(None, help="learning rate")
            tags: tuple = dataclasses.field(default_factory=tuple)
            plain: str = "a"
    """)
    path = tmp_path / "mod.py"
    path.write_text(src)
    namespace = {}
    exec(compile(src, str(path), "exec"), namespace)  # noqa: S102 - the test's own source
    assert cfg.options_from_source(path, "Cfg") == cfg.options_from_dataclass(namespace["Cfg"])
    with pytest.raises(LookupError):
        cfg.options_from_source(path, "Missing")


def test_config_file_then_flags_win(tmp_path):
    p, opts = _toy_parser()
    toml = tmp_path / "c.toml"
    toml.write_text("[toy]\ndepth = 3\nsigma-w2 = 1.5\nstrides = [5]\n")
    file_values = cfg.load_config_file(toml, "toy")
    values, origin = cfg.resolve(opts, p.parse_args(["--depth", "4"]), file_values)
    assert values["depth"] == 4 and origin["depth"] == "flag"
    assert values["sigma_w2"] == 1.5 and origin["sigma_w2"] == "file"
    assert values["strides"] == (5,)
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"depth": 9, "plots": False}))
    values, _ = cfg.resolve(opts, p.parse_args([]), cfg.load_config_file(js))
    assert values["depth"] == 9 and values["plots"] is False
    saved = cfg.save_resolved(tmp_path / "out" / "resolved_config.json", "toy", values)
    again, _ = cfg.resolve(opts, p.parse_args([]), cfg.load_config_file(saved, "toy"))
    assert again == values
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"dpeth": 3}))
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['dpeth'\]"):
        cfg.resolve(opts, p.parse_args([]), cfg.load_config_file(bad))
    with pytest.raises(ValueError, match="not valid TOML"):
        (tmp_path / "x.toml").write_text("depth = [")
        cfg.load_config_file(tmp_path / "x.toml")
    with pytest.raises(FileNotFoundError, match="--config"):
        cfg.load_config_file(tmp_path / "nope.toml")


def test_train_config_file_and_overrides(tmp_path):
    from cnnmft.cli import build_parser
    from cnnmft.commands import train as cmd

    conf = tmp_path / "run.toml"
    conf.write_text("depth = 50\nchannels = 8\nnum-threads = 2\n")
    parser, _ = build_parser("train")
    args = parser.parse_args(["train", "--config", str(conf), "--channels", "4", "--out", "o"])
    values, origin = cmd.resolve(args)
    assert values["depth"] == 50 and values["channels"] == 4 and values["num_threads"] == 2
    assert values["out_dir"] == "o" and origin["channels"] == "flag"


@pytest.mark.torch
@pytest.mark.filterwarnings("ignore:ended at chance:RuntimeWarning")  # 2 steps do not learn
def test_train_without_out_keeps_results_in_a_stated_folder(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    rc = main(
        [
            "train",
            "--depth",
            "2",
            "--channels",
            "4",
            "--steps",
            "2",
            "--eval-every",
            "0",
            "--max-train",
            "64",
            "--max-test",
            "32",
            "--lr",
            "0.01",
            "--threads",
            "1",
            "--no-plots",
            "-q",
            "--json",
        ]
    )
    assert rc in (0, 3)
    out = json.loads(capsys.readouterr().out)
    folder = tmp_path / out["out_dir"]
    assert folder.parent.name == "runs" and (folder / "result.json").exists()
    saved = json.loads((folder / "resolved_config.json").read_text())
    assert saved["command"] == "train" and saved["config"]["depth"] == 2
    assert saved["set_by"]["depth"] == "flag"


def test_report_command_json_and_resolved_config(tmp_path, capsys):
    assert (
        main(["report", "--quick", "--sections", "kernels", "--out", str(tmp_path), "-q", "--json"])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["level"] == "quick" and data["sections"] == ["kernels"]
    checks = [h for h in data["headlines"] if h["kind"] == "check"]
    assert checks and all(h["ok"] for h in checks)
    saved = json.loads((tmp_path / "resolved_config.json").read_text())
    assert saved["command"] == "report" and saved["config"]["quick"] is True


@pytest.mark.slow
def test_ctrl_c_on_a_sweep_leaves_one_line(tmp_path):
    """A terminal's Ctrl-C (SIGINT to the whole process group) during a real Dask sweep."""
    pytest.importorskip("torch")
    pytest.importorskip("distributed")
    args = [
        sys.executable,
        "-m",
        "cnnmft",
        "trainability",
        "--out",
        str(tmp_path / "t"),
        "--depths",
        "2",
        "3",
        "4",
        "--sigma-w2",
        "1",
        "2",
        "--steps",
        "4000",
        "--channels",
        "4",
        "--seeds",
        "0",
        "--lrs",
        "0.01",
        "--dataset",
        "digits",
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (tmp_path / "t" / "cells").exists():
            time.sleep(0.5)
        time.sleep(15)  # the workers are training the first cells
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("cnnmft trainability: interrupted: finished cells are kept in")
    )


def _trainability_args(argv):
    from cnnmft.cli import _typed, build_parser

    parser, subs = build_parser("trainability")
    args = parser.parse_args(["trainability", *argv])
    args._typed = _typed(subs["trainability"], argv)
    return args


def test_trainability_config_file_and_typed_flags(tmp_path):
    from cnnmft.commands import trainability as cmd

    conf = tmp_path / "s.toml"
    conf.write_text("[trainability]\ndepths = [2, 3]\nsteps = 7\nworkers = 3\n")
    values, origin = cmd.resolve(_trainability_args(["--config", str(conf), "--steps", "9"]))
    assert values["depths"] == (2, 3) and values["steps"] == 9 and values["workers"] == 3
    assert (origin["depths"], origin["steps"], origin["act"]) == ("file", "flag", "default")
    conf.write_text('study = "modes"\nt = [0.0, 0.5]\n')
    values, _ = cmd.resolve(_trainability_args(["--config", str(conf)]))
    assert values["study"] == "modes" and values["t"] == (0.0, 0.5)
    conf.write_text("stepz = 1\n")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['stepz'\]"):
        cmd.resolve(_trainability_args(["--config", str(conf)]))


# the library's own literals, written out here: the generated parser must show exactly these
PHASE_TRAINING = {"steps": 150, "channels": 8, "batch_size": 16, "max_test": 500}
MODES_TRAINING = {"steps": 300, "channels": 8, "batch_size": 16, "max_test": 1000, "lr": 0.01}


def test_trainability_parser_every_setting_has_flag_default_and_help():
    """Generated from TrainabilitySettings; `--help` imports neither torch nor dask."""
    from cnnmft.commands import trainability as cmd

    code = (
        "import sys\nfrom cnnmft.cli import main\ntry:\n    main(['trainability', '--help'])\n"
        "except SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('torch', 'dask', 'distributed') if m in sys.modules])"
    )
    res = _python(code)
    assert res.returncode == 0, res.stderr
    assert "HEAVY []" in res.stdout
    text = " ".join(res.stdout.split())
    opts = cmd.options()
    assert len(opts) == len(dataclasses.fields(cmd.TrainabilitySettings)) > 30
    for opt in opts:
        assert opt.help, f"TrainabilitySettings.{opt.name} has no help"
        if opt.name != "study":
            assert f"{opt.flag} " in text, opt.name
    # every setting shows a default (the positional study included)
    assert text.count("(default:") == len(opts)
    assert "--steps INT training steps per run (default: 150 (phase), 300 (modes))" in text
    assert "--seeds [INT ...] seeds of the initial weights and of the data order (default: " in text


def test_trainability_settings_cover_the_library_signatures():
    """Each keyword of both studies' functions and each fixed training setting has a flag."""
    import inspect

    pytest.importorskip("torch")
    from cnnmft.commands import trainability as cmd
    from cnnmft.pytorch import experiments, profiles

    settings = {cmd.LIBRARY_NAMES.get(n, n) for n in cmd.SETTINGS}
    internal = {"progress", "cell_fn", "compute"}  # set by the command or only for tests
    sweep = set(inspect.signature(experiments.trainability_sweep).parameters) - {"train_kwargs"}
    modes = set(inspect.signature(profiles.modewise_study).parameters) - {"train_kwargs"}
    assert sweep - internal - {"depth"} <= settings and "depths" in settings
    assert modes - internal - {"sigma_w2"} <= settings  # the modes study is at criticality
    assert set(experiments.TRAINABILITY_DEFAULTS) <= settings
    assert set(profiles.MODEWISE_DEFAULTS) <= settings
    # the defaults read from the source are the imported ones
    for name, param in inspect.signature(experiments.trainability_sweep).parameters.items():
        if param.default is not inspect.Parameter.empty and name in cmd._SWEEP:
            assert cmd._SWEEP[name] == param.default, name
    assert cmd.TRAINING["phase"] == experiments.TRAINABILITY_DEFAULTS
    assert cmd.TRAINING["modes"] == profiles.MODEWISE_DEFAULTS
    assert cmd._GRID["DEFAULT_SEEDS"] == experiments.DEFAULT_SEEDS


def test_trainability_library_call_passes_every_resolved_setting():
    from cnnmft.commands import trainability as cmd

    values, _ = cmd.resolve(_trainability_args(["--depths", "2", "3", "--lrs", "0.02"]))
    name, positional, kw = cmd.library_call(values)
    assert name == "trainability_sweep"
    assert positional == ((0.8, 1.3, 1.76, 2.1, 2.8, 4.0), (2, 3))
    assert kw["lrs"] == (0.02,) and kw["seeds"] == (0, 1) and kw["k_se"] == 5.0
    assert {k: kw[k] for k in PHASE_TRAINING} == PHASE_TRAINING
    assert kw["stem_strides"] == [1, 2, 2] and kw["init"] == "gaussian"
    assert kw["n_workers"] == 1 and "t" not in kw and "lr" not in kw and "device" not in kw
    values, _ = cmd.resolve(_trainability_args(["modes", "--t", "0", "0.5", "--device", "cuda"]))
    name, positional, kw = cmd.library_call(values)
    assert (name, positional) == ("modewise_study", ())
    assert kw["t"] == (0.0, 0.5) and kw["seeds"] == (0, 1, 2) and kw["depth"] == 32
    assert {k: kw[k] for k in MODES_TRAINING} == MODES_TRAINING
    assert kw["device"] == "cuda" and "init" not in kw and "depths" not in kw
    with pytest.raises(ValueError, match=r"--t is a setting of the modes study"):
        cmd.resolve(_trainability_args(["--t", "0.1"]))


def test_impossible_sweep_is_refused_before_any_worker(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("distributed")
    out = tmp_path / "sweep"
    assert (
        main(
            [
                "trainability",
                "--depths",
                "100000000",
                "--sigma-w2",
                "1",
                "2",
                "--lrs",
                "0.01",
                "--channels",
                "4",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    # 1e8 layers x (4*4*9 + 4) float32 parameters x 2 members x (weights, gradients, momentum)
    assert f"at least {format_bytes(1e8 * (4 * 4 * 9 + 4) * 2 * 4 * 3)} of memory" in err
    assert not out.exists()
    assert main(["trainability", "--depths", "0", "--out", str(out)]) == 2
    assert "--depths must be in [1, inf]; got 0" in capsys.readouterr().err


def test_compile_fills_an_empty_cache(tmp_path):
    """`cnnmft compile` compiles into NUMBA_CACHE_DIR; a later process loads, not compiles."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "CNNMFT_QUIET": ""}
    res = subprocess.run(
        [sys.executable, "-m", "cnnmft", "compile", "--groups", "montecarlo"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert "montecarlo:" in res.stdout and str(tmp_path) in res.stdout
    assert list(tmp_path.rglob("*.nbi"))
    code = (
        "import numpy as np, cnnmft\n"
        "x = np.random.default_rng(0).normal(size=(2, 4, 4, 3))\n"
        "cnnmft.simulate(x, 'tanh', 1.760955, 0.05, 3, width=4, n_draws=1)"
    )
    again = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "cnnmft: compiling" not in again.stderr


def test_compile_rejects_bad_jobs(capsys):
    assert main(["compile", "--jobs", "0"]) == 2
    assert "--jobs must be an integer >= 1, got 0" in capsys.readouterr().err


@pytest.mark.slow
def test_compile_every_group_runs():
    """Every group's warm-up calls run (in this process: compiled or loaded from the cache)."""
    from cnnmft.commands.compile import GROUPS, warm

    for group in GROUPS:
        warm(group)
    with pytest.raises(ValueError, match="`group` must be one of"):
        warm("nonsense")


@pytest.mark.slow
def test_compile_reaches_every_kernel_called_from_python(tmp_path):
    """After `cnnmft compile` into an empty cache, every kernel with a Python entry point
    (``jit``, ``pjit``, ``cjit`` in cnnmft/_kernels) has its cache index: the wheel, which is
    built by this command (setup.py), then carries every kernel a call can need."""
    import re

    import cnnmft._kernels as kpkg

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "CNNMFT_QUIET": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "cnnmft", "compile", "--jobs", "2"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    entry = re.compile(r"^@(jit|pjit|cjit)\b.*\n(?:@.*\n)*def (\w+)", re.M)
    kernels = set()
    for src in Path(kpkg.__file__).parent.glob("*.py"):
        kernels |= {f"{src.stem}.{m.group(2)}" for m in entry.finditer(src.read_text())}
    cached = {re.sub(r"-\d+\.py\d+\.nbi$", "", p.name) for p in tmp_path.rglob("*.nbi")}
    assert len(kernels) > 40
    assert sorted(kernels - cached) == []
