r"""Order-chaos phase diagrams over (sigma_w2, sigma_b2) grids.

Every grid point gets the fixed point of :func:`cnnmft.fixed_point` (q*, c*, chi_1, chi_q,
chi_c, xi_q, xi_c and a status code). Columns of fixed sigma_b2 run in parallel (numba threads)
and each point warm-starts from its neighbour. For built-in bounded activations on large grids
the one-dimensional integrals E[phi^2], d/dq E[phi^2], E[phi'^2] and the Mehler (Hermite)
coefficients of the c-map,

.. math:: \mathbb E[\phi(u_1)\phi(u_2)] = \sum_k a_k^2 c^k,\qquad
   a_k = \mathbb E[\phi(\sqrt{q^*}z)\,\mathrm{He}_k(z)]/\sqrt{k!},

are tabulated once as piecewise Chebyshev series in log q, each piece verified against direct
quadrature; the c* equation is then solved on the series with a rigorous truncation bound
(Parseval: sum_k a_k^2 = E[phi^2]) and falls back to direct bivariate quadrature where the bound
is not below 1e-14.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cnnmft import _validation as V
from cnnmft._kernels import _custom
from cnnmft._kernels import _tables as _builtin_tables  # tables: built-in activations only
from cnnmft.activations import get_activation
from cnnmft.meanfield import (
    _attractors,
    _bound2,
    _chunks,
    _phi_props,
    critical_sigma_w2,
    depth_scale,
)
from cnnmft.results import ResultMixin, status_counts

__all__ = ["PhaseDiagram", "phase_diagram", "QUANTITIES"]

QUANTITIES = ("q_star", "c_star", "chi_1", "chi_q", "chi_c", "xi_q", "xi_c")


@dataclasses.dataclass(frozen=True, eq=False)
class PhaseDiagram(ResultMixin):
    """Mean-field quantities on a (sigma_w2, sigma_b2) grid.

    Attributes
    ----------
    activation : str
        Activation name.
    sigma_w2 : ndarray, shape (n_w,)
        Grid of weight variances (ascending).
    sigma_b2 : ndarray, shape (n_b,)
        Grid of bias variances.
    q_star, c_star, chi_1, chi_q, chi_c, xi_q, xi_c : ndarray, shape (n_w, n_b)
        As in :class:`cnnmft.FixedPoint`.
    status : ndarray of int, shape (n_w, n_b)
        :class:`cnnmft.Status` codes.
    nit : ndarray of int, shape (n_w, n_b)
        Root-finder iterations.
    critical_sigma_w2 : ndarray, shape (n_b,)
        The order-chaos line chi_1 = 1 at each sigma_b2 (NaN where none exists, e.g. relu).
    q_star_low, q_unstable, q_star_high : ndarray, shape (n_w, n_b), or None
        The fixed points of a bistable q-map (status BISTABLE), as in
        :class:`cnnmft.FixedPoint`; NaN elsewhere.
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
    critical_sigma_w2: np.ndarray
    q_star_low: np.ndarray | None = None
    q_unstable: np.ndarray | None = None
    q_star_high: np.ndarray | None = None

    def trainable_depth(self, factor=6.0):
        """``factor * xi_c`` on the grid, shape (n_w, n_b)."""
        return factor * self.xi_c

    def summary(self) -> str:
        """One-paragraph text summary (grid, phases, status counts)."""
        chaotic = float(np.mean(self.chi_1 > 1.0))
        return (
            f"{self.activation}: {self.sigma_w2.size} x {self.sigma_b2.size} grid, "
            f"sigma_w2 in [{self.sigma_w2.min():g}, {self.sigma_w2.max():g}], sigma_b2 in "
            f"[{self.sigma_b2.min():g}, {self.sigma_b2.max():g}]; chaotic fraction "
            f"{chaotic:.3f}; status {status_counts(self.status)}"
        )


def _tables(code, q_lo, q_hi):
    t0 = float(np.log(q_lo))
    npieces = max(1, int(np.ceil((np.log(q_hi) - t0) / _builtin_tables.WIDTH)))
    table = np.zeros((npieces, _builtin_tables.NF, _builtin_tables.DEG + 1))
    valid = np.zeros(npieces, dtype=np.bool_)
    maxerr = np.zeros(npieces)
    _builtin_tables.build(code, t0, npieces, table, valid, maxerr)
    return t0, npieces, table, valid, maxerr


def phase_diagram(
    act, sigma_w2, sigma_b2, *, tol=1e-15, maxiter=200, critical_line=True, method="auto"
):
    r"""Fixed points, slopes and depth scales on the grid ``sigma_w2 x sigma_b2``.

    Parameters
    ----------
    act : str or Activation
        Activation.
    sigma_w2 : array_like, shape (n_w,)
        Weight variances ``> 0`` (sorted internally; the result is ascending).
    sigma_b2 : array_like, shape (n_b,)
        Bias variances ``>= 0``.
    tol : float
        Relative tolerance of q*, absolute tolerance of c*.
    maxiter : int
        Iteration cap per root.
    critical_line : bool
        Also compute the critical sigma_w2 for every sigma_b2 (the line drawn on plots).
    method : {"auto", "tables", "quadrature"}
        ``"tables"``: tabulate E[phi^2], its derivative, E[phi'^2] and the Mehler coefficients
        as piecewise Chebyshev series in log q over the range of q* on the grid (each piece is
        verified against direct quadrature to 1e-13; points outside valid pieces are computed
        directly). ``"quadrature"``: every point by direct quadrature and the per-point Mehler
        series (slower, independent). ``"auto"`` uses tables for built-in bounded activations
        on grids of 2,000 points or more.

    Returns
    -------
    PhaseDiagram
        Arrays of shape ``(n_w, n_b)``; ``to_dict``, ``save`` (.npz/.json) and ``load``.

    References
    ----------
    .. [1] Schoenholz et al. 2017, Fig. 1 and 3; Xiao et al. 2018, Fig. 2 and §2.6.

    Examples
    --------
    >>> pd = phase_diagram("erf", [0.5, 1.0, 2.0], [0.0, 0.1])
    >>> pd.c_star.shape
    (3, 2)
    """
    a = get_activation(act)
    sw = np.sort(V.as_float_array(sigma_w2, "sigma_w2", low=0.0, low_open=True).ravel())
    sb = V.as_float_array(sigma_b2, "sigma_b2", low=0.0).ravel().copy()
    if sw.size == 0 or sb.size == 0:
        raise ValueError("`sigma_w2` and `sigma_b2` must be non-empty")
    tol = V.as_float(tol, "tol", low=1e-16, high=1e-3)
    maxiter = V.as_int(maxiter, "maxiter", low=1)
    ns, code = _custom.kernels(a)
    zero, odd = _phi_props(a)
    out = np.empty((sw.size, sb.size, 7))
    status = np.empty((sw.size, sb.size), dtype=np.int64)
    nit = np.empty((sw.size, sb.size), dtype=np.int64)
    method = V.as_choice(method, "method", {"auto", "tables", "quadrature"})
    bounded = a.bounded and a.code < 100
    if method == "tables" and not bounded:
        raise ValueError(
            f"`method`='tables' needs a built-in bounded activation; {a.name!r} is "
            "not one (use 'auto' or 'quadrature')"
        )
    use_tables = method == "tables" or (method == "auto" and bounded and sw.size * sb.size >= 2000)
    T = ns.tables
    if use_tables and (sb > 0).any():
        bound = float(np.max(np.abs(a.phi(np.array([-60.0, 0.0, 60.0])))))
        q_lo = max(T.QMIN, 0.99 * float(sb[sb > 0].min()))
        q_hi = 1.01 * (float(sw.max()) * bound**2 + float(sb.max()))
        t0, npieces, table, valid, _ = _tables(code, q_lo, max(q_hi, 1.01 * q_lo))
    else:  # no table: every point by direct quadrature and the per-point Mehler series
        t0, npieces = 0.0, 0
        table = np.zeros((0, T.NF, T.DEG + 1))
        valid = np.zeros(0, dtype=np.bool_)
    b2 = _bound2(a)
    T.grid(code, sw, sb, zero, odd, tol, maxiter, out, status, nit, t0, npieces, table, valid, b2)
    sw_flat, sb_flat = (np.ascontiguousarray(x.ravel()) for x in np.meshgrid(sw, sb, indexing="ij"))
    roots = _attractors(
        a,
        sw_flat,
        sb_flat,
        out.reshape(-1, 7),
        status.reshape(-1),
        nit.reshape(-1),
        tol,
        maxiter,
        _chunks(sw_flat.size, None),
        True,
    )
    roots = roots.reshape(sw.size, sb.size, 3)
    q, c, chi1, chiq, chic = (out[..., j] for j in range(5))
    xi_q, xi_c = depth_scale(chiq), depth_scale(chic)
    inf = ~np.isfinite(q)
    xi_q[inf] = np.nan
    xi_c[inf] = np.nan
    crit = critical_sigma_w2(a, sb).sigma_w2 if critical_line else np.full(sb.size, np.nan)
    return PhaseDiagram(
        activation=a.name,
        sigma_w2=sw,
        sigma_b2=sb,
        q_star=q.copy(),
        c_star=c.copy(),
        chi_1=chi1.copy(),
        chi_q=chiq.copy(),
        chi_c=chic.copy(),
        xi_q=xi_q,
        xi_c=xi_c,
        status=status,
        nit=nit,
        critical_sigma_w2=crit,
        q_star_low=roots[..., 0],
        q_unstable=roots[..., 1],
        q_star_high=roots[..., 2],
    )
