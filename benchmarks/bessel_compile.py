"""Compile time of log_iv / log_kv and of their gradients.

    python benchmarks/bessel_compile.py

Prints seconds to lower and compile ``jit(f)`` and ``jit(vmap(grad(f, (0, 1))))``
for float64 inputs of 913 elements (the size of the accuracy table).
"""

import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp

from sciax import numerics


def main():
    device = jax.devices()[0]
    print(f"# {' '.join(sys.argv)}  (device: {device.platform} {device.device_kind})")
    v = jnp.linspace(0.0, 30.0, 913)
    x = jnp.linspace(0.01, 50.0, 913)
    print(f"{'function':8} {'jit (s)':>8} {'grad (s)':>9}")
    for name in ("log_iv", "log_kv"):
        function = getattr(numerics, name)
        start = time.perf_counter()
        jax.jit(function).lower(v, x).compile()
        plain = time.perf_counter() - start
        start = time.perf_counter()
        gradient = jax.vmap(jax.grad(function, argnums=(0, 1)))
        jax.jit(gradient).lower(v, x).compile()
        print(f"{name:8} {plain:8.1f} {time.perf_counter() - start:9.1f}", flush=True)


if __name__ == "__main__":
    main()
