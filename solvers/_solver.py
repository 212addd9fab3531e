"""The base class of the Krylov solvers and the loop driver they share."""

import abc
import numbers
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
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


def as_tolerance(value):
    """A tolerance as the solver stores it: Python and numpy real numbers
    (``np.float32(1e-8)``, a 0-d ndarray) become floats; a 0-d JAX array
    stays an array, so a tolerance may be traced (it only enters the
    stopping test). Anything else is left for ``check_tolerances`` to
    refuse."""
    if isinstance(value, bool | np.bool_):
        return value
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return as_tolerance(value[()])
    return value


def as_count(value):
    """An iteration count or space dimension as a Python int: numpy and
    concrete 0-d JAX integers are accepted; they fix array shapes, so a
    traced one is refused by ``check_count``."""
    if isinstance(value, bool | np.bool_):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if (
        isinstance(value, np.ndarray | jax.Array)
        and not isinstance(value, jax.core.Tracer)
        and value.ndim == 0
        and jnp.issubdtype(value.dtype, jnp.integer)
    ):
        return int(value)
    return value


def _is_real_scalar(value):
    if isinstance(value, float):
        return True
    return (
        isinstance(value, jax.Array)
        and value.ndim == 0
        and jnp.issubdtype(value.dtype, jnp.floating)
    )


def check_count(solver, name, minimum=1):
    """Trace-time check of an int field (after ``as_count``)."""
    value = getattr(solver, name)
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            f"{type(solver).__name__}: {name} sets array shapes, so it must be a "
            "concrete int, not a traced value. Build the solver outside jax.jit, "
            "or close over it (jax.jit(lambda b: solve(A, b, solver)))."
        )
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(
            f"{type(solver).__name__}: {name} must be an int, got "
            f"{type(value).__name__} {value!r}."
        )
    if value < minimum:
        raise ValueError(
            f"{type(solver).__name__}: {name} must be >= {minimum}, got {value}."
        )


def check_tolerances(solver):
    """rtol and atol are real scalars >= 0, not both 0 (checked where they
    are concrete; a traced tolerance is taken as given), and max_steps is a
    positive int."""
    concrete = []
    for name in ("rtol", "atol"):
        value = getattr(solver, name)
        if not _is_real_scalar(value):
            raise TypeError(
                f"{type(solver).__name__}: {name} must be a real number (a Python, "
                f"numpy or 0-d JAX float), got {type(value).__name__} {value!r}."
            )
        if isinstance(value, jax.core.Tracer):
            continue
        if not float(value) >= 0:
            raise ValueError(
                f"{type(solver).__name__}: {name} must be >= 0, got {float(value)}."
            )
        concrete.append(float(value))
    if len(concrete) == 2 and concrete[0] == 0 and concrete[1] == 0:
        raise ValueError(f"{type(solver).__name__}: rtol and atol cannot both be 0.")
    check_count(solver, "max_steps")


def tolerance_field():
    return eqx.field(converter=as_tolerance)


def count_field(**kwargs):
    """A static int field: part of the solver's structure, not a leaf, so
    that a solver passed through jax.jit keeps it concrete."""
    return eqx.field(converter=as_count, static=True, **kwargs)


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
