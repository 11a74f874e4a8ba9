r"""Backward depth scales per Fourier mode, predictions for a VanillaCNN, border effects.

* :func:`backward_mode_depth_scales`: at the fixed point of a circular CNN the channel-summed
  gradient second moment obeys ``G^l = sigma_w2 E[phi' phi'] * A^T(G^{l+1})``
  (docs/theory.md, section 2.5). ``A^T`` is the stencil with ``v`` reflected, so its
  eigenvalues are ``conj(lam_f)``: the per-pixel gradient variance (displacement 0) of mode ``f``
  grows by ``chi_1 |lam_f|`` per layer, a displacement ``delta != 0`` (ordered phase:
  ``c* = 1``, the same) by ``chi_c,back |lam_f|`` with ``chi_c,back = sigma_w2
  E[phi'(u1) phi'(u2)]`` at ``(q*, c*)``.
* :func:`predict`: the mean-field story of a :class:`cnnmft.pytorch.VanillaCNN` (or its config)
  from :func:`cnnmft.network.propagate_network`.
* :func:`border_effects`: how far zero padding moves the fixed point, the gradient (Jacobian)
  gains and their depth scales from the circular theory, per map size.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from cnnmft import gaussian
from cnnmft._network_engine import propagate_network
from cnnmft._network_expect import pair_expectations
from cnnmft._network_layers import Act, Conv, Dense, GlobalAvgPool, resolve
from cnnmft._util import progress_callback
from cnnmft._validation import as_float_array, as_int
from cnnmft.fourier import mode_eigenvalues, variance_profile
from cnnmft.meanfield import critical_point, critical_sigma_w2, fixed_point, trainable_depth
from cnnmft.results import Result

__all__ = [
    "BackwardModeDepthScales",
    "backward_mode_depth_scales",
    "Prediction",
    "predict",
    "vanilla_network",
    "BorderEffects",
    "border_effects",
]


def _xi(x):
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore"):
        xi = -1.0 / np.log(np.where(x == 1.0, 0.5, x))
    xi = np.where(x == 1.0, np.inf, xi)
    return np.where(x == 0.0, 0.0, xi)


@dataclasses.dataclass(frozen=True, eq=False)
class BackwardModeDepthScales(Result):
    """Per-mode backward depth scales (:func:`backward_mode_depth_scales`), ``G`` the grid.

    Attributes
    ----------
    lam : ndarray of complex, shape G
        Eigenvalues of ``A`` (:func:`cnnmft.mode_eigenvalues`); ``A^T`` has ``conj(lam)``.
    q_star, c_star, chi_1, chi_c_back : float
        Fixed point, ``sigma_w2 E[phi'^2]`` and ``sigma_w2 E[phi'(u1) phi'(u2)]`` at ``c*``.
    gain_diag, gain_off : ndarray, shape G
        Per-layer growth factors ``chi_1 |lam_f|`` and ``chi_c_back |lam_f|``.
    xi_grad, xi_grad_off : ndarray, shape G
        ``-1 / log(gain)`` (negative: the mode grows backwards; inf: marginal).
    """

    lam: np.ndarray
    q_star: float
    c_star: float
    chi_1: float
    chi_c_back: float
    gain_diag: np.ndarray
    gain_off: np.ndarray
    xi_grad: np.ndarray
    xi_grad_off: np.ndarray


def backward_mode_depth_scales(act, sigma_w2, sigma_b2, v, spatial_shape):
    r"""Depth scales of every Fourier mode of the back-propagated gradient of a circular CNN.

    .. math:: \xi_{grad,f} = -1/\log(\chi_1 |\lambda_f|), \qquad
              \chi_1 = \sigma_w^2\, \mathbb E[\phi'(\sqrt{q^*} z)^2]

    (docs/theory.md, section 2.5; ``lam_f`` the DFT of ``v``, :func:`cnnmft.mode_eigenvalues`).

    Parameters
    ----------
    act : str or Activation
    sigma_w2, sigma_b2 : float
    v : array_like
        Variance profile.
    spatial_shape : int or tuple of int

    Returns
    -------
    BackwardModeDepthScales

    Examples
    --------
    >>> from cnnmft import variance_profile
    >>> r = backward_mode_depth_scales("tanh", 1.5, 0.05, variance_profile("uniform", 3), (8, 8))
    >>> round(float(r.chi_1), 5), round(float(r.xi_grad[0, 1]), 3)
    (0.93864, 3.564)
    """
    sw = float(as_float_array(sigma_w2, "sigma_w2", low=0.0, low_open=True))
    sb = float(as_float_array(sigma_b2, "sigma_b2", low=0.0))
    lam = mode_eigenvalues(v, spatial_shape)
    fp = fixed_point(act, sw, sb)
    q, c = float(np.asarray(fp.q_star)), float(np.asarray(fp.c_star))
    chi1 = float(np.asarray(fp.chi_1))
    if q > 0 and math.isfinite(q):
        chib = sw * float(gaussian.expect2(act, q, q, min(1.0, max(-1.0, c)), (1, 1)))
    else:
        chib = chi1
    mag = np.abs(lam)
    return BackwardModeDepthScales(
        lam=lam,
        q_star=q,
        c_star=c,
        chi_1=chi1,
        chi_c_back=chib,
        gain_diag=chi1 * mag,
        gain_off=chib * mag,
        xi_grad=_xi(chi1 * mag),
        xi_grad_off=_xi(chib * mag),
    )


# ---------------------------------------------------------------------------------------------
# VanillaCNN


_CONFIG_KEYS = (
    "depth",
    "channels",
    "in_channels",
    "kernel_size",
    "init",
    "sigma_w2",
    "sigma_b2",
    "q_star",
    "v",
    "t",
    "act",
    "padding",
    "stem_strides",
    "readout_scale",
)


def _config(model):
    """A plain dict of the architecture of a VanillaCNN or of a config dict."""
    if isinstance(model, dict):
        cfg = dict(model)
        unknown = (
            set(cfg)
            - set(_CONFIG_KEYS)
            - {"num_classes", "checkpoint_segments", "impl", "generator"}
        )
        if unknown:
            raise ValueError(
                f"`model` config has unknown keys {sorted(unknown)}; known: {list(_CONFIG_KEYS)}"
            )
        if "depth" not in cfg:
            raise ValueError("`model` config needs at least 'depth'")
    elif hasattr(model, "block") and hasattr(model, "stem"):
        cfg = {
            "depth": model.depth,
            "channels": model.channels,
            "in_channels": model.stem[0].in_channels if len(model.stem) else model.channels,
            "kernel_size": model.block.kernel_size,
            "init": model.init,
            "sigma_w2": model.sigma_w2,
            "sigma_b2": model.sigma_b2,
            "v": model.v,
            "t": model.t,
            "act": model.act,
            "padding": model.block.padding,
            "stem_strides": tuple(int(c.stride[0]) for c in model.stem),
            "readout_scale": model.readout_scale,
        }
    else:
        raise TypeError(f"`model` must be a VanillaCNN or a dict of its arguments; got {model!r}")
    cfg.setdefault("channels", 16)
    cfg.setdefault("in_channels", 1)
    cfg.setdefault("kernel_size", 3)
    cfg.setdefault("init", "delta_orthogonal")
    cfg.setdefault("v", "uniform")
    cfg.setdefault("t", None)
    cfg.setdefault("act", "tanh")
    cfg.setdefault("padding", "circular")
    cfg.setdefault("stem_strides", (1, 2, 2))
    cfg.setdefault("readout_scale", 1.0)
    sw, sb = cfg.get("sigma_w2"), cfg.get("sigma_b2")
    if sw is None and sb is None:
        q = cfg.get("q_star") or 1.0 / max(int(cfg["depth"]), 1)
        cp = critical_point(cfg["act"], q)
        sw, sb = float(cp.sigma_w2), float(cp.sigma_b2)
    elif sw is None:
        sw = float(critical_sigma_w2(cfg["act"], sb).sigma_w2)
    elif sb is None:
        raise ValueError("`sigma_w2` given without `sigma_b2` in the `model` config")
    cfg["sigma_w2"], cfg["sigma_b2"] = float(sw), float(sb)
    if cfg["readout_scale"] == "1/sqrt(q*)":
        q = cfg.get("q_star") or 1.0 / max(int(cfg["depth"]), 1)
        cfg["readout_scale"] = 1.0 / math.sqrt(q)
    return cfg


def _block_profile(cfg):
    k = int(cfg["kernel_size"])
    init = cfg["init"]
    if init == "delta_orthogonal":
        return variance_profile("delta", (k, k))
    if init == "block_orthogonal":
        return variance_profile("binomial", (k, k))
    if init == "tunable_orthogonal":
        return variance_profile("tunable", (k, k), t=0.25 if cfg["t"] is None else cfg["t"])
    if isinstance(cfg["v"], str):
        return variance_profile(cfg["v"], (k, k), t=cfg["t"])
    return variance_profile(np.asarray(cfg["v"], dtype=np.float64))


def vanilla_network(model):
    """The layer list of a VanillaCNN (or its config): stem, deep block, pooling, readout.

    Orthogonal deep-block kernels enter through their tap-energy profile (delta, binomial,
    tunable), the mean field of their second moments (docs/theory.md, section 2.7).

    Examples
    --------
    >>> net = vanilla_network({"depth": 2, "sigma_w2": 1.5, "sigma_b2": 0.05, "stem_strides": (1,)})
    >>> [type(layer).__name__ for layer in net]
    ['Conv', 'Act', 'Conv', 'Act', 'Conv', 'Act', 'GlobalAvgPool', 'Dense']
    """
    cfg = _config(model)
    sw, sb, act = cfg["sigma_w2"], cfg["sigma_b2"], cfg["act"]
    k = int(cfg["kernel_size"])
    pad = {"circular": "circular", "zeros": "zero"}[cfg["padding"]]
    if pad == "zero" and k % 2 == 0:
        raise ValueError(
            f"zero padding of the deep block with an even kernel size {k} pads "
            "asymmetrically; only odd sizes are supported here"
        )
    net = []
    for s in cfg["stem_strides"]:
        net += [Conv(3, int(s), "zero", sw, sb, "uniform"), Act(act)]
    v = _block_profile(cfg)
    for _ in range(int(cfg["depth"])):
        net += [Conv(k, 1, pad, sw, sb, v), Act(act)]
    net += [GlobalAvgPool(), Dense(float(cfg["readout_scale"]) ** 2, 0.0)]
    return net


@dataclasses.dataclass(frozen=True, eq=False)
class Prediction(Result):
    """Mean-field predictions for a VanillaCNN (:func:`predict`); ``n`` linear layers, ``B`` inputs.

    Attributes
    ----------
    config : dict
        The architecture read from the model (variances resolved).
    kinds : list of str
        Layer kinds of :func:`vanilla_network`.
    linear : ndarray of int, shape (n,)
        Positions of the linear layers in that list.
    q : ndarray, shape (n, B)
        Pixel-averaged pre-activation variance ``q^l`` after each linear layer.
    c : ndarray, shape (n,)
        Correlation of inputs 0 and 1 at the same pixel, pixel-averaged (NaN for ``B = 1``).
    c_spatial : ndarray, shape (n, B)
        Correlation between distinct pixels of one input, averaged over pixel pairs.
    weight_grad2, bias_grad2, preact_grad2 : ndarray, shape (n, B)
        ``E||df/dW^l||_F^2`` (with the model's channel counts), ``E||df/db^l||^2`` and
        ``E||df/dh^l||^2`` for one logit ``f``.
    nngp, ntk : ndarray, shape (B, B)
        Logit covariance and tangent kernel (NTK parametrisation).
    q_star, chi_1, xi_c, trainable_depth : float
        Fully-connected fixed point of the deep block, ``chi_1``, ``xi_c`` and ``6 xi_c``.
    grad_gain, xi_grad : float
        Backward gain per deep-block layer of this network, from the exact gradient norms
        (``(g_first / g_last)^(1 / (depth - 1))`` of ``E||df/dh^l||^2``; border effects
        included; circular at the fixed point: ``chi_1``) and ``-1 / log(grad_gain)``; NaN
        for ``depth < 2``.
    """

    config: dict
    kinds: list
    linear: np.ndarray
    q: np.ndarray
    c: np.ndarray
    c_spatial: np.ndarray
    weight_grad2: np.ndarray
    bias_grad2: np.ndarray
    preact_grad2: np.ndarray
    nngp: np.ndarray
    ntk: np.ndarray
    q_star: float
    chi_1: float
    xi_c: float
    trainable_depth: float
    grad_gain: float
    xi_grad: float


def _prediction_input(x, cfg, input_shape, n_inputs):
    if x is None:
        shape = tuple(as_int(n, "input_shape", low=1) for n in input_shape)
        B = as_int(n_inputs, "n_inputs", low=1)
        P = int(np.prod(shape))
        return None, np.eye(B * P) * 1.0, shape
    x = np.asarray(x, dtype=np.float64)
    cin = int(cfg["in_channels"])
    if x.ndim == 4 and x.shape[1] == cin and x.shape[-1] != cin:
        x = np.moveaxis(x, 1, -1)  # torch layout (B, C, H, W)
    if x.ndim != 4 or x.shape[-1] != cin:
        raise ValueError(
            f"`x` must have shape (B, H, W, {cin}) (or torch's (B, {cin}, H, W)); got {x.shape}"
        )
    return x, None, x.shape[1:3]


def predict(model, x=None, *, input_shape=(8, 8), n_inputs=2):
    r"""Predicted ``q^l``, ``c^l``, gradient norms, NTK and trainable depth of a VanillaCNN.

    The exact infinite-width recursions of :func:`cnnmft.network.propagate_network` over the
    network's real layers (zero-padded strided stem, deep block, global average pooling,
    readout), plus the fully-connected trainable depth ``6 xi_c`` of the deep block.

    Parameters
    ----------
    model : VanillaCNN or dict
        A model or the keyword arguments of ``VanillaCNN`` (``depth`` required).
    x : array_like, optional
        Inputs ``(B, H, W, c_in)`` (or torch's ``(B, c_in, H, W)``). Default: ``n_inputs``
        independent white-noise images of ``input_shape`` (unit variance per pixel).
    input_shape : tuple of int
    n_inputs : int

    Returns
    -------
    Prediction

    Examples
    --------
    >>> p = predict({"depth": 4, "sigma_w2": 1.5, "sigma_b2": 0.05, "channels": 8,
    ...              "stem_strides": (1, 2)})
    >>> p.q.shape, round(float(p.trainable_depth), 1)
    ((8, 2), 94.7)
    """
    cfg = _config(model)
    net = vanilla_network(cfg)
    x, gram, shape = _prediction_input(x, cfg, input_shape, n_inputs)
    if x is None:
        r = propagate_network(None, net, gram=gram, spatial_shape=shape, store="last")
    else:
        r = propagate_network(x, net, store="last")
    cins = []
    c_prev = int(cfg["in_channels"])
    for i in r.linear:
        cins.append(c_prev)
        if r.kinds[i] == "conv":
            c_prev = int(cfg["channels"])
    fp = fixed_point(cfg["act"], cfg["sigma_w2"], cfg["sigma_b2"])
    depth, n_stem = int(cfg["depth"]), len(cfg["stem_strides"])
    gain = np.nan
    if depth >= 2:
        g = r.preact_grad2[n_stem : n_stem + depth, 0]
        gain = float((g[0] / g[-1]) ** (1.0 / (depth - 1)))
    return Prediction(
        config={
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in cfg.items()
            if not isinstance(v, np.ndarray)
        },
        kinds=r.kinds,
        linear=r.linear,
        q=r.q,
        c=r.corr,
        c_spatial=r.corr_spatial,
        weight_grad2=r.weight_grad2 * np.array(cins, dtype=np.float64)[:, None],
        bias_grad2=r.bias_grad2,
        preact_grad2=r.preact_grad2,
        nngp=r.nngp,
        ntk=r.ntk_out,
        q_star=float(np.asarray(fp.q_star)),
        chi_1=float(np.asarray(fp.chi_1)),
        xi_c=float(np.asarray(fp.xi_c)),
        trainable_depth=float(trainable_depth(cfg["act"], cfg["sigma_w2"], cfg["sigma_b2"])),
        grad_gain=gain,
        xi_grad=float(_xi(gain)) if np.isfinite(gain) else np.nan,
    )


# ---------------------------------------------------------------------------------------------
# border effects


@dataclasses.dataclass(frozen=True, eq=False)
class BorderEffects(Result):
    r"""Zero padding against the circular theory, per map size (:func:`border_effects`).

    ``m`` map sizes ``n`` (grids ``n^d``), after ``depth`` layers started at the circular fixed
    point. Gains are spectral radii of the per-layer linearised maps at the zero-padded state.

    Attributes
    ----------
    sizes : ndarray of int, shape (m,)
    q_star, c_star, chi_q, chi_c, chi_1 : float
        Circular (fully-connected) fixed point and slopes.
    q_dev_max, q_dev_center : ndarray, shape (m,)
        ``max |q_alpha / q* - 1|`` over pixels and at the centre pixel.
    q_corner : ndarray, shape (m,)
        ``q / q*`` at the corner pixel.
    penetration : ndarray of int, shape (m,)
        Pixels from the border until ``|q_alpha / q* - 1| <= 1e-3`` along the central row.
    gain_q, gain_c, gain_grad : ndarray, shape (m,)
        Spectral radius of the linearised variance map, of the cross-input covariance map
        (same pixel) and of the backward per-pixel gradient map; circular: ``chi_q``,
        ``chi_c``, ``chi_1``.
    xi_c, xi_grad : ndarray, shape (m,)
        ``-1 / log`` of ``gain_c`` and ``gain_grad`` (circular: ``xi_c`` and ``-1/log chi_1``).
    grad_sv : dict
        ``str(n)`` -> singular values (descending) of the one-layer backward per-pixel map, the
        mean-field Jacobian gains per mode (circular: ``chi_1 |lam_f|``).
    grad_sv_circular : dict
        ``str(n)`` -> ``chi_1 |lam_f|`` sorted descending.
    q_map : dict
        ``str(n)`` -> per-pixel ``q / q*`` after ``depth`` layers, shape ``(n,) * d``.
    depth : int
    """

    sizes: np.ndarray
    q_star: float
    c_star: float
    chi_q: float
    chi_c: float
    chi_1: float
    q_dev_max: np.ndarray
    q_dev_center: np.ndarray
    q_corner: np.ndarray
    penetration: np.ndarray
    gain_q: np.ndarray
    gain_c: np.ndarray
    gain_grad: np.ndarray
    xi_c: np.ndarray
    xi_grad: np.ndarray
    grad_sv: dict
    grad_sv_circular: dict
    q_map: dict
    depth: int


def _fixed_gram(act, fp, B, P):
    """Input moment that makes layer 1 of a circular network sit at the fixed point exactly."""
    q, c = float(np.asarray(fp.q_star)), float(np.asarray(fp.c_star))
    return pair_expectations(act, q * ((1.0 - c) * np.eye(B * P) + c), 0)


def _dvar(act, q):
    """d/dq E[phi(sqrt(q) z)^2] by a central difference of the exact 1D rule (kinks included)."""
    h = 1e-4 * q
    up, dn = gaussian.expect(act, np.array([q + h, q - h]), (0, 0))
    return float((up - dn) / (2 * h))


def _size_effects(act, sw, sb, v, n, d, depth, fp):
    shape = (n,) * d
    P = n**d
    net = [Conv(v.shape, 1, "zero", sw, sb, v)]
    for _ in range(depth - 1):
        net += [Act(act), Conv(v.shape, 1, "zero", sw, sb, v)]
    r = propagate_network(
        None, net, gram=_fixed_gram(act, fp, 2, P), spatial_shape=shape, store="last"
    )
    M = r.cov[str(len(net) - 1)].reshape(2, 2, P, P).transpose(0, 2, 1, 3).reshape(2 * P, 2 * P)
    qs = float(np.asarray(fp.q_star))
    qa = np.diag(M)[:P].copy()
    cross = np.diag(M[:P, P:]).copy()
    lin = resolve([net[0]], shape)[0]
    A = sum(w * E.toarray() for w, E in zip(lin.weights, lin.mats))  # (P, P), sigma_w2 v_t
    e1 = gaussian.expect(act, qa, (1, 1))
    dvar = np.array([_dvar(act, q) for q in qa])
    ec = gaussian.expect2(act, qa, qa, np.clip(cross / qa, -1.0, 1.0), (1, 1))
    Mb = e1[:, None] * A.T
    rad = [
        float(np.max(np.abs(np.linalg.eigvals(Mx))))
        for Mx in (A * dvar[None, :], A * ec[None, :], Mb)
    ]
    dev = qa.reshape(shape) / qs - 1.0
    row = np.abs(dev[(n // 2,) * (d - 1)]) if d > 1 else np.abs(dev)
    inside = np.nonzero(row[: (n + 1) // 2] <= 1e-3)[0]
    pen = int(inside[0]) if inside.size else (n + 1) // 2
    return dict(
        q_dev_max=float(np.max(np.abs(dev))),
        q_dev_center=float(dev[(n // 2,) * d]),
        q_corner=float(qa[0] / qs),
        penetration=pen,
        gain_q=rad[0],
        gain_c=rad[1],
        gain_grad=rad[2],
        grad_sv=np.linalg.svd(Mb, compute_uv=False),
        q_map=qa.reshape(shape) / qs,
    )


def border_effects(act, sigma_w2, sigma_b2, v, sizes, *, depth=40, progress=None):
    r"""Zero padding against circular padding: fixed point, depth scales, Jacobian gains.

    For each map size ``n`` (grid ``n^d``, ``d = v.ndim``) a stack of ``depth`` zero-padded
    convolutions (stride 1) is started from the inputs that put a circular network exactly at its
    fixed point (two inputs, correlation ``c*``), and at the end the exact per-pixel state is
    compared with the circular theory: the variance profile ``q_alpha / q*``, and the spectral
    radii of the linearised per-layer maps at that state (variance map ``chi_q``, same-pixel
    cross-input covariance map ``chi_c``, backward gradient map ``chi_1``), whose circular values
    are the fully-connected slopes. The backward map's singular values are the mean-field
    Jacobian gains per mode (circular: ``chi_1 |lam_f|``).

    Parameters
    ----------
    act : str
    sigma_w2, sigma_b2 : float
    v : array_like
        Variance profile (one axis per spatial axis; odd kernel sizes).
    sizes : sequence of int
        Map sizes ``n >= k``.
    depth : int
        Layers before the comparison (the border layer reaches ``depth * (k - 1) / 2`` pixels in).
    progress : None, bool or callable
        tqdm bar over the sizes (True), none, or ``callback(done, total)``.

    Returns
    -------
    BorderEffects

    Examples
    --------
    >>> b = border_effects("tanh", 1.5, 0.05, [0.25, 0.5, 0.25], [8, 16], depth=10)
    >>> bool(b.gain_grad[1] > b.gain_grad[0]), bool(b.gain_grad[1] < b.chi_1)
    (True, True)
    """
    sw = float(as_float_array(sigma_w2, "sigma_w2", low=0.0, low_open=True))
    sb = float(as_float_array(sigma_b2, "sigma_b2", low=0.0))
    v = variance_profile(np.asarray(v, dtype=np.float64))
    depth = as_int(depth, "depth", low=1)
    sizes = [as_int(n, "sizes", low=max(v.shape)) for n in np.atleast_1d(sizes)]
    fp = fixed_point(act, sw, sb)
    cb, bar = progress_callback(progress, len(sizes), desc="map sizes")
    rows = []
    try:
        for i, n in enumerate(sizes):
            rows.append(_size_effects(act, sw, sb, v, n, v.ndim, depth, fp))
            if cb is not None:
                cb(i + 1, len(sizes))
    finally:
        if bar is not None:
            bar.close()
    lam = {n: np.abs(mode_eigenvalues(v, (n,) * v.ndim)).ravel() for n in sizes}
    chi1 = float(np.asarray(fp.chi_1))
    col = {
        k: np.array([r[k] for r in rows])
        for k in (
            "q_dev_max",
            "q_dev_center",
            "q_corner",
            "penetration",
            "gain_q",
            "gain_c",
            "gain_grad",
        )
    }
    return BorderEffects(
        sizes=np.array(sizes),
        q_star=float(np.asarray(fp.q_star)),
        c_star=float(np.asarray(fp.c_star)),
        chi_q=float(np.asarray(fp.chi_q)),
        chi_c=float(np.asarray(fp.chi_c)),
        chi_1=chi1,
        **col,
        xi_c=_xi(col["gain_c"]),
        xi_grad=_xi(col["gain_grad"]),
        grad_sv={str(n): r["grad_sv"] for n, r in zip(sizes, rows)},
        grad_sv_circular={str(n): np.sort(chi1 * lam[n])[::-1] for n in sizes},
        q_map={str(n): r["q_map"] for n, r in zip(sizes, rows)},
        depth=depth,
    )
