"""Operator-learning data from the linear families of ``pde`` (non-symmetric
Darcy, Helmholtz, heat), generated with any of the library's solvers,
optionally along a sorted chain so that a recycling solver carries its
subspace from sample to sample (SKR, Wang et al. 2024)."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, PRNGKeyArray

from ..._results import RESULTS, raise_if_failed
from ...solvers import (
    CG,
    GCRODR,
    AbstractLinearSolver,
    AbstractPreconditioner,
    Multigrid,
    solve,
)
from ...solvers.sequence import solve_sequence
from .._linear_problems import (
    heat_operator,
    helmholtz_operator,
    nonsymmetric_darcy_operator,
)
from .._random_field import gaussian_random_field
from ._darcy import _default_rtol
from ._sample_order import check_order, fields_at, inverse_order, sample_order
from ._sharding import batch_devices, float_dtype, over_devices

FAMILIES = ("nonsymmetric-darcy", "helmholtz", "heat")
# the heat family's one coefficient is drawn from this index of the key, which
# no sample index reaches (samples are numbered below 2^32 - 1)
_COEFFICIENT_INDEX = 0xFFFFFFFF
# GCRO-DR's default space: the recycling benchmark's GCRO-DR(40, 10)
_RESTART, _RECYCLE = 40, 10


class LinearFamilySample(eqx.Module):
    """What ``linear_family_samples`` returns, with a leading sample axis on
    every field.

    Attributes:
        field: the sample's input on all resolution x resolution nodes: the
            Gaussian random field g of the coefficient ("nonsymmetric-darcy",
            "helmholtz"), or the initial temperature ("heat", zero on the
            boundary).
        solution: u on all nodes, boundary included (u = 0 there).
        result: the solve's ``RESULTS`` item.
        stats: the solve's ``num_steps``, ``num_matvecs``,
            ``residual_norm`` and ``residual_history``.
    """

    field: Float[Array, "r r"]
    solution: Float[Array, "r r"]
    result: RESULTS
    stats: dict


def default_order(family: str) -> str:
    """The order a family's data are solved in unless told otherwise: along
    the greedy chain only where the recycle space pays. On 20 samples at
    48^2 unknowns (``benchmarks/family_generator_solvers.py``), GCRO-DR(40,
    20) took 190 matvecs a sample along the chain against 248 unsorted for
    "nonsymmetric-darcy", but 638 against 477 for "helmholtz", whose
    neighbour's space is a worse start than the deflated restarts of a
    fresh solve."""
    return "greedy" if family == "nonsymmetric-darcy" else "none"


def _default_solver(family, resolution, dtype):
    """Multigrid-PCG where multigrid fits (heat: SPD), else GCRO-DR(40, 10)
    without a preconditioner: the non-symmetric and the indefinite operators
    have no multigrid here, and recycling is what sorting pays for."""
    rtol = _default_rtol(resolution, dtype)
    unknowns = (resolution - 2) ** 2
    if family == "heat":
        return (
            CG(rtol=rtol, atol=0.0, max_steps=200),
            Multigrid(),
            default_order(family),
        )
    solver = GCRODR(
        rtol=rtol, atol=0.0, max_steps=20 * unknowns, restart=_RESTART, recycle=_RECYCLE
    )
    return solver, None, default_order(family)


def _family_operator(family, wavenumber, time_step, heat_coefficient):
    """The function from a sample's field to its operator, and from the
    field to its right-hand side on the interior nodes."""
    if family == "nonsymmetric-darcy":
        build = nonsymmetric_darcy_operator
    elif family == "helmholtz":
        build = lambda g: helmholtz_operator(g, wavenumber)  # noqa: E731
    else:
        operator = heat_operator(heat_coefficient, time_step)
        build = lambda g: operator  # noqa: E731
    if family == "heat":
        # one backward-Euler step from u0 = g (zero on the ring): b = u0 / dt
        rhs = lambda g: g[1:-1, 1:-1].reshape(-1) / time_step  # noqa: E731
    else:
        rhs = lambda g: jnp.ones((g.shape[0] - 2) ** 2, g.dtype)  # noqa: E731
    return build, rhs


def _field(key, resolution, alpha, tau, dtype, family):
    g = gaussian_random_field(
        key, (resolution, resolution), alpha=alpha, tau=tau, dtype=dtype
    )
    if family == "heat":
        g = g.at[0].set(0).at[-1].set(0).at[:, 0].set(0).at[:, -1].set(0)
    return g


def linear_family_samples(
    family: str,
    key: PRNGKeyArray,
    num_samples: int,
    *,
    resolution: int = 65,
    alpha: float = 2.0,
    tau: float = 3.0,
    wavenumber: float = 15.0,
    time_step: float = 1e-3,
    solver: AbstractLinearSolver | None = None,
    preconditioner="default",
    order: str | None = None,
    first_index: int = 0,
    devices=None,
    throw: bool = True,
    dtype=None,
) -> LinearFamilySample:
    r"""``num_samples`` solutions of one of the linear families of ``pde``, on
    the unit square with $u = 0$ on the boundary, 5-point stencils on the
    (resolution - 2)^2 interior nodes, for operator learning and for
    benchmarking solvers on sequences of related systems.

    Sample i draws a Gaussian random field $g_i$ from
    ``fold_in(key, first_index + i)`` (``gaussian_random_field``, smoothness
    ``alpha``, inverse length ``tau``) and solves:

    - "nonsymmetric-darcy": $-\Delta(e^{g_i} u) = 1$
      (``nonsymmetric_darcy_operator``: non-symmetric, positive spectrum);
    - "helmholtz": $-\Delta u - k_0^2 e^{g_i} u = 1$ (``helmholtz_operator``
      with $k_0$ = ``wavenumber``; indefinite once $k_0^2 > 2\pi^2$);
    - "heat": one backward-Euler step $(I/\Delta t - \nabla\cdot a\nabla)u
      = u_0/\Delta t$ from $u_0 = g_i$ (zeroed on the boundary) with one
      coefficient $a = e^{h}$ for the whole dataset ($h$ drawn from
      ``fold_in(key, 2**32 - 1)``): one matrix, many right-hand sides
      (``heat_operator``).

    Defaults per family: multigrid-PCG for "heat" (SPD, order "none");
    GCRO-DR(40, 10) without a preconditioner for the others (no multigrid
    fits a non-symmetric or indefinite operator here): for
    "nonsymmetric-darcy" along the greedy chain (``order="greedy"``), so that
    the recycle space travels from each sample to its nearest neighbour;
    for "helmholtz" each sample on its own (``order="none"``: deflated
    restarting alone, which measured 25% fewer matvecs than the chain). The
    default tolerance is that of ``darcy_samples``,
    $\max(10^{-10}, \epsilon R^2/4)$ relative.

    With ``order="none"`` every sample is solved on its own (``lax.map``;
    split over ``devices``); with "greedy" or "fft-pca" the fields are
    sorted into a chain (as ``darcy_samples``) and solved along it with
    ``solvers.solve_sequence``, one contiguous piece per device. Samples
    come back in index order either way.

    Args:
        family: "nonsymmetric-darcy", "helmholtz" or "heat".
        key: PRNG key of the random fields.
        num_samples: how many.
        resolution: nodes per axis, boundary included (>= 5).
        alpha: the fields' smoothness.
        tau: the fields' inverse length scale.
        wavenumber: $k_0$ of "helmholtz" (resolve it: $k_0 h$ well below 1).
        time_step: $\Delta t$ of "heat".
        solver: any ``sciax.solvers`` solver with its tolerances; default
            per family (above).
        preconditioner: as for ``solvers.solve``; "default" is the family's
            (``Multigrid()`` for "heat", None otherwise).
        order: "none", "greedy" or "fft-pca"; None is the family's default.
        first_index: index of the first sample.
        devices: devices to spread the work over (default: all local ones).
        throw: raise if a solve did not succeed; with False read ``result``.
        dtype: float32 or float64 (default: JAX's default float).

    Returns:
        A ``LinearFamilySample`` with a leading axis of ``num_samples``. With
        ``throw`` (default) raises if a solve did not converge, naming the
        ``RESULTS`` item and the fix.
    """
    caller = "linear_family_samples"
    batch_devices(caller, num_samples, 1, devices)
    configuration = _configure(
        caller, family, key, resolution, alpha, tau, wavenumber, time_step,
        solver, preconditioner, order, devices, dtype,
    )  # fmt: skip
    indices = first_index + jnp.arange(num_samples, dtype=jnp.uint32)
    return _checked(caller, throw, _generate(key, indices, *configuration))


def _checked(caller, throw, samples):
    if throw:
        field = raise_if_failed(
            samples.field, samples.result, f"sciax.pde.{caller}", "samples"
        )
        samples = eqx.tree_at(lambda s: s.field, samples, field)
    return samples


def _configure(
    caller, family, key, resolution, alpha, tau, wavenumber, time_step,
    solver, preconditioner, order, devices, dtype,
):  # fmt: skip
    """Checks, and the family's defaults filled in: the arguments of
    ``_generate`` after (key, indices)."""
    if family not in FAMILIES:
        raise ValueError(f"{caller}: family must be one of {FAMILIES}, got {family!r}.")
    devices = tuple(jax.local_devices() if devices is None else devices)
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, int)
        or resolution < 5
    ):
        raise ValueError(
            f"{caller}: resolution must be an int >= 5, got {resolution!r}."
        )
    if family == "heat" and not float(time_step) > 0:
        raise ValueError(f"{caller}: time_step must be positive, got {time_step}.")
    dtype = float_dtype(caller, dtype)
    default_solver, default_preconditioner, default_order = _default_solver(
        family, resolution, dtype
    )
    if solver is None:
        solver = default_solver
    elif not isinstance(solver, AbstractLinearSolver):
        raise TypeError(
            f"{caller}: solver must be a sciax.solvers solver (CG, GMRES, GCRODR, "
            f"...), got {type(solver).__name__}."
        )
    if isinstance(preconditioner, str):
        if preconditioner != "default":
            raise ValueError(
                f"{caller}: preconditioner must be 'default', None or a "
                f"preconditioner, got {preconditioner!r}."
            )
        preconditioner = default_preconditioner
    if order != "given":
        order = check_order(caller, default_order if order is None else order)
    heat_coefficient = None
    if family == "heat":
        h = gaussian_random_field(
            jax.random.fold_in(key, _COEFFICIENT_INDEX),
            (resolution, resolution),
            alpha=alpha,
            tau=tau,
            dtype=dtype,
        )
        heat_coefficient = jnp.exp(h)
    settings = (family, resolution, alpha, tau, wavenumber, time_step, dtype, devices)
    return heat_coefficient, solver, preconditioner, order, settings


def family_order_fields(
    key, indices, *, family, resolution=65, alpha=2.0, tau=3.0, dtype=None, **_
):
    """The fields of samples ``indices`` at every k-th node (at most 64 per
    axis), for ``write_dataset`` to sort a long run on."""
    dtype = float_dtype("write_dataset", dtype)
    stride = max(1, -(-resolution // 64))
    return _coarse_fields(key, indices, family, resolution, alpha, tau, dtype, stride)


@eqx.filter_jit
def _coarse_fields(key, indices, family, resolution, alpha, tau, dtype, stride):
    return fields_at(
        lambda k: _field(k, resolution, alpha, tau, dtype, family)[::stride, ::stride],
        key,
        indices,
    )


def family_samples_along(
    key,
    indices,
    *,
    family,
    resolution=65,
    alpha=2.0,
    tau=3.0,
    wavenumber=15.0,
    time_step=1e-3,
    solver=None,
    preconditioner="default",
    devices=None,
    throw=True,
    dtype=None,
    **_,
) -> LinearFamilySample:
    """The samples ``indices``, solved as one chain in exactly that order
    (``write_dataset``'s shard of a sorted run), in that order."""
    caller = "linear_family_samples"
    configuration = _configure(
        caller, family, key, resolution, alpha, tau, wavenumber, time_step,
        solver, preconditioner, "given", devices, dtype,
    )  # fmt: skip
    indices = jnp.asarray(indices, jnp.uint32)
    return _checked(caller, throw, _generate(key, indices, *configuration))


@eqx.filter_jit
def _generate(key, indices, heat_coefficient, solver, preconditioner, order, settings):
    family, resolution, alpha, tau, wavenumber, time_step, dtype, devices = settings
    build, rhs = _family_operator(family, wavenumber, time_step, heat_coefficient)
    if family == "heat" and isinstance(preconditioner, AbstractPreconditioner):
        # one matrix for every sample: its preconditioner (a multigrid
        # hierarchy) is built once, not once per sample
        preconditioner = preconditioner.build(build(None))
    fields = fields_at(
        lambda k: _field(k, resolution, alpha, tau, dtype, family), key, indices
    )
    interior = resolution - 2
    if order == "none":
        value, result, stats = _independent(
            fields, build, rhs, solver, preconditioner, devices
        )
    else:
        if order == "given":
            sequence = jnp.arange(fields.shape[0])
        else:
            sequence = sample_order(order, fields)
        chunks = min(len(devices), fields.shape[0])
        solution = solve_sequence(
            build,
            fields[sequence],
            jax.vmap(rhs)(fields[sequence]),
            solver,
            order="given",
            preconditioner=preconditioner,
            chunks=chunks,
            devices=list(devices[:chunks]) if chunks > 1 else None,
        )
        unsort = lambda leaf: leaf[inverse_order(sequence)]  # noqa: E731
        value = unsort(solution.value)
        result = jax.tree_util.tree_map(unsort, solution.result)
        stats = jax.tree_util.tree_map(unsort, solution.stats)
    value = jnp.pad(value.reshape(-1, interior, interior), ((0, 0), (1, 1), (1, 1)))
    return LinearFamilySample(fields, value, result, stats)


def _independent(fields, build, rhs, solver, preconditioner, devices):
    """Each sample solved on its own from a fresh state, split over
    ``devices`` (padded to a multiple of their count, the padding dropped)."""
    count = fields.shape[0]
    per_device = -(-count // len(devices))
    padded = jnp.concatenate(
        [fields, jnp.repeat(fields[-1:], per_device * len(devices) - count, axis=0)]
    )

    def one(g):
        solution = solve(
            build(g), rhs(g), solver, preconditioner=preconditioner, throw=False
        )
        return solution.value, solution.result, solution.stats

    def run(_, fields):
        return lax.map(one, fields)

    outputs = over_devices(run, devices)(jnp.zeros(()), padded)
    return jax.tree_util.tree_map(lambda leaf: leaf[:count], outputs)
