r"""Monte Carlo for layer lists: a finite numpy CNN with its backward pass.

The same layer list as :func:`cnnmft.network.propagate_network`, with ``width`` channels in every
hidden layer and i.i.d. Gaussian weights ``N(0, sigma_w2 v_t / c_in)``, biases ``N(0, sigma_b2)``,
and a readout of ``n_readout`` units. Per network draw it records

* the empirical pre-activation covariance ``(1/c) sum_j h_j h_j^T`` of every linear layer;
* the readout's ``f_a f_b`` averaged over the readout units (NNGP estimate);
* for readout unit 0, by an explicit backward pass: input gradients ``df/dh`` of every layer,
  weight and bias gradients, hence ``||df/dW||^2 / c_in``, ``||df/db||^2``, ``||df/dh||^2`` and
  the empirical NTK ``sum_p var_p (df(x_a)/dtheta_p) (df(x_b)/dtheta_p)`` (``var_p`` the
  initial variance of parameter ``p``: the NTK parametrisation).

Means and standard errors are over independent draws.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cnnmft import _validation as V
from cnnmft._network_layers import resolve
from cnnmft._util import progress_callback
from cnnmft.results import Result, Status

__all__ = ["NetworkSimulation", "simulate_network"]


@dataclasses.dataclass(frozen=True, eq=False)
class NetworkSimulation(Result):
    """Monte Carlo estimates (mean and standard error over draws) for a layer list.

    Attributes
    ----------
    linear : ndarray of int, shape (n,)
        Positions of the linear layers.
    cov, cov_stderr : dict
        ``str(i)`` -> ``(B P_i, B P_i)`` empirical covariance of linear layer ``i``.
    nngp, nngp_stderr, ntk, ntk_stderr : ndarray, shape (B, B)
    weight_grad2, bias_grad2, preact_grad2 : ndarray, shape (n, B)
        Means, as in :class:`cnnmft.network.NetworkResult`; ``*_stderr`` their errors.
    n_draws, width : int
    status : int
    """

    linear: np.ndarray
    cov: dict
    cov_stderr: dict
    nngp: np.ndarray
    nngp_stderr: np.ndarray
    ntk: np.ndarray
    ntk_stderr: np.ndarray
    weight_grad2: np.ndarray
    weight_grad2_stderr: np.ndarray
    bias_grad2: np.ndarray
    bias_grad2_stderr: np.ndarray
    preact_grad2: np.ndarray
    preact_grad2_stderr: np.ndarray
    n_draws: int
    width: int
    status: int


def _gathers(r):
    """Per tap: input index and mask for every output pixel (from the selection matrix)."""
    Po = int(np.prod(r.out_shape))
    out = []
    for E in r.mats:
        E = E.tocsr()
        idx = np.zeros(Po, dtype=np.int64)
        mask = np.diff(E.indptr) > 0
        idx[mask] = E.indices
        out.append((idx, mask.astype(np.float64), E))
    return out


def _draw(layers, c0, width, n_readout, rng):
    params, c = [], c0
    for r in layers:
        if isinstance(r, tuple) or r.kind == "pool":
            params.append(None)
            continue
        if r.kind == "conv":
            W = [rng.standard_normal((width, c)) * np.sqrt(w / c) for w in r.weights]
            b = rng.standard_normal(width) * np.sqrt(r.bias)
            params.append((W, b, c))
            c = width
        else:
            P = int(np.prod(r.in_shape))
            sw2 = float(r.weights[0] * P)
            W = rng.standard_normal((n_readout, P, c)) * np.sqrt(sw2 / (c * P))
            b = rng.standard_normal(n_readout) * np.sqrt(r.bias)
            params.append((W, b, c))
    return params


def _one_draw(layers, geo, x, params):
    B = x.shape[0]
    a = x.reshape(B, -1, x.shape[-1])
    tape, covs = [], {}
    for i, r in enumerate(layers):
        if isinstance(r, tuple):
            h = a
            a = r[1].phi(h)
            tape.append(r[1].dphi(h))
            continue
        if r.kind == "pool":
            M = r.mats[0]
            a = np.stack([M @ a[b] for b in range(B)])
            tape.append(None)
            continue
        W, bias, c_in = params[i]
        if r.kind == "conv":
            cols = [a[:, idx, :] * m[None, :, None] for idx, m, _ in geo[i]]
            h = sum(col @ Wt.T for col, Wt in zip(cols, W)) + bias
            tape.append(cols)
        else:
            h = np.einsum("bpc,upc->bu", a, W) + bias
            tape.append(a)
        if r.kind == "conv":
            H = h.reshape(B * h.shape[1], -1)
            covs[str(i)] = H @ H.T / H.shape[1]
        a = h
    return a, tape, covs


def _backward(layers, geo, params, tape, B):
    """Gradients of readout unit 0: NTK contributions and gradient norms per linear layer."""
    ntk = np.zeros((B, B))
    wg, bg, hg = [], [], []
    W, bias, c_in = params[-1]
    xin = tape[-1]
    P = W.shape[1]
    sw2 = float(layers[-1].weights[0] * P)
    ntk += sw2 / (c_in * P) * np.einsum("apc,bpc->ab", xin, xin) + layers[-1].bias
    wg.append((xin.reshape(B, -1) ** 2).sum(axis=1) / c_in)
    bg.append(np.ones(B))
    hg.append(np.ones(B))
    delta = np.broadcast_to(W[0][None], (B,) + W[0].shape).copy()
    for i in range(len(layers) - 2, -1, -1):
        r = layers[i]
        if isinstance(r, tuple):
            delta = delta * tape[i]
            continue
        if r.kind == "pool":
            M = r.mats[0]
            hg.append((delta.reshape(B, -1) ** 2).sum(axis=1))
            delta = np.stack([M.T @ delta[b] for b in range(B)])
            wg.append(np.zeros(B))
            bg.append(np.zeros(B))
            continue
        Ws, b, c_in = params[i]
        cols = tape[i]
        hg.append((delta.reshape(B, -1) ** 2).sum(axis=1))
        db = delta.sum(axis=1)  # (B, c_out)
        ntk += r.bias * db @ db.T
        bg.append((db**2).sum(axis=1))
        w2 = np.zeros(B)
        new = np.zeros((B, int(np.prod(r.in_shape)), c_in))
        for (idx, m, E), Wt, wvar, col in zip(geo[i], Ws, r.weights, cols):
            dW = np.einsum("bpo,bpi->boi", delta, col)
            flat = dW.reshape(B, -1)
            ntk += (wvar / c_in) * flat @ flat.T
            w2 += (flat**2).sum(axis=1) / c_in
            back = delta @ Wt  # (B, P_out, c_in)
            for bb in range(B):
                new[bb] += E.T @ back[bb]
        wg.append(w2)
        delta = new
    return ntk, np.array(wg[::-1]), np.array(bg[::-1]), np.array(hg[::-1])


def _draws(layers, geo, x, width, n_readout, rng, n_draws, cb, acc):
    covs, nngps, ntks, wgs, bgs, hgs = acc
    for d in range(n_draws):
        params = _draw(layers, x.shape[-1], width, n_readout, rng)
        f, tape, cv = _one_draw(layers, geo, x, params)
        for k, val in cv.items():
            covs.setdefault(k, []).append(val)
        nngps.append(f @ f.T / f.shape[1])
        ntk, wg, bg, hg = _backward(layers, geo, params, tape, x.shape[0])
        ntks.append(ntk)
        wgs.append(wg)
        bgs.append(bg)
        hgs.append(hg)
        if cb is not None:
            cb(d + 1, n_draws)


def _mean_se(samples):
    s = np.asarray(samples)
    n = s.shape[0]
    return s.mean(axis=0), (
        s.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(s.shape[1:], np.nan)
    )


def simulate_network(x, network, width, *, n_draws=8, n_readout=64, rng=None, progress=None):
    r"""Monte Carlo of a layer list: covariances, NNGP, gradient norms and empirical NTK.

    Parameters
    ----------
    x : array_like, shape ``(B, *spatial, c_in)``
        Inputs.
    network : list of layers
        As for :func:`cnnmft.network.propagate_network`; must end in a ``Dense`` readout.
    width : int
        Channels of every hidden layer.
    n_draws : int
        Independent networks (>= 2 for standard errors).
    n_readout : int
        Readout units per draw (the NNGP estimate averages over them; gradients use unit 0).
    rng : None, int or numpy.random.Generator
    progress : None, bool or callable
        tqdm bar over the draws (True), none (False, None), or ``callback(done, n_draws)``.

    Returns
    -------
    NetworkSimulation

    Examples
    --------
    >>> import numpy as np
    >>> from cnnmft.network import Act, Conv, Dense, GlobalAvgPool
    >>> net = [Conv(3, 1, "zero", 1.5, 0.05), Act("tanh"), GlobalAvgPool(), Dense(1.0, 0.0)]
    >>> x = np.random.default_rng(0).normal(size=(2, 5, 2))
    >>> sim = simulate_network(x, net, 16, n_draws=3, rng=0)
    >>> sim.ntk.shape, sim.weight_grad2.shape
    ((2, 2), (3, 2))
    """
    x = V.as_float_array(x, "x")
    width = V.as_int(width, "width", low=1)
    n_draws = V.as_int(n_draws, "n_draws", low=1)
    n_readout = V.as_int(n_readout, "n_readout", low=1)
    rng = V.make_rng(rng)
    layers = resolve(network, tuple(x.shape[1:-1]))
    if isinstance(layers[-1], tuple) or layers[-1].kind != "dense":
        raise ValueError("`network` must end in a Dense readout for the Monte Carlo")
    geo = [None if isinstance(r, tuple) or r.kind != "conv" else _gathers(r) for r in layers]
    covs, nngps, ntks, wgs, bgs, hgs = {}, [], [], [], [], []
    cb, bar = progress_callback(progress, n_draws, desc="network draws", unit="draw")
    try:
        _draws(
            layers, geo, x, width, n_readout, rng, n_draws, cb, (covs, nngps, ntks, wgs, bgs, hgs)
        )
    finally:
        if bar is not None:
            bar.close()
    cov, cov_se = {}, {}
    for k, vals in covs.items():
        cov[k], cov_se[k] = _mean_se(vals)
    nm, ns = _mean_se(nngps)
    tm, ts = _mean_se(ntks)
    wm, ws = _mean_se(wgs)
    bm, bs = _mean_se(bgs)
    hm, hs = _mean_se(hgs)
    ok = all(np.isfinite(a).all() for a in (nm, tm, wm))
    return NetworkSimulation(
        linear=np.array([i for i, r in enumerate(layers) if not isinstance(r, tuple)]),
        cov=cov,
        cov_stderr=cov_se,
        nngp=nm,
        nngp_stderr=ns,
        ntk=tm,
        ntk_stderr=ts,
        weight_grad2=wm,
        weight_grad2_stderr=ws,
        bias_grad2=bm,
        bias_grad2_stderr=bs,
        preact_grad2=hm,
        preact_grad2_stderr=hs,
        n_draws=n_draws,
        width=width,
        status=int(Status.OK if ok else Status.NONFINITE),
    )
