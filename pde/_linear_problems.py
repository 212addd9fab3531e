"""Families of linear PDE operators on the unit square, built from parameters,
for sequences of related systems (the Krylov recycling benchmarks)."""

import jax.numpy as jnp
from jaxtyping import Array, Float

from solvers import DiffusionOperator, FunctionOperator


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
