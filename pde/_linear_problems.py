"""Families of linear PDE operators on the unit square, built from parameters,
for sequences of related systems (the Krylov recycling benchmarks)."""

import jax.numpy as jnp
from jaxtyping import Array, Float

from ..solvers import DiffusionOperator, FunctionOperator


def darcy_operator(log_coefficient: Float[Array, "n2 n2"]) -> DiffusionOperator:
    r"""$-\nabla\cdot(e^{g}\nabla u)$ with $u = 0$ on the boundary: SPD.

    Args:
        log_coefficient: g on all (n + 2)^2 nodes, e.g. a Gaussian random field.
    """
    return DiffusionOperator(jnp.exp(log_coefficient))


def nonsymmetric_darcy_operator(
    log_coefficient: Float[Array, "n2 n2"],
) -> FunctionOperator:
    r"""$u \mapsto -\Delta(a u)$ with $a = e^{g}$ on the interior nodes: the
    5-point Laplacian times diag(a), non-symmetric, eigenvalues positive
    (similar to $a^{1/2}(-\Delta)a^{1/2}$)."""
    laplacian = DiffusionOperator(jnp.ones_like(log_coefficient))
    a = jnp.exp(log_coefficient[1:-1, 1:-1]).reshape(-1)
    return FunctionOperator(
        lambda v: laplacian.mv(a * v),
        a.shape[0],
        a.dtype,
        diagonal_values=laplacian.diagonal() * a,
    )


def helmholtz_operator(
    log_coefficient: Float[Array, "n2 n2"], wavenumber: float
) -> DiffusionOperator:
    r"""$-\Delta u - k(x)^2 u$ with $k = k_0 e^{g/2}$ on the interior nodes and
    $u = 0$ on the boundary: symmetric and, once $k_0^2$ exceeds the first
    Dirichlet eigenvalue $2\pi^2$, indefinite.

    Args:
        log_coefficient: g on all (n + 2)^2 nodes.
        wavenumber: k_0 (resolve it: k_0 h well below 1).
    """
    k2 = wavenumber**2 * jnp.exp(log_coefficient[1:-1, 1:-1])
    return DiffusionOperator(jnp.ones_like(log_coefficient), reaction=-k2)


def heat_operator(
    coefficient: Float[Array, "..."], time_step: float
) -> DiffusionOperator:
    r"""One backward-Euler step of $u_t = \nabla\cdot(a\nabla u) + f$:
    $(I/\Delta t - \nabla\cdot a\nabla)\,u^{k+1} = u^k/\Delta t + f$, SPD. With
    a fixed coefficient and time step the matrix is the same for every step
    and every boundary condition; only the right-hand side changes,
    $u^k/\Delta t + f + $ ``operator.boundary_source(g)`` for boundary data g
    (the heat family of the recycling benchmarks: one matrix, many
    right-hand sides).

    Args:
        coefficient: a on all nodes (boundary included), 2-D or 3-D.
        time_step: $\Delta t > 0$.
    """
    if not time_step > 0:
        raise ValueError(f"heat_operator: time_step must be positive, got {time_step}.")
    return DiffusionOperator(coefficient, reaction=1.0 / time_step)
