"""The dense engine behind :func:`cnnmft.network.propagate_network` (see that module)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from cnnmft._network_expect import pair_expectations
from cnnmft._network_layers import Act, Conv, Dense, GlobalAvgPool, resolve
from cnnmft._util import progress_callback
from cnnmft._validation import as_choice, as_int
from cnnmft.activations import get_activation
from cnnmft.fourier import variance_profile
from cnnmft.results import Result, Status

__all__ = ["NetworkResult", "propagate_network", "conv_stack", "padded_covariance", "needs_dense"]


@dataclasses.dataclass(frozen=True, eq=False)
class NetworkResult(Result):
    r"""Forward, NTK and backward mean-field quantities of a layer list (:func:`propagate_network`).

    ``B`` inputs; ``L`` layers; ``n`` linear layers (Conv, pooling, Dense). Per-layer dicts are
    keyed by the layer's position ``str(i)`` in the list and hold ``(B, B, *s_i, *s_i)`` arrays
    (``s_i``: that layer's output grid).

    Attributes
    ----------
    kinds : list of str
        ``"conv"``, ``"act"``, ``"pool"``, ``"dense"`` per layer.
    shapes : ndarray of int, shape (L + 1, d)
        Grid before the first layer and after each layer.
    cov : dict
        Output second moment of each stored layer: the pre-activation covariance ``Sigma`` after
        a linear layer, ``E[phi phi']`` after an activation.
    ntk : dict
        Tangent kernel of each stored layer's output.
    grad : dict
        ``G = sum_c E[df/dy_c(alpha) df/dy_c(alpha')]`` at each stored layer's output.
    nngp, ntk_out : ndarray, shape (B, B)
        Covariance and tangent kernel of the readout (the last layer's output).
    linear : ndarray of int, shape (n,)
        Positions of the linear layers.
    q : ndarray, shape (n, B)
        Pixel-averaged variance of each linear layer's output.
    corr : ndarray, shape (n,)
        Correlation of inputs 0 and 1 at the same pixel, averaged over pixels (NaN if B = 1).
    corr_spatial : ndarray, shape (n, B)
        Correlation between distinct pixels of one input, averaged over pairs (NaN if P = 1).
    weight_grad2 : ndarray, shape (n, B)
        ``E||df/dW||_F^2 / c_in`` per linear layer (standard parametrisation, c -> infinity;
        multiply by the layer's input channels; 0 for pooling).
    bias_grad2 : ndarray, shape (n, B)
        ``E||df/db||^2`` per linear layer.
    preact_grad2 : ndarray, shape (n, B)
        ``E||df/dh||^2`` summed over channels and pixels of each linear layer's output.
    ntk_contrib : ndarray, shape (n, B, B)
        Each linear layer's parameters' share of ``ntk_out``: ``<G, Sigma>``.
    status : int
        :class:`cnnmft.Status`: OK or NONFINITE.
    elapsed : float
        Seconds.
    """

    kinds: list
    shapes: np.ndarray
    cov: dict
    ntk: dict
    grad: dict
    nngp: np.ndarray
    ntk_out: np.ndarray
    linear: np.ndarray
    q: np.ndarray
    corr: np.ndarray
    corr_spatial: np.ndarray
    weight_grad2: np.ndarray
    bias_grad2: np.ndarray
    preact_grad2: np.ndarray
    ntk_contrib: np.ndarray
    status: int
    elapsed: float


def _input_moment(x, gram, d):
    if (x is None) == (gram is None):
        raise TypeError(
            "give exactly one of `x` (inputs, shape (B, *spatial, c_in)) and `gram` "
            "(with `spatial_shape`)"
        )
    if x is not None:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim < 3 or x.ndim > 5:
            raise ValueError(
                f"`x` must have shape (B, *spatial, c_in) with 1 to 3 spatial axes; "
                f"got shape {x.shape}"
            )
        if not np.isfinite(x).all():
            raise ValueError("`x` must be finite")
        B, spatial = x.shape[0], x.shape[1:-1]
        X = x.reshape(B * int(np.prod(spatial)), x.shape[-1])
        return X @ X.T / x.shape[-1], B, tuple(spatial)
    gram, spatial = gram
    g = np.asarray(gram, dtype=np.float64)
    P = int(np.prod(spatial))
    m = int(round(np.sqrt(g.size)))
    if m * m != g.size or m % P:
        raise ValueError(f"`gram` must have (B*P)^2 entries with P = {P}; got shape {g.shape}")
    g = g.reshape(m, m)
    if not np.allclose(g, g.T, atol=1e-12 * max(1.0, float(np.abs(g).max()))):
        raise ValueError("`gram` must be symmetric")
    return g, m // P, tuple(spatial)


def _to_layout(M, B, shape):
    P = int(np.prod(shape))
    M = M.reshape(B, P, B, P).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(M.reshape((B, B) + tuple(shape) + tuple(shape)))


def _correlations(S, B, P):
    d = np.sqrt(np.clip(np.diag(S), 1e-300, None))
    R = (S / np.outer(d, d)).reshape(B, P, B, P)
    cross = float(np.mean([R[0, p, 1, p] for p in range(P)])) if B > 1 else np.nan
    if P == 1:
        return cross, np.full(B, np.nan)
    sp = np.array([(R[a, :, a, :].sum() - P) / (P * (P - 1)) for a in range(B)])
    return cross, sp


def _block_diag_sum(A, B, P):
    """``sum_{alpha, alpha'} A[(a, alpha), (b, alpha')]`` and the trace per input pair."""
    A4 = A.reshape(B, P, B, P)
    return A4.sum(axis=(1, 3)), np.einsum("apbp->ab", A4)


def propagate_network(
    x, network, *, gram=None, spatial_shape=None, store="all", backward=True, progress=None
):
    r"""Exact infinite-width covariances, NTK and gradient statistics of a layer list.

    Parameters
    ----------
    x : array_like, shape ``(B, *spatial, c_in)``, or None
        Inputs, channels last (1 to 3 spatial axes). Layer 1's covariance is
        ``sum_t w_t E_t (x x^T / c_in) E_t^T + sigma_b2``.
    network : list of layers
        :class:`Conv`, :class:`Act`, :class:`AvgPool`, :class:`GlobalAvgPool`, :class:`Dense`.
        An :class:`Act` must follow a linear layer (its input must be Gaussian). For gradients
        and the NTK the network must end in a :class:`Dense` readout.
    gram : array_like, shape ``(B P, B P)``, optional
        Input second moment ``x x^T / c_in`` instead of `x` (with `spatial_shape`).
    spatial_shape : tuple of int, optional
        Input grid when `gram` is given.
    store : {"all", "linear", "last"}
        Which layers' per-layer matrices are kept in ``cov``, ``ntk`` and ``grad``.
    backward : bool
        Run the backward recursion (gradient statistics; NaN when False).
    progress : None, bool or callable
        tqdm bar over the layers (True), none (False), or ``callback(done, n_layers)``; None
        shows a bar for long runs.

    Returns
    -------
    NetworkResult

    Raises
    ------
    ValueError, TypeError
        Bad layers (named by position), kernels that do not fit, inputs of the wrong shape.

    References
    ----------
    .. [1] Xiao et al., ICML 2018, Section 2; Novak et al., ICLR 2019; Jacot et al., 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnmft.network import Act, Conv, Dense, GlobalAvgPool, propagate_network
    >>> net = [Conv(3, 1, "zero", 1.5, 0.05), Act("erf"), Conv(3, 2, "zero", 1.5, 0.05),
    ...        Act("erf"), GlobalAvgPool(), Dense(1.0, 0.0)]
    >>> x = np.random.default_rng(0).normal(size=(2, 6, 6, 3))
    >>> r = propagate_network(x, net)
    >>> r.nngp.shape, r.cov["2"].shape
    ((2, 2), (2, 2, 3, 3, 3, 3))
    >>> bool(np.allclose(r.ntk_contrib.sum(axis=0), r.ntk_out))
    True
    """
    t0 = time.perf_counter()
    store = as_choice(store, "store", ("all", "linear", "last"))
    d = None if x is None else np.ndim(x) - 2
    K, B, spatial = _input_moment(x, None if gram is None else (gram, spatial_shape), d)
    layers = resolve(network, spatial)
    work = len(layers) * float(K.shape[0]) ** 2
    cb, bar = progress_callback(
        progress, len(layers), default=work > 5e8, desc="network layers", unit="layer"
    )
    try:
        fwd = _forward(layers, K, B, cb)
    finally:
        if bar is not None:
            bar.close()
    shapes = [spatial] + [_out_shape(r, s) for r, s in zip(layers, _in_shapes(layers, spatial))]
    status = Status.OK if all(np.isfinite(f["out"]).all() for f in fwd) else Status.NONFINITE
    has_readout = layers[-1].__class__.__name__ == "Linear" and layers[-1].kind == "dense"
    run_back = backward and has_readout and status == Status.OK
    grads = _backward(layers, fwd, B) if run_back else None
    keep = _kept(layers, store)
    cov, ntk, grad = {}, {}, {}
    for i in keep:
        cov[str(i)] = _to_layout(fwd[i]["out"], B, shapes[i + 1])
        ntk[str(i)] = _to_layout(fwd[i]["theta"], B, shapes[i + 1])
        if grads is not None:
            grad[str(i)] = _to_layout(grads[i], B, shapes[i + 1])
    lin = [i for i, r in enumerate(layers) if not isinstance(r, tuple)]
    st = _layer_stats(layers, lin, fwd, grads, shapes, B)
    nngp = fwd[-1]["out"] if int(np.prod(shapes[-1])) == 1 else np.full((B, B), np.nan)
    ntk_out = fwd[-1]["theta"] if int(np.prod(shapes[-1])) == 1 else np.full((B, B), np.nan)
    return NetworkResult(
        kinds=[r[0] if isinstance(r, tuple) else r.kind for r in layers],
        shapes=np.array(shapes, dtype=np.int64),
        cov=cov,
        ntk=ntk,
        grad=grad,
        nngp=np.array(nngp).reshape(B, B),
        ntk_out=np.array(ntk_out).reshape(B, B),
        linear=np.array(lin, dtype=np.int64),
        **st,
        status=int(status),
        elapsed=time.perf_counter() - t0,
    )


def _layer_stats(layers, lin, fwd, grads, shapes, B):
    """Per linear layer: mean variance, correlations, gradient norms, NTK contributions."""
    n = len(lin)
    q = np.empty((n, B))
    corr, corr_sp = np.full(n, np.nan), np.full((n, B), np.nan)
    wg, bg, hg = np.full((n, B), np.nan), np.full((n, B), np.nan), np.full((n, B), np.nan)
    contrib = np.full((n, B, B), np.nan)
    for j, i in enumerate(lin):
        P = int(np.prod(shapes[i + 1]))
        q[j] = np.einsum("apap->a", fwd[i]["out"].reshape(B, P, B, P)) / P
        corr[j], corr_sp[j] = _correlations(fwd[i]["out"], B, P)
        if grads is None:
            continue
        r = layers[i]
        G = grads[i]
        tot, tr = _block_diag_sum(G, B, P)
        hg[j] = np.diag(tr)
        sigma = fwd[i]["out"] if r.kind != "pool" else np.zeros_like(G)
        contrib[j] = _block_diag_sum(G * sigma, B, P)[0]
        if r.kind == "pool":
            wg[j], bg[j] = 0.0, 0.0
            continue
        bg[j] = np.diag(tot)
        wg[j] = np.diag(r.tap_products(G, fwd[i]["in"], B).sum(axis=0))
    return dict(
        q=q,
        corr=corr,
        corr_spatial=corr_sp,
        weight_grad2=wg,
        bias_grad2=bg,
        preact_grad2=hg,
        ntk_contrib=contrib,
    )


def _in_shapes(layers, spatial):
    shapes, s = [], spatial
    for r in layers:
        shapes.append(s)
        s = _out_shape(r, s)
    return shapes


def _out_shape(r, s):
    return s if isinstance(r, tuple) else r.out_shape


def _kept(layers, store):
    L = len(layers)
    if store == "last":
        return [L - 1]
    if store == "linear":
        return [i for i, r in enumerate(layers) if not isinstance(r, tuple)]
    return list(range(L))


def _forward(layers, K, B, cb=None):
    """Per layer: its input moment, output moment, tangent kernel and (act) E[phi' phi']."""
    out = []
    theta = np.zeros_like(K)
    gauss = False  # layer 1 reads the raw input
    for pos, r in enumerate(layers):
        if isinstance(r, tuple):
            if not gauss:
                raise ValueError(
                    f"`network[{pos}]` is an activation whose input is not a "
                    "Gaussian pre-activation (put a Conv or Dense before it)"
                )
            a = r[1]
            e0 = pair_expectations(a, K, 0)
            e1 = pair_expectations(a, K, 1)
            theta = e1 * theta
            out.append({"in": K, "out": e0, "theta": theta, "dphi2": e1})
            K, gauss = e0, False
            if cb is not None:
                cb(pos + 1, len(layers))
            continue
        S = r.forward(K, B)
        if r.kind == "pool":
            theta = r.forward(theta, B)
        else:
            theta = S + r.forward(theta, B) - r.bias
            gauss = True
        out.append({"in": K, "out": S, "theta": theta})
        K = S
        if cb is not None:
            cb(pos + 1, len(layers))
    return out


def _backward(layers, fwd, B):
    """G at every layer's output, from G = 1 at the readout."""
    G = np.ones((B, B))
    grads = [None] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        grads[i] = G
        r = layers[i]
        if isinstance(r, tuple):
            G = fwd[i]["dphi2"] * G
        else:
            G = r.adjoint(G, B)
    return grads


def conv_stack(
    act, sigma_w2, sigma_b2, v, depth, *, kernel_size=None, padding="zero", stride=1, readout=None
):
    r"""The layer list of a plain CNN: ``depth`` convolutions, each but the last followed by phi.

    Layer ``l`` is ``Conv(k, stride[l], padding[l], sigma_w2, sigma_b2, v)``. ``padding``: one
    name or a list of one per layer; ``stride``: an int or a tuple (one per spatial axis) for
    every layer, or a list of one such value per layer. With ``readout=(sw2_out, sb2_out)`` an
    activation, :class:`GlobalAvgPool` and ``Dense(sw2_out, sb2_out)`` follow.

    Examples
    --------
    >>> from cnnmft.network import conv_stack
    >>> net = conv_stack("tanh", 1.5, 0.05, "uniform", 2, kernel_size=3)
    >>> [type(layer).__name__ for layer in net]
    ['Conv', 'Act', 'Conv']
    """
    depth = int(depth)
    if depth < 1:
        raise ValueError(f"`depth` must be >= 1; got {depth}")
    if isinstance(v, str):
        if kernel_size is None:
            raise ValueError("`kernel_size` is needed with a named profile `v`")
        ks = kernel_size
    else:
        v = np.asarray(v, dtype=np.float64)
        ks = tuple(v.shape)
    pads = [padding] * depth if isinstance(padding, str) else list(padding)
    strides = list(stride) if isinstance(stride, list) else [stride] * depth
    if len(pads) != depth or len(strides) != depth:
        raise ValueError(
            f"`padding` and `stride` must be one value or {depth} values (one per "
            f"layer); got {padding!r}, {stride!r}"
        )
    name = act if isinstance(act, str) else act.name
    net = []
    for layer in range(depth):
        if layer:
            net.append(Act(name))
        st = strides[layer]
        st = tuple(int(a) for a in st) if isinstance(st, (tuple, list, np.ndarray)) else int(st)
        net.append(Conv(ks, st, pads[layer], sigma_w2, sigma_b2, v))
    if readout is not None:
        net += [Act(name), GlobalAvgPool(), Dense(*readout)]
    return net


def padded_covariance(
    x, act, sigma_w2, sigma_b2, v, depth, *, layers=None, padding="zero", stride=1
):
    """Fields of a ``CovarianceResult`` for zero/valid/TF-SAME padding and strides.

    The ``padding=``/``stride=`` path of :func:`cnnmft.covariance.propagate_covariance`: the
    plain CNN of ``depth`` convolutions (:func:`conv_stack`) through the dense engine. All
    requested `layers` must have the same grid (strides shrink it: ask for one layer, or use
    :func:`propagate_network` for per-layer grids). Arguments as there.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(6, 6, 3))
    >>> d = padded_covariance(x, "erf", 1.5, 0.05, np.full((3, 3), 1 / 9), 2, stride=[2, 1])
    >>> d["cov"].shape, d["method"]
    ((1, 3, 3, 3, 3), 'dense')
    """
    t0 = time.perf_counter()
    a = get_activation(act)
    if isinstance(v, str):
        raise TypeError(f"`v` must be an array; build it with variance_profile({v!r}, k)")
    vv = variance_profile(np.asarray(v, dtype=np.float64), normalize=False)
    depth = as_int(depth, "depth", low=0)
    x = np.asarray(x, dtype=np.float64)
    batched = x.ndim == vv.ndim + 2
    xb = x if batched else x[None]
    if xb.ndim != vv.ndim + 2:
        raise ValueError(
            f"`x` must have shape (*spatial, c_in) or (B, *spatial, c_in) with "
            f"{vv.ndim} spatial axes (the rank of `v`); got shape {x.shape}"
        )
    if layers is None:
        want = [depth]
    elif isinstance(layers, str) and layers == "all":
        want = list(range(depth + 1))
    else:
        want = sorted({int(i) for i in np.atleast_1d(layers)})
        if want and (want[0] < 0 or want[-1] > depth):
            raise ValueError(f"`layers` must lie in [0, depth={depth}]; got {want}")
    B, spatial = xb.shape[0], tuple(xb.shape[1:-1])
    X = xb.reshape(B * int(np.prod(spatial)), xb.shape[-1])
    K0 = X @ X.T / xb.shape[-1]
    covs, shapes = {0: K0}, {0: spatial}
    qmean = [np.einsum("apap->a", K0.reshape(B, -1, B, K0.shape[0] // B)) / (K0.shape[0] // B)]
    status = Status.OK
    if depth >= 1:
        net = conv_stack(a, sigma_w2, sigma_b2, vv, depth, padding=padding, stride=stride)
        r = propagate_network(xb, net, store="linear")
        status = Status(r.status)
        for j, i in enumerate(r.linear):
            covs[j + 1] = r.cov[str(i)]
            shapes[j + 1] = tuple(int(n) for n in r.shapes[i + 1])
            qmean.append(r.q[j])
    if len({shapes[i] for i in want}) > 1:
        raise ValueError(
            f"`layers` {want} have different grids {[shapes[i] for i in want]} "
            "(strides shrink the map); ask for layers of one grid, or use "
            "cnnmft.network.propagate_network"
        )
    out = []
    for i in want:
        c = covs[i] if i else _to_layout(K0, B, spatial)
        out.append(c if batched else c[0, 0])
    cov = np.stack(out) if out else np.empty((0,))
    return dict(
        cov=np.ascontiguousarray(cov),
        layers=np.array(want, dtype=np.int64),
        q_mean=np.array(qmean),
        activation=a.name,
        sigma_w2=float(sigma_w2),
        sigma_b2=float(sigma_b2),
        v=vv,
        depth=depth,
        completed=depth,
        status=int(status),
        interrupted=False,
        method="dense",
        common_layer=-1,
        ti_layer=-1,
        elapsed=time.perf_counter() - t0,
        linear_layer=-1,
    )


def needs_dense(padding, stride):
    """Whether `padding` / `stride` ask for more than circular stride-1 layers.

    Examples
    --------
    >>> needs_dense("circular", 1), needs_dense("zero", 1), needs_dense("circular", [1, (2, 1)])
    (False, True, True)
    """
    pads = [padding] if isinstance(padding, str) else list(padding)
    strides = stride if isinstance(stride, list) else [stride]
    flat = [int(a) for s in strides for a in np.atleast_1d(s)]
    return any(p != "circular" for p in pads) or any(a != 1 for a in flat)
