"""Checkpoints: safe to load, checksummed, atomic; a SIGKILLed run resumes bit-identically."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cnnmft.pytorch import checkpoint as C  # noqa: E402
from cnnmft.pytorch.train import TrainConfig, train  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:ended at chance:RuntimeWarning")

SMALL = dict(channels=4, batch_size=16, eval_every=0, max_train=200, max_test=60, plots=False)


def _state():
    return {
        "w": torch.arange(6.0).reshape(2, 3),
        "step": 3,
        "hist": {"loss": [1.5, 1.25]},
        "name": "x",
        "gen": torch.Generator().manual_seed(1).get_state(),
    }


def test_roundtrip_and_weights_only(tmp_path):
    p = C.save_checkpoint(_state(), tmp_path / "c.pt")
    s = C.load_checkpoint(p)
    assert torch.equal(s["w"], torch.arange(6.0).reshape(2, 3))
    assert s["step"] == 3 and s["hist"] == {"loss": [1.5, 1.25]} and s["name"] == "x"
    # the payload after the header is a plain torch file that weights_only accepts
    raw = p.read_bytes()
    head = len(C.MAGIC) + 65
    import io

    torch.load(io.BytesIO(raw[head:]), weights_only=True)


@pytest.mark.parametrize("damage", ["empty", "truncated", "flipped", "foreign", "header"])
def test_damaged_checkpoint_refused_naming_the_file(tmp_path, damage):
    p = C.save_checkpoint(_state(), tmp_path / "c.pt")
    raw = bytearray(p.read_bytes())
    if damage == "empty":
        raw = b""
    elif damage == "truncated":
        raw = raw[: len(raw) // 2]
    elif damage == "flipped":
        raw[-40] ^= 0x01
    elif damage == "foreign":
        raw = b"PK\x03\x04 not ours" + bytes(100)
    else:
        raw = raw[: len(C.MAGIC) + 10]
    p.write_bytes(bytes(raw))
    with pytest.raises(C.CheckpointError, match="c.pt"):
        C.load_checkpoint(p)


def test_payload_that_would_run_code_is_refused(tmp_path):
    # a valid header and checksum around a pickle that calls os.system: weights_only refuses it
    import hashlib
    import pickle

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps({"x": Evil()})
    digest = hashlib.sha256(payload).hexdigest().encode()
    p = tmp_path / "evil.pt"
    p.write_bytes(C.MAGIC + digest + b"\n" + payload)
    with pytest.raises(C.CheckpointError, match="evil.pt"):
        C.load_checkpoint(p)
    assert not marker.exists()


def test_load_latest_falls_back_to_previous_good(tmp_path):
    p = tmp_path / "c.pt"
    assert C.load_latest(p) is None
    C.save_checkpoint({"step": 1}, p)
    C.save_checkpoint({"step": 2}, p)
    assert C.load_latest(p)[0]["step"] == 2
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.warns(RuntimeWarning, match="previous good checkpoint"):
        state, where = C.load_latest(p)
    assert state["step"] == 1 and where == C.previous_path(p)
    C.previous_path(p).write_bytes(b"")
    with pytest.raises(C.CheckpointError, match="no good checkpoint"):
        C.load_latest(p)


def test_resume_refuses_a_corrupted_run(tmp_path):
    cfg = TrainConfig(depth=3, steps=2, checkpoint_every=1, out_dir=str(tmp_path), **SMALL)
    train(cfg, progress=False)
    for f in ("checkpoint.pt", "checkpoint.pt.prev"):
        raw = bytearray((tmp_path / f).read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        (tmp_path / f).write_bytes(bytes(raw))
    with pytest.raises(C.CheckpointError, match="checkpoint.pt"):
        train(dataclasses.replace(cfg, steps=4, resume=True), progress=False)


_CHILD = textwrap.dedent("""
    import sys, json
    from cnnmft.pytorch.train import TrainConfig, train
    cfg = TrainConfig(**json.loads(sys.argv[1]))
    train(cfg, progress=False)
""")


def _final_state(out):
    s = C.load_checkpoint(out / "checkpoint.pt")
    return s


@pytest.mark.slow
def test_sigkill_at_random_moments_resumes_bit_identical(tmp_path):
    settings = dict(
        depth=6, steps=150, checkpoint_every=1, seed=3, resume=True, num_threads=1, **SMALL
    )
    ref = train(TrainConfig(out_dir=str(tmp_path / "ref"), **settings), progress=False)
    out = tmp_path / "killed"
    rng = np.random.default_rng(0)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    kills = 0
    for _attempt in range(30):
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(dict(out_dir=str(out), **settings))], env=env
        )
        time.sleep(float(rng.uniform(2.0, 5.0)))  # imports take ~2 s, 150 steps ~2-4 s
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        done = (out / "result.json").is_file()
        if done and proc.returncode == 0:
            break
    assert kills >= 1
    final = train(TrainConfig(out_dir=str(out), **settings), progress=False)
    assert final.steps_done == ref.steps_done == 150
    np.testing.assert_array_equal(final.loss, ref.loss)
    np.testing.assert_array_equal(final.test_acc, ref.test_acc)
    a, b = _final_state(tmp_path / "ref"), _final_state(out)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
