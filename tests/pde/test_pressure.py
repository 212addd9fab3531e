"""Pressure Poisson problems: the operator against its dense matrix
(symmetric positive definite, diagonal), sealed pockets, dtypes, jit/vmap
of the cell generator, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciax import pde


def dense(operator):
    n = operator.shape[0]
    return np.asarray(jax.vmap(operator.mv)(jnp.eye(n, dtype=operator.dtype)).T)


@pytest.mark.parametrize("kind", ["box", "obstacles", "free-surface"])
@pytest.mark.parametrize("shape", [(10, 9), (6, 7, 5)])
def test_operator_is_spd_with_its_diagonal(kind, shape):
    cells = pde.pressure_cells(kind, shape, jax.random.key(4))
    operator = pde.PressureOperator(cells)
    matrix = dense(operator)
    np.testing.assert_array_equal(matrix, matrix.T)
    assert np.linalg.eigvalsh(matrix).min() > 1e-3
    np.testing.assert_array_equal(np.diag(matrix), operator.diagonal())
    # solid and air rows are identity rows
    outside = np.asarray(cells != pde.FLUID).reshape(-1)
    np.testing.assert_array_equal(matrix[outside][:, outside], np.eye(outside.sum()))


def test_stencil_on_a_known_cell():
    cells = pde.pressure_cells("box", (5, 5))
    operator = pde.PressureOperator(cells)
    # cell (0, 3): wall on the left (x = -1), air above (y = 4)
    e = jnp.zeros((5, 5)).at[0, 3].set(1.0).reshape(-1)
    column = operator.mv(e).reshape(5, 5)
    assert float(column[0, 3]) == 3.0  # right, below, and the air face
    assert float(column[1, 3]) == -1.0 and float(column[0, 2]) == -1.0
    assert float(column[0, 4]) == 0.0  # the air cell's row is decoupled


def test_pockets_cut_off_from_air_are_sealed():
    cells = jnp.full((7, 7), pde.FLUID).at[:, -1].set(pde.AIR)
    # a closed ring of solid around the cell (2, 2)
    ring = [(1, 1), (1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2), (3, 3)]
    for i, j in ring:
        cells = cells.at[i, j].set(pde.SOLID)
    sealed = pde._pressure._seal_pockets(cells)
    assert int(sealed[2, 2]) == pde.SOLID
    assert int(jnp.sum(sealed != cells)) == 1


def test_dtypes_jit_and_vmap():
    keys = jax.random.split(jax.random.key(0), 3)
    cells = jax.jit(jax.vmap(lambda k: pde.pressure_cells("obstacles", (16, 12), k)))(
        keys
    )
    assert cells.shape == (3, 16, 12)
    assert len({bytes(np.asarray(c)) for c in cells}) == 3
    for dtype in ("float32", jnp.float32, np.dtype("float64"), jnp.float64):
        operator = pde.PressureOperator(cells[0], dtype=dtype)
        assert operator.dtype == jnp.dtype(dtype)
        x = jnp.ones(operator.shape[0], dtype)
        assert operator.mv(x).dtype == jnp.dtype(dtype)
        assert operator.fluid.dtype == jnp.dtype(dtype)
        assert operator.diagonal().dtype == jnp.dtype(dtype)
    assert pde.PressureOperator(cells[0]).dtype == jnp.zeros(0).dtype
    # static: two dtypes are two operators, one compiled function each
    assert jax.tree.structure(
        pde.PressureOperator(cells[0], "float32")
    ) != jax.tree.structure(pde.PressureOperator(cells[0], "float64"))


def test_bad_input():
    with pytest.raises(ValueError, match="kind"):
        pde.pressure_cells("sphere", (8, 8), jax.random.key(0))
    with pytest.raises(ValueError, match="needs a key"):
        pde.pressure_cells("obstacles", (8, 8))
    with pytest.raises(ValueError, match="2-D or 3-D"):
        pde.pressure_cells("box", (8,))
    with pytest.raises(ValueError, match="2-D or 3-D"):
        pde.PressureOperator(jnp.zeros(8, jnp.int32))
    cells = pde.pressure_cells("box", (8, 8))
    for dtype in ("int32", jnp.complex64, bool):
        with pytest.raises(TypeError, match="real float dtype"):
            pde.PressureOperator(cells, dtype=dtype)
    with pytest.raises(TypeError, match="float dtype or its name"):
        pde.PressureOperator(cells, dtype="float-ish")
