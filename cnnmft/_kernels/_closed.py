"""Closed-form layers of the CNN covariance map (linear, erf, relu), on the state of
:mod:`._cov` (one row per pixel, one column per pair of inputs and displacement).

* erf: ``E[erf(u1) erf(u2)] = (2/pi) asin(2 s / sqrt((1 + 2 q1)(1 + 2 q2)))``, with a
  branch-free arcsine so that the loop over a row's entries vectorises;
* relu: the arc-cosine kernel ``sqrt(q1 q2) / (2 pi) (sqrt(1 - rho^2) + (pi - acos rho) rho)``;
* linear: ``C(S) = S``.

:func:`run_closed` runs many layers ``S <- A C(S)`` per compiled call.
"""

import math

import numpy as np

from ._act import ERF, LINEAR
from ._cov import NONFINITE, OK, _a_rows, _rho, _shifted, _split, column_spread
from ._jit import helper, jit

# arcsine on [-1, 1] without branches (the rational approximation of fdlibm's asin on
# [0, 0.5] and asin(x) = pi/2 - 2 asin(sqrt((1 - x) / 2)) above), so that a loop over entries
# vectorises; libm's asin is a call per entry, most of the time of a closed-form erf layer
_PS = (
    1.66666666666666657415e-01,
    -3.25565818622400915405e-01,
    2.01212532134862925881e-01,
    -4.00555345006794114027e-02,
    7.91534994289814532176e-04,
    3.47933107596021167570e-05,
)
_QS = (-2.40339491173441421878e00, 2.02094576023350569471e00, -6.88283971605453293030e-01)
_QS4 = 7.70381505559019352791e-02
_PIO2_HI, _PIO2_LO = 1.57079632679489655800e00, 6.12323399573676603587e-17


@helper
def _asin(x):
    """asin(x) for |x| <= 1 within 3 ulp (NaN stays NaN); branch-free for vectorisation."""
    a = abs(x)
    small = a <= 0.5
    z = x * x if small else 0.5 * (1.0 - a)
    p = z * (_PS[0] + z * (_PS[1] + z * (_PS[2] + z * (_PS[3] + z * (_PS[4] + z * _PS[5])))))
    r = p / (1.0 + z * (_QS[0] + z * (_QS[1] + z * (_QS[2] + z * _QS4))))
    s = math.sqrt(z)
    y = a + a * r if small else _PIO2_HI - (2.0 * (s + s * r) - _PIO2_LO)
    return math.copysign(y, x)


@helper
def _erf_arg(s, r1, r2):
    """2 s / (r1 r2) clipped to [-1, 1] (NaN stays NaN), r_i = sqrt(1 + 2 q_i) (no overflow
    at q ~ 1e300, unlike sqrt of the product)."""
    x = 2.0 * s / (r1 * r2)
    if x > 1.0:
        x = 1.0
    elif x < -1.0:
        x = -1.0
    return x


@helper
def _erf_pair(s, r1, r2):
    """E[erf(u1) erf(u2)] = (2/pi) asin(2 s / (r1 r2))."""
    return 2.0 / math.pi * _asin(_erf_arg(s, r1, r2))


@helper
def closed_entry(code, q1, q2, s):
    if code == LINEAR:
        return s
    if code == ERF:
        return _erf_pair(s, math.sqrt(1.0 + 2.0 * q1), math.sqrt(1.0 + 2.0 * q2))
    # RELU
    sq = math.sqrt(q1 * q2)
    if sq == 0.0:
        return 0.0
    rho = _rho(s, q1, q2)
    return (
        sq
        / (2.0 * math.pi)
        * (math.sqrt(max(0.0, 1.0 - rho * rho)) + (math.pi - math.acos(rho)) * rho)
    )


@jit
def c_closed(S, T, code, cola, colb, cd1, cd2, cd3, n1, n2, n3, qpix, sw2, sb2):
    """T = C(S) by the closed forms (linear, erf, relu), serial.

    The pixel indices are split once per row and, for erf, sqrt(1 + 2 q) once per pixel: the
    divisions and square roots of a per-entry evaluation cost more than the arcsine (the
    values are the same to the last bit).
    """
    npix = S.shape[0]
    ncol = S.shape[1]
    if code == LINEAR:  # C(S) = S entry by entry
        for alpha in range(npix):
            for c in range(ncol):
                T[alpha, c] = sw2 * S[alpha, c] + sb2
        return
    if code == ERF:
        # the arguments of a row first (gathers), then its arcsines in one vectorised loop
        rt = np.empty(qpix.shape[0])
        for p in range(rt.shape[0]):
            rt[p] = math.sqrt(1.0 + 2.0 * qpix[p])
        arg = np.empty(ncol)
        k = sw2 * (2.0 / math.pi)
        for alpha in range(npix):
            i1, i2, i3 = _split(alpha, n2, n3)
            for c in range(ncol):
                p2 = colb[c] * npix + _shifted(i1, i2, i3, cd1[c], cd2[c], cd3[c], n1, n2, n3)
                arg[c] = _erf_arg(S[alpha, c], rt[cola[c] * npix + alpha], rt[p2])
            for c in range(ncol):
                T[alpha, c] = k * _asin(arg[c]) + sb2
        return
    for alpha in range(npix):
        i1, i2, i3 = _split(alpha, n2, n3)
        for c in range(ncol):
            p1 = cola[c] * npix + alpha
            p2 = colb[c] * npix + _shifted(i1, i2, i3, cd1[c], cd2[c], cd3[c], n1, n2, n3)
            T[alpha, c] = sw2 * closed_entry(code, qpix[p1], qpix[p2], S[alpha, c]) + sb2


@jit
def run_closed(
    S,
    T,
    nlayers,
    code,
    cola,
    colb,
    cd1,
    cd2,
    cd3,
    n1,
    n2,
    n3,
    taps,
    o1,
    o2,
    o3,
    identity_a,
    diag_col,
    sw2,
    sb2,
    ti_rel,
    qmean,
):
    """Up to nlayers exact layers S <- A C(S) by the closed forms (serial), one call.

    The variances of each layer are read off the diagonal columns of S (input b, pixel alpha:
    S[alpha, diag_col[b]]); qmean[l, b] receives the mean variance of input b after layer l.
    Stops after the first layer whose variances are not finite (status NONFINITE) or, when
    ti_rel > 0 and A is not the identity, whose column spread is <= ti_rel * max(1, max |q|)
    (the state is then translation invariant to that tolerance). Returns (layers, status).
    """
    npix = S.shape[0]
    nin = diag_col.shape[0]
    qpix = np.empty(nin * npix)
    for layer in range(nlayers):
        for b in range(nin):
            for alpha in range(npix):
                qpix[b * npix + alpha] = S[alpha, diag_col[b]]
        c_closed(S, T, code, cola, colb, cd1, cd2, cd3, n1, n2, n3, qpix, sw2, sb2)
        if identity_a:
            S[:, :] = T
        else:
            _a_rows(T, S, 0, npix, taps, o1, o2, o3, n1, n2, n3)
        qmax = 0.0
        finite = True
        for b in range(nin):
            acc = 0.0
            for alpha in range(npix):
                v = S[alpha, diag_col[b]]
                acc += v
                if abs(v) > qmax:
                    qmax = abs(v)
            qmean[layer, b] = acc / npix
            finite = finite and math.isfinite(acc)
        if not finite:
            return layer + 1, NONFINITE
        if ti_rel > 0.0 and not identity_a and column_spread(S) <= ti_rel * max(1.0, qmax):
            return layer + 1, OK
    return nlayers, OK
