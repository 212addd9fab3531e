r"""Unrolled differentiation of the solvers for symmetric A (the CG family)
that gives the derivative of the solution, not of the iteration.

CG reads A only through products $p^TAp$ and $r^TMr$ of its own iterates. A
perturbation $E$ of A splits into a symmetric part, along which CG stays
the method it is and its unrolled derivative converges to the derivative
of $A^{-1}b$, and a skew part $K = (E - E^T)/2$, which CG cannot see
correctly: differentiating its iterations along K gives a number with no
meaning (the skew part of dloss/dA came out 4.5x off). Here the two are
separated:

- the operator's products take tangents $\tfrac12(E + E^T)v$ only, so
  the unrolled iteration is differentiated along the symmetric part;
- a term whose value is zero adds the skew part's exact tangent,
  $-A^{-1}Kx$: one more solve with A, in the derivative only (reverse
  mode solves for the adjoint $\lambda = A^{-1}w$ and gets $-\lambda x^T$).

Parameters of a preconditioner or of a learned solver keep their unrolled
derivative: only the operator's tangents are changed.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax

from ._operator import FunctionOperator


def _tangent_map(matvec, params, dparams):
    """u -> (dA) u, for the operator perturbation ``dparams``."""

    def apply(u):
        return jax.jvp(lambda p: matvec(p, u), (params,), (dparams,))[1]

    return apply


def _transposed(apply, like):
    return lambda v: jax.linear_transpose(apply, like)(v)[0]


def split_operator_tangents(operator, precondition, solver, like):
    """``(symmetric_operator, skew_correction)`` for an unrolled solve.

    ``symmetric_operator`` has A's products and the tangents
    $\tfrac12(E + E^T)v$. ``skew_correction(x)`` is zero, with tangent
    $-A^{-1}\tfrac12(E - E^T)x$ (x itself is not differentiated), computed
    by ``solver``'s own (non-unrolled) solve with ``precondition``.

    Custom derivative rules are traced after the function that uses them, so
    they must not close over traced values: every array they need (the
    operator's, the preconditioner's, traced tolerances) is passed in.
    """
    closed_operator = eqx.filter_closure_convert(operator.mv, like)
    closed_precondition = eqx.filter_closure_convert(precondition, like)
    floats, rest = eqx.partition(closed_operator, eqx.is_inexact_array)
    others, static = eqx.partition((rest, closed_precondition, solver), eqx.is_array)

    def rebuild(floats, others):
        rest, precondition, solver = eqx.combine(others, static)
        return eqx.combine(floats, rest), precondition, solver

    def raw_matvec(floats, others, vector):
        return rebuild(floats, others)[0](vector)

    @jax.custom_jvp
    def symmetric_matvec(floats, others, vector):
        return raw_matvec(floats, others, vector)

    @symmetric_matvec.defjvp
    def _symmetric_jvp(primals, tangents):
        floats, others, vector = primals
        dfloats, _, dvector = tangents
        matvec = lambda p, u: raw_matvec(p, others, u)  # noqa: E731
        apply = _tangent_map(matvec, floats, dfloats)
        tangent = 0.5 * (apply(vector) + _transposed(apply, vector)(vector))
        value = matvec(floats, vector)
        return value, tangent + matvec(floats, dvector)

    @jax.custom_jvp
    def skew_correction(floats, others, x):
        return jnp.zeros_like(x)

    @skew_correction.defjvp
    def _skew_jvp(primals, tangents):
        floats, others, x = primals
        dfloats = tangents[0]
        matvec = lambda p, u: raw_matvec(p, others, u)  # noqa: E731
        apply = _tangent_map(matvec, floats, dfloats)
        skew = 0.5 * (apply(x) - _transposed(apply, x)(x))
        _, closed_precondition, solver = rebuild(floats, others)

        def precondition(vector):
            # a plain function: lax.cond inside a solver hashes its branches,
            # and the closure-converted module holds lists
            return closed_precondition(vector)

        def solve_with(mv, rhs):
            wrapped = FunctionOperator(mv, rhs.shape[0], rhs.dtype)
            fresh = solver.init_state(wrapped, rhs)
            zeros = jnp.zeros_like(rhs)
            return solver.compute(wrapped, rhs, zeros, precondition, fresh, False)[0]

        inverse = lax.custom_linear_solve(
            lambda u: matvec(floats, u), skew, solve_with, symmetric=True
        )
        return jnp.zeros_like(x), -inverse

    symmetric_operator = FunctionOperator(
        lambda v: symmetric_matvec(floats, others, v), like.shape[0], like.dtype
    )

    def correction(x):
        return skew_correction(floats, others, lax.stop_gradient(x))

    return symmetric_operator, correction
