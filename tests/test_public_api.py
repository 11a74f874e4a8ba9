"""The public surface: imports, no heavy optional imports, docstrings, CLI."""

import subprocess
import sys

import pytest

import cnnmft


def test_import_does_not_load_torch_or_matplotlib():
    code = (
        "import sys, cnnmft; bad = [m for m in ('torch', 'matplotlib') if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_all_names_exist_and_have_docstrings():
    for name in cnnmft.__all__:
        obj = getattr(cnnmft, name)
        if callable(obj) and not isinstance(obj, type(cnnmft)):
            assert obj.__doc__ and len(obj.__doc__) > 40, name


def test_design_contract_names():
    for name in [
        "get_activation",
        "Activation",
        "fixed_point",
        "critical_sigma_w2",
        "critical_point",
        "phase_diagram",
        "trainable_depth",
    ]:
        assert hasattr(cnnmft, name), name


def test_cli_help_lists_subcommands():
    res = subprocess.run(
        [sys.executable, "-m", "cnnmft.cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0
    for cmd in ["fixed-point", "critical", "phase", "report"]:
        assert cmd in res.stdout


def test_cli_fixed_point_and_critical(capsys):
    from cnnmft.cli import main

    assert main(["fixed-point", "--sigma-w2", "2.5", "--sigma-b2", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "1.06396" in out and "0.446804" in out and "OK" in out
    assert main(["critical", "--sigma-b2", "0.05"]) == 0
    assert "1.76095" in capsys.readouterr().out


def test_cli_bad_input_is_a_clear_error(capsys):
    from cnnmft.cli import main

    assert main(["fixed-point", "--sigma-w2", "-1"]) == 2
    assert "--sigma-w2 must be" in capsys.readouterr().err  # the flag, not the argument
    assert main(["fixed-point", "--act", "tahn", "--sigma-w2", "1"]) == 2


def test_cli_phase_writes_numbers_and_figure(tmp_path):
    from cnnmft.cli import main
    from cnnmft.phase import PhaseDiagram

    prefix = str(tmp_path / "pd")
    assert (
        main(
            ["phase", "--sigma-w2", "0.5", "3", "8", "--sigma-b2", "0", "0.2", "4", "--out", prefix]
        )
        == 0
    )
    pd = PhaseDiagram.load(prefix + ".npz")
    assert pd.xi_c.shape == (8, 4)
    assert (tmp_path / "pd.png").stat().st_size > 1000


@pytest.mark.parametrize("section", ["phase"])
def test_report_section_quick(tmp_path, section):
    from cnnmft.report import build_report

    index = build_report(tmp_path, quick=True, sections=[section], progress=False)
    html = index.read_text()
    assert "<img" in html and "data/" in html


def test_main_demo_quick_builds_every_section(tmp_path):
    """`cnnmft report --quick`: every section of the story, figures and their numbers."""
    pytest.importorskip("torch")
    pytest.importorskip("distributed")
    from cnnmft.cli import main
    from cnnmft.report import SECTIONS

    assert main(["report", "--quick", "--out", str(tmp_path)]) == 0
    html = (tmp_path / "index.html").read_text()
    for name in SECTIONS:
        assert f'id="{name}"' in html, name
    assert "skipped" not in html
    figures = list((tmp_path / "figures").glob("*.png"))
    data = list((tmp_path / "data").iterdir())
    assert len(figures) >= len(SECTIONS) and len(data) >= len(SECTIONS)


# ------------------------------------------------------------------------------------------------
# the face: one screen, grouped by concept, everything public reachable
# ------------------------------------------------------------------------------------------------

# submodules documented as such (docs/index.md); their public names need not be re-exported
DOCUMENTED_SUBMODULES = (
    "pytorch",
    "sweeps",
    "plotting",
    "network",
    "montecarlo",
    "conventions",
    "gaussian",
    "validate",
    "checks",
)
LIBRARY_MODULES = (
    "results",
    "activations",
    "meanfield",
    "phase",
    "depth",
    "fourier",
    "covariance",
    "spectrum",
    "orthogonal",
)


def test_version_comes_from_the_installed_metadata():
    from importlib.metadata import version

    assert cnnmft.__version__ == version("cnnmft")


def test_face_is_one_screen_without_work_item_comments():
    from pathlib import Path

    text = Path(cnnmft.__file__).read_text()
    # the names are listed three times (the lazy table, the TYPE_CHECKING block, __all__), which
    # tests/test_layering.py keeps equal; still one screen of names per listing
    assert len(text.splitlines()) <= 150
    comments = [ln for ln in text.splitlines() if ln.lstrip().startswith("#")]
    assert len(comments) >= 8  # the concept groups
    assert not [c for c in comments if "issue" in c.lower() or "engineer" in c.lower()]


def test_every_public_name_is_reachable():
    import importlib
    import importlib.util

    missing = []
    for name in LIBRARY_MODULES:
        if importlib.util.find_spec(f"cnnmft.{name}") is None:
            continue
        mod = importlib.import_module(f"cnnmft.{name}")
        for attr in getattr(mod, "__all__", []):
            obj = getattr(mod, attr)
            if (callable(obj) or isinstance(obj, type)) and getattr(cnnmft, attr, None) is not obj:
                missing.append(f"{name}.{attr}")
    assert not missing, f"public but not re-exported by cnnmft: {missing}"
    for name in cnnmft.__all__:
        assert hasattr(cnnmft, name), name


def test_py_typed_marker_ships():
    from pathlib import Path

    assert (Path(cnnmft.__file__).parent / "py.typed").exists()


# ------------------------------------------------------------------------------------------------
# the face is lazy: nothing numerical loads until a name is used (no timings: sys.modules only)
# ------------------------------------------------------------------------------------------------

HEAVY = ("numpy", "scipy", "numba", "torch", "matplotlib", "dask")


def _loaded_after(code: str) -> dict:
    """Run `code` in a fresh interpreter; return its stdout's last line, a JSON object."""
    import json

    probe = (
        f"import json, sys\n{code}\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "code",
    [
        "import cnnmft",
        "import cnnmft; assert cnnmft.__version__",
        "import cnnmft.cli",
        # `cnnmft --help` and `cnnmft --version`: the console script calls cnnmft.cli.main
        "from cnnmft.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit as e:\n"
        "    assert e.code == 0",
        "from cnnmft.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit as e:\n"
        "    assert e.code == 0",
        # `python -m cnnmft --help`
        "import runpy\nsys.argv = ['cnnmft', '--help']\ntry:\n"
        "    runpy.run_module('cnnmft', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as e:\n    assert e.code == 0",
    ],
    ids=["import", "version", "import-cli", "help", "cli-version", "python-m-help"],
)
def test_import_version_and_help_load_nothing_numerical(code):
    loaded = _loaded_after(code)
    assert not any(loaded.values()), f"{code!r} imported {[m for m in loaded if loaded[m]]}"


def test_a_name_loads_its_module_and_only_then():
    loaded = _loaded_after(
        "import cnnmft\n"
        "assert 'cnnmft.meanfield' not in sys.modules\n"
        "assert cnnmft.Status.OK.name == 'OK' and 'numba' not in sys.modules\n"
        "fp = cnnmft.fixed_point\n"
        "assert 'cnnmft.meanfield' in sys.modules and cnnmft.fixed_point is fp\n"
        "assert 'fixed_point' in vars(cnnmft)  # cached: __getattr__ runs once per name"
    )
    assert loaded["numba"] and loaded["scipy"] and not loaded["torch"]


def test_every_name_of_all_resolves_in_a_fresh_interpreter():
    """Each name on its own, first thing after `import cnnmft` (no earlier import helps it)."""
    code = (
        "import cnnmft\n"
        "for name in cnnmft.__all__:\n"
        "    getattr(cnnmft, name)\n"
        "assert set(cnnmft.__all__) <= set(dir(cnnmft))\n"
        "ns = {}\n"
        "exec('from cnnmft import *', ns)\n"
        "assert set(cnnmft.__all__) <= set(ns)\n"
    )
    _loaded_after(code)


def test_submodules_are_attributes_without_importing_them():
    """`import cnnmft` then `cnnmft.results.Status`, as with an eager face."""
    _loaded_after(
        "import cnnmft\n"
        "assert cnnmft.results.Status.OK.name == 'OK'\n"
        "assert 'q_star' in cnnmft.phase.QUANTITIES\n"
        "assert cnnmft.gaussian is sys.modules['cnnmft.gaussian']\n"
        "from cnnmft import fourier\n"
        "assert callable(fourier.variance_profile)\n"
        "try:\n    cnnmft.no_such_name\nexcept AttributeError as e:\n"
        "    assert 'no_such_name' in str(e)\nelse:\n    raise AssertionError('no error')\n"
    )
