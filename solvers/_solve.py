"""The entry point: ``solve(operator, b, solver, ...) -> Solution``."""

import equinox as eqx
import jax
import jax.numpy as jnp
import scipy.sparse
from jax import lax

from .._results import raise_if_failed
from ._operator import (
    FunctionOperator,
    SparseOperator,
    as_operator,
    is_lineax_operator,
)
from ._solution import Solution
from ._solver import AbstractLinearSolver
from ._unrolled_symmetric import split_operator_tangents
from .preconditioners._preconditioner import as_preconditioner, identity


def _check_flags(adjoint, throw):
    """Under a plain ``jax.jit(solve)`` the keyword flags arrive traced."""
    if isinstance(throw, jax.core.Tracer) or isinstance(adjoint, jax.core.Tracer):
        raise TypeError(
            "solve's flags (adjoint, throw) were traced: solve was called through "
            "jax.jit with them as arguments. Use equinox.filter_jit, which keeps "
            "non-array arguments static, or close over them: "
            "jax.jit(lambda b: solve(A, b, solver, throw=False))."
        )


def _transposed_preconditioner(precondition, like):
    """M^T for the adjoint solve with A^T, where M is linear. A varying
    preconditioner (an inner solve, a network) has no transpose; the
    non-symmetric solvers are flexible, so the adjoint solve is right with
    any preconditioner, and M itself is the best guess at one for A^T."""
    if precondition is identity:
        return identity
    transpose = jax.linear_transpose(precondition, like)
    try:
        jax.eval_shape(transpose, like)
    except Exception:  # noqa: BLE001
        # JAX's transposition of a nonlinear function fails in several ways
        # (NotImplementedError, AssertionError, TypeError) depending on the
        # primitive it meets; any of them means there is no M^T.
        return precondition
    return lambda v: transpose(v)[0]


def _check_inputs(operator, b, solver, x0, adjoint):
    if not isinstance(solver, AbstractLinearSolver):
        raise TypeError(
            f"solver must be a solvers.CG, GMRES, GCRODR, ... instance, got {type(solver).__name__}."
        )
    if adjoint not in ("implicit", "unrolled"):
        raise ValueError(f"adjoint must be 'implicit' or 'unrolled', got {adjoint!r}.")
    if b.ndim != 1:
        raise ValueError(
            f"b must be 1-D, got shape {b.shape}; flatten PyTrees with "
            "jax.flatten_util.ravel_pytree, and batch right-hand sides with jax.vmap."
        )
    if not jnp.issubdtype(b.dtype, jnp.floating):
        raise TypeError(f"b must be a floating array, got dtype {b.dtype}.")
    if operator.shape != (b.shape[0], b.shape[0]):
        raise ValueError(
            f"operator has shape {operator.shape} but b has length {b.shape[0]}."
        )
    if jnp.dtype(operator.dtype) != b.dtype:
        raise TypeError(
            f"operator dtype {operator.dtype} differs from b's dtype {b.dtype}; "
            "cast one of them (mixed precision is not done implicitly)."
        )
    if x0 is not None and (x0.shape != b.shape or x0.dtype != b.dtype):
        raise ValueError(
            f"x0 must match b: shape {b.shape}, dtype {b.dtype}; got {x0.shape}, {x0.dtype}."
        )


def solve(
    operator,
    b,
    solver: AbstractLinearSolver,
    *,
    x0=None,
    preconditioner=None,
    state=None,
    adjoint: str = "implicit",
    throw: bool = True,
) -> Solution:
    r"""Solve $A x = b$ with a Krylov method.

    Stopping test (every solver): ``||b - A x||_2 <= max(rtol ||b||_2, atol)``
    on the true, unpreconditioned residual.

    ``solve`` is compiled with ``equinox.filter_jit``; inside your own
    transformation use ``equinox.filter_jit`` or a closure,
    ``jax.jit(lambda b: solve(A, b, solver))``. A plain ``jax.jit(solve)``
    works for array operators and array-valued solver fields (the
    tolerances may then be traced), but not for function operators or
    the string and bool flags, which it would trace.

    Args:
        operator: a ``LinearOperator``, a square array, a BCOO or
            ``scipy.sparse`` matrix or array, a function ``x -> A x``, or a
            ``lineax.AbstractLinearOperator`` (square and real; its PyTree
            input is flattened as ``jax.flatten_util.ravel_pytree`` does,
            and the CG family needs it tagged positive semidefinite; see
            ``LineaxOperator``).
        b: right-hand side, 1-D. Batch with ``jax.vmap``.
        solver: ``CG``, ``GMRES``, ``GCRODR``, ... (tolerances required).
        x0: initial guess (default zeros).
        preconditioner: ``Jacobi()``, an operator/array/function applying
            $M \approx A^{-1}$, or None. CG needs M SPD.
        state: solver state from a previous ``Solution.state`` (GCRODR's
            recycle space); None starts fresh.
        adjoint: "implicit" differentiates through ``lax.custom_linear_solve``
            (the cotangent is one more solve with $A^T$); "unrolled"
            differentiates through the iterations themselves (fixed-length
            loops of ``max_steps``), for training through a solver. Both
            give the derivative of the solution with respect to A: for the
            CG family, which cannot see a non-symmetric perturbation of A,
            the iterations are differentiated along the symmetric part and
            the skew part's exact derivative costs one more solve.
        throw: raise if the solve did not succeed, with a message that
            names the result; with ``adjoint="implicit"`` the gradient's
            solves (the tangent and transposed solves) are checked too.
            Inside gradients, training loops and nested solves pass False
            and test ``Solution.result``; the gradient's own solves are then
            not checked (their result has no output to go to).

    Returns:
        ``Solution(value, result, stats, state)``.
    """
    _check_flags(adjoint, throw)
    if scipy.sparse.issparse(operator):
        # scipy's matrices are not hashable, and filter_jit would hash them
        # as static data: convert before compiling.
        operator = SparseOperator(operator)
    elif is_lineax_operator(operator):
        # lineax operators carry structure tags (symmetric, positive
        # semidefinite) that say whether the CG family applies: checked here,
        # where the solver is known, then wrapped as a sciax operator.
        from ._lineax import from_lineax

        operator = from_lineax(operator, solver)
    return _solve(
        operator,
        b,
        solver,
        x0=x0,
        preconditioner=preconditioner,
        state=state,
        adjoint=adjoint,
        throw=throw,
    )


@eqx.filter_jit
def _solve(operator, b, solver, *, x0, preconditioner, state, adjoint, throw):
    b = jnp.asarray(b)
    operator = as_operator(operator, b)
    x0 = None if x0 is None else jnp.asarray(x0)
    _check_inputs(operator, b, solver, x0, adjoint)
    if x0 is None:
        x0 = jnp.zeros_like(b)
    precondition = as_preconditioner(preconditioner, operator, b)
    solver = solver.bind(operator)
    if state is None:
        state = solver.init_state(operator, b)

    if adjoint == "unrolled" and solver.symmetric:
        symmetric_operator, skew_correction = split_operator_tangents(
            operator, precondition, solver, b
        )
        x, result, stats, state = solver.compute(
            symmetric_operator, b, x0, precondition, state, True
        )
        x = x + skew_correction(x)
    elif adjoint == "unrolled":
        x, result, stats, state = solver.compute(
            operator, b, x0, precondition, state, True
        )
    else:

        def forward(matvec, rhs):
            wrapped = FunctionOperator(matvec, rhs.shape[0], rhs.dtype)
            x, result, stats, new_state = solver.compute(
                wrapped, rhs, x0, precondition, state, False
            )
            if throw:
                # checked here, not only on the output: a symmetric solver's
                # cotangent solve runs this function, and under jit(grad(f))
                # a check on an output that f uses linearly is dead code
                x = raise_if_failed(x, result, "sciax.solvers.solve")
            return x, (result, stats, new_state)

        def transposed(vecmat, rhs):
            # Cotangent solve with A^T (and M^T): same method, fresh state.
            wrapped = FunctionOperator(vecmat, rhs.shape[0], rhs.dtype)
            transposed_precondition = _transposed_preconditioner(precondition, rhs)
            x, result, stats, _ = solver.compute(
                wrapped,
                rhs,
                jnp.zeros_like(rhs),
                transposed_precondition,
                solver.init_state(wrapped, rhs),
                False,
            )
            if throw:
                x = raise_if_failed(
                    x,
                    result,
                    "sciax.solvers.solve",
                    where=" in its gradient's transposed solve",
                )
            return x, (result, stats, state)

        x, (result, stats, state) = lax.custom_linear_solve(
            operator.mv,
            b,
            forward,
            transpose_solve=None if solver.symmetric else transposed,
            symmetric=solver.symmetric,
            has_aux=True,
        )
    if throw and adjoint == "unrolled":
        x = raise_if_failed(x, result, "sciax.solvers.solve")
    return Solution(value=x, result=result, stats=stats, state=state)
