"""Chebyshev collocation: the differentiation matrix, spectral convergence,
a nonlinear problem, dtypes, jit, vmap, gradients, failure reporting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciax import pde, solvers


def smooth(x):
    return jnp.exp(jnp.sin(3 * x))


smooth_second = jax.vmap(jax.grad(jax.grad(smooth)))


def poisson(x, u, du, d2u):
    return d2u - smooth_second(x)


def test_differentiation_matrix_is_exact_on_polynomials():
    x = pde.chebyshev_points(9, (0.0, 2.0))
    d = pde.chebyshev_differentiation_matrix(9, (0.0, 2.0))
    np.testing.assert_allclose(d @ x**7, 7 * x**6, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(d @ jnp.ones(9), 0.0, atol=1e-13)
    np.testing.assert_allclose(d @ d @ x**8, 56 * x**6, rtol=1e-10, atol=1e-10)
    assert float(x[0]) == 0.0 and float(x[-1]) == 2.0
    assert bool(jnp.all(jnp.diff(x) > 0))
    # the points are the extrema of T_8 mapped to [0, 2]
    t = x - 1.0
    np.testing.assert_allclose(
        np.polynomial.chebyshev.chebval(np.asarray(t[1:-1]), [0] * 8 + [1]) ** 2,
        1.0,
        rtol=1e-12,
    )
    x32 = pde.chebyshev_points(9, dtype=jnp.float32)
    d32 = pde.chebyshev_differentiation_matrix(9, dtype=jnp.float32)
    assert x32.dtype == d32.dtype == jnp.float32
    with pytest.raises(ValueError, match="b > a"):
        pde.chebyshev_differentiation_matrix(9, (1.0, 0.0))
    with pytest.raises(ValueError, match="num_points"):
        pde.chebyshev_points(1)


# slow: the 2-D box's spectral-convergence test runs by default
@pytest.mark.slow
def test_spectral_convergence():
    z = jnp.linspace(0.0, 2.0, 333)
    errors = []
    for n in (12, 24, 48):
        solution = pde.chebyshev_solve(
            poisson, (smooth(0.0), smooth(2.0)), (0.0, 2.0), n, rtol=1e-11
        )
        assert solution.result == solvers.RESULTS.successful
        errors.append(float(jnp.max(jnp.abs(solution(z) - smooth(z)))))
    assert errors[1] < 1e-3 * errors[0] and errors[2] < 1e-11
    assert errors[2] < 1e-3 * errors[1] or errors[2] < 1e-12


def test_allen_cahn_by_newton():
    def exact(x):
        return jnp.sin(5 * x) + 0.5 * x

    second = jax.vmap(jax.grad(jax.grad(exact)))

    def allen_cahn(x, u, du, d2u):
        source = second(x) + exact(x) * (exact(x) ** 2 - 1)
        return d2u + u * (u**2 - 1) - source

    solution = pde.chebyshev_solve(
        allen_cahn, (exact(0.0), exact(jnp.pi)), (0.0, jnp.pi), 60, rtol=1e-11
    )
    assert solution.result == solvers.RESULTS.successful
    assert int(solution.stats["num_steps"]) > 2  # nonlinear: several steps
    np.testing.assert_allclose(solution.value, exact(solution.grid), atol=1e-11)
    failed = pde.chebyshev_solve(
        allen_cahn, (exact(0.0), exact(jnp.pi)), (0.0, jnp.pi), 60, rtol=1e-11,
        max_steps=1, throw=False,
    )  # fmt: skip
    assert failed.result == solvers.RESULTS.newton_max_steps_reached
    with pytest.raises(Exception, match="Newton's method reached max_steps"):
        pde.chebyshev_solve(
            allen_cahn, (exact(0.0), exact(jnp.pi)), (0.0, jnp.pi), 60,
            rtol=1e-11, max_steps=1,
        )  # fmt: skip


def test_interpolation_at_and_between_points():
    solution = pde.chebyshev_solve(
        poisson, (smooth(0.0), smooth(2.0)), (0.0, 2.0), 40, rtol=1e-11
    )
    np.testing.assert_array_equal(solution(solution.grid), solution.value)
    z = jnp.asarray(np.random.default_rng(0).uniform(0, 2, 50))
    np.testing.assert_allclose(solution(z), smooth(z), atol=1e-10)


def test_float32():
    solution = pde.chebyshev_solve(
        poisson, (smooth(0.0), smooth(2.0)), (0.0, 2.0), 32, rtol=1e-4,
        dtype=jnp.float32,
    )  # fmt: skip
    assert solution.value.dtype == jnp.float32
    assert solution.result == solvers.RESULTS.successful
    np.testing.assert_allclose(solution.value, smooth(solution.grid), atol=1e-4)


def test_jit_vmap_and_gradient():
    def solve(left, scale):
        def equation(x, u, du, d2u):
            return d2u - scale * smooth_second(x)

        return pde.chebyshev_solve(equation, (left, 0.0), (0.0, 2.0), 24, rtol=1e-11)

    lefts = jnp.array([0.0, 1.0, -2.0])
    batched = jax.jit(jax.vmap(lambda g: solve(g, 1.0).value))(lefts)
    for g, row in zip(lefts, batched, strict=True):
        np.testing.assert_allclose(row, solve(g, 1.0).value, atol=1e-12)

    def mean_value(left, scale):
        return jnp.mean(solve(left, scale).value)

    gradient = jax.grad(mean_value, argnums=(0, 1))(0.5, 2.0)
    step = 1e-6
    for argnum, derivative in enumerate(gradient):
        shift = jnp.array([step, 0.0]) if argnum == 0 else jnp.array([0.0, step])
        plus = mean_value(0.5 + shift[0], 2.0 + shift[1])
        minus = mean_value(0.5 - shift[0], 2.0 - shift[1])
        np.testing.assert_allclose(derivative, (plus - minus) / (2 * step), rtol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="num_points"):
        pde.chebyshev_solve(poisson, (0.0, 0.0), (0.0, 1.0), 2, rtol=1e-8)
    with pytest.raises(ValueError, match="pairs"):
        pde.chebyshev_solve(poisson, (0.0, 0.0), (0.0, 1.0, 2.0), 10, rtol=1e-8)
    with pytest.raises(TypeError, match="rtol"):
        pde.chebyshev_solve(poisson, (0.0, 0.0), (0.0, 1.0), 10)
    with pytest.raises(ValueError, match="rtol must be > 0"):
        pde.chebyshev_solve(poisson, (0.0, 0.0), (0.0, 1.0), 10, rtol=0.0)
    with pytest.raises(TypeError, match="rtol must be a real number"):
        pde.chebyshev_solve(poisson, (0.0, 0.0), (0.0, 1.0), 10, rtol=1j)


def test_argument_order_matches_gp_solve():
    # equation, boundary, domain, num_points, then keyword-only
    # configuration with rtol required, in all four collocation solvers
    import inspect

    for solver in (
        pde.chebyshev_solve,
        pde.gp_solve,
        pde.chebyshev_solve_box,
        pde.gp_solve_box,
    ):
        parameters = inspect.signature(solver).parameters
        assert list(parameters)[:4] == ["equation", "boundary", "domain", "num_points"]
        rtol = parameters["rtol"]
        assert rtol.kind == inspect.Parameter.KEYWORD_ONLY
        assert rtol.default is inspect.Parameter.empty
        assert parameters["throw"].kind == inspect.Parameter.KEYWORD_ONLY
    # boundary values (1, 3) on the domain (0, 2): u = 1 + x
    solution = pde.chebyshev_solve(
        lambda x, u, du, d2u: d2u, (1.0, 3.0), (0.0, 2.0), 8, rtol=1e-12
    )
    assert float(solution.grid[0]) == 0.0 and float(solution.grid[-1]) == 2.0
    np.testing.assert_allclose(solution.value, 1.0 + solution.grid, atol=1e-13)
    assert set(solution.stats) == {"num_steps", "residual_norm"}
