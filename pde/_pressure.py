"""Pressure Poisson systems of incompressible-flow solvers on 2-D and 3-D
grids with solid obstacles and free surfaces: the problems of the learned
conjugate-direction solver (Kaneda et al., ICML 2023)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float, Int

from ..solvers import AbstractGridOperator

FLUID, SOLID, AIR = 0, 1, 2


def _shift(array, axis, step, fill):
    """``array`` moved by ``step`` (+1 or -1) along ``axis``, the vacated
    layer filled with ``fill``: the neighbour of every cell in one
    direction, cells outside the grid counting as ``fill``."""
    pad = [(0, 0)] * array.ndim
    pad[axis] = (1, 0) if step > 0 else (0, 1)
    padded = jnp.pad(array, pad, constant_values=fill)
    index = [slice(None)] * array.ndim
    index[axis] = slice(0, -1) if step > 0 else slice(1, None)
    return padded[tuple(index)]


def _float_dtype(dtype):
    """``dtype`` (a dtype, a scalar type or a name; None: the default
    float) as a NumPy dtype, refusing anything but a real float."""
    if dtype is None:
        return jnp.zeros(0).dtype
    try:
        dtype = jnp.dtype(dtype)
    except TypeError as error:
        raise TypeError(
            f"PressureOperator: dtype must be a float dtype or its name, e.g. "
            f"jnp.float32 or 'float64'; got {dtype!r}."
        ) from error
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"PressureOperator: dtype must be a real float dtype, e.g. jnp.float32 "
            f"or 'float64'; got {dtype}."
        )
    return dtype


class PressureOperator(AbstractGridOperator):
    r"""The pressure Poisson matrix of a marker-and-cell fluid solver,
    matrix-free on the whole grid.

    Cells are ``FLUID`` (unknown pressure), ``SOLID`` (walls and obstacles:
    zero normal velocity, a Neumann face) or ``AIR`` (free surface: p = 0, a
    Dirichlet face); outside the grid is solid. With unit spacing, for a
    fluid cell i
    $(Ap)_i = \sum_{j \in N(i),\,j\ \mathrm{fluid}} (p_i - p_j)
    + \#\{j \in N(i)\ \mathrm{air}\}\, p_i$,
    and $(Ap)_i = p_i$ on solid and air cells (decoupled identity rows, so
    vectors live on the full grid and a convolutional network can read
    them). Symmetric; positive definite when every connected fluid region
    touches air (``pressure_cells`` makes sure of that).

    Args:
        cell_types: int array of the grid, 2-D or 3-D.
        dtype: the dtype of the vectors it acts on: a float dtype or its
            name (``jnp.float32``, ``np.dtype("float64")``, ``"float32"``);
            default JAX's default float.
    """

    cell_types: Int[Array, "..."]
    vector_dtype: jnp.dtype = eqx.field(static=True)

    def __init__(self, cell_types, dtype=None):
        self.cell_types = cell_types
        self.vector_dtype = _float_dtype(dtype)

    def __check_init__(self):
        if self.cell_types.ndim not in (2, 3):
            raise ValueError(
                "PressureOperator: cell_types must be a 2-D or 3-D grid, got shape "
                f"{self.cell_types.shape}."
            )

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(self.cell_types.shape)

    @property
    def shape(self):
        size = int(np.prod(self.grid_shape))
        return (size, size)

    @property
    def dtype(self):
        return self.vector_dtype

    @property
    def boundary(self) -> str:
        """Outside the grid is solid: Neumann faces. ``solvers.Multigrid``
        reads this to interpolate up to the walls (with zero beyond them,
        its Dirichlet default, PCG needed 15/20/27 iterations to 1e-4 on
        the box at 32^3/64^3/128^3 instead of a flat 4)."""
        return "neumann"

    @property
    def exterior(self) -> Array:
        """The solid cells: outside the domain, behind Neumann faces, with
        decoupled identity rows. ``solvers.Multigrid`` reads this to keep
        its interpolation off them (air cells, behind Dirichlet faces,
        stay in: their identity rows are the right penalty there)."""
        return self.cell_types == SOLID

    @property
    def fluid(self) -> Float[Array, "..."]:
        """1 on fluid cells, 0 elsewhere (the cells whose rows couple)."""
        return (self.cell_types == FLUID).astype(self.dtype)

    def mv(self, vector):
        p = vector.reshape(self.grid_shape)
        fluid = self.cell_types == FLUID
        total = jnp.zeros_like(p)
        for axis in range(p.ndim):
            for step in (1, -1):
                neighbour = _shift(self.cell_types, axis, step, SOLID)
                value = _shift(p, axis, step, 0)
                open_face = neighbour != SOLID
                total = total + jnp.where(
                    open_face, p - jnp.where(neighbour == FLUID, value, 0), 0
                )
        return jnp.where(fluid, total, p).reshape(-1)

    def diagonal(self):
        fluid = self.cell_types == FLUID
        count = jnp.zeros(self.grid_shape, self.dtype)
        for axis in range(len(self.grid_shape)):
            for step in (1, -1):
                neighbour = _shift(self.cell_types, axis, step, SOLID)
                count = count + (neighbour != SOLID).astype(self.dtype)
        return jnp.where(fluid, count, 1).reshape(-1)


def _seal_pockets(cell_types):
    """Fluid cells with no path through fluid to air become solid: such a
    pocket would make the matrix singular (pressure fixed only up to a
    constant there)."""
    fluid = cell_types == FLUID

    def grow(state):
        reached, _ = state
        new = reached
        for axis in range(cell_types.ndim):
            for step in (1, -1):
                new = new | (_shift(reached, axis, step, False) & fluid)
        return new, jnp.any(new != reached)

    reached, _ = lax.while_loop(
        lambda s: s[1], grow, (cell_types == AIR, jnp.asarray(True))
    )
    return jnp.where(fluid & ~reached, SOLID, cell_types)


def _centres(shape):
    """Cell centres in [0, 1]^d, shape (d, *shape)."""
    axes = [(jnp.arange(n, dtype=float) + 0.5) / n for n in shape]
    return jnp.stack(jnp.meshgrid(*axes, indexing="ij"))


def pressure_cells(kind: str, shape, key=None, num_obstacles: int = 6):
    r"""Cell types (``FLUID``/``SOLID``/``AIR``) of one pressure problem on a
    2-D or 3-D grid; the last axis points up.

    kinds:
        - "box": fluid filling a closed box whose top layer is air.
        - "obstacles": the same with ``num_obstacles`` random solid boxes and
          balls (sizes 5-25% of the box).
        - "free-surface": air above a smooth random surface
          $h(x) = 0.6 + \sum_k a_k \sin(2\pi k\cdot x + \phi_k)$ (a sloshing
          tank), fluid below, plus two random obstacles under it.

    Fluid pockets cut off from the air by obstacles are made solid, so the
    operator is positive definite. ``key`` is required for the random kinds.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or min(shape) < 4:
        raise ValueError(
            f"pressure_cells: shape must be 2-D or 3-D, >= 4 per axis; got {shape}."
        )
    if kind not in ("box", "obstacles", "free-surface"):
        raise ValueError(
            "pressure_cells: kind must be 'box', 'obstacles' or 'free-surface'; "
            f"got {kind!r}."
        )
    if kind != "box" and key is None:
        raise ValueError(f"pressure_cells: kind {kind!r} needs a key.")
    ndim = len(shape)
    centres = _centres(shape)
    cells = jnp.full(shape, FLUID, jnp.int32)
    cells = cells.at[(slice(None),) * (ndim - 1) + (-1,)].set(AIR)
    if kind == "box":
        return cells
    if kind == "free-surface":
        key, surface_key = jax.random.split(key)
        wave_keys = jax.random.split(surface_key, 3)
        height = jnp.full(shape, 0.6)
        for k, wave_key in enumerate(wave_keys, start=1):
            amplitude_key, direction_key, phase_key = jax.random.split(wave_key, 3)
            amplitude = 0.12 / k * jax.random.uniform(amplitude_key)
            direction = jax.random.normal(direction_key, (ndim - 1,))
            direction = direction / jnp.linalg.norm(direction)
            phase = 2 * jnp.pi * jax.random.uniform(phase_key)
            argument = sum(direction[j] * centres[j] for j in range(ndim - 1))
            height = height + amplitude * jnp.sin(2 * jnp.pi * k * argument + phase)
        cells = jnp.where(centres[-1] > height, AIR, cells)
        num_obstacles = 2
    obstacle_keys = jax.random.split(key, num_obstacles)
    for obstacle_key in obstacle_keys:
        kind_key, centre_key, size_key = jax.random.split(obstacle_key, 3)
        centre = jax.random.uniform(centre_key, (ndim,), minval=0.15, maxval=0.75)
        size = jax.random.uniform(size_key, (ndim,), minval=0.05, maxval=0.25)
        offset = centres - centre.reshape((ndim,) + (1,) * ndim)
        half = (size / 2).reshape((ndim,) + (1,) * ndim)
        inside_box = jnp.all(jnp.abs(offset) <= half, axis=0)
        inside_ball = jnp.sum(offset**2, axis=0) <= jnp.max(half) ** 2
        is_ball = jax.random.bernoulli(kind_key)
        inside = jnp.where(is_ball, inside_ball, inside_box)
        cells = jnp.where(inside & (cells == FLUID), SOLID, cells)
    return _seal_pockets(cells)
