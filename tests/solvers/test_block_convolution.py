"""Convolutions of the full grid rewritten on the grid of 2^d blocks must
compute the same numbers as the full-grid forms they replace, and the
network built on them must be the full-grid network without its finest
nonlinearity."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciax.solvers.learned._block_convolution import (
    block_convolution,
    composed_kernel,
    depth_to_space,
    pooled_kernel,
    space_to_depth,
    stride_one_kernel,
    upsampled_kernel,
)
from sciax.solvers.learned._direction_network import _pool, _upsample
from tests.helpers import random_network


@pytest.fixture(autouse=True)
def full_precision():
    """These are identities of the algebra: on a GPU the default TF32
    convolutions would round both sides differently at about 1e-3."""
    with jax.default_matmul_precision("highest"):
        yield


def convolution(x, kernel, bias=None):
    """Zero-padded stride-1 convolution of the full grid, (in, ..) -> (out, ..)."""
    ndim = x.ndim - 1
    radius = kernel.shape[-1] // 2
    y = jax.lax.conv_general_dilated(
        x[None], kernel, (1,) * ndim, [(radius, radius)] * ndim
    )[0]
    return y if bias is None else y + bias.reshape((-1,) + (1,) * ndim)


def random(seed, shape, dtype):
    # numpy: JAX's generator would compile once per shape
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.standard_normal(shape), dtype)


TOLERANCE = {jnp.float32: 2e-5, jnp.float64: 1e-12}
CASES = [(2, 12, jnp.float64), (2, 11, jnp.float32), (3, 8, jnp.float64)]
EVEN = [c for c in CASES if c[1] % 2 == 0]


@functools.cache
def identities(ndim, n, dtype):
    """Both sides of every identity below for one case, computed by one
    compiled program (run eagerly, each operation compiles on its own)."""
    even = n % 2 == 0

    def stride_one(x, kernel):
        blocked = block_convolution(
            space_to_depth(x), stride_one_kernel(kernel), jnp.zeros(3 * 2**ndim, dtype)
        )
        return depth_to_space(blocked, x.shape[1:]), convolution(x, kernel)

    def pooled(x, kernel, bias):
        blocked = block_convolution(space_to_depth(x), pooled_kernel(kernel), bias)
        return blocked, _pool(convolution(x, kernel, bias), ndim)

    def upsampled(z, kernel):
        blocked = block_convolution(
            z, upsampled_kernel(kernel), jnp.zeros(2**ndim, dtype)
        )
        shape = (n,) * ndim
        return depth_to_space(blocked, shape), convolution(_upsample(z, shape), kernel)

    def composed(x, first, second):
        inner = (slice(None),) + (slice(1, -1),) * ndim
        return (
            convolution(x, composed_kernel(second, first))[inner],
            convolution(convolution(x, first), second)[inner],
        )

    @jax.jit
    def sides(inputs):
        blocks = space_to_depth(inputs["x"])
        out = {
            "blocks": blocks,
            "round_trip": depth_to_space(blocks, inputs["x"].shape[1:]),
            "composed": composed(*inputs["composed"]),
        }
        for width in (3, 5):
            out[f"stride_one_{width}"] = stride_one(*inputs[f"stride_one_{width}"])
        if even:
            out["pooled"] = pooled(*inputs["pooled"])
            out["upsampled"] = upsampled(*inputs["upsampled"])
        return out

    grid = (n,) * ndim
    x = random(1, (2,) + grid, dtype)
    inputs = {
        "x": random(0, (3,) + grid, dtype),
        "stride_one_3": (x, random(2, (3, 2) + (3,) * ndim, dtype)),
        "stride_one_5": (x, random(2, (3, 2) + (5,) * ndim, dtype)),
        "composed": (
            random(8, (2,) + grid, dtype),
            random(9, (4, 2) + (3,) * ndim, dtype),
            random(10, (1, 4) + (3,) * ndim, dtype),
        ),
    }
    if even:
        inputs["pooled"] = (
            random(3, (2,) + grid, dtype),
            random(4, (5, 2) + (3,) * ndim, dtype),
            random(5, (5,), dtype),
        )
        inputs["upsampled"] = (
            random(6, (4,) + (n // 2,) * ndim, dtype),
            random(7, (1, 4) + (3,) * ndim, dtype),
        )
    return inputs, jax.device_get(sides(inputs))


def assert_sides_agree(sides, dtype):
    blocked, full = sides
    np.testing.assert_allclose(
        blocked, full, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype] * 10
    )


@pytest.mark.parametrize("ndim,n,dtype", CASES)
def test_space_to_depth_round_trip(ndim, n, dtype):
    inputs, out = identities(ndim, n, dtype)
    x, blocks = np.asarray(inputs["x"]), out["blocks"]
    assert blocks.shape == (3 * 2**ndim,) + ((n + 1) // 2,) * ndim
    np.testing.assert_array_equal(out["round_trip"], x)
    # channel c, parity q holds cell 2i + q
    corner = blocks[(slice(None),) + (0,) * ndim].reshape((3,) + (2,) * ndim)
    np.testing.assert_array_equal(corner, x[(slice(None),) + (slice(0, 2),) * ndim])


@pytest.mark.parametrize("ndim,n,dtype", CASES)
@pytest.mark.parametrize("width", [3, 5])
def test_stride_one_kernel(ndim, n, dtype, width):
    """Any size: odd sizes are padded by the zero layer the full-grid
    convolution reads there."""
    assert_sides_agree(identities(ndim, n, dtype)[1][f"stride_one_{width}"], dtype)


@pytest.mark.parametrize("ndim,n,dtype", EVEN)
def test_pooled_kernel(ndim, n, dtype):
    """Even sizes (``_pool`` repeats the last layer of odd ones)."""
    assert_sides_agree(identities(ndim, n, dtype)[1]["pooled"], dtype)


@pytest.mark.parametrize("ndim,n,dtype", EVEN)
def test_upsampled_kernel(ndim, n, dtype):
    assert_sides_agree(identities(ndim, n, dtype)[1]["upsampled"], dtype)


@pytest.mark.parametrize("ndim,n,dtype", CASES)
def test_composed_kernel_away_from_walls(ndim, n, dtype):
    assert_sides_agree(identities(ndim, n, dtype)[1]["composed"], dtype)


@pytest.mark.parametrize(
    "ndim,cell_types,pairless_levels,pairless_up_levels",
    [(2, False, 1, 1), (2, True, 2, 2), (3, True, 1, 1), (3, False, 1, 2)],
)
def test_network_without_full_resolution_pairs(
    ndim, cell_types, pairless_levels, pairless_up_levels
):
    """project(lift(x) + upsample(relu(y))) with y from the pooled lift:
    exact on the whole grid for the upsampled part and away from the
    walls for project(lift(x))."""
    # two levels: pairs below the once-coarsened grid, and the way back up
    # to it, are the same code at any depth
    network = random_network(
        ndim,
        seed=3,
        levels=2,
        cell_types=cell_types,
        pairless_levels=pairless_levels,
        pairless_up_levels=pairless_up_levels,
    )
    # residual pairs from level pairless_levels on, two at the coarsest;
    # on the way up from pairless_up_levels on
    assert len(network.down) == network.levels - pairless_levels + 1
    assert len(network.up) == network.levels - pairless_up_levels
    shape = (16,) * ndim if ndim == 2 else (8,) * ndim
    residual = random(11, shape, jnp.float32)
    types = jnp.asarray(np.random.default_rng(12).integers(0, 3, shape))

    @eqx.filter_jit
    def both(network, residual, types):
        x = residual[None]
        if cell_types:
            one_hot = jax.nn.one_hot(types, 3, axis=0, dtype=jnp.float32)
            x = jnp.concatenate([x, one_hot])
        lifted = network.lift(x)
        y = network._coarse_levels(_pool(lifted, ndim))
        upsampled = network.project(_upsample(jax.nn.relu(y), shape))[0]
        direct = network.project(lifted)[0] - network.project.bias[0]
        return network(residual, types if cell_types else None), upsampled + direct

    out, reference = both(network, residual, types)
    inner = (slice(1, -1),) * ndim
    np.testing.assert_allclose(out[inner], reference[inner], rtol=1e-4, atol=1e-4)
    # at the walls only project(lift(x)) differs: it also sees the lift
    # of the zero padding
    assert out.shape == shape and out.dtype == jnp.float32


@pytest.mark.parametrize("dtype,pairless_levels", [(jnp.float32, 2), (jnp.float64, 1)])
def test_blocked_network_transforms(dtype, pairless_levels):
    """jit on grids down to one cell, vmap, and gradients, in the network's
    own dtype (two levels: the transforms do not depend on the depth)."""
    network = random_network(2, levels=2, pairless_levels=pairless_levels, dtype=dtype)
    call = jax.jit(lambda net, r: net(r))
    for n in (1, 5):
        out = call(network, jnp.ones((n, n + 1), dtype))
        assert out.shape == (n, n + 1) and out.dtype == dtype
        assert bool(jnp.all(jnp.isfinite(out)))
    # the shape of the grid above, whose program the comparison reuses
    residuals = random(13, (3, 5, 6), dtype)

    @jax.jit
    def batched_and_gradient(net, rs):
        gradient = jax.grad(lambda n: jnp.sum(n(rs[0]) ** 2))(net)
        return jax.vmap(net)(rs), gradient

    batched, gradient = batched_and_gradient(network, residuals)
    np.testing.assert_allclose(
        batched[1], call(network, residuals[1]), rtol=TOLERANCE[dtype], atol=1e-6
    )
    for leaf in jax.tree.leaves(gradient):
        assert bool(jnp.all(jnp.isfinite(leaf)))
    assert float(jnp.linalg.norm(gradient.lift.weight)) > 0
    assert float(jnp.linalg.norm(gradient.project.weight)) > 0
