"""Torch initializers: layout, isometry through torch convolutions, dtype/device, seeding."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from cnnmft.orthogonal import tap_energy  # noqa: E402
from cnnmft.pytorch import (  # noqa: E402
    block_orthogonal_,
    delta_orthogonal_,
    gaussian_,
    tunable_orthogonal_,
)

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def circular_conv(x, w):
    """torch convolution with circular padding (k-1)//2 before, k//2 after, every axis."""
    ks = w.shape[2:]
    pad = []
    for k in reversed(ks):
        pad += [(k - 1) // 2, k // 2]
    return CONV[len(ks)](F.pad(x, pad, mode="circular"), w)


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "shape", [(12, 5, 4), (9, 9, 3, 3), (8, 3, 2, 5), (6, 4, 3, 3, 3), (7, 2, 2, 2, 2)]
)
@pytest.mark.parametrize("init", ["block", "tunable", "delta"])
def test_isometry_through_torch_circular_convolution(shape, init):
    # float64 weight; c_in < c_out cases catch a transposed layout
    w = torch.empty(shape, dtype=torch.float64)
    if init == "block":
        block_orthogonal_(w, 2.0, generator=gen(1))
    elif init == "tunable":
        tunable_orthogonal_(w, 2.0, 0.2, generator=gen(1))
    else:
        delta_orthogonal_(w, 2.0, generator=gen(1))
    d = len(shape) - 2
    x = torch.randn((3, shape[1]) + (6, 5, 7)[:d], dtype=torch.float64, generator=gen(2))
    y = circular_conv(x, w)
    ratio = torch.linalg.vector_norm(y.flatten(1), dim=1) / torch.linalg.vector_norm(
        x.flatten(1), dim=1
    )
    np.testing.assert_allclose(ratio.numpy(), np.sqrt(2.0), rtol=1e-12)


def test_delta_isometry_with_zero_padding_module():
    conv = torch.nn.Conv2d(16, 48, 3, padding=1, bias=False).double()
    delta_orthogonal_(conv, 3.14**2, generator=gen(3))
    x = torch.randn(4, 16, 9, 9, dtype=torch.float64, generator=gen(4))
    with torch.no_grad():
        ratio = torch.linalg.vector_norm(conv(x)) / torch.linalg.vector_norm(x)
    assert abs(float(ratio) - 3.14) < 1e-12


def test_circular_module_with_block_orthogonal():
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular", bias=False).double()
    block_orthogonal_(conv, generator=gen(5))
    x = torch.randn(2, 8, 7, 7, dtype=torch.float64, generator=gen(6))
    with torch.no_grad():
        ratio = torch.linalg.vector_norm(conv(x)) / torch.linalg.vector_norm(x)
    assert abs(float(ratio) - 1.0) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_dtype_device_identity_and_no_grad(dtype):
    conv = torch.nn.Conv1d(4, 8, 3).to(dtype)
    before = conv.weight
    ptr = conv.weight.data_ptr()
    out = block_orthogonal_(conv, generator=gen(7))
    assert out is before and conv.weight.data_ptr() == ptr
    assert out.dtype == dtype and out.device == before.device
    assert out.requires_grad and out.grad_fn is None and out.is_leaf
    # parameters stay usable for training
    conv(torch.randn(2, 4, 10, dtype=dtype)).sum().backward()
    assert conv.weight.grad is not None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_views_of_a_stacked_weight(dtype):
    # deep blocks store (depth, c_out, c_in, k, k); each layer is initialised through a view
    stack = torch.zeros(4, 6, 3, 3, 3, dtype=dtype)
    block_orthogonal_(stack[2], 2.0, generator=gen(1))
    assert float(stack[[0, 1, 3]].abs().max()) == 0.0
    assert abs(float((stack[2].double() ** 2).sum()) - 2.0 * 3) < 1e-5
    # a non-contiguous view (channels transposed) is written in place too
    base = torch.zeros(3, 6, 3, dtype=dtype)
    view = base.transpose(0, 1)
    delta_orthogonal_(view, 1.0, generator=gen(2))
    h = base[:, :, 1].double().T
    torch.testing.assert_close(h.T @ h, torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-6)


def test_reproducible_with_generator_and_global_seed():
    a = block_orthogonal_(torch.empty(8, 4, 3, 3), generator=gen(11))
    b = block_orthogonal_(torch.empty(8, 4, 3, 3), generator=gen(11))
    c = block_orthogonal_(torch.empty(8, 4, 3, 3), generator=gen(12))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(5)
    d = delta_orthogonal_(torch.empty(8, 4, 3))
    torch.manual_seed(5)
    e = delta_orthogonal_(torch.empty(8, 4, 3))
    assert torch.equal(d, e)


def test_delta_layout_is_c_out_c_in():
    w = delta_orthogonal_(torch.empty(10, 4, 5, dtype=torch.float64), 1.0, generator=gen(8))
    h = w[:, :, 2]
    assert torch.allclose(h.T @ h, torch.eye(4, dtype=torch.float64), atol=1e-13)
    assert float(w[:, :, [0, 1, 3, 4]].abs().max()) == 0.0
    # even k: centre (k - 1) // 2
    w = delta_orthogonal_(torch.empty(6, 6, 4, dtype=torch.float64), generator=gen(9))
    np.testing.assert_allclose(tap_energy(w.numpy()), [0, 1, 0, 0], atol=1e-14)


def test_gaussian_init_variance():
    w = gaussian_(
        torch.empty(128, 64, 3, dtype=torch.float64), 1.5, [0.25, 0.5, 0.25], generator=gen(10)
    )
    n = 128 * 64
    for j, v in enumerate([0.25, 0.5, 0.25]):
        stat = float((w[:, :, j] ** 2).sum()) / (1.5 * v / 64)
        assert abs(stat - n) < 5 * np.sqrt(2 * n)
    # Gaussian kernels allow c_in > c_out
    gaussian_(torch.nn.Conv2d(32, 8, 3), 1.0, "binomial", generator=gen(1))


def test_semi_orthogonal_through_torch():
    # c_in > c_out: co-isometry; conv(adjoint(y)) = sigma_w2 y, checked with torch's own ops
    w = block_orthogonal_(
        torch.empty(4, 10, 3, 3, dtype=torch.float64), 1.5, generator=gen(2), semi_orthogonal=True
    )
    y = torch.randn(2, 4, 6, 6, dtype=torch.float64, generator=gen(3))
    # adjoint of circular cross-correlation: transposed channels, reversed taps, mirrored pads
    wt = torch.flip(w.transpose(0, 1), dims=(2, 3))
    x = CONV[2](F.pad(y, [1, 1, 1, 1], mode="circular"), wt)
    back = circular_conv(x, w)
    torch.testing.assert_close(back, 1.5 * y, rtol=1e-12, atol=1e-12)


def test_errors():
    with pytest.raises(ValueError, match="c_in <= c_out"):
        delta_orthogonal_(torch.nn.Conv2d(16, 8, 3))
    with pytest.raises(ValueError, match="groups"):
        block_orthogonal_(torch.nn.Conv2d(8, 8, 3, groups=2))
    with pytest.raises(ValueError, match="transposed"):
        block_orthogonal_(torch.nn.ConvTranspose2d(8, 8, 3))
    with pytest.raises(ValueError, match="shape"):
        block_orthogonal_(torch.empty(8, 8))
    with pytest.raises(TypeError, match="Conv1d"):
        block_orthogonal_(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="sigma_w2"):
        delta_orthogonal_(torch.empty(4, 4, 3), -1.0)


def test_clear_import_error_without_torch():
    # torch made unimportable by a finder that refuses it (a None entry in sys.modules would
    # also break scipy, which probes sys.modules['torch'] for array types)
    code = (
        "import sys, importlib.abc\n"
        "class NoTorch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import cnnmft\n"
        "try:\n    import cnnmft.pytorch\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "pip install cnnmft[torch]" in out.stdout, out.stdout + out.stderr


@pytest.mark.gpu
def test_cuda_weight_keeps_device_and_dtype():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    conv = torch.nn.Conv2d(8, 16, 3, padding=1, padding_mode="circular").cuda().half()
    g = torch.Generator(device="cuda").manual_seed(0)
    w = block_orthogonal_(conv, 2.0, generator=g)
    assert w.device.type == "cuda" and w.dtype == torch.float16
    s = w.detach().double().cpu().numpy()
    np.testing.assert_allclose((s**2).sum(), 2.0 * 8, rtol=1e-2)
