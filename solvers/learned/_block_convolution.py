"""Convolutions of the full grid rewritten on the grid of 2^d blocks.

A cell j = 2i + q of the full grid (per axis, q in {0, 1}) is channel q of
block i. A stride-1 convolution of the full grid with taps at offsets
-2..2 is then a convolution of the block grid with taps at block offsets
-1..1, from 2^d times the input channels to 2^d times the output channels;
a convolution followed by 2-average pooling is one with only the input side
blocked, and one that reads a field upsampled by nearest neighbours one
with only the output side blocked. The block form computes the same sums
(on grids of even size; at an odd size the block grid is padded by zeros,
where pooling would repeat the last layer) but never holds a multi-channel
tensor on the full grid: at 256^3 that tensor is 1 GB per 16 channels, and
moving it is what dominated the network's cost on a GPU.

Kernels are (out, in, taps...) with cross-correlation taps, as in
``jax.lax.conv_general_dilated`` and ``equinox.nn.Conv``; the blocked side of
a kernel lists its channels channel-major (channel c, parity q at
c * 2^d + flat(q)), as ``space_to_depth`` does.
"""

import itertools
import string

import jax
import jax.numpy as jnp
import numpy as np


def space_to_depth(x):
    """(c, n_1..n_d) -> (c 2^d, ceil(n_1/2)..): odd sizes are padded by a
    zero layer, which is what a zero-padded convolution reads there."""
    ndim = x.ndim - 1
    x = jnp.pad(x, [(0, 0)] + [(0, n % 2) for n in x.shape[1:]])
    shape = [x.shape[0]]
    for n in x.shape[1:]:
        shape += [n // 2, 2]
    x = x.reshape(shape)
    order = [0, *range(2, 2 + 2 * ndim, 2), *range(1, 1 + 2 * ndim, 2)]
    x = x.transpose(order)
    return x.reshape((-1,) + x.shape[1 + ndim :])


def depth_to_space(x, shape):
    """Inverse of ``space_to_depth``, cropped to the full grid's ``shape``."""
    ndim = len(shape)
    blocks = x.shape[1:]
    x = x.reshape((-1,) + (2,) * ndim + blocks)
    order = [0]
    for axis in range(ndim):
        order += [1 + ndim + axis, 1 + axis]
    x = x.transpose(order).reshape((-1,) + tuple(2 * n for n in blocks))
    return x[(slice(None),) + tuple(slice(0, n) for n in shape)]


def _stride_one_taps(width):
    """[q, p, o, k]: full-grid tap k (offset k - width//2) from output parity
    q lands on block offset o - 1, input parity p."""
    radius = width // 2
    taps = np.zeros((2, 2, 3, width))
    for q, p, o, k in itertools.product(range(2), range(2), range(3), range(width)):
        taps[q, p, o, k] = k - radius == 2 * (o - 1) + p - q
    return taps


def _pooled_taps():
    """[1, p, o, k]: the 2-average of the outputs of a 3-tap convolution at
    cells 2i and 2i + 1 reads input cell 2i + t - 1 with weight POOL[t, k];
    that cell is block i + o - 1, parity p."""
    pool = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1]]) / 2
    taps = np.zeros((1, 2, 3, 3))
    for p, o in itertools.product(range(2), range(3)):
        t = 2 * (o - 1) + p + 1
        if 0 <= t < 4:
            taps[0, p, o] = pool[t]
    return taps


def _upsampled_taps():
    """[q, 1, o, k]: a 3-tap convolution of the nearest-neighbour upsampled
    field at cell 2i + q reads cell 2i + q + k - 1, which is block
    i + floor((q + k - 1) / 2)."""
    taps = np.zeros((2, 1, 3, 3))
    for q, k in itertools.product(range(2), range(3)):
        taps[q, 0, (q + k - 1) // 2 + 1, k] = 1
    return taps


def _block_kernel(kernel, taps):
    """Apply the per-axis tap map ``taps`` [q, p, o, k] to every spatial
    axis of ``kernel`` (out, in, k_1..k_d): (out 2^d or out, in 2^d or in,
    3, .., 3)."""
    ndim = kernel.ndim - 2
    letters = iter(string.ascii_letters)
    k_axes = [next(letters) for _ in range(ndim)]
    q_axes = [next(letters) for _ in range(ndim)]
    p_axes = [next(letters) for _ in range(ndim)]
    o_axes = [next(letters) for _ in range(ndim)]
    out, inp = next(letters), next(letters)
    operands = [out + inp + "".join(k_axes)]
    operands += [
        q + p + o + k for q, p, o, k in zip(q_axes, p_axes, o_axes, k_axes, strict=True)
    ]
    result = out + "".join(q_axes) + inp + "".join(p_axes) + "".join(o_axes)
    taps = jnp.asarray(taps, kernel.dtype)
    blocked = jnp.einsum(",".join(operands) + "->" + result, kernel, *[taps] * ndim)
    num_q, num_p = taps.shape[0] ** ndim, taps.shape[1] ** ndim
    return blocked.reshape(
        (kernel.shape[0] * num_q, kernel.shape[1] * num_p) + (3,) * ndim
    )


def pooled_kernel(kernel):
    """Block kernel of 2-average pooling after a 3-tap convolution."""
    return _block_kernel(kernel, _pooled_taps())


def upsampled_kernel(kernel):
    """Block kernel of a 3-tap convolution of a nearest-neighbour upsampled
    field."""
    return _block_kernel(kernel, _upsampled_taps())


def composed_kernel(second, first):
    """The 5-tap kernel of ``second`` after ``first`` (both 3-tap, no bias,
    no nonlinearity between), channels of the middle summed: exact away
    from the boundary; at the boundary the composition would also zero the
    middle field outside the grid."""
    ndim = first.ndim - 2
    letters = iter(string.ascii_letters)
    a = [next(letters) for _ in range(ndim)]  # taps of second
    b = [next(letters) for _ in range(ndim)]  # taps of first
    s = [next(letters) for _ in range(ndim)]
    out, mid, inp = next(letters), next(letters), next(letters)
    sums = np.zeros((5, 3, 3))
    for x, y in itertools.product(range(3), range(3)):
        sums[x + y, x, y] = 1
    sums = jnp.asarray(sums, first.dtype)
    operands = [out + mid + "".join(a), mid + inp + "".join(b)]
    operands += [si + ai + bi for si, ai, bi in zip(s, a, b, strict=True)]
    result = out + inp + "".join(s)
    return jnp.einsum(",".join(operands) + "->" + result, second, first, *[sums] * ndim)


def stride_one_kernel(kernel):
    """Block kernel of a stride-1 convolution with 3 or 5 taps per axis."""
    return _block_kernel(kernel, _stride_one_taps(kernel.shape[-1]))


def block_convolution(x, kernel, bias):
    """Zero-padded 3-tap convolution on the block grid, (in, ..) -> (out, ..)."""
    ndim = x.ndim - 1
    y = jax.lax.conv_general_dilated(x[None], kernel, (1,) * ndim, [(1, 1)] * ndim)
    return y[0] + bias.reshape((-1,) + (1,) * ndim)
