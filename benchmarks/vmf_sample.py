"""Throughput of VonMisesFisher.sample, the cost of its gradient, and compile times.

    python benchmarks/vmf_sample.py                  # CPU, d = 3 10 100, 1e5 samples
    python benchmarks/vmf_sample.py --dims 3 --kappas 1 1000 --repeats 3

For each dtype, dimension d and concentration kappa, one distribution with a
generic mean direction draws ``--size`` samples (``sample(key, (size,))``).
Two programs are compiled, each timed from cold caches (trace, lower and
compile):

- forward: the samples and the loss L = mean((a.x)^2) of them;
- value_and_grad: L and its gradient in kappa and in the mean direction,
  through the sampler (implicit reparameterisation of w = mu.x).

Then each runs ``--repeats`` times on fresh keys (after one warm-up run) and
the median is reported as samples per second; "grad/fwd" is the ratio of the
two run times: the price of the implicit derivative (one quadrature per
sample, in marginal_slope) and of the reverse pass.
"""

import argparse
import os
import sys
import time

os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_enable_compilation_cache", False)
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from sciax import numerics


def programs(size):
    def loss(kappa, mean_direction, a, key):
        x = numerics.VonMisesFisher(mean_direction, kappa).sample(key, (size,))
        return jnp.mean((x @ a) ** 2)

    forward = jax.jit(loss)
    gradient = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    return forward, gradient


def compile_seconds(function, *args):
    jax.clear_caches()
    start = time.perf_counter()
    compiled = jax.jit(function).lower(*args).compile()
    return compiled, time.perf_counter() - start


def run_seconds(compiled, args, repeats):
    kappa, mean_direction, a, key = args
    jax.block_until_ready(compiled(kappa, mean_direction, a, key))
    times = []
    for i in range(repeats):
        fresh = jr.fold_in(key, i + 1)
        start = time.perf_counter()
        jax.block_until_ready(compiled(kappa, mean_direction, a, fresh))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[3, 10, 100])
    parser.add_argument("--kappas", type=float, nargs="+", default=[10.0])
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = jax.devices()[0]
    print(f"# python {' '.join(sys.argv)}")
    print(
        f"# device: {device.platform} {device.device_kind}, jax {jax.__version__}, "
        f"{os.cpu_count()} CPUs visible; {args.size} samples per call"
    )
    header = (
        f"{'dtype':8} {'d':>4} {'kappa':>7} {'fwd samples/s':>14} "
        f"{'grad samples/s':>15} {'grad/fwd':>9} {'compile fwd s':>14} "
        f"{'compile grad s':>15}"
    )
    print(header)
    print("-" * len(header))
    for dtype_name in args.dtypes:
        dtype = jnp.dtype(dtype_name)
        for d in args.dims:
            rng = np.random.default_rng(d)
            mean_direction = rng.normal(size=d)
            mean_direction /= np.linalg.norm(mean_direction)
            a = jnp.asarray(rng.normal(size=d), dtype)
            for kappa in args.kappas:
                call = (
                    jnp.asarray(kappa, dtype),
                    jnp.asarray(mean_direction, dtype),
                    a,
                    jr.key(0),
                )
                forward, gradient = programs(args.size)
                forward, forward_compile = compile_seconds(forward, *call)
                gradient, gradient_compile = compile_seconds(gradient, *call)
                forward_run = run_seconds(forward, call, args.repeats)
                gradient_run = run_seconds(gradient, call, args.repeats)
                print(
                    f"{dtype_name:8} {d:4d} {kappa:7.3g} "
                    f"{args.size / forward_run:14.3e} "
                    f"{args.size / gradient_run:15.3e} "
                    f"{gradient_run / forward_run:9.2f} "
                    f"{forward_compile:14.2f} {gradient_compile:15.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
