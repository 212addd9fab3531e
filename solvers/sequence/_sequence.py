"""Solving a sequence of related systems in an order that lets recycling work
(SKR: sort, then GCRO-DR carrying its subspace along the sorted chain)."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int

from ..._results import RESULTS
from .._operator import as_operator
from .._solve import solve
from .._solver import AbstractLinearSolver
from ._ordering import fft_pca_order, flat_features, greedy_order


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


def _check_chunks(chunks, devices, count):
    if chunks < 1 or chunks > count:
        raise ValueError(f"chunks must lie in [1, N = {count}], got {chunks}.")
    if devices is not None and chunks % len(devices):
        raise ValueError(
            f"chunks ({chunks}) must be a multiple of the number of devices ({len(devices)})."
        )


@eqx.filter_jit
def solve_sequence(
    build_operator,
    parameters,
    rhs: Float[Array, "N n"],
    solver: AbstractLinearSolver,
    *,
    order: str = "greedy",
    x0: Float[Array, "N n"] | None = None,
    warm_start: bool = False,
    preconditioner=None,
    state=None,
    chunks: int = 1,
    devices=None,
) -> SequenceSolution:
    r"""Solve $A(\theta_i) x_i = b_i$ for i = 1..N in one compiled scan.

    The matrices are built one at a time inside the scan from their
    parameters, so the N operators never exist together. With a recycling
    solver (``GCRODR``, ``RecycledCG``) the recycle space is the scan's
    carry: each system starts with the subspace of the previous one in the
    solve order.

    With ``chunks = c > 1`` the sorted sequence is cut into c contiguous
    pieces that are solved side by side (``vmap``), each recycling within its
    piece from a fresh (or the given) state; with ``devices`` the pieces are
    spread over those devices (``jax.shard_map`` on a 1-D mesh, no
    communication until the results are gathered). Fewer systems per chain
    means less recycling, so chunks trade matvecs for parallelism.

    Args:
        build_operator: function from one system's parameters to an operator
            (``LinearOperator``, matrix or matvec).
        parameters: PyTree of arrays with leading axis N.
        rhs: (N, n) right-hand sides.
        solver: any solver; tolerances and limits apply to every system.
        order: "greedy" (nearest-neighbour chain on the flattened
            parameters, SKR's sort, O(N^2)), "fft-pca" (truncated FFT of each
            parameter field, PCA, Hilbert curve: O(N) in N, for long
            sequences) or "given".
        x0: (N, n) initial guesses, one per system in the caller's order
            (for instance a neural operator's predictions, moved to vectors
            with the operator's ``to_vector``); None starts from zero.
        warm_start: start each system from the previous solution in the
            solve order (useful when right-hand sides are related too);
            not with ``x0``.
        preconditioner: as for ``solve`` (``Jacobi()``, ``Multigrid()`` are
            rebuilt per system).
        state: initial solver state (e.g. a recycle space from an earlier run).
        chunks: number of contiguous pieces of the sorted sequence.
        devices: None (the default device) or a list of devices, whose
            length divides ``chunks``.

    Returns:
        ``SequenceSolution`` in the caller's order, with the order used;
        ``state`` is the state at the end of the last piece. Systems that
        fail are reported in ``result``; nothing is raised.
    """
    count = rhs.shape[0]
    _check_inputs(parameters, count, chunks, devices)
    if x0 is not None:
        if warm_start:
            raise ValueError("solve_sequence: pass x0 or warm_start=True, not both.")
        x0 = jnp.asarray(x0)
        if x0.shape != rhs.shape:
            raise ValueError(
                f"solve_sequence: x0 must have the shape of rhs {rhs.shape}, "
                f"got {x0.shape}."
            )
    sequence = _solve_order(order, parameters, count)
    if state is None:
        first = build_operator(jax.tree_util.tree_map(lambda leaf: leaf[0], parameters))
        state = solver.init_state(as_operator(first, rhs[0]), rhs[0])
    run_chain = _chain_solver(build_operator, solver, warm_start, preconditioner)
    length = -(-count // chunks)
    # the per-system guesses travel with the parameters (None: zeros)
    guesses = jnp.zeros_like(rhs) if x0 is None else x0
    chain_systems, chain_rhs = _cut_into_chains(
        sequence, (parameters, guesses), rhs, chunks, length
    )
    run = _run_chains(run_chain, chunks, devices)
    outputs, states = run(chain_systems, chain_rhs, state)
    return _in_callers_order(outputs, states, sequence, count, chunks, length)


def _check_inputs(parameters, count, chunks, devices):
    """Every parameter leaf has one entry per system; ``chunks`` fits N and
    the devices."""
    leaves = jax.tree_util.tree_leaves(parameters)
    if any(leaf.shape[:1] != (count,) for leaf in leaves):
        raise ValueError(
            f"every leaf of parameters needs leading axis N = {count} (rhs.shape[0])."
        )
    _check_chunks(chunks, devices, count)


def _solve_order(order, parameters, count):
    """The order in which the systems are solved, as int32 indices."""
    if order == "greedy":
        sequence = greedy_order(flat_features(parameters))
    elif order == "fft-pca":
        sequence = fft_pca_order(parameters)
    elif order == "given":
        sequence = jnp.arange(count)
    else:
        raise ValueError(
            f"order must be 'greedy', 'fft-pca' or 'given', got {order!r}."
        )
    return sequence.astype(jnp.int32)


def _chain_solver(build_operator, solver, warm_start, preconditioner):
    """``run_chain(parameters, rhs, state) -> ((values, results, stats),
    state)``: one scan over a chain of systems, the solver state (and with
    ``warm_start`` the solution) carried from each system to the next."""

    def step(carry, system):
        state, previous = carry
        (system_parameters, guess), b = system
        solution = solve(
            build_operator(system_parameters),
            b,
            solver,
            x0=previous if warm_start else guess,
            preconditioner=preconditioner,
            state=state,
            throw=False,
        )
        return (solution.state, solution.value), (
            solution.value,
            solution.result,
            solution.stats,
        )

    def run_chain(chain_parameters, chain_rhs, state):
        (state, _), outputs = lax.scan(
            step, (state, jnp.zeros_like(chain_rhs[0])), (chain_parameters, chain_rhs)
        )
        return outputs, state

    return run_chain


def _cut_into_chains(sequence, parameters, rhs, chunks, length):
    """The parameters and right-hand sides in solve order, cut into
    ``chunks`` chains of ``length`` (leading axes (chunks, length))."""
    count = sequence.shape[0]
    # Pad the sorted sequence to a multiple of ``chunks`` by repeating its
    # last system; the repeats are solved and discarded.
    padded = jnp.concatenate(
        [sequence, jnp.full(length * chunks - count, sequence[-1], sequence.dtype)]
    )
    pieces = lambda leaf: leaf[padded].reshape((chunks, length) + leaf.shape[1:])  # noqa: E731
    return jax.tree_util.tree_map(pieces, parameters), pieces(rhs)


def _run_chains(run_chain, chunks, devices):
    """``run_chain`` over the chains' leading axis: side by side (vmap), and
    spread over ``devices`` (shard_map) when given."""
    if chunks == 1:
        # No vmap here: under vmap a solver's lax.cond becomes a select that
        # runs both branches, twice the work.
        def run(chain_parameters, chain_rhs, state):
            only = lambda leaf: leaf[0]  # noqa: E731
            outputs, state = run_chain(
                jax.tree_util.tree_map(only, chain_parameters), chain_rhs[0], state
            )
            return jax.tree_util.tree_map(lambda leaf: leaf[None], (outputs, state))
    else:
        run = jax.vmap(run_chain, in_axes=(0, 0, None))
    if devices is not None:
        mesh = jax.sharding.Mesh(list(devices), ("chunks",))
        split = jax.sharding.PartitionSpec("chunks")
        run = jax.shard_map(
            run,
            mesh=mesh,
            in_specs=(split, split, jax.sharding.PartitionSpec()),
            out_specs=split,
            # the solvers' loops mix per-chunk values with constants; the
            # pieces never communicate, so there is no replication to check
            check_vma=False,
        )
    return run


def _in_callers_order(outputs, states, sequence, count, chunks, length):
    """The ``SequenceSolution``: the chains' outputs joined, the padding
    dropped, and every field put back in the caller's order; the state at
    the end of the last chain."""
    flat = lambda leaf: leaf.reshape((chunks * length,) + leaf.shape[2:])[:count]  # noqa: E731
    values, results, stats = jax.tree_util.tree_map(flat, outputs)
    state = jax.tree_util.tree_map(lambda leaf: leaf[-1], states)
    inverse = (
        jnp.zeros_like(sequence).at[sequence].set(jnp.arange(count, dtype=jnp.int32))
    )
    unsort = lambda tree: jax.tree_util.tree_map(lambda leaf: leaf[inverse], tree)  # noqa: E731
    return SequenceSolution(
        value=values[inverse],
        result=unsort(results),
        stats=unsort(stats),
        order=sequence,
        state=state,
    )
