"""Conjugate gradients, preconditioned."""

from typing import ClassVar, NamedTuple

import jax.numpy as jnp
from jaxtyping import Array

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
    limit = tolerance(solver, norm(b))

    def direction(z):
        return z if deflate is None else z - deflate(z)

    init = _initial_carry(
        solver, b, x, r, preconditioner, matvecs, direction, limit, collect
    )

    def cond(carry):
        return (~carry.done) & (carry.step < solver.max_steps)

    def body(carry):
        return _iteration(carry, operator, b, preconditioner, direction, limit, collect)

    final = iterate(cond, body, init, solver.max_steps, unrolled)
    return _outcome(final, limit)


class _Carry(NamedTuple):
    """The loop state: iterate, residual, direction, $r^Tz$, counters, the
    outcome so far, and the directions and images collected for recycling."""

    x: Array
    r: Array
    p: Array
    rz: Array
    step: Array
    matvecs: Array
    done: Array
    result: RESULTS
    history: Array
    directions: Array
    images: Array


def _initial_carry(solver, b, x, r, preconditioner, matvecs, direction, limit, collect):
    """The state before the first step: $p_0 = z_0 = M r_0$ (deflated), done
    already if $r_0$ meets the tolerance."""
    dtype = b.dtype
    z = preconditioner(r)
    history = jnp.full(solver.max_steps, jnp.nan, dtype)
    collected = jnp.zeros((collect, b.shape[0]), dtype)
    return _Carry(
        x=x,
        r=r,
        p=direction(z),
        rz=dot(r, z),
        step=jnp.asarray(0),
        matvecs=matvecs,
        done=norm(r) <= limit,
        result=RESULTS.successful,
        history=history,
        directions=collected,
        images=collected,
    )


def _iteration(carry, operator, b, preconditioner, direction, limit, collect):
    """One PCG step, with the true-residual check when the recursive residual
    proposes convergence, and the step's outcome."""
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
    beta = jnp.where(proposed, 0.0, rz_new / rz).astype(b.dtype)
    p = direction(z) + beta * p
    broke = ~(curvature > 0)
    finite = jnp.isfinite(r_norm) & jnp.isfinite(alpha)
    result = step_result(finite, broke)
    done = converged | broke | ~finite
    return _Carry(
        x=x,
        r=r,
        p=p,
        rz=rz_new,
        step=step + 1,
        matvecs=matvecs,
        done=done,
        result=result,
        history=history,
        directions=directions,
        images=images,
    )


def _outcome(final, limit):
    """(x, r, result, stats, directions, images) of the finished loop."""
    result, stats = loop_result(
        final.done,
        final.result,
        final.r,
        limit,
        final.step,
        final.matvecs,
        final.history,
    )
    return final.x, final.r, result, stats, final.directions, final.images


def step_result(finite, broke):
    r"""The outcome of one conjugate-direction step: nonfinite, breakdown
    ($p^TAp \le 0$: A is not SPD) or, so far, successful. Shared with
    LearnedConjugateDirections."""
    return RESULTS.where(
        ~finite,
        RESULTS.nonfinite,
        RESULTS.where(broke, RESULTS.breakdown, RESULTS.successful),
    )


def loop_result(done, result, r, limit, steps, matvecs, history):
    """The result and stats of a finished conjugate-direction loop: one that
    stopped on neither convergence nor a failure ran out of steps. Shared
    with LearnedConjugateDirections."""
    r_norm = norm(r)
    result = RESULTS.where(done | (r_norm <= limit), result, RESULTS.max_steps_reached)
    return result, make_stats(steps, matvecs, r_norm, history)
