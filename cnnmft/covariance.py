r"""The CNN covariance map :math:`\Sigma^{l+1} = \mathcal A \star \mathcal C(\Sigma^l)`.

For a vanilla CNN with circular padding, weights
``omega_{ij}(beta) ~ N(0, sigma_w2 * v[beta] / c_in)`` and biases ``N(0, sigma_b2)``, the
pre-activation covariance over (input, pixel) pairs obeys, in the infinite-channel limit
([1]_, Section 2.2; docs/theory.md, section 2.2)

.. math::

    \Sigma^1 = \sigma_w^2\, \mathcal A \star (x x^T / c_{in}) + \sigma_b^2, \qquad
    \Sigma^{l+1} = \mathcal A \star \mathcal C(\Sigma^l),

    \mathcal C(\Sigma)_{\alpha\alpha'} = \sigma_w^2\, \mathbb E_{h\sim N(0,\Sigma)}
    [\phi(h_\alpha)\phi(h_{\alpha'})] + \sigma_b^2, \qquad
    [\mathcal A \star M]_{\alpha\alpha'} = \sum_\beta v_\beta M_{\alpha+\beta,\alpha'+\beta}.

How it is computed (every layer within 1e-9 of an independent reference, in practice ~1e-13;
see ``docs/covariance.md``); the layer stepping is in :mod:`cnnmft._covariance_engine`, one
class per regime:

* the state is stored per displacement, ``S[alpha, delta] = Sigma[alpha, alpha + delta]``, half of
  the displacements for a single input (symmetry); ``A`` is a circular stencil along ``alpha``;
* every bivariate expectation comes from Mehler's formula
  ``E[phi(u1) phi(u2)] = sum_k c_k(q1) c_k(q2) rho^k`` with the normalised Hermite coefficients
  ``c_k(q) = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!)`` computed once per distinct variance by a
  composite Gauss-Legendre rule and truncated where the Parseval tail is below 1e-15
  (smooth activations: tanh, sigmoid, softplus, gelu, swish, smooth custom ones); closed forms
  for linear, erf and relu; the adaptive bivariate quadrature otherwise (hard_tanh, selu);
* once every variance is within 2e-14 of the stable fixed point ``q*`` of the q-map, the
  variances are pinned to ``q*`` (they follow the q-map, for which ``q*`` is a fixed point)
  and one coefficient set serves every off-diagonal pair; once every displacement's column is
  nearly constant along ``alpha`` its deviation evolves mode by mode (linear regime), and once
  it is constant (translation invariant, spread below ``ti_tol``) only one value per
  displacement is iterated;
* with ``v = delta`` (``A`` = identity) every entry follows the same scalar map: its iterates
  are tabulated by piecewise Chebyshev interpolation (checked at extra points at every layer)
  instead of being iterated entry by entry.

Every switch depends on the state alone, so the same call gives bit-identical layers whatever
`layers`, `chunk_seconds`, `progress`, the thread count or the machine's load.

References
----------
.. [1] L. Xiao, Y. Bahri, J. Sohl-Dickstein, S. S. Schoenholz, J. Pennington, "Dynamical Isometry
   and a Mean Field Theory of CNNs", ICML 2018, arXiv:1806.05393.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from cnnmft._covariance_engine import Engine, Evaluator, Grid
from cnnmft._covariance_series import mehler_coefficients  # noqa: F401 (public helper)
from cnnmft._kernels import _act
from cnnmft._network_engine import needs_dense, padded_covariance
from cnnmft._util import blas_threads, progress_callback
from cnnmft._validation import as_choice, as_float_array, as_int
from cnnmft.activations import get_activation
from cnnmft.fourier import _check_v_grid, variance_profile
from cnnmft.results import ResultMixin, Status

__all__ = ["propagate_covariance", "CovarianceResult", "covariance_map"]

_CLOSED = {_act.LINEAR, _act.ERF, _act.RELU}
_TAB_MIN = 4096  # below this many entries the delta-v map is iterated entry by entry
_LIN_TOL = 1e-8  # relative deviation from translation invariance below which it evolves linearly
_PSD_TOL = 1e-12  # relative tolerance of the symmetry and semi-definiteness checks of `cov`


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
        :class:`Status`: OK, NONFINITE (overflow; later layers not computed) or INTERRUPTED
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
            f"`x` must be finite; got {x[tuple(bad)]!r} at index {tuple(bad.tolist())}"
        )
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


def propagate_covariance(
    x,
    act,
    sigma_w2,
    sigma_b2,
    v,
    depth,
    *,
    layers=None,
    method="auto",
    ti_tol=1e-13,
    progress=None,
    chunk_seconds=0.2,
    padding="circular",
    stride=1,
):
    r"""Propagate the pre-activation covariance of a CNN through `depth` layers.

    .. math::

        \Sigma^1 = \sigma_w^2\,\mathcal A\star(x x^T/c_{in}) + \sigma_b^2,\qquad
        \Sigma^{l+1} = \mathcal A\star\mathcal C(\Sigma^l)

    ([1]_, Section 2, eqs. (2.3)-(2.5); docs/theory.md, section 2.2), with circular padding,
    over all (input, pixel) pairs, cross-input covariances included.

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
        Target duration of one compiled chunk of layers in the full-grid common-variance regime
        (interrupts and progress are seen between chunks). It sets only how the work is cut:
        regime switches are checked after every layer, so the result does not depend on it.
    padding : str or list of str
        "circular" (the theory's), "zero" (``torch.nn.Conv2d(padding=k // 2)``), "valid" or
        "same_tf" (TensorFlow "SAME"), or one per layer. Anything but circular stride-1 layers
        runs the dense engine of :mod:`cnnmft.network` (``method``, ``ti_tol``,
        ``chunk_seconds`` and ``progress`` do not apply; ``method`` is reported as "dense").
    stride : int, tuple or list
        Stride of every layer (an int or one per spatial axis), or a list of one per layer.
        The requested `layers` must share one grid.

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
    agrees with an independent full-matrix reference (high-order quadrature, closed forms) to
    1e-9 relative to ``q*`` (measured ~1e-13) in both phases and at criticality, and the deep
    layers reach ``q*`` on the diagonal and ``q* c*`` off it (tested to 10,000 layers).

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
    if needs_dense(padding, stride):  # zero/valid/TF-SAME padding or strides (cnnmft.network)
        return CovarianceResult(
            **padded_covariance(
                x, act, sigma_w2, sigma_b2, v, depth, layers=layers, padding=padding, stride=stride
            )
        )
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
    grid = Grid(spatial, v, x.shape[0])
    nbytes = layers.size * (grid.B * grid.N) ** 2 * 8
    if nbytes > 8e9:
        raise ValueError(
            f"the requested output needs {nbytes / 1e9:.1f} GB ({layers.size} layers of "
            f"{grid.B * grid.N}^2 entries); ask for fewer `layers`"
        )
    cb, bar = progress_callback(
        progress,
        depth,
        default=depth * grid.N * grid.ncol > 2e9,
        desc="covariance layers",
        unit="layer",
    )
    eng = Engine(
        a,
        sw2,
        sb2,
        grid,
        method,
        v,
        ti_tol=ti_tol,
        lin_tol=_LIN_TOL,
        tab_min=_TAB_MIN,
        chunk_seconds=chunk_seconds,
    )
    with blas_threads(1):  # the coefficient products are small: threaded BLAS only costs
        _run(eng, x, layers, depth, cb, bar)
    return _result(eng, layers, depth, spatial, batched, a, v, t0)


def _run(eng, x, layers, depth, cb, bar):
    """Layer 0 (input Gram matrix) and 1 (linear), then the engine's regimes up to `depth`."""
    g = eng.g
    X = x.reshape(g.B * g.N, x.shape[-1])
    K0 = X @ X.T / x.shape[-1]
    S0 = g.from_full(K0)
    eng.qmean.append(g.qpix(S0).reshape(g.B, g.N).mean(axis=1))
    if 0 in layers:
        eng.out[0] = K0
    eng.status, eng.interrupted = Status.OK, False
    try:
        if depth >= 1:
            S = np.empty_like(S0)
            g.apply_a(S0, S)
            S *= eng.sw2
            S += eng.sb2
            eng.status = eng.start(S, layers)
            if cb:
                cb(1, depth)
            while eng.layer < depth and eng.status == Status.OK:
                eng.status = eng.advance(depth, layers)
                if cb:
                    cb(eng.layer, depth)
    except KeyboardInterrupt:
        eng.interrupted = True
        eng.status = Status.INTERRUPTED
    except FloatingPointError:
        # the Hermite series stopped converging (variances grew without bound)
        eng.status = Status.NONFINITE
    finally:
        if bar is not None:
            bar.close()


def _result(eng, layers, depth, spatial, batched, a, v, t0):
    g = eng.g
    completed = eng.layer if depth >= 1 else 0
    got = np.array(sorted(eng.out), dtype=np.int64)
    P = g.B * g.N
    cov = np.stack([eng.out[int(i)] for i in got]) if got.size else np.empty((0, P, P))
    if batched:
        cov = cov.reshape((got.size, g.B, g.N, g.B, g.N)).transpose(0, 1, 3, 2, 4)
        cov = cov.reshape((got.size, g.B, g.B) + spatial + spatial)
    else:
        cov = cov.reshape((got.size,) + spatial + spatial)
    qmean = np.array(eng.qmean[: completed + 1])
    return CovarianceResult(
        cov=np.ascontiguousarray(cov),
        layers=got,
        q_mean=qmean,
        activation=a.name,
        sigma_w2=eng.sw2,
        sigma_b2=eng.sb2,
        v=v,
        depth=depth,
        completed=completed,
        status=int(eng.status),
        interrupted=eng.interrupted,
        method=eng.ev.method,
        common_layer=eng.common_layer,
        ti_layer=eng.ti_layer,
        linear_layer=eng.linear_layer,
        elapsed=time.perf_counter() - t0,
    )


def _check_covariance(cov, N):
    """Refuse a non-symmetric, non-positive-semi-definite or non-finite covariance."""
    K = cov.reshape(N, N)
    scale = float(np.max(np.abs(np.diagonal(K)))) if N else 0.0
    scale = max(scale, float(np.max(np.abs(K))) if N else 0.0)
    tol = _PSD_TOL * max(scale, np.finfo(float).tiny)
    asym = float(np.max(np.abs(K - K.T))) if N else 0.0
    if asym > tol:
        i, j = np.unravel_index(int(np.argmax(np.abs(K - K.T))), K.shape)
        raise ValueError(
            f"`cov` must be symmetric (to {_PSD_TOL:g} of its largest entry); entries "
            f"{i},{j} and {j},{i} differ by {asym:.3g}"
        )
    lam = float(np.linalg.eigvalsh(0.5 * (K + K.T))[0]) if N else 0.0
    if lam < -tol * max(N, 1):
        raise ValueError(
            f"`cov` must be positive semi-definite (eigenvalues >= -{_PSD_TOL:g} * N * max|cov|"
            f" = {-tol * max(N, 1):.3g}); its smallest eigenvalue is {lam:.3g}"
        )


def covariance_map(cov, act, sigma_w2, sigma_b2, v, *, method="auto"):
    r"""One application of the map ``Sigma -> A * C(Sigma)`` to a covariance.

    .. math::

        [\mathcal A \star \mathcal C(\Sigma)]_{\alpha\alpha'} = \sum_\beta v_\beta
        \big(\sigma_w^2\, \mathbb E_{h\sim N(0,\Sigma)}[\phi(h_{\alpha+\beta})
        \phi(h_{\alpha'+\beta})] + \sigma_b^2\big)

    (docs/theory.md, section 2.2), circular padding.

    Parameters
    ----------
    cov : array_like, shape ``(*spatial, *spatial)``
        A finite, symmetric, positive semi-definite covariance of one input (1D, 2D or 3D
        grid). Symmetric means ``|cov - cov^T| <= 1e-12 * max|cov|`` entrywise; positive
        semi-definite means every eigenvalue ``>= -1e-12 * N * max|cov|`` (``N`` pixels).
    act, sigma_w2, sigma_b2, v, method
        As in :func:`propagate_covariance`.

    Returns
    -------
    ndarray, shape ``(*spatial, *spatial)``

    Raises
    ------
    ValueError
        `cov` of the wrong shape, not finite, not symmetric or not positive semi-definite
        (within the tolerances above); invalid variances, profile or method.

    Examples
    --------
    >>> import numpy as np
    >>> K = np.full((4, 4), 0.5) + 0.5 * np.eye(4)   # 1D grid of 4 pixels
    >>> out = covariance_map(K, "erf", 1.5, 0.05, np.array([0.25, 0.5, 0.25]))
    >>> out.shape, bool(np.allclose(out, out.T))
    ((4, 4), True)
    """
    a = get_activation(act)
    sw2 = float(as_float_array(sigma_w2, "sigma_w2", low=0.0, low_open=True))
    sb2 = float(as_float_array(sigma_b2, "sigma_b2", low=0.0))
    v = variance_profile(np.asarray(v, dtype=np.float64), normalize=False)
    cov = as_float_array(cov, "cov")
    d = v.ndim
    if cov.ndim != 2 * d or cov.shape[:d] != cov.shape[d:]:
        raise ValueError(
            f"`cov` must have shape (*spatial, *spatial) with {d} spatial axes; got {cov.shape}"
        )
    spatial = cov.shape[:d]
    _check_v_grid(v, spatial)
    N = int(np.prod(spatial))
    _check_covariance(cov, N)
    method = _select_method(a, method)
    grid = Grid(spatial, v, 1)
    S = grid.from_full(cov.reshape(N, N))
    T = np.empty_like(S)
    with blas_threads(1):
        Evaluator(a, sw2, sb2, method).apply_c(grid, S, T, grid.qpix(S))
    out = np.empty_like(S)
    grid.apply_a(T, out)
    return grid.to_full(out).reshape(cov.shape)
