"""Pin every gain/scale convention against the framework's documented multiplication.

Each framework multiplies a unit orthonormal matrix (or a unit-variance Gaussian) by some function
of its parameter; the helpers below restate those functions as the frameworks' code does, and the
kernels cnnmft generates from the converted ``sigma_w2`` must have the same operator norm.
"""

import numpy as np
import pytest

from cnnmft.conventions import (
    CONVENTIONS,
    available_conventions,
    conventions_table,
    from_sigma_w2,
    to_sigma_w2,
)
from cnnmft.orthogonal import conv_singular_values, delta_orthogonal, gaussian_kernel

C_IN, C_OUT = 8, 32


# what each framework multiplies its orthonormal (unit singular values) kernel by
def framework_multiplier(name, value):
    return {
        "tf<=1.12": np.sqrt(value),  # r1.10 docs: norm times sqrt(gain)
        "tf>=1.13": value,  # gain multiplies directly
        "jax": value,  # scale multiplies directly
        "torch": value,  # torch.nn.init.orthogonal_: gain
        "torch-sqrt": np.sqrt(value),  # yl-1993: tensor.mul_(sqrt(gain))
        "dks": value * max(np.sqrt(C_OUT / C_IN), 1.0),  # gain * max(sqrt(out/in), 1)
    }[name]


ORTHO = ["tf<=1.12", "tf>=1.13", "jax", "torch", "torch-sqrt", "dks"]


@pytest.mark.parametrize("name", ORTHO)
@pytest.mark.parametrize("value", [0.5, 1.0, 1.7])
def test_orthogonal_conventions_pinned(name, value):
    s2 = to_sigma_w2(value, name, c_in=C_IN, c_out=C_OUT)
    kern = delta_orthogonal((C_OUT, C_IN, 3), s2, rng=0)
    s = conv_singular_values(kern, 5)
    np.testing.assert_allclose(s, framework_multiplier(name, value), rtol=1e-12)


def test_gaussian_conventions_pinned():
    # NT: entry std W_std / sqrt(fan_in); "std": the entry std itself
    c_in, ks = 64, (3, 3)
    fan_in = c_in * 9
    kern = gaussian_kernel((128, c_in) + ks, to_sigma_w2(1.3, "nt"), "uniform", rng=1)
    n = kern.size
    assert abs(kern.std() - 1.3 / np.sqrt(fan_in)) < 5 * (1.3 / np.sqrt(fan_in)) / np.sqrt(2 * n)
    s2 = to_sigma_w2(0.05, "std", c_in=c_in, kernel_size=ks)
    np.testing.assert_allclose(s2, 0.05**2 * fan_in, rtol=1e-15)
    kern = gaussian_kernel((128, c_in) + ks, s2, "uniform", rng=2)
    assert abs(kern.std() - 0.05) < 5 * 0.05 / np.sqrt(2 * n)


def test_tf_gain_change_is_a_square_root():
    # the churn of brain-research/mean-field-cnns PR #2: same network, gain differs by a sqrt
    s2 = 1.96
    assert from_sigma_w2(s2, "tf<=1.12") == pytest.approx(1.96)
    assert from_sigma_w2(s2, "tf>=1.13") == pytest.approx(1.4)


@pytest.mark.parametrize("name", list(CONVENTIONS))
def test_round_trip(name):
    kw = {"c_in": 16, "c_out": 48, "kernel_size": (3, 5)}
    vals = np.array([0.0, 0.3, 1.0, 2.5])
    back = to_sigma_w2(from_sigma_w2(vals, name, **kw), name, **kw)
    np.testing.assert_allclose(back, vals, rtol=1e-14, atol=0)


def test_dks_semi_orthogonal_side():
    # c_in >= c_out: no rescale
    assert to_sigma_w2(1.5, "dks", c_in=64, c_out=32) == pytest.approx(2.25)


def test_errors():
    with pytest.raises(ValueError, match="convention"):
        to_sigma_w2(1.0, "keras")
    with pytest.raises(ValueError, match="c_in"):
        to_sigma_w2(1.0, "dks", c_out=4)
    with pytest.raises(ValueError, match="kernel_size"):
        to_sigma_w2(1.0, "std", c_in=4)
    with pytest.raises(ValueError, match="gain"):
        to_sigma_w2(-1.0, "tf>=1.13")
    with pytest.raises(ValueError, match="sigma_w2"):
        from_sigma_w2(-1.0, "jax")


def test_table_lists_every_convention():
    table = conventions_table()
    assert set(available_conventions()) == set(CONVENTIONS)
    for name in CONVENTIONS:
        assert f"`{name}`" in table


def test_docs_table_in_sync():
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "kernels.md"
    if not doc.exists():
        pytest.skip("docs/kernels.md not present")
    assert conventions_table() in doc.read_text()
