"""The linear problem families: Dirichlet data through boundary_source, and
the heat family (one matrix, many right-hand sides)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciax import pde, solvers
from tests.helpers import diffusion_coefficient


def dense_of(operator):
    return jax.vmap(operator.mv)(jnp.eye(operator.shape[0], dtype=operator.dtype)).T


@pytest.mark.parametrize("shape", [(7, 9), (5, 6, 7)])
def test_boundary_source_reproduces_a_linear_solution(shape):
    # a linear function is discretely harmonic for a = 1: its interior
    # values follow from its boundary values alone
    operator = solvers.DiffusionOperator(jnp.ones(shape))
    axes = np.meshgrid(*[np.linspace(0, 1, s) for s in shape], indexing="ij")
    exact = jnp.asarray(sum((i + 1) * x for i, x in enumerate(axes)) + 0.5)
    interior = exact[tuple(slice(1, -1) for _ in shape)].reshape(-1)
    solved = jnp.linalg.solve(dense_of(operator), operator.boundary_source(exact))
    np.testing.assert_allclose(solved, interior, rtol=1e-12)


def test_boundary_source_is_the_full_operators_coupling():
    coefficient = jnp.asarray(diffusion_coefficient(5, 1))
    operator = solvers.DiffusionOperator(coefficient)
    values = jnp.asarray(np.random.default_rng(0).normal(size=(7, 7)))
    ring = values.at[1:-1, 1:-1].set(0.0)
    # A applied to the ring-only field, on a grid one node larger, gives the
    # couplings (with a minus sign) at the nodes next to the boundary; its
    # spacing is 1/8 instead of 1/6
    larger = solvers.DiffusionOperator(jnp.pad(coefficient, 1, mode="edge"))
    coupling = larger.mv(ring.reshape(-1)).reshape(7, 7) * (6.0 / 8.0) ** 2
    np.testing.assert_allclose(
        operator.boundary_source(values), -coupling[1:-1, 1:-1].reshape(-1), rtol=1e-12
    )
    neumann = solvers.DiffusionOperator(coefficient, boundary="neumann")
    np.testing.assert_array_equal(neumann.boundary_source(values), 0.0)
    with pytest.raises(ValueError, match="shape"):
        operator.boundary_source(values[1:])


def test_heat_sequence_recycles_its_fixed_matrix():
    n, count = 16, 5
    operator = pde.heat_operator(jnp.asarray(diffusion_coefficient(n, 2)), 1.0)
    rng = np.random.default_rng(3)
    boundary = jnp.asarray(rng.normal(size=(count, n + 2, n + 2)))
    rhs = jax.vmap(operator.boundary_source)(boundary)
    solver = solvers.GCRODR(rtol=1e-10, atol=0.0, max_steps=2000, restart=20, recycle=8)
    out = solvers.solve_sequence(
        lambda g: operator, boundary, rhs, solver, order="given"
    )
    assert bool(jnp.all(out.result == solvers.RESULTS.successful))
    matvecs = np.asarray(out.stats["num_matvecs"])
    fresh = np.array(
        [int(solvers.solve(operator, b, solver).stats["num_matvecs"]) for b in rhs]
    )
    # the recycled space stays exact for a fixed matrix: later systems are cheaper
    assert matvecs[1:].mean() < 0.85 * fresh[1:].mean(), (matvecs, fresh)
    with pytest.raises(ValueError, match="time_step"):
        pde.heat_operator(jnp.ones((5, 5)), 0.0)
