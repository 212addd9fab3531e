"""Gaussian-process collocation on rectangles: a product covariance over a
tensor grid, so every matrix is a per-dimension factor or lives in the
kernel's numerical rank (r1 r2 unknowns), and no (n1 n2) x (n1 n2) matrix
is ever formed."""

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ... import solvers
from ..._results import RESULTS
from .._box_inputs import boundary_on_grid, check_box_inputs, check_rtol
from ..spectral._chebyshev import halving_line_search
from ._collocation import (
    DEFAULT_PRECISION,
    LIKELIHOOD_NUGGET,
    OuterLoop,
    alternate,
    astype,
    fit_spectrum,
    gauss_newton,
    linearise_pointwise,
    reported_spectrum,
    result_and_stats,
    spectral_mixture_from_magnitude,
    uniform_kernel_matrix,
    whitened_modes,
    windowed_magnitude,
)
from ._gp_kernels import AbstractStationaryKernel

# Modes of each factor whose eigenvalue is below this fraction of the
# largest are dropped: below it the whitened basis is rounding, and the
# derivative rows K^(p) Q Lambda^(-1/2) amplify it.
_BOX_EIGENVALUE_CUTOFF = {jnp.dtype("float64"): 1e-14, jnp.dtype("float32"): 1e-6}

# Modes per axis at most: the dense normal matrix has prod(r_j) rows, 16,384
# (2.1 GB in float64) at these caps.
_DEFAULT_MAX_RANK = {2: 128, 3: 25}

# Relative residual of the preconditioned normal-equation solves inside each
# Gauss-Newton step; the outer iteration corrects what is left.
_CG_RTOL = {jnp.dtype("float64"): 1e-10, jnp.dtype("float32"): 1e-4}


def apply_along_axes(matrices, tensor):
    """$(M_1 \\otimes M_2)\\,\\mathrm{vec}(T)$ as a tensor: factor j contracted
    with axis j, so a Kronecker product costs two small matrix products."""
    for axis, matrix in enumerate(matrices):
        tensor = jnp.moveaxis(jnp.tensordot(matrix, tensor, axes=(1, axis)), 0, axis)
    return tensor


class _Factor(eqx.Module):
    """One dimension of the whitened basis for a fixed kernel: of the grid
    covariance $K = Q\\Lambda Q^T$ the ``rank`` largest modes, those below
    the cutoff zeroed. ``slopes[p]`` = $U^{(p)} = K^{(p)}Q\\Lambda^{-1/2}$,
    the p-th derivatives of the basis at the nodes
    ($U^{(0)} = Q\\Lambda^{1/2}$); ``whitening`` = $Q\\Lambda^{-1/2}$;
    ``keep``: the modes in use; ``num_above_cutoff``: how many of all n
    modes clear the cutoff (more than ``rank`` means the cap cut some)."""

    slopes: dict
    whitening: Array
    keep: Array
    num_above_cutoff: Array


def _factor(kernel, n, orders, length, cutoff, rank):
    covariance = uniform_kernel_matrix(kernel, n, n, 0)
    eigenvalues, q = jnp.linalg.eigh(covariance)
    num_above_cutoff = jnp.sum(eigenvalues > cutoff * eigenvalues[-1])
    values, whitening, keep = whitened_modes(
        eigenvalues[n - rank :], q[:, n - rank :], cutoff
    )
    slopes = {0: values}
    for p in orders:
        if p:
            slopes[p] = uniform_kernel_matrix(kernel, n, n, p) @ whitening / length**p
    return _Factor(slopes, whitening, keep, num_above_cutoff)


def _boundary_index(shape):
    """Flat indices of the boundary nodes of a grid (a node with any index
    at 0 or n - 1), in C order; static, from the shape alone."""
    grids = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    on_face = np.zeros(shape, bool)
    for index, n in zip(grids, shape, strict=True):
        on_face |= (index == 0) | (index == n - 1)
    return np.flatnonzero(on_face)


def _gather_boundary(grid):
    """The boundary nodes of a grid, in C order."""
    return grid.reshape(-1)[_boundary_index(grid.shape)]


def _scatter_boundary(values, shape):
    """Transpose of ``_gather_boundary``."""
    flat = jnp.zeros(int(np.prod(shape)), values.dtype)
    return flat.at[_boundary_index(shape)].set(values).reshape(shape)


def _kron(matrices):
    return functools.reduce(jnp.kron, matrices)


def _operator_gram(bases, coefficients):
    r"""$\mathbb L^T\mathbb L$ for $\mathbb L = \sum_t c_t \otimes_j P_{t,j}$
    (node rows, all nodes), as one dense $(\prod_j r_j)^2$ matrix: a sum of
    Kronecker products of per-axis $r_j \times r_j$ Gram matrices, so no
    node-sized matrix is formed."""
    total = 0.0
    for first, c in zip(bases, coefficients, strict=True):
        for second, d in zip(bases, coefficients, strict=True):
            total = total + (c * d) * _kron(
                [a.T @ b for a, b in zip(first, second, strict=True)]
            )
    return total


def _boundary_gram(values_basis):
    r"""$B^TB$ for the rows $\otimes_j U_j[i_j]$ of the boundary nodes, over
    disjoint faces: axis j at an end, the axes before it interior, the axes
    after it anything."""
    total = 0.0
    for j, basis in enumerate(values_basis):
        ends = jnp.array([0, basis.shape[0] - 1])
        factors = [b[1:-1].T @ b[1:-1] for b in values_basis[:j]]
        factors.append(basis[ends].T @ basis[ends])
        factors.extend(b.T @ b for b in values_basis[j + 1 :])
        total = total + _kron(factors)
    return total


class _BoxBasis(NamedTuple):
    r"""The discretisation of ``_fit_values`` for fixed kernels: the per-axis
    ``factors``; ``bases[0]``, the per-axis $U_j$ of u at the nodes
    ($u = (\otimes_j U_j)\beta$), and ``bases[1 + t]`` those of derivative
    term t; the nodes as (N, d); the grid's and the coefficients' shapes."""

    factors: list
    bases: list
    flat_points: Array
    shape: tuple
    basis_shape: tuple


def _box_basis(points, kernels, terms, lengths, rank) -> _BoxBasis:
    """Builds the discretisation: per axis the whitened factor of the
    kernel's grid covariance, with the derivative orders the terms need."""
    shape = points.shape[:-1]
    ndim = len(shape)
    cutoff = _BOX_EIGENVALUE_CUTOFF[jnp.dtype(points.dtype)]
    factors = [
        _factor(
            kernels[j],
            shape[j],
            sorted({term[j] for term in terms}),
            lengths[j],
            cutoff,
            rank[j],
        )
        for j in range(ndim)
    ]
    values_basis = [f.slopes[0] for f in factors]
    bases = [values_basis] + [
        [factors[j].slopes[term[j]] for j in range(ndim)] for term in terms
    ]
    return _BoxBasis(factors, bases, points.reshape(-1, ndim), shape, tuple(rank))


def _linearise(equation, basis: _BoxBasis, beta):
    """F and its partials in (u, derivatives...) at every node."""
    args = (
        basis.flat_points,
        *(apply_along_axes(b, beta).reshape(-1) for b in basis.bases),
    )
    return linearise_pointwise(equation, args, basis.shape)


def _jacobian(basis: _BoxBasis, partials, delta):
    r"""$J\delta$: the change of F at the nodes for a change delta of beta."""
    total = jnp.zeros(basis.shape, basis.flat_points.dtype)
    for partial, factors in zip(partials, basis.bases, strict=True):
        total = total + partial * apply_along_axes(factors, delta)
    return total


def _jacobian_transpose(basis: _BoxBasis, partials, r):
    """$J^Tr$ for r on the grid, in the coefficients' shape."""
    total = jnp.zeros(basis.basis_shape, basis.flat_points.dtype)
    for partial, factors in zip(partials, basis.bases, strict=True):
        total = total + apply_along_axes([b.T for b in factors], partial * r)
    return total


def _boundary_rows(basis: _BoxBasis, beta):
    r"""$B\beta$: u at the boundary nodes."""
    return _gather_boundary(apply_along_axes(basis.bases[0], beta))


def _boundary_transpose(basis: _BoxBasis, y):
    """$B^Ty$ for y on the boundary nodes."""
    return apply_along_axes(
        [b.T for b in basis.bases[0]], _scatter_boundary(y, basis.shape)
    )


class _BoxLeastSquares(NamedTuple):
    r"""The Gauss-Newton problem for fixed kernels: minimise
    $|\beta|^2 + w_F|F|^2 + w_g|B\beta - g|^2$."""

    equation: Callable
    basis: _BoxBasis
    boundary_target: Array
    residual_weight: Array
    boundary_weight: Array


def _least_squares_and_normal_factor(
    equation, basis: _BoxBasis, boundary_values, precision
):
    """The objective's weights and the Cholesky factor of its normal matrix
    with the coefficients of F frozen at their means at u = 0: the
    preconditioner of each step, exact for linear constant-coefficient F."""
    dtype = basis.flat_points.dtype
    boundary_target = _gather_boundary(boundary_values)
    _, partials0 = _linearise(equation, basis, jnp.zeros(basis.basis_shape, dtype))
    operator_gram = _operator_gram(basis.bases, [jnp.mean(p) for p in partials0])
    boundary_gram = _boundary_gram(basis.bases[0])
    num_kept = jnp.maximum(
        functools.reduce(
            lambda a, b: a * b, [jnp.sum(f.keep, dtype=dtype) for f in basis.factors]
        ),
        1,
    )
    # mean squared column norm over the modes in use: the weights balance
    # the three terms independently of the kernel's scale
    residual_weight = (
        precision
        * num_kept
        / jnp.maximum(jnp.trace(operator_gram), jnp.finfo(dtype).tiny)
    )
    boundary_weight = precision * num_kept / jnp.trace(boundary_gram)
    normal_matrix = (
        jnp.eye(operator_gram.shape[0], dtype=dtype)
        + residual_weight * operator_gram
        + boundary_weight * boundary_gram
    )
    problem = _BoxLeastSquares(
        equation, basis, boundary_target, residual_weight, boundary_weight
    )
    return problem, jax.scipy.linalg.cho_factor(normal_matrix)


def _objective(problem: _BoxLeastSquares, beta):
    """The Gauss-Newton objective at beta."""
    residual, _ = _linearise(problem.equation, problem.basis, beta)
    misfit = _boundary_rows(problem.basis, beta) - problem.boundary_target
    return (
        jnp.sum(beta**2)
        + problem.residual_weight * jnp.sum(residual**2)
        + problem.boundary_weight * jnp.sum(misfit**2)
    )


def _newton_step(
    problem: _BoxLeastSquares, objective, preconditioner, cg, beta, cg_count
):
    """One damped Gauss-Newton step: the normal equations at beta solved by
    preconditioned CG, the step halved until the objective decreases.
    Returns (new beta, scale, full step, CG matvecs so far) for
    ``gauss_newton``."""
    basis = problem.basis
    residual, partials = _linearise(problem.equation, basis, beta)
    gradient = (
        beta
        + problem.residual_weight * _jacobian_transpose(basis, partials, residual)
        + problem.boundary_weight
        * _boundary_transpose(
            basis, _boundary_rows(basis, beta) - problem.boundary_target
        )
    )

    def normal(v):
        v = v.reshape(basis.basis_shape)
        out = (
            v
            + problem.residual_weight
            * _jacobian_transpose(basis, partials, _jacobian(basis, partials, v))
            + problem.boundary_weight
            * _boundary_transpose(basis, _boundary_rows(basis, v))
        )
        return out.reshape(-1)

    solution = solvers.solve(
        normal,
        -gradient.reshape(-1),
        cg,
        preconditioner=preconditioner,
        throw=False,
    )
    step = solution.value.reshape(basis.basis_shape)
    scale = halving_line_search(objective, beta, step, objective(beta))
    matvecs = solution.stats["num_matvecs"].astype(cg_count.dtype)
    return beta + scale * step, scale, step, cg_count + matvecs


def _fit_values(
    equation,
    points,
    boundary_values,
    kernels,
    terms,
    lengths,
    precision,
    newton_steps,
    cg_steps,
    rank,
):
    r"""Posterior mode of the grid values for fixed kernels: minimises
    $|\beta|^2 + \lambda(|F|^2 / s_F^2 + |B\beta - g|^2 / s_g^2)$ over the
    whitened coefficients $\beta$ (u = $(\otimes_j U_j)\beta$), F at every
    node, by damped Gauss-Newton, each step a conjugate-gradient solve of the
    normal equations preconditioned by the Cholesky factor of their
    constant-coefficient part (coefficients: the mean partials of F at
    u = 0), so that linear constant-coefficient problems take one CG step."""
    dtype = points.dtype
    basis = _box_basis(points, kernels, terms, lengths, rank)
    problem, normal_factor = _least_squares_and_normal_factor(
        equation, basis, boundary_values, precision
    )

    def preconditioner(v):
        return jax.scipy.linalg.cho_solve(normal_factor, v)

    def objective(beta):
        return _objective(problem, beta)

    cg = solvers.CG(rtol=_CG_RTOL[jnp.dtype(dtype)], atol=0.0, max_steps=cg_steps)

    def newton_step(beta, cg_count):
        return _newton_step(problem, objective, preconditioner, cg, beta, cg_count)

    count = jnp.asarray(0, jnp.int32)
    beta, steps, converged, matvecs = gauss_newton(
        newton_step, jnp.zeros(basis.basis_shape, dtype), newton_steps, count, count
    )
    values = apply_along_axes(basis.bases[0], beta)
    coefficients = apply_along_axes([f.whitening for f in basis.factors], beta)
    truncated = jnp.any(
        jnp.stack(
            [f.num_above_cutoff > r for f, r in zip(basis.factors, rank, strict=True)]
        )
    )
    return values, coefficients, steps, converged, matvecs, truncated


class GPBoxSolution(eqx.Module):
    """What ``gp_solve_box`` returns.

    Attributes:
        grids: the nodes along each axis, one 1-D array per axis.
        value: the solution at the grid nodes, shape (n1, ..., nd).
        kernels: the learnt covariance factors, in unit coordinates
            $t_j = (x_j - a_j) / (b_j - a_j)$.
        coefficients: $\\alpha$ with
            $u(x) = \\sum_{i_1 \\dots i_d} \\prod_j k_j(t_j - t_{j i_j})
            \\alpha_{i_1 \\dots i_d}$.
        frequencies, weights: per axis, the spectrum of the solution in
            cycles per unit length of $x_j$, strongest first, from ``kernels``
            refitted by marginal likelihood to ``value``
            (``spectrum_steps``); pruned components have weight 0.
        result: ``RESULTS.successful`` or why it stopped.
        stats: as ``GPSolution`` (``num_steps``: outer steps tried;
            ``residual_norm``: the relative RMS of F at the cell centres),
            plus ``num_matvecs`` (products with the Gauss-Newton normal
            operator in the conjugate-gradient solves of the kept solve) and
            ``rank_truncated`` (whether ``max_rank`` cut modes).
    """

    grids: tuple[Array, ...]
    value: Float[Array, "*grid"]
    kernels: tuple[AbstractStationaryKernel, ...]
    coefficients: Float[Array, "*grid"]
    frequencies: tuple[Array, ...]
    weights: tuple[Array, ...]
    result: RESULTS
    stats: dict

    def _rows(self, axis, coordinates, order):
        grid, kernel = self.grids[axis], self.kernels[axis]
        start, length = grid[0], grid[-1] - grid[0]
        t = (jnp.asarray(coordinates, self.value.dtype) - start) / length
        nodes = (grid - start) / length
        nodes = nodes.reshape((1,) * t.ndim + nodes.shape)
        return kernel.derivative(t[..., None] - nodes, order) / length**order

    def derivative(self, points, orders=None):
        """$\\partial_1^{p_1}\\cdots\\partial_d^{p_d} u$ of the posterior mode
        at points of shape (..., d); ``orders`` (p_1, ..., p_d), default all
        0. For a tensor grid use ``on_grid``: it costs d matrix products
        instead of a kernel row per point."""
        points = jnp.asarray(points, self.value.dtype)
        ndim = len(self.grids)
        orders = (0,) * ndim if orders is None else tuple(orders)
        rows = [self._rows(j, points[..., j], orders[j]) for j in range(ndim)]
        letters = "ijk"[:ndim]
        subscripts = ",".join(f"...{letter}" for letter in letters)
        return jnp.einsum(f"{subscripts},{letters}->...", *rows, self.coefficients)

    def on_grid(self, *axes, orders=None):
        """The same on the tensor grid of the 1-D arrays ``axes``, shape
        (len(x1), ..., len(xd))."""
        orders = (0,) * len(axes) if orders is None else tuple(orders)
        rows = [
            self._rows(j, x, p)
            for j, (x, p) in enumerate(zip(axes, orders, strict=True))
        ]
        return apply_along_axes(rows, self.coefficients)

    def __call__(self, points):
        """The posterior mode $u$ at points of shape (..., d)."""
        return self.derivative(points)


def _initial_spectral_mixtures(source, boundary_values, num_components):
    """The default starting kernels of ``gp_solve_box``: per axis, the
    spectral mixture (``spectral_mixture_from_magnitude``) of the magnitude
    spectrum of the source along that axis (averaged over the others) plus that of the
    boundary data on the faces parallel to it, each normalized to its peak:
    the boundary carries the frequencies when the source does not (pure
    transport, homogeneous equations)."""
    kernels = []
    ndim = source.ndim
    for axis in range(ndim):
        n = source.shape[axis]
        along = jnp.moveaxis(source, axis, -1).reshape(-1, n)
        faces = []
        for other in range(ndim):
            if other != axis:
                face = jnp.moveaxis(boundary_values, other, 0)[jnp.array([0, -1])]
                # the face keeps ``axis`` at position axis - (other < axis) + 1
                position = axis + 1 - (other < axis)
                faces.append(jnp.moveaxis(face, position, -1).reshape(-1, n))
        edges = jnp.concatenate(faces)
        total = 0.0
        for samples in (along, edges):
            # a full-amplitude sinusoid has a Hann-windowed peak of about
            # n/4 times its amplitude; normalizing by the data's own peak
            # instead would blow rounding noise on a zero edge up to 1
            reference = jnp.max(jnp.abs(samples)) * samples.shape[-1] / 4
            magnitude = jnp.mean(windowed_magnitude(samples), axis=0)
            total = total + magnitude / jnp.maximum(
                reference, jnp.finfo(source.dtype).tiny
            )
        kernels.append(
            spectral_mixture_from_magnitude(total, source.shape[axis], num_components)
        )
    return tuple(kernels)


def _box_negative_log_likelihood(kernels, values, nugget):
    r"""$\frac12 U^T K^{-1} U + \frac12 \log|K|$ for
    $K = \otimes_j (K_j + \sigma_j^2 I)$ by one Cholesky factor per axis
    ($\log|K| = \sum_j (N / n_j)\log|K_j'|$), plus the
    Jeffreys prior on every factor's mixture weights."""
    whitened = values
    value = 0.0
    for axis, kernel in enumerate(kernels):
        n = values.shape[axis]
        covariance = uniform_kernel_matrix(kernel, n, n, 0)
        scale = jnp.mean(jnp.diag(covariance))
        covariance = covariance + nugget * scale * jnp.eye(n, dtype=values.dtype)
        factor = jnp.linalg.cholesky(covariance)
        moved = jnp.moveaxis(whitened, axis, 0)
        solved = jax.scipy.linalg.solve_triangular(
            factor, moved.reshape(n, -1), lower=True
        )
        whitened = jnp.moveaxis(solved.reshape(moved.shape), 0, axis)
        others = values.size // n
        value = value + others * jnp.sum(jnp.log(jnp.diag(factor)))
        _, weights = kernel.spectrum()
        value = value + jnp.sum(jnp.log(weights))
    return value + 0.5 * jnp.sum(whitened**2)


def _centre_residual(equation, centres, kernels, coefficients, terms, lengths, scale):
    """Relative RMS of F at the cell centres, where the collocation did not
    force it: an oracle-free estimate that tracks the true error."""
    shape = coefficients.shape

    def at_centres(orders):
        matrices = [
            uniform_kernel_matrix(kernels[j], shape[j] - 1, shape[j], orders[j], 0.5)
            / lengths[j] ** orders[j]
            for j in range(len(shape))
        ]
        return apply_along_axes(matrices, coefficients).reshape(-1)

    args = [at_centres((0,) * len(shape))] + [at_centres(term) for term in terms]
    residual = jax.vmap(equation)(centres.reshape(-1, len(shape)), *args)
    return jnp.sqrt(jnp.mean(residual**2) / scale)


def _residual_of_zero(equation, points, num_derivatives):
    """F(x, 0, 0, ...) at every point of a (..., d) array, flattened: minus
    the source of a linear problem."""
    flat = points.reshape(-1, points.shape[-1])
    zeros = [jnp.zeros(flat.shape[0], flat.dtype)] * (num_derivatives + 1)
    return jax.vmap(equation)(flat, *zeros)


class _BoxProblem(NamedTuple):
    """The discrete problem of ``gp_solve_box``: the uniform tensor grid,
    the boundary data on it, the axis lengths, the modes kept per axis,
    the derivative terms and the residual precision."""

    grids: tuple
    points: Array
    boundary_values: Array
    lengths: tuple
    rank: tuple
    derivatives: tuple
    precision: float


def _box_problem(
    boundary, domain, num_points, derivatives, max_rank, precision, dtype
) -> _BoxProblem:
    """Checks the inputs, fills the defaults and builds the grid."""
    ndim = len(domain)
    if derivatives is None:
        derivatives = tuple(
            tuple(2 if k == j else 0 for k in range(ndim)) for j in range(ndim)
        )
    derivatives = tuple(tuple(term) for term in derivatives)
    num_points = tuple(num_points)
    check_box_inputs(
        domain,
        num_points,
        derivatives,
        min_points=4,
        interval_solver="gp_solve",
        max_dims=3,
    )
    if max_rank is None:
        max_rank = _DEFAULT_MAX_RANK[ndim]
    if not isinstance(max_rank, int) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive int, got {max_rank!r}.")
    grids = tuple(
        jnp.linspace(jnp.asarray(a, dtype), jnp.asarray(b, dtype), n)
        for (a, b), n in zip(domain, num_points, strict=True)
    )
    points = jnp.stack(jnp.meshgrid(*grids, indexing="ij"), axis=-1)
    return _BoxProblem(
        grids=grids,
        points=points,
        boundary_values=boundary_on_grid(boundary, points, dtype),
        lengths=tuple(grid[-1] - grid[0] for grid in grids),
        rank=tuple(min(n, max_rank) for n in num_points),
        derivatives=derivatives,
        precision=DEFAULT_PRECISION[dtype] if precision is None else precision,
    )


def _centre_residual_function(equation, problem: _BoxProblem):
    """``(kernels, coefficients) -> relative RMS of F at the cell centres``,
    with the source's mean square there as the scale."""
    points, ndim = problem.points, len(problem.grids)
    centres = (points[(slice(1, None),) * ndim] + points[(slice(None, -1),) * ndim]) / 2
    centre_source = _residual_of_zero(equation, centres, len(problem.derivatives))
    scale = jnp.maximum(jnp.mean(centre_source**2), jnp.finfo(points.dtype).tiny)

    def centre_residual(kernels, coefficients):
        return _centre_residual(
            equation,
            centres,
            kernels,
            coefficients,
            problem.derivatives,
            problem.lengths,
            scale,
        )

    return centre_residual


def _box_solution(
    problem: _BoxProblem, loop: OuterLoop, spectrum_steps, rtol, throw
) -> GPBoxSolution:
    """The kept solve, its result and stats, and the spectrum per axis
    refitted to the final values."""
    value, coefficients, newton, converged, matvecs, truncated = loop.solve
    likelihood_kernels = fit_spectrum(
        loop.kernel, value, _box_negative_log_likelihood, spectrum_steps
    )
    spectra = [
        reported_spectrum(kernel, length)
        for kernel, length in zip(likelihood_kernels, problem.lengths, strict=True)
    ]
    value, result, stats = result_and_stats(
        value, converged, newton, loop, rtol, throw, "sciax.pde.gp_solve_box"
    )
    stats["num_matvecs"] = matvecs
    stats["rank_truncated"] = truncated
    return GPBoxSolution(
        problem.grids,
        value,
        loop.kernel,
        coefficients,
        tuple(frequencies for frequencies, _ in spectra),
        tuple(weights for _, weights in spectra),
        result,
        stats,
    )


@eqx.filter_jit
def gp_solve_box(
    equation: Callable,
    boundary: Callable | Array,
    domain: Sequence[tuple[float, float]],
    num_points: Sequence[int],
    *,
    rtol: float,
    derivatives: tuple[tuple[int, ...], ...] | None = None,
    kernels: tuple[AbstractStationaryKernel, ...] | None = None,
    num_components: int = 4,
    precision: float | None = None,
    max_outer_steps: int = 10,
    kernel_steps: int = 50,
    learning_rate: float = 1e-2,
    newton_steps: int = 20,
    cg_steps: int = 100,
    spectrum_steps: int = 1000,
    max_rank: int | None = None,
    throw: bool = True,
    dtype=None,
) -> GPBoxSolution:
    r"""Solve $F(x, u, \partial^{p}u, \dots) = 0$ on a box in two or three
    dimensions with u given on its boundary, with a Gaussian-process prior
    on u whose product covariance $\prod_j k_j(x_j)$ has a learnt spectrum
    per axis.

    The method of Fang, Wang, Zhe et al. (GP-HM) on a tensor grid, with an
    exact inner solve. The unknowns are whitened coefficients $\beta$,
    $u = (\otimes_j U_j)\beta$ with $U_j = Q_j\Lambda_j^{1/2}$ from the
    ``max_rank`` largest modes of $K_j = Q_j\Lambda_jQ_j^T$ (modes below
    1e-14 of the largest dropped); derivatives are
    $U_j^{(p)} = K_j^{(p)}Q_j\Lambda_j^{-1/2}$ per axis. The objective is
    GP-HM's,
    $|\beta|^2 + \lambda(|F|^2/s_F^2 + |u_\partial - g|^2/s_g^2)$
    with F collocated at every node. Its Gauss-Newton normal matrix with
    the coefficients of F frozen at their means is a sum of Kronecker
    products of per-axis $r_j \times r_j$ Gram matrices; it is assembled as
    one dense $(\prod_j r_j)^2$ matrix and factored once per kernel
    (Cholesky), which solves linear constant-coefficient problems in one
    step and preconditions the conjugate-gradient solve of each Gauss-Newton
    step otherwise. Nothing of the grid's size squared is formed: r is the
    kernel's numerical rank (93 of 200 on Q2, 114 of 400 on Q1), capped by
    ``max_rank``. The kernels are updated by Adam on the Kronecker marginal
    likelihood (Jeffreys prior on the weights), an update kept only if it
    lowers the residual at the cell centres; the reported spectrum is a last
    fit of the kernels to the final values (``spectrum_steps``).

    Args:
        equation: ``F(x, u, *derivatives)`` at one point, x of shape (d,),
            returning a scalar.
        boundary: ``g(x)`` giving the Dirichlet value at a point x of shape
            (d,), or an (n1, ..., nd) array whose boundary entries are used.
        domain: ((a1, b1), (a2, b2)) or ((a1, b1), (a2, b2), (a3, b3)).
        num_points: nodes per axis, ends included.
        derivatives: multi-indices $(p_1, \dots, p_d)$ passed to
            ``equation`` after u, each order 0..4 (mixed ones allowed);
            default the pure second derivatives (the Laplacian's terms).
        rtol: the target of the residual at the cell centres (required,
            keyword-only; 0 sets no target), as ``gp_solve``.
        kernels: starting covariance factors on the unit interval, one per
            axis; default per axis a spectral mixture read off the
            magnitude spectrum of the source along that axis (averaged over
            the others) plus that of the boundary data on the faces
            parallel to it.
        num_components: as in ``gp_solve``.
        precision: as in ``gp_solve``.
        max_outer_steps: as in ``gp_solve``.
        kernel_steps: as in ``gp_solve``.
        learning_rate: as in ``gp_solve``.
        newton_steps: as in ``gp_solve``.
        spectrum_steps: as in ``gp_solve``.
        throw: as in ``gp_solve``.
        cg_steps: conjugate-gradient steps per Gauss-Newton step at most.
        max_rank: modes per axis at most (default 128 in 2-D, 25 in 3-D);
            the dense normal matrix has $\prod_j \min(n_j, \text{max\_rank})$
            rows (16,384 at 128^2: 2.1 GB in float64).
            ``stats["rank_truncated"]`` says whether the cap cut modes above
            the cutoff (raise it where memory allows).
        dtype: float32 or float64 (default: JAX's default float).

    Returns:
        A ``GPBoxSolution``: the value on the grid, a callable for any
        point, the learnt spectra, stats and result.

    Accuracy (``benchmarks/gp_pde_box.py``, float64, one H100, default
    budget): relative L2 2.0e-8 on Q1 (sin(100x) sin(100y), 400^2), 6.4e-8 on
    Q2 (200^2), 2.6e-8 on Allen-Cahn AC2, 3.9e-8 on space-time transport ADV;
    the reported dominant frequencies within 6e-7 of the true ones on Q1,
    Q2 and AC2 (``spectrum_steps``; 8.9e-4 on ADV);
    in 3-D, 1.5e-6 on a smooth Poisson problem at 20^3 with
    squared-exponential kernels (3.2e-6 at 16^3, tests). The starting
    spectral mixture is read off the source's spectrum and is poor for
    content below a few periods per axis on coarse grids (0.23 on
    sin(2x) cos(y) at 20^2, 2.2e-4 at 30^2): pass ``kernels`` there. A
    kernel that cannot represent the solution gives a converged but wrong
    answer; ``stats["residual_norm"]`` (F at the cell centres, relative to
    the source) shows it: 0.87 with a squared-exponential length of 0.3 on
    sin(6x) cos(3y) at 24^2 (error 0.82), 3e-3 with 0.1 (error 8e-4); with
    ``rtol`` set, a residual left above it is the result
    ``RESULTS.residual_above_rtol``. float32
    stays finite but is not accurate (the normal equations square the
    conditioning). Nonlinear problems whose linearisation is indefinite may
    stop at another stationary point of the objective (the result then says
    that Gauss-Newton did not converge).

    References:
        S. Fang, M. Wang, Z. Zhe et al., Solving High Frequency and Multi-Scale
        PDEs with Gaussian Processes, ICLR 2024.
        R. E. Lynch, J. R. Rice, D. H. Thomas, Direct solution of partial
        difference equations by tensor product methods, Numer. Math. 6 (1964)
        (fast diagonalisation).
    """
    check_rtol(rtol, zero_allowed=True)
    dtype = jnp.dtype(dtype or jnp.zeros(0).dtype)
    problem = _box_problem(
        boundary, domain, num_points, derivatives, max_rank, precision, dtype
    )
    derivatives = problem.derivatives
    if kernels is None:
        source = _residual_of_zero(equation, problem.points, len(derivatives))
        kernels = _initial_spectral_mixtures(
            source.reshape(problem.points.shape[:-1]),
            problem.boundary_values,
            num_components,
        )
    kernels = astype(tuple(kernels), dtype)

    def solve(current):
        return _fit_values(
            equation,
            problem.points,
            problem.boundary_values,
            current,
            derivatives,
            problem.lengths,
            problem.precision,
            newton_steps,
            cg_steps,
            problem.rank,
        )

    nugget = LIKELIHOOD_NUGGET[dtype]
    loop = alternate(
        kernels,
        solve,
        _centre_residual_function(equation, problem),
        lambda k, target: _box_negative_log_likelihood(k, target, nugget),
        max_outer_steps,
        kernel_steps,
        learning_rate,
        rtol,
    )
    return _box_solution(problem, loop, spectrum_steps, rtol, throw)
