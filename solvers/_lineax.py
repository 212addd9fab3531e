r"""lineax interoperability: lineax operators into ``solve``, and any sciax
Krylov solver as a ``lineax.AbstractLinearSolver``.

This module imports lineax, an optional extra (``pip install sciax[lineax]``);
``sciax.solvers`` loads it only when ``LineaxSolver`` or ``LineaxOperator`` is
first used, or when ``solve`` meets a lineax operator (lineax is then already
imported by whoever built the operator).

Two directions:

* ``solve(A, b, solver)`` with ``A`` a ``lineax.AbstractLinearOperator``:
  ``A`` becomes a ``LineaxOperator``, a sciax ``LinearOperator`` over
  ``A.mv`` on the flattened vector. Structure tags are honoured where a
  method depends on them: the CG family (``CG``, ``RecycledCG``) needs
  ``A`` tagged ``lineax.positive_semidefinite_tag``, as ``lineax.CG`` does.
* ``lineax.linear_solve(A, b, LineaxSolver(GCRODR(...)))``: a sciax solver
  inside lineax, and so inside everything built on lineax (optimistix's
  Newton and Chord root finders, diffrax's implicit solvers through their
  root finders). lineax differentiates ``linear_solve`` itself (its own JVP
  and transpose rules call the solver again), so gradients work as for
  lineax's own iterative solvers.

Recycling across solves. lineax's solvers are stateless configuration:
``linear_solve`` calls ``init`` and ``compute`` and returns no solver state
that ``optimistix``'s or ``diffrax``'s loops would hand to the next system.
GCRO-DR's recycle space can therefore cross solves only where the caller
sees each solve:

1. your own Newton (or time-stepping) loop over ``sciax.solvers.solve(...,
   state=solution.state)``, the functional form (examples/newton_recycling.py);
2. your own loop over ``lineax.linear_solve(A, b, LineaxSolver(GCRODR(...)),
   options={"recycle_state": rs})``: ``Solution.stats["recycle_state"]`` is
   the space after the solve, to pass to the next one;
3. inside optimistix or diffrax, ``LineaxSolver(GCRODR(...), recycle_state=rs)``
   with a space ``rs`` computed beforehand (say from the Jacobian at the
   initial guess): every system of the run starts from that same, frozen
   space. It is not updated from step to step, because nothing in those
   loops carries it; how much it helps depends on how far
   the Jacobians drift from the one that produced it.

Chord methods. ``optimistix.Chord`` and ``diffrax.VeryChord`` (the default
root finder of diffrax's implicit solvers) apply ``lax.stop_gradient`` to
the linear solver's whole state, which fails for any solver whose state
holds a matrix-free operator, since a linearised Jacobian operator holds a
jaxpr (``TypeError: ... is not a valid JAX type``). lineax's own GMRES
fails the same way (measured with optimistix 0.1.0, diffrax 0.7.2, lineax
0.1.1, jax 0.10.2); the state cannot leave the operator out, because
``compute`` sees nothing else. Use ``optimistix.Newton``, also as diffrax's
root finder: ``diffrax.Kvaerno5(root_finder=optimistix.Newton(rtol, atol,
linear_solver=LineaxSolver(...)))``.

Tolerances. The wrapped solver's own test is used,
``||b - A x||_2 <= max(rtol ||b||_2, atol)`` on the true, unpreconditioned
residual of the flattened system, not lineax's elementwise test
``|r_i| <= atol + rtol |b_i|`` (with a second test on the step). Inside
Newton's method the linear rtol is the forcing term $\eta$ of inexact
Newton (Dembo, Eisenstat & Steihaug, SIAM J. Numer. Anal. 19, 1982): any
fixed $\eta < 1$ gives local linear convergence with rate about $\eta$, so
the linear rtol need not be as small as the Newton tolerance.

References:
    lineax (Rader, Lyons & Kidger, "Lineax: unified linear solves and linear
    least-squares in JAX and Equinox", 2023), https://github.com/patrick-kidger/lineax;
    optimistix (Rader, Lyons & Kidger, "Optimistix: modular optimisation in JAX
    and Equinox", 2024), https://github.com/patrick-kidger/optimistix;
    diffrax (Kidger, "On neural differential equations", 2021).
"""

import math
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, PyTree

try:
    import lineax as lx
except ImportError as error:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "sciax.solvers.LineaxSolver / LineaxOperator need lineax, an optional "
        "extra: pip install 'sciax[lineax]' (or pip install lineax)."
    ) from error

from .._results import RESULTS
from ._operator import LinearOperator
from ._solve import solve
from ._solver import AbstractLinearSolver
from .krylov import GCRODR, RecycledCG, RecycleState


def _structures(operator) -> tuple[int, jnp.dtype]:
    """(n, dtype) of a lineax operator whose in- and out-structures flatten
    to one real vector each of the same length n; a TypeError (ValueError
    for sizes) that says what to change otherwise."""
    name = type(operator).__name__
    leaves = jtu.tree_leaves((operator.in_structure(), operator.out_structure()))
    dtypes = {jnp.dtype(leaf.dtype) for leaf in leaves}
    if len(dtypes) != 1:
        # Mixed dtypes would need promotion on the way in and casts on the
        # way out, which change what the solver's tolerance means.
        raise TypeError(
            f"lineax operator {name}: its input and output leaves have several "
            f"dtypes {sorted(str(d) for d in dtypes)}; sciax's Krylov solvers act "
            "on one flat vector of one dtype. Cast the leaves to one dtype, or use "
            "lineax's own solvers."
        )
    (dtype,) = dtypes
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"lineax operator {name} has dtype {dtype}; sciax's Krylov solvers are "
            "real (float32 or float64). Split a complex system into real and "
            "imaginary parts, or use lineax's own solvers."
        )
    in_size = operator.in_size()
    out_size = operator.out_size()
    if in_size != out_size:
        raise ValueError(
            f"lineax operator {name} maps {in_size} unknowns to {out_size} "
            "equations; sciax's Krylov solvers need a square system. Use "
            "lineax.LSMR or lineax.AutoLinearSolver(well_posed=False) for least "
            "squares."
        )
    return in_size, dtype


def _ravel(tree: PyTree[Array], dtype) -> Array:
    """A PyTree as one vector: its leaves in ``jax.tree_util`` order, each in
    row-major order (the order of ``jax.flatten_util.ravel_pytree`` and of
    lineax's own ``ravel_vector``)."""
    leaves = jtu.tree_leaves(tree)
    return jnp.concatenate([jnp.ravel(jnp.asarray(leaf, dtype)) for leaf in leaves])


def _unravel(vector: Array, structure) -> PyTree[Array]:
    """The inverse of ``_ravel`` for the leaves of ``structure``."""
    leaves, treedef = jtu.tree_flatten(structure)
    offsets = np.cumsum([math.prod(leaf.shape) for leaf in leaves])[:-1]
    pieces = jnp.split(vector, offsets)
    return jtu.tree_unflatten(
        treedef, [p.reshape(leaf.shape) for p, leaf in zip(pieces, leaves, strict=True)]
    )


class LineaxOperator(LinearOperator):
    """A ``lineax.AbstractLinearOperator`` as a sciax ``LinearOperator``.

    ``solve`` makes one of these from any lineax operator it is given (as
    operator or as preconditioner). The vector it acts on is the operator's
    input PyTree flattened (leaves in ``jax.tree_util`` order, each
    row-major, as ``jax.flatten_util.ravel_pytree`` does), so a right-hand
    side for a PyTree-structured operator is ``ravel_pytree(b)[0]``. The
    operator must be square (input and output of the same total size; their
    PyTree structures may differ) and real, with one dtype across all
    leaves; anything else is refused with a TypeError (ValueError for a
    non-square operator) that says what to do.

    Args:
        operator: the lineax operator; ``mv`` is all the Krylov solvers use.
            ``diagonal`` (for ``Jacobi``) calls ``lineax.diagonal``, which is
            free for matrix and diagonal operators and costs n matvecs (a
            materialised matrix) for function and Jacobian operators.
    """

    operator: Any
    size: int = eqx.field(static=True)
    vector_dtype: Any = eqx.field(static=True)

    def __init__(self, operator):
        if not isinstance(operator, lx.AbstractLinearOperator):
            raise TypeError(
                "LineaxOperator wraps a lineax.AbstractLinearOperator, got "
                f"{type(operator).__name__}."
            )
        self.size, self.vector_dtype = _structures(operator)
        self.operator = operator

    def mv(self, vector):
        x = _unravel(vector, self.operator.in_structure())
        return _ravel(self.operator.mv(x), self.vector_dtype)

    @property
    def shape(self):
        return (self.size, self.size)

    @property
    def dtype(self):
        return self.vector_dtype

    def diagonal(self):
        # lineax.diagonal returns the diagonal of the flattened matrix for
        # every operator type it knows.
        return jnp.asarray(lx.diagonal(self.operator), self.vector_dtype).reshape(-1)


def _tagged(check, operator) -> bool:
    """A lineax tag check; operators without a rule for it count as untagged."""
    try:
        return bool(check(operator))
    except NotImplementedError:
        return False


def definite_sign(operator, solver: AbstractLinearSolver, *, where: str) -> int:
    """+1, or -1 where the solver needs a positive definite operator and
    ``operator`` is tagged negative semidefinite (solve $(-A) x = -b$, as
    lineax.CG does); raises for the CG family on an operator tagged neither.

    The CG family's theory needs symmetric positive definite A. lineax
    states that with ``positive_semidefinite_tag`` (``symmetric_tag`` alone
    allows an indefinite matrix, on which CG breaks down), so that tag is
    what is asked for, as ``lineax.CG`` asks for it."""
    # getattr: solve() reaches here before it checks the solver's type
    if not getattr(solver, "symmetric", False):
        return 1
    if _tagged(lx.is_positive_semidefinite, operator):
        return 1
    if _tagged(lx.is_negative_semidefinite, operator):
        return -1
    raise ValueError(
        f"{where}: {type(solver).__name__} needs a symmetric positive definite "
        f"operator, and this lineax {type(operator).__name__} is not tagged "
        "lineax.positive_semidefinite_tag (or negative_semidefinite_tag). If it "
        "is SPD, build it with tags=lineax.positive_semidefinite_tag (or wrap it "
        "in lineax.TaggedLinearOperator); otherwise use GMRES or GCRODR."
    )


def from_lineax(operator, solver: AbstractLinearSolver) -> LineaxOperator:
    """The operator that ``solve`` runs on for a lineax operator, after the
    check of its tags against ``solver``. A negative definite operator is
    refused here (``solve`` has no place to negate b), with the way out."""
    if definite_sign(operator, solver, where="sciax.solvers.solve") < 0:
        raise ValueError(
            f"sciax.solvers.solve: {type(solver).__name__} needs a positive "
            "definite operator and this lineax operator is tagged negative "
            "semidefinite: solve with -A and -b (lineax's operators support "
            "negation, -operator), or pass the solver to lineax.linear_solve "
            "through sciax.solvers.LineaxSolver, which negates for you."
        )
    return LineaxOperator(operator)


# sciax's outcomes in lineax's vocabulary. lineax has no "nonfinite" for an
# operator or preconditioner that produced NaN/inf: "singular" is its name for
# non-finite output, and lineax.linear_solve itself refines it to
# nonfinite_input when b holds a NaN or inf.
_TO_LINEAX = (
    (RESULTS.max_steps_reached, lx.RESULTS.max_steps_reached),
    (RESULTS.stagnation, lx.RESULTS.stagnation),
    (RESULTS.breakdown, lx.RESULTS.breakdown),
    (RESULTS.nonfinite, lx.RESULTS.singular),
)


def to_lineax_result(result: RESULTS) -> lx.RESULTS:
    """A sciax ``RESULTS`` item as a ``lineax.RESULTS`` item. Every failure
    stays a failure: results without a lineax counterpart become
    ``breakdown``, never ``successful``."""
    out = lx.RESULTS.where(
        result == RESULTS.successful, lx.RESULTS.successful, lx.RESULTS.breakdown
    )
    for ours, theirs in _TO_LINEAX:
        out = lx.RESULTS.where(result == ours, theirs, out)
    return out


class _AdapterState(eqx.Module):
    """What ``LineaxSolver.init`` computes from the operator: the operator,
    linearised once (a Jacobian operator would otherwise re-linearise its
    function at every matvec; optimistix's Chord reuses one state for many
    solves), the sign that makes it positive definite for the CG family,
    and whether this is the transposed system (whose solve starts without
    the recycle space: that space approximates eigenvectors of A, not of
    A^T, as in ``solve``'s own transposed solve)."""

    operator: Any
    sign: int = eqx.field(static=True)
    transposed: bool = eqx.field(static=True)


class LineaxSolver(lx.AbstractLinearSolver):
    r"""Any sciax Krylov solver as a ``lineax.AbstractLinearSolver``.

    ``lineax.linear_solve(A, b, LineaxSolver(GCRODR(rtol=1e-8, atol=0.0,
    max_steps=500)))`` solves $A x = b$ with sciax's GCRO-DR; so does
    ``optimistix.Newton(rtol, atol, linear_solver=LineaxSolver(...))`` for
    each Newton step, and a diffrax implicit solver with
    ``root_finder=optimistix.Newton(..., linear_solver=LineaxSolver(...))``
    (not optimistix's Chord or diffrax's VeryChord: see the module
    docstring). Works with ``GMRES`` (flexible or not),
    ``GMRESDR``, ``GCRODR``, ``CG`` and ``RecycledCG`` (the CG family needs A
    tagged ``lineax.positive_semidefinite_tag`` or
    ``negative_semidefinite_tag``, as ``lineax.CG`` does; a negative definite
    A is solved as $(-A) x = -b$).

    Stopping test: the wrapped solver's,
    ``||b - A x||_2 <= max(rtol ||b||_2, atol)`` on the true residual of the
    flattened system (see the module docstring for how this differs from
    lineax's elementwise test).

    The outcome maps to ``lineax.RESULTS``: ``max_steps_reached``,
    ``stagnation`` and ``breakdown`` to their namesakes, a NaN/inf to
    ``singular`` (which lineax turns into ``nonfinite_input`` when b holds
    one), anything else that failed to ``breakdown``; a failed solve is never
    reported as successful. ``linear_solve(..., throw=True)`` raises with
    lineax's message; optimistix and diffrax pass ``throw=False`` and
    propagate the failure into their own result.

    ``options`` (lineax's per-call dictionary) may hold ``"y0"``, the initial
    guess (a PyTree like the solution), ``"preconditioner"``, a lineax
    operator applying $M \approx A^{-1}$ (right preconditioning, as sciax's
    solvers do; SPD for the CG family), and ``"recycle_state"``, a
    ``RecycleState`` that overrides the ``recycle_state`` field for this
    call. ``Solution.stats`` holds the wrapped solver's ``num_steps``,
    ``num_matvecs`` and ``residual_norm``, and for ``GCRODR`` and
    ``RecycledCG`` the ``recycle_state`` after the solve, to pass to the next.

    Attributes:
        solver: the sciax solver (its tolerances and limits are used).
        recycle_state: a ``RecycleState`` every solve starts from (GCRODR,
            RecycledCG only), e.g. ``solve(...).state`` of an earlier system;
            None starts each solve without a space. It is not updated between
            solves (lineax solvers are configuration; the module docstring
            explains how to carry the space yourself).

    Differentiation is lineax's: tangents and cotangents are further
    solves with the same solver (the cotangent one with $A^T$ and without
    the recycle space). Complex operators are refused (sciax's solvers are
    real), so ``conj`` is the identity.

    Example:
        ```python
        import lineax as lx
        from sciax.solvers import GCRODR, LineaxSolver

        adapter = LineaxSolver(GCRODR(rtol=1e-8, atol=0.0, max_steps=400))
        sol = lx.linear_solve(lx.MatrixLinearOperator(A), b, adapter)
        nxt = lx.linear_solve(
            lx.MatrixLinearOperator(A2), b2, adapter,
            options={"recycle_state": sol.stats["recycle_state"]},
        )
        ```

    References:
        lineax's ``AbstractLinearSolver`` interface (init, compute, transpose,
        conj, assume_full_rank; lineax >= 0.1.0); optimistix's
        ``Newton``; diffrax's implicit Runge-Kutta solvers. lineax#136 asks
        lineax for the recycling and flexible Krylov methods this adapter
        brings in.
    """

    solver: AbstractLinearSolver
    recycle_state: RecycleState | None = None

    def __check_init__(self):
        if not isinstance(self.solver, AbstractLinearSolver):
            raise TypeError(
                "LineaxSolver wraps a sciax solver (GMRES, GMRESDR, GCRODR, CG, "
                f"RecycledCG), got {type(self.solver).__name__}."
            )
        if self.recycle_state is not None:
            if not isinstance(self.recycle_state, RecycleState):
                raise TypeError(
                    "LineaxSolver: recycle_state must be a sciax.solvers.RecycleState "
                    f"(a Solution.state), got {type(self.recycle_state).__name__}."
                )
            if not isinstance(self.solver, GCRODR | RecycledCG):
                raise TypeError(
                    "LineaxSolver: recycle_state is only used by GCRODR and "
                    f"RecycledCG, not {type(self.solver).__name__}."
                )

    def init(self, operator, options: dict[str, Any]) -> _AdapterState:
        del options
        sign = definite_sign(operator, self.solver, where="LineaxSolver")
        _structures(operator)  # refuse what cannot be flattened, at trace time
        return _AdapterState(
            operator=lx.linearise(operator), sign=sign, transposed=False
        )

    def compute(self, state: _AdapterState, vector, options: dict[str, Any]):
        operator = LineaxOperator(state.operator)
        dtype = operator.dtype
        b = _ravel(vector, dtype)
        x0 = options.get("y0")
        if x0 is not None:
            x0 = _ravel(x0, dtype)
        preconditioner = options.get("preconditioner")
        if preconditioner is not None:
            preconditioner = LineaxOperator(preconditioner)
        if state.sign < 0:
            b = -b
            operator = LineaxOperator(-state.operator)
        recycle = options.get("recycle_state", self.recycle_state)
        if state.transposed or not isinstance(self.solver, GCRODR | RecycledCG):
            recycle = None
        solution = solve(
            operator,
            b,
            self.solver,
            x0=x0,
            preconditioner=preconditioner,
            state=recycle,
            throw=False,
        )
        value = _unravel(solution.value, state.operator.in_structure())
        stats = {
            key: solution.stats[key]
            for key in ("num_steps", "num_matvecs", "residual_norm")
        }
        if isinstance(solution.state, RecycleState):
            stats["recycle_state"] = solution.state
        return value, to_lineax_result(solution.result), stats

    def transpose(self, state: _AdapterState, options: dict[str, Any]):
        # y0 and the recycle space belong to A x = b, not to A^T y = c.
        transposed_options = {}
        if "preconditioner" in options:
            transposed_options["preconditioner"] = options["preconditioner"].transpose()
        transposed = _AdapterState(
            operator=state.operator.transpose(), sign=state.sign, transposed=True
        )
        return transposed, transposed_options

    def conj(self, state: _AdapterState, options: dict[str, Any]):
        # Real operators only (checked in init): conjugation changes nothing.
        return state, options

    def assume_full_rank(self) -> bool:
        # Krylov methods for square, nonsingular systems: lineax may use the
        # cheaper derivative (no least-squares terms). A singular system does
        # not converge and is reported as a failure.
        return True
