"""Layer rules of the package, read from the source with :mod:`ast` (nothing is imported).

Imports flow one way, from lower to higher layers::

    plumbing     results, _validation, _util, _threads, _version, conventions, plotting
    engine       activations, gaussian, _kernels
    maths        meanfield, depth, phase, fourier, covariance, _covariance_*, spectrum,
                 _spectrum_*, orthogonal, montecarlo, network, _network_*, _conv
    checks       checks, validate
    experiments  sweeps, pytorch
    cli          cli, __main__, commands, report

A module may import modules of its own layer or of layers below. ``plotting`` draws from
result fields only (it computes no theory), so it sits with the plumbing and every layer may
use it. The face ``cnnmft/__init__.py`` re-exports everything below ``experiments``. Besides:

* no library module imports ``cnnmft.cli`` or ``cnnmft.commands``;
* ``cnnmft._kernels`` imports nothing from cnnmft outside itself but the thread policy and
  plumbing helpers (``_threads``, ``_util``);
* no ``importlib.import_module``/``__import__``, with ONE exception: the face's ``__getattr__``
  (PEP 562), which loads a public name's module on first use so that ``import cnnmft`` and
  ``cnnmft --help`` import no numpy, scipy or numba. Its table is checked below instead: a
  literal, every module defines its names, the ``TYPE_CHECKING`` block and ``__all__`` list
  exactly the same names, and the face imports nothing of the package at run time;
* imports inside functions only of optional stacks (torch, matplotlib, dask, ..., and our own
  ``cnnmft.pytorch`` and ``cnnmft.sweeps`` that need them) or in ``cli.py`` (lazy subcommands);
* no import cycles among module-level imports;
* only the command line and the report (the ``cli`` layer) call ``matplotlib.use``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "cnnmft"

LAYERS = ["plumbing", "engine", "maths", "checks", "experiments", "cli"]
RANK = {name: i for i, name in enumerate(LAYERS)}
_EXACT = {
    "results": "plumbing",
    "_validation": "plumbing",
    "_util": "plumbing",
    "_threads": "plumbing",
    "_version": "plumbing",
    "conventions": "plumbing",
    "plotting": "plumbing",
    "activations": "engine",
    "gaussian": "engine",
    "_kernels": "engine",
    "meanfield": "maths",
    "depth": "maths",
    "phase": "maths",
    "fourier": "maths",
    "covariance": "maths",
    "spectrum": "maths",
    "orthogonal": "maths",
    "montecarlo": "maths",
    "network": "maths",
    "_conv": "maths",
    "checks": "checks",
    "validate": "checks",
    "_network_checks": "checks",
    "_checks_base": "checks",
    "sweeps": "experiments",
    "pytorch": "experiments",
    "cli": "cli",
    "__main__": "cli",
    "commands": "cli",
    "report": "cli",
}
_PREFIXES = {
    "_covariance_": "maths",
    "_spectrum_": "maths",
    "_network_": "maths",
    "_montecarlo_": "maths",
}

# our own modules that need an optional stack (torch, dask): importing them inside a function
# is importing that stack lazily, which is allowed
OPTIONAL_OWN = {"pytorch", "sweeps"}

# the only modules outside _kernels that the kernels may import: the thread policy and the
# progress/plumbing helpers, which themselves import nothing numerical from cnnmft
KERNEL_PLUMBING = {"_threads", "_util"}

# optional stacks that may be imported inside functions (so `import cnnmft` stays light)
OPTIONAL = {
    "torch",
    "torchvision",
    "matplotlib",
    "mpl_toolkits",
    "dask",
    "distributed",
    "dask_jobqueue",
    "tqdm",
    "pandas",
    "xarray",
    "threadpoolctl",
    "sklearn",
    "playwright",
    "tomllib",
    "tomli",
}

# Violations still in the tree, as "<file> <what>" (no line numbers), each file with its
# maintainer; these make their rule xfail (not strict) until fixed, anything new fails.
OWNERS = {
    "cnnmft/_kernels/_jit.py": "PERF",
    "cnnmft/_threads.py": "PERF",
    "cnnmft/_kernels/": "MF",
    "cnnmft/fourier.py": "MF",
    "cnnmft/meanfield.py": "MF",
    "cnnmft/montecarlo.py": "MF (NET for the backward pass)",
    "cnnmft/orthogonal.py": "MF",
    "cnnmft/phase.py": "MF",
    "cnnmft/spectrum.py": "MF",
    "cnnmft/gaussian.py": "MF",
    "cnnmft/pytorch/sweeps.py": "SWEEP",
    "cnnmft/sweeps.py": "SWEEP",
    "cnnmft/pytorch/ensemble.py": "SWEEP",
    "cnnmft/pytorch/experiments.py": "SWEEP",
    "cnnmft/report/trainability.py": "SWEEP",
    "cnnmft/report/training.py": "TRAIN",
    "cnnmft/pytorch/": "TRAIN",
    "cnnmft/report/": "CLI",
    "cnnmft/commands/": "CLI",
    "cnnmft/validate.py": "CLI",
    "cnnmft/checks.py": "CLI",
    "cnnmft/cli.py": "CLI",
    "cnnmft/covariance.py": "COV",
    "cnnmft/_covariance": "COV",
    "cnnmft/network.py": "NET",
    "cnnmft/_network": "NET",
}
KNOWN: set[str] = set()  # no known violations left


def _owner(violation: str) -> str:
    path = violation.split(":")[0]
    return next((o for p, o in OWNERS.items() if path.startswith(p)), "FACE")


def _key(violation: str) -> str:
    path, rest = violation.split(" ", 1)
    return f"{path.split(':')[0]} {rest}"


def _layer_of(name: str) -> str | None:
    """Layer of module ``cnnmft.<name>`` (``name`` may be dotted), None when unclassified."""
    head = name.split(".")[0]
    if head in _EXACT:
        return _EXACT[head]
    for prefix, layer in _PREFIXES.items():
        if head.startswith(prefix):
            return layer
    return None


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        yield ".".join(parts), path, is_pkg


def _exists(dotted: str) -> bool:
    p = PKG.joinpath(*dotted.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


class _Imports(ast.NodeVisitor):
    """Collects (target, lineno, in_function) for every import; targets relative to cnnmft."""

    def __init__(self, modname: str, is_pkg: bool):
        self.modname, self.is_pkg = modname, is_pkg
        self.found: list[tuple[str, int, bool, bool]] = []  # (target, line, local, internal)
        self.dynamic: list[int] = []
        self.backend: list[int] = []  # matplotlib.use calls
        self.depth = 0
        self.functions: list[str] = []  # names of the enclosing functions
        self.type_checking = 0

    def _base(self, level: int) -> list[str]:
        parts = self.modname.split(".") if self.modname else []
        if not self.is_pkg:
            parts = parts[:-1]
        return parts[: len(parts) - (level - 1)] if level > 1 else parts

    def _add(self, target: str, line: int, internal: bool):
        item = (target, line, self.depth > 0, internal)
        if not self.type_checking and item not in self.found:
            self.found.append(item)

    def visit_FunctionDef(self, node):
        self.depth += 1
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node):
        test = ast.unparse(node.test)
        guarded = "TYPE_CHECKING" in test
        self.type_checking += guarded
        for child in node.body:
            self.visit(child)
        self.type_checking -= guarded
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node):
        for alias in node.names:
            if alias.name == "cnnmft" or alias.name.startswith("cnnmft."):
                self._add(
                    alias.name[len("cnnmft.") :] if "." in alias.name else "", node.lineno, True
                )
            else:
                self._add(alias.name, node.lineno, False)

    def visit_ImportFrom(self, node):
        if node.level:
            base = ".".join(self._base(node.level) + ([node.module] if node.module else []))
            internal = True
        elif node.module == "cnnmft" or (node.module or "").startswith("cnnmft."):
            base = node.module[len("cnnmft.") :] if "." in node.module else ""
            internal = True
        else:
            self._add(node.module or "", node.lineno, False)
            return
        for alias in node.names:
            sub = f"{base}.{alias.name}" if base else alias.name
            self._add(sub if _exists(sub) else base, node.lineno, internal)

    def visit_Call(self, node):
        f = ast.unparse(node.func)
        if f in ("importlib.import_module", "import_module", "__import__"):
            self.dynamic.append((node.lineno, self.functions[-1] if self.functions else ""))
        if f in ("matplotlib.use", "mpl.use"):
            self.backend.append(node.lineno)
        self.generic_visit(node)


def _scan():
    out = {}
    for modname, path, is_pkg in _modules():
        v = _Imports(modname, is_pkg)
        v.visit(ast.parse(path.read_text(), filename=str(path)))
        out[modname] = (path, v)
    return out


SCAN = _scan()


def _where(modname: str, line: int) -> str:
    return f"{SCAN[modname][0].relative_to(PKG.parent).as_posix()}:{line}"


def _violations() -> dict[str, list[str]]:
    rules: dict[str, list[str]] = {
        k: [] for k in ("layer", "cli", "kernels", "dynamic", "local", "cycle", "backend")
    }
    for mod, (path, v) in SCAN.items():
        src = _layer_of(mod) if mod else None
        if src != "cli":
            for line in v.backend:
                rules["backend"].append(f"{_where(mod, line)} library code calls matplotlib.use")
        for line, function in v.dynamic:
            if mod == "" and function == "__getattr__":
                continue  # the face's lazy loader, checked by the test_face_* tests below
            rules["dynamic"].append(f"{_where(mod, line)} importlib/__import__ string import")
        for target, line, local, internal in v.found:
            top = target.split(".")[0]
            if not internal:
                if local and top not in OPTIONAL and mod != "cli":
                    rules["local"].append(f"{_where(mod, line)} function-local import {target}")
                continue
            name = f"cnnmft.{target}" if target else "cnnmft"
            lazy_stack = top in OPTIONAL_OWN and mod.split(".")[0] != top  # not from inside
            if local and mod != "cli" and not lazy_stack:
                rules["local"].append(f"{_where(mod, line)} function-local import {name}")
            if target.split(".")[0] == mod.split(".")[0] and mod:
                continue  # inside its own package (e.g. pytorch.train -> pytorch.init)
            dst = _layer_of(target) if target else "checks"  # `import cnnmft`: the whole face
            if mod.startswith("_kernels") and target.split(".")[0] not in KERNEL_PLUMBING:
                rules["kernels"].append(f"{_where(mod, line)} imports {name}")
            if dst == "cli" and src != "cli" and mod:
                rules["cli"].append(f"{_where(mod, line)} library imports {name}")
            if mod and src and dst and RANK[dst] > RANK[src]:
                rules["layer"].append(f"{_where(mod, line)} {src} module imports {name} ({dst})")
    rules["cycle"] = _cycles()
    return rules


def _cycles() -> list[str]:
    graph: dict[str, set[str]] = {m: set() for m in SCAN}
    for mod, (_, v) in SCAN.items():
        for target, _line, local, internal in v.found:
            if internal and not local and target in SCAN and target != mod:
                graph[mod].add(target)
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            # a package's __init__ importing its own submodules is not a cycle of concern
            real = [c for c in comp if c]
            if len(real) > 1:
                out.append("import cycle: " + " -> ".join(sorted(f"cnnmft.{c}" for c in real)))

    for v in graph:
        if v not in index:
            strong(v)
    return out


VIOLATIONS = _violations()


def test_every_module_has_a_layer():
    missing = [m for m in SCAN if m and _layer_of(m) is None]
    assert not missing, f"classify these modules in tests/test_layering.py: {missing}"


@pytest.mark.parametrize("rule", sorted(VIOLATIONS))
def test_rule(rule):
    new = [v for v in VIOLATIONS[rule] if _key(v) not in KNOWN]
    assert not new, f"{rule} rule broken:\n" + "\n".join(f"{v}  [{_owner(v)}]" for v in new)
    if VIOLATIONS[rule]:
        owners = sorted({_owner(v) for v in VIOLATIONS[rule]})
        pytest.xfail(
            f"{len(VIOLATIONS[rule])} known {rule} violations left, owners "
            f"{', '.join(owners)}:\n" + "\n".join(VIOLATIONS[rule])
        )


def test_import_cnnmft_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, cnnmft; heavy = [m for m in ('torch', 'matplotlib', 'dask', 'pandas', "
        "'xarray') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"`import cnnmft` imported {out}"


# ------------------------------------------------------------------------------------------------
# the lazy face: cnnmft/__init__.py maps every public name to its module (a static table) and
# imports that module on first use; the one documented exception to the dynamic-import rule
# ------------------------------------------------------------------------------------------------

FACE = ast.parse((PKG / "__init__.py").read_text())


def _face_literal(name: str):
    """The node assigned to `name` at the face's top level (exactly one assignment)."""
    found = [
        node.value
        for node in FACE.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    ]
    assert len(found) == 1, f"cnnmft/__init__.py must assign {name} once at top level"
    return found[0]


def _face_table() -> dict[str, str]:
    return ast.literal_eval(_face_literal("_LAZY"))


def _toplevel(body):
    """Statements run at import time: the body and the branches of top-level if/try."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _toplevel(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            handlers = [s for h in node.handlers for s in h.body]
            yield from _toplevel(node.body + handlers + node.orelse + node.finalbody)


def _defines(module: str) -> set[str]:
    """Names bound at the top level of ``cnnmft.<module>``: defs, classes, assignments, imports."""
    path = PKG / f"{module}.py"
    if not path.exists():
        path = PKG / module / "__init__.py"
    names = set()
    for node in _toplevel(ast.parse(path.read_text()).body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def test_face_table_is_a_static_literal():
    node = _face_literal("_LAZY")
    assert isinstance(node, ast.Dict), "_LAZY must be a dict display"
    keys = [ast.literal_eval(k) for k in node.keys]  # a ** unpacking gives None here
    assert None not in keys and len(keys) == len(set(keys)), "duplicate or unpacked keys"
    table = _face_table()  # raises ValueError on anything but literals
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in table.items())
    # nothing changes it afterwards: the only store is the assignment, the only use is .get
    stores = [n for n in ast.walk(FACE) if isinstance(n, ast.Name) and n.id == "_LAZY"]
    assert sum(isinstance(n.ctx, ast.Store) for n in stores) == 1
    uses = {
        n.attr
        for n in ast.walk(FACE)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "_LAZY"
    }
    assert uses <= {"get"}, uses
    assert not any(
        isinstance(n, ast.Subscript) and isinstance(n.ctx, ast.Store) and n.value in stores
        for n in ast.walk(FACE)
    )


def test_face_table_names_modules_that_define_them():
    wrong = []
    for name, module in _face_table().items():
        if "." in module or not _exists(module):
            wrong.append(f"{name}: no module cnnmft.{module}")
        elif name != module and name not in _defines(module):  # name == module: the submodule
            wrong.append(f"{name}: cnnmft.{module} neither defines nor imports it")
    assert not wrong, "\n".join(wrong)


def test_face_type_checking_block_lists_the_table():
    blocks = [
        n for n in FACE.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1 and not blocks[0].orelse
    seen: list[tuple[str, str]] = []
    for node in blocks[0].body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.unparse(node)
        for alias in node.names:
            assert alias.asname is None, ast.unparse(node)
            seen.append((alias.name, node.module or alias.name))
    assert seen == list(_face_table().items())  # same names, modules and order


def test_face_all_is_the_table():
    assert ast.literal_eval(_face_literal("__all__")) == list(_face_table())


def test_face_submodules_are_the_public_modules():
    listed = ast.literal_eval(_face_literal("_SUBMODULES"))
    on_disk = sorted(
        p.stem if p.suffix == ".py" else p.name
        for p in PKG.iterdir()
        if not p.name.startswith("_") and (p.suffix == ".py" or (p / "__init__.py").exists())
    )
    assert list(listed) == on_disk


def test_face_imports_nothing_of_the_package_at_run_time():
    _, v = SCAN[""]
    assert [t for t, _line, _local, internal in v.found if internal] == []
    assert {t for t, *_ in v.found} <= {"importlib", "typing"}
    assert [f for _line, f in v.dynamic] == ["__getattr__"]
