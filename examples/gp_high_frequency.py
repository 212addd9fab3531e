"""A high-frequency boundary-value problem solved with a Gaussian process
whose spectrum is learnt (``pde.gp_solve``), checked against the Chebyshev
reference, with a plot of the solution, its error and the learnt spectrum.

    python examples/gp_high_frequency.py              # P1: u'' = f, u = sin(100 x)
    python examples/gp_high_frequency.py --problem P5 # sin(500 x) - 2 (x - 0.5)^2
    python examples/gp_high_frequency.py --problem A2 # Allen-Cahn, sin(6x)cos(100x)

The problems are those of Fang et al. (GP-HM, ICLR 2024), on the paper's
grids; the figure goes to gp_<problem>.png in --output.
"""

import argparse
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np

from sciax import pde

TWO_PI = 2 * np.pi
PROBLEMS = {
    "P1": (lambda x: jnp.sin(100 * x), (0.0, TWO_PI), 400, "poisson"),
    "P2": (lambda x: x * jnp.sin(200 * x), (0.0, TWO_PI), 900, "poisson"),
    "P3": (lambda x: jnp.sin(6 * x) * jnp.cos(100 * x), (0.0, TWO_PI), 400, "poisson"),
    "P4": (
        lambda x: jnp.sin(x) + 0.1 * jnp.sin(20 * x) + 0.05 * jnp.cos(100 * x),
        (0.0, 1.0),
        400,
        "poisson",
    ),
    "P5": (lambda x: jnp.sin(500 * x) - 2 * (x - 0.5) ** 2, (0.0, 1.0), 400, "poisson"),
    "A1": (lambda x: jnp.sin(100 * x), (0.0, TWO_PI), 400, "allen-cahn"),
    "A2": (
        lambda x: jnp.sin(6 * x) * jnp.cos(100 * x),
        (0.0, TWO_PI),
        400,
        "allen-cahn",
    ),
}


def equation_for(exact, kind):
    """F(x, u, u'') = 0 with the source manufactured from the exact solution."""
    second = jax.grad(jax.grad(exact))
    if kind == "poisson":
        return lambda x, u, d2u: d2u - second(x)
    return lambda x, u, d2u: (
        d2u + u * (u**2 - 1) - (second(x) + exact(x) * (exact(x) ** 2 - 1))
    )


def solve(name, outer_steps=10, kernel_steps=50):
    """GP solution, its relative L2 error on 10 001 points and seconds taken."""
    exact, domain, points, kind = PROBLEMS[name]
    equation = equation_for(exact, kind)
    boundary = (float(exact(domain[0])), float(exact(domain[1])))
    start = time.perf_counter()
    solution = pde.gp_solve(
        equation,
        boundary,
        domain,
        points,
        rtol=0.0,
        max_outer_steps=outer_steps,
        kernel_steps=kernel_steps,
    )
    solution = jax.block_until_ready(solution)
    seconds = time.perf_counter() - start
    z = jnp.linspace(*domain, 10_001)
    error = float(jnp.linalg.norm(solution(z) - exact(z)) / jnp.linalg.norm(exact(z)))
    return solution, error, seconds


def chebyshev_error(name, points=1000):
    exact, domain, _, kind = PROBLEMS[name]
    equation = equation_for(exact, kind)

    def batched(x, u, du, d2u):
        return jax.vmap(equation)(x, u, d2u)

    boundary = (exact(domain[0]), exact(domain[1]))
    solution = pde.chebyshev_solve(batched, boundary, domain, points, rtol=1e-9)
    z = jnp.linspace(*domain, 10_001)
    return float(jnp.linalg.norm(solution(z) - exact(z)) / jnp.linalg.norm(exact(z)))


def describe_spectrum(solution):
    frequencies = 2 * np.pi * np.asarray(solution.frequencies)
    weights = np.asarray(solution.weights)
    kept = weights > 0
    return ", ".join(
        f"{f:.4f} rad (weight {w:.2g})"
        for f, w in zip(frequencies[kept], weights[kept], strict=True)
    )


def save_figure(path, name, solution):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exact, domain, _, _ = PROBLEMS[name]
    z = jnp.linspace(*domain, 10_001)
    values = np.asarray(solution(z))
    figure, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    axes[0].plot(z, np.asarray(exact(z)), lw=2.5, color="0.75", label="exact")
    axes[0].plot(z, values, lw=0.8, color="C0", label="GP")
    axes[0].set_xlim(domain[0], domain[0] + (domain[1] - domain[0]) / 8)
    axes[0].set_title(f"{name}: solution (first eighth of the domain)")
    axes[0].legend(loc="upper right")
    axes[1].semilogy(z, np.abs(values - np.asarray(exact(z))) + 1e-300, lw=0.6)
    axes[1].set_title("pointwise error")
    frequencies = 2 * np.pi * np.asarray(solution.frequencies)
    weights = np.asarray(solution.weights)
    axes[2].stem(frequencies, weights)
    axes[2].set_xlabel("frequency (rad per unit length)")
    axes[2].set_title("learnt spectrum (component weights)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--problem", choices=list(PROBLEMS), default="P1")
    parser.add_argument("--outer-steps", type=int, default=10)
    parser.add_argument("--kernel-steps", type=int, default=50)
    parser.add_argument("--output", type=Path, default=Path("outputs"))
    args = parser.parse_args(argv)
    solution, error, seconds = solve(args.problem, args.outer_steps, args.kernel_steps)
    print(f"# python {' '.join(sys.argv)}")
    print(f"{args.problem}: GP relative L2 error {error:.2e} in {seconds:.1f} s")
    print(f"   learnt spectrum: {describe_spectrum(solution)}")
    print(f"   Chebyshev reference at 1000 points: {chebyshev_error(args.problem):.2e}")
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"gp_{args.problem}.png"
    save_figure(path, args.problem, solution)
    print(f"   figure: {path}")


if __name__ == "__main__":
    main()
