"""Restarted GMRES with right preconditioning."""

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from ..._results import RESULTS
from .._solver import (
    AbstractLinearSolver,
    check_count,
    check_tolerances,
    count_field,
    final_result,
    iterate,
    make_stats,
    matmul,
    norm,
    tolerance,
    tolerance_field,
)
from ._arnoldi import arnoldi_cycle, close_cycle, triangular_update


class GMRES(AbstractLinearSolver):
    r"""Restarted GMRES(m), right-preconditioned; flexible (FGMRES) by default.

    Each cycle minimises $\|b - A(x + M V y)\|_2$ over the m-dimensional
    Krylov space of $A M$ built from the current residual (Arnoldi with
    twice-applied classical Gram-Schmidt, Givens rotations for the small
    least-squares problem).

    ``flexible=True`` (FGMRES, Saad 1993) keeps the preconditioned
    directions $z_j = M_j v_j$ and updates $x + Z y$, which is the
    minimiser even when the preconditioner changes from one application to
    the next: an inner Krylov solve, multigrid with an inexact coarse solve,
    a neural network. ``flexible=False`` keeps only V and applies M once
    per cycle, $x + M(V y)$: n x m less memory and one more preconditioner
    application per cycle, and the same iterates when M is a fixed linear
    operator; with a varying M that update is not the minimiser, and the
    solve stalls or fails (reported as ``RESULTS.stagnation``).

    Stopping test: ``||b - A x||_2 <= max(rtol ||b||_2, atol)`` on the true
    residual, recomputed at the start of every cycle; the Givens estimate only
    ends a cycle early. A cycle that does not reduce the true residual at all
    ends the solve with ``RESULTS.stagnation`` (jax.scipy's gmres instead
    loops on silently).

    Args:
        rtol: relative tolerance (required).
        atol: absolute tolerance (required).
        max_steps: limit on Arnoldi steps (one matvec each) over all cycles.
        restart: m, the cycle length (default 40).
        flexible: keep $Z = MV$ (default True); False for a fixed
            preconditioner when memory is short.

    References:
        Saad & Schultz, SIAM J. Sci. Stat. Comput. 7 (1986); Saad, SIAM J. Sci.
        Comput. 14 (1993) (flexible GMRES).
    """

    rtol: float = tolerance_field()
    atol: float = tolerance_field()
    max_steps: int = count_field()
    symmetric: ClassVar[bool] = False
    restart: int = count_field(default=40)
    flexible: bool = eqx.field(default=True, static=True)

    def __check_init__(self):
        check_tolerances(self)
        check_count(self, "restart")
        if not isinstance(self.flexible, bool):
            raise TypeError(
                f"GMRES: flexible must be a bool, got {type(self.flexible).__name__}."
            )

    def bind(self, operator):
        """Itself: the method reads nothing of the operator but its matvec."""
        return self

    def init_state(self, operator, b):
        return None

    def compute(self, operator, b, x0, preconditioner, state, unrolled):
        x, result, stats = restarted_gmres(
            self, operator, b, x0, preconditioner, unrolled
        )
        return x, result, stats, None


def restarted_gmres(solver, operator, b, x0, preconditioner, unrolled):
    """The GMRES(m) restart loop: (x, result, stats)."""
    dtype = b.dtype
    # Arnoldi meets an invariant space within n steps.
    restart = min(solver.restart, solver.max_steps, b.shape[0])
    limit = tolerance(solver, norm(b))
    history = jnp.full(solver.max_steps, jnp.nan, dtype)
    r = b - operator.mv(x0)
    r_norm = norm(r)
    max_cycles = -(-solver.max_steps // restart) + 1
    init = (
        x0,
        r,
        r_norm,
        jnp.asarray(jnp.inf, dtype),
        jnp.asarray(0),
        jnp.asarray(1),
        RESULTS.successful,
        history,
    )

    def cond(carry):
        _, _, r_norm, previous, steps, _, result, _ = carry
        return (
            (r_norm > limit)
            & (steps < solver.max_steps)
            & (result == RESULTS.successful)
        )

    def body(carry):
        x, r, r_norm, _, steps, matvecs, _, history = carry
        cycle = arnoldi_cycle(
            operator,
            preconditioner,
            r,
            r_norm,
            restart,
            solver.max_steps - steps,
            limit,
            None,
            unrolled,
            keep_directions=solver.flexible,
        )
        y = triangular_update(cycle["R"], cycle["g"], cycle["steps"])
        if solver.flexible:
            x = x + matmul(y, cycle["Z"])
        else:
            x = x + preconditioner(matmul(y, cycle["V"][:restart]))
        new_r, new_norm, history, result = close_cycle(
            operator, b, x, r_norm, steps, history, cycle, limit
        )
        return (
            x,
            new_r,
            new_norm,
            r_norm,
            steps + cycle["steps"],
            matvecs + cycle["steps"] + 1,
            result,
            history,
        )

    x, r, r_norm, _, steps, matvecs, result, history = iterate(
        cond, body, init, max_cycles, unrolled
    )
    result = final_result(result, r_norm, limit)
    stats = make_stats(steps, matvecs, r_norm, history)
    return x, result, stats
