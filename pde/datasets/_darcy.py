"""The Darcy-flow data of the FNO benchmark, generated with multigrid-PCG."""

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, PRNGKeyArray

from ...solvers import CG, RESULTS, DiffusionOperator, Multigrid, solve
from .._random_field import gaussian_random_field
from ._sharding import over_devices, sample_indices


def subsample(
    field: Float[Array, "... R R"], resolution: int
) -> Float[Array, "... r r"]:
    """Every k-th node of a field on a uniform grid, boundary nodes kept:
    421 -> 211 (k = 2), 141 (3), 106 (4), 85 (5), ...

    Raises ValueError unless (R - 1) is a multiple of (resolution - 1).
    """
    size = field.shape[-1]
    if resolution < 2 or (size - 1) % (resolution - 1):
        raise ValueError(
            f"subsample: cannot take {resolution} of {size} nodes evenly; "
            f"(size - 1) must be a multiple of (resolution - 1)."
        )
    step = (size - 1) // (resolution - 1)
    return field[..., ::step, ::step]


def darcy_sample(
    key: PRNGKeyArray,
    *,
    resolution: int = 421,
    alpha: float = 2.0,
    tau: float = 3.0,
    rtol: float = 1e-10,
    dtype=None,
):
    r"""One sample of the FNO Darcy benchmark (Li et al. 2021):
    $-\nabla\cdot(a\nabla u) = 1$ on $(0, 1)^2$, $u = 0$ on the boundary,
    with $a = 12$ where a Gaussian random field $N(0, (-\Delta + \tau^2)^{-\alpha})$
    is $\ge 0$ and $a = 3$ elsewhere.

    Steps, as in the published generator: the field on the resolution x
    resolution nodes (cosine/Neumann expansion, ``gaussian_random_field``);
    the threshold; second-order conservative finite differences with
    arithmetic-mean face coefficients (``solvers.DiffusionOperator``); the
    solve. Deviation: the published generator solves with a direct sparse
    solver in MATLAB; here multigrid-preconditioned CG to ``rtol`` on the
    true residual (default 1e-10, about 9 iterations), which agrees with a
    sparse direct solve to about 1e-9 relative (tested).

    Returns:
        (coefficient, solution, result), the first two on all nodes
        (boundary included, u = 0 there); ``result`` is the solver's
        ``RESULTS`` item.
    """
    dtype = jnp.dtype(dtype or jnp.zeros(0).dtype)
    field = gaussian_random_field(
        key, (resolution, resolution), alpha=alpha, tau=tau, dtype=dtype
    )
    coefficient = jnp.where(field >= 0, 12.0, 3.0).astype(dtype)
    operator = DiffusionOperator(coefficient)
    interior = resolution - 2
    solver = CG(rtol=rtol, atol=0.0, max_steps=200)
    solution = solve(
        operator,
        jnp.ones(interior * interior, dtype),
        solver,
        preconditioner=Multigrid(),
        throw=False,
    )
    u = jnp.pad(solution.value.reshape(interior, interior), 1)
    return coefficient, u, solution.result


def darcy_samples(
    key: PRNGKeyArray,
    num_samples: int,
    *,
    resolution: int = 421,
    alpha: float = 2.0,
    tau: float = 3.0,
    rtol: float = 1e-10,
    batch_size: int = 1,
    first_index: int = 0,
    devices=None,
    dtype=None,
):
    """``num_samples`` samples of the FNO Darcy benchmark (see ``darcy_sample``).

    Sample i uses ``jax.random.fold_in(key, first_index + i)``, so a sample
    is the same whichever shard or device computes it. Samples are split
    evenly over ``devices`` (default: all local devices) with
    ``jax.shard_map`` and solved ``batch_size`` at a time on each (``vmap``
    inside ``lax.map``, batches padded to that width). With the default
    ``batch_size=1`` every sample is computed alone, so the data are
    identical to the bit for any split into shards on one device; across
    device counts they agree to rounding (on 2-8 virtual CPU devices the
    solutions differ in the last bit, 4e-16 relative, since the devices share
    one thread pool and dense products block differently). Wider batches are
    faster on GPUs but a sample's last bits may then depend on its position
    in the batch (vectorised sums round differently).

    Returns:
        (coefficient, solution), each (num_samples, resolution, resolution).
        Raises if a solve did not converge (``RESULTS``' message says why).
    """
    if num_samples < 1:
        raise ValueError(f"darcy_samples: num_samples must be >= 1, got {num_samples}.")
    if resolution < 5:
        raise ValueError(f"darcy_samples: resolution must be >= 5, got {resolution}.")
    devices = tuple(jax.local_devices() if devices is None else devices)
    if batch_size < 1:
        raise ValueError(f"darcy_samples: batch_size must be >= 1, got {batch_size}.")
    indices = sample_indices(num_samples, first_index, devices, batch_size)
    coefficients, solutions, results = _generate(
        key,
        indices,
        resolution,
        alpha,
        tau,
        rtol,
        batch_size,
        dtype,
        devices,
    )
    coefficients, solutions = coefficients[:num_samples], solutions[:num_samples]
    results = jax.tree_util.tree_map(lambda leaf: leaf[:num_samples], results)
    coefficients = results.error_if(coefficients, results != RESULTS.successful)
    return coefficients, solutions


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6, 7, 8))
def _generate(key, indices, resolution, alpha, tau, rtol, batch_size, dtype, devices):
    def run(key, indices):
        def one(index):
            return darcy_sample(
                jax.random.fold_in(key, index),
                resolution=resolution,
                alpha=alpha,
                tau=tau,
                rtol=rtol,
                dtype=dtype,
            )

        return lax.map(one, indices, batch_size=batch_size)

    return over_devices(run, devices)(key, indices)
