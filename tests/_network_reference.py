"""Brute-force reference for cnnmft.network: explicit padded index arithmetic, 2D quadrature.

Independent of the library's geometry (sparse selection matrices) and of its expectations
(closed forms, Mehler series): every conv output entry is a Python loop over output pixel pairs
and taps with the padding rule written out again, and every bivariate expectation is a
tensor-product composite Gauss-Legendre rule in the two standard normal variables.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from cnnmft import gaussian
from cnnmft.activations import get_activation

_X, _W = np.polynomial.legendre.leggauss(10)


def _rule(panels):
    """Composite Gauss-Legendre nodes and normal-density weights on [-8.5, 8.5]."""
    edges = np.linspace(-8.5, 8.5, panels + 1)
    h = 0.5 * np.diff(edges)
    z = ((edges[:-1] + edges[1:])[:, None] * 0.5 + h[:, None] * _X[None, :]).ravel()
    return z, (h[:, None] * _W[None, :]).ravel() * np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)


_Z, _WZ = _rule(34)


def pair_expect(act, q1, q2, s12, order, same=False):
    """E[phi^(o)(u1) phi^(o)(u2)] by 2D Gauss-Legendre (kinked activations: gaussian.expect2).

    ``same``: the pair is one variable twice (rho = 1 exactly; for the step function phi' of
    relu, E[phi'phi'] has a sqrt(1 - rho) cusp there, so rounding in rho would cost 1e-9).
    """
    a = get_activation(act)
    if q1 <= 0 or q2 <= 0:
        rho = 0.0
    elif same:
        rho = 1.0
    else:
        rho = float(np.clip(s12 / math.sqrt(q1 * q2), -1.0, 1.0))
    if a.kinks:
        return float(gaussian.expect2(a, q1, q2, rho, (order, order)))
    f = a.phi if order == 0 else a.dphi
    # panels narrow enough for the steep part of phi(sqrt(q) z) (width ~ 1 / sqrt(q))
    Z, WZ = (_Z, _WZ) if max(q1, q2) <= 4 else _rule(int(17 * math.sqrt(max(q1, q2))) + 1)
    u1 = math.sqrt(q1) * Z
    fz1 = f(u1)
    z2 = rho * Z[:, None] + math.sqrt(max(0.0, 1 - rho * rho)) * Z[None, :]
    fz2 = f(math.sqrt(q2) * z2)
    return float(WZ @ (fz1[:, None] * fz2) @ WZ)


def expect_matrix(act, S, order):
    M = S.shape[0]
    out = np.empty_like(S)
    cache = {}
    for i in range(M):
        for j in range(i, M):
            key = (S[i, i], S[j, j], S[i, j], i == j)
            if key not in cache:
                cache[key] = pair_expect(act, S[i, i], S[j, j], S[i, j], order, i == j)
            out[i, j] = out[j, i] = cache[key]
    return out


def _axis(n, k, s, padding):
    """Output size and, per output position and tap, the input index or None (padding)."""
    if padding == "circular":
        n_out, before = -(-n // s), (k - 1) // 2
    elif padding == "zero":
        before = k // 2
        n_out = (n + 2 * before - k) // s + 1
    elif padding == "same_tf":
        n_out = -(-n // s)
        before = max((n_out - 1) * s + k - n, 0) // 2
    else:
        before, n_out = 0, (n - k) // s + 1
    table = []
    for o in range(n_out):
        row = []
        for j in range(k):
            i = o * s + j - before
            if padding == "circular":
                row.append(i % n)
            else:
                row.append(i if 0 <= i < n else None)
        table.append(row)
    return n_out, table


def conv_moment(K, B, shape, ks, stride, padding, w, bias):
    """sum_t w_t K[(a, i_t(alpha)), (b, i_t(alpha'))] + bias, loops over everything."""
    axes = [_axis(n, k, s, padding) for n, k, s in zip(shape, ks, stride)]
    out_shape = tuple(a[0] for a in axes)
    P_in, P_out = int(np.prod(shape)), int(np.prod(out_shape))
    outs = list(itertools.product(*[range(n) for n in out_shape]))
    taps = list(itertools.product(*[range(k) for k in ks]))

    def src(o, t):
        idx = [axes[ax][1][o[ax]][t[ax]] for ax in range(len(shape))]
        return None if any(i is None for i in idx) else int(np.ravel_multi_index(idx, shape))

    srcs = [[src(o, t) for t in taps] for o in outs]
    R = np.full((B * P_out, B * P_out), float(bias))
    wt = np.asarray(w).ravel()
    for a in range(B):
        for b in range(B):
            for p, o in enumerate(outs):
                for p2, o2 in enumerate(outs):
                    acc = 0.0
                    for ti in range(len(taps)):
                        i, j = srcs[p][ti], srcs[p2][ti]
                        if i is None or j is None:
                            continue
                        acc += wt[ti] * K[a * P_in + i, b * P_in + j]
                    R[a * P_out + p, b * P_out + p2] += acc
    return R, out_shape


def forward(x, net):
    """(NNGP, NTK, per-layer outputs) of a list of ("conv", ks, stride, padding, sw2, v, sb2),
    ("act", name), ("gap",), ("dense", sw2, sb2) tuples."""
    B, shape = x.shape[0], tuple(x.shape[1:-1])
    X = x.reshape(B * int(np.prod(shape)), x.shape[-1])
    K = X @ X.T / x.shape[-1]
    T = np.zeros_like(K)
    outs = []
    for layer in net:
        if layer[0] == "conv":
            _, ks, st, pad, sw2, v, sb2 = layer
            S, new = conv_moment(K, B, shape, ks, st, pad, sw2 * np.asarray(v), sb2)
            T = S + conv_moment(T, B, shape, ks, st, pad, sw2 * np.asarray(v), 0.0)[0]
            K, shape = S, new
        elif layer[0] == "act":
            e1 = expect_matrix(layer[1], K, 1)
            K = expect_matrix(layer[1], K, 0)
            T = e1 * T
        elif layer[0] == "gap":
            P = int(np.prod(shape))
            avg = np.kron(np.eye(B), np.full((1, P), 1.0 / P))
            K, T = avg @ K @ avg.T, avg @ T @ avg.T
            shape = (1,) * len(shape)
        elif layer[0] == "dense":
            P = int(np.prod(shape))
            _, sw2, sb2 = layer
            S = np.empty((B, B))
            Tn = np.empty((B, B))
            for a in range(B):
                for b in range(B):
                    S[a, b] = sw2 * np.mean([K[a * P + i, b * P + i] for i in range(P)]) + sb2
                    Tn[a, b] = S[a, b] + sw2 * np.mean([T[a * P + i, b * P + i] for i in range(P)])
            K, T, shape = S, Tn, (1,) * len(shape)
        outs.append(K)
    return K, T, outs
