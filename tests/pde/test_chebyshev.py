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
    assert float(x[0]) == 0.0 and float(x[-1]) == 2.0


def test_spectral_convergence():
    z = jnp.linspace(0.0, 2.0, 333)
    errors = []
    for n in (12, 24, 48):
        solution = pde.chebyshev_solve(
            poisson, (0.0, 2.0), (smooth(0.0), smooth(2.0)), n, rtol=1e-11
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
        allen_cahn, (0.0, jnp.pi), (exact(0.0), exact(jnp.pi)), 60, rtol=1e-11
    )
    assert solution.result == solvers.RESULTS.successful
    assert int(solution.stats["num_steps"]) > 2  # nonlinear: several steps
    np.testing.assert_allclose(solution.values, exact(solution.points), atol=1e-11)
    failed = pde.chebyshev_solve(
        allen_cahn, (0.0, jnp.pi), (exact(0.0), exact(jnp.pi)), 60, rtol=1e-11,
        max_steps=1,
    )  # fmt: skip
    assert failed.result == solvers.RESULTS.newton_max_steps_reached


def test_interpolation_at_and_between_points():
    solution = pde.chebyshev_solve(
        poisson, (0.0, 2.0), (smooth(0.0), smooth(2.0)), 40, rtol=1e-11
    )
    np.testing.assert_array_equal(solution(solution.points), solution.values)
    z = jnp.asarray(np.random.default_rng(0).uniform(0, 2, 50))
    np.testing.assert_allclose(solution(z), smooth(z), atol=1e-10)


def test_float32():
    solution = pde.chebyshev_solve(
        poisson, (0.0, 2.0), (smooth(0.0), smooth(2.0)), 32, rtol=1e-4,
        dtype=jnp.float32,
    )  # fmt: skip
    assert solution.values.dtype == jnp.float32
    assert solution.result == solvers.RESULTS.successful
    np.testing.assert_allclose(solution.values, smooth(solution.points), atol=1e-4)


def test_jit_vmap_and_gradient():
    def solve(left, scale):
        def equation(x, u, du, d2u):
            return d2u - scale * smooth_second(x)

        return pde.chebyshev_solve(equation, (0.0, 2.0), (left, 0.0), 24, rtol=1e-11)

    lefts = jnp.array([0.0, 1.0, -2.0])
    batched = jax.jit(jax.vmap(lambda g: solve(g, 1.0).values))(lefts)
    for g, row in zip(lefts, batched, strict=True):
        np.testing.assert_allclose(row, solve(g, 1.0).values, atol=1e-12)

    def mean_value(left, scale):
        return jnp.mean(solve(left, scale).values)

    gradient = jax.grad(mean_value, argnums=(0, 1))(0.5, 2.0)
    step = 1e-6
    for argnum, derivative in enumerate(gradient):
        shift = jnp.array([step, 0.0]) if argnum == 0 else jnp.array([0.0, step])
        plus = mean_value(0.5 + shift[0], 2.0 + shift[1])
        minus = mean_value(0.5 - shift[0], 2.0 - shift[1])
        np.testing.assert_allclose(derivative, (plus - minus) / (2 * step), rtol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="num_points"):
        pde.chebyshev_solve(poisson, (0.0, 1.0), (0.0, 0.0), 2, rtol=1e-8)
    with pytest.raises(ValueError, match="pairs"):
        pde.chebyshev_solve(poisson, (0.0, 1.0, 2.0), (0.0, 0.0), 10, rtol=1e-8)
