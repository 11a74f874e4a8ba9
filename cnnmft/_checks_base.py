"""The rows of the theory-against-simulation checks: verdicts, pass thresholds, result tables.

Shared by :mod:`cnnmft.checks` (the checks of the paper's idealised network) and the network
checks (zero padding, strides, pooling, gradients, NTK); see :mod:`cnnmft.checks` for the pass
rules.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm, t

ALPHA = 1e-3


def z_threshold(m, alpha=ALPHA, dof=None):
    """Bonferroni two-sided threshold for `m` comparisons at family-wise level `alpha`.

    Normal quantile, or Student-t with `dof` degrees of freedom when the standard errors are
    themselves estimated from ``dof + 1`` network draws:
    ``z_crit = F^{-1}(1 - alpha / (2 m))``.

    Examples
    --------
    >>> round(z_threshold(1), 4)  # the normal quantile at 1 - 5e-4
    3.2905
    >>> z_threshold(10, dof=11) > z_threshold(10)  # estimated errors: wider
    True
    """
    p = alpha / (2.0 * max(int(m), 1))
    return float(norm.isf(p) if dof is None else t.isf(p, dof))


class Verdict(str, enum.Enum):
    """Outcome of one check; compares equal to its value (``Verdict.PASS == "pass"``).

    Attributes
    ----------
    PASS : "pass"
        Every compared number within its threshold.
    FAIL : "fail"
        At least one compared number outside its threshold.
    ERROR : "error"
        The theory or the simulation raised (counts as a failure).
    NOT_AVAILABLE : "not available"
        The theory function is not installed (neither a pass nor a failure).
    """

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    NOT_AVAILABLE = "not available"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass
class CheckResult:
    """One row of the validation table.

    Attributes
    ----------
    name : str
        Check name (see :data:`CHECKS`).
    group : str
        ``"fixed point"``, ``"trajectory"``, ``"covariance"``, ``"modes"`` or ``"jacobian"``.
    description : str
        What is compared, with the configuration.
    status : Verdict
        PASS, FAIL, ERROR (the theory or the simulation raised; counts as a failure) or
        NOT_AVAILABLE (the theory function is not installed); equal to the strings ``"pass"``,
        ``"fail"``, ``"error"``, ``"not available"``.
    z : float
        Largest ``|theory - mc| / stderr`` over the compared numbers (NaN if none).
    z_crit : float
        Its threshold (Bonferroni over ``n_compared``).
    n_compared : int
        Number of numbers compared by z-score.
    ks : float
        KS distance of spectra (NaN if not a spectrum check).
    ks_crit : float
        Its threshold.
    seconds : float
        Run time.
    note : str
        Why the check is not available, or extra information.
    curves : dict
        Arrays for the overlay figure (theory and Monte Carlo with error bars).
    """

    name: str
    group: str
    description: str
    status: Verdict = Verdict.NOT_AVAILABLE
    z: float = float("nan")
    z_crit: float = float("nan")
    n_compared: int = 0
    ks: float = float("nan")
    ks_crit: float = float("nan")
    seconds: float = 0.0
    note: str = ""
    curves: dict = field(default_factory=dict, repr=False)

    def __setattr__(self, name, value):
        if name == "status":
            value = Verdict(value)
        super().__setattr__(name, value)

    @property
    def passed(self) -> bool:
        """True when the check ran and passed (``not available`` is not a pass)."""
        return self.status == Verdict.PASS

    def row(self) -> dict:
        """Return the table row (without the curves)."""
        return {
            "name": self.name,
            "group": self.group,
            "status": self.status.value,
            "z": self.z,
            "z_crit": self.z_crit,
            "n_compared": self.n_compared,
            "ks": self.ks,
            "ks_crit": self.ks_crit,
            "seconds": round(self.seconds, 2),
            "description": self.description,
            "note": self.note,
        }


@dataclass
class ValidationResult:
    """All rows of a validation run.

    Attributes
    ----------
    checks : list of CheckResult
    quick : bool
    seconds : float
    """

    checks: list
    quick: bool
    seconds: float

    @property
    def failed(self) -> list:
        """Names of the checks that failed."""
        return [c.name for c in self.checks if c.status in (Verdict.FAIL, Verdict.ERROR)]

    @property
    def ok(self) -> bool:
        """True when no check failed (``not available`` rows do not count as failures)."""
        return not self.failed

    def table(self) -> list:
        """List of row dicts."""
        return [c.row() for c in self.checks]

    def markdown(self) -> str:
        """Return the table as Markdown."""
        head = "| check | group | status | max abs z | z crit | KS | KS crit | s | note |"
        lines = [head, "|" + "---|" * 9]
        for c in self.checks:
            lines.append(
                f"| {c.name} | {c.group} | {c.status} | {c.z:.2f} | {c.z_crit:.2f} | "
                f"{c.ks:.3f} | {c.ks_crit:.3f} | {c.seconds:.1f} | {c.note} |"
            )
        return "\n".join(lines)


def _zcheck(res, theory, mcv, se, dof=None):
    theory, mcv, se = (np.asarray(a, dtype=np.float64).ravel() for a in (theory, mcv, se))
    ok = np.isfinite(theory) & np.isfinite(mcv) & (se > 0)
    z = np.abs(theory[ok] - mcv[ok]) / se[ok]
    res.n_compared = int(ok.sum())
    res.z = float(z.max()) if z.size else float("nan")
    res.z_crit = z_threshold(res.n_compared, dof=dof)
    return bool(z.size) and res.z <= res.z_crit
