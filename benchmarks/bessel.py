"""Throughput of log_iv / log_kv against SciPy's ive / kve.

    python benchmarks/bessel.py                       # CPU, float64, 1e6 elements
    python benchmarks/bessel.py --size 16777216 --dtypes float64 float32   # GPU

Prints elements per second of ours (jit, compiled beforehand, median of
--repeats runs) and of SciPy (``scipy.special.ive``/``kve`` on the host, the
same elements, float64) in the same run, and the ratio ours / SciPy.
"""

import argparse
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import scipy.special as sp

from sciax import numerics


def families(size, rng):
    broad_v = 10 ** rng.uniform(-2, 4, size)
    broad_x = 10 ** rng.uniform(-6, 4, size)
    vmf_v = rng.choice([1023.0, 4095.0, 16383.0], size)
    vmf_x = 10 ** rng.uniform(0, 5, size)
    moderate_v = rng.uniform(0, 50, size)
    moderate_x = 10 ** rng.uniform(-2, 2, size)
    return {
        "broad": (broad_v, broad_x),
        "vmf": (vmf_v, vmf_x),
        "moderate": (moderate_v, moderate_x),
    }


def time_ours(function, v, x, repeats):
    function(v, x).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(v, x).block_until_ready()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_scipy(function, v, x, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(v, x)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", nargs="+", default=["float64"])
    parser.add_argument(
        "--scipy-size",
        type=int,
        default=None,
        help="elements for SciPy (default: --size, capped at 2**20)",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    device = jax.devices()[0]
    print(f"# {' '.join(sys.argv)}")
    print(f"# device: {device.platform} {device.device_kind}, jax {jax.__version__}")
    scipy_size = args.scipy_size or min(args.size, 2**20)
    header = f"{'family':9} {'function':7} {'dtype':8} {'ours el/s':>12} {'scipy el/s':>12} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    pairs = [("log_iv", numerics.log_iv, sp.ive), ("log_kv", numerics.log_kv, sp.kve)]
    for family, (v, x) in families(args.size, rng).items():
        for name, ours, theirs in pairs:
            scipy_time = time_scipy(
                theirs, v[:scipy_size], x[:scipy_size], args.repeats
            )
            scipy_rate = scipy_size / scipy_time
            for dtype in args.dtypes:
                vd = jnp.asarray(v, dtype)
                xd = jnp.asarray(x, dtype)
                rate = args.size / time_ours(ours, vd, xd, args.repeats)
                print(
                    f"{family:9} {name:7} {dtype:8} {rate:12.3e} {scipy_rate:12.3e} "
                    f"{rate / scipy_rate:7.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
