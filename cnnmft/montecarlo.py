r"""Monte Carlo on a torch-free numpy CNN: the reference every prediction is checked against.

A vanilla convolutional network with circular padding, in 1D or 2D (3D works too), with any
kernel generator, any registered activation and biases:

.. math::

    h^{l}_j(\alpha) = \sum_i \sum_{\beta} \omega^{l}_{ij}(\beta)\, x^{l-1}_i(\alpha + \beta)
    + b^{l}_j, \qquad x^{l} = \phi(h^{l}), \qquad x^0 = x \text{ (the raw input)},

with positions taken modulo the grid, tap offsets ``beta = t - (k - 1) // 2`` for tap index
``t`` (the centre convention of :func:`cnnmft.fourier.kernel_offsets`), Gaussian kernels
``Var omega_ij(beta) = sigma_w2 v_beta / c_in`` and biases ``N(0, sigma_b2)`` shared by all
positions ([1]_, Section 2.1). Arrays are channels-last: an input batch has shape
``(batch, *spatial, channels)``; kernels are ``(c_out, c_in, *k)`` as everywhere in cnnmft.

A batch is streamed through the layers one at a time: only the current layer is held in memory;
the statistics asked for are recorded on the way. Every estimate carries a standard error: over
independent network draws when ``n_draws >= 2``, otherwise over the channels of the one draw
(channels are conditionally i.i.d. given the previous layer).

The convolution is one GEMM over shifted copies of the input (im2col into a reused buffer, the
circular shift done with two slice copies per axis), so for ``c >= 128`` channels it runs at
close to the machine's matrix-multiply throughput (``benchmarks/bench_conv.py``).

Where things are: :func:`simulate` and :func:`mode_decay` here; the convolution
(:func:`circular_conv`) in ``cnnmft._conv``, kernels, inputs and the network in
``cnnmft._montecarlo_net``, :func:`jacobian_singular_values` in ``cnnmft._montecarlo_jacobian``.
Every public name is importable from here.

References
----------
.. [1] L. Xiao, Y. Bahri, J. Sohl-Dickstein, S. Schoenholz, J. Pennington, "Dynamical Isometry
   and a Mean Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural
   Networks", ICML 2018, arXiv:1806.05393.
.. [2] J. Pennington, S. Schoenholz, S. Ganguli, "Resurrecting the sigmoid in deep learning
   through dynamical isometry", NeurIPS 2017, arXiv:1711.04735.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnmft import _validation as V
from cnnmft._conv import circular_conv
from cnnmft._montecarlo_jacobian import JacobianSample, jacobian_singular_values
from cnnmft._montecarlo_net import (
    _check_grid,
    _check_x,
    _make_net,
    _mean_se,
    _progress,
    _status,
    gaussian_inputs,
    sample_kernel,
)
from cnnmft.results import ResultMixin

__all__ = [
    "circular_conv",
    "sample_kernel",
    "gaussian_inputs",
    "simulate",
    "Simulation",
    "mode_decay",
    "ModeDecay",
    "jacobian_singular_values",
    "JacobianSample",
]


# --------------------------------------------------------------------------------------------
# layer statistics of a batch
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Simulation(ResultMixin):
    r"""Statistics of pre-activations ``h^l`` (``l = 1..depth``) of a numpy CNN.

    All ``*_stderr`` fields are standard errors of the mean next to them: over network draws when
    ``n_draws >= 2``, otherwise over channels (delta method for ratios).

    Attributes
    ----------
    q, q_stderr : ndarray, shape ``(depth, batch)``
        :math:`q^l_a = \frac{1}{c P}\sum_{j,\alpha} h^l_{aj}(\alpha)^2`, the variance averaged
        over channels and positions.
    q_pos, q_pos_stderr : ndarray, shape ``(depth, batch, *spatial)``
        Per-position variance :math:`\frac1c \sum_j h^l_{aj}(\alpha)^2`.
    c, c_stderr : ndarray, shape ``(depth, batch, batch)``
        Correlation between inputs :math:`c^l_{ab} = G_{ab}/\sqrt{G_{aa}G_{bb}}` with
        :math:`G_{ab} = \frac{1}{cP}\sum_{j,\alpha} h_{aj}(\alpha) h_{bj}(\alpha)` (a ratio of
        means within each draw, then averaged over draws).
    cov_layers : ndarray of int, shape ``(n_cov,)``
        Layers at which the full covariance was recorded.
    cov, cov_stderr : ndarray, shape ``(n_cov, batch, *spatial, *spatial)``
        :math:`\hat\Sigma^l_{a;\alpha\alpha'} = \frac1c\sum_j h^l_{aj}(\alpha)h^l_{aj}(\alpha')`.
    q_draws : ndarray, shape ``(n_draws, depth, batch)``
        ``q`` of every draw.
    n_draws, width : int
    status : int
        :class:`cnnmft.Status`: OK, or NONFINITE when activations overflowed (the affected
        statistics are inf or NaN).
    """

    q: np.ndarray
    q_stderr: np.ndarray
    q_pos: np.ndarray
    q_pos_stderr: np.ndarray
    c: np.ndarray
    c_stderr: np.ndarray
    cov_layers: np.ndarray
    cov: np.ndarray
    cov_stderr: np.ndarray
    q_draws: np.ndarray
    n_draws: int
    width: int
    status: int = 0


def simulate(
    x,
    act,
    sigma_w2,
    sigma_b2,
    depth,
    *,
    width,
    kernel="gaussian",
    v="uniform",
    kernel_size=3,
    n_draws=4,
    cov_layers=(),
    rng=None,
    progress=None,
):
    r"""Stream a batch through random numpy CNNs and estimate ``q^l``, ``c^l`` and ``Sigma^l``.

    Each of `n_draws` networks is drawn afresh (kernels from `kernel`, biases
    ``N(0, sigma_b2)``); the batch passes through it one layer at a time, so memory is one
    layer's activations plus the recorded statistics.

    Mean-field prediction: :math:`\Sigma^{l+1} = \mathcal A_v \star C(\Sigma^l)`,
    :math:`\Sigma^1 = \sigma_w^2 \mathcal A_v \star (x x^T / c_{in}) + \sigma_b^2` ([1]_, eq. 2.5),
    which the statistics converge to as ``width -> inf``.

    Parameters
    ----------
    x : array_like, shape ``(batch, *spatial, c_in)``
        Inputs, channels last (layer 1 acts on them directly).
    act : str or Activation
    sigma_w2 : float
        Weight variance ``> 0`` (``Var omega = sigma_w2 v_beta / c_in``).
    sigma_b2 : float
        Bias variance ``>= 0``.
    depth : int
        Number of convolution layers ``>= 1``.
    width : int
        Channels of every hidden layer.
    kernel : {"gaussian", "delta_orthogonal", "block_orthogonal"} or callable
        Kernel generator (see :func:`sample_kernel`).
    v : str or array_like
        Variance profile for Gaussian kernels.
    kernel_size : int or tuple of int
        Kernel size per spatial axis.
    n_draws : int
        Independent networks (``>= 1``).
    cov_layers : sequence of int
        Layers (1..depth) at which to record the full pixel-pair covariance.
    rng : None, int or numpy.random.Generator
    progress : None, True or callable
        ``True`` shows a tqdm bar; a callable is called as ``progress(done, total)`` after each
        layer (it may raise to interrupt).

    Returns
    -------
    Simulation

    Examples
    --------
    >>> x = np.ones((1, 4, 16))
    >>> s = simulate(x, "erf", 1.5, 0.1, depth=3, width=64, n_draws=2, rng=0)
    >>> s.q.shape
    (3, 1)
    """
    # over 80 lines with its numpydoc docstring; the body is ~25 lines
    x = _check_x(x)
    depth = V.as_int(depth, "depth", low=1)
    n_draws = V.as_int(n_draws, "n_draws", low=1)
    net = _make_net(act, sigma_w2, sigma_b2, width, kernel, v, kernel_size, x.ndim - 2)
    _check_grid(x.shape[1:-1], net.kshape)
    cov_layers = np.array(
        sorted(set(int(V.as_int(int(lay), "cov_layers", low=1, high=depth)) for lay in cov_layers)),
        dtype=np.int64,
    )
    rng = V.make_rng(rng)
    stats = _Moments(n_draws, depth, x.shape[0], x.shape[1:-1], net.width, cov_layers)
    cb = _progress(progress, n_draws * depth)
    done = 0
    for r in range(n_draws):

        def hook(lay, h, r=r):
            nonlocal done
            stats.record(r, lay, h)
            done += 1
            if cb is not None:
                cb(done, n_draws * depth)

        net.forward(x, depth, rng, hook)
    return stats.result()


class _Moments:
    """The statistics :func:`simulate` records, per draw, layer and input.

    Draw 0 also records the spread over channels, the standard errors used when there is only
    one draw (channels are conditionally i.i.d. given the previous layer).
    """

    def __init__(self, n_draws, depth, batch, spatial, width, cov_layers):
        B, P = batch, int(np.prod(spatial))
        self.shape = (B, P, width)
        self.spatial = tuple(spatial)
        self.cov_layers = cov_layers
        self.rec = {int(lay): i for i, lay in enumerate(cov_layers)}
        self.q_pos = np.empty((n_draws, depth, B) + self.spatial)
        self.q_pos_var = np.empty((depth, B) + self.spatial)
        self.q_chan_se = np.empty((depth, B))
        self.gram_c = np.empty((n_draws, depth, B, B))
        self.c_chan_se = np.empty((depth, B, B))
        self.cov = np.empty((n_draws, len(cov_layers), B, P, P))
        self.cov_chan_se = np.empty((len(cov_layers), B, P, P))

    def record(self, r, lay, h):
        B, P, c = self.shape
        hf = h.reshape(B, P, c)
        h2 = hf * hf
        self.q_pos[r, lay - 1] = (h2.mean(axis=2)).reshape((B,) + self.spatial)
        g_chan = np.einsum("apj,bpj->jab", hf, hf) / P  # (c, B, B)
        g = g_chan.mean(axis=0)
        d = np.sqrt(np.diag(g))
        self.gram_c[r, lay - 1] = g / np.outer(d, d)
        if r == 0:
            self.q_pos_var[lay - 1] = (h2.var(axis=2, ddof=1) / c).reshape((B,) + self.spatial)
            qc = np.diagonal(g_chan, axis1=1, axis2=2)  # (c, B)
            self.q_chan_se[lay - 1] = qc.std(axis=0, ddof=1) / np.sqrt(c)
            # delta method for c_ab = g_ab / sqrt(g_aa g_bb)
            dg = np.diag(g)
            infl = g_chan / np.outer(d, d) - 0.5 * self.gram_c[r, lay - 1] * (
                qc[:, :, None] / dg[:, None] + qc[:, None, :] / dg[None, :]
            )
            self.c_chan_se[lay - 1] = infl.std(axis=0, ddof=1) / np.sqrt(c)
        if lay in self.rec:
            i = self.rec[lay]
            self.cov[r, i] = hf @ hf.transpose(0, 2, 1) / c
            if r == 0:
                m2 = h2 @ h2.transpose(0, 2, 1) / c
                self.cov_chan_se[i] = np.sqrt(np.clip(m2 - self.cov[r, i] ** 2, 0, None) / c)

    def result(self):
        B, P, c = self.shape
        n_draws, depth = self.q_pos.shape[:2]
        q_draws = self.q_pos.reshape(n_draws, depth, B, P).mean(axis=-1)
        if n_draws >= 2:
            q_m, q_se = _mean_se(q_draws)
            qp_m, qp_se = _mean_se(self.q_pos)
            c_m, c_se = _mean_se(self.gram_c)
            cov_m, cov_se = _mean_se(self.cov)
        else:
            q_m, q_se = q_draws[0], self.q_chan_se
            qp_m, qp_se = self.q_pos[0], np.sqrt(self.q_pos_var)
            c_m, c_se = self.gram_c[0], self.c_chan_se
            cov_m, cov_se = self.cov[0], self.cov_chan_se
        cshape = (len(self.cov_layers), B) + self.spatial + self.spatial
        return Simulation(
            q=q_m,
            q_stderr=q_se,
            q_pos=qp_m,
            q_pos_stderr=qp_se,
            c=c_m,
            c_stderr=c_se,
            cov_layers=self.cov_layers,
            cov=cov_m.reshape(cshape),
            cov_stderr=cov_se.reshape(cshape),
            q_draws=q_draws,
            n_draws=n_draws,
            width=c,
            status=_status(q_draws, self.gram_c, self.cov),
        )


# --------------------------------------------------------------------------------------------
# per-mode decay of an injected perturbation
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# per-mode decay of an injected perturbation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModeDecay(ResultMixin):
    r"""Decay, layer by layer, of a perturbation injected in chosen spatial Fourier modes.

    Attributes
    ----------
    modes : ndarray of int, shape ``(n_modes, d)``
        The frequencies ``f`` (one row per mode).
    kind : str
        ``"c"`` (off-diagonal, displacement ``delta != 0``; theory rate ``chi_c* lam_f``) or
        ``"q"`` (diagonal ``delta = 0``; theory rate ``chi_q* lam_f``).
    amplitude, amplitude_stderr : ndarray, shape ``(depth, n_modes)``
        Projection of the covariance difference (perturbed minus base input, same network) on
        the injected pattern, normalised to 1 at the input (layer 0 of the Gram matrix).
    rate, rate_stderr : ndarray, shape ``(n_modes,)``
        Least-squares per-layer multiplier ``r`` in ``a^{l+1} = r a^l`` over ``fit_layers``,
        fitted per draw and averaged over draws (stderr across draws).
    fit_layers : ndarray of int, shape ``(n_modes, 2)``
        First and last layer used in each mode's fit.
    n_draws, width : int
    status : int
        :class:`cnnmft.Status`: OK or NONFINITE.
    """

    modes: np.ndarray
    kind: str
    amplitude: np.ndarray
    amplitude_stderr: np.ndarray
    rate: np.ndarray
    rate_stderr: np.ndarray
    fit_layers: np.ndarray
    n_draws: int
    width: int
    status: int = 0


def _mode_pattern(spatial_shape, f):
    grid = np.meshgrid(*[np.arange(n) for n in spatial_shape], indexing="ij")
    phase = sum(2 * np.pi * fa * g / n for fa, g, n in zip(f, grid, spatial_shape))
    return np.cos(phase).ravel()


def _diag_dft(m, spatial_shape):
    """``E[delta, f] = sum_alpha m[alpha, alpha+delta] exp(-2 pi i f alpha / n)`` (d-dim)."""
    P = int(np.prod(spatial_shape))
    idx = np.arange(P).reshape(spatial_shape)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in spatial_shape], indexing="ij"), -1)
    out = np.empty((P,) + tuple(spatial_shape), dtype=np.complex128)
    for dflat in range(P):
        delta = np.unravel_index(dflat, spatial_shape)
        tgt = idx[
            tuple((grid[..., a] + delta[a]) % spatial_shape[a] for a in range(len(spatial_shape)))
        ]
        e = m[idx.ravel(), tgt.ravel()].reshape(spatial_shape)
        out[dflat] = np.fft.fftn(e)
    return out.reshape(P, P)  # (delta, f) flattened


def mode_decay(
    act,
    sigma_w2,
    sigma_b2,
    depth,
    spatial_shape,
    *,
    q_star,
    c_star,
    modes,
    width,
    kind="c",
    eps=0.2,
    kernel="gaussian",
    v="uniform",
    kernel_size=3,
    n_draws=4,
    fit_layers=None,
    rng=None,
    progress=None,
):
    r"""Measure the per-layer decay of a covariance perturbation in given spatial Fourier modes.

    Two inputs go through the *same* network (common random numbers): a base input whose first
    layer sits at the fixed point, :math:`\Sigma^1 = q^*[(1-c^*) I + c^* 1 1^T]`, and a perturbed
    one whose input Gram matrix differs by a pattern in mode ``f``:

    * ``kind="c"``: off-diagonal entries ``g a(alpha) a(alpha')`` with
      ``a(alpha) = 1 + eps cos(2 pi <f, alpha>/n)`` and the diagonal unchanged;
    * ``kind="q"``: the diagonal is multiplied by ``1 + eps cos(2 pi <f, alpha>/n)``.

    The difference of the empirical covariances, projected on the input pattern in the
    diagonal-direction Fourier basis (displacements ``delta != 0`` for ``"c"``, ``delta = 0`` for
    ``"q"``), decays in the linear regime by :math:`\chi_{c^*}\lambda_f` resp.
    :math:`\chi_{q^*}\lambda_f` per layer ([1]_, Section 2.4 / eq. 2.10), with
    :math:`\lambda_f` the DFT of ``v``.

    Parameters
    ----------
    act, sigma_w2, sigma_b2 : see :func:`simulate`
    depth : int
        Layers to simulate.
    spatial_shape : int or tuple of int
        Grid.
    q_star, c_star : float
        The fixed point (e.g. from :func:`cnnmft.fixed_point`) used to place the base input; in
        the ordered phase (``c* = 1``) use a ``c_star`` a little below 1 only with care: the
        measured rate then also drifts with ``c^l``.
    modes : sequence of int or of tuples
        Frequencies ``f`` (ints for 1D).
    width : int
        Channels; the inputs have ``max(width, 2 P)`` channels.
    kind : {"c", "q"}
    eps : float
        Perturbation size (keep it small for the linear regime).
    kernel, v, kernel_size : see :func:`simulate`
    n_draws : int
        Independent networks; at least 2 for a standard error.
    fit_layers : (int, int) or array of shape (n_modes, 2), optional
        Layer range for the rate fit (default ``(1, depth)``), one for all modes or one per mode
        (fit only where the amplitude is well above the noise: the least-squares ratio is
        biased towards 0 once noise dominates).
    rng, progress : see :func:`simulate`

    Returns
    -------
    ModeDecay

    Examples
    --------
    >>> md = mode_decay("tanh", 2.5, 0.05, 4, (8,), q_star=1.06396, c_star=0.446804,
    ...                 modes=[0, 2], width=16, n_draws=2, rng=0)
    >>> md.amplitude.shape, md.rate.shape
    ((4, 2), (2,))
    """
    # over 80 lines with its numpydoc docstring; the body is ~50 lines
    spatial_shape = tuple(int(n) for n in np.atleast_1d(spatial_shape))
    P = int(np.prod(spatial_shape))
    depth = V.as_int(depth, "depth", low=2)
    n_draws = V.as_int(n_draws, "n_draws", low=1)
    V.as_choice(kind, "kind", ("c", "q"))
    net = _make_net(act, sigma_w2, sigma_b2, width, kernel, v, kernel_size, len(spatial_shape))
    qs = V.as_float(q_star, "q_star", low=0.0, low_open=True)
    cs = V.as_float(c_star, "c_star", low=-1.0, high=1.0)
    eps = V.as_float(eps, "eps", low=0.0, low_open=True)
    modes = [tuple(np.atleast_1d(m).astype(int)) for m in modes]
    for m in modes:
        if len(m) != len(spatial_shape):
            raise ValueError(f"`modes` entries must have {len(spatial_shape)} components; got {m}")
    fit = _fit_layers(fit_layers, len(modes), depth)
    rng = V.make_rng(rng)
    q_in, g_in, base = _base_gram(qs, cs, net.sigma_w2, net.sigma_b2, P)
    channels = max(net.width, 2 * P)
    amps = np.zeros((n_draws, depth, len(modes)))
    total = n_draws * len(modes) * depth
    cb = _progress(progress, total)
    done = 0
    for im, f in enumerate(modes):
        pert = _perturbed_gram(kind, base, q_in, g_in, eps, _mode_pattern(spatial_shape, f))
        proj = _ModeProjection(pert - base, spatial_shape, f, kind)
        for r in range(n_draws):
            x = _paired_inputs(base, pert, spatial_shape, channels, rng)

            def hook(lay, h, r=r, im=im, proj=proj):
                nonlocal done
                amps[r, lay - 1, im] = proj(h)
                done += 1
                if cb is not None:
                    cb(done, total)

            net.forward(x, depth, rng, hook)
    rates = _fit_rates(amps, fit)
    amp_m, amp_se = _mean_se(amps)
    rate_m, rate_se = _mean_se(rates)
    return ModeDecay(
        modes=np.array(modes, dtype=np.int64),
        kind=kind,
        amplitude=amp_m,
        amplitude_stderr=amp_se,
        rate=rate_m,
        rate_stderr=rate_se,
        fit_layers=fit,
        n_draws=n_draws,
        width=net.width,
        status=_status(amps, rates),
    )


def _base_gram(q_star, c_star, sigma_w2, sigma_b2, P):
    """Input variance, input correlation and Gram matrix that put layer 1 at the fixed point."""
    q_in = (q_star - sigma_b2) / sigma_w2
    if q_in <= 0:
        raise ValueError("`q_star` must exceed `sigma_b2` (the input variance would be negative)")
    g_in = (q_star * c_star - sigma_b2) / (q_star - sigma_b2)  # gives Sigma^1 = Sigma*
    return q_in, g_in, q_in * ((1 - g_in) * np.eye(P) + g_in * np.ones((P, P)))


def _fit_layers(fit_layers, n_modes, depth):
    """The (first, last) layers of each mode's fit, shape ``(n_modes, 2)``, validated."""
    fit = np.array((1, depth) if fit_layers is None else fit_layers, dtype=np.int64)
    fit = np.broadcast_to(fit, (n_modes, 2)).copy() if fit.ndim == 1 else fit
    if fit.shape != (n_modes, 2) or not (
        (1 <= fit[:, 0]).all() and (fit[:, 0] < fit[:, 1]).all() and (fit[:, 1] <= depth).all()
    ):
        raise ValueError(
            "`fit_layers` must be (first, last) or one such pair per mode with "
            f"1 <= first < last <= depth = {depth}; got {fit_layers!r}"
        )
    return fit


def _perturbed_gram(kind, base, q_in, g_in, eps, pat):
    """The input Gram matrix of the perturbed input (see :func:`mode_decay`)."""
    if kind == "c":
        if not 0 < g_in < 1:
            raise ValueError("kind='c' needs 0 < c_star < 1 at the input (chaotic phase)")
        a = np.sqrt(g_in) * (1 + eps * pat)
        if np.max(a * a) >= 1:
            raise ValueError("`eps` too large: the perturbed Gram matrix is not valid")
        return q_in * (np.diag(1 - a * a) + np.outer(a, a))
    if eps >= 1 - g_in:
        raise ValueError("`eps` too large for kind='q' (needs eps < 1 - input corr)")
    return base + q_in * eps * np.diag(pat)


class _ModeProjection:
    """Projection of a covariance difference on the injected pattern, 1 at the input.

    The pattern is the input difference `dg` in the diagonal-direction Fourier basis at mode
    `f`, over the displacements ``delta != 0`` (kind "c") or ``delta = 0`` (kind "q").
    """

    def __init__(self, dg, spatial_shape, f, kind):
        P = int(np.prod(spatial_shape))
        self.spatial_shape = spatial_shape
        self.sel = np.zeros(P, dtype=bool)
        if kind == "c":
            self.sel[1:] = True
        else:
            self.sel[0] = True
        self.fidx = np.ravel_multi_index(
            tuple(fa % n for fa, n in zip(f, spatial_shape)), spatial_shape
        )
        self.w = _diag_dft(dg, spatial_shape)[self.sel, self.fidx]
        self.norm = float(np.real(np.vdot(self.w, self.w)))

    def __call__(self, h):
        """Amplitude of the perturbed-minus-base covariance of pre-activations `h`."""
        P = self.sel.size
        hf = h.reshape(2, P, -1)
        diff = (hf[1] @ hf[1].T - hf[0] @ hf[0].T) / hf.shape[-1]
        e = _diag_dft(diff, self.spatial_shape)[self.sel, self.fidx]
        return np.real(np.vdot(self.w, e)) / self.norm


def _paired_inputs(base, pert, spatial_shape, channels, rng):
    """The base and perturbed inputs, sharing their noise (the same orthonormal rows)."""
    P = base.shape[0]
    qrow = gaussian_inputs(np.eye(P), spatial_shape, channels, rng=rng)
    qrow = qrow.reshape(P, channels) / np.sqrt(channels)
    fb = np.linalg.cholesky(base + 1e-14 * np.eye(P))
    fp = np.linalg.cholesky(pert + 1e-14 * np.eye(P))
    x = np.sqrt(channels) * np.stack([fb @ qrow, fp @ qrow])
    return x.reshape((2,) + spatial_shape + (channels,))


def _fit_rates(amps, fit):
    """Least-squares multiplier ``r`` of ``a^{l+1} = r a^l`` per draw and mode."""
    rates = np.empty((amps.shape[0], amps.shape[2]))
    for im in range(amps.shape[2]):
        a0, a1 = fit[im, 0] - 1, fit[im, 1] - 1
        num = (amps[:, a0 + 1 : a1 + 1, im] * amps[:, a0:a1, im]).sum(axis=1)
        den = (amps[:, a0:a1, im] ** 2).sum(axis=1)
        rates[:, im] = num / den
    return rates
