"""Mehler sums over every pair of a dense covariance (the network engine's inner loop).

``out[i, j] = sum_{m < n(|r_ij|)} a[i, m] a[j, m] t_ij^m`` with ``t = r`` (all orders) or
``t = r^2`` (one parity of a symmetric or antisymmetric activation: the caller packs the
coefficients of that parity and multiplies by ``r`` afterwards when they are the odd ones).
``n`` comes from a per-|r|-bin term table (bin ``b`` covers ``|r| <= (b + 1) / nbins``), so
pairs with small correlation cost a few terms. Horner evaluation; the upper triangle is
computed and mirrored.
"""

import numpy as np
from numba import prange

from ._jit import cjit


@cjit
def mehler_pairs(coef, rho, squared, nterm, out):
    M = coef.shape[0]
    nbins = nterm.shape[0]
    for i in prange(M):
        for j in range(i, M):
            r = rho[i, j]
            ar = abs(r)
            b = min(nbins - 1, int(ar * nbins))
            n = nterm[b]
            t = r * r if squared else r
            acc = 0.0
            for m in range(n - 1, -1, -1):
                acc = acc * t + coef[i, m] * coef[j, m]
            out[i, j] = acc
            out[j, i] = acc


def term_table(coef, squared, tol, nbins=256):
    """Terms needed per |r| bin so that the dropped tail is below `tol` for every pair."""
    cmax2 = np.max(np.abs(coef), axis=0) ** 2
    K = cmax2.size
    r = np.arange(1, nbins + 1) / nbins
    base = r * r if squared else r
    pw = np.cumprod(
        np.concatenate(
            [np.ones((nbins, 1)), np.repeat(base[:, None], max(K - 1, 0), axis=1)], axis=1
        ),
        axis=1,
    )
    tail = np.cumsum((cmax2[None, :] * pw)[:, ::-1], axis=1)[:, ::-1]
    ok = tail <= tol
    n = np.where(ok.any(axis=1), np.argmax(ok, axis=1), K)
    return np.ascontiguousarray(np.maximum(n, 1).astype(np.int64))
