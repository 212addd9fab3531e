"""Solve pressure Poisson systems with the learned conjugate-direction solver
and the shipped weights, alone and with a multigrid step after every network
step, next to conjugate gradients and multigrid-PCG.

    python examples/learned_cg.py
    python examples/learned_cg.py --ndim 3 --size 64
    python examples/learned_cg.py --rtol 1e-8

For each problem kind (fluid in an open box, with obstacles, under a free
surface) one random right-hand side is solved to a relative residual of
``--rtol`` (1e-6 by default) in float64 (the network itself runs in
float32); printed: iterations, fallback steps and wall time of each
solver. examples/train_learned_cg.py retrains the weights.
"""

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp

from sciax import pde, solvers


def compare(kind, shape, network, multigrid_network, seed=3, rtol=1e-6):
    """{method: (iterations, fallbacks, seconds of a compiled solve, relative
    residual)} for one problem."""
    cells = pde.pressure_cells(kind, shape, jax.random.key(seed))
    operator = pde.PressureOperator(cells)
    b = jax.random.normal(jax.random.key(seed + 1), (operator.shape[0],))
    b = b * operator.fluid.reshape(-1)
    cg = solvers.CG(rtol=rtol, atol=0.0, max_steps=5000)
    methods = {
        "learned": (
            solvers.LearnedConjugateDirections(
                network, rtol=rtol, atol=0.0, max_steps=2000
            ),
            None,
        ),
        # every iteration: a step along the network's direction, then one
        # along the V-cycle's M r
        "learned+MG": (
            solvers.LearnedConjugateDirections(
                multigrid_network,
                rtol=rtol,
                atol=0.0,
                max_steps=2000,
                num_orthogonal=8,
                preconditioner_steps=True,
            ),
            solvers.Multigrid(),
        ),
        "CG": (cg, None),
        "MG-PCG": (cg, solvers.Multigrid()),
    }
    rows = {}
    for name, (solver, preconditioner) in methods.items():
        run = jax.jit(
            lambda b, s=solver, m=preconditioner: solvers.solve(
                operator, b, s, preconditioner=m, throw=False
            )
        )
        jax.block_until_ready(run(b).value)
        start = time.perf_counter()
        solution = run(b)
        jax.block_until_ready(solution.value)
        seconds = time.perf_counter() - start
        residual = jnp.linalg.norm(b - operator.mv(solution.value)) / jnp.linalg.norm(b)
        # throw=False inside jit: the outcome is read from result, not raised
        rows[name] = (
            int(solution.stats["num_steps"]),
            int(solution.stats.get("num_fallbacks", 0)),
            seconds,
            float(residual),
            solvers.RESULTS[solution.result] or "converged",
        )
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ndim", type=int, choices=(2, 3), default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rtol", type=float, default=1e-6)
    args = parser.parse_args()
    network = solvers.pretrained_network(args.ndim)
    multigrid_network = solvers.pretrained_network(args.ndim, multigrid=True)
    shape = (args.size,) * args.ndim
    print(
        f"pressure Poisson on {'x'.join(map(str, shape))}, "
        f"relative residual {args.rtol:g}"
    )
    for kind in ("box", "obstacles", "free-surface"):
        for name, (steps, fallbacks, seconds, residual, outcome) in compare(
            kind, shape, network, multigrid_network, rtol=args.rtol
        ).items():
            print(
                f"  {kind:12} {name:10} {steps:5d} iterations ({fallbacks} fallbacks), "
                f"{seconds:.3f} s, residual {residual:.1e}, {outcome[:40]}"
            )


if __name__ == "__main__":
    main()
