"""throw=True inside jit, vmap and grad: the error names the entry point, the
result and the way out (throw=False and a test of result), whatever wraps
it."""

import jax
import jax.numpy as jnp
import pytest

from sciax import pde, solvers

jax.config.update("jax_enable_x64", True)

# an upper-triangular (non-symmetric) matrix: CG breaks down at step 2
MATRIX = jnp.diag(jnp.arange(1.0, 6.0)).at[0, 1].set(3.0)


def _cg_solution(b):
    return solvers.solve(
        MATRIX, b, solvers.CG(rtol=1e-12, atol=0.0, max_steps=50)
    ).value


TRANSFORMS = {
    "eager": (lambda f: f, jnp.ones(5)),
    "jit": (jax.jit, jnp.ones(5)),
    "vmap": (jax.vmap, jnp.ones((3, 5))),
    "grad": (lambda f: jax.grad(lambda b: jnp.sum(f(b))), jnp.ones(5)),
    "jit of grad": (lambda f: jax.jit(jax.grad(lambda b: jnp.sum(f(b)))), jnp.ones(5)),
}


def _assert_says_what_to_do(
    error, entry_point, result_name, solution="solution", where=""
):
    text = str(error)
    assert f"{entry_point} ended with result RESULTS.{result_name}{where}:" in text
    assert f"call {entry_point} with throw=False" in text
    assert f"test {solution}.result == sciax.RESULTS.successful" in text


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
def test_solve_failure_names_result_and_fix(transform):
    wrap, b = TRANSFORMS[transform]
    with pytest.raises(Exception) as error:
        jax.block_until_ready(wrap(_cg_solution)(b))
    _assert_says_what_to_do(error.value, "sciax.solvers.solve", "breakdown")


def test_solve_with_throw_false_reports_the_result():
    solution = solvers.solve(
        MATRIX, jnp.ones(5), solvers.CG(rtol=1e-12, atol=0.0, max_steps=50), throw=False
    )
    assert solution.result == solvers.RESULTS.breakdown


def test_pde_failure_names_result_and_fix():
    # one Newton step cannot solve a nonlinear boundary-value problem
    def equation(x, u, du, d2u):
        return d2u - jnp.exp(u)

    with pytest.raises(Exception) as error:
        jax.jit(
            lambda: (
                pde.chebyshev_solve(
                    equation, (0.0, 1.0), (0.0, 1.0), 16, rtol=1e-12, max_steps=1
                ).value
            )
        )().block_until_ready()
    _assert_says_what_to_do(
        error.value, "sciax.pde.chebyshev_solve", "newton_max_steps_reached"
    )


def test_a_failed_gradient_solve_raises_too():
    # the forward solve starts at the solution and succeeds at once; the
    # transposed solve of the gradient starts from zero and runs out of steps
    b = jnp.ones(5)
    exact = jnp.linalg.solve(MATRIX, b)
    solver = solvers.GMRES(rtol=1e-12, atol=0.0, max_steps=1)

    def loss(b):
        return jnp.sum(solvers.solve(MATRIX, b, solver, x0=exact).value ** 2)

    assert (
        solvers.solve(MATRIX, b, solver, x0=exact).result == solvers.RESULTS.successful
    )
    with pytest.raises(Exception) as error:
        jax.block_until_ready(jax.jit(jax.grad(loss))(b))
    _assert_says_what_to_do(
        error.value,
        "sciax.solvers.solve",
        "max_steps_reached",
        where=" in its gradient's transposed solve",
    )
