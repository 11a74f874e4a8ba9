"""Layer stepping of the covariance map ``Sigma -> A * C(Sigma)``: one small class per regime.

The state is stored per displacement (:class:`Grid`). A run starts in :class:`PixelRegime`
and moves on as the covariance simplifies; every switch depends on the state only (never on
timing, on the layers asked for or on how layers are cut into compiled calls), so the same call
gives bit-identical layers.

* :class:`PixelRegime`: every pixel has its own variance; one full layer of ``C`` (per-pixel
  Mehler coefficients, closed forms or quadrature) then ``A``. Exact; the other regimes are
  shortcuts that only apply to the Mehler series.
* :class:`CommonRegime`: every variance equals the stable fixed point ``q*`` of the (series)
  q-map to ``_COMMON_TOL`` (or to the rounding limit ``_FP_NOISE / (1 - chi_q)``). The
  variances are then pinned to ``q*``: the diagonal follows the q-map,
  ``q_a^{l+1} = sum_beta v_beta Q(q_{a+beta}^l)``, for which ``q*`` is a fixed point, so they
  stay there exactly. Off-diagonal entries follow the one-entry correlation map ``g`` at
  ``q*`` with one coefficient set. (Iterating the diagonal with ``g`` too, as an earlier version
  did, is wrong in the chaotic phase: ``g'(q*) = chi_1 > 1`` there, so rounding errors of the
  variances grow like ``chi_1^l`` while the true slope is ``chi_q < 1``.)
* :class:`LinearRegime`: common variance and every column constant along the pixels to
  ``lin_tol``: the state is its per-column mean ``m`` (iterated with ``g``) plus a deviation
  whose spatial Fourier modes are multiplied by ``g'(m_c) lam_f`` per layer (first order; the
  neglected terms are ``O(lin_tol^2)``). A deviation that grows past ten times its bound at
  entry sends the run back to :class:`CommonRegime` for good.
* :class:`ReducedRegime`: translation invariant (spread below ``ti_tol``): one value per
  displacement, with the common-variance map or, before the variances are common, the full
  per-input map on a one-pixel grid.
* :class:`DeltaRegime`: ``v = delta`` (``A`` the identity) at a common variance: every entry
  follows ``g`` on its own; its iterates are tabulated on checked Chebyshev panels.

Threads: the per-layer kernels run serially when a layer is small; otherwise :class:`Pace`
times serial calls and calls with one block of rows per numba thread and keeps the faster
(the slower is probed again less and less often), so a machine shared with other processes
costs about its fair share (``docs/covariance.md`` has the measurements). Either way the
results are bit-identical.
"""

from __future__ import annotations

import math
import time

import numpy as np

from cnnmft import _threads
from cnnmft._covariance_series import (
    _KMAX,
    _CoefSource,
    _exact_coefficients,
    _Series,
    _term_table,
    series_covers,
    series_fixed_point,
    series_q_map,
    tabulate_iterates,
    variance_map,
)
from cnnmft._kernels import _act, _closed, _cov
from cnnmft.fourier import kernel_offsets, mode_eigenvalues
from cnnmft.results import Status

_COMMON_TOL = 2e-14  # every variance within this (relative) of q* before the common regime ...
_FP_NOISE = 3e-15  # ... or within _FP_NOISE / (1 - chi_q): the rounding of the q-map (a few ulps,
# the series tail, the interpolated coefficients) moves its fixed point by that much, 1.5e-13 at
# chi_q = 0.98 (q* = 0.01 at the critical point), so no iteration gets closer; at most _FP_CAP
_FP_CAP = 1e-12
_PAR_WORK = 2_000_000  # multiply-adds per layer below which the kernels run serially
_CHUNK = 8  # layers of the first compiled call in the full-grid common regime (then timed)
_GROW = 10.0  # the linear regime is left when the deviation bound grows by this factor


def _chunk_layers(eng, stop, cost):
    """Layers of the next compiled call of a multi-layer regime.

    Up to `stop`, about ``eng.chunk_seconds`` at the measured `cost` per layer (``_CHUNK``
    before any is measured). It sizes the calls only (progress, Ctrl-C); where a regime stops
    never depends on it.
    """
    n = stop - eng.layer
    return min(n, max(1, int(eng.chunk_seconds / cost)) if cost else _CHUNK)


def _blocks(work):
    """Number of row blocks (= threads) for a kernel call of `work` multiply-adds."""
    if work < _PAR_WORK:
        return 1
    n = _threads.get_num_threads()  # the thread policy (does not start numba's pool)
    return n if n > 1 else 1


class Pace:
    """Serial or row-block kernels, whichever the measured wall time per layer favours.

    On an idle machine the row blocks (one per thread) win; when other processes take the
    cores, a parallel layer waits for its slowest block and one thread is faster. Both are
    timed (running average); the loser is tried again after 16 calls, then after twice as many
    each time it loses again (at most every 1024 calls), so that a probe that is slow under a
    load (a parallel layer whose thread lost its core can take ten serial layers) costs little.
    This only schedules: serial and row-block kernels give bit-identical results, and no
    decision from a timing changes the work done or which regime runs.
    """

    def __init__(self):
        self.cost = {}
        self.calls = 0
        self.every = 16  # calls between two probes of the option that is not the fastest
        self.probe_at = 16
        self.best = None

    def pick(self, work):
        nb = _blocks(work)
        if nb == 1:
            return 1
        self.calls += 1
        ts, tp = self.cost.get(1), self.cost.get(nb)
        if ts is None:
            return 1
        if tp is None:
            return nb
        best, other = (1, nb) if ts <= tp else (nb, 1)
        if best != self.best:  # the winner changed: probe soon again
            self.best, self.every = best, 16
            self.probe_at = self.calls + self.every
        if self.calls >= self.probe_at:
            self.every = min(2 * self.every, 1024)
            self.probe_at = self.calls + self.every
            return other
        return best

    def done(self, nb, seconds):
        old = self.cost.get(nb)
        self.cost[nb] = seconds if old is None else 0.5 * (old + seconds)


class Grid:
    """Circular grid of `B` inputs: displacement columns, the stencil of ``A``, conversions."""

    def __init__(self, spatial_shape, v, n_inputs):
        self.shape = tuple(spatial_shape)
        self.d = len(self.shape)
        n3 = tuple(self.shape) + (1,) * (3 - self.d)
        self.n1, self.n2, self.n3 = n3
        self.N = int(np.prod(self.shape))
        self.B = n_inputs
        # stencil
        idx = np.nonzero(v)
        offs = [kernel_offsets(k)[i] % n for k, i, n in zip(v.shape, idx, self.shape)]
        while len(offs) < 3:
            offs.append(np.zeros(len(idx[0]), dtype=np.int64))
        self.taps = np.ascontiguousarray(v[idx], dtype=np.float64)
        self.o1, self.o2, self.o3 = (np.ascontiguousarray(o, dtype=np.int64) for o in offs)
        self.identity_a = bool(
            self.taps.size == 1 and self.o1[0] == 0 and self.o2[0] == 0 and self.o3[0] == 0
        )
        # displacements
        allidx = np.arange(self.N)
        comps = np.stack(np.unravel_index(allidx, n3), axis=1)  # (N, 3)
        neg = np.ravel_multi_index(tuple((-comps[:, j]) % n3[j] for j in range(3)), n3)
        half = allidx[allidx <= neg]
        cola, colb, cd = [], [], []
        self.diag_col = np.empty(self.B, dtype=np.int64)
        count = 0
        for a in range(self.B):
            for b in range(a, self.B):
                ds = half if a == b else allidx
                if a == b:
                    self.diag_col[a] = count  # delta = 0 is the first displacement
                count += ds.size
                cola.append(np.full(ds.size, a))
                colb.append(np.full(ds.size, b))
                cd.append(ds)
        self.cola = np.ascontiguousarray(np.concatenate(cola), dtype=np.int64)
        self.colb = np.ascontiguousarray(np.concatenate(colb), dtype=np.int64)
        self.cdelta = np.concatenate(cd)
        c3 = comps[self.cdelta]
        self.cd1, self.cd2, self.cd3 = (np.ascontiguousarray(c3[:, j]) for j in range(3))
        self.comps = comps
        self.ncol = self.cola.size

    def partner(self, alpha, col):
        """Flat index of alpha + delta_col (vectorised)."""
        c = self.comps[alpha]
        n3 = (self.n1, self.n2, self.n3)
        j = [(c[..., i] + (self.cd1, self.cd2, self.cd3)[i][col]) % n3[i] for i in range(3)]
        return np.ravel_multi_index(tuple(j), n3)

    def from_full(self, K):
        """State S (N, ncol) from a full (B*N, B*N) matrix."""
        alpha = np.arange(self.N)[:, None]
        col = np.arange(self.ncol)[None, :]
        beta = self.partner(
            np.broadcast_to(alpha, (self.N, self.ncol)), np.broadcast_to(col, (self.N, self.ncol))
        )
        rows = self.cola[col] * self.N + alpha
        return np.ascontiguousarray(K[rows, self.colb[col] * self.N + beta])

    def to_full(self, S):
        """Full (B*N, B*N) matrix from a state S (N, ncol) or a reduced state (ncol,)."""
        if S.ndim == 1:
            S = np.broadcast_to(S[None, :], (self.N, self.ncol))
        alpha = np.broadcast_to(np.arange(self.N)[:, None], (self.N, self.ncol))
        col = np.broadcast_to(np.arange(self.ncol)[None, :], (self.N, self.ncol))
        beta = self.partner(alpha, col)
        P = self.B * self.N
        K = np.empty((P, P))
        r = self.cola[col] * self.N + alpha
        c = self.colb[col] * self.N + beta
        K[r, c] = S
        K[c, r] = S
        return K

    def apply_a(self, T, S, nb=1):
        """S = A * T (T when A is the identity), in `nb` row blocks."""
        if self.identity_a:
            S[...] = T
            return
        args = (self.taps, self.o1, self.o2, self.o3, self.n1, self.n2, self.n3)
        if nb > 1:
            _cov.a_apply_par(T, S, *args, nb)
        else:
            _cov.a_apply(T, S, *args)

    def qpix(self, S):
        """Variances per (input, pixel), shape (B*N,)."""
        return np.ascontiguousarray(S[:, self.diag_col].T.ravel())


# ---------------------------------------------------------------------------------------------
# the entry map C


class Common:
    """The common fixed variance ``qs`` (slope ``chi_q < 1``) and the one-entry series ``g``."""

    def __init__(self, act, qs, chi_q, odd):
        ser = _Series(_exact_coefficients(act, [qs]), odd)
        self.qs, self.chi_q = qs, chi_q
        self.a2 = np.ascontiguousarray(ser.coef[0] ** 2)
        self.k0, self.step = ser.k0, ser.step

    def args(self, sw2, sb2):
        """Arguments ``(a, k0, step, qs, sw2, sb2)`` of the compiled one-entry map."""
        return self.a2, self.k0, self.step, self.qs, sw2, sb2


class Evaluator:
    """``T = C(S)`` at given per-pixel variances, and detection of the common fixed variance."""

    def __init__(self, a, sw2, sb2, method):
        self.a, self.sw2, self.sb2, self.method = a, sw2, sb2, method
        self.odd = bool(a.odd)
        self._src = None
        self._hull_lo = 0.0  # lower end of the last interval from _q_hull
        self._fp = None
        self._common = None

    def _q_hull(self, lo, hi):
        """Return an interval holding every later variance.

        The q-map is increasing, so the iterates of the end points bound all later (spatially
        averaged) variances; when ``Q(lo) >= lo`` and ``Q(hi) <= hi`` the interval itself is
        mapped into itself (one evaluation). The q-map is evaluated in numpy
        (:func:`cnnmft._covariance_series.variance_map`): only a bound is needed, and the
        compiled adaptive quadrature would cost about 9 CPU-seconds of compilation on a first
        call.
        """
        q = np.array([lo, hi])
        a, b = lo, hi
        step = np.zeros(2)
        qn = variance_map(self.a, q, self.sw2, self.sb2)
        if qn[0] >= lo and qn[1] <= hi:
            return lo, hi
        for _ in range(24):
            if not np.all(np.isfinite(qn)) or not series_covers(float(qn.max())):
                return a, math.inf  # beyond the series: the caller leaves it
            step = np.abs(qn - q)
            a, b = min(a, float(qn.min())), max(b, float(qn.max()))
            if np.all(step <= 1e-13 * np.abs(q)):
                break
            q = qn
            qn = variance_map(self.a, q, self.sw2, self.sb2)
        # geometric convergence (slope <= 0.9): the limit lies within 9 last steps; if not,
        # covers() fails later and the interval is rebuilt
        a = min(a, float(np.min(q - 9 * step)))
        b = max(b, float(np.max(q + 9 * step)))
        return max(a, 0.0), b

    def _pixel_series(self, uq):
        """The Hermite series at the variances `uq`, or None where it would be too long."""
        src = self._src
        if not series_covers(1.001 * float(uq[-1])):
            return None
        if src is None or not src.covers(uq) or uq[-1] < 0.8 * src.qhi:
            # (re)build for the interval that holds every later variance; rebuilding when the
            # variances have shrunk keeps the number of series terms small
            lo, hi = float(uq[0]), float(uq[-1])
            # shrunk inside the interval: the lower bound found before still holds, and the top
            # is a bound too where the q-map maps it below itself (one evaluation instead of
            # iterating the map again)
            shrunk = src is not None and src.covers(uq) and self._hull_lo <= lo
            if shrunk and variance_map(self.a, np.array([hi]), self.sw2, self.sb2)[0] <= hi:
                lo = self._hull_lo
            else:
                lo, hi = self._q_hull(lo, hi)
                self._hull_lo = lo
            if not series_covers(1.001 * hi):
                return None
            src = self._src = _CoefSource(self.a, 0.999 * lo, 1.001 * hi + 1e-300)
        return _Series(src(uq), self.odd)

    def _leave_series(self, qmax):
        """Switch for good to the direct quadrature: the variances are too large for the series."""
        if self.a.code >= _act.N_BUILTIN:
            raise ValueError(
                f"variances up to {qmax:.6g} are too large for the Hermite series of the custom "
                f"activation {self.a.name!r} (at most {_KMAX} terms) and the direct quadrature "
                "supports built-in activations only; use smaller `sigma_w2`/`sigma_b2` or inputs"
            )
        self.method = "direct"

    def apply_c(self, g, S, T, qpix, nb=1):
        """T = C(S) on grid `g` with the variances `qpix` (shape (B*N,)), in `nb` row blocks."""
        geo = (g.cola, g.colb, g.cd1, g.cd2, g.cd3, g.n1, g.n2, g.n3)
        if self.method == "closed":
            _closed.c_closed(S, T, self.a.code, *geo, qpix, self.sw2, self.sb2)
        elif self.method == "direct":
            _cov.c_direct(S, T, self.a.code, *geo, qpix, self.sw2, self.sb2)
        else:
            uq, inv = np.unique(qpix, return_inverse=True)
            ser = self._pixel_series(uq)
            if ser is None:
                self._leave_series(float(uq[-1]))
                return self.apply_c(g, S, T, qpix, nb)
            coef = np.ascontiguousarray(ser.coef[inv.ravel()])
            nterm = _term_table(ser.coef, ser.step, tol=1e-2 * ser.tol)
            args = (*geo, coef, nterm, ser.k0, ser.step, qpix, self.sw2, self.sb2)
            if nb > 1:
                _cov.c_mehler_pix_par(S, T, *args, nb)
            else:
                _cov.c_mehler_pix(S, T, *args)

    def common(self, q):
        """Return a :class:`Common` if every variance is at a stable fixed point, else None.

        Every variance in `q` must lie within ``max(_COMMON_TOL, _FP_NOISE / (1 - chi_q))``
        (at most ``_FP_CAP``), relative, of a fixed point of the series q-map with slope
        ``chi_q < 1`` (Mehler method only).
        """
        if self.method != "mehler" or q.size == 0:
            return None
        lo, hi = float(q.min()), float(q.max())
        if not (lo > 0.0 and hi - lo <= 2.0 * _FP_CAP * hi):
            return None
        if not series_covers(1.001 * hi):
            return None
        fp = self._fp
        if fp is None or abs(hi - fp[0]) > 1e-6 * fp[0]:
            qbar = 0.5 * (lo + hi)
            if abs(series_q_map(self.a, qbar, self.sw2, self.sb2) - qbar) > 1e-10 * qbar:
                return None  # not near a fixed point yet (one series evaluation)
            fp = self._fp = series_fixed_point(self.a, self.sw2, self.sb2, qbar)
        if fp is None or not fp[1] < 1.0:
            return None  # no fixed point here, or an unstable one: stay per pixel
        qs = fp[0]
        tol = min(_FP_CAP, max(_COMMON_TOL, _FP_NOISE / (1.0 - fp[1])))
        if max(hi - qs, qs - lo) > tol * qs:
            return None
        if self._common is None or self._common.qs != qs:
            self._common = Common(self.a, qs, fp[1], self.odd)
        return self._common


# ---------------------------------------------------------------------------------------------
# regimes: run(eng, stop) advances eng.layer (at most to `stop`) and appends one row per layer
# to eng.qmean; after(eng) returns the regime for the next layers; full() the current state


def _column_mean(S):
    """Mean of every column along the pixels, exact for a constant column.

    A pinned variance must stay exactly ``q*``, which a rounded mean need not be.
    """
    m = S.mean(axis=0)
    const = np.all(S == S[0], axis=0)
    m[const] = S[0, const]
    return np.ascontiguousarray(m)


def _pin_entry(g, S, qpix, qs):
    """Entering a common regime: entries at correlation 1 (variances, identical pixels) := qs.

    The correlation uses each entry's own two variances (so ``rho = 1`` exactly for a
    variance); the variances themselves are within ``_COMMON_TOL`` of `qs`.
    """
    alpha = np.broadcast_to(np.arange(g.N)[:, None], (g.N, g.ncol))
    col = np.broadcast_to(np.arange(g.ncol)[None, :], (g.N, g.ncol))
    qa = qpix[g.cola[col] * g.N + alpha]
    qb = qpix[g.colb[col] * g.N + g.partner(alpha, col)]
    rho = S / np.sqrt(qa * qb)
    S[rho >= _cov.PIN] = qs
    S[:, g.diag_col] = qs


class PixelRegime:
    """Every pixel with its own variance: one exact layer ``S <- A C(S)`` per call."""

    def __init__(self, S):
        self.S = S
        self.T = np.empty_like(S)
        self.cost = None  # seconds per closed-form layer, only to size the chunks

    def full(self, eng):
        return self.S

    def run(self, eng, stop, depth, layers):
        g = eng.g
        if eng.ev.method == "closed":
            return self._run_closed(eng, stop)
        # row blocks only for the Mehler kernel (~64 terms per entry); the others are serial
        nb = eng.pace_pixel.pick(self.S.size * 64 if eng.ev.method == "mehler" else 0)
        t0 = time.perf_counter()
        eng.ev.apply_c(g, self.S, self.T, g.qpix(self.S), nb)
        g.apply_a(self.T, self.S, nb)
        eng.pace_pixel.done(nb, time.perf_counter() - t0)
        eng.layer += 1
        eng.qmean.append(g.qpix(self.S).reshape(g.B, g.N).mean(axis=1))
        return Status.OK

    def _run_closed(self, eng, stop):
        """Closed forms (linear, erf, relu): many layers in one compiled call.

        The call stops where :meth:`after` would leave this regime, so the layers are the
        same as with one call per layer.
        """
        g = eng.g
        n = _chunk_layers(eng, stop, self.cost)
        qmean = np.empty((n, g.B))
        t0 = time.perf_counter()
        done, st = _closed.run_closed(
            self.S, self.T, n, eng.ev.a.code, g.cola, g.colb, g.cd1, g.cd2, g.cd3, g.n1, g.n2,
            g.n3, g.taps, g.o1, g.o2, g.o3, g.identity_a, g.diag_col, eng.ev.sw2, eng.ev.sb2,
            float(eng.ti_tol), qmean,
        )  # fmt: skip
        self.cost = (time.perf_counter() - t0) / max(done, 1)  # sizes the next chunk only
        eng.layer += done
        eng.qmean.extend(qmean[:done])
        return Status.OK

    def after(self, eng):
        g = eng.g
        if not g.identity_a and eng.ti_tol > 0:
            q = g.qpix(self.S)
            if _cov.column_spread(self.S) <= eng.ti_tol * max(1.0, float(np.max(np.abs(q)))):
                eng.ti_layer = eng.layer
                return ReducedRegime(_column_mean(self.S)).after(eng)
        com = eng.ev.common(g.qpix(self.S))
        if com is None:
            return self
        eng.common_layer = eng.layer
        _pin_entry(g, self.S, g.qpix(self.S), com.qs)
        if g.identity_a:
            return DeltaRegime(self.S, com)
        return CommonRegime(self.S, com)


class CommonRegime:
    """Common fixed variance on the full grid: ``S <- A g(S)``, variances pinned to ``q*``."""

    def __init__(self, S, com):
        self.S, self.com = S, com
        self.T = np.empty_like(S)
        self.spread = math.inf
        self.cost = None  # seconds per layer, only to size the chunks (never the result)

    def full(self, eng):
        return self.S

    def _targets(self, eng):
        scale = max(1.0, self.com.qs)
        ti = eng.ti_tol * scale
        return ti, max(ti, eng.lin_tol * scale)

    def run(self, eng, stop, depth, layers):
        g, com = eng.g, self.com
        n = _chunk_layers(eng, stop, self.cost)
        t0 = time.perf_counter()
        gargs = com.args(eng.sw2, eng.sb2)
        stop_spread = self._targets(eng)[1]
        nb = eng.pace_common.pick(self.S.size * com.a2.size)
        if nb == 1:
            done, self.spread, st = _cov.run_common(
                self.S, self.T, n, *gargs, g.taps, g.o1, g.o2, g.o3, g.n1, g.n2, g.n3, stop_spread
            )
        else:
            done, st = 0, _cov.OK
            while done < n:
                _cov.c_mehler_common_par(self.S, self.T, *gargs, nb)
                g.apply_a(self.T, self.S, nb)
                _cov.pin_common(self.S, com.qs)
                done += 1
                self.spread = _cov.column_spread(self.S)
                if not math.isfinite(self.spread):
                    st = _cov.NONFINITE
                    break
                if self.spread <= stop_spread:
                    break
        self.cost = (time.perf_counter() - t0) / max(done, 1)
        eng.pace_common.done(nb, self.cost)
        eng.layer += done
        eng.qmean.extend([np.full(g.B, com.qs)] * done)
        return Status.OK if st == _cov.OK else Status.NONFINITE

    def after(self, eng):
        ti, lin = self._targets(eng)
        if self.spread <= ti:
            eng.ti_layer = eng.layer
            red = _column_mean(self.S)
            red[eng.g.diag_col] = self.com.qs
            return ReducedRegime(red, self.com)
        if self.spread <= lin and eng.lin_tol > 0:
            eng.linear_layer = eng.layer
            return LinearRegime(eng, self.S, self.com)
        return self


class LinearRegime:
    """Common variance, nearly translation invariant: per-column mean plus first-order modes."""

    def __init__(self, eng, S, com):
        g = eng.g
        self.com = com
        m = _column_mean(S)
        m[g.diag_col] = com.qs
        d = S - m[None, :]
        d[:, g.diag_col] = 0.0
        shape3 = (g.n1, g.n2, g.n3)
        D = np.fft.fftn(d.reshape(shape3 + (g.ncol,)), axes=(0, 1, 2))
        D[0, 0, 0] = 0.0  # d has zero mean along the pixels by construction
        v3 = eng.v.reshape(eng.v.shape + (1,) * (3 - eng.v.ndim))
        self.lam = mode_eigenvalues(v3, shape3)
        self.mag = np.ascontiguousarray(np.abs(self.lam).ravel())
        self.dmax = np.ascontiguousarray(np.max(np.abs(D), axis=-1).ravel() / g.N)
        self.pw = np.ones(g.N)
        self.m, self.D = np.ascontiguousarray(m), D
        self.G = np.ones(g.ncol)
        self.G[g.diag_col] = 0.0
        self.l0 = eng.layer
        self.flag = 0
        scale = max(1.0, com.qs)
        self.ti_bound = eng.ti_tol * scale
        self.grow_bound = _GROW * max(float(np.sum(self.dmax)), eng.lin_tol * scale)

    def full(self, eng):
        g = eng.g
        k = eng.layer - self.l0
        dev = np.fft.ifftn(self.D * (self.lam**k)[..., None], axes=(0, 1, 2)).real
        return self.m[None, :] + dev.reshape(g.N, g.ncol) * self.G[None, :]

    def run(self, eng, stop, depth, layers):
        n = min(stop - eng.layer, 4096)
        done, self.flag, st = _cov.run_linear(
            self.m,
            self.G,
            n,
            *self.com.args(eng.sw2, eng.sb2),
            self.dmax,
            self.pw,
            self.mag,
            self.ti_bound,
            self.grow_bound,
        )
        eng.layer += done
        eng.qmean.extend([np.full(eng.g.B, self.com.qs)] * done)
        return Status.OK if st == _cov.OK else Status.NONFINITE

    def after(self, eng):
        if self.flag == 1:
            eng.ti_layer = eng.layer
            return ReducedRegime(self.m.copy(), self.com)
        if self.flag == 2:
            # the deviation grows: first order is not enough; full layers from here on
            eng.lin_tol = 0.0
            return CommonRegime(np.ascontiguousarray(self.full(eng)), self.com)
        return self


class ReducedRegime:
    """Translation invariant: one value per displacement column."""

    def __init__(self, red, com=None):
        self.red, self.com = red, com

    def full(self, eng):
        return self.red

    def run(self, eng, stop, depth, layers):
        g = eng.g
        if self.com is not None:
            n = min(stop - eng.layer, 100_000)
            done, st = _cov.run_reduced_common(self.red, n, *self.com.args(eng.sw2, eng.sb2))
            eng.layer += done
            eng.qmean.extend([np.full(g.B, self.com.qs)] * done)
            return Status.OK if st == _cov.OK else Status.NONFINITE
        # per-input variances: the reduced state is a one-pixel grid with the same columns
        one = _one_pixel(g)
        S = self.red[None, :].copy()
        T = np.empty_like(S)
        eng.ev.apply_c(one, S, T, np.ascontiguousarray(S[0, g.diag_col]))
        self.red = T[0].copy()
        eng.layer += 1
        eng.qmean.append(self.red[g.diag_col].copy())
        return Status.OK

    def after(self, eng):
        if self.com is None:
            q = np.ascontiguousarray(self.red[eng.g.diag_col])
            com = eng.ev.common(q)
            if com is not None:
                if eng.common_layer < 0:
                    eng.common_layer = eng.layer
                _pin_entry(_one_pixel(eng.g), self.red[None, :], q, com.qs)
                self.com = com
        return self


def _one_pixel(g):
    one = Grid.__new__(Grid)
    one.n1 = one.n2 = one.n3 = one.N = 1
    one.B, one.ncol = g.B, g.ncol
    one.cola, one.colb, one.diag_col = g.cola, g.colb, g.diag_col
    one.cd1 = one.cd2 = one.cd3 = np.zeros(g.ncol, dtype=np.int64)
    one.comps = np.zeros((1, 3), dtype=np.int64)
    return one


class DeltaRegime:
    """``v = delta`` at a common variance: every entry follows ``g`` alone.

    All remaining layers at once (tabulated iterates, see
    :func:`cnnmft._covariance_series.tabulate_iterates`).
    """

    def __init__(self, S, com):
        self.S, self.com = S, com

    def full(self, eng):
        return self.S

    def run(self, eng, stop, depth, layers):
        g = eng.g
        snaps = np.unique(np.concatenate([layers[layers > eng.layer], [depth]])).astype(np.int64)
        rel = np.ascontiguousarray(snaps - eng.layer)
        res = tabulate_iterates(
            self.S.ravel(), int(rel[-1]), rel, *self.com.args(eng.sw2, eng.sb2), tab_min=eng.tab_min
        )
        eng.qmean.extend([np.full(g.B, self.com.qs)] * (depth - eng.layer))
        for j, L in enumerate(snaps[:-1]):
            eng.layer = int(L)
            self.S = res[j].reshape(self.S.shape)
            eng.store(layers)
        eng.layer = depth
        self.S = res[-1].reshape(self.S.shape)
        return Status.OK if np.all(np.isfinite(self.S)) else Status.NONFINITE

    def after(self, eng):
        return self


# ---------------------------------------------------------------------------------------------
# driver


class Engine:
    """Runs the layers: holds the grid, the evaluator, the current regime and the records."""

    def __init__(
        self, a, sw2, sb2, grid, method, v, *, ti_tol, lin_tol, tab_min, chunk_seconds=0.2
    ):
        self.g, self.sw2, self.sb2, self.v = grid, sw2, sb2, v
        self.ev = Evaluator(a, sw2, sb2, method)
        self.ti_tol = ti_tol
        self.lin_tol = lin_tol if ti_tol > 0 else 0.0
        self.tab_min = tab_min
        self.chunk_seconds = chunk_seconds
        self.pace_pixel, self.pace_common = Pace(), Pace()
        self.layer = 0
        self.regime = None
        self.qmean, self.out = [], {}
        self.common_layer = self.ti_layer = self.linear_layer = -1

    def full_matrix(self):
        return self.g.to_full(self.regime.full(self))

    def store(self, layers):
        if self.layer in layers:
            self.out[self.layer] = self.full_matrix()

    def record(self, layers):
        """Check the variances of the current layer and store it if asked for."""
        if not np.all(np.isfinite(self.qmean[-1])):
            return Status.NONFINITE
        self.store(layers)
        return Status.OK

    def start(self, S1, layers):
        """Layer 1 (the state S1 after the first, linear layer)."""
        self.layer = 1
        self.regime = PixelRegime(S1)
        self.qmean.append(self.g.qpix(S1).reshape(self.g.B, self.g.N).mean(axis=1))
        st = self.record(layers)
        if st == Status.OK:
            self.regime = self.regime.after(self)
        return st

    def advance(self, depth, layers):
        """Advance to the next requested layer at most (one compiled chunk)."""
        later = layers[layers > self.layer]
        stop = int(later[0]) if later.size else depth
        st = self.regime.run(self, stop, depth, layers)
        if st != Status.OK:
            self.qmean[-1] = np.full(self.g.B, np.nan)
            return st
        st = self.record(layers)
        if st == Status.OK:
            self.regime = self.regime.after(self)
        return st
