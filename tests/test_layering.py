"""Layer rules of the package, read from the source with :mod:`ast` (nothing is imported).

Imports flow one way, from lower to higher layers::

    plumbing     results, _validation, _util, _threads, conventions, plotting
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
* no ``importlib.import_module``/``__import__``;
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
_PREFIXES = {"_covariance_": "maths", "_spectrum_": "maths", "_network_": "maths"}

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
KNOWN: set[str] = {
    # TRAIN: the torchrun entry point imports train lazily because train imports this module
    # (a cycle to be broken by moving main() out of distributed.py)
    "cnnmft/pytorch/distributed.py function-local import cnnmft.pytorch.train",
}


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
        self.generic_visit(node)
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
            self.dynamic.append(node.lineno)
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
        for line in v.dynamic:
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
