"""Conjugate gradients, preconditioned."""

from typing import ClassVar

import jax.numpy as jnp

from ..._results import RESULTS
from .._solver import (
    AbstractLinearSolver,
    check_tolerances,
    dot,
    iterate,
    make_stats,
    norm,
    tolerance,
)


class CG(AbstractLinearSolver):
    r"""Preconditioned conjugate gradients for symmetric positive definite A.

    Minimises the A-norm of the error over the Krylov space of $M A$:
    $x_{j+1} = x_j + \alpha_j p_j$, $\alpha_j = r_j^T z_j / p_j^T A p_j$,
    $z = M r$, $p_{j+1} = z_{j+1} + \beta_j p_j$, $\beta_j = r_{j+1}^T z_{j+1} / r_j^T z_j$.
    M must be SPD as well.

    Stopping test: ``||b - A x||_2 <= max(rtol ||b||_2, atol)`` on the true
    residual. The recursive residual only proposes convergence; the true
    residual (one extra matvec) decides, and if it fails the iteration
    restarts from it instead of reporting a drifted residual.

    A direction with $p^T A p \le 0$ (A not SPD) ends the solve with
    ``RESULTS.breakdown``.

    Args:
        rtol: relative tolerance (required).
        atol: absolute tolerance (required).
        max_steps: iteration limit.

    References:
        Hestenes & Stiefel, J. Res. NBS 49 (1952); Saad, "Iterative Methods for
        Sparse Linear Systems", 2nd ed., Alg. 9.1.
    """

    rtol: float
    atol: float
    max_steps: int
    symmetric: ClassVar[bool] = True

    def __check_init__(self):
        check_tolerances(self)

    def bind(self, operator):
        """Itself: the method reads nothing of the operator but its matvec."""
        return self

    def init_state(self, operator, b):
        return None

    def compute(self, operator, b, x0, preconditioner, state, unrolled):
        r = b - operator.mv(x0)
        x, r, result, stats, _, _ = conjugate_gradient_loop(
            self, operator, b, x0, r, preconditioner, jnp.asarray(1), unrolled
        )
        return x, result, stats, None


def conjugate_gradient_loop(
    solver,
    operator,
    b,
    x,
    r,
    preconditioner,
    matvecs,
    unrolled,
    deflate=None,
    collect=0,
):
    """PCG from (x, r = b - A x); shared by CG and RecycledCG.

    ``deflate(v)`` (RecycledCG) is subtracted from every new direction to keep
    it A-orthogonal to the recycled space; the first ``collect`` directions and
    their images under A are returned for the next recycled space.

    Returns:
        (x, r, result, stats, directions, images).
    """
    dtype = b.dtype
    limit = tolerance(solver, norm(b))

    def direction(z):
        return z if deflate is None else z - deflate(z)

    z = preconditioner(r)
    history = jnp.full(solver.max_steps, jnp.nan, dtype)
    collected = jnp.zeros((collect, b.shape[0]), dtype)
    init = (
        x,
        r,
        direction(z),
        dot(r, z),
        jnp.asarray(0),
        matvecs,
        norm(r) <= limit,
        RESULTS.successful,
        history,
        collected,
        collected,
    )

    def cond(carry):
        step, done = carry[4], carry[6]
        return (~done) & (step < solver.max_steps)

    def body(carry):
        x, r, p, rz, step, matvecs, _, _, history, directions, images = carry
        ap = operator.mv(p)
        curvature = dot(p, ap)
        alpha = rz / curvature
        if collect:
            directions = directions.at[step].set(p, mode="drop")
            images = images.at[step].set(ap, mode="drop")
        x = x + alpha * p
        r = r - alpha * ap
        r_norm = norm(r)
        history = history.at[step].set(r_norm)
        proposed = r_norm <= limit

        # The recursive residual says converged: check the true one.
        true_r = jnp.where(proposed, b - operator.mv(x), r)
        matvecs = matvecs + 1 + proposed.astype(matvecs.dtype)
        converged = proposed & (norm(true_r) <= limit)
        r = true_r
        z = preconditioner(r)
        rz_new = dot(r, z)
        # After a failed check, restart the directions from the true residual.
        beta = jnp.where(proposed, 0.0, rz_new / rz).astype(dtype)
        p = direction(z) + beta * p
        broke = ~(curvature > 0)
        finite = jnp.isfinite(r_norm) & jnp.isfinite(alpha)
        result = RESULTS.where(
            ~finite,
            RESULTS.nonfinite,
            RESULTS.where(broke, RESULTS.breakdown, RESULTS.successful),
        )
        done = converged | broke | ~finite
        return (
            x,
            r,
            p,
            rz_new,
            step + 1,
            matvecs,
            done,
            result,
            history,
            directions,
            images,
        )

    final = iterate(cond, body, init, solver.max_steps, unrolled)
    x, r, _, _, steps, matvecs, done, result, history, directions, images = final
    result = RESULTS.where(done | (norm(r) <= limit), result, RESULTS.max_steps_reached)
    stats = make_stats(steps, matvecs, norm(r), history)
    return x, r, result, stats, directions, images
