r"""The CNN covariance map :math:`\Sigma^{l+1} = \mathcal A \star \mathcal C(\Sigma^l)`.

For a vanilla CNN with circular padding, weights
``omega_{ij}(beta) ~ N(0, sigma_w2 * v[beta] / c_in)`` and biases ``N(0, sigma_b2)``, the
pre-activation covariance over (input, pixel) pairs obeys, in the infinite-channel limit
([1]_, Section 2.2; THEORY.md section 2.2)

.. math::

    \Sigma^1 = \sigma_w^2\, \mathcal A \star (x x^T / c_{in}) + \sigma_b^2, \qquad
    \Sigma^{l+1} = \mathcal A \star \mathcal C(\Sigma^l),

    \mathcal C(\Sigma)_{\alpha\alpha'} = \sigma_w^2\, \mathbb E_{h\sim N(0,\Sigma)}
    [\phi(h_\alpha)\phi(h_{\alpha'})] + \sigma_b^2, \qquad
    [\mathcal A \star M]_{\alpha\alpha'} = \sum_\beta v_\beta M_{\alpha+\beta,\alpha'+\beta}.

How it is computed (all of it exact to about 1e-15 per layer, see ``docs/covariance.md``):

* the state is stored per displacement, ``S[alpha, delta] = Sigma[alpha, alpha + delta]``, half of
  the displacements for a single input (symmetry); ``A`` is a circular stencil along ``alpha``;
* every bivariate expectation comes from Mehler's formula
  ``E[phi(u1) phi(u2)] = sum_k c_k(q1) c_k(q2) rho^k`` with the normalised Hermite coefficients
  ``c_k(q) = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!)`` computed once per distinct variance by a
  composite Gauss-Legendre rule and truncated where the Parseval tail is below 1e-17
  (smooth activations: tanh, sigmoid, softplus, gelu, swish, smooth custom ones); closed forms
  for linear, erf and relu; the adaptive bivariate quadrature otherwise (hard_tanh, selu);
* once every variance equals the common fixed value, one coefficient set serves all pairs; once
  every displacement's column is constant along ``alpha`` (translation invariant, spread below
  ``ti_tol``), ``A`` acts as the identity and only one value per displacement is iterated;
* with ``v = delta`` (``A`` = identity) every entry follows the same scalar map: its iterates
  are tabulated by piecewise Chebyshev interpolation (checked at extra points) instead of being
  iterated entry by entry.

References
----------
.. [1] L. Xiao, Y. Bahri, J. Sohl-Dickstein, S. S. Schoenholz, J. Pennington, "Dynamical Isometry
   and a Mean Field Theory of CNNs", ICML 2018, arXiv:1806.05393.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time

import numpy as np

from cnnmft._kernels import _act, _cov
from cnnmft._validation import as_choice, as_float_array, as_int
from cnnmft.activations import get_activation
from cnnmft.fourier import _check_v_grid, kernel_offsets, variance_profile
from cnnmft.results import ResultMixin, Status

__all__ = ["propagate_covariance", "CovarianceResult", "covariance_map"]

_NGL = 20
_ZMAX = 13.0
_TAIL_TOL = 1e-15
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_NGL)
_CLOSED = {_act.LINEAR, _act.ERF, _act.RELU}
_TAB_MIN = 4096  # below this many entries the delta-v map is iterated entry by entry
_LIN_TOL = 1e-8  # relative deviation from translation invariance below which it evolves linearly


# ---------------------------------------------------------------------------------------------
# Mehler (Hermite) coefficients


@functools.lru_cache(maxsize=64)
def _mehler_rule(tau_bucket, kmax):
    """Composite Gauss-Legendre nodes/weights (pdf included) and the Hermite table."""
    tau = 2.0 ** (tau_bucket / 4.0)
    hmax = min(1.0, 8.0 / math.sqrt(2.0 * kmax + 1.0))
    edges = [0.0]
    w = min(hmax, 0.5 * tau)
    while edges[-1] < _ZMAX:
        edges.append(min(_ZMAX, edges[-1] + w))
        w = min(hmax, 1.5 * w)
    e = np.array(edges)
    e = np.concatenate([-e[:0:-1], e])
    a, b = e[:-1], e[1:]
    h = 0.5 * (b - a)
    z = ((a + b)[:, None] * 0.5 + h[:, None] * _GL_X[None, :]).ravel()
    wt = (h[:, None] * _GL_W[None, :]).ravel() * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    # normalised probabilists' Hermite h_k = He_k / sqrt(k!)
    H = np.empty((kmax + 1, z.size))  # one row per order: contiguous recurrence
    H[0] = wt
    if kmax >= 1:
        H[1] = z * wt
    for k in range(1, kmax):
        H[k + 1] = (z * H[k] - math.sqrt(k) * H[k - 1]) * (1.0 / math.sqrt(k + 1))
    return z, wt, H.T


def mehler_coefficients(act, q, *, kmax=None):
    r"""Normalised Hermite coefficients ``c_k(q) = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!)``.

    Mehler's formula then gives, for a centred normal pair with variances ``q1, q2`` and
    correlation ``rho``, ``E[phi(u1) phi(u2)] = sum_k c_k(q1) c_k(q2) rho^k``.

    Parameters
    ----------
    act : str or Activation
        Activation (smooth ones converge fast; kinks make the series converge slowly).
    q : array_like, shape (P,)
        Variances ``>= 0``.
    kmax : int, optional
        Highest order (default: chosen from ``max(q)``).

    Returns
    -------
    coef : ndarray, shape (P, kmax + 1)
    tail : ndarray, shape (P,)
        ``E[phi^2] - sum_k c_k^2`` (Parseval; the truncation error bound of the series).
    """
    a = get_activation(act)
    q = np.atleast_1d(np.asarray(q, dtype=np.float64))
    qmax = float(q.max()) if q.size else 0.0
    if kmax is None:
        kmax = _k_needed(qmax)
    tau = math.pi / (2.0 * math.sqrt(qmax)) if qmax > 0 else 8.0
    bucket = math.floor(4.0 * math.log2(min(max(tau, 1e-3), 8.0)))
    z, wt, Hw = _mehler_rule(bucket, kmax)
    u = np.sqrt(q)[:, None] * z[None, :]
    phi = np.tanh(u) if a.code == _act.TANH else a.phi(u)
    coef = phi @ Hw
    ephi2 = (phi * phi) @ wt
    tail = ephi2 - np.sum(coef * coef, axis=1)
    return coef, tail


def _cheb_interp_matrix(nodes, t):
    """Barycentric interpolation matrix from values at Chebyshev-first-kind `nodes` to `t`."""
    m = nodes.size
    bw = (-1.0) ** np.arange(m) * np.sin(np.pi * (2 * np.arange(m) + 1) / (2 * m))
    d = t[:, None] - nodes[None, :]
    exact = d == 0.0
    d[exact] = 1.0
    w = bw[None, :] / d
    w /= w.sum(axis=1, keepdims=True)
    rows = np.nonzero(exact.any(axis=1))[0]
    for r in rows:
        w[r] = exact[r].astype(np.float64)
    return w


def _k_needed(qmax):
    return 32 * int(math.ceil((200.0 * qmax + 30) / 32))


def _converged(coef, kmax):
    sq = coef * coef
    rev = np.cumsum(sq[:, ::-1], axis=1)[:, ::-1]
    return bool(np.all(rev[:, max(0, kmax - 8)] <= 1e-16 * (1.0 + rev[:, 0])))


class _Series:
    """Truncated Mehler coefficients stored as every ``step``-th term from ``k0``."""

    def __init__(self, coef, odd):
        kmax = coef.shape[1] - 1
        cmax = np.max(np.abs(coef), axis=0)
        rev = np.cumsum((cmax * cmax)[::-1])[::-1]  # bounds every row's tail
        need = rev[1:] > _TAIL_TOL
        kneed = int(np.max(np.nonzero(need)[0], initial=-1)) + 1
        kneed = min(kmax, max(kneed, 1))
        if odd:
            self.k0, self.step = 1, 2
            self.coef = np.ascontiguousarray(coef[:, 1:kneed + 1:2])
        else:
            self.k0, self.step = 0, 1
            self.coef = np.ascontiguousarray(coef[:, :kneed + 1])
        if self.coef.shape[1] == 0:
            self.coef = np.zeros((coef.shape[0], 1))


def _term_table(coef, step, nbins=128, tol=1e-17):
    """Terms needed per |rho| bin: smallest n with sum_{t >= n} max|c_t|^2 r^t <= tol.

    Bin i covers |rho| <= (i + 1) / nbins; r = |rho| (step 1) or rho^2 (step 2).
    """
    cmax2 = np.max(np.abs(coef), axis=0) ** 2
    kc = cmax2.size
    rho = np.arange(1, nbins + 1) / nbins
    r = rho if step == 1 else rho * rho
    pw = np.empty((nbins, kc))
    pw[:, 0] = 1.0
    if kc > 1:
        pw[:, 1:] = r[:, None]
        np.cumprod(pw, axis=1, out=pw)
    terms = cmax2[None, :] * pw
    tail = np.cumsum(terms[:, ::-1], axis=1)[:, ::-1]  # tail[i, t] = sum_{t' >= t}
    ok = tail <= tol
    n = np.where(ok.any(axis=1), np.argmax(ok, axis=1), kc)
    return np.ascontiguousarray(np.maximum(n, 1).astype(np.int64))


def _exact_coefficients(act, q):
    """Mehler coefficients at the variances `q`, with enough terms (raises if not convergent)."""
    q = np.atleast_1d(np.asarray(q, dtype=np.float64))
    kmax = _k_needed(float(q.max()))
    while True:
        coef = mehler_coefficients(act, q, kmax=kmax)[0]
        if _converged(coef, kmax):
            return coef
        if kmax >= 4096:
            raise FloatingPointError(
                f"the Hermite series of {act.name!r} did not converge for variances up to "
                f"{float(q.max()):.3g}; use method='direct'")
        kmax = min(4096, 2 * kmax)


class _CoefSource:
    """c_k(q) for q in [qlo, qhi] by Chebyshev interpolation in sqrt(q) (checked), else exact."""

    def __init__(self, act, qlo, qhi):
        self.act, self.qlo, self.qhi = act, qlo, qhi
        top = _exact_coefficients(act, [qhi])
        self.kmax = top.shape[1] - 1
        self.nodes = None
        slo, shi = math.sqrt(qlo), math.sqrt(qhi)
        if shi - slo <= 1e-12 * shi:
            return
        rng = np.random.default_rng(12345)
        chk_t = rng.uniform(-1, 1, 6)
        for m in (16, 32, 64):
            xs = np.cos(np.pi * (2 * np.arange(m) + 1) / (2 * m))
            nodes = 0.5 * (slo + shi) + 0.5 * (shi - slo) * xs
            chk = 0.5 * (slo + shi) + 0.5 * (shi - slo) * chk_t
            cn = mehler_coefficients(act, np.concatenate([nodes, chk]) ** 2, kmax=self.kmax)[0]
            est = _cheb_interp_matrix(nodes, chk) @ cn[:m]
            if np.max(np.abs(est - cn[m:])) <= 2e-15:
                self.nodes, self.values = nodes, cn[:m]
                return

    def covers(self, q):
        return self.qlo <= q[0] and q[-1] <= self.qhi

    def __call__(self, uq):
        if self.nodes is None or uq.size <= 4:
            return mehler_coefficients(self.act, uq, kmax=self.kmax)[0]
        return _cheb_interp_matrix(self.nodes, np.sqrt(uq)) @ self.values


# ---------------------------------------------------------------------------------------------
# grid, columns, stencil


class _Grid:
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
        self.identity_a = bool(self.taps.size == 1 and self.o1[0] == 0 and self.o2[0] == 0
                               and self.o3[0] == 0)
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
        beta = self.partner(np.broadcast_to(alpha, (self.N, self.ncol)),
                            np.broadcast_to(col, (self.N, self.ncol)))
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

    def apply_a(self, T, S):
        if self.identity_a:
            S[...] = T
        else:
            _cov.a_apply(T, S, self.taps, self.o1, self.o2, self.o3, self.n1, self.n2, self.n3)

    def qpix(self, S):
        """Variances per (input, pixel), shape (B*N,)."""
        return np.ascontiguousarray(S[:, self.diag_col].T.ravel())


# ---------------------------------------------------------------------------------------------
# result


@dataclasses.dataclass(frozen=True, eq=False)
class CovarianceResult(ResultMixin):
    """Pre-activation covariances of a CNN across depth (output of :func:`propagate_covariance`).

    Attributes
    ----------
    cov : ndarray
        Covariance at each returned layer: shape ``(n_layers, *spatial, *spatial)`` for one input,
        ``(n_layers, B, B, *spatial, *spatial)`` for a batch of ``B`` inputs, where
        ``cov[i, a, b, alpha, beta] = E[h_a(alpha) h_b(beta)]`` after layer ``layers[i]``.
    layers : ndarray of int, shape (n_layers,)
        The layers returned (0 is the input Gram matrix ``x x^T / c_in``).
    q_mean : ndarray, shape (completed + 1, B)
        Spatial mean of the variance ``Sigma_{alpha alpha}`` of each input at every layer
        ``0..completed``.
    activation : str
    sigma_w2, sigma_b2 : float
    v : ndarray
        The variance profile used.
    depth : int
        Requested depth.
    completed : int
        Last layer computed (``< depth`` only when interrupted or when the numbers stopped being
        finite).
    status : int
        :class:`Status`: OK, NONFINITE (overflow; later layers not computed) or MAXITER
        (interrupted before `depth`; ``cov`` holds only the layers reached).
    interrupted : bool
        Whether the run was stopped by the user (KeyboardInterrupt).
    method : str
        How the entries were evaluated ("mehler", "closed", "direct").
    common_layer, linear_layer, ti_layer : int
        First layer from which one variance served every pixel, from which the deviation from
        translation invariance was small enough to evolve linearly (mode by mode), and from
        which the covariance was translation invariant (``-1``: never).
    elapsed : float
        Wall time in seconds.
    """

    cov: np.ndarray
    layers: np.ndarray
    q_mean: np.ndarray
    activation: str
    sigma_w2: float
    sigma_b2: float
    v: np.ndarray
    depth: int
    completed: int
    status: int
    interrupted: bool
    method: str
    common_layer: int
    ti_layer: int
    elapsed: float
    linear_layer: int = -1


# ---------------------------------------------------------------------------------------------
# public API


def _prepare_x(x, d):
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"`x` must be a real array, got dtype {x.dtype}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == d + 1:
        batched = False
        x = x[None]
    elif x.ndim == d + 2:
        batched = True
    else:
        raise ValueError(
            f"`x` must have shape (*spatial, c_in) or (batch, *spatial, c_in) with {d} spatial "
            f"axes (the rank of `v`); got shape {x.shape}"
        )
    if x.shape[-1] < 1 or x.shape[0] < 1:
        raise ValueError(f"`x` must have at least one input and one channel; got shape {x.shape}")
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(
            f"`x` must be finite; got {x[tuple(bad)]!r} at index {tuple(bad.tolist())}")
    return x, batched


def _layers_arg(layers, depth):
    if layers is None:
        return np.array([depth], dtype=np.int64)
    if isinstance(layers, str):
        if layers == "all":
            return np.arange(depth + 1, dtype=np.int64)
        raise ValueError(f"`layers` must be None, 'all' or a sequence of ints; got {layers!r}")
    arr = np.atleast_1d(np.asarray(layers))
    if arr.dtype.kind not in "iu":
        raise TypeError(f"`layers` must contain integers, got {layers!r}")
    if arr.size and (arr.min() < 0 or arr.max() > depth):
        raise ValueError(f"`layers` must lie in [0, depth={depth}]; got {arr.tolist()}")
    return np.unique(arr.astype(np.int64))


def _select_method(a, method):
    method = as_choice(method, "method", ("auto", "mehler", "closed", "direct"))
    if method == "auto":
        if a.code in _CLOSED:
            return "closed"
        if not a.kinks:
            return "mehler"
        if a.code < _act.N_BUILTIN:
            return "direct"
        raise ValueError(
            f"activation {a.name!r} has kinks {a.kinks} and no closed form: its Hermite series "
            "converges too slowly for the covariance map; use a built-in activation"
        )
    if method == "closed" and a.code not in _CLOSED:
        raise ValueError(f"`method`='closed' needs linear, erf or relu; got activation {a.name!r}")
    if method == "direct" and a.code >= _act.N_BUILTIN:
        raise ValueError("`method`='direct' supports built-in activations only")
    return method


def _progress_bar(progress, depth, work):
    if progress is None:
        progress = work > 2e9
    if callable(progress) and not isinstance(progress, bool):
        return progress, None
    if not progress:
        return None, None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return None, None
    bar = tqdm(total=depth, desc="covariance layers", unit="layer", file=sys.stderr)

    def cb(done, total):
        bar.update(done - bar.n)

    return cb, bar


def propagate_covariance(x, act, sigma_w2, sigma_b2, v, depth, *, layers=None, method="auto",
                         ti_tol=1e-13, progress=None, chunk_seconds=0.2):
    r"""Propagate the pre-activation covariance of a CNN through `depth` layers.

    .. math::

        \Sigma^1 = \sigma_w^2\,\mathcal A\star(x x^T/c_{in}) + \sigma_b^2,\qquad
        \Sigma^{l+1} = \mathcal A\star\mathcal C(\Sigma^l)

    ([1]_, Section 2, eqs. (2.3)-(2.5); THEORY.md section 2.2), with circular padding, over all
    (input, pixel) pairs, cross-input covariances included.

    Parameters
    ----------
    x : array_like, shape ``(*spatial, c_in)`` or ``(B, *spatial, c_in)``
        One input or a batch of ``B`` inputs; ``spatial`` has 1 or 2 (or 3) axes, as many as
        `v`. Must be finite.
    act : str or Activation
        Activation.
    sigma_w2 : float
        Weight variance ``> 0`` (variance, not std).
    sigma_b2 : float
        Bias variance ``>= 0``.
    v : array_like, shape ``(k_1, ..., k_d)``
        Variance profile (see :func:`cnnmft.variance_profile`): non-negative, sums to 1,
        ``k_a <= n_a``.
    depth : int
        Number of convolution layers, ``>= 0``.
    layers : None, "all" or sequence of int, optional
        Layers to return, in ``[0, depth]`` (0 is the input Gram matrix ``x x^T / c_in``).
        Default: only `depth`.
    method : {"auto", "mehler", "closed", "direct"}
        Entry evaluator. "auto": closed forms for linear/erf/relu, the Mehler series for smooth
        activations, the adaptive bivariate quadrature for kinked ones. "direct" forces the
        adaptive quadrature for every entry (slow, the reference).
    ti_tol : float
        Spread along the pixel axis below which a displacement's column is treated as constant
        (translation invariance); the error this introduces is at most about `ti_tol` and decays
        afterwards. ``0`` disables the reduction.
    progress : None, bool or callable
        Progress display: a tqdm bar (True), none (False), or ``callback(done, depth)``.
        None shows a bar for long runs.
    chunk_seconds : float
        Target duration of one compiled chunk of layers (interrupts are seen between chunks).

    Returns
    -------
    CovarianceResult
        ``cov`` of shape ``(len(layers), *spatial, *spatial)`` (one input) or
        ``(len(layers), B, B, *spatial, *spatial)`` (batch), plus diagnostics.
        Ctrl-C (KeyboardInterrupt) during the run returns the layers computed so far with
        ``interrupted=True``.

    Raises
    ------
    ValueError
        Non-finite `x`, `x` rank not matching `v`, kernel larger than the grid, ``depth < 0``,
        invalid variances or `layers`, an activation without a usable evaluator.

    Notes
    -----
    See the module docstring and ``docs/covariance.md`` for the algorithm. Accuracy: every layer
    agrees with a direct high-degree quadrature of the same map to about 1e-13 (tested).

    References
    ----------
    .. [1] Xiao et al., ICML 2018, arXiv:1806.05393.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnmft import variance_profile
    >>> x = np.random.default_rng(0).normal(size=(8, 8, 3))
    >>> res = propagate_covariance(x, "tanh", 1.760955, 0.05, variance_profile("uniform", 3), 16)
    >>> res.cov.shape
    (1, 8, 8, 8, 8)
    """
    t0 = time.perf_counter()
    a = get_activation(act)
    sw2 = float(as_float_array(sigma_w2, "sigma_w2", low=0.0, low_open=True))
    sb2 = float(as_float_array(sigma_b2, "sigma_b2", low=0.0))
    if isinstance(v, str):
        raise TypeError(f"`v` must be an array; build it with variance_profile({v!r}, k)")
    v = variance_profile(np.asarray(v, dtype=np.float64), normalize=False)
    depth = as_int(depth, "depth", low=0)
    ti_tol = float(as_float_array(ti_tol, "ti_tol", low=0.0))
    x, batched = _prepare_x(x, v.ndim)
    spatial = x.shape[1:-1]
    _check_v_grid(v, spatial)
    layers = _layers_arg(layers, depth)
    method = _select_method(a, method)
    grid = _Grid(spatial, v, x.shape[0])
    nbytes = layers.size * (grid.B * grid.N) ** 2 * 8
    if nbytes > 8e9:
        raise ValueError(
            f"the requested output needs {nbytes / 1e9:.1f} GB ({layers.size} layers of "
            f"{grid.B * grid.N}^2 entries); ask for fewer `layers`"
        )
    cb, bar = _progress_bar(progress, depth, depth * grid.N * grid.ncol)
    eng = _Engine(a, sw2, sb2, grid, method, ti_tol)
    eng._v = v
    with _single_thread_blas():
        return _run(eng, x, grid, layers, depth, spatial, batched, cb, bar, a, sw2, sb2, v, t0,
                    method, chunk_seconds)


def _single_thread_blas():
    # the coefficient products are small: threaded BLAS only adds overhead (and contention)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _run(eng, x, grid, layers, depth, spatial, batched, cb, bar, a, sw2, sb2, v, t0, method,
         chunk_seconds):
    out, qmean = {}, []
    X = x.reshape(grid.B * grid.N, x.shape[-1])
    K0 = X @ X.T / x.shape[-1]
    S0 = grid.from_full(K0)
    qmean.append(grid.qpix(S0).reshape(grid.B, grid.N).mean(axis=1))
    if 0 in layers:
        out[0] = K0
    interrupted = False
    status = Status.OK
    try:
        if depth >= 1:
            S = np.empty_like(S0)
            grid.apply_a(S0, S)
            S *= sw2
            S += sb2
            eng.set_state(S, 1)
            status = eng.record(layers, out, qmean)
            if cb:
                cb(1, depth)
            while eng.layer < depth and status == Status.OK:
                status = eng.advance(depth, layers, out, qmean, chunk_seconds)
                if cb:
                    cb(eng.layer, depth)
    except KeyboardInterrupt:
        interrupted = True
        status = Status.MAXITER
    except FloatingPointError:
        # the Hermite series stopped converging (variances grew without bound)
        status = Status.NONFINITE
    finally:
        if bar is not None:
            bar.close()
    completed = eng.layer if depth >= 1 else 0
    got = np.array(sorted(out), dtype=np.int64)
    P = grid.B * grid.N
    if got.size:
        cov = np.stack([out[int(i)] for i in got])
    else:
        cov = np.empty((0, P, P))
    if batched:
        cov = cov.reshape((got.size, grid.B, grid.N, grid.B, grid.N)).transpose(0, 1, 3, 2, 4)
        cov = cov.reshape((got.size, grid.B, grid.B) + spatial + spatial)
    else:
        cov = cov.reshape((got.size,) + spatial + spatial)
    return CovarianceResult(
        cov=np.ascontiguousarray(cov), layers=got, q_mean=np.array(qmean), activation=a.name,
        sigma_w2=sw2, sigma_b2=sb2, v=v, depth=depth, completed=completed, status=int(status),
        interrupted=interrupted, method=method, common_layer=eng.common_layer,
        ti_layer=eng.ti_layer, linear_layer=eng.linear_layer, elapsed=time.perf_counter() - t0)


def covariance_map(cov, act, sigma_w2, sigma_b2, v, *, method="auto"):
    r"""One application of the map ``Sigma -> A * C(Sigma)`` to a covariance.

    Parameters
    ----------
    cov : array_like, shape ``(*spatial, *spatial)``
        A symmetric positive semi-definite covariance of one input (1D or 2D grid).
    act, sigma_w2, sigma_b2, v, method
        As in :func:`propagate_covariance`.

    Returns
    -------
    ndarray, shape ``(*spatial, *spatial)``
    """
    a = get_activation(act)
    sw2 = float(as_float_array(sigma_w2, "sigma_w2", low=0.0, low_open=True))
    sb2 = float(as_float_array(sigma_b2, "sigma_b2", low=0.0))
    v = variance_profile(np.asarray(v, dtype=np.float64), normalize=False)
    cov = as_float_array(cov, "cov")
    d = v.ndim
    if cov.ndim != 2 * d or cov.shape[:d] != cov.shape[d:]:
        raise ValueError(f"`cov` must have shape (*spatial, *spatial) with {d} spatial axes; "
                         f"got {cov.shape}")
    spatial = cov.shape[:d]
    _check_v_grid(v, spatial)
    method = _select_method(a, method)
    grid = _Grid(spatial, v, 1)
    N = grid.N
    S = grid.from_full(cov.reshape(N, N))
    eng = _Engine(a, sw2, sb2, grid, method, 0.0)
    T = np.empty_like(S)
    eng.apply_c(S, T, grid.qpix(S))
    out = np.empty_like(S)
    grid.apply_a(T, out)
    return grid.to_full(out).reshape(cov.shape)


# ---------------------------------------------------------------------------------------------
# engine


class _Engine:
    """Layer stepping with the phase switches (per-pixel -> common variance -> translation inv.)."""

    def __init__(self, a, sw2, sb2, grid, method, ti_tol):
        self.a, self.sw2, self.sb2, self.g, self.method = a, sw2, sb2, grid, method
        self.ti_tol = ti_tol
        self.odd = bool(a.odd)
        self.layer = 0
        self.S = None
        self.red = None  # reduced (translation invariant) state, shape (ncol,)
        self.lin = None  # linear regime: mean part, slopes and the Fourier deviation
        self._v = None
        self.lin_tol = _LIN_TOL if ti_tol > 0 else 0.0
        self.common_layer = -1
        self.ti_layer = -1
        self.linear_layer = -1
        self._series_cache = {}
        self._qstar_cache = {}
        self._src = None
        self.qstar = None
        self._layer_cost = None

    # -- evaluation of C ----------------------------------------------------------------------
    def _common_series(self, qbar):
        key = float(qbar)
        ser = self._series_cache.get(key)
        if ser is None:
            ser = _Series(_exact_coefficients(self.a, [qbar]), self.odd)
            if len(self._series_cache) > 8:
                self._series_cache.clear()
            self._series_cache[key] = ser
        return ser

    def _q_hull(self, lo, hi):
        """Return an interval holding every later variance.

        The q-map is increasing, so the iterates of the end points bound all later (spatially
        averaged) variances.
        """
        from cnnmft.meanfield import q_map

        q = np.array([lo, hi])
        a, b = lo, hi
        for _ in range(24):
            qn = np.asarray(q_map(self.a, q, self.sw2, self.sb2), dtype=np.float64).ravel()
            if not np.all(np.isfinite(qn)):
                break
            step = np.abs(qn - q)
            a, b = min(a, float(qn.min())), max(b, float(qn.max()))
            if np.all(step <= 1e-13 * np.abs(q)):
                break
            q = qn
        # geometric convergence (slope <= 0.9): the limit lies within 9 last steps; if not,
        # covers() fails later and the interval is rebuilt
        a = min(a, float(np.min(q - 9 * step)))
        b = max(b, float(np.max(q + 9 * step)))
        return max(a, 0.0), b

    def _pixel_series(self, uq):
        src = self._src
        if src is None or not src.covers(uq) or uq[-1] < 0.8 * src.qhi:
            # (re)build for the interval that holds every later variance; rebuilding when the
            # variances have shrunk keeps the number of series terms small
            lo, hi = self._q_hull(float(uq[0]), float(uq[-1]))
            src = self._src = _CoefSource(self.a, 0.999 * lo, 1.001 * hi + 1e-300)
        return _Series(src(uq), self.odd)

    def apply_c(self, S, T, qpix):
        g = self.g
        if self.method == "closed":
            _cov.c_closed(S, T, self.a.code, g.cola, g.colb, g.cd1, g.cd2, g.cd3, g.n1, g.n2,
                          g.n3, qpix, self.sw2, self.sb2)
        elif self.method == "direct":
            _cov.c_direct(S, T, self.a.code, g.cola, g.colb, g.cd1, g.cd2, g.cd3, g.n1, g.n2,
                          g.n3, qpix, self.sw2, self.sb2)
        else:
            uq, inv = np.unique(qpix, return_inverse=True)
            ser = self._pixel_series(uq)
            coef = np.ascontiguousarray(ser.coef[inv.ravel()])
            nterm = _term_table(ser.coef, ser.step)
            _cov.c_mehler_pix(S, T, g.cola, g.colb, g.cd1, g.cd2, g.cd3, g.n1, g.n2, g.n3, coef,
                              nterm, ser.k0, ser.step, qpix, self.sw2, self.sb2)

    # -- state --------------------------------------------------------------------------------
    def set_state(self, S, layer):
        self.S = S
        self.T = np.empty_like(S)
        self.layer = layer

    def current_full(self):
        if self.red is not None:
            return self.g.to_full(self.red)
        if self.lin is not None:
            return self.g.to_full(self._linear_state())
        return self.g.to_full(self.S)

    def current_q(self):
        g = self.g
        if self.red is not None:
            return self.red[g.diag_col].copy()
        if self.lin is not None:
            return self.lin["m"][g.diag_col].copy()
        return g.qpix(self.S).reshape(g.B, g.N).mean(axis=1)

    def record(self, layers, out, qmean):
        qm = self.current_q()
        qmean.append(qm)
        if not np.all(np.isfinite(qm)):
            return Status.NONFINITE
        if self.layer in layers:
            out[self.layer] = self.current_full()
        return Status.OK

    def _common_q(self):
        """Return the common variance if every variance is equal and stationary, else None."""
        if self.method != "mehler":
            return None
        q = self.g.qpix(self.S) if self.red is None else self.red[self.g.diag_col]
        qbar = float(q.mean())
        if not (q.max() - q.min() <= 4e-15 * qbar) or qbar <= 0:
            return None
        qs = self._qstar_cache.get(qbar)
        if qs is None:
            ser = self._common_series(qbar)
            qn = self.sw2 * float(np.sum(ser.coef[0] ** 2)) + self.sb2
            if abs(qn - qbar) > 1e-13 * qbar:  # not yet stationary
                return None
            # the exact fixed point of the series map (the per-pixel phase used interpolated
            # coefficients, good to ~1e-15): freezing the coefficients slightly off it would
            # bias every later layer by the same small amount
            qs = qbar
            for _ in range(60):
                qn = self.sw2 * float(np.sum(self._common_series(qs).coef[0] ** 2)) + self.sb2
                if abs(qn - qs) <= 2e-16 * qs:
                    break
                qs = qn
            if len(self._qstar_cache) > 64:
                self._qstar_cache.clear()
            self._qstar_cache[qbar] = qs
        ser = self._common_series(qs)
        return qs, np.ascontiguousarray(ser.coef[0] ** 2), ser

    def _check_ti(self):
        if self.ti_tol <= 0 or self.red is not None:
            return False
        sp = _cov.column_spread(self.S)
        scale = max(1.0, float(np.max(np.abs(self.g.qpix(self.S)))))
        if sp <= self.ti_tol * scale:
            self.red = np.ascontiguousarray(self.S.mean(axis=0))
            self.ti_layer = self.layer
            return True
        return False

    # -- stepping -----------------------------------------------------------------------------
    def _next_stop(self, depth, layers):
        later = layers[layers > self.layer]
        return int(later[0]) if later.size else depth

    def advance(self, depth, layers, out, qmean, chunk_seconds):
        """Advance by one chunk of layers (ending at the next requested layer at the latest)."""
        g = self.g
        stop = self._next_stop(depth, layers)
        if self.red is None and self.lin is None and not g.identity_a:
            self._check_ti()
        common = self._common_q()
        if common is not None and self.common_layer < 0:
            self.common_layer = self.layer
        if self.red is not None:
            return self._advance_reduced(stop, layers, out, qmean, common)
        if self.lin is not None and common is not None:
            return self._advance_linear(stop, layers, out, qmean, common)
        if common is not None:
            qbar, a2, ser = common
            if g.identity_a and self.ti_tol >= 0:
                return self._advance_delta(depth, layers, out, qmean, qbar, a2, ser)
            n = self._chunk(stop, chunk_seconds)
            t = time.perf_counter()
            done, ti, st = _cov.run_common(
                self.S, self.T, n, a2, ser.k0, ser.step, 1.0 / qbar, self.sw2, self.sb2,
                g.taps, g.o1, g.o2, g.o3, g.n1, g.n2, g.n3, g.identity_a, 4,
                max(self.ti_tol, self.lin_tol) * max(1.0, qbar))
            self._layer_cost = (time.perf_counter() - t) / max(done, 1)
            for _ in range(done - 1):
                self.layer += 1
                qmean.append(np.full(g.B, np.nan))
            self.layer += 1
            if st != 0:
                qmean.append(np.full(g.B, np.nan))
                return Status.NONFINITE
            status = self.record(layers, out, qmean)
            self._fill_q(qmean, done)
            if ti and not self._check_ti() and self.lin_tol > 0:
                self._enter_linear(qbar)
            return status
        # per-pixel variances: one layer
        qpix = g.qpix(self.S)
        self.apply_c(self.S, self.T, qpix)
        g.apply_a(self.T, self.S)
        self.layer += 1
        return self.record(layers, out, qmean)

    # -- linear regime ------------------------------------------------------------------------
    def _enter_linear(self, qbar):
        """Split S into its translation-invariant part m and a small deviation d.

        To first order d evolves per displacement column as d -> g'(m) A d, i.e. every spatial
        Fourier mode f of column c is multiplied by g'(m_c) lam_f per layer, while m follows the
        scalar map g. The neglected terms are O(d^2) with |d| <= lin_tol.
        """
        g = self.g
        m = self.S.mean(axis=0)
        d = self.S - m[None, :]
        shape3 = (g.n1, g.n2, g.n3)
        D = np.fft.fftn(d.reshape(shape3 + (g.ncol,)), axes=(0, 1, 2))
        from cnnmft.fourier import mode_eigenvalues

        v3 = self._v.reshape(self._v.shape + (1,) * (3 - self._v.ndim))
        lam = mode_eigenvalues(v3, shape3)
        mag = np.abs(lam).ravel()
        dmax = np.max(np.abs(D), axis=-1).ravel() / g.N
        self.lin = {"m": np.ascontiguousarray(m), "G": np.ones(g.ncol), "D": D, "lam": lam,
                    "mag": mag, "dmax": dmax, "l0": self.layer, "qbar": qbar}
        self.linear_layer = self.layer

    def _linear_state(self):
        L = self.lin
        k = self.layer - L["l0"]
        dev = np.fft.ifftn(L["D"] * (L["lam"] ** k)[..., None], axes=(0, 1, 2)).real
        dev = dev.reshape(self.g.N, self.g.ncol) * L["G"][None, :]
        return L["m"][None, :] + dev

    def _advance_linear(self, stop, layers, out, qmean, common):
        g = self.g
        qbar, a2, ser = common
        L = self.lin
        n = min(stop - self.layer, 256)
        done, st = _cov.run_linear(L["m"], L["G"], n, a2, ser.k0, ser.step, 1.0 / qbar,
                                   self.sw2, self.sb2)
        for _ in range(done - 1):
            qmean.append(L["m"][g.diag_col].copy())
        self.layer += done
        if st != 0:
            qmean.append(np.full(g.B, np.nan))
            return Status.NONFINITE
        status = self.record(layers, out, qmean)
        k = self.layer - L["l0"]
        bound = float(np.max(np.abs(L["G"]))) * float(np.sum(L["dmax"] * L["mag"] ** k))
        if bound <= self.ti_tol * max(1.0, qbar):
            self.red = L["m"].copy()
            self.ti_layer = self.layer
            self.lin = None
        return status

    def _fill_q(self, qmean, done):
        # inside a compiled chunk every variance stays at the common value
        q = qmean[-1]
        for i in range(1, done):
            qmean[-1 - i] = q

    def _chunk(self, stop, chunk_seconds):
        n = stop - self.layer
        if self._layer_cost:
            n = min(n, max(1, int(chunk_seconds / self._layer_cost)))
        else:
            n = min(n, 8)
        return n

    def _advance_reduced(self, stop, layers, out, qmean, common):
        g = self.g
        n = stop - self.layer
        if common is not None:
            qbar, a2, ser = common
            y = np.empty_like(self.red)
            n = min(n, 20000)
            done, st = _cov.run_reduced_common(self.red, y, n, a2, ser.k0, ser.step, 1.0 / qbar,
                                               self.sw2, self.sb2)
            for _ in range(done - 1):
                qmean.append(np.full(g.B, qbar))
            self.layer += done
            if st != 0:
                qmean.append(np.full(g.B, np.nan))
                return Status.NONFINITE
            return self.record(layers, out, qmean)
        # per-input variances: treat the reduced state as a one-pixel grid
        S = self.red[None, :].copy()
        T = np.empty_like(S)
        one = _Grid((1,), np.ones(1), g.B)
        one.cola, one.colb = g.cola, g.colb
        one.cd1 = one.cd2 = one.cd3 = np.zeros(g.ncol, dtype=np.int64)
        one.ncol = g.ncol
        one.diag_col = g.diag_col
        saved = self.g
        self.g = one
        try:
            self.apply_c(S, T, np.ascontiguousarray(S[0, g.diag_col]))
        finally:
            self.g = saved
        self.red = T[0].copy()
        self.layer += 1
        return self.record(layers, out, qmean)

    def _advance_delta(self, depth, layers, out, qmean, qbar, a2, ser):
        """V = delta with a common stationary variance: every entry follows one scalar map."""
        g = self.g
        targets = layers[layers > self.layer]
        snaps = np.unique(np.concatenate([targets, [depth]])).astype(np.int64)
        rel = np.ascontiguousarray(snaps - self.layer)
        vals = self.S.ravel()
        res = _tabulate_iterates(vals, int(rel[-1]), rel, a2, ser.k0, ser.step, qbar, self.sw2,
                                 self.sb2)
        shape = self.S.shape
        for j, L in enumerate(snaps):
            self.layer = int(L)
            self.S = res[j].reshape(shape)
            st = self.record(layers, out, [])
            if st != Status.OK:
                return st
        nfill = depth - len(qmean) + 1
        qmean.extend([np.full(g.B, qbar)] * nfill)
        return Status.OK


def _cheb_nodes(m):
    return np.cos(np.pi * (2 * np.arange(m) + 1) / (2 * m))[::-1]


def _tabulate_iterates(vals, nlayers, snaps, a2, k0, step, q, sw2, sb2, *, tol=1e-12,
                       deg=20, max_rounds=8):
    """Values of the iterated scalar map after snaps[j] layers, for every entry of `vals`.

    The iterates are interpolated on panels of Chebyshev nodes (degree `deg`) of the starting
    value; panels are split until the interpolant agrees with directly iterated check points to
    `tol`. Falls back to iterating every entry when the values are few.
    """
    vals = np.asarray(vals, dtype=np.float64)
    invq = 1.0 / q
    if vals.size <= _TAB_MIN:
        out = np.empty((snaps.size, vals.size))
        _cov.iterate_points(np.ascontiguousarray(vals), nlayers, a2, k0, step, invq, sw2, sb2,
                            out, snaps)
        return out
    lo, hi = float(vals.min()), float(vals.max())
    if hi - lo <= 1e-14 * max(1.0, abs(hi)):
        one = np.empty((snaps.size, 1))
        _cov.iterate_points(np.array([0.5 * (lo + hi)]), nlayers, a2, k0, step, invq, sw2, sb2,
                            one, snaps)
        return np.repeat(one, vals.size, axis=1)
    # initial panels: uniform in [lo, hi] plus geometric grading towards |rho| = 1
    edges = np.linspace(lo, hi, 17)
    for end in (q, -q):
        d = 0.05 * q
        while d > 1e-6 * q:
            p = end - math.copysign(d, end)
            if lo < p < hi:
                edges = np.append(edges, p)
            d *= 0.5
    edges = np.unique(edges)
    xc = _cheb_nodes(deg)
    xk = np.array([-0.987, -0.93, -0.61, -0.17, 0.29, 0.71, 0.955, 0.991])  # check points
    # barycentric weights for Chebyshev points of the first kind
    bw = (-1.0) ** np.arange(deg) * np.sin(np.pi * (2 * np.arange(deg) + 1) / (2 * deg))
    bw = bw[::-1]
    panels = [(edges[i], edges[i + 1]) for i in range(edges.size - 1)]
    good = []
    for _ in range(max_rounds):
        if not panels:
            break
        pa = np.array(panels)
        mid = 0.5 * (pa[:, 0] + pa[:, 1])
        half = 0.5 * (pa[:, 1] - pa[:, 0])
        pts = np.concatenate([(mid[:, None] + half[:, None] * xc[None]).ravel(),
                              (mid[:, None] + half[:, None] * xk[None]).ravel()])
        res = np.empty((snaps.size, pts.size))
        _cov.iterate_points(pts, nlayers, a2, k0, step, invq, sw2, sb2, res, snaps)
        nn = pa.shape[0] * deg
        fn = res[:, :nn].reshape(snaps.size, pa.shape[0], deg)
        fk = res[:, nn:].reshape(snaps.size, pa.shape[0], xk.size)
        est = _bary(xc, bw, fn, xk)
        err = np.max(np.abs(est - fk), axis=(0, 2))
        nxt = []
        for i, (p, e) in enumerate(zip(panels, err)):
            if e <= tol:
                good.append((p[0], p[1], fn[:, i, :]))
            else:
                m = 0.5 * (p[0] + p[1])
                nxt += [(p[0], m), (m, p[1])]
        panels = nxt
    good.sort(key=lambda t: t[0])
    out = np.empty((snaps.size, vals.size))
    done = np.zeros(vals.size, dtype=bool)
    if good:
        starts = np.array([g[0] for g in good])
        ends = np.array([g[1] for g in good])
        # Chebyshev coefficients of every panel: f = V c at the nodes
        vinv = np.linalg.inv(np.polynomial.chebyshev.chebvander(xc, deg - 1))
        coefs = np.ascontiguousarray(np.stack([g[2] for g in good]) @ vinv.T)  # (P, snaps, deg)
        idx = np.clip(np.searchsorted(starts, vals, side="right") - 1, 0, len(good) - 1)
        _cov.cheb_eval(vals, idx, starts, ends, coefs, out, done)
    rest = np.nonzero(~done)[0]
    if rest.size:
        r = np.empty((snaps.size, rest.size))
        _cov.iterate_points(np.ascontiguousarray(vals[rest]), nlayers, a2, k0, step, invq, sw2,
                            sb2, r, snaps)
        out[:, rest] = r
    return out


def _bary(xn, bw, f, t):
    """Barycentric interpolation of f (..., P, deg) on nodes xn at t (T,): (..., P, T)."""
    t = np.asarray(t, dtype=np.float64)
    d = t[:, None] - xn[None, :]  # (T, deg)
    exact = d == 0.0
    d[exact] = 1.0
    w = bw[None, :] / d
    num = np.einsum("...pk,tk->...pt", f, w)
    den = w.sum(axis=1)
    res = num / den
    hit = np.nonzero(exact.any(axis=1))[0]
    for ti in hit:
        k = int(np.nonzero(exact[ti])[0][0])
        res[..., ti] = f[..., k]
    return res
