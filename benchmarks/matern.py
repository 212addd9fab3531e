"""Cost of ``numerics.log_matern`` against the same quantity built by hand.

    python benchmarks/matern.py [--size 1000000] [--repeats 5]

The hand-built form is what a user writes from ``log_kv`` and ``gammaln``:
``(1 - nu) log 2 - gammaln(nu) + nu log x + log_kv(nu, x)`` (its gradient at
x = 0 is nan, and its terms cancel for small x and large nu; see the
docstring of ``log_matern``). Both run in float64 on the default device, on
the same inputs: nu log-uniform in [0.1, 100] and x log-uniform in
[1e-6, 1e2] (a GP's scaled distances, small to large), ``--size`` elements.

For each form: seconds to trace, lower and compile ``jit`` of the value and
of ``vmap(grad)`` in (nu, x) (cold caches, no persistent cache), and
throughput in elements per second (median of ``--repeats`` timed calls after
a warm-up call).
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
import numpy as np
from jax.scipy.special import gammaln

from sciax import numerics


def by_hand(nu, x):
    return (
        (1.0 - nu) * jnp.log(2.0)
        - gammaln(nu)
        + nu * jnp.log(x)
        + (numerics.log_kv(nu, x))
    )


FORMS = {"log_matern": numerics.log_matern, "log_kv + gammaln": by_hand}


def compile_seconds(function, *args):
    """Seconds to trace, lower and compile ``jit(function)`` from cold caches."""
    jax.clear_caches()
    start = time.perf_counter()
    compiled = jax.jit(function).lower(*args).compile()
    return time.perf_counter() - start, compiled


def throughput(compiled, args, repeats):
    """Elements per second of a compiled program (median of ``repeats``)."""
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return args[0].size / float(np.median(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = jax.devices()[0]
    print(f"# python {' '.join(sys.argv)}")
    print(
        f"# device: {device.platform} {device.device_kind}, jax {jax.__version__}, "
        f"{os.cpu_count()} CPU cores, float64, {args.size} elements"
    )
    rng = np.random.default_rng(0)
    nu = jnp.asarray(10.0 ** rng.uniform(-1.0, 2.0, args.size))
    x = jnp.asarray(10.0 ** rng.uniform(-6.0, 2.0, args.size))
    header = (
        f"{'form':18} {'compile s':>9} {'el/s':>9} "
        f"{'grad compile s':>14} {'grad el/s':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, form in FORMS.items():
        value_compile, value_program = compile_seconds(form, nu, x)
        value_rate = throughput(value_program, (nu, x), args.repeats)
        gradient = jax.vmap(jax.grad(form, argnums=(0, 1)))
        grad_compile, grad_program = compile_seconds(gradient, nu, x)
        grad_rate = throughput(grad_program, (nu, x), args.repeats)
        print(
            f"{name:18} {value_compile:9.2f} {value_rate:9.2e} "
            f"{grad_compile:14.2f} {grad_rate:9.2e}"
        )


if __name__ == "__main__":
    main()
