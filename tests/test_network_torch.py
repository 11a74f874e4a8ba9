"""predict() against the torch VanillaCNN with autograd: logit covariance, gradients, NTK."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scipy.stats import t as student_t  # noqa: E402

from cnnmft.network import predict  # noqa: E402
from cnnmft.pytorch.models import VanillaCNN  # noqa: E402

pytestmark = pytest.mark.torch


def _draw(cfg, x, seed):
    """Logits of every class, per-layer block gradient norms and the NTK of logit 0."""
    gen = torch.Generator().manual_seed(seed)
    model = VanillaCNN(**cfg, generator=gen).double()
    xt = torch.tensor(np.moveaxis(x, -1, 1))
    out = model(xt)
    variances = []
    for conv in model.stem:
        cin = conv.weight.shape[1]
        variances += [(conv.weight, cfg["sigma_w2"] / (9 * cin)), (conv.bias, cfg["sigma_b2"])]
    variances += [
        (model.block.weight, cfg["sigma_w2"] / (9 * cfg["channels"])),
        (model.block.bias, cfg["sigma_b2"]),
        (model.readout.weight, 1.0 / cfg["channels"]),
    ]
    params = [p for p, _ in variances]
    grads = []
    for a in range(x.shape[0]):
        g = torch.autograd.grad(out[a, 0], params, retain_graph=True)
        grads.append(g)
    ntk = np.zeros((x.shape[0], x.shape[0]))
    for a in range(x.shape[0]):
        for b in range(x.shape[0]):
            ntk[a, b] = sum(
                float(var * (ga * gb).sum())
                for (_, var), ga, gb in zip(variances, grads[a], grads[b])
            )
    block = grads[0][2 * len(model.stem)].detach().numpy()  # (depth, c, c, 3, 3), input 0
    wnorm = (block.reshape(block.shape[0], -1) ** 2).sum(axis=1)
    logits = out.detach().numpy()
    return logits @ logits.T / logits.shape[1], ntk, wnorm


@pytest.mark.parametrize(
    "padding,n",
    [
        ("zeros", 16),
        pytest.param("circular", 30, marks=pytest.mark.slow),
        pytest.param("zeros", 30, marks=pytest.mark.slow),
    ],
)
def test_vanilla_cnn_matches_prediction(padding, n):
    cfg = dict(
        depth=3,
        channels=48,
        in_channels=1,
        init="gaussian",
        v="uniform",
        sigma_w2=1.6,
        sigma_b2=0.05,
        padding=padding,
        stem_strides=(1, 2),
        impl="autograd",
        checkpoint_segments=None,
    )
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 8, 8, 1))
    p = predict(cfg, x)
    draws = [_draw(cfg, x, s) for s in range(n)]
    nngp = np.array([d[0] for d in draws])
    ntk = np.array([d[1] for d in draws])
    wn = np.array([d[2] for d in draws])
    block = [i for i, k in enumerate(p.linear) if 2 <= i < 2 + cfg["depth"]]
    theory_w = p.weight_grad2[block, 0]
    z = []
    for th, s in [(p.nngp, nngp), (p.ntk, ntk), (theory_w, wn)]:
        m, se = s.mean(axis=0), s.std(axis=0, ddof=1) / np.sqrt(n)
        z.append(np.ravel(np.abs(th - m) / se))
    z = np.concatenate(z)
    zc = float(student_t.isf(1e-3 / (2 * z.size), n - 1))
    assert z.max() < zc, (z, zc)


def test_predict_reads_the_model():
    cfg = dict(
        depth=4,
        channels=8,
        in_channels=1,
        init="block_orthogonal",
        stem_strides=(1, 2),
        padding="zeros",
        readout_scale="1/sqrt(q*)",
        q_star=0.1,
    )
    model = VanillaCNN(**cfg, generator=torch.Generator().manual_seed(0))
    a, b = predict(model), predict(cfg)
    np.testing.assert_allclose(a.q, b.q, rtol=1e-14)
    np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-14)
    assert a.config["padding"] == "zeros" and abs(a.config["readout_scale"] - 10**0.5) < 1e-12
