"""Result containers shared by every module: the :class:`Status` codes and a saving mixin.

Result objects are frozen dataclasses. Every array field is documented with its shape in the
class docstring of the result. All results can be turned into a plain ``dict`` of numpy arrays
(:meth:`ResultMixin.to_dict`), saved to ``.npz`` or ``.json`` and loaded back
(:meth:`ResultMixin.save`, :meth:`ResultMixin.load`).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["Status", "ResultMixin", "status_counts"]


class Status(enum.IntEnum):
    """Per-element outcome of a numerical computation (scipy style).

    Zero is success; negative values are failures; positive values are legitimate special
    outcomes that are not failures but need a different reading of the numbers.

    Attributes
    ----------
    OK : 0
        Converged to the requested tolerance.
    ZERO : 1
        The fixed point is exactly zero (e.g. q* = 0 for sigma_b2 = 0 in the ordered phase).
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
    INTERRUPTED : -5
        The computation was interrupted (KeyboardInterrupt / Ctrl-C) before it finished; the
        outputs not yet computed are NaN.
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
    INTERRUPTED = -5


def status_counts(status) -> dict[str, int]:
    """Count how many elements of a status array carry each :class:`Status` code.

    Parameters
    ----------
    status : array_like of int
        Status codes.

    Returns
    -------
    dict
        ``{name: count}`` for the codes that occur.
    """
    status = np.asarray(status)
    out = {}
    for s in Status:
        n = int(np.count_nonzero(status == int(s)))
        if n:
            out[s.name] = n
    return out


def _to_jsonable(value):
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype),
                "shape": list(value.shape)}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    return value


def _from_jsonable(value):
    if isinstance(value, dict) and "__ndarray__" in value:
        return np.array(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
    if isinstance(value, dict):
        return {k: _from_jsonable(v) for k, v in value.items()}
    return value


class ResultMixin:
    """Mixin for frozen result dataclasses: ``to_dict``, ``save`` and ``load``.

    ``save(path)`` writes ``.npz`` (arrays, compressed) or ``.json`` (human-readable) depending on
    the suffix; ``load(path)`` is a classmethod that returns an equal object. Writes are atomic:
    the file is written under a temporary name and renamed.
    """

    def to_dict(self) -> dict:
        """Return the fields as a ``dict`` keyed by field name (arrays stay numpy arrays)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict):
        """Build the result back from :meth:`to_dict` output (unknown keys are rejected)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"`d` has keys {sorted(unknown)} that {cls.__name__} does not know")
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in d:
                v = d[f.name]
                if isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "U":
                    v = str(v)
                elif isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "fiub":
                    v = v.item()
                kwargs[f.name] = v
        return cls(**kwargs)

    def save(self, path) -> Path:
        """Save to ``.npz`` or ``.json`` (chosen by the suffix of `path`); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        d = self.to_dict()
        if path.suffix == ".json":
            with open(tmp, "w") as fh:
                json.dump({"__class__": type(self).__name__, **_to_jsonable(d)}, fh, indent=1)
        elif path.suffix == ".npz":
            arrays = {k: np.asarray(v) for k, v in d.items() if v is not None}
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, __class__=np.array(type(self).__name__), **arrays)
        else:
            raise ValueError(f"`path` must end in .npz or .json, got {str(path)!r}")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path):
        """Load a result written by :meth:`save`."""
        path = Path(path)
        if path.suffix == ".json":
            with open(path) as fh:
                d = json.load(fh)
            d.pop("__class__", None)
            d = _from_jsonable(d)
            d = {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in d.items()}
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files if k != "__class__"}
        else:
            raise ValueError(f"`path` must end in .npz or .json, got {str(path)!r}")
        return cls.from_dict(d)


def _array_eq(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y),
                              equal_nan=np.asarray(x).dtype.kind == "f")
               for x, y in zip(a, b))


@dataclasses.dataclass(frozen=True, eq=False)
class FixedPoint(ResultMixin):
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

    def __eq__(self, other):
        return type(self) is type(other) and self.activation == other.activation and _array_eq(
            [getattr(self, f.name) for f in dataclasses.fields(self)][1:],
            [getattr(other, f.name) for f in dataclasses.fields(other)][1:])


@dataclasses.dataclass(frozen=True, eq=False)
class CriticalPoint(ResultMixin):
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

    def __eq__(self, other):
        return type(self) is type(other) and self.activation == other.activation and _array_eq(
            [self.sigma_w2, self.sigma_b2, self.q_star, self.chi_q, self.status],
            [other.sigma_w2, other.sigma_b2, other.q_star, other.chi_q, other.status])
