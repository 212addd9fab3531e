"""Deflated (recycled) conjugate gradients for sequences of SPD systems."""

from typing import ClassVar

import jax
import jax.numpy as jnp
from jax import lax

from .._solver import (
    AbstractLinearSolver,
    check_count,
    check_tolerances,
    count_field,
    matmul,
    tolerance_field,
)
from ._cg import conjugate_gradient_loop
from ._recycle_state import (
    RecycleState,
    check_recycle_state,
    empty_recycle_state,
    recycle_size,
)


def _ritz_space(vectors, images, k):
    """The k Ritz vectors of A with the smallest Ritz values in the span of
    the rows of ``vectors`` (``images`` = their products with A). Rows that
    are zero or dependent are dropped through the eigen-decomposition of the
    Gram matrix, so a short solve (fewer directions than collected) is fine."""
    gram = matmul(vectors, vectors.T)
    projected = matmul(vectors, images.T)
    projected = 0.5 * (projected + projected.T)
    sigma, basis = jnp.linalg.eigh(gram)
    keep = sigma > jnp.finfo(gram.dtype).eps * jnp.max(sigma) * gram.shape[0]
    whiten = (
        basis
        * jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, sigma, 1.0)), 0.0)[None, :]
    )
    reduced = matmul(whiten.T, matmul(projected, whiten))
    huge = jnp.max(jnp.abs(reduced)) * 1e6 + 1.0
    reduced = reduced + jnp.diag(jnp.where(keep, 0.0, huge))
    _, ritz = jnp.linalg.eigh(reduced)
    combination = matmul(whiten, ritz[:, :k])
    return matmul(combination.T, vectors), jnp.sum(keep) >= k


class RecycledCG(AbstractLinearSolver):
    r"""Deflated CG: CG on the A-orthogonal complement of a recycled space W.

    With $E = W A W^T$ (k x k), the start is corrected by
    $x_0 \leftarrow x_0 + W^T E^{-1} W r_0$ and every search direction is made
    A-orthogonal to W, $p \leftarrow z + \beta p - W^T E^{-1} (AW) z$, so the
    k eigen-directions W approximates no longer slow the iteration; CG's
    short recurrence is kept (one matvec per step; $AW$ is computed once per
    system with k matvecs). The first ``collect`` search directions of a
    solve and the current W give, by Rayleigh-Ritz, the k Ritz vectors with
    the smallest Ritz values: the recycle space for the next system
    (``Solution.state``). A and M must be SPD.

    Stopping test: ``||b - A x||_2 <= max(rtol ||b||_2, atol)`` on the true
    residual (checked when the recursive one proposes convergence).

    Args:
        rtol: relative tolerance (required).
        atol: absolute tolerance (required).
        max_steps: iteration limit.
        recycle: k, the dimension of the recycled space.
        collect: how many search directions feed the next space.

    References:
        Saad, Yeung, Erhel & Guyomarc'h, "A deflated version of the conjugate
        gradient algorithm", SIAM J. Sci. Comput. 21 (2000); Parks et al. 2006
        (recycling across a sequence).
    """

    rtol: float = tolerance_field()
    atol: float = tolerance_field()
    max_steps: int = count_field()
    symmetric: ClassVar[bool] = True
    recycle: int = count_field(default=10)
    collect: int = count_field(default=30)

    def __check_init__(self):
        check_tolerances(self)
        check_count(self, "recycle")
        check_count(self, "collect")

    def bind(self, operator):
        """Itself: the method reads nothing of the operator but its matvec."""
        return self

    def init_state(self, operator, b):
        return empty_recycle_state(self.recycle, b)

    def compute(self, operator, b, x0, preconditioner, state, unrolled):
        k = recycle_size(self.recycle, b.shape[0])
        check_recycle_state(state, self.recycle, b)
        dtype = b.dtype
        w = jnp.where(state.valid, state.basis, 0.0)
        a_w = lax.cond(
            state.valid, lambda: jax.vmap(operator.mv)(w), lambda: jnp.zeros_like(w)
        )
        energy = matmul(w, a_w.T)
        energy = 0.5 * (energy + energy.T)
        # Without a valid space W = 0: E = I keeps the projections exact zeros.
        energy = jnp.where(state.valid, energy, jnp.eye(k, dtype=dtype))
        factor = jax.scipy.linalg.cho_factor(energy)

        def deflate(vector):
            """W^T E^{-1} (AW) vector: the A-orthogonal projection onto W."""
            return matmul(jax.scipy.linalg.cho_solve(factor, matmul(a_w, vector)), w)

        r = b - operator.mv(x0)
        coefficients = jax.scipy.linalg.cho_solve(factor, matmul(w, r))
        x = x0 + matmul(coefficients, w)
        r = r - matmul(coefficients, a_w)
        # the initial residual, and A W when there is a space
        matvecs = jnp.where(state.valid, 1 + k, 1)
        x, r, result, stats, directions, images = conjugate_gradient_loop(
            self,
            operator,
            b,
            x,
            r,
            preconditioner,
            matvecs,
            unrolled,
            deflate=deflate,
            collect=self.collect,
        )
        candidates = jnp.concatenate([w, directions])
        candidate_images = jnp.concatenate([a_w, images])
        new_basis, enough = _ritz_space(
            lax.stop_gradient(candidates), lax.stop_gradient(candidate_images), k
        )
        new_state = RecycleState(
            basis=jnp.where(enough, new_basis, state.basis),
            valid=enough | state.valid,
        )
        return x, result, stats, new_state
