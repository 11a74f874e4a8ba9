"""Scalar activation kernels dispatched on an integer code (a closed registry).

Codes are fixed; ``cnnmft.activations`` maps names to them. ``which`` selects phi (0), phi' (1)
or phi'' (2). Custom activations get their own copies of the kernels (see ``_custom``).
"""

import math

import numpy as np

from ._jit import helper, jit

LINEAR, TANH, ERF, RELU, HARD_TANH, SIGMOID, SOFTPLUS, GELU, SWISH, SELU = range(10)
N_BUILTIN = 10

SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717
_SQRT_PI_INV2 = 2.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


@helper
def _sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@jit
def phi(code, x):
    if code == TANH:
        return math.tanh(x)
    if code == ERF:
        return math.erf(x)
    if code == RELU:
        return x if x > 0.0 else 0.0
    if code == HARD_TANH:
        return -1.0 if x < -1.0 else (1.0 if x > 1.0 else x)
    if code == LINEAR:
        return x
    if code == SIGMOID:
        return _sigmoid(x)
    if code == SOFTPLUS:
        return max(x, 0.0) + math.log1p(math.exp(-abs(x)))
    if code == GELU:
        return 0.5 * x * math.erfc(-x * _INV_SQRT2)
    if code == SWISH:
        return x * _sigmoid(x)
    if code == SELU:
        return SELU_LAMBDA * x if x > 0.0 else SELU_LAMBDA * SELU_ALPHA * math.expm1(x)
    return math.nan


@jit
def dphi(code, x):
    if code == TANH:
        t = math.tanh(x)
        return 1.0 - t * t
    if code == ERF:
        return _SQRT_PI_INV2 * math.exp(-x * x)
    if code == RELU:
        return 1.0 if x > 0.0 else 0.0
    if code == HARD_TANH:
        return 1.0 if (x > -1.0 and x < 1.0) else 0.0
    if code == LINEAR:
        return 1.0
    if code == SIGMOID:
        s = _sigmoid(x)
        return s * (1.0 - s)
    if code == SOFTPLUS:
        return _sigmoid(x)
    if code == GELU:
        return 0.5 * math.erfc(-x * _INV_SQRT2) + x * _INV_SQRT_2PI * math.exp(-0.5 * x * x)
    if code == SWISH:
        s = _sigmoid(x)
        return s + x * s * (1.0 - s)
    if code == SELU:
        return SELU_LAMBDA if x > 0.0 else SELU_LAMBDA * SELU_ALPHA * math.exp(x)
    return math.nan


@jit
def d2phi(code, x):
    if code == TANH:
        t = math.tanh(x)
        return -2.0 * t * (1.0 - t * t)
    if code == ERF:
        return -2.0 * x * _SQRT_PI_INV2 * math.exp(-x * x)
    if code == RELU or code == HARD_TANH or code == LINEAR:
        return 0.0
    if code == SIGMOID:
        s = _sigmoid(x)
        return s * (1.0 - s) * (1.0 - 2.0 * s)
    if code == SOFTPLUS:
        s = _sigmoid(x)
        return s * (1.0 - s)
    if code == GELU:
        return _INV_SQRT_2PI * math.exp(-0.5 * x * x) * (2.0 - x * x)
    if code == SWISH:
        s = _sigmoid(x)
        ds = s * (1.0 - s)
        return 2.0 * ds + x * ds * (1.0 - 2.0 * s)
    if code == SELU:
        return 0.0 if x > 0.0 else SELU_LAMBDA * SELU_ALPHA * math.exp(x)
    return math.nan


@jit
def phi_dphi(code, x):
    """(phi(x), phi'(x)) sharing work where possible."""
    if code == TANH:
        t = math.tanh(x)
        return t, 1.0 - t * t
    if code == SIGMOID:
        s = _sigmoid(x)
        return s, s * (1.0 - s)
    return phi(code, x), dphi(code, x)


@jit
def derivs3(code, x):
    """(phi, phi', phi'') sharing work where possible."""
    if code == TANH:
        t = math.tanh(x)
        d = 1.0 - t * t
        return t, d, -2.0 * t * d
    if code == SIGMOID:
        s = _sigmoid(x)
        d = s * (1.0 - s)
        return s, d, d * (1.0 - 2.0 * s)
    return phi(code, x), dphi(code, x), d2phi(code, x)


@jit
def deriv(code, which, x):
    if which == 0:
        return phi(code, x)
    if which == 1:
        return dphi(code, x)
    return d2phi(code, x)


@jit
def evaluate(code, which, x, out):
    """out[i] = phi^{(which)}(x[i]) for flat arrays."""
    for i in range(x.size):
        out[i] = deriv(code, which, x[i])
    return 0


def evaluate_array(code, which, x):
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(x.size)
    evaluate(code, which, np.ascontiguousarray(x.ravel()), out)
    return out.reshape(x.shape)


def finite_difference(f, order):
    """Fourth-order central difference of the scalar function `f` (order 1 or 2).

    Plain Python arithmetic, so the result is numba-compilable whenever `f` is (absolute error
    about 1e-10 for smooth `f` of unit scale).
    """
    h = 1e-3 if order == 1 else 2e-3

    def d1(x):
        return (-f(x + 2 * h) + 8 * f(x + h) - 8 * f(x - h) + f(x - 2 * h)) / (12 * h)

    def d2(x):
        return (-f(x + 2 * h) + 16 * f(x + h) - 30 * f(x) + 16 * f(x - h) - f(x - 2 * h)) / (
            12 * h * h
        )

    return d1 if order == 1 else d2
