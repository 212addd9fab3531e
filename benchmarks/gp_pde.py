"""GP-HM's 1-D benchmarks (Fang et al., ICLR 2024) solved with ``pde.gp_solve``
next to the Chebyshev reference (``pde.chebyshev_solve``) in the same run.

    python benchmarks/gp_pde.py
    python benchmarks/gp_pde.py --problems P1 P5 --outer-steps 20

Per problem: the final relative L2 error of the GP solution on 10 001 uniform
points (no best-checkpoint picking: the run's last accepted state), wall time
of the whole run including compilation and of a second, compiled run, the
time of one kernel (Adam) step, the error of the learnt frequency nearest the
true high frequency, and Chebyshev's error and time at 1000 points. The GP
solver has no random initialisation (frequencies come from the source's
spectrum), so one run stands for the paper's "median of 3 seeds".
"""

import argparse
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import equinox as eqx
import jax.numpy as jnp
import numpy as np
import optax
from chebyshev_reference import GP_HM, PROBLEMS, chebyshev_run, equation_for

from sciax import pde
from sciax.pde.gp import _collocation, _gp_solve

# paper grids (points per dimension)
POINTS = {"P1": 400, "P2": 900, "P3": 400, "P4": 400, "P5": 400, "A1": 400, "A2": 400}
# the high frequencies (rad per unit length) the spectrum should recover
TRUE_FREQUENCIES = {
    "P1": [100.0],
    "P2": [200.0],
    "P3": [94.0, 106.0],
    "P4": [100.0],
    "P5": [500.0],
    "A1": [100.0],
    "A2": [94.0, 106.0],
}


def kernel_step_seconds(
    kernels, values, likelihood=_gp_solve._negative_log_likelihood, num_steps=200
):
    """Seconds per Adam step on the marginal likelihood
    ``likelihood(kernels, target, nugget)`` of the solution ``values``,
    measured alone."""
    parameters, static = eqx.partition(kernels, eqx.is_inexact_array)
    state = optax.adam(1.0).init(parameters)
    target = values / jnp.sqrt(jnp.mean(values**2))
    rate = jnp.asarray(1e-2)
    nugget = _collocation.LIKELIHOOD_NUGGET[jnp.dtype(target.dtype)]

    @jax.jit
    def run(parameters, state):
        return _collocation.kernel_steps(
            parameters,
            state,
            static,
            lambda k: likelihood(k, target, nugget),
            jnp.full(num_steps, rate),
        )

    jax.block_until_ready(run(parameters, state))
    start = time.perf_counter()
    jax.block_until_ready(run(parameters, state))
    return (time.perf_counter() - start) / num_steps


def parse_arguments(problems, flags=None):
    """--problems, --outer-steps, --kernel-steps of the GP benchmarks (plus
    boolean ``flags``, {name: help}), after printing the command line and
    the device."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--problems", nargs="+", default=list(problems))
    parser.add_argument("--outer-steps", type=int, default=10)
    parser.add_argument("--kernel-steps", type=int, default=50)
    for flag, description in (flags or {}).items():
        parser.add_argument(flag, action="store_true", help=description)
    args = parser.parse_args()
    device = jax.devices()[0]
    print(f"# python {' '.join(sys.argv)}")
    print(f"# device: {device.platform} {device.device_kind}, jax {jax.__version__}")
    return args


def main():
    args = parse_arguments(POINTS)
    print(
        f"{'problem':7} {'n':>4} {'GP rel.L2':>9} {'GP-HM best':>10} {'ratio':>7} "
        f"{'first s':>7} {'second s':>8} {'ms/step':>7} {'freq err':>8} "
        f"{'Cheb. L2':>9} {'Cheb. s':>7}"
    )
    for name in args.problems:
        exact, domain, kind = PROBLEMS[name]
        equation = equation_for(exact, kind)
        boundary = (float(exact(domain[0])), float(exact(domain[1])))
        z = jnp.linspace(*domain, 10_001)

        def run(equation=equation, boundary=boundary, domain=domain, name=name):
            solution = pde.gp_solve(
                equation,
                boundary,
                domain,
                POINTS[name],
                rtol=0.0,
                max_outer_steps=args.outer_steps,
                kernel_steps=args.kernel_steps,
            )
            return jax.block_until_ready(solution)

        start = time.perf_counter()
        solution = run()
        first = time.perf_counter() - start
        start = time.perf_counter()
        solution = run()
        second = time.perf_counter() - start
        error = float(
            jnp.linalg.norm(solution(z) - exact(z)) / jnp.linalg.norm(exact(z))
        )
        learnt = (
            2
            * np.pi
            * np.asarray(solution.frequencies)[np.asarray(solution.weights) > 0]
        )
        frequency_error = max(
            np.min(np.abs(learnt - true)) / true for true in TRUE_FREQUENCIES[name]
        )
        step = kernel_step_seconds(solution.kernel, solution.value)
        cheb_error, _, _, cheb_seconds = chebyshev_run(exact, domain, kind, z, 1000)
        print(
            f"{name:7} {POINTS[name]:4d} {error:9.2e} {GP_HM[name]:10.1e} "
            f"{GP_HM[name] / error:7.1f} {first:7.1f} {second:8.2f} "
            f"{1e3 * step:7.3f} {frequency_error:8.1e} {cheb_error:9.2e} "
            f"{cheb_seconds:7.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
