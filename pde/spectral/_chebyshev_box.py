"""Chebyshev collocation on rectangles: the classical reference for the box
problems of the Gaussian-process solver (2-D Poisson, Allen-Cahn, and
space-time transport)."""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float

from ... import solvers
from ..._results import RESULTS, raise_if_failed
from .._box_inputs import boundary_on_grid, check_box_inputs, check_rtol
from ._chebyshev import (
    barycentric_rows,
    chebyshev_points,
    halving_line_search,
    unit_differentiation_matrix,
)

# Beyond this many unknowns the dense Jacobian (8 N^2 bytes in float64, an
# O(N^3) LU) stops being a reference that runs in seconds.
_MAX_DENSE_UNKNOWNS = 12_000

# Relative residual of the inner GMRES solve; the Newton iteration corrects
# what is left, so this only has to beat the outer tolerance's rate.
_GMRES_RTOL = {jnp.dtype("float64"): 1e-11, jnp.dtype("float32"): 1e-5}


class ChebyshevBoxSolution(eqx.Module):
    """What ``chebyshev_solve_box`` returns.

    Attributes:
        grids: the Chebyshev points of each axis (increasing), one 1-D
            array per axis.
        value: the solution on the tensor grid, shape (n1, n2).
        result: ``RESULTS.successful``, or why Newton stopped.
        stats: ``num_steps`` (Newton steps, the last differentiated one
            included), ``num_matvecs`` (products with the Newton Jacobian in
            GMRES over all Newton steps; 0 with the dense LU solve) and
            ``residual_norm`` (max |F| at the collocation nodes before the
            last step).
    """

    grids: tuple[Float[Array, " n1"], Float[Array, " n2"]]
    value: Float[Array, "n1 n2"]
    result: RESULTS
    stats: dict

    def on_grid(self, x1, x2):
        """The interpolating polynomial on the tensor grid x1 x x2 (1-D
        arrays), shape (len(x1), len(x2)): two barycentric matrices."""
        rows1 = barycentric_rows(self.grids[0], jnp.asarray(x1, self.value.dtype))
        rows2 = barycentric_rows(self.grids[1], jnp.asarray(x2, self.value.dtype))
        return rows1 @ self.value @ rows2.T

    def __call__(self, points):
        """The interpolating polynomial at points of shape (..., 2)."""
        points = jnp.asarray(points, self.value.dtype)
        rows1 = barycentric_rows(self.grids[0], points[..., 0])
        rows2 = barycentric_rows(self.grids[1], points[..., 1])
        return jnp.einsum("...i,ij,...j->...", rows1, self.value, rows2)


def _check_inputs(domain, num_points, derivatives, dirichlet):
    check_box_inputs(
        domain,
        num_points,
        derivatives,
        min_points=3,
        interval_solver="chebyshev_solve",
    )
    if len(dirichlet) != 2 or any(
        not isinstance(sides, tuple | list)
        or len(sides) != 2
        or any(not isinstance(s, bool) for s in sides)
        for sides in dirichlet
    ):
        raise ValueError(
            "dirichlet must be ((lower1, upper1), (lower2, upper2)) booleans; got "
            f"{dirichlet!r}."
        )


def _derivative_matrices(num_points, length, orders):
    """{p: D^p} on [a, a + length] as float64 NumPy constants (a product of
    traced constants would be folded by the compiler at every jit)."""
    unit = unit_differentiation_matrix(num_points)
    return {
        p: np.linalg.matrix_power(unit, p) * (2 / length) ** p for p in sorted(orders)
    }


def _free_mask(num_points, dirichlet):
    """True at the nodes where the equation is collocated (not on a side
    that carries Dirichlet data)."""
    free = np.ones(num_points, bool)
    (low1, high1), (low2, high2) = dirichlet
    free[0, :] &= not low1
    free[-1, :] &= not high1
    free[:, 0] &= not low2
    free[:, -1] &= not high2
    return free


def _fast_diagonalisation(num_points, lengths, dtype):
    r"""Eigendecompositions $A_j = V_j\Lambda_jV_j^{-1}$ of the interior
    blocks of $D_j^2$ (Dirichlet on both ends), whose eigenvalues are real
    and negative and whose eigenvectors are well conditioned (cond(V) about
    4 at 800 points)."""
    factors = []
    for n, length in zip(num_points, lengths, strict=True):
        unit = unit_differentiation_matrix(n)
        interior = (unit @ unit)[1:-1, 1:-1] * (2 / length) ** 2
        eigenvalues, vectors = np.linalg.eig(interior)
        if np.any(np.imag(eigenvalues) != 0):
            raise AssertionError(
                "Chebyshev D^2 with Dirichlet ends lost real spectrum."
            )
        order = np.argsort(eigenvalues.real)
        vectors = np.real(vectors[:, order])
        factors.append(
            (
                jnp.asarray(eigenvalues.real[order], dtype),
                jnp.asarray(vectors, dtype),
                jnp.asarray(np.linalg.inv(vectors), dtype),
            )
        )
    return factors


def _uses_fast_diagonalisation(derivatives, dirichlet):
    """Second-order operators with u given on every side: GMRES preconditioned
    by the fast-diagonalised $c_1\\partial_1^2 + c_2\\partial_2^2 + m$."""
    all_sides = all(all(sides) for sides in dirichlet)
    second_order = {(2, 0), (0, 2)} <= set(derivatives) and all(
        sum(term) <= 2 for term in derivatives
    )
    return all_sides and second_order


class _Discretisation(NamedTuple):
    """The tensor Chebyshev grid of ``chebyshev_solve_box``: its axes and
    nodes (n1, n2, 2), the per-axis differentiation matrices ``{p: D^p}``,
    the boundary data on the grid, the nodes where F is collocated (``free``,
    and their flat indices), whether the fast diagonalisation applies
    (``fast``), and the canonical inputs."""

    grids: tuple
    points: Array
    matrices: list
    boundary_values: Array
    free: np.ndarray
    free_index: np.ndarray
    num_points: tuple
    lengths: tuple
    derivatives: tuple
    fast: bool
    dtype: np.dtype


def _discretise(boundary, domain, num_points, derivatives, dirichlet, dtype):
    """Builds the grid, the differentiation matrices and the boundary data,
    and picks the linear solver (refusing a dense Jacobian too large)."""
    derivatives = tuple(tuple(term) for term in derivatives)
    dirichlet = tuple(tuple(sides) for sides in dirichlet)
    num_points = tuple(num_points)
    dtype = jnp.dtype(dtype or jnp.zeros(0).dtype)
    lengths = tuple(float(b) - float(a) for a, b in domain)
    grids = tuple(
        chebyshev_points(n, (float(a), float(b)), dtype)
        for (a, b), n in zip(domain, num_points, strict=True)
    )
    points = jnp.stack(jnp.meshgrid(*grids, indexing="ij"), axis=-1)
    matrices = [
        {
            p: jnp.asarray(m, dtype)
            for p, m in _derivative_matrices(
                n, length, {term[axis] for term in derivatives}
            ).items()
        }
        for axis, (n, length) in enumerate(zip(num_points, lengths, strict=True))
    ]
    # the matrices are large constants: without the barrier XLA folds their
    # products with constant iterates (GMRES's zero start) at compile time
    matrices = lax.optimization_barrier(matrices)
    boundary_values = boundary_on_grid(boundary, points, dtype)
    free = _free_mask(num_points, dirichlet)
    fast = _uses_fast_diagonalisation(derivatives, dirichlet)
    num_unknowns = int(free.sum())
    if not fast and num_unknowns > _MAX_DENSE_UNKNOWNS:
        raise ValueError(
            f"chebyshev_solve_box: {num_unknowns} unknowns need the dense "
            f"Jacobian (at most {_MAX_DENSE_UNKNOWNS}): only second-order "
            "operators with u on all four sides are solved matrix-free."
        )
    return _Discretisation(
        grids,
        points,
        matrices,
        boundary_values,
        free,
        np.flatnonzero(free.ravel()),
        num_points,
        lengths,
        derivatives,
        fast,
        dtype,
    )


def _fields(grid: _Discretisation, u):
    r"""The derivative terms $D_1^{p}UD_2^{qT}$ of u on the grid."""
    out = []
    for p1, p2 in grid.derivatives:
        term = grid.matrices[0][p1] @ u if p1 else u
        out.append(term @ grid.matrices[1][p2].T if p2 else term)
    return out


def _free_residual(equation, grid: _Discretisation, u):
    """F at the collocated nodes, flat."""
    residual = jax.vmap(jax.vmap(equation))(grid.points, u, *_fields(grid, u))
    return residual.ravel()[grid.free_index]


def _partials(equation, grid: _Discretisation, u):
    """$F_u$ and $F_k$ at every node: the Jacobian's diagonal factors."""
    gradient = jax.vmap(
        jax.vmap(jax.grad(equation, argnums=tuple(range(1, len(grid.derivatives) + 2))))
    )
    return gradient(grid.points, u, *_fields(grid, u))


def _embed(grid: _Discretisation, v):
    """Values at the collocated nodes onto the flat grid, zero elsewhere."""
    return (
        jnp.zeros(grid.num_points[0] * grid.num_points[1], grid.dtype)
        .at[grid.free_index]
        .set(v, unique_indices=True)
    )


def _jacobian_apply(grid: _Discretisation, coefficients, v):
    """The Newton Jacobian with factors ``coefficients`` (``_partials``)
    applied to v at the collocated nodes."""
    delta = _embed(grid, v).reshape(grid.num_points)
    total = coefficients[0] * delta
    for c, term in zip(coefficients[1:], _fields(grid, delta), strict=True):
        total = total + c * term
    return total.ravel()[grid.free_index]


def _fast_linear_solve(equation, grid: _Discretisation, max_linear_steps):
    """``linear_solve(u, rhs) -> (step, matvecs)``: GMRES with the Jacobian
    at u, right-preconditioned by the fast diagonalisation of its
    mean-coefficient part on the interior."""
    factors = lax.optimization_barrier(
        _fast_diagonalisation(grid.num_points, grid.lengths, grid.dtype)
    )
    index2 = grid.derivatives.index((0, 2)) + 1
    index1 = grid.derivatives.index((2, 0)) + 1
    interior = (grid.num_points[0] - 2, grid.num_points[1] - 2)

    def linear_solve(u, right_hand_side):
        coefficients = _partials(equation, grid, u)
        (l1, v1, w1), (l2, v2, w2) = factors
        c1 = jnp.mean(coefficients[index1][1:-1, 1:-1])
        c2 = jnp.mean(coefficients[index2][1:-1, 1:-1])
        shift = jnp.mean(coefficients[0][1:-1, 1:-1])
        symbol = c1 * l1[:, None] + c2 * l2[None, :] + shift

        def preconditioner(r):
            rotated = w1 @ r.reshape(interior) @ w2.T
            return (v1 @ (rotated / symbol) @ v2.T).ravel()

        solution = solvers.solve(
            lambda v: _jacobian_apply(grid, coefficients, v),
            right_hand_side,
            solvers.GMRES(
                rtol=_GMRES_RTOL[grid.dtype],
                atol=0.0,
                max_steps=max_linear_steps,
                restart=min(50, max_linear_steps),
            ),
            preconditioner=preconditioner,
            throw=False,
        )
        return solution.value, solution.stats["num_matvecs"]

    return linear_solve


def _dense_linear_solve(equation, grid: _Discretisation):
    """``linear_solve(u, rhs) -> (step, 0)``: the dense Jacobian at u on the
    collocated nodes, by LU."""

    def linear_solve(u, right_hand_side):
        coefficients = _partials(equation, grid, u)
        dense = jnp.diag(coefficients[0].ravel())
        for c, (p1, p2) in zip(coefficients[1:], grid.derivatives, strict=True):
            kron = jnp.kron(grid.matrices[0][p1], grid.matrices[1][p2])
            dense = dense + c.ravel()[:, None] * kron
        dense = dense[grid.free_index][:, grid.free_index]
        return jnp.linalg.solve(dense, right_hand_side), jnp.asarray(0)

    return linear_solve


def _initial_iterate(grid: _Discretisation, initial):
    """The starting values: ``initial`` (default zero) where F is
    collocated, the boundary data on the Dirichlet sides."""
    free = jnp.asarray(grid.free)
    if initial is None:
        return jnp.where(free, jnp.zeros((), grid.dtype), grid.boundary_values)
    return jnp.where(free, jnp.asarray(initial, grid.dtype), grid.boundary_values)


def _newton(equation, grid: _Discretisation, linear_solve, u0, rtol, max_steps):
    """Damped Newton from u0 without gradients, until the step is at most
    rtol times the iterate (max norms), it is not finite, or ``max_steps``.
    Returns (u, steps, last step's max norm, GMRES matvecs)."""

    def free_residual(u):
        return _free_residual(equation, grid, u)

    def damped_step(u):
        """Newton's step, halved (up to 30 times) until max |F| decreases:
        plain Newton from a poor start can run off to ever larger iterates."""
        value = free_residual(u)
        step, matvecs = linear_solve(u, -value)
        step = _embed(grid, step).reshape(grid.num_points)
        fraction = halving_line_search(free_residual, u, step, jnp.max(jnp.abs(value)))
        return u + fraction * step, jnp.max(jnp.abs(step)), matvecs

    def keep_going(state):
        _, running, count, _, _ = state
        return running & (count < max_steps)

    def iterate(state):
        u, _, count, _, matvecs = state
        new, change, used = damped_step(u)
        done = change <= rtol * jnp.max(jnp.abs(new))
        return new, ~done & jnp.isfinite(change), count + 1, change, matvecs + used

    u, _, steps, change, matvecs = lax.while_loop(
        keep_going,
        iterate,
        (
            lax.stop_gradient(u0),
            jnp.asarray(True),
            jnp.asarray(0),
            jnp.asarray(jnp.inf, grid.dtype),
            jnp.asarray(0),
        ),
    )
    return u, steps, change, matvecs


def _differentiated_step(equation, grid: _Discretisation, linear_solve, u):
    """One Newton step from the converged iterate, the only one gradients
    see: it carries the implicit-function-theorem derivative to the
    parameters of F and g. Returns (u, residual before it, matvecs)."""
    u = lax.stop_gradient(u)
    u = jnp.where(jnp.asarray(grid.free), u, grid.boundary_values)
    value = _free_residual(equation, grid, u)
    step, used = linear_solve(u, -value)
    return u + _embed(grid, step).reshape(grid.num_points), value, used


def _solution(
    grid: _Discretisation, u, value, steps, change, matvecs, used, rtol, throw
):
    """The result (raised if asked), the stats (``used``: the last step's
    matvecs) and the solution."""
    converged = change <= rtol * jnp.max(jnp.abs(u))
    result = RESULTS.where(
        jnp.all(jnp.isfinite(u)),
        RESULTS.where(converged, RESULTS.successful, RESULTS.newton_max_steps_reached),
        RESULTS.nonfinite,
    )
    if throw:
        u = raise_if_failed(u, result, "sciax.pde.chebyshev_solve_box")
    stats = {
        "num_steps": steps + 1,
        "num_matvecs": matvecs + used,
        "residual_norm": jnp.max(jnp.abs(value)),
    }
    return ChebyshevBoxSolution(grid.grids, u, result, stats)


@eqx.filter_jit
def chebyshev_solve_box(
    equation: Callable,
    boundary: Callable | Array,
    domain: Sequence[tuple[float, float]],
    num_points: Sequence[int],
    *,
    rtol: float,
    derivatives: tuple[tuple[int, int], ...] = ((2, 0), (0, 2)),
    dirichlet: tuple[tuple[bool, bool], tuple[bool, bool]] = (
        (True, True),
        (True, True),
    ),
    initial: Array | None = None,
    max_steps: int = 30,
    max_linear_steps: int = 400,
    throw: bool = True,
    dtype=None,
) -> ChebyshevBoxSolution:
    r"""Solve $F(x, u, \partial^{p_1}u, \dots) = 0$ on a rectangle by
    Chebyshev collocation on a tensor grid and Newton's method, with u given
    on the chosen sides.

    The unknowns are u at the Chebyshev points of each axis; the derivative
    $\partial_1^{p}\partial_2^{q}u$ at the nodes is $D_1^pUD_2^{qT}$. The
    equation is collocated at every node not on a Dirichlet side (so for
    transport only the inflow sides carry data and the equation holds on
    the outflow sides too), which gives a square system. Each Newton step
    solves with the Jacobian
    $F_u + \sum_k \mathrm{diag}(F_{k})(D_1^{p_k}\otimes D_2^{q_k})$:

    - second-order operators with u on all four sides: restarted GMRES
      (``solvers.GMRES``) on the interior, right-preconditioned by the fast
      diagonalisation (Lynch, Rice & Thomas 1964; Haidvogel & Zang 1979) of
      $\bar c_1\partial_1^2 + \bar c_2\partial_2^2 + \bar m$ with the mean
      coefficients, $O(n^3)$ per application, never an $(n_1n_2)^2$ matrix.
      Poisson converges in one GMRES step.
    - anything else (first-order and space-time problems, partial
      Dirichlet data): the dense Jacobian and LU, up to 12 000 unknowns.

    Steps are halved until the largest residual decreases (damped Newton),
    and the iteration stops when the step is at most ``rtol`` times the
    solution (max norms); otherwise ``result`` says why
    (``newton_max_steps_reached`` or ``nonfinite``).

    Accuracy: spectral for smooth solutions (about pi points per wavelength
    to resolve, then exponential convergence) down to about
    $n^2\epsilon$ relative from rounding in $D^2$; measured in
    ``benchmarks/chebyshev_reference.py``.

    Differentiable: the Newton iterations run without gradients and one last
    step is differentiated (implicit function theorem), so gradients with
    respect to parameters closed over by ``equation`` or the boundary data
    are those of the converged solution.

    Args:
        equation: ``F(x, u, *derivatives)`` at one point, x of shape (2,),
            returning a scalar (as ``gp_solve_box``).
        boundary: ``g(x)`` at a point of shape (2,), or an (n1, n2) array on
            the Chebyshev grid whose entries on the Dirichlet sides are used.
        domain: ((a1, b1), (a2, b2)).
        num_points: Chebyshev points per axis, ends included.
        rtol: Newton's stopping tolerance (required, keyword-only; see
            ``chebyshev_solve`` for sensible values, about 1e-10 at a few
            hundred points).
        derivatives: multi-indices $(p_1, p_2)$ passed to ``equation`` after
            u, orders 0..4.
        dirichlet: which sides carry data, ((lower1, upper1), (lower2,
            upper2)); default all four. For $u_t + a u_x = 0$ with $a > 0$
            on (x, t): ((True, False), (True, False)).
        initial: starting values on the grid (default: the boundary data on
            the Dirichlet sides, zero elsewhere).
        max_steps: Newton steps at most.
        max_linear_steps: GMRES matrix-vector products per Newton step.
        throw: raise unless the result is ``RESULTS.successful``; pass
            False inside ``jax.vmap`` or gradients and read ``result``.
        dtype: float32 or float64 (default: JAX's default float).

    Returns:
        A ``ChebyshevBoxSolution``: the value on the grid, a callable
        (barycentric interpolation) for any point, stats and result.

    References:
        L. N. Trefethen, Spectral Methods in MATLAB, SIAM 2000, ch. 7, 13.
        R. E. Lynch, J. R. Rice, D. H. Thomas, Numer. Math. 6 (1964).
        D. B. Haidvogel, T. Zang, J. Comput. Phys. 30 (1979).
    """
    _check_inputs(domain, num_points, derivatives, dirichlet)
    check_rtol(rtol, zero_allowed=False)
    grid = _discretise(boundary, domain, num_points, derivatives, dirichlet, dtype)
    if grid.fast:
        linear_solve = _fast_linear_solve(equation, grid, max_linear_steps)
    else:
        linear_solve = _dense_linear_solve(equation, grid)
    u0 = _initial_iterate(grid, initial)
    u, steps, change, matvecs = _newton(
        equation, grid, linear_solve, u0, rtol, max_steps
    )
    u, value, used = _differentiated_step(equation, grid, linear_solve, u)
    return _solution(grid, u, value, steps, change, matvecs, used, rtol, throw)
