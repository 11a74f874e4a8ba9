"""Result containers shared by every module: :class:`Status`, the :class:`Result` base.

* :class:`Status` is the only status vocabulary of the package: every result, per point and per
  cell, stores these codes (zero success, negative failure, positive a special outcome), and
  the numba kernels read the same values from ``cnnmft/_kernels/_codes.py``.
* :class:`Result` is the base of every result object: a frozen dataclass with one equality
  (arrays by value, NaN equal to NaN, so a result equals its reloaded copy), ``to_dict``,
  ``save``/``load`` (``.npz`` or ``.json``, atomic, no pickle), ``success`` from the status
  fields, ``plot(ax=None)`` through :mod:`cnnmft.plotting`, and ``to_dataframe``/``to_xarray``
  for the tables and grids (optional pandas/xarray).

Every array field is documented with its shape in the class docstring of its result.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cnnmft import plotting
from cnnmft._util import atomic_write_bytes, atomic_write_text

__all__ = ["Status", "Result", "status_counts", "status_names", "FixedPoint", "CriticalPoint"]


class Status(enum.IntEnum):
    """Per-element outcome of a numerical computation (scipy style).

    Zero is success; negative values are failures; positive values are legitimate special
    outcomes that are not failures but need a different reading of the numbers.

    Attributes
    ----------
    OK : 0
        Converged to the requested tolerance.
    ZERO : 1
        The value is exactly zero (e.g. q* = 0 for sigma_b2 = 0 in the ordered phase, or a
        spectral density at a point outside its support).
    INFINITE : 2
        The fixed point is at infinity (e.g. ReLU with sigma_w2 >= 2: q^l grows without bound).
    MARGINAL : 3
        The fixed point is marginally stable (slope exactly 1 within tolerance, e.g. the critical
        point itself); values are reported but the depth scale is infinite.
    MAXITER : -2
        The iteration cap was reached before the tolerance.
    NONFINITE : -3
        A non-finite number (overflow) appeared; the affected outputs are NaN.
    NO_SOLUTION : -4
        The problem has no solution for this input (e.g. the critical line would need
        sigma_b2 < 0); the affected outputs are NaN.
    BISTABLE : 4
        The map has more than one stable fixed point, so the fate of an input depends on where
        it starts (e.g. the gelu and swish q-maps near sigma_w2 ~ 2.3: a stable q* ~ 0.19 below
        an unstable one, above which q^l grows without bound). The result reports every stable
        point and the unstable one that separates their basins (e.g. ``q_star_low``,
        ``q_unstable``, ``q_star_high`` of :class:`FixedPoint`).
    UNSTABLE : 5
        The point returned is a fixed point but not a stable one (slope > 1), e.g. a critical
        point (chi_1 = 1) whose length fixed point has chi_q > 1: iterating the map from nearby
        moves away from it. Values are reported.
    INACCURATE : 6
        A value is reported but did not reach the requested tolerance (e.g. Newton's method
        stalled at the rounding level, or an adaptive quadrature reached its depth cap at a pole
        on the real axis); usable with care.
    INTERRUPTED : -5
        The computation was interrupted (KeyboardInterrupt / Ctrl-C) before it finished; the
        outputs not yet computed are NaN.
    AT_CHANCE : -6
        A training run finished but its test accuracy is within three standard errors of
        chance: the network did not learn (e.g. a learning rate far too large or too small).
    FAILED : -7
        The computation raised an error and produced no value (e.g. a sweep cell whose function
        raised; the message is kept next to the status).
    """

    OK = 0
    ZERO = 1
    INFINITE = 2
    MARGINAL = 3
    MAXITER = -2
    NONFINITE = -3
    NO_SOLUTION = -4
    BISTABLE = 4
    UNSTABLE = 5
    INACCURATE = 6
    INTERRUPTED = -5
    AT_CHANCE = -6
    FAILED = -7


def status_counts(status: ArrayLike) -> dict[str, int]:
    """Count how many elements of a status array carry each :class:`Status` code.

    Parameters
    ----------
    status : array_like of int
        Status codes.

    Returns
    -------
    dict
        ``{name: count}`` for the codes that occur.

    Examples
    --------
    >>> status_counts([0, 0, -2, 1])
    {'OK': 2, 'ZERO': 1, 'MAXITER': 1}
    """
    status = np.asarray(status)
    out = {}
    for s in Status:
        n = int(np.count_nonzero(status == int(s)))
        if n:
            out[s.name] = n
    return out


def status_names(status: ArrayLike) -> np.ndarray:
    """Names of the :class:`Status` codes in `status`, same shape (``"?<code>"`` if unknown).

    Examples
    --------
    >>> status_names([0, -3, 7]).tolist()
    ['OK', 'NONFINITE', '?7']
    """
    codes = np.asarray(status)
    names = {int(s): s.name for s in Status}
    flat = [names.get(int(c), f"?{int(c)}") for c in codes.ravel()]
    return np.array(flat, dtype=object if not flat else None).reshape(codes.shape)


# ------------------------------------------------------------------------------------------------
# equality
# ------------------------------------------------------------------------------------------------


def values_equal(a: Any, b: Any) -> bool:
    """Equality of two result field values, the one rule used by :meth:`Result.__eq__`.

    Arrays (and lists, tuples and scalars, read as arrays) are equal when they have the same
    shape and the same entries; NaN equals NaN at the same place (a result with NaN cells, e.g.
    the NaN critical line of ReLU, equals its saved and reloaded copy). dtypes may differ
    (``1`` equals ``1.0``: a JSON round trip may turn a float scalar into an int). Dicts are
    equal key by key, ``None`` only equals ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> values_equal(np.array([1.0, np.nan]), [1.0, float("nan")])
    True
    >>> values_equal(np.zeros(2), np.zeros(3))
    False
    """
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.keys() == b.keys()
            and all(values_equal(a[k], b[k]) for k in a)
        )
    try:
        x, y = np.asarray(a), np.asarray(b)
    except (TypeError, ValueError):  # ragged sequences: compare element by element
        return (len(a) == len(b)) and all(values_equal(u, v) for u, v in zip(a, b))
    if x.shape != y.shape:
        return False
    if x.dtype.kind in "biufc" and y.dtype.kind in "biufc":
        nan = x.dtype.kind in "fc" or y.dtype.kind in "fc"
        return bool(np.array_equal(x, y, equal_nan=nan))
    if x.dtype.kind == "O" or y.dtype.kind == "O":
        return all(values_equal(u, v) for u, v in zip(x.ravel().tolist(), y.ravel().tolist()))
    if x.dtype.kind != y.dtype.kind:
        return False
    return bool(np.array_equal(x, y))


# ------------------------------------------------------------------------------------------------
# saving
# ------------------------------------------------------------------------------------------------


def _to_jsonable(value):
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "c":
            return {
                "__ndarray__": value.real.tolist(),
                "imag": value.imag.tolist(),
                "dtype": str(value.dtype),
                "shape": list(value.shape),
            }
        return {
            "__ndarray__": value.tolist(),
            "dtype": str(value.dtype),
            "shape": list(value.shape),
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, np.generic):
        return _to_jsonable(np.asarray(value)) if value.dtype.kind == "c" else value.item()
    if isinstance(value, complex):
        return _to_jsonable(np.asarray(value))
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    return value


def _from_jsonable(value):
    if isinstance(value, dict) and "__ndarray__" in value:
        arr = np.array(value["__ndarray__"], dtype=np.float64 if "imag" in value else None)
        if "imag" in value:
            arr = arr + 1j * np.array(value["imag"], dtype=np.float64)
        return arr.astype(value["dtype"]).reshape(value["shape"])
    if isinstance(value, dict):
        return {k: _from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_jsonable(v) for v in value]
    return value


def _npz_payload(d: dict) -> dict[str, np.ndarray]:
    """Arrays for ``np.savez``; None and values that are not plain arrays go to JSON keys."""
    arrays, extra = {}, {}
    for k, v in d.items():
        if isinstance(v, enum.Enum):
            v = v.value
        arr = None
        if v is not None and not isinstance(v, dict):
            try:
                arr = np.asarray(v)
            except (TypeError, ValueError):
                arr = None
        if arr is not None and arr.dtype.kind in "biufcUS":
            arrays[k] = arr
        else:
            extra[k] = _to_jsonable(v)
    if extra:
        arrays["__json__"] = np.array(json.dumps(extra))
    return arrays


def _npz_fields(z) -> dict:
    d = {k: z[k] for k in z.files if k not in ("__class__", "__json__")}
    if "__json__" in z.files:
        d.update(_from_jsonable(json.loads(str(z["__json__"]))))
    return d


@dataclasses.dataclass(frozen=True, eq=False)
class Result:
    """Base of every result object: a frozen dataclass with one equality, saving and status.

    Subclasses are frozen dataclasses whose class docstring states every field's shape.

    * ``a == b`` is True when `a` and `b` have the same type and every field is equal by
      :func:`values_equal`: arrays by shape and value with NaN equal to NaN. So a result equals
      its saved and reloaded copy (``.npz`` and ``.json``) even where it holds NaN cells, and
      comparing two results never raises. Subclasses get this equality whatever ``eq`` they pass
      to :func:`dataclasses.dataclass` (it is installed in each subclass before the decorator
      runs; the decorator does not overwrite a method the class already has). Results hold
      arrays and are not meant to be hashed.
    * :meth:`to_dict`, :meth:`from_dict`, :meth:`save`, :meth:`load`: plain dict, and files
      (``.npz``: arrays compressed, the rest as JSON inside; ``.json``: human readable), written
      atomically. Loading never runs code from the file (no pickle).
    * :attr:`success`: from the status field(s), True where no :class:`Status` is a failure.
    * :meth:`plot`: draws the result through :mod:`cnnmft.plotting` (needs matplotlib).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # pin the inherited equality in the class itself so that @dataclass (eq=True by
        # default) does not replace it with a field-tuple comparison that fails on arrays
        for name in ("__eq__", "__hash__"):
            if name not in cls.__dict__:
                inherited = next(k.__dict__[name] for k in cls.__mro__[1:] if name in k.__dict__)
                setattr(cls, name, inherited)

    def __eq__(self, other):
        if type(self) is not type(other):
            return NotImplemented
        return all(
            values_equal(getattr(self, f.name), getattr(other, f.name))
            for f in dataclasses.fields(self)
        )

    __hash__ = None

    def to_dict(self) -> dict:
        """Return the fields as a ``dict`` keyed by field name (arrays stay numpy arrays)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> Result:
        """Build the result back from :meth:`to_dict` output (unknown keys are rejected)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"`d` has keys {sorted(unknown)} that {cls.__name__} does not know")
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in d:
                v = d[f.name]
                if isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "US":
                    v = str(v)
                elif isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "fiubc":
                    v = v.item()
                kwargs[f.name] = v
        return cls(**kwargs)

    def save(self, path: str | os.PathLike) -> Path:
        """Save to ``.npz`` or ``.json`` (chosen by the suffix of `path`); returns the path.

        The write is atomic (:func:`cnnmft._util.atomic_write`).
        """
        path = Path(path)
        d = self.to_dict()
        if path.suffix == ".json":
            text = json.dumps({"__class__": type(self).__name__, **_to_jsonable(d)}, indent=1)
            return atomic_write_text(path, text)
        if path.suffix == ".npz":
            buf = io.BytesIO()
            np.savez_compressed(buf, __class__=np.array(type(self).__name__), **_npz_payload(d))
            return atomic_write_bytes(path, buf.getvalue())
        raise ValueError(f"`path` must end in .npz or .json, got {str(path)!r}")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Result:
        """Load a result written by :meth:`save` (the class stored in the file must match)."""
        path = Path(path)
        if path.suffix == ".json":
            with open(path) as fh:
                d = json.load(fh)
            stored = d.pop("__class__", cls.__name__)
            d = _from_jsonable(d)
            d = {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in d.items()}
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                stored = str(z["__class__"]) if "__class__" in z.files else cls.__name__
                d = _npz_fields(z)
        else:
            raise ValueError(f"`path` must end in .npz or .json, got {str(path)!r}")
        if stored != cls.__name__:
            raise ValueError(f"{str(path)!r} holds a {stored}, not a {cls.__name__}")
        return cls.from_dict(d)

    @property
    def success(self) -> bool | np.ndarray:
        """True where the status is not a failure (:class:`Status` code ``>= 0``).

        An array of bool for per-element statuses, a bool for one status. With several status
        fields (``status`` and ``*_status``) all of them must be free of failures (then a
        bool).
        """
        names = [
            f.name
            for f in dataclasses.fields(self)
            if f.name == "status" or f.name.endswith("_status")
        ]
        if not names:
            raise AttributeError(f"{type(self).__name__} has no status field")
        if names == ["status"]:
            ok = np.asarray(self.status) >= 0
            return bool(ok) if ok.ndim == 0 else ok
        return all(bool(np.all(np.asarray(getattr(self, n)) >= 0)) for n in names)

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """Draw this result with :mod:`cnnmft.plotting` and return the Axes (needs matplotlib).

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw; a new figure when None.
        **kwargs
            Passed to the plotting function registered for this type
            (:func:`cnnmft.plotting.plot_result`).
        """
        return plotting.plot_result(self, ax=ax, **kwargs)

    def to_dataframe(self) -> Any:
        """Return this result's table as a :class:`pandas.DataFrame` (needs pandas).

        One row per cell of the result's main grid (:meth:`coords`), in C order: a column per
        coordinate, and one per field laid on the grid or on its leading or trailing axes
        (broadcast over the others). For example a :class:`PhaseDiagram` of ``n_w x n_b``
        points gives ``n_w * n_b`` rows with columns ``sigma_w2, sigma_b2, q_star, ...`` and its
        ``critical_sigma_w2`` repeated along ``sigma_w2``.
        """
        import pandas as pd  # optional dependency

        dims, coords, data = self._grid()
        shape = tuple(len(c) for c in coords.values())
        grids = np.meshgrid(*[np.asarray(c) for c in coords.values()], indexing="ij")
        cols = {name: g.ravel() for name, g in zip(coords, grids)}
        for k, (vdims, a) in data.items():
            index = [dims.index(d) for d in vdims]
            expand = a.reshape([shape[i] if i in index else 1 for i in range(len(shape))])
            cols[k] = np.broadcast_to(expand, shape).ravel()
        return pd.DataFrame(cols)

    def to_xarray(self) -> Any:
        """Return this result as an :class:`xarray.Dataset` on its coordinate axes (needs xarray).

        Data variables are the fields laid on the main grid or on its leading or trailing axes,
        coordinates the fields that label the axes (:meth:`coords`), attributes the scalar and
        string fields.
        """
        import xarray as xr  # optional dependency

        dims, coords, data = self._grid()
        attrs = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (str, bool, int, float, np.generic)) and f.name not in data:
                attrs[f.name] = v.item() if isinstance(v, np.generic) else v
        return xr.Dataset(
            {k: (vdims, a) for k, (vdims, a) in data.items()},
            coords={k: (d, np.asarray(c)) for (k, c), d in zip(coords.items(), dims)},
            attrs=attrs,
        )

    def coords(self) -> dict[str, np.ndarray]:
        """The fields that label the axes of the result's main grid, one per axis.

        The main grid is the shape of the array fields of most axes (ties: the most common).
        A subclass may name its coordinates in a class attribute ``_coords`` (a tuple of field
        names); otherwise each axis takes the first 1-D field (in field order) of its length
        that is not itself on the grid, and ``index_<axis>`` (0, 1, ...) where there is none.
        """
        return self._grid()[1]

    def _grid(self):
        arrays = {
            f.name: np.asarray(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), (np.ndarray, list, tuple))
        }
        arrays = {k: a for k, a in arrays.items() if a.ndim >= 1 and a.dtype.kind != "O"}
        if not arrays:
            raise TypeError(f"{type(self).__name__} holds no array fields to tabulate")
        shapes = [a.shape for a in arrays.values() if a.size] or [a.shape for a in arrays.values()]
        main = max(set(shapes), key=lambda s: (len(s), shapes.count(s)))
        names = list(getattr(type(self), "_coords", ()))
        if not names:
            used: set[str] = set()
            for n in main:
                pick = next(
                    (
                        k
                        for k, a in arrays.items()
                        if a.ndim == 1 and a.shape == (n,) and k not in used and a.shape != main
                    ),
                    None,
                )
                names.append(pick)
                used.add(pick)
        coords = {}
        for i, (name, n) in enumerate(zip(names, main)):
            coords[name or f"index_{i}"] = arrays[name] if name else np.arange(n)
        dims = tuple(coords)
        data = {}
        for k, a in arrays.items():
            if k in coords:
                continue
            if a.shape == main:
                data[k] = (dims, a)
            elif a.shape == main[: a.ndim]:
                data[k] = (dims[: a.ndim], a)
            elif a.shape == main[len(main) - a.ndim :]:
                data[k] = (dims[len(main) - a.ndim :], a)
        return dims, coords, data


ResultMixin = Result  # the former name, kept for existing subclasses


@dataclasses.dataclass(frozen=True, eq=False)
class FixedPoint(Result):
    """Fixed point of the fully-connected (and CNN zero-mode) mean-field maps.

    Every array field has the broadcast shape ``S`` of the ``sigma_w2`` and ``sigma_b2`` inputs.

    Attributes
    ----------
    activation : str
        Activation name.
    sigma_w2, sigma_b2 : ndarray, shape S
        Weight and bias variances.
    q_star : ndarray, shape S
        Fixed point of the length map (``0`` with status ZERO, ``inf`` with status INFINITE).
    c_star : ndarray, shape S
        Fixed point of the correlation map (``1`` in the ordered phase).
    chi_1 : ndarray, shape S
        ``sigma_w2 E[phi'(sqrt(q*) z)^2]``: slope of the c-map at c = 1, gradient growth factor.
    chi_q : ndarray, shape S
        Slope of the q-map at q*.
    chi_c : ndarray, shape S
        Slope of the c-map at c* (equal to chi_1 when c* = 1).
    xi_q, xi_c : ndarray, shape S
        Depth scales ``-1/log(chi_q)`` and ``-1/log(chi_c)`` (``inf`` where the slope is 1).
    status : ndarray of int, shape S
        :class:`Status` codes.
    nit : ndarray of int, shape S
        Root-finder iterations (q* and c* together).
    residual : ndarray, shape S
        Relative residual of the q-map and absolute residual of the c-map at the fixed point,
        whichever is larger.
    q_star_low, q_unstable, q_star_high : ndarray, shape S, or None
        Where the q-map has more than one attractor (status BISTABLE): its lowest stable fixed
        point (0 when q = 0 attracts), the unstable fixed point that bounds that point's basin
        from above, and its highest attractor (``inf`` when q^l diverges from large inputs).
        ``q_star`` and the slopes then describe the attractor reached from ``q^0 = 1``. NaN
        elsewhere.
    """

    activation: str
    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    q_star: np.ndarray
    c_star: np.ndarray
    chi_1: np.ndarray
    chi_q: np.ndarray
    chi_c: np.ndarray
    xi_q: np.ndarray
    xi_c: np.ndarray
    status: np.ndarray
    nit: np.ndarray
    residual: np.ndarray
    q_star_low: np.ndarray | None = None
    q_unstable: np.ndarray | None = None
    q_star_high: np.ndarray | None = None

    @property
    def success(self):
        """Boolean array: True where the status is not a failure (``status >= 0``)."""
        return np.asarray(self.status) >= 0

    @property
    def phase(self):
        """String array: ``"ordered"`` (chi_1 < 1), ``"chaotic"`` (> 1) or ``"critical"``."""
        chi = np.asarray(self.chi_1)
        out = np.where(chi < 1.0, "ordered", "chaotic").astype("<U8")
        out[np.isclose(chi, 1.0, rtol=0, atol=1e-10)] = "critical"
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class CriticalPoint(Result):
    """A point, or points, of the order-chaos line chi_1 = 1.

    All array fields have the broadcast shape of the input (`q_star` for
    :func:`cnnmft.critical_point`, `sigma_b2` for :func:`cnnmft.critical_sigma_w2`).

    Attributes
    ----------
    activation : str
        Activation name.
    sigma_w2, sigma_b2 : ndarray
        The critical variances.
    q_star : ndarray
        The fixed point of the length map there.
    chi_q : ndarray
        Slope of the q-map at q* (xi_q = -1/log chi_q).
    status : ndarray of int
        :class:`Status`; NO_SOLUTION where no critical point exists (values NaN).
    """

    activation: str
    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    q_star: np.ndarray
    chi_q: np.ndarray
    status: np.ndarray
