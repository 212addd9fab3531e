"""The order in which a generator solves its samples: a chain through
parameter space along which neighbouring systems are similar (SKR's sort),
so that a recycling solver carries a useful subspace from one to the next."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ...solvers.sequence import fft_pca_order, greedy_order

ORDERS = ("none", "greedy", "fft-pca")
# The greedy chain costs O(N^2 p) in the p features per sample: the fields
# are subsampled to at most this many nodes per axis first (their smooth
# part decides how similar two systems are).
_GREEDY_NODES_PER_AXIS = 32


def check_order(caller: str, order) -> str:
    if order not in ORDERS:
        raise ValueError(f"{caller}: order must be one of {ORDERS}, got {order!r}.")
    return order


def sample_order(order: str, fields: Float[Array, "N ..."]) -> Int[Array, " N"]:
    """Positions 0..N-1 of ``fields`` in the order to solve them: as given
    ("none"), the greedy nearest-neighbour chain on the fields subsampled to
    at most 32 nodes per axis ("greedy", O(N^2)), or the truncated-FFT, PCA
    and Hilbert-curve order ("fft-pca", O(N), for long runs)."""
    count = fields.shape[0]
    if order == "none":
        return jnp.arange(count, dtype=jnp.int32)
    if order == "fft-pca":
        return fft_pca_order(fields)
    strides = tuple(
        slice(None, None, max(1, -(-size // _GREEDY_NODES_PER_AXIS)))
        for size in fields.shape[1:]
    )
    coarse = fields[(slice(None),) + strides].reshape(count, -1)
    return greedy_order(coarse)


def inverse_order(sequence: Int[Array, " N"]) -> Int[Array, " N"]:
    """The permutation that puts arrays in solve order back in sample order."""
    count = sequence.shape[0]
    return (
        jnp.zeros_like(sequence)
        .at[sequence]
        .set(jnp.arange(count, dtype=sequence.dtype))
    )


def fields_at(make_field, key, indices, batch_size=16):
    """``make_field(fold_in(key, i))`` for every i in ``indices``, a batch at
    a time (the fields of a long run need not be built side by side)."""
    return jax.lax.map(
        lambda index: make_field(jax.random.fold_in(key, index)),
        indices,
        batch_size=min(batch_size, indices.shape[0]),
    )
