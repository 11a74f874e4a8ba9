"""neural-tangents peer for the covariance cases, run by the suite in neural-tangents' own venv.

Usage (the suite does this): ``NT_PYTHON benchmarks/_suite_peer_nt.py CASE DEPTH REPEAT OUT.npz``
with CASE one of ``tanh``, ``erf``, ``erf_batch4``. It builds the same network as the cnnmft
case (circular 3x3 convolutions, one channel in the kernel limit, W_std^2 = sigma_w2 spread
uniformly over the taps, b_std^2 = sigma_b2; tanh by neural-tangents' Gauss-Hermite
``ElementwiseNumerical`` (deg 25, its default), erf by its closed form), its deep part as one
compiled loop (``stax.repeat``), times the jitted NNGP kernel function (first call with XLA
compile, then the best of REPEAT warm calls), saves the final covariance to OUT.npz (in
cnnmft's axis order) and prints one JSON line. Imports nothing from cnnmft.
"""

import json
import sys
import time

import numpy as np

SW, SB = 1.760955, 0.05


def main():
    case, depth, repeat, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from neural_tangents import stax

    def conv():
        return stax.Conv(1, (3, 3), padding="CIRCULAR", W_std=SW**0.5, b_std=SB**0.5)

    def act():
        if case.startswith("erf"):
            return stax.Erf()
        return stax.ElementwiseNumerical(jnp.tanh, deg=25)

    # depth convolutions with an activation between each two: neural-tangents' compiled loop
    # (stax.repeat) over pairs of (activation, convolution), its advice for deep networks (an
    # unrolled serial of 128 layers took longer than 25 minutes to compile); a pair keeps the
    # kernel's layout, which one circular convolution flips
    head = [conv()] if depth % 2 else [conv(), act(), conv()]  # 1 or 2 convolutions
    pairs = (depth - (1 if depth % 2 else 2)) // 2
    block = stax.serial(act(), conv(), act(), conv())
    layers = head + ([stax.repeat(block, pairs)] if pairs else [])
    _, _, kernel_fn = stax.serial(*layers)
    kernel_fn = jax.jit(kernel_fn, static_argnames="get")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 8, 8, 3) if case == "erf_batch4" else (1, 8, 8, 3))
    x = jnp.asarray(x)
    t = time.perf_counter()
    k = np.asarray(kernel_fn(x, None, get="nngp"))
    first = time.perf_counter() - t
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        kernel_fn(x, None, get="nngp").block_until_ready()
        times.append(time.perf_counter() - t)
    # neural-tangents orders full spatial covariances (N1, N2, H, H, W, W); cnnmft's order is
    # (N1, N2, H, W, H, W)
    np.savez(out, cov=k.transpose(0, 1, 2, 4, 3, 5))
    print(
        json.dumps(
            {
                "name": f"neural-tangents {_version()} (jax {jax.__version__}, x64)",
                "first_s": first,
                "s": min(times),
                "median_s": float(np.median(times)),
                "shape": list(k.shape),
            }
        )
    )


def _version():
    try:
        import neural_tangents

        return neural_tangents.__version__
    except Exception:  # pragma: no cover
        return "?"


if __name__ == "__main__":
    main()
