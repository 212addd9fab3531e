"""The base class of the Krylov solvers and the loop driver they share."""

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax

from .._results import RESULTS


class AbstractLinearSolver(eqx.Module):
    """A Krylov solver: immutable configuration; iteration state lives outside.

    Every solver stops on the true, unpreconditioned residual:
    ``||b - A x||_2 <= max(rtol * ||b||_2, atol)``. Tolerances have no
    defaults: a float32 solve cannot meet a float64 tolerance.
    """

    rtol: eqx.AbstractVar[float]
    atol: eqx.AbstractVar[float]
    max_steps: eqx.AbstractVar[int]
    # Whether the method assumes a symmetric operator (the CG family): the
    # implicit adjoint then reuses the forward solve for the transpose.
    symmetric: eqx.AbstractClassVar[bool]

    @abc.abstractmethod
    def init_state(self, operator, b) -> Any:
        """The state a first solve starts from (None when the solver keeps none)."""

    @abc.abstractmethod
    def compute(self, operator, b, x0, preconditioner, state, unrolled: bool):
        """Returns (x, result, stats, state). ``preconditioner`` is a function
        v -> M v (the identity when none was given)."""

    @abc.abstractmethod
    def bind(self, operator) -> "AbstractLinearSolver":
        """The solver specialised to ``operator`` before ``solve`` wraps it in
        a bare matvec: methods that read more than ``mv`` (the grid of a
        learned solver) take it here; the others return themselves."""


def check_tolerances(solver):
    for name in ("rtol", "atol"):
        value = getattr(solver, name)
        if not (isinstance(value, int | float) and value >= 0):
            raise ValueError(
                f"{type(solver).__name__}: {name} must be >= 0, got {value}."
            )
    if solver.rtol == 0 and solver.atol == 0:
        raise ValueError(f"{type(solver).__name__}: rtol and atol cannot both be 0.")
    if not (isinstance(solver.max_steps, int) and solver.max_steps >= 1):
        raise ValueError(
            f"{type(solver).__name__}: max_steps must be a positive int, got {solver.max_steps}."
        )


def iterate(cond, body, init, max_trips: int, unrolled: bool):
    """``while cond(state): state = body(state)``, at most ``max_trips`` times.

    unrolled=False: a ``lax.while_loop`` (forward-mode differentiable; reverse
    mode goes through the implicit adjoint). unrolled=True: a ``lax.scan`` of
    fixed length whose steps freeze once ``cond`` fails, so that reverse mode
    can differentiate through the iteration itself.
    """
    if not unrolled:
        return lax.while_loop(cond, body, init)

    def step(state, _):
        keep_going = cond(state)
        advanced = body(state)
        state = jax_tree_where(keep_going, advanced, state)
        return state, None

    final, _ = lax.scan(step, init, None, length=max_trips)
    return final


def jax_tree_where(pred, a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


def tolerance(solver, b_norm):
    return jnp.maximum(solver.rtol * b_norm, solver.atol).astype(b_norm.dtype)


def matmul(a, b):
    """Matrix products of Krylov bases at full precision (GPUs would
    otherwise use TF32 for float32 and lose orthogonality)."""
    return jnp.matmul(a, b, precision=lax.Precision.HIGHEST)


def dot(a, b):
    return jnp.vdot(a, b, precision=lax.Precision.HIGHEST)


def norm(a):
    return jnp.sqrt(dot(a, a))


def cycle_result(finite, new_norm, old_norm, limit):
    """The outcome of one restart cycle: nonfinite, stagnation (the true
    residual did not decrease at all) or, so far, successful."""
    return RESULTS.where(
        ~finite,
        RESULTS.nonfinite,
        RESULTS.where(
            (new_norm >= old_norm) & (new_norm > limit),
            RESULTS.stagnation,
            RESULTS.successful,
        ),
    )


def final_result(result, r_norm, limit):
    """A loop that ended without a failure but above the tolerance ran out
    of steps."""
    return RESULTS.where(
        ~jnp.isfinite(r_norm),
        RESULTS.nonfinite,
        RESULTS.where(
            (result == RESULTS.successful) & (r_norm > limit),
            RESULTS.max_steps_reached,
            result,
        ),
    )


def make_stats(steps, matvecs, r_norm, history):
    return {
        "num_steps": steps,
        "num_matvecs": matvecs,
        "residual_norm": r_norm,
        "residual_history": history,
    }
