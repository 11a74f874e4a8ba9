"""Data-parallel training: 2 gloo processes under torchrun equal one process with the batch."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from cnnmft.pytorch.checkpoint import load_checkpoint  # noqa: E402
from cnnmft.pytorch.train import TrainConfig, TrainResult, train  # noqa: E402
from cnnmft.results import Status  # noqa: E402

ARGS = [
    "--depth",
    "6",
    "--channels",
    "4",
    "--stem-strides",
    "1",
    "2",
    "--batch-size",
    "16",
    "--steps",
    "4",
    "--lr",
    "0.05",
    "--max-train",
    "64",
    "--max-test",
    "40",
    "--eval-every",
    "0",
    "--dtype",
    "float64",
    "--threads",
    "1",
    "--quiet",
    "--no-plots",
]


def _check_exit(proc, res):
    # a few steps may end at chance: the ranks then exit with code 3 (torchrun reports 1) and
    # the result says AT_CHANCE; anything else must exit 0
    if res.status == Status.AT_CHANCE:
        assert proc.returncode != 0 and "ended at chance" in proc.stdout + proc.stderr
    else:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _run_torchrun(out, *extra):
    """``cnnmft train`` under torchrun, 2 gloo processes, `ARGS` + `extra`."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "0",
        "--rdzv_backend",
        "c10d",
        "--rdzv_endpoint",
        "localhost:0",
        "-m",
        "cnnmft",
        "train",
        *ARGS,
        "--out",
        str(out),
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    res = TrainResult.load(out / "result.json")
    _check_exit(proc, res)
    return res


def _single_process(steps, **kw):
    """The one-process run of the same settings as `ARGS`, for `steps` steps."""
    return train(
        TrainConfig(
            depth=6,
            channels=4,
            stem_strides=(1, 2),
            batch_size=16,
            steps=steps,
            lr=0.05,
            max_train=64,
            max_test=40,
            eval_every=0,
            dtype="float64",
            num_threads=1,
            plots=False,
            **kw,
        ),
        progress=False,
    )


@pytest.mark.filterwarnings("ignore:ended at chance:RuntimeWarning")
def test_ddp_two_gloo_processes_match_single_process(tmp_path):
    out = tmp_path / "ddp"
    ddp = _run_torchrun(out)
    single = _single_process(4, out_dir=str(tmp_path / "single"))
    assert ddp.steps_done == 4
    # the same global batches and averaged gradients: identical up to float64 reduction order
    np.testing.assert_allclose(ddp.loss, single.loss, rtol=1e-10)
    np.testing.assert_allclose(ddp.grad_norms, single.grad_norms, rtol=1e-9)
    assert ddp.test_accuracy == pytest.approx(single.test_accuracy)
    # rank 0 wrote the checkpoint; its parameters equal the single-process run's
    state = load_checkpoint(out / "checkpoint.pt")
    ref = load_checkpoint(tmp_path / "single" / "checkpoint.pt")
    assert state["step"] == 4 and json.loads(ddp.config)["steps"] == 4
    for k, v in ref["model"].items():
        torch.testing.assert_close(state["model"][k], v, rtol=1e-10, atol=1e-13)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:ended at chance:RuntimeWarning")
def test_ddp_resume_is_decided_on_rank_0(tmp_path):
    # rank 0 reads and checks the checkpoint and broadcasts the state: the resumed two-process
    # run ends where one uninterrupted process does
    out = tmp_path / "ddp"
    for extra in ([], ["--steps", "6", "--resume"]):
        ddp = _run_torchrun(out, "--checkpoint-every", "1", *extra)
    single = _single_process(6)
    assert ddp.steps_done == 6
    np.testing.assert_allclose(ddp.loss, single.loss, rtol=1e-10)
