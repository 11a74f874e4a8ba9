"""VanillaCNN and its deep block: architecture, initialisation, critical point, implementations."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from scipy import integrate, optimize  # noqa: E402

from cnnmft.pytorch.models import DeepConvBlock, VanillaCNN  # noqa: E402


def _tanh_critical(q):
    """Independent reference: sigma_w2 = 1/E[sech^4], sigma_b2 = q - sigma_w2 E[tanh^2] (quad)."""
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    s = math.sqrt(q)
    e_d2 = integrate.quad(lambda z: pdf(z) / math.cosh(s * z) ** 4, -12, 12, epsabs=1e-14)[0]
    e_p2 = integrate.quad(lambda z: pdf(z) * math.tanh(s * z) ** 2, -12, 12, epsabs=1e-14)[0]
    sw = 1.0 / e_d2
    return sw, q - sw * e_p2


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("depth", [10, 100, 10_000])
def test_default_variances_are_critical_point_with_q_star_one_over_depth(depth):
    net = VanillaCNN(2, 4, stem_strides=(1,), q_star=1.0 / depth, generator=_gen())
    sw, sb = _tanh_critical(1.0 / depth)
    assert net.sigma_w2 == pytest.approx(sw, rel=1e-9)
    assert net.sigma_b2 == pytest.approx(sb, rel=1e-6, abs=1e-16)
    # and the same through `depth` itself (q* = 1/depth is the default rule)
    if depth <= 100:
        net2 = VanillaCNN(depth, 4, stem_strides=(1,), generator=_gen())
        assert net2.sigma_w2 == pytest.approx(sw, rel=1e-9)


def test_critical_point_fixed_point_property():
    # q* is a fixed point of the length map and chi_1 = 1, checked with brentq on the q-map
    net = VanillaCNN(16, 4, stem_strides=(1,), generator=_gen())
    sw, sb = net.sigma_w2, net.sigma_b2
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731

    def qmap(q):
        return (
            sw
            * integrate.quad(
                lambda z: pdf(z) * math.tanh(math.sqrt(q) * z) ** 2, -12, 12, epsabs=1e-14
            )[0]
            + sb
        )

    q_star = optimize.brentq(lambda q: qmap(q) - q, 0.03, 0.2, xtol=1e-14)
    assert q_star == pytest.approx(1 / 16, rel=1e-7)


def test_shapes_stem_and_parameter_layout():
    net = VanillaCNN(7, 6, in_channels=3, stem_strides=(1, 2, 2), generator=_gen())
    x = torch.zeros(2, 3, 32, 32)
    assert net.features(x).shape == (2, 6, 8, 8)
    assert net(x).shape == (2, 10)
    assert net.block.weight.shape == (7, 6, 6, 3, 3)
    assert net.block.bias.shape == (7, 6)
    net = VanillaCNN(3, 5, stem_strides=(1, 2, 2))
    assert net.features(torch.zeros(1, 1, 28, 28)).shape == (1, 5, 7, 7)


def test_delta_orthogonal_deep_kernels_are_scaled_orthogonal_centre_taps():
    net = VanillaCNN(5, 8, stem_strides=(1,), sigma_w2=1.7, sigma_b2=0.01, generator=_gen(1))
    w = net.block.weight.detach().double()
    centre = w[:, :, :, 1, 1]
    off = w.clone()
    off[:, :, :, 1, 1] = 0
    assert off.abs().max() == 0
    eye = torch.eye(8, dtype=torch.float64)
    for layer in range(5):
        h = centre[layer]
        torch.testing.assert_close(h.T @ h, 1.7 * eye, atol=1e-5, rtol=0)
    # layers differ (independent draws)
    assert (centre[0] - centre[1]).abs().max() > 0.1


def test_gaussian_kernels_have_the_requested_variance():
    c, depth = 32, 40
    net = VanillaCNN(
        depth, c, init="gaussian", stem_strides=(1,), sigma_w2=2.0, sigma_b2=0.0, generator=_gen(2)
    )
    w = net.block.weight.detach().double()
    n = w.numel()
    var = float((w**2).mean())
    target = 2.0 / (9 * c)  # uniform v: Var = sigma_w2 / (k^2 c_in)
    # standard error of a mean of squares of normals: target * sqrt(2 / n)
    assert abs(var - target) < 5 * target * math.sqrt(2 / n)
    assert float(net.block.bias.detach().abs().max()) == 0.0


def test_seeded_construction_is_reproducible():
    a = VanillaCNN(4, 4, stem_strides=(1, 2), generator=_gen(3))
    b = VanillaCNN(4, 4, stem_strides=(1, 2), generator=_gen(3))
    c = VanillaCNN(4, 4, stem_strides=(1, 2), generator=_gen(4))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.block.weight, c.block.weight)


def _naive(x, weight, bias):
    """Reference deep block: explicit roll-based circular cross-correlation, plain autograd."""
    k = weight.shape[-1]
    for w, b in zip(weight, bias):
        out = torch.zeros(x.shape[0], w.shape[0], *x.shape[2:], dtype=x.dtype)
        for dr in range(k):
            for dc in range(k):
                shifted = torch.roll(x, shifts=(-(dr - k // 2), -(dc - k // 2)), dims=(2, 3))
                out = out + torch.einsum("oi,bihw->bohw", w[:, :, dr, dc], shifted)
        x = torch.tanh(out + b[None, :, None, None])
    return x


@pytest.mark.parametrize("impl", ["autograd", "fused", "dense"])
@pytest.mark.parametrize("segments", ["auto", None, 2])
@pytest.mark.parametrize("hw", [(4, 5), (2, 2)])
def test_deep_block_implementations_match_naive_circular_convolution(impl, segments, hw):
    g = _gen(5)
    block = DeepConvBlock(7, 3, act="tanh", checkpoint_segments=segments, impl=impl).double()
    with torch.no_grad():
        block.weight.copy_(torch.randn(block.weight.shape, generator=g, dtype=torch.float64) * 0.4)
        block.bias.copy_(torch.randn(block.bias.shape, generator=g, dtype=torch.float64) * 0.1)
    x = torch.randn(2, 3, *hw, generator=g, dtype=torch.float64, requires_grad=True)
    y = block(x)
    x_ref = x.detach().clone().requires_grad_(True)
    w_ref = block.weight.detach().clone().requires_grad_(True)
    b_ref = block.bias.detach().clone().requires_grad_(True)
    y_ref = _naive(x_ref, w_ref, b_ref)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-13)
    cot = torch.randn(y.shape, generator=g, dtype=torch.float64)
    gx, gw, gb = torch.autograd.grad(y, (x, block.weight, block.bias), cot)
    rx, rw, rb = torch.autograd.grad(y_ref, (x_ref, w_ref, b_ref), cot)
    torch.testing.assert_close(gx, rx, rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(gw, rw, rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(gb, rb, rtol=1e-11, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(block(x), y_ref, rtol=1e-12, atol=1e-13)


def test_fused_gradcheck_small():
    block = DeepConvBlock(3, 2, checkpoint_segments=2, impl="fused").double()
    with torch.no_grad():
        block.weight.normal_(0, 0.5)
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: block.__class__.forward(block, x), (x, block.weight, block.bias)
    )


def test_zero_padding_differs_from_circular_and_matches_conv2d():
    g = _gen(6)
    block = DeepConvBlock(2, 3, padding="zeros").double()
    with torch.no_grad():
        block.weight.normal_(0, 0.5, generator=g)
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64, generator=g)
    ref = x
    for w, b in zip(block.weight, block.bias):
        ref = torch.tanh(F.conv2d(ref, w, b, padding=1))
    torch.testing.assert_close(block(x), ref)
    assert not torch.allclose(ref, _naive(x, block.weight.detach(), block.bias.detach()))


def test_delta_orthogonal_linear_network_is_an_exact_isometry():
    # with act='linear' and Delta-orthogonal kernels (sigma_w2 = 1, sigma_b2 = 0) every deep layer
    # is an orthogonal map: the norm of any input is preserved through 500 layers
    net = VanillaCNN(
        200,
        8,
        act="linear",
        stem_strides=(1,),
        sigma_w2=1.0,
        sigma_b2=0.0,
        impl="autograd",
        generator=_gen(7),
    ).double()
    x = torch.randn(3, 8, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        y = net.block(x)
    # the kernels were drawn in float32 (orthogonal to ~6e-8 per layer): 200 layers drift ~1e-6
    torch.testing.assert_close(
        y.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1), rtol=2e-5, atol=0
    )
    gauss = VanillaCNN(
        200,
        8,
        act="linear",
        init="gaussian",
        stem_strides=(1,),
        sigma_w2=1.0,
        sigma_b2=0.0,
        impl="autograd",
        generator=_gen(7),
    ).double()
    with torch.no_grad():
        ratio = gauss.block(x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    assert float((ratio.log().abs()).max()) > 0.1  # Gaussian products are far from isometric


def test_bad_arguments_raise_with_names():
    with pytest.raises(ValueError, match="init"):
        VanillaCNN(3, 4, init="xavier")
    with pytest.raises(ValueError, match="sigma_b2"):
        VanillaCNN(3, 4, sigma_w2=1.5)
    with pytest.raises(ValueError, match="depth"):
        VanillaCNN(-1, 4)
    with pytest.raises(ValueError, match="impl"):
        DeepConvBlock(3, 4, act="relu", impl="fused")
    with pytest.raises(ValueError, match="impl"):
        DeepConvBlock(3, 4, impl="cuda-magic")


def test_critical_sigma_w2_when_only_sigma_b2_given():
    net = VanillaCNN(3, 4, sigma_b2=0.05, stem_strides=(1,), generator=_gen())
    assert net.sigma_w2 == pytest.approx(1.760955, abs=2e-6)  # docs/theory.md §7.1 [D]


def test_grad_norms_per_layer():
    net = VanillaCNN(6, 4, stem_strides=(1, 2), generator=_gen(8))
    assert torch.isnan(net.grad_norms()).all()
    x = torch.randn(4, 1, 8, 8, generator=_gen(9))
    F.cross_entropy(net(x), torch.tensor([0, 1, 2, 3])).backward()
    gn = net.grad_norms()
    ref = torch.stack([net.block.weight.grad[i].norm() for i in range(6)])
    torch.testing.assert_close(gn, ref)
    assert np.all(np.isfinite(gn.numpy()))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("impl", ["autograd", "fused"])
def test_cuda_matches_cpu(impl):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    net = VanillaCNN(30, 8, stem_strides=(1, 2), impl=impl, generator=_gen(11)).double()
    x = torch.randn(4, 1, 8, 8, generator=_gen(12), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    F.cross_entropy(net(x), y).backward()
    g_cpu = net.block.weight.grad.clone()
    out_cpu = net(x).detach()
    net.zero_grad()
    net = net.cuda()
    F.cross_entropy(net(x.cuda()), y.cuda()).backward()
    torch.testing.assert_close(net(x.cuda()).detach().cpu(), out_cpu, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(net.block.weight.grad.cpu(), g_cpu, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("init", ["block_orthogonal", "tunable_orthogonal"])
def test_orthogonal_kernel_families_give_isometric_circular_blocks(init):
    # Algorithm-1 and tunable kernels are orthogonal operators under circular padding for any
    # map size (docs/theory.md §3-4): a linear deep block with sigma_w2 = 1 preserves every norm
    net = VanillaCNN(
        40,
        8,
        act="linear",
        init=init,
        t=0.2,
        stem_strides=(1,),
        sigma_w2=1.0,
        sigma_b2=0.0,
        impl="autograd",
        generator=_gen(13),
    ).double()
    w = net.block.weight.detach()
    assert float((w[:, :, :, 0, 0] ** 2).sum()) > 1e-3  # off-centre taps are used
    x = torch.randn(3, 8, 5, 4, dtype=torch.float64, generator=_gen(14))
    with torch.no_grad():
        y = net.block(x)
    # float32-drawn kernels: ~1e-7 per layer
    torch.testing.assert_close(
        y.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1), rtol=2e-5, atol=0
    )
