"""Gaussian-expectation engine: composite Gauss-Legendre rules adapted to kinks and scale.

All integrals are over the standard normal variable z, truncated to [-ZMAX, ZMAX] (the
neglected mass is 2 * Phi(-ZMAX) ~ 2e-19). Panels are split at every kink of the integrand and
graded geometrically (widths w, 2w, 4w, ... up to MAXW) around every point where the integrand
changes on the scale w (e.g. tanh(sqrt(q) z) near z = 0 has w = 1/sqrt(q)). Each panel carries
NGL Gauss-Legendre nodes. Expectations of products of activation derivatives are then plain
weighted sums. Bivariate expectations use the conditional decomposition
u1 = sqrt(q1) z1, u2 | z1 ~ N(sqrt(q2) c z1, q2 (1 - c^2)), with the inner expectation in
closed form where one exists (linear, relu, hard_tanh, erf) and by the same rule otherwise.
"""

import functools
import math

import numpy as np

from . import _act
from ._act import ERF, HARD_TANH, LINEAR, RELU
from ._jit import helper, jit

ZMAX = 9.0
MAXW = 2.25
NGL = 16
MAXEDGES = 1024


@functools.lru_cache(maxsize=None)
def gauss_legendre(n=NGL):
    """Return the one Gauss-Legendre rule of cnnmft: (nodes, weights) of the n-point rule.

    The rule is on [-1, 1]; the arrays are read-only float64, computed once per n. Every
    composite rule of the package (these kernels, the spectrum sums and law, the covariance
    series) maps these nodes onto its panels.
    """
    x, w = np.polynomial.legendre.leggauss(int(n))
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


_GL_X, _GL_W = gauss_legendre(NGL)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
# Gauss-Hermite (probabilists') rule for inner expectations of smooth activations smoothed at a
# small scale s <= GH_SMAX: the integrand is analytic in a strip of half-width ~pi/(2 s) >= 2.2
# around the real axis, where 40 nodes give ~1e-16.
NGH = 40
GH_SMAX = 0.45
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(NGH)
_GH_W = _GH_W / math.sqrt(2.0 * math.pi)

# Per-activation geometry in u = sqrt(q) z: kinks (exact split points) and whether the function
# has a steep smooth transition at u = 0 on the unit scale.
_KINKS = np.full((_act.N_BUILTIN, 2), np.nan)
_KINKS[_act.RELU, 0] = 0.0
_KINKS[_act.HARD_TANH] = (-1.0, 1.0)
_KINKS[_act.SELU, 0] = 0.0
# Jumps of phi' at the kinks: phi'(k+) - phi'(k-) (enter d/dq E[phi^2] as delta terms of phi'').
_JUMPS = np.zeros((_act.N_BUILTIN, 2))
_JUMPS[_act.RELU, 0] = 1.0
_JUMPS[_act.HARD_TANH] = (1.0, -1.0)
_JUMPS[_act.SELU, 0] = _act.SELU_LAMBDA * (1.0 - _act.SELU_ALPHA)
_STEEP = np.ones(_act.N_BUILTIN, dtype=np.bool_)
_STEEP[[_act.RELU, _act.HARD_TANH, _act.LINEAR]] = False


@helper
def normal_cdf(x):
    return 0.5 * math.erfc(-x * _INV_SQRT2)


@helper
def normal_pdf(x):
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


@helper
def _add_feature(edges, n, p, w):
    """Append graded edges around a feature at p with local scale w (p itself included)."""
    if not (p > -ZMAX and p < ZMAX) or n >= MAXEDGES - 4:
        return n
    edges[n] = p
    n += 1
    if w >= MAXW:
        return n
    off = 0.0
    step = w
    while step < MAXW and n < MAXEDGES - 2:
        off += step
        if p + off < ZMAX:
            edges[n] = p + off
            n += 1
        if p - off > -ZMAX:
            edges[n] = p - off
            n += 1
        step *= 2.0
    return n


@helper
def _base_edges(edges, maxw=MAXW):
    m = int(math.ceil(2.0 * ZMAX / maxw))
    for i in range(m + 1):
        edges[i] = -ZMAX + 2.0 * ZMAX * i / m
    return m + 1


@helper
def _features(code, sq, shift, scale_out, edges, n):
    """Add the features of phi^{(.)}(sq * z + shift) (sq > 0) to the edge list."""
    if code < _act.N_BUILTIN:
        for j in range(2):
            k = _KINKS[code, j]
            if not math.isnan(k):
                n = _add_feature(edges, n, (k - shift) / sq, MAXW)
        if _STEEP[code]:
            n = _add_feature(edges, n, -shift / sq, scale_out / sq)
    return n


@helper
def _features_g(code, mc, sig, edges, n):
    """Features, in z1, of z1 -> E[g(mc z1 + sig Z)] (mc > 0): kinks smoothed to scale sig and
    the steep region of smooth activations (scale max(1, sig))."""
    if code < _act.N_BUILTIN:
        for j in range(2):
            k = _KINKS[code, j]
            if not math.isnan(k):
                n = _add_feature(edges, n, k / mc, max(sig, 1e-12) / mc)
        if _STEEP[code]:
            n = _add_feature(edges, n, 0.0, max(1.0, sig) / mc)
    return n


@helper
def _sorted_copy(x, n):
    """x[:n] sorted ascending, as a new array (Shell sort, gaps 3h + 1).

    Written here rather than ``np.sort``: numba's generic sort adds five functions and about
    2 s to the first compile, and the edge lists are short and mostly sorted runs.
    """
    e = x[:n].copy()
    h = 1
    while 3 * h + 1 < n:
        h = 3 * h + 1
    while h >= 1:
        for i in range(h, n):
            v = e[i]
            j = i
            while j >= h and e[j - h] > v:
                e[j] = e[j - h]
                j -= h
            e[j] = v
        h //= 3
    return e


@helper
def _finish_rule(edges, n, nodes, weights):
    """Sort and deduplicate edges, then fill nodes/weights (Gauss-Legendre times pdf)."""
    e = _sorted_copy(edges, n)
    # edges closer than 1e-14 (1 + |e|) are merged; where a feature is graded finer than that
    # (steep activations at q > 1e26) only edges closer than 1e-14 |e| are
    fine = False
    for i in range(n):
        if e[i] != 0.0 and abs(e[i]) < 1e-13:
            fine = True
            break
    m = 0
    for i in range(n):
        d = 1e-14 * (abs(e[i]) if fine else 1.0 + abs(e[i]))
        if m == 0 or e[i] - e[m - 1] > d:
            e[m] = e[i]
            m += 1
    k = 0
    for i in range(m - 1):
        a = e[i]
        b = e[i + 1]
        h = 0.5 * (b - a)
        c = 0.5 * (b + a)
        for j in range(NGL):
            z = c + h * _GL_X[j]
            nodes[k] = z
            weights[k] = h * _GL_W[j] * normal_pdf(z)
            k += 1
    return k


@helper
def rule_1d(code, q, edges, nodes, weights):
    """Rule for E[F(sqrt(q) z)] where F is built from phi of activation `code`."""
    n = _base_edges(edges)
    sq = math.sqrt(q)
    if sq > 0.0:
        n = _features(code, sq, 0.0, 1.0, edges, n)
    return _finish_rule(edges, n, nodes, weights)


@helper
def prod_orders(code, orders, u):
    r = 1.0
    for o in orders:
        r *= _act.deriv(code, o, u)
    return r


@jit
def expect_1d(code, orders, q, edges, nodes, weights):
    """E[prod_k phi^{(orders[k])}(u)], u ~ N(0, q), q >= 0."""
    if q == 0.0:
        return prod_orders(code, orders, 0.0)
    n = rule_1d(code, q, edges, nodes, weights)
    sq = math.sqrt(q)
    s = 0.0
    for i in range(n):
        s += weights[i] * prod_orders(code, orders, sq * nodes[i])
    return s


# ---------------------------------------------------------------------------------------------
# inner conditional expectations E[phi^{(o)}(m + s Z)] (closed forms where they exist)


@helper
def _relu_tail(x):
    """phi(x) - x Phi(-x) for x >= 1.5 without cancellation: the continued fraction of the
    Mills ratio R = 1/(x + T), T = 1/(x + 2/(x + 3/...)), gives phi(x) - x Phi(-x) = phi(x) T R."""
    u = 0.0
    for k in range(160, 1, -1):
        u = k / (x + u)
    t = 1.0 / (x + u)
    return normal_pdf(x) * t / (x + t)


@helper
def _smoothed_closed(code, o, m, s):
    """Return (value, ok). ok=False means: no closed form, integrate numerically."""
    if code == LINEAR:
        if o == 0:
            return m, True
        if o == 1:
            return 1.0, True
        return 0.0, True
    if code == RELU:
        if o == 0:
            t = m / s
            if t > -1.5:
                return m * normal_cdf(t) + s * normal_pdf(t), True
            return s * _relu_tail(-t), True
        if o == 1:
            return normal_cdf(m / s), True
        return 0.0, True
    if code == HARD_TANH:
        a = (1.0 - m) / s
        b = (-1.0 - m) / s
        if o == 0:
            # E[clip(X)] = P(X>1) - P(X<-1) + E[X; -1<X<1]
            inside = m * (normal_cdf(a) - normal_cdf(b)) + s * (normal_pdf(b) - normal_pdf(a))
            return normal_cdf(-a) - normal_cdf(b) + inside, True
        if o == 1:
            return normal_cdf(a) - normal_cdf(b), True
        return 0.0, True
    if code == ERF:
        d = 1.0 + 2.0 * s * s
        if o == 0:
            return math.erf(m / math.sqrt(d)), True
        if o == 1:
            return 2.0 / math.sqrt(math.pi * d) * math.exp(-m * m / d), True
    return 0.0, False


@helper
def _smooth(code):
    """True for activations without kinks (analytic on the real line)."""
    if code >= _KINKS.shape[0]:
        return False
    return math.isnan(_KINKS[code, 0]) and math.isnan(_KINKS[code, 1])


@helper
def smoothed(code, o, m, s, edges, nodes, weights):
    """E[phi^{(o)}(m + s Z)], Z standard normal, s >= 0."""
    if s <= 0.0:
        return _act.deriv(code, o, m)
    v, ok = _smoothed_closed(code, o, m, s)
    if ok:
        return v
    if s <= GH_SMAX and _smooth(code):
        acc = 0.0
        for i in range(NGH):
            acc += _GH_W[i] * _act.deriv(code, o, m + s * _GH_X[i])
        return acc
    n = _base_edges(edges)
    n = _features(code, s, m, 1.0, edges, n)
    n = _finish_rule(edges, n, nodes, weights)
    acc = 0.0
    for i in range(n):
        acc += weights[i] * _act.deriv(code, o, m + s * nodes[i])
    return acc


@helper
def _outer_rule(code, sq1, sq2, c, edges, nodes, weights):
    """Outer rule in z1 for E[f(sq1 z1) E[g(mc z1 + sig Z)]]: returns (n, sig, mc) with
    mc = sq2 c and sig = sq2 sqrt(1 - c^2) (c clipped to [-1, 1]); features of f and of the
    smoothed g."""
    c = min(1.0, max(-1.0, c))
    sig = sq2 * math.sqrt(max(0.0, (1.0 - c) * (1.0 + c)))
    mc = sq2 * c
    n = _base_edges(edges)
    n = _features(code, sq1, 0.0, 1.0, edges, n)
    if abs(mc) > 0.0:
        # features of g(-|mc| z) are the mirror images of those of g(|mc| z)
        n0 = n
        n = _features_g(code, abs(mc), sig, edges, n)
        if mc < 0.0:
            for i in range(n0, n):
                edges[i] = -edges[i]
    return _finish_rule(edges, n, nodes, weights), sig, mc


@jit
def expect_2d(code, a, b, q1, q2, c, ws):
    """E[phi^{(a)}(u1) phi^{(b)}(u2)] for a centred normal pair with variances q1, q2, corr c.

    ws: workspace from workspace() / new_workspace().
    """
    edges = ws[0]
    nodes = ws[1]
    weights = ws[2]
    e2 = ws[3]
    n2 = ws[4]
    w2 = ws[5]
    sq1 = math.sqrt(q1)
    sq2 = math.sqrt(q2)
    if sq1 == 0.0:
        return _act.deriv(code, a, 0.0) * smoothed(code, b, 0.0, sq2, e2, n2, w2)
    n, sig, mc = _outer_rule(code, sq1, sq2, c, edges, nodes, weights)
    acc = 0.0
    for i in range(n):
        z = nodes[i]
        fa = _act.deriv(code, a, sq1 * z)
        if fa == 0.0:
            continue
        acc += weights[i] * fa * smoothed(code, b, mc * z, sig, e2, n2, w2)
    return acc


@helper
def var_dvar(code, q, edges, nodes, weights):
    """(E[phi(u)^2], d/dq E[phi(u)^2]) for u ~ N(0, q), q > 0, from one rule.

    d/dq E[phi^2] = E[phi'^2 + phi phi''] plus the delta terms of phi'' at kinks where phi'
    jumps: sum_k jump_k phi(k) p_q(k)."""
    n = rule_1d(code, q, edges, nodes, weights)
    sq = math.sqrt(q)
    v = 0.0
    s = 0.0
    for i in range(n):
        p0, d1, d2 = _act.derivs3(code, sq * nodes[i])
        v += weights[i] * p0 * p0
        s += weights[i] * (d1 * d1 + p0 * d2)
    if code < _KINKS.shape[0]:
        for j in range(2):
            k = _KINKS[code, j]
            if not math.isnan(k):
                s += _JUMPS[code, j] * _act.phi(code, k) * normal_pdf(k / sq) / sq
    return v, s


@helper
def dvar_dq(code, q, edges, nodes, weights):
    """d/dq E[phi(u)^2], u ~ N(0, q), q > 0 (the second output of var_dvar)."""
    return var_dvar(code, q, edges, nodes, weights)[1]


@helper
def _smoothed_pair(code, m, s, edges, nodes, weights):
    """(E[phi(m + sZ)], E[phi'(m + sZ)])."""
    if s <= 0.0:
        return _act.phi_dphi(code, m)
    v0, ok0 = _smoothed_closed(code, 0, m, s)
    v1, ok1 = _smoothed_closed(code, 1, m, s)
    if ok0 and ok1:
        return v0, v1
    if s <= GH_SMAX and _smooth(code):
        return _pair_sum(code, m, s, _GH_X, _GH_W, NGH)
    n = _base_edges(edges)
    n = _features(code, s, m, 1.0, edges, n)
    n = _finish_rule(edges, n, nodes, weights)
    return _pair_sum(code, m, s, nodes, weights, n)


@helper
def _pair_sum(code, m, s, nodes, weights, n):
    """(sum_i w_i phi(m + s z_i), sum_i w_i phi'(m + s z_i)) over the first n nodes."""
    a0 = 0.0
    a1 = 0.0
    for i in range(n):
        p0, p1 = _act.phi_dphi(code, m + s * nodes[i])
        a0 += weights[i] * p0
        a1 += weights[i] * p1
    return a0, a1


@helper
def cmap_pair(code, q, c, ws):
    """(E[phi(u1) phi(u2)], E[phi'(u1) phi'(u2)]) for equal variances q and correlation c."""
    edges = ws[0]
    nodes = ws[1]
    weights = ws[2]
    sq = math.sqrt(q)
    n, sig, mc = _outer_rule(code, sq, sq, c, edges, nodes, weights)
    k0 = 0.0
    k1 = 0.0
    for i in range(n):
        z = nodes[i]
        f0, f1 = _act.phi_dphi(code, sq * z)
        g0, g1 = _smoothed_pair(code, mc * z, sig, ws[3], ws[4], ws[5])
        k0 += weights[i] * f0 * g0
        k1 += weights[i] * f1 * g1
    return k0, k1


@helper
def rule_fine(code, q, maxw, edges, nodes, weights):
    """Like rule_1d with panels no wider than maxw (for oscillatory weights such as He_k)."""
    n = _base_edges(edges, maxw)
    sq = math.sqrt(q)
    if sq > 0.0:
        n = _features(code, sq, 0.0, 1.0, edges, n)
    return _finish_rule(edges, n, nodes, weights)


@jit
def new_workspace():
    """Scratch rows: outer edges/nodes/weights, inner edges/nodes/weights, series coefficients."""
    return np.zeros((7, MAXEDGES * NGL))


def workspace():
    return new_workspace()
