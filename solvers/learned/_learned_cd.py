"""The deep conjugate-direction method: a flexible conjugate-direction
iteration whose search directions come from a network."""

import dataclasses
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ..._results import RESULTS
from .._operator import AbstractGridOperator
from .._solver import (
    AbstractLinearSolver,
    check_tolerances,
    count_field,
    dot,
    iterate,
    matmul,
    norm,
    tolerance,
    tolerance_field,
)
from ..krylov._cg import loop_result, step_result
from ..preconditioners._preconditioner import identity
from ._direction_network import ConjugateDirectionNetwork

# A direction whose cosine with the residual is below this gives no useful
# descent (its energy line search barely moves); the preconditioned residual
# replaces it.
_USELESS_COSINE = 1e-4


def a_orthogonalise(direction, kept, images, curvatures):
    r"""$d - \sum_i \frac{d^TAp_i}{p_i^TAp_i}p_i$ over the rows $p_i$ of
    ``kept`` with images $Ap_i$ and curvatures $p_i^TAp_i$ (zero rows, with
    curvature 1, are inert)."""
    return direction - matmul(matmul(images, direction) / curvatures, kept)


def remember(slot, direction, image, curvature, kept, images, curvatures):
    """The last k directions, their images and curvatures, as a ring: the
    newest overwrites the oldest, at ``slot`` = (steps so far) mod k. The
    order of the rows does not matter to the orthogonalization, and writing
    one row in place saves copying 2k vectors every step."""
    return (
        kept.at[slot].set(direction),
        images.at[slot].set(image),
        curvatures.at[slot].set(curvature),
    )


def conjugate_step(apply, direction, residual, history, slot):
    r"""One step of the flexible conjugate-direction iteration: $d$ made
    A-orthogonal to the kept directions (``history`` = (kept, images,
    curvatures)), then the exact energy line search
    $\alpha = d^Tr / d^TAd$. Returns $(d, Ad, \alpha, d^TAd)$ and the
    history with d in row ``slot`` (the oldest; see ``remember``). A
    direction of zero curvature (d = 0, e.g. Mr once r = 0) is no step:
    $\alpha = 0$, kept as an inert row (curvature 1). Negative or nan
    curvature is returned as it is, for the caller to report."""
    d = a_orthogonalise(direction, *history)
    image = apply(d)
    curvature = dot(d, image)
    empty = curvature == 0
    kept_curvature = jnp.where(empty, 1, curvature)
    alpha = jnp.where(empty, 0, dot(d, residual) / kept_curvature)
    history = remember(slot, d, image, kept_curvature, *history)
    return (d, image, alpha, curvature), history


class LearnedConjugateDirections(AbstractLinearSolver):
    r"""Kaneda et al.'s deep conjugate-direction method (DCDM), as a flexible
    conjugate-direction solver for symmetric positive definite systems on
    2-D and 3-D grids.

    Step j: the network maps the normalized residual $r_j/\|r_j\|$ (on the
    operator's grid, with its cell types if the network reads them) to a
    direction $d_j$; $d_j$ is A-orthogonalised against the last
    ``num_orthogonal`` directions,
    $p_j = d_j - \sum_i \frac{d_j^TAp_i}{p_i^TAp_i}p_i$, and the energy norm
    of the error is minimised along it:
    $x_{j+1} = x_j + \alpha_jp_j$, $\alpha_j = p_j^Tr_j/p_j^TAp_j$. Each
    step decreases $\|e\|_A$ whatever the network returns, so a nonlinear
    network cannot make it diverge. A direction that is not finite or has
    |cos(d, r)| < 1e-4 is replaced by the preconditioned residual $Mr_j$
    (a steepest-descent step); ``stats["num_fallbacks"]`` counts those.
    Directions are restricted to the operator's ``fluid`` cells when it has
    them (``pde.PressureOperator``).

    Stopping test: ``||b - A x||_2 <= max(rtol ||b||_2, atol)`` on the true
    residual (checked with one extra matvec whenever the recursive residual
    proposes convergence). The network runs in its own dtype (float32);
    directions are cast to the system's dtype, so a float64 system reaches
    float64 tolerances. $p^TAp \le 0$ (A not SPD) ends the solve with
    ``RESULTS.breakdown``.

    Args:
        network: a ``ConjugateDirectionNetwork`` whose ``ndim`` matches the
            operator's grid (``solvers.pretrained_network(ndim)`` for the
            shipped weights).
        rtol: relative tolerance (required).
        atol: absolute tolerance (required).
        max_steps: iteration limit.
        num_orthogonal: how many previous directions each new one is made
            A-orthogonal to (the paper keeps 2).
        preconditioner_steps: after each network step, a second step along
            the preconditioned residual $Mr$ (A-orthogonalised and line
            searched in the same way), with M the preconditioner given to
            ``solve``, which is then required. With ``solvers.Multigrid()``
            the two steps complement each other: the V-cycle removes the
            smooth and the finest error components on any grid, the network
            what the V-cycle leaves near obstacles and free surfaces. With
            ``pretrained_network(3, multigrid=True)`` and
            ``num_orthogonal=8`` (with 2 the free surface needs 3x more
            iterations at 256^3), on pressure problems: 3-5 iterations to
            1e-4 and 5-8 to 1e-6 at 128^3, 3-6 / 5-9 at 256^3, against
            multigrid-PCG's 4-8 / 6-12 and 4-10 / 6-17 (unseen, crowded
            obstacles: 7 / 11 and 7 / 13 against 11 / 18 and 17 / 28), at
            0.94-1.20x its wall time at 256^3 on an H100
            (``benchmarks/RESULTS.md``).

    Gradients: ``adjoint="implicit"`` gives the derivative of the solution.
    ``adjoint="unrolled"`` differentiates the iteration itself, network
    included (to train through the solver); with respect to A it is the
    solution's derivative only approximately, as the iteration's own
    derivative lags its value (on a 12 x 12 dense SPD matrix that takes 94
    steps, within 3% of the largest entry; on the grid problems the network was
    trained for, within the 1e-6 of the finite-difference test).

    References:
        A. Kaneda, O. Akar, J. Chen, V. A. T. Kala, D. Hyde, J. Teran, "A Deep
        Conjugate Direction Method for Iteratively Solving Linear Systems",
        ICML 2023.
    """

    network: ConjugateDirectionNetwork
    rtol: float = tolerance_field()
    atol: float = tolerance_field()
    max_steps: int = count_field()
    symmetric: ClassVar[bool] = True
    num_orthogonal: int = eqx.field(default=2, static=True)
    preconditioner_steps: bool = eqx.field(default=False, static=True)
    grid_shape: tuple[int, ...] | None = eqx.field(default=None, static=True)
    cell_types: Int[Array, "..."] | None = None
    fluid: Float[Array, "..."] | None = None

    def __check_init__(self):
        check_tolerances(self)
        if not isinstance(self.network, ConjugateDirectionNetwork):
            raise TypeError(
                "LearnedConjugateDirections: network must be a "
                f"ConjugateDirectionNetwork, got {type(self.network).__name__}."
            )
        if not (isinstance(self.num_orthogonal, int) and self.num_orthogonal >= 1):
            raise ValueError(
                "LearnedConjugateDirections: num_orthogonal must be a positive int, "
                f"got {self.num_orthogonal}."
            )

    def init_state(self, operator, b):
        return None

    def bind(self, operator):
        """Reads the grid, the cell types and the fluid mask off the operator
        (``solve`` then sees only its matvec)."""
        if self.grid_shape is not None:
            return self
        grid = check_network_fits(self.network, operator, "LearnedConjugateDirections")
        cell_types = operator.cell_types
        return dataclasses.replace(
            self,
            grid_shape=grid,
            cell_types=cell_types,
            fluid=operator.fluid,
        )

    def compute(self, operator, b, x0, preconditioner, state, unrolled):
        if self.preconditioner_steps and preconditioner is identity:
            raise ValueError(
                "LearnedConjugateDirections(preconditioner_steps=True) steps along "
                "M r: pass a preconditioner to solve, e.g. "
                "solve(..., preconditioner=solvers.Multigrid())."
            )
        if self.grid_shape is None:
            self = self.bind(operator)
        fluid = self.fluid
        mask = jnp.ones(b.shape, b.dtype) if fluid is None else fluid.reshape(-1)
        limit = tolerance(self, norm(b))
        init = _initial_carry(self, operator, b, x0, limit)

        def cond(carry):
            return (~carry.done) & (carry.step < self.max_steps)

        def body(carry):
            return _iteration(carry, self, operator, b, preconditioner, mask, limit)

        final = iterate(cond, body, init, self.max_steps, unrolled)
        result, stats = loop_result(
            final.done,
            final.result,
            final.r,
            limit,
            final.step,
            final.matvecs,
            final.history,
        )
        stats["num_fallbacks"] = final.fallbacks
        return final.x, result, stats, None


class _Carry(NamedTuple):
    """The loop state: iterate, residual, the ring of the last k directions
    (see ``remember``), counters and the outcome so far."""

    x: Array
    r: Array
    kept: Array
    images: Array
    curvatures: Array
    step: Array
    matvecs: Array
    fallbacks: Array
    done: Array
    result: RESULTS
    history: Array


def _initial_carry(solver, operator, b, x0, limit):
    """The state before the first step: no kept directions yet (zero rows of
    curvature 1 are inert), done already if $r_0$ meets the tolerance."""
    dtype = b.dtype
    k = solver.num_orthogonal
    r = b - operator.mv(x0)
    history = jnp.full(solver.max_steps, jnp.nan, dtype)
    return _Carry(
        x=x0,
        r=r,
        kept=jnp.zeros((k, b.shape[0]), dtype),
        images=jnp.zeros((k, b.shape[0]), dtype),
        curvatures=jnp.ones(k, dtype),
        step=jnp.asarray(0),
        matvecs=jnp.asarray(1),
        fallbacks=jnp.asarray(0),
        done=norm(r) <= limit,
        result=RESULTS.successful,
        history=history,
    )


def check_network_fits(network, operator, owner):
    """Trace-time check that ``network`` can read ``operator``'s grid (and
    cell types); returns the grid shape. Shared by the solver and the
    preconditioner that call the network."""
    if not isinstance(operator, AbstractGridOperator):
        raise TypeError(
            f"{owner} needs an operator on a grid (a solvers.AbstractGridOperator, "
            f"e.g. sciax.pde.PressureOperator); got {type(operator).__name__}."
        )
    grid = tuple(int(n) for n in operator.grid_shape)
    if len(grid) != network.ndim:
        raise ValueError(
            f"the network was trained for {network.ndim}-D grids but the "
            f"operator's grid is {len(grid)}-D {grid}: use "
            f"solvers.pretrained_network({len(grid)}) or train one."
        )
    if network.cell_types and operator.cell_types is None:
        raise ValueError(
            "the network reads cell types but the operator has no cell_types."
        )
    return grid


def network_direction(network, r, scale, grid, cell_types, dtype):
    """The network's direction for the residual r of norm ``scale``: the
    network reads r / ||r|| on the grid, in its own dtype; the flat output
    is cast to ``dtype``."""
    unit = (r / jnp.where(scale > 0, scale, 1)).reshape(grid)
    return network(unit, cell_types).reshape(-1).astype(dtype)


def _propose(solver, r, preconditioner, mask, dtype):
    """The network's direction for the residual r, or M r where it is useless
    (not finite, or |cos(d, r)| below ``_USELESS_COSINE``); and whether it
    was."""
    scale = norm(r)
    d = network_direction(
        solver.network, r, scale, solver.grid_shape, solver.cell_types, dtype
    )
    d = d * mask
    cosine = dot(d, r) / (norm(d) * scale)
    useless = ~jnp.all(jnp.isfinite(d)) | ~(jnp.abs(cosine) >= _USELESS_COSINE)
    # a cond, not a where: a V-cycle costs several matvecs and is
    # only needed when the network's direction is discarded
    return jax.lax.cond(useless, preconditioner, lambda r: d, r), useless


def _step_along(operator, k, slot, direction, x, r, kept, images, curvatures):
    """``conjugate_step`` along ``direction`` into ring slot ``slot mod k``:
    the new (x, r, kept, images, curvatures), alpha and the curvature."""
    (d, image, alpha, curvature), kept_history = conjugate_step(
        operator.mv, direction, r, (kept, images, curvatures), slot % k
    )
    return (x + alpha * d, r - alpha * image, *kept_history), alpha, curvature


def _iteration(carry, solver, operator, b, preconditioner, mask, limit):
    """One iteration: a step along the network's direction (and, with
    ``preconditioner_steps``, one along M r), the true-residual check when
    the recursive residual proposes convergence, and the outcome."""
    x, r, kept, images, curvatures, step, matvecs, fallbacks = carry[:8]
    history = carry.history
    k = solver.num_orthogonal
    d, useless = _propose(solver, r, preconditioner, mask, b.dtype)
    steps_per_iteration = 1 + int(solver.preconditioner_steps)
    slot = steps_per_iteration * step
    state, alpha, curvature = _step_along(
        operator, k, slot, d, x, r, kept, images, curvatures
    )
    broke = ~(curvature > 0)
    finite = jnp.isfinite(alpha)
    if solver.preconditioner_steps:
        state, alpha, curvature = _step_along(
            operator, k, slot + 1, preconditioner(state[1]) * mask, *state
        )
        # zero curvature here is M r = 0 (r already 0): no breakdown
        broke = broke | (curvature < 0)
        finite = finite & jnp.isfinite(alpha)
    x, r, kept, images, curvatures = state
    r_norm = norm(r)
    history = history.at[step].set(r_norm)
    proposed = r_norm <= limit
    true_r = jnp.where(proposed, b - operator.mv(x), r)
    matvecs = matvecs + steps_per_iteration + proposed.astype(matvecs.dtype)
    converged = proposed & (norm(true_r) <= limit)
    finite = finite & jnp.isfinite(r_norm)
    result = step_result(finite, broke)
    return _Carry(
        x=x,
        r=true_r,
        kept=kept,
        images=images,
        curvatures=curvatures,
        step=step + 1,
        matvecs=matvecs,
        fallbacks=fallbacks + useless.astype(fallbacks.dtype),
        done=converged | broke | ~finite,
        result=result,
        history=history,
    )
