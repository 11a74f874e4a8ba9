"""Command-line options generated from a config dataclass, config files, the resolved config.

A command whose settings live in a dataclass (``TrainConfig``, the sweep config) gets one flag
per field: ``--field-name``, with the field's default and the help text from
``field(metadata={"help": ...})``. The flag's type follows the field's annotation:

==========================  ===============================================================
annotation                  command line
==========================  ===============================================================
``int``, ``float``, ``str`` one value of that type
``bool``                    ``--name`` / ``--no-name``
``X | None``                as ``X``; the word ``none`` gives None
``tuple``, ``tuple[X, ...]`` zero or more values (``--name`` alone gives the empty tuple)
anything else (``object``)  a number when it reads as one, else the string (``1/depth``)
==========================  ===============================================================

Values come from three places, later ones winning: the dataclass defaults, a config file
(``--config FILE``: TOML or JSON, flat keys or a table named after the command, keys spelt
with ``_`` or ``-``), then the flags actually typed. :func:`resolve` returns the merged dict
and where each value came from; :func:`save_resolved` writes it next to a result as JSON that
``--config`` reads back.

The fields can be read from the dataclass itself (:func:`options_from_dataclass`) or, for a
dataclass in a module that imports torch, from its source without importing it
(:func:`options_from_source`): ``cnnmft train --help`` then never imports torch. A test checks
that both readings agree.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from cnnmft._util import atomic_write_text
from cnnmft._version import __version__

__all__ = [
    "Option",
    "options_from_dataclass",
    "options_from_source",
    "literal_from_source",
    "signature_defaults",
    "add_options",
    "load_config_file",
    "resolve",
    "save_resolved",
    "parse_scalar",
    "package_version",
]

_NONE = ("none", "null")


@dataclass(frozen=True)
class Option:
    """One config field seen from the command line.

    Attributes
    ----------
    name : str
        Field name (``sigma_w2``); the flag is ``--sigma-w2``.
    annotation : str
        The field's annotation as written (``"float | None"``).
    default : object
        Default value (the factory's value for ``default_factory`` fields).
    help : str
        Help text (``metadata["help"]``; empty when the field has none).
    """

    name: str
    annotation: str
    default: object
    help: str = ""

    @property
    def flag(self) -> str:
        """The long option, ``--field-name``."""
        return "--" + self.name.replace("_", "-")

    @property
    def optional(self) -> bool:
        """True when the annotation allows None."""
        return "None" in self.annotation or "Optional" in self.annotation

    @property
    def base(self) -> str:
        """The annotation without ``| None``: ``int``, ``float``, ``str``, ``bool``, ``tuple``."""
        text = re.sub(r"Optional\[(.*)\]", r"\1", self.annotation.replace(" ", ""))
        parts = [p for p in text.split("|") if p and p != "None"]
        head = parts[0] if len(parts) == 1 else "object"
        if head.startswith(("tuple", "Tuple", "list", "List", "Sequence")):
            return "tuple"
        return head if head in ("int", "float", "str", "bool") else "object"

    @property
    def element(self) -> str:
        """Element type of a tuple annotation (``tuple[int, ...]`` -> ``int``), else ``object``."""
        m = re.search(r"(?:tuple|Tuple|list|List|Sequence)\[(\w+)", self.annotation)
        return m.group(1) if m and m.group(1) in ("int", "float", "str") else "object"


# ------------------------------------------------------------------------- reading the fields


def options_from_dataclass(cls) -> list:
    """Return one :class:`Option` per field of the dataclass `cls` (in definition order)."""
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        ann = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        out.append(Option(f.name, str(ann), default, str(f.metadata.get("help", ""))))
    return out


def options_from_source(path, classname: str) -> list:
    """Read the fields of dataclass `classname` from the Python file `path` without importing it.

    Defaults must be literals, given directly, as ``field(default=<literal>)`` /
    ``field(default_factory=tuple|list|dict)``, or through a helper function of the same file
    that returns such a ``field(...)`` call (``_f(default, help)``); help strings are literals in
    ``metadata={"help": ...}``. When the class is not defined in `path` but imported there
    (``from cnnmft.x.y import TrainConfig``), the import is followed.
    """
    path = Path(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    helpers = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == classname:
            return [
                opt for stmt in node.body if (opt := _option_from_stmt(stmt, helpers)) is not None
            ]
    for node in tree.body:  # follow `from cnnmft.a.b import classname`
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.startswith("cnnmft.")
            and any(a.name == classname for a in node.names)
        ):
            root = path
            while root.name != "cnnmft":
                root = root.parent
            target = root.joinpath(*node.module.split(".")[1:])
            target = target / "__init__.py" if target.is_dir() else target.with_suffix(".py")
            return options_from_source(target, classname)
    raise LookupError(f"no dataclass {classname!r} in {path}")


def literal_from_source(path, name: str):
    """The value of the module-level literal ``name = <literal>`` in the Python file `path`.

    Read with :mod:`ast`, so a module that imports torch is not imported. LookupError when
    `path` assigns no literal to `name`.
    """
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and node.value:
            return ast.literal_eval(node.value)
    raise LookupError(f"no literal {name} = ... at the top level of {path}")


def signature_defaults(path, function: str) -> dict:
    """``{parameter: default}`` of the top-level function `function` in `path`, read with ast.

    Positional and keyword-only parameters with a literal default are included; parameters
    without a default or with a non-literal one are left out.
    """
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            a = node.args
            positional = a.posonlyargs + a.args
            pairs = list(zip(positional[len(positional) - len(a.defaults) :], a.defaults))
            pairs += [(p, d) for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            out = {}
            for param, default in pairs:
                try:
                    out[param.arg] = ast.literal_eval(default)
                except ValueError:
                    continue  # not a literal
            return out
    raise LookupError(f"no function {function}() at the top level of {path}")


def _call_name(node):
    return getattr(node.func, "id", None) or getattr(node.func, "attr", None)


def _inline(call, helpers):
    """``_f(a, b)`` -> the ``field(...)`` call its body returns, with the parameters replaced."""
    fn = helpers.get(_call_name(call))
    if fn is None:
        return call
    rets = [s for s in fn.body if isinstance(s, ast.Return)]
    if not rets or not isinstance(rets[0].value, ast.Call):
        return call
    params = [a.arg for a in fn.args.args]
    bound = dict(zip(params, call.args))
    bound.update({k.arg: k.value for k in call.keywords if k.arg})

    class Substitute(ast.NodeTransformer):
        def visit_Name(self, node):  # noqa: N802 - ast.NodeTransformer's method name
            return bound.get(node.id, node)

    return Substitute().visit(ast.parse(ast.unparse(rets[0].value), mode="eval").body)


def _option_from_stmt(stmt, helpers):
    if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
        return None
    ann = ast.unparse(stmt.annotation)
    if ann.startswith("ClassVar"):
        return None
    default, help_text = None, ""
    value = stmt.value
    if isinstance(value, ast.Call):
        value = _inline(value, helpers)
    if isinstance(value, ast.Call) and _call_name(value) == "field":
        kw = {k.arg: k.value for k in value.keywords}
        if "default" in kw:
            default = ast.literal_eval(kw["default"])
        elif "default_factory" in kw:
            factory = ast.unparse(kw["default_factory"])
            default = {"tuple": (), "list": [], "dict": {}}.get(factory)
        if "metadata" in kw:
            meta = ast.literal_eval(kw["metadata"])
            help_text = str(meta.get("help", ""))
    elif value is not None:
        default = ast.literal_eval(value)
    return Option(stmt.target.id, ann, default, help_text)


# ------------------------------------------------------------------------------ parsing values


def parse_scalar(text: str):
    """Read a command-line word as None (``none``), bool, int, float or else the string itself.

    >>> [parse_scalar(s) for s in ("3", "0.5", "1e-3", "none", "true", "1/depth")]
    [3, 0.5, 0.001, None, True, '1/depth']
    """
    low = text.strip().lower()
    if low in _NONE:
        return None
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _typed(kind: str, optional: bool):
    base = {"int": int, "float": float, "str": str}.get(kind, parse_scalar)

    def convert(text):
        if optional and text.strip().lower() in _NONE:
            return None
        return base(text)

    convert.__name__ = kind if kind in ("int", "float", "str") else "value"
    return convert


def _show_default(value) -> str:
    if isinstance(value, tuple | list):
        return " ".join(map(str, value)) if value else "empty"
    return "none" if value is None else str(value)


def add_options(parser, options, *, aliases=None, skip=(), groups=None, overrides=None):
    """Add one flag per option to `parser`; return ``{dest: Option}``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        Where the flags go.
    options : list of Option
        From :func:`options_from_dataclass` or :func:`options_from_source`.
    aliases : dict, optional
        Extra spellings, ``{"num_threads": ["--threads"]}``.
    skip : iterable of str
        Fields that get no flag (the command sets them).
    groups : dict, optional
        ``{group title: [field names]}``: flags shown under that heading in ``--help``; the rest
        go under "options".
    overrides : dict, optional
        ``{name: {"help": ..., "choices": ...}}`` added by the command; ``"default_text"``
        replaces the shown default (a default that depends on another setting).

    Every flag's argparse default is ``SUPPRESS``, so the namespace holds only what was typed;
    :func:`resolve` adds the defaults.
    """
    aliases, overrides = aliases or {}, overrides or {}
    where = {}
    for title, names in (groups or {}).items():
        g = parser.add_argument_group(title)
        for n in names:
            where[n] = g
    out = {}
    for opt in options:
        if opt.name in skip:
            continue
        extra = dict(overrides.get(opt.name, {}))
        text = extra.pop("help", None) or opt.help or opt.name.replace("_", " ")
        shown = extra.pop("default_text", None) or _show_default(opt.default)
        text = text.replace("%", "%%") + f" (default: {shown})"
        flags = [opt.flag, *aliases.get(opt.name, ())]
        kw = dict(dest=opt.name, default=argparse.SUPPRESS, help=text)
        if opt.base == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        elif opt.base == "tuple":
            kw.update(
                nargs="*",
                type=_typed(opt.element, False),
                metavar=opt.element.upper() if opt.element != "object" else "V",
            )
        else:
            kw.update(
                type=_typed(opt.base, opt.optional),
                metavar=opt.base.upper() if opt.base != "object" else "VALUE",
            )
        kw.update(extra)
        where.get(opt.name, parser).add_argument(*flags, **kw)
        out[opt.name] = opt
    return out


# --------------------------------------------------------------------------- files and merging


def load_config_file(path, command: str | None = None) -> dict:
    """Read a TOML (``.toml``) or JSON config file into ``{field_name: value}``.

    A table (TOML) or object (JSON) named after `command` is used when present, else the top
    level; a resolved config written by :func:`save_resolved` is read back as well. Keys may use
    ``-`` or ``_``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config: no such file {str(path)!r}")
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            try:
                import tomli as tomllib
            except ModuleNotFoundError:
                raise ValueError(
                    "--config: reading TOML needs Python >= 3.11 or the `tomli` "
                    "package; write the config as JSON instead"
                ) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"--config {path}: not valid TOML: {exc}") from None
    elif path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--config {path}: not valid JSON: {exc}") from None
    else:
        raise ValueError(f"--config must be a .toml or .json file, got {str(path)!r}")
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a table of settings at the top level")
    if "config" in data and isinstance(data["config"], dict) and "command" in data:
        data = data["config"]  # a file written by save_resolved
    elif command and isinstance(data.get(command), dict):
        data = data[command]
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def resolve(options: dict, args, file_values: dict | None = None, *, source="--config"):
    """Merge defaults, config-file values and typed flags; return ``(values, origin)``.

    Parameters
    ----------
    options : dict
        ``{name: Option}`` from :func:`add_options` (fields without a flag may be included).
    args : argparse.Namespace
        Parsed arguments (flags not typed are absent).
    file_values : dict, optional
        From :func:`load_config_file`; unknown keys raise ValueError naming them.

    Returns
    -------
    values : dict
        ``{field name: value}`` for every option.
    origin : dict
        ``{field name: "default" | "file" | "flag"}``.
    """
    file_values = dict(file_values or {})
    unknown = sorted(set(file_values) - set(options))
    if unknown:
        known = ", ".join(sorted(options))
        raise ValueError(f"{source}: unknown setting(s) {unknown}; known: {known}")
    values, origin = {}, {}
    for name, opt in options.items():
        if hasattr(args, name):
            values[name], origin[name] = getattr(args, name), "flag"
        elif name in file_values:
            val = file_values[name]
            values[name] = tuple(val) if opt.base == "tuple" and isinstance(val, list) else val
            origin[name] = "file"
        else:
            values[name], origin[name] = opt.default, "default"
        if opt.base == "tuple" and isinstance(values[name], list):
            values[name] = tuple(values[name])
    return values, origin


def _jsonable(value):
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return str(value)


def save_resolved(path, command: str, values: dict, origin: dict | None = None) -> Path:
    """Write the resolved settings as JSON (``--config`` reads the file back); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "command": command,
        "cnnmft_version": package_version(),
        "argv": sys.argv[1:],
        "config": _jsonable(values),
    }
    if origin:
        doc["set_by"] = {k: v for k, v in origin.items() if v != "default"}
    return atomic_write_text(path, json.dumps(doc, indent=1) + "\n")


def package_version() -> str:
    """The installed distribution's version (the one source: ``pyproject.toml``)."""
    return __version__
