"""The GP-HM box problems (Fang et al., ICLR 2024) with ``pde.gp_solve_box``
next to the Chebyshev reference (``pde.chebyshev_solve_box``) in the same run:
final relative L2 error on a fine uniform grid against the exact solution
(ratio: GP-HM's best over ours, above 1 where we are better), wall time
including compilation, the learnt dominant frequency per axis, and
Chebyshev's error and compiled solve time (second call).

    python benchmarks/gp_pde_box.py
    python benchmarks/gp_pde_box.py --problems Q1 --outer-steps 5
    python benchmarks/gp_pde_box.py --outer-steps 0 --chebyshev-only

Q1, Q2: u_xx + u_yy = f; AC2: u_xx + u_yy + u(u^2 - 1) = f; ADV: u_t +
200 u_x = 0 on (x, t) in [0, 2 pi] x [0, 1] with u = sin(x - 200 t) given on
the whole boundary of the space-time box for the GP, on the inflow sides
(x = 0 and t = 0) for Chebyshev space-time collocation. Sources and boundary
data from the exact solutions.
"""

import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
from gp_pde import kernel_step_seconds, parse_arguments

from sciax import pde, solvers
from sciax.pde.gp import _gp_box

TWO_PI = 2 * np.pi


def _ac_factor(s):
    return jnp.sin(s) + 0.1 * jnp.sin(20 * s) + jnp.cos(100 * s)


# name: (exact(p), domain, points per axis, kind, GP-HM's best, the true
# frequencies of each axis in cycles per unit length)
PROBLEMS = {
    "Q1": (
        lambda p: jnp.sin(100 * p[0]) * jnp.sin(100 * p[1]),
        ((0.0, TWO_PI), (0.0, TWO_PI)),
        400,
        "poisson",
        6.5e-5,
        ((100 / TWO_PI,), (100 / TWO_PI,)),
    ),
    "Q2": (
        lambda p: (
            jnp.sin(6 * p[0]) * jnp.cos(20 * p[0])
            + jnp.sin(6 * p[1]) * jnp.cos(20 * p[1])
        ),
        ((0.0, TWO_PI), (0.0, TWO_PI)),
        200,
        "poisson",
        1.0e-3,
        ((14 / TWO_PI, 26 / TWO_PI), (14 / TWO_PI, 26 / TWO_PI)),
    ),
    "AC2": (
        lambda p: _ac_factor(p[0]) * _ac_factor(p[1]),
        ((0.0, 1.0), (0.0, 1.0)),
        200,
        "allen-cahn",
        2.6e-3,
        ((100 / TWO_PI,), (100 / TWO_PI,)),
    ),
    "ADV": (
        lambda p: jnp.sin(p[0] - 200 * p[1]),
        ((0.0, TWO_PI), (0.0, 1.0)),
        200,
        "advection",
        1.4e-4,
        ((1 / TWO_PI,), (200 / TWO_PI,)),
    ),
}


# Chebyshev points per axis: resolved (about pi points per wavelength) with
# a margin, so the reference sits at rounding level
CHEBYSHEV_POINTS = {"Q1": (400, 400), "Q2": (150, 150), "AC2": (120, 120),
                    "ADV": (32, 160)}  # fmt: skip


def problem(name):
    """(equation, derivatives) of one benchmark, source manufactured from
    the exact solution."""
    exact, _, _, kind, _, _ = PROBLEMS[name]
    if kind == "advection":
        return (lambda p, u, ux, ut: ut + 200 * ux), ((1, 0), (0, 1))

    def laplacian(p):
        return jnp.trace(jax.hessian(exact)(p))

    if kind == "poisson":
        return (lambda p, u, uxx, uyy: uxx + uyy - laplacian(p)), ((2, 0), (0, 2))
    return (
        lambda p, u, uxx, uyy: (
            uxx + uyy + u * (u**2 - 1) - laplacian(p) - exact(p) * (exact(p) ** 2 - 1)
        )
    ), ((2, 0), (0, 2))


def chebyshev_box_run(name):
    """(relative L2 error, seconds of a compiled solve, result) of
    ``pde.chebyshev_solve_box`` on one problem."""
    exact, domain, _, kind, _, _ = PROBLEMS[name]
    equation, derivatives = problem(name)
    inflow = ((True, False), (True, False))
    everywhere = ((True, True), (True, True))

    def solve():
        return pde.chebyshev_solve_box(
            equation,
            exact,
            domain,
            CHEBYSHEV_POINTS[name],
            derivatives=derivatives,
            dirichlet=inflow if kind == "advection" else everywhere,
            rtol=1e-10,
            throw=False,
        )

    jax.block_until_ready(solve().value)
    start = time.perf_counter()
    solution = solve()
    jax.block_until_ready(solution.value)
    seconds = time.perf_counter() - start
    return relative_error(solution, exact, domain), seconds, solution.result


def relative_error(solution, exact, domain, num_eval=1001):
    axes = [jnp.linspace(a, b, num_eval) for a, b in domain]
    points = jnp.stack(jnp.meshgrid(*axes, indexing="ij"), axis=-1)
    truth = jax.vmap(jax.vmap(exact))(points)
    difference = solution.on_grid(*axes) - truth
    return float(jnp.linalg.norm(difference) / jnp.linalg.norm(truth))


def dominant_frequency_error(solution, true_frequencies):
    """Largest relative distance, over axes and their true dominant
    frequencies, to the nearest reported component with nonzero weight."""
    worst = 0.0
    for frequencies, weights, trues in zip(
        solution.frequencies, solution.weights, true_frequencies, strict=True
    ):
        live = np.asarray(frequencies)[np.asarray(weights) > 0]
        for true in trues:
            worst = max(worst, float(np.min(np.abs(live - true)) / true))
    return worst


def main():
    args = parse_arguments(
        PROBLEMS,
        {"--chebyshev-only": "print the Chebyshev reference and skip the GP"},
    )
    print(
        f"{'problem':7} {'grid':>7} {'GP rel.L2':>9} {'GP-HM best':>10} {'ratio':>7} "
        f"{'seconds':>7} {'ms/step':>7} {'newton':>6} {'cg':>4} {'accepted':>8} "
        f"{'freq.err':>8} "
        f"{'Cheb. grid':>10} {'Cheb. L2':>9} {'Cheb. s':>7}"
    )
    for name in args.problems:
        exact, domain, n, _, best, true_frequencies = PROBLEMS[name]
        cheb_error, cheb_seconds, cheb_result = chebyshev_box_run(name)
        n1, n2 = CHEBYSHEV_POINTS[name]
        chebyshev = f"{f'{n1}x{n2}':>10} {cheb_error:9.1e} {cheb_seconds:7.3f}" + (
            "" if cheb_result == solvers.RESULTS.successful else " (not converged)"
        )
        if args.chebyshev_only:
            print(f"{name:7} {'':7} {'':9} {best:10.1e} {'':7} {'':7} {'':7} {'':6} "
                  f"{'':4} {'':8} {'':8} {chebyshev}", flush=True)  # fmt: skip
            continue
        equation, derivatives = problem(name)
        start = time.perf_counter()
        solution = pde.gp_solve_box(
            equation,
            exact,
            domain,
            (n, n),
            rtol=0.0,
            derivatives=derivatives,
            max_outer_steps=args.outer_steps,
            kernel_steps=args.kernel_steps,
            throw=False,
        )
        jax.block_until_ready(solution.value)
        seconds = time.perf_counter() - start
        error = relative_error(solution, exact, domain)
        step = kernel_step_seconds(
            solution.kernels, solution.value, _gp_box._box_negative_log_likelihood
        )
        stats = solution.stats
        print(
            f"{name:7} {n:>3}^2   {error:9.1e} {best:10.1e} {best / error:7.2g} "
            f"{seconds:7.1f} {1e3 * step:7.2f} {int(stats['num_newton_steps']):6d} "
            f"{int(stats['num_matvecs']):4d} "
            f"{int(stats['num_accepted']):3d}/{int(stats['num_steps']):<4d} "
            f"{dominant_frequency_error(solution, true_frequencies):8.1e} "
            f"{chebyshev}",
            flush=True,
        )


if __name__ == "__main__":
    main()
