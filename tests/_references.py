"""Independent references for the tests: closed forms and mpmath adaptive quadrature.

Nothing here calls cnnmft's quadrature; every value is computed from scratch.
"""

import math

import mpmath as mp

SQRT2PI = math.sqrt(2 * math.pi)


def mp_phi(name):
    """mpmath versions of the activations and their first derivative."""
    sech2 = lambda x: 1 / mp.cosh(x) ** 2  # noqa: E731
    table = {
        "tanh": (mp.tanh, sech2),
        "erf": (mp.erf, lambda x: 2 / mp.sqrt(mp.pi) * mp.exp(-x * x)),
        "relu": (lambda x: x if x > 0 else mp.mpf(0), lambda x: mp.mpf(1) if x > 0 else mp.mpf(0)),
        "hard_tanh": (
            lambda x: max(min(x, 1), -1),
            lambda x: mp.mpf(1) if -1 < x < 1 else mp.mpf(0),
        ),
        "sigmoid": (lambda x: 1 / (1 + mp.exp(-x)), lambda x: mp.exp(-x) / (1 + mp.exp(-x)) ** 2),
        "softplus": (lambda x: mp.log1p(mp.exp(x)), lambda x: 1 / (1 + mp.exp(-x))),
        "gelu": (lambda x: x * mp.ncdf(x), lambda x: mp.ncdf(x) + x * mp.npdf(x)),
        "swish": (
            lambda x: x / (1 + mp.exp(-x)),
            lambda x: 1 / (1 + mp.exp(-x)) + x * mp.exp(-x) / (1 + mp.exp(-x)) ** 2,
        ),
        "selu": (
            lambda x: 1.0507009873554804934 * (x if x > 0 else 1.6732632423543772848 * mp.expm1(x)),
            lambda x: 1.0507009873554804934 * (1 if x > 0 else 1.6732632423543772848 * mp.exp(x)),
        ),
        "linear": (lambda x: x, lambda x: mp.mpf(1)),
    }
    return table[name]


_KINKS = {"relu": [0.0], "hard_tanh": [-1.0, 1.0], "selu": [0.0]}


def _points(name, q):
    """Split points in z for mp.quad: kinks and the steep region of smooth activations."""
    sq = mp.sqrt(q)
    pts = [-mp.inf]
    inner = sorted(
        set(
            [0.0]
            + [k / sq for k in _KINKS.get(name, [])]
            + [s * t / sq for t in (1, 3) for s in (-1, 1)]
        )
    )
    pts += [p for p in inner if abs(p) < 12] + [mp.inf]
    return pts


def mp_expect(name, q, f=lambda p, d: p * p, dps=25):
    """E[f(phi(u), phi'(u))], u ~ N(0, q), by mpmath adaptive quadrature."""
    with mp.workdps(dps):
        phi, dphi = mp_phi(name)
        q = mp.mpf(q)
        sq = mp.sqrt(q)
        return mp.quad(lambda z: f(phi(sq * z), dphi(sq * z)) * mp.npdf(z), _points(name, q))


def mp_expect2(name, q1, q2, c, which=(0, 0), dps=18):
    """E[phi^(a)(u1) phi^(b)(u2)] (a, b in {0, 1}) by nested mpmath quadrature."""
    with mp.workdps(dps):
        fs = mp_phi(name)
        f, g = fs[which[0]], fs[which[1]]
        q1, q2, c = mp.mpf(q1), mp.mpf(q2), mp.mpf(c)
        s1, s2 = mp.sqrt(q1), mp.sqrt(q2)
        s = mp.sqrt(1 - c * c)

        def inner(z1):
            m = s2 * c * z1
            sig = s2 * s
            if sig == 0:
                return g(m)
            pts = [-mp.inf]
            for k in [0.0] + _KINKS.get(name, []):
                p = (k - m) / sig
                if abs(p) < 12:
                    pts.append(p)
            pts = [-mp.inf] + sorted(pts[1:]) + [mp.inf]
            return mp.quad(lambda z2: g(m + sig * z2) * mp.npdf(z2), pts)

        return mp.quad(lambda z1: f(s1 * z1) * inner(z1) * mp.npdf(z1), _points(name, q1))


def sp_expect2(name, q1, q2, c, which=(0, 0)):
    """E[phi^(a)(u1) phi^(b)(u2)] (a, b in {0, 1}) by nested scipy adaptive quadrature (QUADPACK),
    split at kinks and at the steep region, tolerances 1e-14 (relative) / 1e-300."""
    import warnings

    from scipy.integrate import IntegrationWarning
    from scipy.integrate import quad as _quad

    def quad(*a, **k):
        with warnings.catch_warnings():  # roundoff warnings near 1e-14 are expected here
            warnings.simplefilter("ignore", IntegrationWarning)
            return _quad(*a, **k)

    phi, dphi = _np_phi(name)
    f = (phi, dphi)[which[0]]
    g = (phi, dphi)[which[1]]
    s1, s2 = math.sqrt(q1), math.sqrt(q2)
    s = math.sqrt(max(0.0, (1 - c) * (1 + c)))
    pdf = lambda z: math.exp(-0.5 * z * z) / SQRT2PI  # noqa: E731
    kinks = [0.0] + _KINKS.get(name, [])

    def inner(z1):
        m = s2 * c * z1
        sig = s2 * s
        if sig == 0:
            return g(m)
        pts = sorted(p for p in ((k - m) / sig for k in kinks) if abs(p) < 11)
        return quad(
            lambda z2: g(m + sig * z2) * pdf(z2),
            -12,
            12,
            points=pts or None,
            epsabs=1e-17,
            epsrel=1e-13,
            limit=400,
        )[0]

    pts = sorted({p for k in kinks for p in (k / s1, k / (s2 * c) if c else 0.0) if abs(p) < 11})
    return quad(
        lambda z1: f(s1 * z1) * inner(z1) * pdf(z1),
        -12,
        12,
        points=pts or None,
        epsabs=1e-17,
        epsrel=1e-13,
        limit=400,
    )[0]


def _np_phi(name):
    sech2 = lambda x: 1 / math.cosh(x) ** 2 if abs(x) < 350 else 0.0  # noqa: E731
    return {
        "tanh": (math.tanh, sech2),
        "erf": (math.erf, lambda x: 2 / math.sqrt(math.pi) * math.exp(-x * x)),
        "relu": (lambda x: max(x, 0.0), lambda x: 1.0 if x > 0 else 0.0),
        "hard_tanh": (lambda x: max(min(x, 1.0), -1.0), lambda x: 1.0 if -1 < x < 1 else 0.0),
    }[name]


def mp_q_star(name, sw, sb, q0=1.0):
    """q* from mpmath findroot on the mpmath q-map."""
    with mp.workdps(25):
        g = lambda q: sw * mp_expect(name, q) + sb - q  # noqa: E731
        return mp.findroot(g, mp.mpf(q0), tol=1e-22)


def erf_map(q11, q22, q12):
    """E[erf(u1) erf(u2)] in closed form (Williams 1997)."""
    return 2 / math.pi * math.asin(2 * q12 / math.sqrt((1 + 2 * q11) * (1 + 2 * q22)))


def erf_dmap(q11, q22, q12):
    """E[erf'(u1) erf'(u2)] in closed form."""
    return 4 / math.pi / math.sqrt((1 + 2 * q11) * (1 + 2 * q22) - 4 * q12 * q12)


def relu_map(q1, q2, c):
    """E[relu(u1) relu(u2)] (arc-cosine kernel, Cho & Saul 2009)."""
    return (
        math.sqrt(q1 * q2)
        / (2 * math.pi)
        * (math.sqrt(max(0.0, 1 - c * c)) + (math.pi - math.acos(c)) * c)
    )


def step_map(c):
    """E[step(u1) step(u2)] = (pi - arccos c) / (2 pi)."""
    return (math.pi - math.acos(c)) / (2 * math.pi)


def hard_tanh_var(q):
    """E[hard_tanh(u)^2], u ~ N(0, q) (docs/theory.md, section 1)."""
    a = 1 / math.sqrt(q)
    pdf = math.exp(-a * a / 2) / SQRT2PI
    e = math.erf(a / math.sqrt(2))
    return q * (e - 2 * a * pdf) + 1 - e
