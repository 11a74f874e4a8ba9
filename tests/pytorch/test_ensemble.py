"""Ensemble training: every member trains exactly as the same network trained alone.

The reference is independent of the ensemble code: a :class:`VanillaCNN` (ungrouped
convolutions, its own forward pass) trained with :class:`torch.optim.SGD` or
:class:`torch.optim.Adam` on the same batches, in float64.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cnnmft.pytorch import VanillaCNN  # noqa: E402
from cnnmft.pytorch.ensemble import (  # noqa: E402
    EnsembleCNN,
    EnsembleSGD,
    member_batches,
    train_ensemble,
)
from cnnmft.results import Status  # noqa: E402

pytestmark = pytest.mark.torch


def _net(sw, seed, depth=5, channels=4, strides=(1, 2, 2), init="gaussian", t=None, v="uniform"):
    return VanillaCNN(
        depth,
        channels,
        init=init,
        sigma_w2=sw,
        sigma_b2=0.05,
        t=t,
        v=v,
        stem_strides=strides,
        impl="autograd",
        checkpoint_segments=None,
        generator=torch.Generator().manual_seed(seed),
    ).double()


def _alone(net, x, y, batches, lr, optimizer="sgd", momentum=0.9):
    """Train `net` by itself with torch's optimizer on the given index batches."""
    if optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(momentum, 0.999), eps=1e-8)
    losses = []
    for b in batches:
        loss = torch.nn.functional.cross_entropy(net(x[b]), y[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(120, 1, 12, 12, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (120,), generator=g)
    return x, y


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_members_equal_networks_trained_alone(data, optimizer):
    x, y = data
    cfg = [(0.9, 0, 0.05, 0), (1.76, 1, 0.02, 5), (3.0, 2, 0.1, 0), (1.76, 1, 0.2, 9)]
    if optimizer == "adam":
        cfg = [(s, i, lr / 20, d) for s, i, lr, d in cfg]
    nets = [_net(s, i) for s, i, _, _ in cfg]
    steps, bs = 25, 8
    out = train_ensemble(
        nets,
        x,
        y,
        lr=[c[2] for c in cfg],
        steps=steps,
        batch_size=bs,
        seeds=[c[3] for c in cfg],
        optimizer=optimizer,
        eval_sets={"all": (x, y)},
    )
    ens = out["model"]
    idx = member_batches(len(y), bs, [c[3] for c in cfg], steps)
    for g, (s, i, lr, _) in enumerate(cfg):
        ref = _net(s, i)
        losses = _alone(ref, x, y, idx[:, g], lr, optimizer)
        np.testing.assert_allclose(out["loss"][:, g], losses, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(
            ens.block_w[:, g].detach(), ref.block.weight.detach(), rtol=1e-10, atol=1e-12
        )
        np.testing.assert_allclose(
            ens.readout_w[g].detach(), ref.readout.weight.detach(), rtol=1e-10, atol=1e-12
        )
        with torch.no_grad():
            acc = float((ref(x).argmax(1) == y).double().mean())
        assert out["all_accuracy"][g] == pytest.approx(acc, abs=1e-12)
    assert out["status"] == [Status.OK] * len(cfg)


def test_orthogonal_and_profile_members_pack_exactly(data):
    """Members with different kernel initialisations in one ensemble: same function."""
    x, _ = data
    nets = [
        _net(1.76, 0, init="tunable_orthogonal", t=0.0, channels=4),
        _net(1.76, 0, init="tunable_orthogonal", t=0.5, channels=4),
        _net(1.76, 1, init="gaussian", v="tunable", t=0.25, channels=4),
    ]
    ens = EnsembleCNN.from_models(nets)
    with torch.no_grad():
        out = ens(x[:7])
        for g, n in enumerate(nets):
            np.testing.assert_allclose(out[:, g], n(x[:7]), rtol=1e-12, atol=1e-13)


def test_diverging_member_is_frozen_and_others_unaffected(data):
    x, y = data
    cfg = [(1.76, 0, 0.02), (4.0, 1, 0.1), (1.2, 2, 0.05)]
    nets = [_net(s, i) for s, i, _ in cfg]
    with torch.no_grad():  # member 1 turns non-finite on its first step
        nets[1].readout.weight[0, 0] = float("inf")
    steps = 15
    out = train_ensemble(
        nets, x, y, lr=[c[2] for c in cfg], steps=steps, batch_size=8, eval_sets={"all": (x, y)}
    )
    assert out["status"][1] == Status.NONFINITE
    assert out["stopped_at"][1] == 0
    assert np.isnan(out["loss"][out["stopped_at"][1] :, 1]).all()
    assert np.isnan(out["all_accuracy"][1])
    idx = member_batches(len(y), 8, [0, 0, 0], steps)
    for g in (0, 2):
        losses = _alone(_net(cfg[g][0], cfg[g][1]), x, y, idx[:, g], cfg[g][2])
        np.testing.assert_allclose(out["loss"][:, g], losses, rtol=1e-11, atol=1e-12)
        assert out["status"][g] == Status.OK
    assert all(torch.isfinite(p).all() for p in out["model"].parameters())


def test_member_batches_are_epoch_permutations():
    idx = member_batches(10, 4, [0, 0, 7], 5)  # 20 draws = two epochs of 10
    assert idx.shape == (5, 3, 4)
    for g in range(3):
        flat = idx[:, g].ravel()
        assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:]) == list(range(10))
    np.testing.assert_array_equal(idx[:, 0], idx[:, 1])
    assert not np.array_equal(idx[:, 0], idx[:, 2])


def test_bad_input_is_refused(data):
    x, y = data
    nets = [_net(1.0, 0), _net(1.0, 1, depth=3)]
    with pytest.raises(ValueError, match="one shape"):
        EnsembleCNN.from_models(nets)
    with pytest.raises(TypeError, match="VanillaCNN"):
        EnsembleCNN.from_models([])
    ens = EnsembleCNN.from_models([_net(1.0, 0)])
    with pytest.raises(ValueError, match="lr"):
        EnsembleSGD(ens, [-0.1])
    with pytest.raises(ValueError, match="optimizer"):
        EnsembleSGD(ens, [0.1], optimizer="lbfgs")
    with pytest.raises(ValueError, match="seeds"):
        train_ensemble(ens, x, y, lr=0.1, steps=1, seeds=[0, 1])
    with pytest.raises(ValueError, match="x_train"):
        train_ensemble(ens, x[:, 0], y, lr=0.1, steps=1)
    with pytest.raises(ValueError, match="x"):
        ens(torch.zeros(2, 3, 1, 12, 12, dtype=torch.float64))
