"""Orders of a sequence of systems in which neighbours are similar (SKR's
sorting step): a greedy nearest-neighbour chain, and a truncated-FFT + PCA +
Hilbert-curve order for long sequences."""

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int


def flat_features(parameters) -> Float[Array, "N p"]:
    """The leaves of a PyTree with leading axis N, flattened and concatenated."""
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


def hilbert_index(coordinates: Int[Array, "N d"], bits: int) -> Int[Array, " N"]:
    """Position of integer points (each coordinate in [0, 2^bits)) along the
    d-dimensional Hilbert curve, by Skilling's transpose algorithm
    ("Programming the Hilbert curve", AIP Conf. Proc. 707, 2004). Points
    close on the curve are close in space, which a plain lexicographic or
    Morton order does not guarantee across cell boundaries."""
    count, ndim = coordinates.shape
    if bits * ndim > 31:
        raise ValueError(
            f"hilbert_index: {ndim} x {bits} bits do not fit an int32 index."
        )
    x = [coordinates[:, i].astype(jnp.uint32) for i in range(ndim)]
    q = 1 << (bits - 1)
    while q > 1:
        p = jnp.uint32(q - 1)
        for i in range(ndim):
            bit_set = (x[i] & q) != 0
            swap = (x[0] ^ x[i]) & p
            x0 = jnp.where(bit_set, x[0] ^ p, x[0] ^ swap)
            if i:
                x[i] = jnp.where(bit_set, x[i], x[i] ^ swap)
            x[0] = x0
        q >>= 1
    for i in range(1, ndim):
        x[i] = x[i] ^ x[i - 1]
    flips = jnp.zeros(count, jnp.uint32)
    q = 1 << (bits - 1)
    while q > 1:
        flips = jnp.where((x[ndim - 1] & q) != 0, flips ^ jnp.uint32(q - 1), flips)
        q >>= 1
    x = [xi ^ flips for xi in x]
    index = jnp.zeros(count, jnp.uint32)
    for bit in reversed(range(bits)):
        for i in range(ndim):
            index = (index << 1) | ((x[i] >> bit) & 1)
    return index.astype(jnp.int32)


def fft_pca_order(
    parameters, *, modes: int = 8, components: int = 2
) -> Int[Array, " N"]:
    """Order for long sequences: truncated FFT, PCA, then a Hilbert curve.

    Each leaf of ``parameters`` (leading axis N, then a grid of any
    dimension) is reduced to its lowest ``modes`` Fourier modes per grid
    dimension (the smooth part that decides how similar two systems are),
    the N feature vectors are projected on their first ``components``
    principal axes, and the systems are sorted along a Hilbert curve through
    that box. O(N p log p + N p r) instead of the greedy chain's O(N^2 p):
    the SKR paper's variant for large N (Wang et al., ICLR 2024).
    """
    if components < 1 or modes < 1:
        raise ValueError("fft_pca_order: modes and components must be >= 1.")
    features = []
    for leaf in jax.tree_util.tree_leaves(parameters):
        grid_axes = tuple(range(1, leaf.ndim))
        spectrum = jnp.fft.rfftn(leaf, axes=grid_axes) if grid_axes else leaf
        for axis in grid_axes:
            spectrum = lax.slice_in_dim(
                spectrum, 0, min(modes, spectrum.shape[axis]), axis=axis
            )
        spectrum = spectrum.reshape(leaf.shape[0], -1)
        if jnp.iscomplexobj(spectrum):
            spectrum = jnp.concatenate([spectrum.real, spectrum.imag], axis=1)
        features.append(spectrum)
    features = jnp.concatenate(features, axis=1)
    centred = features - jnp.mean(features, axis=0, keepdims=True)
    _, _, axes = jnp.linalg.svd(centred, full_matrices=False)
    components = min(components, axes.shape[0])
    scores = jnp.matmul(centred, axes[:components].T, precision=lax.Precision.HIGHEST)
    bits = min(16, 31 // components)
    low = jnp.min(scores, axis=0, keepdims=True)
    high = jnp.max(scores, axis=0, keepdims=True)
    scale = jnp.where(high > low, (2**bits - 1) / (high - low), 0.0)
    grid = jnp.round((scores - low) * scale).astype(jnp.int32)
    return jnp.argsort(hilbert_index(grid, bits), stable=True).astype(jnp.int32)
