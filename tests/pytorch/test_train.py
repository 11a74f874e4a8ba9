"""train(TrainConfig): learning, depth-1000 gradient flow, resume, NaN stop, datasets."""

import gzip
import json
import pickle
import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cnnmft.pytorch.checkpoint import load_checkpoint  # noqa: E402
from cnnmft.pytorch.data import load_dataset, read_idx  # noqa: E402
from cnnmft.pytorch.train import TrainConfig, TrainResult, train  # noqa: E402
from cnnmft.results import Status  # noqa: E402

# tiny runs on 60 test images are not meant to learn: the at-chance warning is expected there
pytestmark = pytest.mark.filterwarnings("ignore:ended at chance:RuntimeWarning")

SMALL = dict(
    channels=4,
    stem_strides=(1, 2, 2),
    batch_size=16,
    max_train=64,
    max_test=60,
    eval_every=0,
    num_threads=1,
    plots=False,
)


def test_depth_1000_delta_orthogonal_gradients_flat_and_loss_falls():
    # CI-sized 10,000-layer check (issue 7 §4): full-batch steps on 64 digits, depth 1,000
    res = train(
        TrainConfig(
            depth=1000,
            channels=8,
            stem_strides=(1, 2, 2),
            batch_size=64,
            max_train=64,
            max_test=60,
            optimizer="adam",
            lr=2e-4,
            steps=6,
            eval_every=0,
            num_threads=1,
            plots=False,
        ),
        progress=False,
    )
    g = res.init_grad_norms
    assert g.shape == (1000,) and np.all(np.isfinite(g)) and np.all(g > 0)
    assert 0.1 <= g[0] / g[-1] <= 10.0  # dynamical isometry: no vanishing/exploding
    assert res.loss[-1] < res.loss[0]  # full batch, so the decrease is not noise
    # six steps: the loss falls, the accuracy may still be at chance (and then says so)
    assert res.status in (Status.OK, Status.AT_CHANCE)


def test_depth_1000_gaussian_gradients_vanish():
    res = train(
        TrainConfig(
            depth=1000,
            channels=8,
            init="gaussian",
            stem_strides=(1, 2, 2),
            batch_size=64,
            max_train=64,
            max_test=60,
            steps=1,
            eval_every=0,
            num_threads=1,
            plots=False,
        ),
        progress=False,
    )
    g = res.init_grad_norms
    assert g[0] / g[-1] < 1e-3


def test_training_learns_digits_above_chance():
    res = train(
        TrainConfig(
            depth=3,
            channels=16,
            stem_strides=(1, 2),
            batch_size=32,
            optimizer="adam",
            lr=3e-3,
            steps=60,
            eval_every=30,
            max_test=200,
            num_threads=1,
            plots=False,
        ),
        progress=False,
    )
    # chance is 0.1; a 3-layer CNN reaches > 0.5 within 60 Adam steps on the 8x8 digits
    assert res.test_accuracy > 0.5
    assert list(res.eval_step) == [0, 30, 60]
    assert res.loss.shape == (60,) and res.grad_norms.shape == (60, 3)
    assert list(res.grad_norm_layers) == [1, 2, 3]


def test_outputs_checkpoint_and_resume_continue_the_same_run(tmp_path):
    cfg = TrainConfig(
        depth=5, steps=8, checkpoint_every=2, out_dir=str(tmp_path / "a"), dtype="float64", **SMALL
    )
    full = train(cfg, progress=False)
    for name in ("steps.csv", "eval.csv", "result.json", "checkpoint.pt"):
        assert (tmp_path / "a" / name).is_file()
    assert not list((tmp_path / "a").glob("*.tmp"))
    again = TrainResult.load(tmp_path / "a" / "result.json")
    np.testing.assert_array_equal(again.loss, full.loss)
    # interrupted after 3 steps, then resumed to 8: identical losses and parameters
    b = tmp_path / "b"
    first = train(
        TrainConfig(depth=5, steps=3, checkpoint_every=1, out_dir=str(b), dtype="float64", **SMALL),
        progress=False,
    )
    assert first.steps_done == 3
    resumed = train(
        TrainConfig(
            depth=5,
            steps=8,
            checkpoint_every=2,
            out_dir=str(b),
            dtype="float64",
            resume=True,
            **SMALL,
        ),
        progress=False,
    )
    assert resumed.steps_done == 8
    np.testing.assert_array_equal(resumed.loss, full.loss)
    sa = load_checkpoint(tmp_path / "a" / "checkpoint.pt")["model"]
    sb = load_checkpoint(b / "checkpoint.pt")["model"]
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    rows = (b / "steps.csv").read_text().strip().splitlines()
    assert len(rows) == 9 and rows[0].startswith("step,loss,lr,grad_norm_layer_1")


def test_resume_refuses_another_run(tmp_path):
    train(
        TrainConfig(depth=3, steps=2, checkpoint_every=1, out_dir=str(tmp_path), **SMALL),
        progress=False,
    )
    with pytest.raises(ValueError, match="depth"):
        train(
            TrainConfig(depth=4, steps=3, out_dir=str(tmp_path), resume=True, **SMALL),
            progress=False,
        )


def test_non_finite_loss_stops_cleanly(tmp_path):
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = train(
            TrainConfig(
                depth=3,
                steps=50,
                optimizer="sgd",
                lr=1e12,
                momentum=0.0,
                init="gaussian",
                sigma_w2=1.0,
                sigma_b2=0.0,
                act="linear",
                out_dir=str(tmp_path),
                **SMALL,
            ),
            progress=False,
        )
    assert res.status == Status.NONFINITE and not res.success
    assert "non-finite" in res.message or "nan" in res.message.lower() or "inf" in res.message
    assert res.steps_done < 50
    assert np.all(np.isfinite(res.loss)) and len(res.loss) == res.steps_done
    text = (tmp_path / "steps.csv").read_text().lower()
    assert "nan" not in text and "inf" not in text
    assert json.loads((tmp_path / "result.json").read_text())["status"] == int(Status.NONFINITE)


def test_schedules_and_float64():
    res = train(
        TrainConfig(
            depth=2, steps=10, schedule="cosine", warmup_steps=2, lr=0.1, dtype="float64", **SMALL
        ),
        progress=False,
    )
    lr = res.lr
    np.testing.assert_allclose(lr[:2], [0.05, 0.1])
    # cosine from step 2 to 10: 0.1 * (1 + cos(pi * (s - 2) / 8)) / 2
    s = np.arange(2, 10)
    np.testing.assert_allclose(lr[2:], 0.05 * (1 + np.cos(np.pi * (s - 2) / 8)), rtol=1e-12)
    step = train(TrainConfig(depth=2, steps=8, schedule="step", lr=1.0, **SMALL), progress=False)
    np.testing.assert_allclose(step.lr, [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-12)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="optimizer"):
        train(TrainConfig(optimizer="lbfgs"), progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(TrainConfig(lr=-1.0), progress=False)
    with pytest.raises(ValueError, match="out_dir"):
        train(TrainConfig(resume=True), progress=False)
    with pytest.raises(ValueError, match="dtype"):
        train(TrainConfig(dtype="float16"), progress=False)


# ------------------------------------------------------------------------------------ datasets


def test_digits_split_is_stratified_and_standardised():
    d = load_dataset("digits", test_fraction=0.2, seed=0)
    assert d.x_train.shape[1:] == (1, 8, 8) and d.x_train.dtype == np.float32
    assert len(d.y_train) + len(d.y_test) == 1797
    assert abs(len(d.y_test) - 0.2 * 1797) <= 1
    np.testing.assert_allclose(d.x_train.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(d.x_train.std(), 1.0, atol=1e-4)
    counts = np.bincount(d.y_test, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38


def _write_idx(path, array, magic_type=0x08, gz=False):
    head = struct.pack(">HBB", 0, magic_type, array.ndim) + struct.pack(
        ">" + "I" * array.ndim, *array.shape
    )
    data = head + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def _fake_mnist(d, n_train=20, n_test=10, gz=True):
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    _write_idx(d / f"train-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_train, 28, 28)), gz=gz)
    _write_idx(d / f"train-labels-idx1-ubyte{sfx}", rng.integers(0, 10, n_train), gz=gz)
    _write_idx(d / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_test, 28, 28)), gz=gz)
    _write_idx(d / f"t10k-labels-idx1-ubyte{sfx}", rng.integers(0, 10, n_test), gz=gz)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_files(tmp_path, gz):
    _fake_mnist(tmp_path, gz=gz)
    d = load_dataset("mnist", tmp_path)
    assert d.x_train.shape == (20, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
    raw = read_idx(tmp_path / ("train-labels-idx1-ubyte" + (".gz" if gz else "")))
    np.testing.assert_array_equal(d.y_train, raw)


def test_mnist_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        _fake_mnist(tmp_path)
        (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
        load_dataset("mnist", tmp_path)
    _fake_mnist(tmp_path)
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(b"\x00\x00\x08\x03" + struct.pack(">III", 10, 28, 28) + b"\x00" * 100)
    with pytest.raises(ValueError, match="dimension sizes"):
        load_dataset("mnist", tmp_path)
    with gzip.open(bad, "wb") as fh:
        fh.write(b"\x12\x34\x56\x78" + b"\x00" * 100)
    with pytest.raises(ValueError, match="magic"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(FileNotFoundError, match="data_dir"):
        load_dataset("mnist")


def test_cifar10_batches(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(base / name, "wb") as fh:
            pickle.dump(
                {
                    b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                    b"labels": list(rng.integers(0, 10, 4)),
                },
                fh,
            )
    d = load_dataset("cifar10", tmp_path)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    with open(base / "test_batch", "wb") as fh:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, fh)
    with pytest.raises(ValueError, match="malformed"):
        load_dataset("cifar10", tmp_path)
    (base / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_dataset("cifar10", tmp_path)


@pytest.mark.slow
def test_ten_thousand_layer_check_ci_size(tmp_path):
    # the benchmark script at CI size (depths 4 and 40, 12 steps): every run, control and
    # number is produced, the frozen block does not move, and a rerun resumes instead of redoing
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "ten_thousand_layers.py"
    spec = importlib.util.spec_from_file_location("ten_thousand_layers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--quick", "--out", str(tmp_path)]) == 0
    numbers = json.loads((tmp_path / "numbers.json").read_text())
    runs = numbers["runs"]
    assert set(runs) == {f"{k}_depth{d}" for k in ("delta", "frozen", "gaussian") for d in (4, 40)}
    assert runs["frozen_depth40"]["weight_movement_max"] == 0.0
    assert runs["delta_depth40"]["weight_movement_median"] > 0.0
    assert runs["delta_depth4"]["seeds"] == 2 and runs["delta_depth40"]["seeds"] == 1
    assert len(numbers["linear_same_budget"]) == 2
    assert (tmp_path / "ten_thousand_layers.png").is_file()
    before = (tmp_path / "runs" / "delta_depth40_seed0" / "result.json").read_bytes()
    assert mod.main(["--quick", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "runs" / "delta_depth40_seed0" / "result.json").read_bytes() == before


@pytest.mark.slow
def test_gpu_paper_scale_smoke_on_cpu(tmp_path):
    import importlib.util
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "benchmarks"
    sys.path.insert(0, str(bench))
    try:
        spec = importlib.util.spec_from_file_location(
            "gpu_paper_scale", bench / "gpu_paper_scale.py"
        )
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        assert mod.main(["--smoke", "--out", str(tmp_path)]) == 0
    finally:
        sys.path.remove(str(bench))
    numbers = json.loads((tmp_path / "numbers.json").read_text())
    assert numbers["impl"] in ("autograd", "fused")
    assert set(numbers["phases"]["training"]) == {
        "delta_depth12_seed0",
        "frozen_depth12_seed0",
        "gaussian_depth12_seed0",
    }
    assert (tmp_path / "gpu_paper_scale.png").is_file()


@pytest.mark.filterwarnings("ignore:diverged:RuntimeWarning")
def test_cli_train_writes_outputs_and_resumes(tmp_path, capsys):
    from cnnmft.cli import main

    out = tmp_path / "cli"
    args = [
        "train",
        "--depth",
        "3",
        "--channels",
        "4",
        "--stem-strides",
        "1",
        "2",
        "--batch-size",
        "16",
        "--max-train",
        "64",
        "--max-test",
        "40",
        "--eval-every",
        "0",
        "--threads",
        "1",
        "--quiet",
        "--no-plots",
        "--out",
        str(out),
    ]
    # 2-4 steps end at chance: exit code 3 and the status say so (not "finished")
    assert main(args + ["--steps", "2", "--checkpoint-every", "1"]) in (0, 3)
    code = main(args + ["--steps", "4", "--resume"])
    res = TrainResult.load(out / "result.json")
    assert res.steps_done == 4 and len(res.loss) == 4
    assert (code, res.status) in ((0, Status.OK), (3, Status.AT_CHANCE))
    assert "train acc" in capsys.readouterr().out
    # a diverging run exits with code 3 (non-finite loss), not with a traceback
    bad = [
        "train",
        "--depth",
        "2",
        "--channels",
        "4",
        "--stem-strides",
        "1",
        "--act",
        "linear",
        "--init",
        "gaussian",
        "--sigma-w2",
        "1",
        "--sigma-b2",
        "0",
        "--lr",
        "1e12",
        "--momentum",
        "0",
        "--steps",
        "50",
        "--max-train",
        "64",
        "--max-test",
        "20",
        "--eval-every",
        "0",
        "--quiet",
        "--no-plots",
        "--threads",
        "1",
    ]
    assert main(bad) == 3


def test_threads_follow_a_fixed_policy_count_else_one(monkeypatch):
    """num_threads=None (the default): the count fixed by CNNMFT_NUM_THREADS or
    cnnmft.set_num_threads, else one thread; an explicit num_threads wins; torch's own count
    is restored after each run."""
    import cnnmft

    seen = []

    def record(step, metrics):
        seen.append(torch.get_num_threads())
        return True  # one step is enough

    small = {**SMALL, "num_threads": None, "depth": 2, "steps": 3}
    before = torch.get_num_threads()
    monkeypatch.delenv("CNNMFT_NUM_THREADS", raising=False)
    train(TrainConfig(**small), progress=False, callback=record)
    monkeypatch.setenv("CNNMFT_NUM_THREADS", "2")
    train(TrainConfig(**small), progress=False, callback=record)
    train(TrainConfig(**{**small, "num_threads": 1}), progress=False, callback=record)
    assert torch.get_num_threads() == before
    monkeypatch.delenv("CNNMFT_NUM_THREADS")
    try:
        cnnmft.set_num_threads(2)
        train(TrainConfig(**small), progress=False, callback=record)
    finally:
        cnnmft.set_num_threads(None)
    assert seen == [1, 2, 1, 2]
