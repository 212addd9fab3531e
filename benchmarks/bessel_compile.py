"""Compile time of the public numerics functions, against jax.scipy.special.

    python benchmarks/bessel_compile.py [--size 4096] [--functions log_iv log_kv ...]

For each function, seconds to trace, lower and compile ``jit(vmap(f))`` and
``jit(vmap(grad(f, (0, 1))))`` on float64 inputs of ``--size`` elements, with
JAX's in-memory caches cleared before each program (and no persistent cache).
The reference is a jax.scipy.special program of the same shape, compiled in
the same run: ``jit(vmap(grad(lambda v, x: gammaln(v) + i0e(x), (0, 1))))``.
"ratio" is ours over the reference; the goal is at most 10.
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
from jax.scipy import special

from sciax import numerics

# (name, function of (v, x), arguments differentiated)
_VMF_DIMENSION = 3
_FUNCTIONS = {
    "log_iv": (numerics.log_iv, (0, 1)),
    "log_ive": (numerics.log_ive, (0, 1)),
    "log_kv": (numerics.log_kv, (0, 1)),
    "log_kve": (numerics.log_kve, (0, 1)),
    "log_iv_ratio": (numerics.log_iv_ratio, (0, 1)),
    "log_kv_ratio": (numerics.log_kv_ratio, (0, 1)),
    "iv": (numerics.iv, (0, 1)),
    "kv": (numerics.kv, (0, 1)),
    "vmf_log_normalizer": (
        lambda v, x: numerics.vmf_log_normalizer(_VMF_DIMENSION, x),
        (1,),
    ),
}


def _reference(v, x):
    return special.gammaln(v) + special.i0e(x)


def compile_seconds(function, v, x):
    """Seconds to trace, lower and compile ``jit(function)`` from cold caches."""
    jax.clear_caches()
    start = time.perf_counter()
    jax.jit(function).lower(v, x).compile()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--functions", nargs="+", default=list(_FUNCTIONS))
    args = parser.parse_args()
    device = jax.devices()[0]
    print(f"# python {' '.join(sys.argv)}")
    print(f"# device: {device.platform} {device.device_kind}, jax {jax.__version__}")
    v = jnp.linspace(0.5, 30.0, args.size)
    x = jnp.linspace(0.01, 50.0, args.size)
    reference = compile_seconds(jax.vmap(jax.grad(_reference, (0, 1))), v, x)
    print(f"# reference jit(vmap(grad(gammaln(v) + i0e(x)))): {reference:.2f} s")
    header = (
        f"{'function':19} {'jit(vmap) s':>11} {'ratio':>6} "
        f"{'jit(vmap(grad)) s':>17} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for name in args.functions:
        function, argnums = _FUNCTIONS[name]
        plain = compile_seconds(jax.vmap(function), v, x)
        gradient = compile_seconds(jax.vmap(jax.grad(function, argnums)), v, x)
        print(
            f"{name:19} {plain:11.2f} {plain / reference:6.1f} "
            f"{gradient:17.2f} {gradient / reference:6.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
