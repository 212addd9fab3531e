"""Conjugate gradients, preconditioned."""

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from ..._results import RESULTS
from .._solver import (
    AbstractLinearSolver,
    check_tolerances,
    count_field,
    dot,
    iterate,
    make_stats,
    norm,
    tolerance,
    tolerance_field,
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

    What CG's theory needs is checked as it runs. A direction with
    $p^T A p \le 0$, or consecutive residuals that are far from
    M-orthogonal ($|r_j^T M r_{j+1}| > 0.1 \sqrt{r_j^T M r_j \, r_{j+1}^T M r_{j+1}}$;
    zero in exact arithmetic for symmetric A and M, and within rounding in
    floating point, since only global orthogonality is lost there), ends the
    solve with ``RESULTS.breakdown``: A or M is not symmetric positive
    definite. A true residual that failed the check twice without
    decreasing in between ends it with ``RESULTS.stagnation``: the
    tolerance is below what the dtype allows for this matrix.

    ``flexible=True`` is Notay's flexible CG: the Polak-Ribiere
    $\beta_j = z_{j+1}^T(r_{j+1} - r_j) / r_j^T z_j$ (equal to the above
    for a fixed M, one more inner product per step) keeps the iteration
    converging when the preconditioner varies between applications (an
    inner solve, multigrid with an inexact coarse solve, a network); the
    orthogonality check, which a varying M also fails, is then off.

    Args:
        rtol: relative tolerance (required).
        atol: absolute tolerance (required).
        max_steps: iteration limit.
        flexible: Polak-Ribiere's beta, for a varying preconditioner.

    References:
        Hestenes & Stiefel, J. Res. NBS 49 (1952); Saad, "Iterative Methods for
        Sparse Linear Systems", 2nd ed., Alg. 9.1; Notay, "Flexible conjugate gradients", SIAM J. Sci.
        Comput. 22 (2000).
    """

    rtol: float = tolerance_field()
    atol: float = tolerance_field()
    max_steps: int = count_field()
    symmetric: ClassVar[bool] = True
    flexible: bool = eqx.field(default=False, static=True)

    def __check_init__(self):
        check_tolerances(self)
        if not isinstance(self.flexible, bool):
            raise TypeError(
                f"CG: flexible must be a bool, got {type(self.flexible).__name__}."
            )

    def bind(self, operator):
        """Itself: the method reads nothing of the operator but its matvec."""
        return self

    def init_state(self, operator, b):
        return None

    def compute(self, operator, b, x0, preconditioner, state, unrolled):
        r = b - operator.mv(x0)
        x, r, result, stats, _, _ = conjugate_gradient_loop(
            self,
            operator,
            b,
            x0,
            r,
            preconditioner,
            jnp.asarray(1),
            unrolled,
            flexible=self.flexible,
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
    flexible=False,
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
        return _iteration(
            carry, operator, b, preconditioner, direction, limit, collect, flexible
        )

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
    # the true residual's norm at the last check that failed (inf before one)
    checked_norm: Array


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
        checked_norm=jnp.asarray(jnp.inf, dtype),
    )


def _iteration(carry, operator, b, preconditioner, direction, limit, collect, flexible):
    """One PCG step, with the true-residual check when the recursive residual
    proposes convergence, and the step's outcome."""
    x, r, p, rz, step, matvecs, _, _, history, directions, images, checked = carry
    ap = operator.mv(p)
    curvature = dot(p, ap)
    alpha = rz / curvature
    if collect:
        directions = directions.at[step].set(p, mode="drop")
        images = images.at[step].set(ap, mode="drop")
    x = x + alpha * p
    previous_r = r
    r = r - alpha * ap
    r_norm = norm(r)
    history = history.at[step].set(r_norm)
    proposed = r_norm <= limit

    # The recursive residual says converged: check the true one.
    true_r = jnp.where(proposed, b - operator.mv(x), r)
    matvecs = matvecs + 1 + proposed.astype(matvecs.dtype)
    true_norm = norm(true_r)
    converged = proposed & (true_norm <= limit)
    failed_check = proposed & ~converged
    stalled = failed_check & (true_norm >= checked)
    checked = jnp.where(failed_check, true_norm, checked)
    z = preconditioner(true_r)
    rz_new = dot(true_r, z)
    # Successive residuals are M-orthogonal when A and M are symmetric (a
    # local property that rounding keeps); a non-symmetric A with a positive
    # definite symmetric part never makes p^T A p <= 0 but breaks this at
    # once. Not checked across a restart from the true residual.
    # (square roots taken apart: the product underflows in float32 near 1e-19)
    cross = dot(previous_r, z)
    cosine = jnp.abs(cross) / (jnp.sqrt(jnp.abs(rz)) * jnp.sqrt(jnp.abs(rz_new)))
    # (A varying preconditioner breaks it too: the flexible form skips it.)
    not_orthogonal = ~proposed & (cosine > 0.1) & (not flexible)
    r = true_r
    # After a failed check, restart the directions from the true residual.
    if flexible:
        # Polak-Ribiere: keeps p A-orthogonal to the last direction when M varies
        numerator = rz_new - cross
    else:
        numerator = rz_new
    beta = jnp.where(proposed, 0.0, numerator / rz).astype(b.dtype)
    p = direction(z) + beta * p
    broke = ~(curvature > 0) | not_orthogonal
    finite = jnp.isfinite(r_norm) & jnp.isfinite(alpha)
    result = RESULTS.where(
        stalled & finite & ~broke, RESULTS.stagnation, step_result(finite, broke)
    )
    done = converged | broke | ~finite | stalled
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
        checked_norm=checked,
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
