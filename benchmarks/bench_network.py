"""cnnmft.network against an independent slow reference and against neural-tangents.

The same layer stack (2D, TF-"SAME" padding, a stride-2 layer, global average pooling, linear
readout) is evaluated by

* ``cnnmft.network.propagate_network`` (ours);
* the brute-force reference of the tests (``tests/_network_reference.py``: Python loops over
  pixel pairs and taps, tensor-product Gauss-Legendre for every bivariate expectation);
* neural-tangents' ``stax`` (NNGP and NTK, 64-bit), run in a separate virtual environment through
  a subprocess (``--peer-python``, default ``/work/nt-venv/bin/python``); skipped with a message
  when it is not installed there.

It reports each one's largest error against the reference and the run times (with the load
average), and writes ``results/bench_network.json``.

Usage: ``python benchmarks/bench_network.py [--peer-python PATH] [--size 6] [--big 16]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cnnmft.network import Act, Conv, Dense, GlobalAvgPool, propagate_network

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "tests"))
import _network_reference as REF  # noqa: E402

SW2, SB2, SW2_OUT, SB2_OUT = 1.7, 0.1, 1.0, 0.05
STRIDES = (1, 2, 1)

PEER = r"""
import json, sys, time
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
from neural_tangents import stax
cfg = json.load(sys.stdin)
acts = {"erf": lambda: stax.Erf(), "relu": lambda: stax.Relu(),
        "tanh": lambda: stax.ElementwiseNumerical(jnp.tanh, deg=cfg["deg"])}
layers = []
for i, s in enumerate(cfg["strides"]):
    if i:
        layers.append(acts[cfg["act"]]())
    layers.append(stax.Conv(1, (3, 3), (s, s), "SAME", W_std=cfg["sw2"] ** 0.5,
                            b_std=cfg["sb2"] ** 0.5))
layers += [acts[cfg["act"]](), stax.GlobalAvgPool(),
           stax.Dense(1, W_std=cfg["sw2_out"] ** 0.5, b_std=cfg["sb2_out"] ** 0.5)]
kernel_fn = stax.serial(*layers)[2]
x = np.array(cfg["x"])
t = time.perf_counter()
k = kernel_fn(x, None, ("nngp", "ntk"))
nngp = np.asarray(k[0]); ntk = np.asarray(k[1])
first = time.perf_counter() - t
t = time.perf_counter()
k = kernel_fn(x, None, ("nngp", "ntk"))
np.asarray(k[0])
again = time.perf_counter() - t
print(json.dumps({"nngp": nngp.tolist(), "ntk": ntk.tolist(), "seconds_first": first,
                  "seconds": again}))
"""


def _ours(x, act, strides=STRIDES):
    net = []
    for i, s in enumerate(strides):
        if i:
            net.append(Act(act))
        net.append(Conv(3, s, "same_tf", SW2, SB2, "uniform"))
    net += [Act(act), GlobalAvgPool(), Dense(SW2_OUT, SB2_OUT)]
    t = time.perf_counter()
    r = propagate_network(x, net, store="last", backward=False)  # NNGP and NTK, as the peer
    return r.nngp, r.ntk_out, time.perf_counter() - t


def _reference(x, act, strides=STRIDES):
    net = []
    for i, s in enumerate(strides):
        if i:
            net.append(("act", act))
        net.append(("conv", (3, 3), (s, s), "same_tf", SW2, np.full(9, 1 / 9), SB2))
    net += [("act", act), ("gap",), ("dense", SW2_OUT, SB2_OUT)]
    t = time.perf_counter()
    K, T, _ = REF.forward(x, net)
    return K, T, time.perf_counter() - t


def _peer(python, x, act, strides=STRIDES, deg=25):
    if not Path(python).exists():
        return None, f"no peer interpreter at {python}"
    cfg = {
        "x": x.tolist(),
        "act": act,
        "strides": list(strides),
        "sw2": SW2,
        "sb2": SB2,
        "sw2_out": SW2_OUT,
        "sb2_out": SB2_OUT,
        "deg": deg,
    }
    try:
        out = subprocess.run(
            [python, "-c", PEER],
            input=json.dumps(cfg),
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"peer failed: {exc}"
    if out.returncode != 0:
        return None, "peer failed: " + out.stderr.strip().splitlines()[-1]
    return json.loads(out.stdout.strip().splitlines()[-1]), ""


def _err(a, ref):
    return float(np.max(np.abs(np.asarray(a) - ref)) / np.max(np.abs(ref)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer-python", default="/work/nt-venv/bin/python")
    ap.add_argument("--size", type=int, default=6, help="map size of the accuracy comparison")
    ap.add_argument("--big", type=int, default=16, help="map size of the speed comparison")
    ap.add_argument("--out", default=str(HERE / "results" / "bench_network.json"))
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, a.size, a.size, 3))
    rows, note = [], ""
    for act in ("erf", "relu", "tanh"):
        _ours(x[:, :4, :4], act)  # warm up (numba cache loads)
        on, ot, o_s = _ours(x, act)
        rn, rt, r_s = _reference(x, act)
        row = {
            "act": act,
            "size": a.size,
            "ours_err_nngp": _err(on, rn),
            "ours_err_ntk": _err(ot, rt),
            "ours_seconds": o_s,
            "reference_seconds": r_s,
        }
        peer, note = _peer(a.peer_python, x, act)
        if peer is not None:
            row.update(
                peer_err_nngp=_err(peer["nngp"], rn),
                peer_err_ntk=_err(peer["ntk"], rt),
                peer_seconds=peer["seconds"],
                peer_seconds_first=peer["seconds_first"],
            )
        rows.append(row)
        print(row, flush=True)
    speed = []
    xb = rng.normal(size=(2, a.big, a.big, 3))
    for act in ("erf", "tanh"):
        _, _, o_s = _ours(xb, act)
        row = {"act": act, "size": a.big, "ours_seconds": o_s}
        peer, note = _peer(a.peer_python, xb, act)
        if peer is not None:
            row.update(
                peer_seconds=peer["seconds"],
                peer_seconds_first=peer["seconds_first"],
                speed_ratio=peer["seconds"] / o_s,
            )
        speed.append(row)
        print(row, flush=True)
    res = {
        "accuracy": rows,
        "speed": speed,
        "peer_note": note,
        "load_average": os.getloadavg(),
        "stack": f"SAME conv strides {STRIDES}, 3x3 uniform v, ({SW2}, {SB2}), GAP, "
        f"Dense({SW2_OUT}, {SB2_OUT}), 2 inputs",
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    if note:
        print(note)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
