"""Chebyshev collocation on rectangles: spectral convergence through the
fast-diagonalisation path, a nonlinear problem, space-time transport through
the dense path, interpolation, dtypes, jit, vmap, gradients, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciax import pde, solvers

DOMAIN = ((0.0, 2.0), (-1.0, 1.0))


def smooth(p):
    return jnp.exp(jnp.sin(2 * p[0])) * jnp.cos(3 * p[1]) + p[0] * p[1]


def laplacian(p):
    return jnp.trace(jax.hessian(smooth)(p))


def poisson(p, u, uxx, uyy):
    return uxx + uyy - laplacian(p)


def max_error(solution, exact, num=41):
    axes = [jnp.linspace(a, b, num) for a, b in DOMAIN]
    points = jnp.stack(jnp.meshgrid(*axes, indexing="ij"), axis=-1)
    truth = jax.vmap(jax.vmap(exact))(points)
    values = solution.on_grid(*axes).astype(truth.dtype)
    return float(jnp.max(jnp.abs(values - truth)))


def test_spectral_convergence_and_one_gmres_step_for_poisson():
    errors = []
    for n in (10, 20, 40):
        solution = pde.chebyshev_solve_box(
            poisson, smooth, DOMAIN, (n, n + 3), rtol=1e-11
        )
        assert solution.result == solvers.RESULTS.successful
        errors.append(max_error(solution, smooth))
    assert errors[1] < 1e-3 * errors[0] and errors[2] < 1e-11
    # the fast-diagonalised Laplacian is the exact inverse: per Newton step
    # one Arnoldi step plus the two true-residual checks
    assert int(solution.stats["num_matvecs"]) <= 3 * int(solution.stats["num_steps"])


def allen_cahn_for(amplitude):
    def equation(p, u, uxx, uyy):
        exact = amplitude * smooth(p)
        source = amplitude * laplacian(p) + exact * (exact**2 - 1)
        return uxx + uyy + u * (u**2 - 1) - source

    return equation


def test_nonlinear_by_newton_and_gmres():
    """u_xx + u_yy - u^3 = f has one solution (the operator is monotone), so
    Newton from zero must find the manufactured one."""

    def equation(p, u, uxx, uyy):
        exact = 2 * smooth(p)
        return uxx + uyy - u**3 - (2 * laplacian(p) - exact**3)

    solution = pde.chebyshev_solve_box(
        equation, lambda p: 2 * smooth(p), DOMAIN, (36, 36), rtol=1e-11
    )
    assert solution.result == solvers.RESULTS.successful
    assert 2 < int(solution.stats["num_steps"]) < 20
    assert max_error(solution, lambda p: 2 * smooth(p)) < 1e-10


def test_newton_stall_is_reported():
    """Allen-Cahn (not monotone) at this amplitude: damped Newton from u = 0
    stalls at a nonzero residual; the result says so instead of returning
    the iterate as a solution."""
    solution = pde.chebyshev_solve_box(
        allen_cahn_for(2.0),
        lambda p: 2 * smooth(p),
        DOMAIN,
        (24, 24),
        rtol=1e-11,
        max_steps=12,
        throw=False,
    )
    assert solution.result == solvers.RESULTS.newton_max_steps_reached
    assert float(solution.stats["residual_norm"]) > 1.0


def test_transport_with_inflow_data_only():
    """u_t + 3 u_x = 0 on (x, t): data on x = 0 and t = 0, the equation
    collocated on the outflow sides, solved with the dense Jacobian."""

    def exact(p):
        return jnp.sin(2 * (p[0] - 3 * p[1]))

    def wrong_on_outflow(p):
        inflow = (p[0] == 0.0) | (p[1] == 0.0)
        return jnp.where(inflow, exact(p), 5.0)

    solution = pde.chebyshev_solve_box(
        lambda p, u, ux, ut: ut + 3 * ux,
        wrong_on_outflow,
        ((0.0, 2.0), (0.0, 1.0)),
        (24, 30),
        derivatives=((1, 0), (0, 1)),
        dirichlet=((True, False), (True, False)),
        rtol=1e-11,
    )
    assert solution.result == solvers.RESULTS.successful
    assert int(solution.stats["num_matvecs"]) == 0
    points = jnp.array([[1.3, 0.7], [2.0, 1.0], [0.1, 0.99]])
    np.testing.assert_allclose(
        solution(points), jax.vmap(exact)(points), rtol=0, atol=1e-10
    )


# slow: the reference solver's interpolation; its values at the grid are
# checked by the convergence test, which runs by default
@pytest.mark.slow
def test_interpolation_matches_grid_and_pointwise():
    solution = pde.chebyshev_solve_box(poisson, smooth, DOMAIN, (16, 18), rtol=1e-11)
    nodes = jnp.stack(jnp.meshgrid(*solution.grids, indexing="ij"), axis=-1)
    np.testing.assert_array_equal(solution(nodes), solution.value)
    x1, x2 = jnp.linspace(0.0, 2.0, 7), jnp.linspace(-1.0, 1.0, 5)
    points = jnp.stack(jnp.meshgrid(x1, x2, indexing="ij"), axis=-1)
    np.testing.assert_allclose(
        solution(points), solution.on_grid(x1, x2), rtol=1e-13, atol=1e-13
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtypes(dtype):
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        pytest.skip("float64 disabled")
    solution = pde.chebyshev_solve_box(
        poisson, smooth, DOMAIN, (24, 24), rtol=1e-5, dtype=dtype
    )
    assert solution.value.dtype == dtype
    assert solution.result == solvers.RESULTS.successful
    assert max_error(solution, smooth) < (2e-4 if dtype == jnp.float32 else 1e-8)


def test_jit_vmap_and_gradient():
    def solve(amplitude):
        def equation(p, u, uxx, uyy):
            return uxx + uyy - amplitude * laplacian(p)

        return pde.chebyshev_solve_box(
            equation, lambda p: amplitude * smooth(p), DOMAIN, (20, 20), rtol=1e-11
        )

    amplitudes = jnp.array([0.5, 2.0])
    batched = jax.jit(jax.vmap(lambda a: solve(a).value))(amplitudes)
    for a, values in zip(amplitudes, batched, strict=True):
        np.testing.assert_allclose(values, solve(a).value, rtol=1e-12, atol=1e-12)

    # the discrete solution is linear in the amplitude: du/da is the
    # solution at amplitude 1
    point = jnp.array([0.7, 0.3])
    derivative = jax.grad(lambda a: solve(a)(point))(1.5)
    np.testing.assert_allclose(derivative, solve(1.0)(point), rtol=1e-10)


def test_bad_input():
    with pytest.raises(ValueError, match="rectangle"):
        pde.chebyshev_solve_box(
            poisson, smooth, ((0.0, 1.0),) * 3, (8, 8, 8), rtol=1e-9
        )
    with pytest.raises(ValueError, match="dirichlet"):
        pde.chebyshev_solve_box(
            poisson, smooth, DOMAIN, (8, 8), dirichlet=(True, True), rtol=1e-9
        )
    with pytest.raises(ValueError, match="boundary array"):
        pde.chebyshev_solve_box(poisson, jnp.zeros((7, 8)), DOMAIN, (8, 8), rtol=1e-9)
    with pytest.raises(ValueError, match="dense"):
        pde.chebyshev_solve_box(
            lambda p, u, ux, ut: ut + ux,
            smooth,
            DOMAIN,
            (120, 120),
            derivatives=((1, 0), (0, 1)),
            dirichlet=((True, False), (True, False)),
            rtol=1e-9,
        )
