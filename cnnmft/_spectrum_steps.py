"""The steps of :func:`cnnmft.jacobian_spectrum`: setup, atoms, continuation, assembly.

``setup`` validates the arguments, finds q*, builds the law of ``D^2`` (:mod:`cnnmft._spectrum_law`)
and the closed-form moments; one of ``atoms_only``, ``depth_one_part`` and ``continuation``
computes the normalised spectrum; ``assemble`` rescales it and returns the fields of
:class:`cnnmft.spectrum.Spectrum`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnnmft._kernels import _act
from cnnmft._kernels import _spectrum as _k
from cnnmft._spectrum_law import (
    auto_grid,
    depth_one,
    discrete_law,
    first_guess,
    lower_edge,
    make_law,
    upper_edge,
)
from cnnmft._validation import as_choice, as_float, as_float_array, as_int
from cnnmft.activations import get_activation
from cnnmft.meanfield import fixed_point
from cnnmft.results import Status

WEIGHTS = ("orthogonal", "gaussian")
_TAIL = 1e-10
_NARROW = 1e-7  # relative width of the law of phi'^2 below which it is treated as a point


def unsort(order, *sorted_arrays):
    """Undo a sort: out[order] = sorted for each array."""
    outs = []
    for a in sorted_arrays:
        out = np.empty_like(a)
        out[order] = a
        outs.append(out)
    return outs


def fixed_q(act, sigma_w2, sigma_b2):
    fp = fixed_point(act, sigma_w2, sigma_b2)
    return np.asarray(fp.q_star, dtype=float), np.asarray(fp.status)


def s1(weights):
    return 0.0 if weights == "orthogonal" else -1.0


@dataclass
class _Problem:
    """Validated arguments of :func:`jacobian_spectrum` with its law and moments."""

    a: object
    weights: str
    sw: float
    sb: float
    q: float
    L: int
    n_points: int
    grid_kind: str
    tol: float
    maxiter: int
    user: np.ndarray | None
    law: object = None
    kind: int = 0
    mu1: float = math.nan
    mu2: float = math.nan
    spread: float = math.nan
    log_m1: float = math.nan
    scale: float = 1.0
    narrow: bool = False
    atom_lam: np.ndarray = None
    atom_mass: np.ndarray = None

    @property
    def scale_ok(self):
        return abs(self.log_m1) < 300.0

    @property
    def cont_mass(self):
        return 1.0 - float(self.atom_mass.sum())


@dataclass
class _Part:
    """The spectrum of ``J J^T / m1`` on the normalised grid."""

    grid: np.ndarray
    dens: np.ndarray
    cdf: np.ndarray
    qw: np.ndarray
    pst: np.ndarray
    lmax: float
    lam_min: float
    mass: float
    status: Status = Status.OK


def setup(act, weights, sigma_w2, sigma_b2, depth, n_points, lam, grid, q_star, tol, maxiter):
    """Step 1: validate the arguments, find q*, build the law of D^2, the moments and atoms."""
    a = get_activation(act)
    weights = as_choice(weights, "weights", WEIGHTS)
    if any(np.asarray(x, dtype=object).ndim for x in (sigma_w2, sigma_b2)):
        raise ValueError(
            "`sigma_w2` and `sigma_b2` must be scalars for jacobian_spectrum "
            "(use jacobian_moments to broadcast)"
        )
    sw = as_float(sigma_w2, "sigma_w2", low=0.0, low_open=True)
    sb = as_float(sigma_b2, "sigma_b2", low=0.0)
    L = as_int(depth, "depth", low=1, high=10**6)
    n_points = as_int(n_points, "n_points", low=8, high=10**6)
    maxiter = as_int(maxiter, "maxiter", low=1, high=10000)
    grid_kind = as_choice(grid, "grid", ("auto", "linear", "log"))
    q = _q_for(a, sw, sb) if q_star is None else as_float(q_star, "q_star", low=0.0)
    tol = 1e-13 * (L + 10) if tol is None else as_float(tol, "tol", low=0.0, low_open=True)
    user = None if lam is None else as_float_array(lam, "lam", low=0.0).ravel()
    p = _Problem(a, weights, sw, sb, q, L, n_points, grid_kind, tol, maxiter, user)
    _law_and_moments(p)
    _atoms(p)
    return p


def _q_for(a, sw, sb):
    qa, qst = fixed_q(a, sw, sb)
    q = float(np.ravel(qa)[0])
    qst = int(np.ravel(qst)[0])
    if a.code in (_act.LINEAR, _act.RELU) and not (qst >= 0 and math.isfinite(q)):
        return 1.0  # the law of phi'^2 does not depend on q*
    if qst < 0 or not math.isfinite(q):
        raise ValueError(
            f"the fixed point q* of (`sigma_w2`, `sigma_b2`) = ({sw}, {sb}) for "
            f"{a.name} is not finite (status {Status(qst).name}); pass `q_star` "
            "explicitly"
        )
    return q


def _law_and_moments(p):
    """Step 2: the law of D^2 at q* and the closed-form moments of J J^T."""
    law = make_law(p.a, p.q)
    mu1, mu2, vard = law.mu1, law.mu2, law.vard
    narrow = not law.discrete and law.dmax - law.dmin <= _NARROW * law.dmax
    if narrow:
        # phi'^2 is constant at this q* (e.g. q* = 0), or so nearly constant (tiny q*) that
        # x - d loses the width of its law to rounding: a linear network scaled by E[phi'^2];
        # the moments keep the true mu2, and a law wider than 1e-14 is flagged INACCURATE
        narrow = law.dmax - law.dmin > 1e-14 * law.dmax
        law = discrete_law(get_activation("linear"), 1.0)
        mu2, vard = (mu2, vard) if narrow else (mu1 * mu1, 0.0)
    if mu1 <= 0.0:
        raise ValueError(f"E[phi'(h)^2] = 0 at q* = {p.q} for {p.a.name}: the Jacobian vanishes")
    p.law, p.narrow, p.mu1, p.mu2 = law, narrow, mu1, mu2
    p.kind = _k.ORTH if p.weights == "orthogonal" else _k.GAUSS
    p.log_m1 = p.L * math.log(p.sw * mu1)
    p.spread = p.L * (vard / mu1**2 - s1(p.weights))  # L (mu2/mu1^2 - 1 - s1), no cancellation
    p.scale = math.exp(p.log_m1) if p.scale_ok else 1.0


def _atoms(p):
    """Step 3: point masses of the normalised law (0/1 laws of linear, relu, hard_tanh)."""
    atoms_l, atoms_m = [], []
    if p.law.discrete:
        pr, L = p.law.p, p.L
        if pr < 1.0:
            atoms_l.append(0.0)
            atoms_m.append(1.0 - pr)
        if p.weights == "orthogonal":
            top = pr if L == 1 else max(0.0, 1.0 - L * (1.0 - pr))
            if pr == 1.0:
                top = 1.0
            if top > 0.0:
                atoms_l.append(pr ** (-L) if pr > 0 else 1.0)  # normalised: sigma_w^{2L} / m1
                atoms_m.append(top)
    p.atom_lam = np.array(atoms_l, dtype=float)
    p.atom_mass = np.array(atoms_m, dtype=float)


def atoms_only(p):
    """Step 4a: everything is atoms (linear orthogonal, relu/hard_tanh orthogonal, L = 1)."""
    lmax = float(p.atom_lam.max())
    grid = np.linspace(0.0, lmax, p.n_points)[::-1] if p.user is None else p.user / p.scale
    cdf = np.array([p.atom_mass[p.atom_lam <= g].sum() for g in grid])
    zeros = np.zeros_like(grid)
    pst = np.full(grid.shape, int(Status.ZERO), dtype=np.int64)
    return _Part(
        grid, zeros, cdf, zeros.copy(), pst, lmax, float(p.atom_lam.min()), float(p.atom_mass.sum())
    )


def depth_one_part(p):
    """Step 4b: orthogonal weights, L = 1 (the law of sigma_w2 D^2 itself)."""
    grid, dens, cdf, qw, pst, lmax, lam_min = depth_one(p.law, p.n_points, p.user, p.scale)
    mass = float(np.sum(qw * dens)) + float(p.atom_mass.sum()) if p.user is None else float("nan")
    part = _Part(grid, dens, cdf, qw, pst, lmax, lam_min, mass)
    if p.user is None and abs(mass - 1.0) > 1e-3:
        part.status = Status.INACCURATE  # the grid does not resolve the law (reported as is)
    return part


def continuation(p):
    """Step 4c: edges, grid, and Newton continuation of the spectral equation down the grid."""
    edge = upper_edge(p.law, p.kind, p.L)
    if edge is None:
        return None
    xstar, fstar, fpp = edge
    lmax, lam_min = math.exp(fstar), 0.0
    if p.kind == _k.ORTH:
        low = lower_edge(p.law, p.kind, p.L)
        lam_min = math.exp(low[1]) if low is not None else 0.0
    cut = None
    if p.user is None:
        grid, qw, cut = auto_grid(p.kind, lam_min, lmax, p.n_points, p.grid_kind)
    else:
        grid, qw = p.user / p.scale, np.zeros_like(p.user)
    order = np.argsort(-grid, kind="stable")
    g = grid[order] if cut is None else np.append(grid[order], cut)
    inside = (g < lmax) & (g > lam_min)
    ms, cd, st, tail_mass = _solve_inside(p, g[inside], (xstar, fstar, fpp))
    dens_s = np.zeros(g.shape)
    cdf_s = np.zeros(g.shape)
    pst_s = np.full(g.shape, int(Status.ZERO), dtype=np.int64)
    dens_s[inside] = np.maximum(-ms.imag, 0.0) / (math.pi * g[inside])
    cdf_s[inside] = cd
    pst_s[inside] = st
    am, al = p.atom_mass, p.atom_lam
    above = g >= lmax
    cdf_s[above] = 1.0 - float(am[al >= lmax].sum()) if am.size else 1.0
    cdf_s[above] = np.where(g[above] >= (al.max() if am.size else 0), 1.0, cdf_s[above])
    cdf_s[g <= lam_min] = float(am[al <= lam_min].sum()) if am.size else 0.0
    below_mass = (float(am[al <= lam_min].sum()) if am.size else 0.0) + tail_mass
    lower_end = lam_min
    if cut is not None:
        lower_end = cut
        below_mass = cdf_s[-1] if pst_s[-1] >= 0 else np.nan
        dens_s, cdf_s, pst_s = dens_s[:-1], cdf_s[:-1], pst_s[:-1]
    dens, cdf, pst = unsort(order, dens_s, cdf_s, pst_s)
    mass = float("nan")
    if p.user is None:
        # continuous mass on the grid + mass below the grid (exact CDF) + atoms above it
        mass = float(np.sum(qw * dens)) + below_mass + float(am[al > lower_end].sum())
    part = _Part(grid, dens, cdf, qw, pst, lmax, lam_min, mass)
    part.status = _branch_status(part, cdf_s[inside[: cdf_s.size]], p.user is None)
    return part


def _solve_inside(p, gi, edge):
    """Newton continuation at the eigenvalues `gi` (descending) strictly inside the support."""
    xs = np.zeros(gi.shape, dtype=np.complex128)
    ms = np.zeros(gi.shape, dtype=np.complex128)
    cd = np.full(gi.shape, np.nan)
    st = np.zeros(gi.shape, dtype=np.int64)
    tail_mass = 0.0
    if gi.size:
        law = p.law
        x0 = first_guess(law, p.kind, p.L, gi[0], *edge, p.tol, p.maxiter)
        nd = law.k.solve_grid(
            np.log(gi),
            x0,
            p.kind,
            float(p.L),
            p.mu1,
            *law.args(),
            p.tol,
            p.maxiter,
            xs,
            ms,
            cd,
            st,
            _TAIL,
        )
        if nd < gi.size:
            # below: a soft tail with density < _TAIL x its maximum, reported as 0 (status
            # ZERO); its mass, the exact CDF where the continuation stopped, is added to `mass`
            ms[nd:] = 0.0
            cd[nd:] = cd[nd - 1]
            st[nd:] = Status.ZERO
            tail_mass = float(cd[nd - 1]) if nd > 0 else 0.0
    return ms, cd, st, tail_mass


def _branch_status(part, cdf_inside, default_grid):
    """Return the status of the continuation (failed points become NaN).

    Without failed points the physical branch is checked: the exact CDF must be monotone, in
    [0, 1], and (default grid) agree with the quadrature of the density.
    """
    bad = part.pst < 0
    if bad.any():
        part.dens[bad] = np.nan
        part.cdf[bad] = np.nan
        return Status.NONFINITE if np.any(part.pst == Status.NONFINITE) else Status.MAXITER
    cs = cdf_inside
    if cs.size and (np.any(np.diff(cs) > 1e-7) or cs.min() < -1e-7 or cs.max() > 1 + 1e-7):
        return Status.MAXITER
    if default_grid and abs(part.mass - 1.0) > 1e-3:
        return Status.MAXITER
    return Status.OK


def _inputs(p):
    """The fields that restate the request: activation, weights, the point and the depth."""
    return dict(
        activation=p.a.name, weights=p.weights, sigma_w2=p.sw, sigma_b2=p.sb, q_star=p.q, depth=p.L
    )


def assemble(p, part):
    """Step 5: overall status and rescaling by m1 (when representable): the result's fields."""
    status = part.status
    lmax = max(part.lmax, float(p.atom_lam.max())) if p.atom_lam.size else part.lmax
    if not p.scale_ok:
        status = Status.INFINITE if status == Status.OK else status
    if p.narrow and status == Status.OK:
        status = Status.INACCURATE
    f = p.scale
    lam_out = part.grid * f
    dens_out = part.dens / f
    sv = np.sqrt(lam_out)
    with np.errstate(invalid="ignore"):
        sv_d = 2.0 * sv * dens_out
    return dict(
        **_inputs(p),
        mu1=p.mu1,
        mu2=p.mu2,
        lam=lam_out,
        density=dens_out,
        cdf=part.cdf,
        quad_weights=part.qw * f,
        sv=sv,
        sv_density=sv_d,
        m1=f,
        m2=(1.0 + p.spread) * f * f,
        variance=p.spread * f * f,
        spread=p.spread,
        lambda_max=lmax * f,
        lambda_min=part.lam_min * f,
        atom_lam=p.atom_lam * f,
        atom_mass=p.atom_mass,
        mass=part.mass,
        log_m1=p.log_m1,
        normalized=not p.scale_ok,
        point_status=part.pst.astype(np.int64),
        status=int(status),
    )


def fail(p, status):
    """The fields of a failed spectrum: moments only, empty arrays."""
    e = np.zeros(0)
    return dict(
        **_inputs(p),
        mu1=p.law.mu1,
        mu2=p.law.mu2,
        lam=e,
        density=e,
        cdf=e,
        quad_weights=e,
        sv=e,
        sv_density=e,
        m1=math.nan,
        m2=math.nan,
        variance=math.nan,
        spread=p.spread,
        lambda_max=math.nan,
        lambda_min=math.nan,
        atom_lam=e,
        atom_mass=e,
        mass=math.nan,
        log_m1=p.log_m1,
        normalized=True,
        point_status=np.zeros(0, dtype=np.int64),
        status=int(status),
    )
