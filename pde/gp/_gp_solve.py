"""Gaussian-process collocation for two-point boundary-value problems with
high-frequency and multi-scale solutions (GP-HM, with an exact inner solve)."""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float

from ..._results import RESULTS
from .._box_inputs import check_rtol
from ._collocation import (
    DEFAULT_PRECISION,
    LIKELIHOOD_NUGGET,
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
from ._gp_kernels import AbstractStationaryKernel, SpectralMixtureKernel

# Eigenvalues of the grid covariance below this fraction of the largest carry
# only rounding: their eigenvectors are dropped from the whitened basis, which
# bounds the entries of K^(p) K^(-1/2) by 1 / sqrt(cutoff).
_EIGENVALUE_CUTOFF = {jnp.dtype("float64"): 1e-15, jnp.dtype("float32"): 1e-6}


class GPSolution(eqx.Module):
    r"""What ``gp_solve`` returns.

    Attributes:
        grid: the collocation nodes $x_0 = a < \dots < x_{n-1} = b$.
        value: the solution at the nodes (the posterior mode).
        kernel: the learnt covariance, in the unit coordinate
            $t = (x - a) / (b - a)$.
        coefficients: $\alpha$ with $u(x) = \sum_j k(t - t_j)\alpha_j$.
        frequencies, weights: the spectrum of the solution in cycles per
            unit length of x, strongest first, from ``kernel`` refitted by
            marginal likelihood to ``value`` (``spectrum_steps``); pruned
            components have weight 0.
        result: ``RESULTS.successful`` or why it stopped.
        stats: ``num_steps`` (outer steps: kernel updates tried, each
            ``kernel_steps`` Adam steps and a solve), ``num_accepted`` (of
            those, kept), ``num_newton_steps`` (Gauss-Newton steps of the kept
            solve), ``residual_norm`` (relative RMS of the PDE residual at the
            midpoints between nodes, the stopping and acceptance criterion)
            and ``residual_history`` (after each outer step; constant once
            rtol is met).
    """

    grid: Float[Array, " n"]
    value: Float[Array, " n"]
    kernel: AbstractStationaryKernel
    coefficients: Float[Array, " n"]
    frequencies: Float[Array, " q"]
    weights: Float[Array, " q"]
    result: RESULTS
    stats: dict

    def derivative(self, x, order: int = 0):
        """$u^{(p)}(x)$ of the posterior mode at any points x of the domain."""
        x = jnp.asarray(x, self.grid.dtype)
        start, length = self.grid[0], self.grid[-1] - self.grid[0]
        t = (x - start) / length
        nodes = (self.grid - start) / length
        nodes = jnp.reshape(nodes, (1,) * t.ndim + nodes.shape)
        covariance = self.kernel.derivative(t[..., None] - nodes, order)
        return covariance @ self.coefficients / length**order

    def __call__(self, x):
        """The posterior mode $u(x)$ at any points x of the domain."""
        return self.derivative(x, 0)


def _initial_spectral_mixture(
    source: Float[Array, " n"], num_components: int
) -> SpectralMixtureKernel:
    """The default starting kernel of ``gp_solve``: a spectral mixture on the
    unit interval read off the Hann-windowed spectrum of ``source`` sampled on
    a uniform grid (``spectral_mixture_from_magnitude``). For $u'' = f$ the
    peaks of f are those of u, and for most PDEs with a high-frequency
    solution the source carries the frequencies."""
    n = source.shape[0]
    return spectral_mixture_from_magnitude(
        windowed_magnitude(source), n, num_components
    )


def _check_inputs(domain, num_points, derivatives, boundary_values):
    if len(domain) != 2 or any(np.ndim(end) != 0 for end in domain):
        raise ValueError(
            f"domain must be an interval (a, b); got {domain!r}. Boxes in more "
            "than one dimension: gp_solve_box (rectangles)."
        )
    if not float(domain[1]) > float(domain[0]):
        raise ValueError(f"domain must have b > a, got {domain!r}.")
    if not isinstance(num_points, int) or num_points < 4:
        raise ValueError(f"num_points must be an int >= 4, got {num_points!r}.")
    if boundary_values.shape != (2,):
        raise ValueError(
            "boundary must give the two Dirichlet values u(a), u(b); got shape "
            f"{boundary_values.shape}."
        )
    if not derivatives or any(
        not isinstance(p, int) or not 1 <= p <= 4 for p in derivatives
    ):
        raise ValueError(
            f"derivatives must be a non-empty tuple of orders 1..4, got {derivatives}."
        )


class _Basis(NamedTuple):
    """The whitened basis on the grid for a fixed kernel: u = ``values`` beta
    and u^(p) = ``slopes[i]`` beta at the nodes (p the i-th of the
    derivative orders, in x), and the kernel coefficients ``whitening`` beta."""

    values: Array
    slopes: list
    whitening: Array


def _basis(kernel, n, derivatives, length, cutoff) -> _Basis:
    """Builds the discretisation: the whitened basis of the unit grid's
    covariance (``whitened_modes``), derivatives scaled to x."""
    covariance = uniform_kernel_matrix(kernel, n, n, 0)
    eigenvalues, eigenvectors = jnp.linalg.eigh(covariance)
    values, whitening, _ = whitened_modes(eigenvalues, eigenvectors, cutoff)
    slopes = [uniform_kernel_matrix(kernel, n, n, p) @ whitening for p in derivatives]
    slopes = [s / length**p for s, p in zip(slopes, derivatives, strict=True)]
    return _Basis(values, slopes, whitening)


class _LeastSquares(NamedTuple):
    """The Gauss-Newton problem for a fixed kernel: F collocated at the
    interior nodes x, the Dirichlet values at the ends, and the scales that
    weigh the residual and boundary rows against the prior."""

    equation: Callable
    x: Array
    basis: _Basis
    ends: Array
    boundary_values: Array
    residual_scale: Array
    boundary_scale: Array
    root: Array


def _residual_and_jacobian(equation, x, basis, beta):
    """F at the interior nodes and its Jacobian in beta."""
    n = x.shape[0]
    interior = slice(1, n - 1)
    u = basis.values @ beta
    ds = [s @ beta for s in basis.slopes]
    args = (x[interior], u[interior], *(d[interior] for d in ds))
    residual, partials = linearise_pointwise(equation, args)
    jacobian = partials[0][:, None] * basis.values[interior]
    for partial, s in zip(partials[1:], basis.slopes, strict=True):
        jacobian = jacobian + partial[:, None] * s[interior]
    return residual, jacobian


def _least_squares(
    equation, x, boundary_values, basis, precision, zero
) -> _LeastSquares:
    """The problem with each block of rows scaled to unit RMS row norm (the
    residual's at beta = ``zero``), so that ``precision`` weighs it against
    the prior whatever the kernel's scale."""
    ends = jnp.array([0, x.shape[0] - 1])
    _, jacobian0 = _residual_and_jacobian(equation, x, basis, zero)
    residual_scale = jnp.sqrt(jnp.mean(jnp.sum(jacobian0**2, axis=1)))
    boundary_scale = jnp.sqrt(jnp.mean(jnp.sum(basis.values[ends] ** 2, axis=1)))
    root = jnp.sqrt(jnp.asarray(precision, x.dtype))
    return _LeastSquares(
        equation, x, basis, ends, boundary_values, residual_scale, boundary_scale, root
    )


def _objective_terms(problem: _LeastSquares, beta):
    """The rows whose sum of squares is the objective at beta (scaled
    residual, scaled boundary misfit, beta itself), and their Jacobian."""
    x, basis, root, ends = problem.x, problem.basis, problem.root, problem.ends
    residual, jacobian = _residual_and_jacobian(problem.equation, x, basis, beta)
    misfit = basis.values[ends] @ beta - problem.boundary_values
    rows = jnp.concatenate(
        [
            root * residual / problem.residual_scale,
            root * misfit / problem.boundary_scale,
            beta,
        ]
    )
    matrix = jnp.concatenate(
        [
            root * jacobian / problem.residual_scale,
            root * basis.values[ends] / problem.boundary_scale,
            jnp.eye(x.shape[0], dtype=x.dtype),
        ]
    )
    return rows, matrix


def _damped_step(objective_terms, beta):
    """The Gauss-Newton step (QR least squares), halved until the objective
    does not increase or the scale is at most 1e-3; returns (new beta,
    scale, full step) for ``gauss_newton``."""
    rows, matrix = objective_terms(beta)
    q, r = jnp.linalg.qr(matrix)
    step = -jax.scipy.linalg.solve_triangular(r, q.T @ rows)
    current = jnp.sum(rows**2)

    def shrink(state):
        scale, _ = state
        return scale / 2, jnp.sum(objective_terms(beta + scale / 2 * step)[0] ** 2)

    def worse(state):
        scale, value = state
        return (value > current) & (scale > 1e-3)

    trial = jnp.sum(objective_terms(beta + step)[0] ** 2)
    scale, _ = lax.while_loop(worse, shrink, (jnp.asarray(1.0, beta.dtype), trial))
    return beta + scale * step, scale, step


def _fit_values(
    equation, x, boundary_values, kernel, derivatives, length, precision, newton
):
    """Posterior mode of the grid values for a fixed kernel: minimises
    |beta|^2 + precision (|F|^2 / s_F^2 + |U_ends - g|^2 / s_g^2) by damped
    Gauss-Newton with a QR least-squares step (one step for a linear PDE)."""
    dtype = x.dtype
    cutoff = _EIGENVALUE_CUTOFF[jnp.dtype(dtype)]
    basis = _basis(kernel, x.shape[0], derivatives, length, cutoff)
    zero = jnp.zeros(x.shape, dtype)
    problem = _least_squares(equation, x, boundary_values, basis, precision, zero)

    def objective_terms(beta):
        return _objective_terms(problem, beta)

    def newton_step(beta):
        return _damped_step(objective_terms, beta)

    beta, steps, converged = gauss_newton(newton_step, zero, newton, 0)
    return basis.values @ beta, basis.whitening @ beta, steps, converged


def _source_mean_square(equation, x, num_derivatives):
    """Mean square of F(x, 0, 0, ...) at the midpoints: the scale that makes
    the midpoint residual relative."""
    midpoints = (x[1:] + x[:-1]) / 2
    zeros = [jnp.zeros_like(midpoints) for _ in range(num_derivatives + 1)]
    source = jax.vmap(equation)(midpoints, *zeros)
    return jnp.maximum(jnp.mean(source**2), jnp.finfo(x.dtype).tiny)


def _midpoint_residual(
    equation, x, kernel, coefficients, derivatives, length, source_mean_square
):
    """Relative RMS of F at the midpoints between nodes, where the collocation
    did not force it to zero: it tracks the true error without knowing it."""
    n = x.shape[0]
    midpoints = (x[1:] + x[:-1]) / 2
    u = uniform_kernel_matrix(kernel, n - 1, n, 0, 0.5) @ coefficients
    ds = [
        uniform_kernel_matrix(kernel, n - 1, n, p, 0.5) @ coefficients / length**p
        for p in derivatives
    ]
    residual = jax.vmap(equation)(midpoints, u, *ds)
    return jnp.sqrt(jnp.mean(residual**2) / source_mean_square)


def _negative_log_likelihood(kernel, values, nugget):
    r"""$\frac12 U^T(K + \sigma^2 I)^{-1}U + \frac12\log|K + \sigma^2I|$ of the
    current solution, plus the Jeffreys prior $\sum_q \log w_q$ on mixture
    weights (Fang et al. 2024), which drives unneeded components to zero."""
    n = values.shape[0]
    covariance = uniform_kernel_matrix(kernel, n, n, 0)
    scale = jnp.mean(jnp.diag(covariance))
    covariance = covariance + nugget * scale * jnp.eye(n, dtype=values.dtype)
    factor = jnp.linalg.cholesky(covariance)
    whitened = jax.scipy.linalg.solve_triangular(factor, values, lower=True)
    value = 0.5 * jnp.sum(whitened**2) + jnp.sum(jnp.log(jnp.diag(factor)))
    _, weights = kernel.spectrum()
    return value + jnp.sum(jnp.log(weights))


@eqx.filter_jit
def gp_solve(
    equation: Callable,
    boundary: Sequence[float] | Array,
    domain: tuple[float, float],
    num_points: int,
    *,
    rtol: float,
    derivatives: tuple[int, ...] = (2,),
    kernel: AbstractStationaryKernel | None = None,
    num_components: int = 4,
    precision: float | None = None,
    max_outer_steps: int = 20,
    kernel_steps: int = 50,
    learning_rate: float = 1e-2,
    newton_steps: int = 30,
    spectrum_steps: int = 1000,
    throw: bool = True,
) -> GPSolution:
    r"""Solve $F(x, u, u^{(p_1)}, \dots) = 0$ on $[a, b]$, $u(a), u(b)$ given,
    with a Gaussian-process prior on u whose spectrum is learnt.

    The method of Fang, Wang, Zhe et al. (GP-HM): u is a GP with a
    spectral-mixture covariance, its values U on the grid are the unknowns, and
    the objective is the GP prior plus weighted PDE and boundary misfits at
    the nodes,
    $\tfrac12 U^TK^{-1}U + \tfrac\lambda2(\|F\|^2/s_F^2 + \|U_{a,b} - g\|^2/s_g^2)$,
    with $u^{(p)}(x_i) = (K^{(p)}K^{-1}U)_i$. What GP-HM lacks and this adds:
    for a fixed kernel the grid values are solved exactly (Gauss-Newton, one
    step for a linear F), in the whitened basis $U = Q\Lambda^{1/2}\beta$ of
    $K = Q\Lambda Q^T$ where the prior is $|\beta|^2$ and the least-squares
    problem is well conditioned even though K is not (its condition number
    exceeds $10^{20}$ for narrow spectra); the kernel is then updated by Adam
    on the marginal likelihood of U with the Jeffreys prior on the weights,
    and an update is kept only if it lowers the PDE residual at the midpoints
    between nodes (an oracle-free error estimate), so the error never swings
    upwards late in the run. That residual stops falling once the solve is
    at rounding level, so the reported spectrum comes from a last fit of
    the kernel to the final values alone (``spectrum_steps``).

    Args:
        equation: ``F(x, u, *derivatives)`` at one point, returning a scalar;
            linear or nonlinear in u and its derivatives.
        boundary: the Dirichlet values $(u(a), u(b))$.
        domain: the interval (a, b).
        num_points: nodes of the uniform collocation grid, ends included.
        derivatives: the orders passed to ``equation`` after u, each 1..4.
        kernel: the starting covariance on the unit interval
            $t = (x - a)/(b - a)$; default a spectral mixture read off the
            source $-F(x, 0, 0, \dots)$ on the grid: one component at
            frequency 0 and the others at the strongest peaks of its
            Hann-windowed spectrum (parabolic refinement, bandwidths of two
            frequency bins). Every floating-point array field of the kernel
            is learnt; the smoothness of a Matérn kernel is learnt too when
            given as an array (``MaternKernel(..., nu=jnp.asarray(2.5))``)
            and stays fixed when given as a number. A learnt nu must stay
            above p/2 for the highest derivative order p: an update that
            crosses it gives a nan residual and is rejected.
        num_components: components of the default mixture (one at frequency 0).
        precision: $\lambda$; default 1e12 (float64), 1e6 (float32).
        max_outer_steps: kernel updates (each ``kernel_steps`` Adam steps then
            a solve); 0 solves once with the starting kernel.
        learning_rate: Adam's step in the unit-interval parameters.
        newton_steps: Gauss-Newton steps per solve at most.
        spectrum_steps: Adam steps of the reported spectrum's fit to the
            final values; 0 reports the solve's kernel.
        rtol: the target of the midpoint residual (required, keyword-only,
            as in every sciax solver): the outer steps stop once
            ``stats["residual_norm"]`` is at most rtol, and a residual still
            above it after the budget is ``RESULTS.residual_above_rtol``.
            0 sets no target: the whole budget runs and any converged solve
            is successful. The float64 floor is about 1e-7 to 1e-6.
        throw: raise unless the result is ``RESULTS.successful``; pass
            False inside ``jax.vmap`` or gradients and read ``result``.

    Returns:
        A ``GPSolution``: the value on the grid, a callable for any point,
        the learnt spectrum, stats and result.

    Accuracy: on the benchmark problems of Fang et al. relative L2 errors of
    3e-8 to 7e-7 in float64 (``benchmarks/gp_pde.py``), and the reported
    frequencies within 2e-5 of the true high frequencies (P1-P5, A1, A2).
    float32 never produces
    NaN but is limited to errors of about 1e-2 (test problem: 9.8e-3 on CPU,
    1.4e-2 on an H100):
    the whitened basis keeps eigenvalues above 1e-6 of the largest only, and
    the least-squares step loses $\sqrt\lambda$ digits. Use float64 for
    accuracy.

    References:
        S. Fang, M. Wang, Z. Zhe et al., Solving High Frequency and Multi-Scale
        PDEs with Gaussian Processes, ICLR 2024.
        A. G. Wilson, R. P. Adams, Gaussian Process Kernels for Pattern
        Discovery and Extrapolation, ICML 2013.
    """
    check_rtol(rtol, zero_allowed=True)
    dtype = jnp.result_type(*(jnp.asarray(v) for v in boundary), float)
    boundary_values = jnp.asarray(boundary, dtype)
    derivatives = tuple(derivatives)
    _check_inputs(domain, num_points, derivatives, boundary_values)
    grid = jnp.linspace(
        jnp.asarray(domain[0], dtype), jnp.asarray(domain[1], dtype), num_points
    )
    if precision is None:
        precision = DEFAULT_PRECISION[jnp.dtype(dtype)]
    length = grid[-1] - grid[0]
    if kernel is None:
        zeros = [jnp.zeros_like(grid) for _ in range(len(derivatives) + 1)]
        source = jax.vmap(equation)(grid, *zeros)
        kernel = _initial_spectral_mixture(source.astype(dtype), num_components)
    kernel = astype(kernel, dtype)

    def solve(current):
        return _fit_values(
            equation,
            grid,
            boundary_values,
            current,
            derivatives,
            length,
            precision,
            newton_steps,
        )

    source_mean_square = _source_mean_square(equation, grid, len(derivatives))

    def midpoint_residual(current, coefficients):
        return _midpoint_residual(
            equation,
            grid,
            current,
            coefficients,
            derivatives,
            length,
            source_mean_square,
        )

    nugget = LIKELIHOOD_NUGGET[jnp.dtype(dtype)]
    loop = alternate(
        kernel,
        solve,
        midpoint_residual,
        lambda k, target: _negative_log_likelihood(k, target, nugget),
        max_outer_steps,
        kernel_steps,
        learning_rate,
        rtol,
    )
    value, coefficients, newton, converged = loop.solve
    likelihood_kernel = fit_spectrum(
        loop.kernel, value, _negative_log_likelihood, spectrum_steps
    )
    frequencies, weights = reported_spectrum(likelihood_kernel, length)
    value, result, stats = result_and_stats(
        value, converged, newton, loop, rtol, throw, "sciax.pde.gp_solve"
    )
    return GPSolution(
        grid, value, loop.kernel, coefficients, frequencies, weights, result, stats
    )
