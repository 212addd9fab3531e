"""Solving a sequence of related systems in an order that lets recycling work
(SKR: sort, then GCRO-DR carrying its subspace along the sorted chain)."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int

from ._operator import as_operator
from ._results import RESULTS
from ._solve import solve
from ._solver import AbstractLinearSolver


class SequenceSolution(eqx.Module):
    """What ``solve_sequence`` returns; every field in the caller's order.

    Attributes:
        value: (N, n) solutions.
        result: (N,) ``RESULTS`` items.
        stats: dict of (N,) arrays (``num_steps``, ``num_matvecs``,
            ``residual_norm``) plus ``residual_history`` (N, max_steps).
        order: (N,) the order in which the systems were solved.
        state: the solver state after the last system (GCRODR's recycle space).
    """

    value: Float[Array, "N n"]
    result: RESULTS
    stats: dict[str, Array]
    order: Int[Array, " N"]
    state: Any


def _features(parameters):
    leaves = jax.tree_util.tree_leaves(parameters)
    count = leaves[0].shape[0]
    return jnp.concatenate([jnp.reshape(leaf, (count, -1)) for leaf in leaves], axis=1)


def greedy_order(features: Float[Array, "N p"]) -> Int[Array, " N"]:
    """Nearest-neighbour chain through the rows of ``features`` from row 0.

    Each step moves to the closest (Euclidean) row not yet visited: the
    greedy sort of the SKR paper (Wang et al. 2024, Alg. 1). O(N^2 p) work,
    but only one row of distances is held at a time, so memory is O(N p).
    """
    count = features.shape[0]
    squared = jnp.sum(features * features, axis=1)

    def step(carry, _):
        current, visited = carry
        distance = squared - 2.0 * jnp.matmul(
            features, features[current], precision=lax.Precision.HIGHEST
        )
        distance = jnp.where(visited, jnp.inf, distance)
        following = jnp.argmin(distance)
        return (following, visited.at[following].set(True)), following

    visited = jnp.zeros(count, bool).at[0].set(True)
    _, rest = lax.scan(step, (jnp.asarray(0), visited), None, length=count - 1)
    return jnp.concatenate([jnp.zeros(1, rest.dtype), rest])


@eqx.filter_jit
def solve_sequence(
    build_operator,
    parameters,
    rhs: Float[Array, "N n"],
    solver: AbstractLinearSolver,
    *,
    order: str = "greedy",
    warm_start: bool = False,
    preconditioner=None,
    state=None,
) -> SequenceSolution:
    r"""Solve $A(\theta_i) x_i = b_i$ for i = 1..N in one compiled scan.

    The matrices are built one at a time inside the scan from their
    parameters, so the N operators never exist together. With a recycling
    solver (``GCRODR``) the recycle space is the scan's carry: each system
    starts with the subspace of the previous one in the solve order.

    Args:
        build_operator: function from one system's parameters to an operator
            (``LinearOperator``, matrix or matvec).
        parameters: PyTree of arrays with leading axis N.
        rhs: (N, n) right-hand sides.
        solver: any solver; tolerances and limits apply to every system.
        order: "greedy" (nearest-neighbour chain on the flattened
            parameters, SKR's sort) or "given".
        warm_start: start each system from the previous solution in the
            solve order (useful when right-hand sides are related too).
        preconditioner: as for ``solve`` (``Jacobi()`` is rebuilt per system).
        state: initial solver state (e.g. a recycle space from an earlier run).

    Returns:
        ``SequenceSolution`` in the caller's order, with the order used.
        Systems that fail are reported in ``result``; nothing is raised.
    """
    count = rhs.shape[0]
    leaves = jax.tree_util.tree_leaves(parameters)
    if any(leaf.shape[:1] != (count,) for leaf in leaves):
        raise ValueError(
            f"every leaf of parameters needs leading axis N = {count} (rhs.shape[0])."
        )
    if order == "greedy":
        sequence = greedy_order(_features(parameters))
    elif order == "given":
        sequence = jnp.arange(count)
    else:
        raise ValueError(f"order must be 'greedy' or 'given', got {order!r}.")
    if state is None:
        first = build_operator(jax.tree_util.tree_map(lambda leaf: leaf[0], parameters))
        state = solver.init_state(as_operator(first, rhs[0]), rhs[0])

    def step(carry, index):
        state, previous = carry
        operator = build_operator(
            jax.tree_util.tree_map(lambda leaf: leaf[index], parameters)
        )
        solution = solve(
            operator,
            rhs[index],
            solver,
            x0=previous if warm_start else None,
            preconditioner=preconditioner,
            state=state,
            throw=False,
        )
        return (solution.state, solution.value), (
            solution.value,
            solution.result,
            solution.stats,
        )

    (state, _), (values, results, stats) = lax.scan(
        step, (state, jnp.zeros_like(rhs[0])), sequence
    )
    inverse = jnp.zeros_like(sequence).at[sequence].set(jnp.arange(count))
    unsort = lambda tree: jax.tree_util.tree_map(lambda leaf: leaf[inverse], tree)
    return SequenceSolution(
        value=values[inverse],
        result=unsort(results),
        stats=unsort(stats),
        order=sequence,
        state=state,
    )
