r"""Singular values of the numpy CNN's input-output Jacobian (see :mod:`cnnmft.montecarlo`).

The Jacobian of ``x^L`` with respect to ``x^0`` is ``J = prod_l D^l W^l``, with ``W^l`` the
circular convolution of layer ``l`` and ``D^l = diag(phi'(h^l))``. It is applied forward
(:func:`_jvp`) and transposed (:func:`_vjp`) without being formed; small networks build it
whole and take all eigenvalues of ``J^T J``, large ones use Hutchinson's estimator for the
moments and ARPACK for the largest singular values. Re-exported by :mod:`cnnmft.montecarlo`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import LinearOperator, svds

from cnnmft import _validation as V
from cnnmft._conv import _blas_threads
from cnnmft._montecarlo_net import _check_grid, _make_net, _mean_se, _progress, _status
from cnnmft.results import ResultMixin

__all__ = ["jacobian_singular_values", "JacobianSample"]

# the largest N = P * width for which method="exact" forms the N x N Jacobian
_EXACT_MAX_N = 8192


@dataclass(frozen=True)
class JacobianSample(ResultMixin):
    r"""Singular values of the input-output Jacobian ``J = dx^L/dx^0 = prod_l D^l W^l``.

    Attributes
    ----------
    method : str
        ``"exact"`` or ``"stochastic"``.
    eigenvalues : ndarray, shape ``(n_draws, N)`` (exact) or ``(0,)``
        All eigenvalues of ``J^T J`` (``N = P c_in``), ascending, per draw.
    m1, m1_stderr : float
        Mean eigenvalue of ``J J^T`` (normalised trace), mean over draws and its stderr
        (stochastic: Hutchinson estimate; stderr over draws and probes).
    m2, m2_stderr : float
        Second moment ``tr((J^T J)^2)/N``.
    var, var_stderr : float
        Spectral variance ``m2 - m1^2`` per draw, averaged over draws.
    top, top_stderr : ndarray, shape ``(n_top,)``
        Largest singular values (descending), mean over draws and stderr.
    top_draws : ndarray, shape ``(n_draws, n_top)``
    n_draws, width : int
    status : int
        :class:`cnnmft.Status`: OK or NONFINITE.
    """

    method: str
    eigenvalues: np.ndarray
    m1: float
    m1_stderr: float
    m2: float
    m2_stderr: float
    var: float
    var_stderr: float
    top: np.ndarray
    top_stderr: np.ndarray
    top_draws: np.ndarray
    n_draws: int
    width: int
    status: int = 0


def _jvp(layers, t):
    for conv, dphi in layers:
        t = conv(t)
        t *= dphi
    return t


def _vjp(layers, u):
    for conv, dphi in reversed(layers):
        u = u * dphi
        u = conv(u, transpose=True)
    return u


def jacobian_singular_values(
    act,
    sigma_w2,
    sigma_b2,
    depth,
    spatial_shape=(1,),
    *,
    width,
    q_input=1.0,
    kernel="gaussian",
    v="uniform",
    kernel_size=3,
    n_draws=4,
    method="exact",
    n_probes=32,
    n_top=4,
    rng=None,
    progress=None,
):
    r"""Sample the singular values of a numpy CNN's input-output Jacobian.

    The network has ``width`` channels in every layer including the input, and is evaluated at
    one random input whose every pixel has ``sigma_w2 |x(alpha)|^2 / c + sigma_b2 = q_input``
    exactly (use ``q_input = q*`` to sit at the fixed point, as the free-probability theory
    assumes, [2]_). ``spatial_shape=(1,)`` with ``kernel_size=1`` is a fully connected network.

    * ``method="exact"``: the full Jacobian is built by pushing all ``N = P c`` basis tangents
      forward (``N`` times the cost of a forward pass), and the eigenvalues of ``J^T J`` are
      computed; for ``N`` up to a few thousand.
    * ``method="stochastic"``: for large networks. Moments by Hutchinson's estimator with
      ``n_probes`` Gaussian probes ``z``: ``m1 = E|Jz|^2/N``,
      ``m2 = E|J^T J z|^2/N`` (a forward and a backward pass per probe), and the largest
      singular values by ARPACK (``scipy.sparse.linalg.svds``) on the matrix-free operator.

    Parameters
    ----------
    act, sigma_w2, sigma_b2, depth : see :func:`simulate`
    spatial_shape : int or tuple of int
        Grid; ``(1,)`` (with ``kernel_size=1``) for a fully connected network.
    width : int
        Channels.
    q_input : float
        Pre-activation variance at layer 1 (``> sigma_b2``).
    kernel, v, kernel_size : see :func:`simulate`
    n_draws : int
        Independent networks.
    method : {"exact", "stochastic"}
    n_probes : int
        Probes per draw (stochastic).
    n_top : int
        Number of largest singular values to report.
    rng, progress : see :func:`simulate`

    Returns
    -------
    JacobianSample

    References
    ----------
    .. [2] J. Pennington, S. Schoenholz, S. Ganguli, NeurIPS 2017, arXiv:1711.04735.

    Examples
    --------
    A linear network of Delta-orthogonal layers is ``sigma_w^L`` times an isometry:

    >>> js = jacobian_singular_values("linear", 2.0, 0.0, 3, (4,), width=4,
    ...                               kernel="delta_orthogonal", n_draws=1, rng=0)
    >>> js.eigenvalues.shape, bool(np.allclose(js.eigenvalues, 2.0**3))
    ((1, 16), True)
    """
    # over 80 lines with its numpydoc docstring; the body is ~35 lines
    spatial_shape = tuple(int(n) for n in np.atleast_1d(spatial_shape))
    depth = V.as_int(depth, "depth", low=1)
    n_draws = V.as_int(n_draws, "n_draws", low=1)
    V.as_choice(method, "method", ("exact", "stochastic"))
    net = _make_net(act, sigma_w2, sigma_b2, width, kernel, v, kernel_size, len(spatial_shape))
    _check_grid(spatial_shape, net.kshape)
    qin = V.as_float(q_input, "q_input", low=0.0, low_open=True)
    if qin <= net.sigma_b2:
        raise ValueError(f"`q_input` must exceed `sigma_b2` = {net.sigma_b2}; got {qin}")
    n_top = V.as_int(n_top, "n_top", low=1)
    n_probes = V.as_int(n_probes, "n_probes", low=2)
    rng = V.make_rng(rng)
    shape = spatial_shape + (net.width,)  # one input, channels last
    N = int(np.prod(shape))
    if method == "exact" and N > _EXACT_MAX_N:
        raise ValueError(
            f"method='exact' builds an N x N matrix with N = P*width = {N}; "
            f"use method='stochastic' for N > {_EXACT_MAX_N}"
        )
    n_top = min(n_top, N - 1) if method == "stochastic" else min(n_top, N)
    cb = _progress(progress, n_draws)
    draws = []
    for r in range(n_draws):
        x = rng.standard_normal((1,) + shape)
        norm = np.sqrt((x * x).mean(axis=-1, keepdims=True))
        x = x / norm * np.sqrt((qin - net.sigma_b2) / net.sigma_w2)
        layers = net.forward(x, depth, rng, lambda layer, h: None, keep=True)
        if method == "exact":
            draws.append(_exact_draw(layers, shape, n_top))
        else:
            draws.append(_stochastic_draw(layers, shape, n_probes, n_top, rng))
        if cb is not None:
            cb(r + 1, n_draws)
    return _summarise(method, draws, n_draws, net.width)


def _exact_draw(layers, shape, n_top):
    """All eigenvalues of ``J^T J``, from the Jacobian built by pushing every basis tangent."""
    N = int(np.prod(shape))
    jt = np.empty((N, N))  # row n = J e_n
    for s0 in range(0, N, 512):
        s1 = min(N, s0 + 512)
        t = np.zeros((s1 - s0, N))
        t[np.arange(s1 - s0), np.arange(s0, s1)] = 1.0
        jt[s0:s1] = _jvp(layers, t.reshape((s1 - s0,) + shape)).reshape(s1 - s0, N)
    with _blas_threads(2.0 * N**3):
        ev = np.linalg.eigvalsh(jt @ jt.T)
    ev = np.clip(ev, 0.0, None)
    return ev, ev.mean(), (ev**2).mean(), ev.var(), np.sqrt(ev[::-1][:n_top])


def _stochastic_draw(layers, shape, n_probes, n_top, rng):
    """Hutchinson moments per probe and the ARPACK top singular values of one draw."""
    N = int(np.prod(shape))
    z = rng.standard_normal((n_probes,) + shape)
    jz = _jvp(layers, z)
    jtjz = _vjp(layers, jz)
    a1 = (jz * jz).reshape(n_probes, -1).sum(axis=1) / N
    a2 = (jtjz * jtjz).reshape(n_probes, -1).sum(axis=1) / N
    shp = (1,) + shape
    op = LinearOperator(
        (N, N),
        dtype=np.float64,
        matvec=lambda u: _jvp(layers, u.reshape(shp)).ravel(),
        rmatvec=lambda u: _vjp(layers, u.reshape(shp)).ravel(),
    )
    s = svds(op, k=n_top, return_singular_vectors=False, random_state=int(rng.integers(2**31)))
    return None, a1, a2, a2.mean() - a1.mean() ** 2, np.sort(s)[::-1]


def _summarise(method, draws, n_draws, width):
    """Means and standard errors over draws (stochastic, one draw: over its probes)."""
    eig, m1s, m2s, vars_, tops = (list(col) for col in zip(*draws))
    tops = np.array(tops)
    top_m, top_se = _mean_se(tops)
    if method == "exact":
        m1, m1_se = _mean_se(np.array(m1s))
        m2, m2_se = _mean_se(np.array(m2s))
        eigenvalues = np.array(eig)
    else:
        a1 = np.array(m1s)  # (draws, probes): per-draw means are independent samples
        a2 = np.array(m2s)
        m1, m1_se = _mean_se(a1.mean(axis=1)) if n_draws > 1 else _mean_se(a1[0])
        m2, m2_se = _mean_se(a2.mean(axis=1)) if n_draws > 1 else _mean_se(a2[0])
        eigenvalues = np.zeros((0,))
    var_m, var_se = _mean_se(np.array(vars_))
    return JacobianSample(
        method=method,
        eigenvalues=eigenvalues,
        m1=float(m1),
        m1_stderr=float(m1_se),
        m2=float(m2),
        m2_stderr=float(m2_se),
        var=float(var_m),
        var_stderr=float(var_se),
        top=top_m,
        top_stderr=top_se,
        top_draws=tops,
        n_draws=n_draws,
        width=width,
        status=_status(tops, np.array(vars_), eigenvalues),
    )
