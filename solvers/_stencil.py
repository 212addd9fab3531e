"""Matrix-free finite-difference operators on structured grids."""

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._operator import AbstractGridOperator


def _neighbours(ndim, dim):
    """Index tuples selecting entries 0..-2 and 1..-1 along ``dim``."""
    lower = [slice(None)] * ndim
    upper = [slice(None)] * ndim
    lower[dim] = slice(None, -1)
    upper[dim] = slice(1, None)
    return tuple(lower), tuple(upper)


class DiffusionOperator(AbstractGridOperator):
    r"""$A u = -\nabla\cdot(a \nabla u) + c\,u$ on the unit box, 2-D or 3-D,
    with $u = 0$ (Dirichlet) or zero flux (Neumann) on the boundary,
    matrix-free.

    Second-order conservative finite differences on the nodes of a uniform
    grid: with $n_d + 2$ nodes per dimension (boundary included) and spacing
    $h_d = 1/(n_d + 1)$, the unknowns are the $\prod n_d$ interior nodes in
    row-major order, and
    $(Au)_i = \sum_d [a_{i+e_d/2}(u_i - u_{i+e_d}) + a_{i-e_d/2}(u_i - u_{i-e_d})]/h_d^2 + c_i u_i$,
    face coefficients the arithmetic mean of the two nodes (the choice of the
    FNO Darcy benchmark's generator). Each face couples exactly the two nodes
    it separates in its own dimension (the SKR reference builders take the
    vertical couplings from the wrong cells). Symmetric; positive definite for
    $a > 0$, $c \ge 0$; $c < 0$ large enough (Helmholtz, $c = -k^2$) makes it
    indefinite.

    With ``boundary="neumann"`` the faces between the boundary ring and the
    first interior nodes carry no flux (the boundary ring's coefficients are
    then unused): the cell-centred zero-flux discretisation. With $c = 0$ that
    operator is singular (constants are its null space); $Au = b$ is solvable
    for $\sum b = 0$, and CG with ``Multigrid`` solves it.

    Args:
        coefficient: a on all nodes, shape (n_1 + 2, ..., n_d + 2), d = 2 or 3.
        reaction: c on the interior nodes (shape (n_1, ..., n_d)) or a scalar;
            default 0.
        boundary: "dirichlet" (default) or "neumann".
    """

    coefficient: Float[Array, "..."]
    reaction: Float[Array, "..."] | float = 0.0
    boundary: str = eqx.field(default="dirichlet", static=True)
    # every node couples and none is of a special kind
    exterior: ClassVar[None] = None
    cell_types: ClassVar[None] = None
    fluid: ClassVar[None] = None

    def __check_init__(self):
        if self.boundary not in ("dirichlet", "neumann"):
            raise ValueError(
                "DiffusionOperator: boundary must be 'dirichlet' or 'neumann', "
                f"got {self.boundary!r}."
            )
        if self.coefficient.ndim not in (2, 3):
            raise ValueError(
                "DiffusionOperator: coefficient must be 2-D or 3-D (nodes including "
                f"the boundary), got shape {self.coefficient.shape}."
            )
        if min(self.coefficient.shape) < 3:
            raise ValueError(
                "DiffusionOperator: need at least one interior node per dimension, "
                f"got coefficient shape {self.coefficient.shape}."
            )
        reaction = jnp.asarray(self.reaction)
        if reaction.ndim and reaction.shape != self.grid_shape:
            raise ValueError(
                f"DiffusionOperator: reaction must be a scalar or of shape "
                f"{self.grid_shape}, got {reaction.shape}."
            )

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(s - 2 for s in self.coefficient.shape)

    @property
    def shape(self):
        n = 1
        for s in self.grid_shape:
            n *= s
        return (n, n)

    @property
    def dtype(self):
        return self.coefficient.dtype

    def _faces(self, dim):
        """Face coefficients between consecutive nodes along ``dim``, over the
        interior in the other dimensions, divided by h^2."""
        a = self.coefficient
        interior = tuple(
            slice(None) if d == dim else slice(1, -1) for d in range(a.ndim)
        )
        a = a[interior]
        lower, upper = _neighbours(a.ndim, dim)
        h = 1.0 / (a.shape[dim] - 1)
        faces = 0.5 * (a[lower] + a[upper]) / (h * h)
        if self.boundary == "neumann":
            closed = [slice(None)] * a.ndim
            closed[dim] = jnp.array([0, -1])
            faces = faces.at[tuple(closed)].set(0.0)
        return faces

    def mv(self, vector):
        u = vector.reshape(self.grid_shape)
        padded = jnp.pad(u, 1)
        out = jnp.asarray(self.reaction, u.dtype) * u
        for dim in range(u.ndim):
            faces = self._faces(dim)
            interior = tuple(
                slice(None) if d == dim else slice(1, -1) for d in range(u.ndim)
            )
            line = padded[interior]
            # flux through each face, then its difference across each node
            lower, upper = _neighbours(u.ndim, dim)
            flux = faces * (line[lower] - line[upper])
            out = out + flux[upper] - flux[lower]
        return out.reshape(-1)

    def boundary_source(self, values: Float[Array, "..."]) -> Float[Array, " n"]:
        r"""The right-hand-side term of non-zero Dirichlet data: with $u = g$ on
        the boundary ring, the interior values solve $A u = f + $
        ``boundary_source(g)``, the fluxes through the boundary faces,
        $\sum_{\text{boundary faces}} a_f g_b / h^2$ at each adjacent node.
        Zero for ``boundary="neumann"`` (no flux crosses those faces).

        Args:
            values: g on all nodes, shape ``coefficient.shape`` (only the
                boundary ring is read).
        """
        if values.shape != self.coefficient.shape:
            raise ValueError(
                f"boundary_source: values must have the coefficient's shape "
                f"{self.coefficient.shape}, got {values.shape}."
            )
        ndim = values.ndim
        out = jnp.zeros(self.grid_shape, self.dtype)
        for dim in range(ndim):
            faces = self._faces(dim)
            for end in (0, -1):
                ring = tuple(end if d == dim else slice(1, -1) for d in range(ndim))
                face = tuple(
                    slice(end, None)
                    if end == -1 and d == dim
                    else slice(0, 1)
                    if d == dim
                    else slice(None)
                    for d in range(ndim)
                )
                node = tuple(
                    slice(-1, None)
                    if end == -1 and d == dim
                    else slice(0, 1)
                    if d == dim
                    else slice(None)
                    for d in range(ndim)
                )
                flux = faces[face] * jnp.expand_dims(values[ring], dim)
                out = out.at[node].add(flux)
        return out.reshape(-1)

    def diagonal(self):
        diagonal = jnp.broadcast_to(
            jnp.asarray(self.reaction, self.dtype), self.grid_shape
        )
        for dim in range(len(self.grid_shape)):
            faces = self._faces(dim)
            lower, upper = _neighbours(faces.ndim, dim)
            diagonal = diagonal + faces[lower] + faces[upper]
        return diagonal.reshape(-1)
