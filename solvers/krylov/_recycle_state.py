"""The recycled subspace that GCRODR and RecycledCG carry between solves."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


class RecycleState(eqx.Module):
    """A recycled subspace, in x-space: the rows of ``basis`` span k
    approximate eigen-directions of the last system's operator (harmonic Ritz
    vectors for GCRODR, Ritz vectors for RecycledCG). ``valid`` is False until
    a solve has produced one. Export it (it is plain arrays) and pass it to
    the next ``solve``."""

    basis: Float[Array, "k n"]
    valid: Bool[Array, ""]


def recycle_size(recycle: int, n: int) -> int:
    """The dimension of the recycled space on n unknowns: at most n, since
    no more than n independent directions exist (a thin QR of the n x k
    product A U would otherwise return fewer columns than U has)."""
    return min(recycle, n)


def empty_recycle_state(recycle: int, b) -> RecycleState:
    k = recycle_size(recycle, b.shape[0])
    return RecycleState(
        basis=jnp.zeros((k, b.shape[0]), b.dtype), valid=jnp.asarray(False)
    )


def check_recycle_state(state: RecycleState, recycle: int, b) -> None:
    """Trace-time check that a state passed in fits this solver and b."""
    expected = (recycle_size(recycle, b.shape[0]), b.shape[0])
    if state.basis.shape != expected or state.basis.dtype != b.dtype:
        raise ValueError(
            f"state.basis must have shape {expected} and dtype {b.dtype}; got "
            f"{state.basis.shape}, {state.basis.dtype}."
        )
