import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import sparse

from sciax import solvers
from tests.helpers import assembled_diffusion, diffusion_coefficient


@pytest.mark.parametrize("ndim, n", [(2, 7), (3, 4)])
def test_diffusion_stencil_matches_assembled_matrix(ndim, n):
    coefficient = diffusion_coefficient(n, seed=ndim, ndim=ndim, contrast=1.5)
    reaction = np.random.default_rng(0).normal(size=(n,) * ndim)
    operator = solvers.DiffusionOperator(
        jnp.asarray(coefficient), jnp.asarray(reaction)
    )
    reference = assembled_diffusion(coefficient, reaction)
    vector = np.random.default_rng(1).normal(size=n**ndim)
    np.testing.assert_allclose(
        operator.mv(jnp.asarray(vector)), reference @ vector, rtol=1e-12
    )
    np.testing.assert_allclose(operator.diagonal(), reference.diagonal(), rtol=1e-13)
    assert operator.shape == (n**ndim, n**ndim)


def test_sparse_and_function_operators_agree_with_dense():
    rng = np.random.default_rng(2)
    dense = rng.normal(size=(6, 6)) + 6 * np.eye(6)
    dense[0, 3] = 0.0
    vector = jnp.asarray(rng.normal(size=6))
    as_sparse = solvers.SparseOperator(sparse.BCOO.fromdense(jnp.asarray(dense)))
    as_dense = solvers.MatrixOperator(jnp.asarray(dense))
    as_function = solvers.FunctionOperator(as_dense.mv, 6, jnp.float64)
    for operator in (as_sparse, as_function):
        np.testing.assert_allclose(operator.mv(vector), as_dense.mv(vector), rtol=1e-14)
    np.testing.assert_allclose(as_sparse.diagonal(), np.diag(dense))
    with pytest.raises(TypeError, match="diagonal"):
        as_function.diagonal()


def test_bad_operator_shapes_are_refused():
    with pytest.raises(ValueError, match="square"):
        solvers.MatrixOperator(jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="2-D or 3-D"):
        solvers.DiffusionOperator(jnp.ones(5))
    with pytest.raises(ValueError, match="reaction"):
        solvers.DiffusionOperator(jnp.ones((5, 5)), jnp.ones((2, 2)))


@pytest.mark.parametrize("ndim", [2, 3])
def test_grid_operators_move_fields_to_vectors_and_back(ndim):
    n = 5
    operator = solvers.DiffusionOperator(jnp.asarray(diffusion_coefficient(n, 0, ndim)))
    vector = jnp.arange(float(n**ndim))
    field = operator.to_grid(vector)
    assert field.shape == (n,) * ndim
    ringed = operator.to_grid(vector, boundary=0.0)
    assert ringed.shape == (n + 2,) * ndim
    inner = (slice(1, -1),) * ndim
    np.testing.assert_array_equal(ringed[inner], field)
    assert float(jnp.sum(jnp.abs(ringed))) == float(jnp.sum(jnp.abs(field)))
    # a boundary field keeps its ring; the interior comes from the vector
    outer = jnp.full((n + 2,) * ndim, 7.0)
    np.testing.assert_array_equal(
        operator.to_grid(vector, boundary=outer)[inner], field
    )
    assert float(operator.to_grid(vector, boundary=outer)[(0,) * ndim]) == 7.0
    # both field shapes go back to the vector; jit and vmap work
    np.testing.assert_array_equal(operator.to_vector(field), vector)
    np.testing.assert_array_equal(operator.to_vector(ringed), vector)
    to_vector = jax.jit(lambda field: operator.to_vector(field))
    batch = jax.vmap(to_vector)(jnp.stack([ringed, 2 * ringed]))
    np.testing.assert_array_equal(batch[1], 2 * vector)
    with pytest.raises(ValueError, match="with the boundary ring"):
        operator.to_vector(jnp.zeros((n + 1,) * ndim))
    with pytest.raises(ValueError, match="vector of shape"):
        operator.to_grid(jnp.zeros(n))
