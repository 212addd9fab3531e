"""Linear operators for the Krylov solvers.

Every solver only needs y = A x (``mv``) on 1-D arrays; ``diagonal`` serves
Jacobi preconditioning. ``as_operator`` turns a dense array, a
``jax.experimental.sparse.BCOO`` matrix, a ``scipy.sparse`` matrix or array
or a callable into an operator, so ``solve`` accepts any of them.
"""

import abc
import sys
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import scipy.sparse
from jax import lax
from jax.experimental import sparse
from jaxtyping import Array, Float


def _to_bcoo(matrix):
    """scipy.sparse (any format, matrix or array class) -> BCOO, converted
    once here: inside a solve, scipy's objects would be unhashable static
    data. Duplicate entries are kept and summed by the product, as in scipy."""
    if scipy.sparse.issparse(matrix):
        return sparse.BCOO.from_scipy_sparse(matrix)
    return matrix


def _to_dense(matrix):
    if scipy.sparse.issparse(matrix):
        return jnp.asarray(matrix.toarray())
    return matrix


class LinearOperator(eqx.Module):
    """A square linear map x -> A x on 1-D arrays (abstract)."""

    @abc.abstractmethod
    def mv(self, vector: Float[Array, " n"]) -> Float[Array, " n"]:
        """A @ vector."""

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, int]:
        """(n, n)."""

    @property
    @abc.abstractmethod
    def dtype(self) -> jnp.dtype:
        """The dtype of A and of the vectors it acts on."""

    @abc.abstractmethod
    def diagonal(self) -> Float[Array, " n"]:
        """diag(A); raises TypeError where the operator cannot provide it."""


class AbstractGridOperator(LinearOperator):
    """A linear operator whose unknowns are the nodes (or cells) of a regular
    2-D or 3-D grid, flattened in row-major order (abstract).

    This is the structure that ``Multigrid`` and ``LearnedConjugateDirections``
    read, declared instead of looked up by attribute name, so that any
    package's grid operator (``DiffusionOperator`` here,
    ``sciax.pde.PressureOperator``) plugs into them.

    Attributes:
        grid_shape: the grid, ``prod(grid_shape) == shape[0]``.
        boundary: "dirichlet" (zero beyond the grid) or "neumann" (no flux
            through the grid's faces): how multigrid interpolates next to
            the boundary.
        exterior: a boolean grid of the unknowns behind Neumann faces
            (decoupled identity rows that multigrid keeps its interpolation
            off), or None when there are none.
        cell_types: an integer grid of cell kinds for networks trained on
            them, or None.
        fluid: 1 on the unknowns whose rows couple to their neighbours and 0
            on decoupled identity rows (learned directions are restricted to
            it), or None when every row couples.
    """

    grid_shape: eqx.AbstractVar[tuple[int, ...]]
    boundary: eqx.AbstractVar[str]
    exterior: eqx.AbstractVar[Array | None]
    cell_types: eqx.AbstractVar[Array | None]
    fluid: eqx.AbstractVar[Array | None]

    def to_vector(self, field: Float[Array, "..."]) -> Float[Array, " n"]:
        """A field on the grid as the solver's vector: ``field`` on the
        unknowns (shape ``grid_shape``), or on the grid with its ring of
        boundary nodes (every axis 2 longer, as ``pde.darcy_samples``'
        solutions and a neural operator's outputs), whose ring is dropped.
        Batch with ``jax.vmap``."""
        field = jnp.asarray(field)
        ringed = tuple(size + 2 for size in self.grid_shape)
        if field.shape == ringed:
            field = field[(slice(1, -1),) * field.ndim]
        elif field.shape != self.grid_shape:
            raise ValueError(
                f"to_vector: a field of shape {self.grid_shape} (the unknowns) or "
                f"{ringed} (with the boundary ring) was expected, got {field.shape}."
            )
        return field.reshape(-1)

    def to_grid(
        self, vector: Float[Array, " n"], *, boundary=None
    ) -> Float[Array, "..."]:
        """The solver's vector as a field of shape ``grid_shape``; with
        ``boundary`` (a value, e.g. 0.0 for homogeneous Dirichlet data, or
        the boundary field itself on the ringed grid) the ring of boundary
        nodes is added (every axis 2 longer). Batch with ``jax.vmap``."""
        vector = jnp.asarray(vector)
        if vector.shape != (self.shape[0],):
            raise ValueError(
                f"to_grid: a vector of shape ({self.shape[0]},) was expected, "
                f"got {vector.shape}."
            )
        field = vector.reshape(self.grid_shape)
        if boundary is None:
            return field
        ringed = tuple(size + 2 for size in self.grid_shape)
        outer = jnp.broadcast_to(jnp.asarray(boundary, field.dtype), ringed)
        return outer.at[(slice(1, -1),) * field.ndim].set(field)


class MatrixOperator(LinearOperator):
    """A dense n x n matrix. Products run at ``Precision.HIGHEST`` (on GPUs a
    default-precision float32 matmul may use TF32, 10-bit mantissas). A
    ``scipy.sparse`` matrix given here is made dense; ``SparseOperator``
    keeps it sparse."""

    matrix: Float[Array, "n n"] = eqx.field(converter=_to_dense)

    def __check_init__(self):
        if self.matrix.ndim != 2 or self.matrix.shape[0] != self.matrix.shape[1]:
            raise ValueError(
                f"MatrixOperator needs a square 2-D matrix, got shape {self.matrix.shape}."
            )

    def mv(self, vector):
        return jnp.matmul(self.matrix, vector, precision=lax.Precision.HIGHEST)

    @property
    def shape(self):
        return self.matrix.shape

    @property
    def dtype(self):
        return self.matrix.dtype

    def diagonal(self):
        return jnp.diagonal(self.matrix)


class SparseOperator(LinearOperator):
    """A square ``jax.experimental.sparse.BCOO`` matrix (duplicates are
    summed), or a ``scipy.sparse`` matrix or array of any format, converted
    to BCOO when the operator is built."""

    matrix: sparse.BCOO = eqx.field(converter=_to_bcoo)

    def __check_init__(self):
        if len(self.matrix.shape) != 2 or self.matrix.shape[0] != self.matrix.shape[1]:
            raise ValueError(
                f"SparseOperator needs a square 2-D BCOO matrix, got shape {self.matrix.shape}."
            )

    def mv(self, vector):
        return self.matrix @ vector

    @property
    def shape(self):
        return tuple(self.matrix.shape)

    @property
    def dtype(self):
        return self.matrix.dtype

    def diagonal(self):
        rows, cols = self.matrix.indices[:, 0], self.matrix.indices[:, 1]
        on_diagonal = jnp.where(rows == cols, self.matrix.data, 0)
        return jnp.zeros(self.shape[0], self.dtype).at[rows].add(on_diagonal)


class FunctionOperator(LinearOperator):
    """A matrix-free operator from a function ``matvec(x) -> A x``.

    Args:
        matvec: linear function of a 1-D array of length n.
        size: n.
        dtype: dtype of the vectors.
        diagonal_values: diag(A), if known (needed by ``Jacobi``).
    """

    matvec: Callable
    size: int = eqx.field(static=True)
    vector_dtype: jnp.dtype = eqx.field(static=True)
    diagonal_values: Float[Array, " n"] | None = None

    def __init__(self, matvec, size, dtype, diagonal_values=None):
        self.matvec = matvec
        self.size = int(size)
        self.vector_dtype = jnp.dtype(dtype)
        self.diagonal_values = diagonal_values

    def mv(self, vector):
        return self.matvec(vector)

    @property
    def shape(self):
        return (self.size, self.size)

    @property
    def dtype(self):
        return self.vector_dtype

    def diagonal(self):
        if self.diagonal_values is None:
            raise TypeError(
                "This FunctionOperator has no diagonal: pass "
                "FunctionOperator(matvec, size, dtype, diagonal_values=...) to use Jacobi."
            )
        return self.diagonal_values


def is_lineax_operator(operator) -> bool:
    """Whether ``operator`` is a ``lineax.AbstractLinearOperator``, without
    importing lineax (an optional extra): if no one has imported it, no
    lineax operator can exist."""
    lineax = sys.modules.get("lineax")
    return lineax is not None and isinstance(operator, lineax.AbstractLinearOperator)


def as_operator(operator, like: Array) -> LinearOperator:
    """Normalise what ``solve`` accepts (operator, array, BCOO, callable or
    lineax operator)."""
    if isinstance(operator, LinearOperator):
        return operator
    if is_lineax_operator(operator):
        from ._lineax import LineaxOperator

        return LineaxOperator(operator)
    if isinstance(operator, sparse.BCOO) or scipy.sparse.issparse(operator):
        return SparseOperator(operator)
    if isinstance(operator, jax.Array | jnp.ndarray) or hasattr(operator, "__array__"):
        return MatrixOperator(jnp.asarray(operator))
    if callable(operator):
        return FunctionOperator(operator, like.shape[0], like.dtype)
    raise TypeError(
        "operator must be a LinearOperator, a square array, a BCOO or "
        f"scipy.sparse matrix or a callable matvec; got {type(operator).__name__}."
    )
