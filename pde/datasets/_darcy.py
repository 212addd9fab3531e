"""The Darcy-flow data of the FNO benchmark, generated with the library's
solvers (multigrid-PCG by default), optionally along a sorted chain."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, PRNGKeyArray

from ..._results import RESULTS, raise_if_failed
from ...solvers import CG, AbstractLinearSolver, DiffusionOperator, Multigrid, solve
from ...solvers.sequence import solve_sequence
from .._random_field import gaussian_random_field
from ._sample_order import check_order, fields_at, inverse_order, sample_order
from ._sharding import batch_devices, float_dtype, over_devices, sample_indices

# The default relative residual of the multigrid-PCG solve comes from the
# dtype and the grid: the true residual of a solve in precision eps stalls
# near eps ||A|| ||u|| / ||b||, which grows like the resolution squared
# (measured in float32 on one sample: 3.7e-6 relative at 29^2, 9.6e-4 at
# 421^2, both about 0.04 eps R^2). A fixed 1e-10 is therefore unreachable in
# float32 (every solve ran out of steps). The default sits 6x above the
# stall, 0.25 eps R^2, and never below 1e-10, the published generator's
# direct-solve accuracy, so float64 keeps 1e-10 up to R = 1350. The residual
# floor is that of evaluating A u in float32, not of the solution: at 421^2
# the float32 default (5.3e-3) stops after 4 iterations 3.7e-6 from a float64
# solve of the same coefficient (measured, one sample).
_RTOL_FLOOR = 1e-10
_STALL_MARGIN = 0.25


def _default_rtol(resolution: int, dtype) -> float:
    r"""The default ``rtol`` of ``darcy_sample`` and ``darcy_samples``:
    $\max(10^{-10}, \epsilon R^2 / 4)$ for the dtype's machine epsilon
    $\epsilon$ and R nodes per axis (1e-10 in float64 up to R = 1350;
    5.3e-3 in float32 at 421, 2.5e-5 at 29)."""
    eps = float(jnp.finfo(dtype).eps)
    return max(_RTOL_FLOOR, _STALL_MARGIN * eps * resolution**2)


def _dtype_and_rtol(resolution, dtype, rtol):
    dtype = float_dtype("darcy_sample", dtype)
    if rtol is None:
        return dtype, _default_rtol(resolution, dtype)
    if isinstance(rtol, bool) or not float(rtol) > 0:
        raise ValueError(f"darcy_sample: rtol must be > 0 or None, got {rtol!r}.")
    return dtype, rtol


def _dtype_and_solver(caller, resolution, dtype, rtol, solver):
    """The dtype and the solver: multigrid-PCG's CG to ``rtol`` (default from
    the dtype) unless a solver is given, which carries its own tolerances."""
    if solver is None:
        dtype, rtol = _dtype_and_rtol(resolution, dtype, rtol)
        return dtype, CG(rtol=rtol, atol=0.0, max_steps=200)
    if not isinstance(solver, AbstractLinearSolver):
        raise TypeError(
            f"{caller}: solver must be a sciax.solvers solver (CG, GMRES, GCRODR, "
            f"...), got {type(solver).__name__}."
        )
    if rtol is not None:
        raise ValueError(
            f"{caller}: pass rtol either alone (for the default multigrid-PCG) "
            "or inside the solver, not both."
        )
    return float_dtype(caller, dtype), solver


def darcy_coefficient(
    field: Float[Array, "..."], *, high: float = 12.0, low: float = 3.0
) -> Float[Array, "..."]:
    r"""The two-phase coefficient of the FNO Darcy benchmark (Li et al. 2021):
    $a = $ ``high`` where the field is $\ge 0$ and ``low`` elsewhere (12 and
    3 in the benchmark), in the field's dtype.

    Args:
        field: e.g. ``gaussian_random_field(key, (r, r), alpha=2, tau=3)``.
        high: the value where the field is >= 0.
        low: the value elsewhere.
    """
    field = jnp.asarray(field)
    return jnp.where(field >= 0, high, low).astype(field.dtype)


def _darcy_field(key, resolution, alpha, tau, dtype):
    field = gaussian_random_field(
        key, (resolution, resolution), alpha=alpha, tau=tau, dtype=dtype
    )
    return darcy_coefficient(field)


class DarcySample(eqx.Module):
    """What ``darcy_sample`` returns (and ``darcy_samples``, with a leading
    sample axis on every field).

    The sample is an (input, output) pair of operator learning, so the two
    fields are named for their roles rather than folded into one ``value``.

    Attributes:
        coefficient: a on all resolution x resolution nodes (3 or 12).
        solution: u on all nodes, boundary included (u = 0 there).
        result: the solve's ``RESULTS`` item.
        stats: the multigrid-PCG solve's (``solvers.Solution.stats``):
            ``num_steps`` (CG iterations), ``num_matvecs``,
            ``residual_norm`` (final true residual) and
            ``residual_history``.
    """

    coefficient: Float[Array, "r r"]
    solution: Float[Array, "r r"]
    result: RESULTS
    stats: dict


def subsample(
    field: Float[Array, "... R R"], resolution: int
) -> Float[Array, "... r r"]:
    """The field at every k-th node of a uniform grid on a closed square,
    boundary nodes kept: $v_{ij} = u_{ki,kj}$ with $k = (R - 1)/(r - 1)$,
    so $v$ lives on the r x r nodes $x_i = i / (r - 1)$ of the same square
    (421 -> 211 with k = 2, 141 (3), 106 (4), 85 (5), ...), over the last
    two axes.

    No filtering: this is how the FNO benchmark's lower resolutions were
    made from its 421 data.

    Args:
        field: values on the R x R nodes $x_i = i / (R - 1)$ (leading axes
            kept).
        resolution: r >= 2 with (R - 1) a multiple of (r - 1).

    Returns:
        The field on the r x r nodes.

    Raises:
        ValueError: (R - 1) is not a multiple of (resolution - 1).
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
    rtol: float | None = None,
    solver: AbstractLinearSolver | None = None,
    preconditioner=Multigrid(),
    throw: bool = True,
    dtype=None,
) -> DarcySample:
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
    true residual, which agrees with a sparse direct solve to about 1e-9
    relative in float64 (tested).

    Args:
        key: PRNG key of the random field.
        resolution: nodes per axis, boundary included (the benchmark's 421;
            ``subsample`` to 211, 141, 106, 85).
        alpha: the field's smoothness.
        tau: the field's inverse length scale.
        rtol: the default solver's relative residual; default from the
            dtype's machine epsilon and R = resolution,
            $\max(10^{-10}, \epsilon R^2/4)$: 1e-10 in float64 (about 9
            iterations), 5.3e-3 in float32 at 421 (where the float32
            residual stalls near 1e-3, about $0.04\,\epsilon R^2$).
        solver: any ``sciax.solvers`` solver, with its own tolerances
            (then leave ``rtol`` None); default ``CG(rtol, 0, 200)``.
        preconditioner: as for ``solvers.solve``; default ``Multigrid()``
            (built for each sample's operator); None for none.
        throw: raise unless the solve succeeded; pass False inside
            ``jax.vmap`` and read ``result``.
        dtype: float32 or float64 (default: JAX's default float).

    Returns:
        A ``DarcySample``.
    """
    dtype, solver = _dtype_and_solver("darcy_sample", resolution, dtype, rtol, solver)
    coefficient = _darcy_field(key, resolution, alpha, tau, dtype)
    interior = resolution - 2
    solution = solve(
        DiffusionOperator(coefficient),
        jnp.ones(interior * interior, dtype),
        solver,
        preconditioner=preconditioner,
        throw=throw,
    )
    u = jnp.pad(solution.value.reshape(interior, interior), 1)
    return DarcySample(coefficient, u, solution.result, solution.stats)


def darcy_samples(
    key: PRNGKeyArray,
    num_samples: int,
    *,
    resolution: int = 421,
    alpha: float = 2.0,
    tau: float = 3.0,
    rtol: float | None = None,
    solver: AbstractLinearSolver | None = None,
    preconditioner=Multigrid(),
    order: str = "none",
    batch_size: int = 1,
    first_index: int = 0,
    devices=None,
    throw: bool = True,
    dtype=None,
) -> DarcySample:
    """``num_samples`` samples of the FNO Darcy benchmark (see ``darcy_sample``).

    Sample i uses ``jax.random.fold_in(key, first_index + i)``, so a sample
    is the same whichever shard, device or order computes it.

    With ``order="none"`` (default) the samples are solved independently:
    split evenly over ``devices`` (default: all local devices) with
    ``jax.shard_map`` and solved ``batch_size`` at a time on each (``vmap``
    inside ``lax.map``, batches padded to that width). With the default
    ``batch_size=1`` every sample is computed alone, so the data are
    identical to the bit for any split into shards on one device; across
    device counts they agree to rounding (on 2-8 virtual CPU devices the
    solutions differ in the last bit, 4e-16 relative, since the devices share
    one thread pool and dense products block differently). Wider batches are
    faster on GPUs but a sample's last bits may then depend on its position
    in the batch (vectorised sums round differently).

    With ``order="greedy"`` or ``"fft-pca"`` the coefficients are drawn
    first, sorted into a chain along which neighbours are similar (SKR, Wang
    et al. 2024: the greedy nearest-neighbour chain, or the FFT-PCA-Hilbert
    order for long runs), and solved along it with ``solvers.solve_sequence``:
    a recycling solver (``GCRODR``, ``RecycledCG``) carries its recycle space
    from each sample to the next. The chain is cut into one contiguous piece
    per device. The samples come back in index order either way, and agree
    with the unsorted ones to the solver's tolerance.

    Args:
        key: PRNG key of the random fields.
        num_samples: how many.
        resolution: as in ``darcy_sample``.
        alpha: as in ``darcy_sample``.
        tau: as in ``darcy_sample``.
        rtol: as in ``darcy_sample``.
        solver: as in ``darcy_sample``; a recycling one pays with an order.
        preconditioner: as in ``darcy_sample`` (default ``Multigrid()``).
        order: "none", "greedy" or "fft-pca" (see above).
        batch_size: samples solved side by side per device (``order="none"``
            only; a chain is sequential).
        first_index: index of the first sample.
        devices: devices to spread the work over (default: all local ones).
        throw: raise if a solve did not succeed; with False read ``result``.
        dtype: as in ``darcy_sample``.

    Returns:
        A ``DarcySample`` whose fields carry a leading axis of num_samples:
        ``coefficient`` and ``solution`` (num_samples, resolution,
        resolution), ``result`` and every stat one per sample. With
        ``throw`` (default) raises if a solve did not converge (the
        ``RESULTS`` message says why).
    """
    devices = batch_devices("darcy_samples", num_samples, batch_size, devices)
    if resolution < 5:
        raise ValueError(f"darcy_samples: resolution must be >= 5, got {resolution}.")
    check_order("darcy_samples", order)
    if order != "none" and batch_size != 1:
        raise ValueError(
            "darcy_samples: batch_size applies to order='none'; a sorted chain "
            "is solved one sample after another (use devices to split it)."
        )
    dtype, solver = _dtype_and_solver("darcy_samples", resolution, dtype, rtol, solver)
    if order == "none":
        indices = sample_indices(num_samples, first_index, devices, batch_size)
        samples = _generate(
            key,
            indices,
            solver,
            preconditioner,
            (resolution, alpha, tau, batch_size, dtype, devices),
        )
        samples = jax.tree_util.tree_map(lambda leaf: leaf[:num_samples], samples)
    else:
        indices = first_index + jnp.arange(num_samples, dtype=jnp.uint32)
        settings = (resolution, alpha, tau, dtype, devices)
        samples = darcy_chain(key, indices, solver, preconditioner, order, settings)
    return _checked(samples, throw, "sciax.pde.darcy_samples")


def _checked(samples, throw, entry_point):
    """``samples`` with ``throw``'s runtime error attached."""
    if not throw:
        return samples
    coefficient = raise_if_failed(
        samples.coefficient, samples.result, entry_point, "samples"
    )
    return eqx.tree_at(lambda s: s.coefficient, samples, coefficient)


@eqx.filter_jit
def _generate(key, indices, solver, preconditioner, settings):
    resolution, alpha, tau, batch_size, dtype, devices = settings

    def run(key, indices):
        def one(index):
            return darcy_sample(
                jax.random.fold_in(key, index),
                resolution=resolution,
                alpha=alpha,
                tau=tau,
                solver=solver,
                preconditioner=preconditioner,
                throw=False,
                dtype=dtype,
            )

        return lax.map(one, indices, batch_size=batch_size)

    return over_devices(run, devices)(key, indices)


def darcy_chain(key, indices, solver, preconditioner, order, settings) -> DarcySample:
    """The samples ``indices`` (in that order, the first one's recycle space
    fresh) solved along a chain: sorted by ``order`` ("greedy", "fft-pca",
    or "none" to keep the given order), one contiguous piece per device.
    Returned in the order of ``indices``."""
    resolution, alpha, tau, dtype, devices = settings
    coefficient = _chain_fields(key, indices, resolution, alpha, tau, dtype)
    sequence = sample_order(order, coefficient)
    sorted_solution = _solve_chain(
        coefficient[sequence], solver, preconditioner, devices
    )
    inverse = inverse_order(sequence)
    interior = resolution - 2
    value = sorted_solution.value[inverse].reshape(-1, interior, interior)
    unsort = lambda leaf: leaf[inverse]  # noqa: E731
    return DarcySample(
        coefficient,
        jnp.pad(value, ((0, 0), (1, 1), (1, 1))),
        jax.tree_util.tree_map(unsort, sorted_solution.result),
        jax.tree_util.tree_map(unsort, sorted_solution.stats),
    )


def darcy_order_fields(
    key, indices, *, resolution=421, alpha=2.0, tau=3.0, dtype=None, **_
):
    """The coefficients of samples ``indices`` at every k-th node (at most 64
    per axis): what ``sample_order`` needs to sort a long run, without
    holding the full fields of every sample."""
    dtype = float_dtype("darcy_samples", dtype)
    stride = max(1, -(-resolution // 64))
    return _coarse_fields(key, indices, resolution, alpha, tau, dtype, stride)


@eqx.filter_jit
def _coarse_fields(key, indices, resolution, alpha, tau, dtype, stride):
    return fields_at(
        lambda k: _darcy_field(k, resolution, alpha, tau, dtype)[::stride, ::stride],
        key,
        indices,
    )


@eqx.filter_jit
def _chain_fields(key, indices, resolution, alpha, tau, dtype):
    return fields_at(
        lambda k: _darcy_field(k, resolution, alpha, tau, dtype), key, indices
    )


def _solve_chain(coefficient, solver, preconditioner, devices):
    count, size = coefficient.shape[0], coefficient.shape[1] - 2
    chunks = min(len(devices), count)
    return solve_sequence(
        DiffusionOperator,
        coefficient,
        jnp.ones((count, size * size), coefficient.dtype),
        solver,
        order="given",
        preconditioner=preconditioner,
        chunks=chunks,
        devices=list(devices[:chunks]) if chunks > 1 else None,
    )


def darcy_samples_along(
    key,
    indices,
    *,
    resolution: int = 421,
    alpha: float = 2.0,
    tau: float = 3.0,
    rtol: float | None = None,
    solver: AbstractLinearSolver | None = None,
    preconditioner=Multigrid(),
    devices=None,
    throw: bool = True,
    dtype=None,
    **_,
) -> DarcySample:
    """The samples ``indices``, solved as one chain in exactly that order
    (``write_dataset``'s shard of a sorted run), in that order. Options as
    in ``darcy_samples``; its ``order`` and ``batch_size`` are the caller's."""
    devices = tuple(jax.local_devices() if devices is None else devices)
    dtype, solver = _dtype_and_solver("darcy_samples", resolution, dtype, rtol, solver)
    settings = (resolution, alpha, tau, dtype, devices)
    indices = jnp.asarray(indices, jnp.uint32)
    samples = darcy_chain(key, indices, solver, preconditioner, "none", settings)
    return _checked(samples, throw, "sciax.pde.write_dataset")
