"""Border effects of zero padding against the circular theory, as a function of the map size.

For a 2D tanh CNN with 3x3 uniform kernels, stride 1, started at the circular fixed point, after
``--depth`` zero-padded layers: the per-pixel variance profile, the spectral radii of the
linearised variance / correlation / gradient maps (the depth scales) and the singular values of
the backward per-pixel map (mean-field Jacobian gains) against ``chi_q``, ``chi_c``, ``chi_1``
and ``chi_1 |lam_f|`` of the circular theory. Writes ``results/network_border.json`` (all
numbers) and ``results/network_border.png``.

Usage: ``python benchmarks/network_border.py [--depth 30] [--sizes 4 6 8 12 16]``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from cnnmft import variance_profile
from cnnmft.network import border_effects

POINTS = {
    "ordered (1.5, 0.05)": (1.5, 0.05),
    "critical (1.760955, 0.05)": (1.760955, 0.05),
    "chaotic (2.5, 0.05)": (2.5, 0.05),
}


def run(sizes, depth):
    v = variance_profile("uniform", (3, 3))
    out = {}
    for name, (sw, sb) in POINTS.items():
        t = time.perf_counter()
        b = border_effects("tanh", sw, sb, v, sizes, depth=depth, progress=True)
        out[name] = {
            "sigma_w2": sw,
            "sigma_b2": sb,
            "seconds": time.perf_counter() - t,
            **{
                k: (
                    val.tolist()
                    if isinstance(val, np.ndarray)
                    else {kk: np.asarray(vv).tolist() for kk, vv in val.items()}
                    if isinstance(val, dict)
                    else val
                )
                for k, val in b.to_dict().items()
            },
        }
    return out


def plot(res, path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 4, figsize=(17, 3.8))
    for name, r in res.items():
        sizes = np.array(r["sizes"])
        big = str(sizes[-1])
        q = np.array(r["q_map"][big])
        ax[0].plot(q[q.shape[0] // 2], marker=".", label=f"{name}, n={big}")
        line = ax[1].plot(sizes, r["gain_grad"], "o-", label=f"{name}: zero padding")[0]
        ax[1].axhline(r["chi_1"], color=line.get_color(), ls="--", lw=0.8)
        deficit = 1.0 - np.array(r["gain_grad"]) / r["chi_1"]
        ax[2].plot(sizes, deficit, "o-", color=line.get_color(), label=f"{name}: gradient")
        ax[2].plot(
            sizes,
            1.0 - np.array(r["gain_c"]) / r["chi_c"],
            "s:",
            color=line.get_color(),
            label=f"{name}: correlation",
        )
        mid = str(sizes[len(sizes) // 2])
        ax[3].plot(
            np.clip(r["grad_sv"][mid], 1e-6, None),
            color=line.get_color(),
            label=f"{name} zero, n={mid}",
        )
        ax[3].plot(r["grad_sv_circular"][mid], color=line.get_color(), ls="--")
    ax[0].set(xlabel="column (central row)", ylabel="q / q*", title="fixed point near the border")
    ax[1].set(xlabel="map size n", ylabel="spectral radius", title="backward gain (dashed: chi_1)")
    ax[2].set(
        xlabel="map size n",
        ylabel="1 - gain / chi",
        xscale="log",
        yscale="log",
        title="shortfall of the gains below circular",
    )
    ax[3].set(
        xlabel="rank",
        ylabel="singular value (clipped at 1e-6)",
        yscale="log",
        title="per-pixel Jacobian gains (dashed: chi_1|lam_f|)",
    )
    for a in ax:
        a.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=30)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 6, 8, 12, 16])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--plot-only", action="store_true", help="redraw from the saved numbers")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if a.plot_only:
        res = json.loads((out / "network_border.json").read_text())
    else:
        res = run(a.sizes, a.depth)
        res["_meta"] = {"load_average": os.getloadavg(), "depth": a.depth}
        out.mkdir(parents=True, exist_ok=True)
        (out / "network_border.json").write_text(json.dumps(res, indent=1))
    plot({k: v for k, v in res.items() if not k.startswith("_")}, out / "network_border.png")
    print(f"wrote {out / 'network_border.json'} and network_border.png")


if __name__ == "__main__":
    main()
