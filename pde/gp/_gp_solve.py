"""Gaussian-process collocation for two-point boundary-value problems with
high-frequency and multi-scale solutions (GP-HM, with an exact inner solve)."""

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jaxtyping import Array, Float

from ...solvers import RESULTS
from ._gp_kernels import AbstractStationaryKernel, SpectralMixtureKernel

# Eigenvalues of the grid covariance below this fraction of the largest carry
# only rounding: their eigenvectors are dropped from the whitened basis, which
# bounds the entries of K^(p) K^(-1/2) by 1 / sqrt(cutoff).
_EIGENVALUE_CUTOFF = {jnp.dtype("float64"): 1e-15, jnp.dtype("float32"): 1e-6}
# Residual precision relative to the prior (after each block of rows is scaled
# to unit RMS row norm); 1e12 in float64 puts the PDE residual at ~1e-6 of the
# solution's prior scale, the float64 rounding floor of the whitened basis. In
# float32 the prior's shrinkage dominates below 1e5 and rounding above it
# (test problem: 0.12 at 1e4, 5.2e-3 at 1e5, 9.8e-3 at 1e6, 1.1e-2 at 1e8);
# 1e6 keeps a decade from the cliff.
_DEFAULT_PRECISION = {jnp.dtype("float64"): 1e12, jnp.dtype("float32"): 1e6}
# Nugget of the marginal likelihood that fits the kernel to the current
# solution, relative to the mean prior variance (the likelihood needs a
# Cholesky factor; the solve itself never does).
_LIKELIHOOD_NUGGET = {jnp.dtype("float64"): 1e-10, jnp.dtype("float32"): 1e-4}
# Mixture weights are not allowed below this fraction of the largest: such a
# component is pruned (reported with weight 0) but stays differentiable.
_WEIGHT_FLOOR = 1e-12
# Spectral peaks of the source below this fraction of the strongest start as
# pruned components.
_PEAK_THRESHOLD = 1e-3
# A kernel update is kept only when it lowers the midpoint residual. Tried:
# accepting anything within 1.25x of the lowest lets the spectrum keep
# sharpening at the rounding floor, but the error then drifts up 2-4x (P5, A2).


class GPSolution(eqx.Module):
    """What ``gp_solve`` returns.

    Attributes:
        grid: the collocation nodes.
        values: the solution at the nodes (the posterior mode).
        kernel: the learnt covariance, in the unit coordinate
            $t = (x - a) / (b - a)$.
        coefficients: $\\alpha$ with $u(x) = \\sum_j k(t - t_j)\\alpha_j$.
        frequencies, weights: the spectrum of the solution in cycles per
            unit length of x, strongest first, from ``kernel`` refitted by
            marginal likelihood to ``values`` (``spectrum_steps``); pruned
            components have weight 0.
        result: ``solvers.RESULTS.successful`` or why it stopped.
        stats: ``num_outer_steps`` (kernel updates tried), ``num_accepted``,
            ``num_newton_steps`` (of the kept solve), ``residual_norm``
            (relative RMS of the PDE residual at the midpoints between nodes,
            the stopping and acceptance criterion) and ``residual_history``
            (after each outer step; constant once rtol is met).
    """

    grid: Float[Array, " n"]
    values: Float[Array, " n"]
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


def initial_spectral_mixture(
    source: Float[Array, " n"], num_components: int = 4
) -> SpectralMixtureKernel:
    """A spectral mixture on the unit interval with one component at frequency
    0 (trends, boundary layers) and the others at the strongest peaks of the
    Hann-windowed spectrum of ``source`` sampled on a uniform grid (peaks below
    1e-3 of the strongest start pruned), refined by
    parabolic interpolation of the log magnitude. Bandwidths start at two
    frequency bins. For $u'' = f$ the peaks of f are those of u, and for most
    PDEs with a high-frequency solution the source carries the frequencies."""
    n = source.shape[0]
    return spectral_mixture_from_magnitude(
        windowed_magnitude(source), n, num_components
    )


def windowed_magnitude(samples: Float[Array, "... n"]) -> Array:
    """|rfft| of the Hann-windowed, mean-removed samples along the last axis."""
    n = samples.shape[-1]
    window = 0.5 - 0.5 * jnp.cos(
        2 * jnp.pi * jnp.arange(n, dtype=samples.dtype) / (n - 1)
    )
    centred = samples - jnp.mean(samples, axis=-1, keepdims=True)
    window = window.reshape((1,) * (samples.ndim - 1) + (n,))
    return jnp.abs(jnp.fft.rfft(centred * window, axis=-1))


def spectral_mixture_from_magnitude(
    magnitude: Float[Array, " m"], n: int, num_components: int
) -> SpectralMixtureKernel:
    """The mixture of ``initial_spectral_mixture`` from a magnitude spectrum
    of samples on n uniform nodes of the unit interval."""
    dtype = magnitude.dtype
    log_magnitude = jnp.log(magnitude + jnp.finfo(dtype).tiny)
    inner = jnp.arange(1, magnitude.shape[0] - 1)
    is_peak = (magnitude[inner] >= magnitude[inner - 1]) & (
        magnitude[inner] >= magnitude[inner + 1]
    )
    strength = jnp.where(is_peak, magnitude[inner], -1.0)
    _, top = lax.top_k(strength, num_components - 1)
    index = inner[top]
    left, centre, right = (
        log_magnitude[index - 1],
        log_magnitude[index],
        log_magnitude[index + 1],
    )
    curvature = left - 2 * centre + right
    offset = jnp.where(
        curvature < 0, 0.5 * (left - right) / jnp.where(curvature < 0, curvature, -1), 0
    )
    # rfft bins are cycles per (n - 1) grid steps = cycles per unit interval
    # scaled by (n - 1) / n
    peaks = (index.astype(dtype) + jnp.clip(offset, -0.5, 0.5)) * (n - 1) / n
    # sidelobes and float32 rounding make small spurious peaks; a component
    # started on one of them only adds ill-conditioned directions
    valid = strength[top] > _PEAK_THRESHOLD * jnp.max(magnitude[inner])
    frequencies = jnp.concatenate([jnp.zeros((1,), dtype), peaks.astype(dtype)])
    log_weights = jnp.concatenate(
        [jnp.zeros((1,), dtype), jnp.where(valid, 0.0, jnp.log(_WEIGHT_FLOOR))]
    ).astype(dtype)
    log_scales = jnp.full((num_components,), jnp.log(2.0), dtype)
    return SpectralMixtureKernel(log_weights, frequencies, log_scales)


def _uniform_kernel_matrix(kernel, num_rows, num_nodes, order, shift=0.0):
    """$k^{(p)}((i + shift - j) h)$, h = 1 / (num_nodes - 1), for rows i and nodes j
    of the uniform unit grid: a Toeplitz matrix, so the kernel is evaluated
    at its num_rows + num_nodes - 1 distinct differences only."""
    dtype = _kernel_dtype(kernel)
    offsets = np.arange(-(num_nodes - 1), num_rows)
    differences = jnp.asarray((offsets + shift) / (num_nodes - 1), dtype)
    values = kernel.derivative(differences, order)
    index = np.arange(num_rows)[:, None] - np.arange(num_nodes)[None, :] + num_nodes - 1
    return values[index]


def _kernel_dtype(kernel):
    leaves = [leaf for leaf in jax.tree.leaves(kernel) if eqx.is_inexact_array(leaf)]
    return leaves[0].dtype


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


def _basis(kernel, n, derivatives, cutoff):
    """Whitened basis: U = B beta and u^(p) = A_p beta at the nodes of the unit
    grid, with the prior U^T K^-1 U = |beta|^2 (eigen-decomposition of K,
    rounding modes dropped)."""
    covariance = _uniform_kernel_matrix(kernel, n, n, 0)
    eigenvalues, eigenvectors = jnp.linalg.eigh(covariance)
    keep = eigenvalues > cutoff * eigenvalues[-1]
    safe = jnp.where(keep, eigenvalues, 1.0)
    inverse_root = jnp.where(keep, 1 / jnp.sqrt(safe), 0.0)
    whitening = eigenvectors * inverse_root[None, :]
    values = eigenvectors * jnp.where(keep, jnp.sqrt(safe), 0.0)[None, :]
    slopes = [_uniform_kernel_matrix(kernel, n, n, p) @ whitening for p in derivatives]
    return values, slopes, whitening


def _fit_values(
    equation, x, boundary_values, kernel, derivatives, length, precision, newton
):
    """Posterior mode of the grid values for a fixed kernel: minimises
    |beta|^2 + precision (|F|^2 / s_F^2 + |U_ends - g|^2 / s_g^2) by damped
    Gauss-Newton with a QR least-squares step (one step for a linear PDE)."""
    dtype = x.dtype
    cutoff = _EIGENVALUE_CUTOFF[jnp.dtype(dtype)]
    n = x.shape[0]
    values_basis, slopes, whitening = _basis(kernel, n, derivatives, cutoff)
    slopes = [s / length**p for s, p in zip(slopes, derivatives, strict=True)]
    interior = slice(1, n - 1)
    ends = jnp.array([0, n - 1])

    def pointwise(beta):
        u = values_basis @ beta
        ds = [s @ beta for s in slopes]
        return u, ds

    def residual_and_jacobian(beta):
        u, ds = pointwise(beta)
        args = (x[interior], u[interior], *(d[interior] for d in ds))
        residual = jax.vmap(equation)(*args)
        partials = jax.vmap(jax.grad(equation, argnums=tuple(range(1, len(args)))))(
            *args
        )
        jacobian = partials[0][:, None] * values_basis[interior]
        for partial, s in zip(partials[1:], slopes, strict=True):
            jacobian = jacobian + partial[:, None] * s[interior]
        return residual, jacobian

    zero = jnp.zeros((n,), dtype)
    _, jacobian0 = residual_and_jacobian(zero)
    residual_scale = jnp.sqrt(jnp.mean(jnp.sum(jacobian0**2, axis=1)))
    boundary_scale = jnp.sqrt(jnp.mean(jnp.sum(values_basis[ends] ** 2, axis=1)))
    root = jnp.sqrt(jnp.asarray(precision, dtype))

    def objective_terms(beta):
        residual, jacobian = residual_and_jacobian(beta)
        misfit = values_basis[ends] @ beta - boundary_values
        rows = jnp.concatenate(
            [
                root * residual / residual_scale,
                root * misfit / boundary_scale,
                beta,
            ]
        )
        matrix = jnp.concatenate(
            [
                root * jacobian / residual_scale,
                root * values_basis[ends] / boundary_scale,
                jnp.eye(n, dtype=dtype),
            ]
        )
        return rows, matrix

    def newton_step(carry):
        beta, _, step_count = carry
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
        scale, _ = lax.while_loop(worse, shrink, (jnp.asarray(1.0, dtype), trial))
        new_beta = beta + scale * step
        size = jnp.linalg.norm(scale * step) / jnp.maximum(
            jnp.linalg.norm(new_beta), jnp.finfo(dtype).tiny
        )
        return new_beta, size, step_count + 1

    def not_converged(carry):
        _, size, step_count = carry
        tolerance = 100 * jnp.finfo(dtype).eps ** 0.5
        return (size > tolerance) & (step_count < newton)

    beta, size, steps = lax.while_loop(
        not_converged, newton_step, (zero, jnp.asarray(jnp.inf, dtype), 0)
    )
    converged = size <= 100 * jnp.finfo(dtype).eps ** 0.5
    values = values_basis @ beta
    coefficients = whitening @ beta
    return values, coefficients, steps, converged


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
    u = _uniform_kernel_matrix(kernel, n - 1, n, 0, 0.5) @ coefficients
    ds = [
        _uniform_kernel_matrix(kernel, n - 1, n, p, 0.5) @ coefficients / length**p
        for p in derivatives
    ]
    residual = jax.vmap(equation)(midpoints, u, *ds)
    return jnp.sqrt(jnp.mean(residual**2) / source_mean_square)


def _negative_log_likelihood(kernel, values, nugget):
    r"""$\frac12 U^T(K + \sigma^2 I)^{-1}U + \frac12\log|K + \sigma^2I|$ of the
    current solution, plus the Jeffreys prior $\sum_q \log w_q$ on mixture
    weights (Fang et al. 2024), which drives unneeded components to zero."""
    n = values.shape[0]
    covariance = _uniform_kernel_matrix(kernel, n, n, 0)
    scale = jnp.mean(jnp.diag(covariance))
    covariance = covariance + nugget * scale * jnp.eye(n, dtype=values.dtype)
    factor = jnp.linalg.cholesky(covariance)
    whitened = jax.scipy.linalg.solve_triangular(factor, values, lower=True)
    value = 0.5 * jnp.sum(whitened**2) + jnp.sum(jnp.log(jnp.diag(factor)))
    _, weights = kernel.spectrum()
    return value + jnp.sum(jnp.log(weights))


def _kernel_steps(parameters, optimiser_state, static, loss, rates):
    """One Adam step on ``loss(kernel)`` per entry of ``rates`` (that step's
    learning rate), the kernel being ``eqx.combine(parameters, static)``."""
    optimiser = optax.adam(1.0)

    def step(state, rate):
        p, s = state
        gradient = jax.grad(lambda q: loss(eqx.combine(q, static)))(p)
        # optax mixes its int32 step count with floats
        with jax.numpy_dtype_promotion("standard"):
            updates, s = optimiser.update(gradient, s, p)
        updates = jax.tree.map(lambda u: rate * u, updates)
        return (_floor_weights(optax.apply_updates(p, updates)), s), None

    (parameters, optimiser_state), _ = lax.scan(
        step, (parameters, optimiser_state), rates
    )
    return parameters, optimiser_state


def _normalised(values):
    return values / jnp.sqrt(jnp.mean(values**2) + jnp.finfo(values.dtype).tiny)


# Adam's step bounds how fast the log-bandwidths can narrow, and the
# frequencies settle only once the bandwidths are narrow. Measured on the H100
# (Q1, Q2, AC2 from their solved values): 1000 steps at 2e-2 put every
# dominant frequency within 5e-7; 500 leave Q2 at 2e-4, and 5e-2 or 2000
# steps let the narrowed components wander (1e-4 to 6e-3 on AC2).
_SPECTRUM_LEARNING_RATE = 2e-2
# The solved values carry a rounding-level error in every mode, and in d
# dimensions the nugget of the Kronecker covariance is only nugget^d in the
# modes that are small along every axis: with the solve's 1e-10 the error
# there dominates the fit (Q1's frequency stays 2.6e-4 off; 2e-7 with 1e-6).
_SPECTRUM_NUGGET = {jnp.dtype("float64"): 1e-6, jnp.dtype("float32"): 1e-4}


def fit_spectrum(kernel, values, likelihood, num_steps):
    """The kernel after ``num_steps`` Adam steps (cosine-decayed from
    2e-2 so that the last iterate has settled) on ``likelihood(kernel,
    normalised values, nugget)`` with the nugget ``_SPECTRUM_NUGGET``: the
    maximum-likelihood spectrum of the final solution. The outer loop keeps
    a kernel only when it lowers the PDE residual, which stops falling once
    the solve is at rounding level, so its kernel's frequencies stay where
    the first accepted updates left them (3.9e-4 off on Q1); the values
    themselves pin the frequencies."""
    parameters, static = eqx.partition(kernel, eqx.is_inexact_array)
    target = _normalised(values)
    nugget = _SPECTRUM_NUGGET[jnp.dtype(values.dtype)]
    schedule = optax.cosine_decay_schedule(_SPECTRUM_LEARNING_RATE, max(num_steps, 1))
    # optax mixes its int32 step with Python floats
    with jax.numpy_dtype_promotion("standard"):
        rates = jax.vmap(schedule)(jnp.arange(num_steps)).astype(values.dtype)
    parameters, _ = _kernel_steps(
        parameters,
        optax.adam(1.0).init(parameters),
        static,
        lambda k: likelihood(k, target, nugget),
        rates,
    )
    return eqx.combine(parameters, static)


def _alternate(
    kernel,
    solve,
    midpoint_residual,
    likelihood,
    max_outer_steps,
    kernel_steps,
    learning_rate,
    rtol,
):
    """The outer loop shared by the interval and box solvers: ``kernel_steps``
    Adam steps on ``likelihood(kernel, normalised values)``, a solve with the
    new kernel, kept only if ``midpoint_residual`` went down (a rejected
    update halves the step, as a trust region would). ``solve(kernel)``
    returns (values, coefficients, ...). Returns the kept kernel and solve,
    its residual, the counts and the residual history."""
    best = solve(kernel)
    residual = midpoint_residual(kernel, best[1])
    parameters, static = eqx.partition(kernel, eqx.is_inexact_array)
    # Adam is built with unit step and scaled by rate (halved on rejection)
    rate = jnp.asarray(learning_rate, residual.dtype)
    optimiser_state = optax.adam(1.0).init(parameters)

    def outer_step(carry):
        params, opt_state, best, residual, tried, accepted, rate = carry
        target = _normalised(best[0])
        trial_params, trial_state = _kernel_steps(
            params,
            opt_state,
            static,
            lambda k: likelihood(k, target),
            jnp.full(kernel_steps, rate),
        )
        trial_kernel = eqx.combine(trial_params, static)
        trial = solve(trial_kernel)
        trial_residual = midpoint_residual(trial_kernel, trial[1])
        better = (trial_residual < residual) & jnp.isfinite(trial_residual)

        def pick(new, old):
            return jnp.where(better, new, old)

        return (
            jax.tree.map(pick, trial_params, params),
            jax.tree.map(pick, trial_state, opt_state),
            jax.tree.map(pick, trial, best),
            pick(trial_residual, residual),
            tried + 1,
            accepted + better.astype(accepted.dtype),
            jnp.where(better, rate, rate / 2),
        )

    def scan_step(carry, _):
        # once rtol is met the remaining steps do no work
        carry = lax.cond(carry[3] <= rtol, lambda c: c, outer_step, carry)
        return carry, carry[3]

    zero_count = jnp.asarray(0, jnp.int32)
    initial = (
        parameters,
        optimiser_state,
        best,
        residual,
        zero_count,
        zero_count,
        rate,
    )
    final, history = lax.scan(scan_step, initial, None, length=max_outer_steps)
    params, _, best, residual, tried, accepted, _ = final
    return eqx.combine(params, static), best, residual, tried, accepted, history


@eqx.filter_jit
def gp_solve(
    equation: Callable,
    boundary: Sequence[float] | Array,
    domain: tuple[float, float],
    num_points: int,
    *,
    derivatives: tuple[int, ...] = (2,),
    kernel: AbstractStationaryKernel | None = None,
    num_components: int = 4,
    precision: float | None = None,
    max_outer_steps: int = 20,
    kernel_steps: int = 50,
    learning_rate: float = 1e-2,
    newton_steps: int = 30,
    spectrum_steps: int = 1000,
    rtol: float = 0.0,
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
            $t = (x - a)/(b - a)$; default ``initial_spectral_mixture`` of the
            residual of u = 0 (the source).
        num_components: components of the default mixture (one at frequency 0).
        precision: $\lambda$; default 1e12 (float64), 1e6 (float32).
        max_outer_steps: kernel updates (each ``kernel_steps`` Adam steps then
            a solve); 0 solves once with the starting kernel.
        learning_rate: Adam's step in the unit-interval parameters.
        newton_steps: Gauss-Newton steps per solve at most.
        spectrum_steps: Adam steps of the reported spectrum's fit to the
            final values; 0 reports the solve's kernel.
        rtol: stop once the midpoint residual is below this (0: run the
            whole budget); if it is still above after the budget, the
            result is ``RESULTS.residual_above_rtol``.
        throw: raise if a solve did not converge.

    Returns:
        A ``GPSolution``: values on the grid, a callable for any point, the
        learnt spectrum, stats and result.

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
    dtype = jnp.result_type(*(jnp.asarray(v) for v in boundary), float)
    boundary_values = jnp.asarray(boundary, dtype)
    derivatives = tuple(derivatives)
    _check_inputs(domain, num_points, derivatives, boundary_values)
    grid = jnp.linspace(
        jnp.asarray(domain[0], dtype), jnp.asarray(domain[1], dtype), num_points
    )
    if precision is None:
        precision = _DEFAULT_PRECISION[jnp.dtype(dtype)]
    length = grid[-1] - grid[0]
    if kernel is None:
        zeros = [jnp.zeros_like(grid) for _ in range(len(derivatives) + 1)]
        source = jax.vmap(equation)(grid, *zeros)
        kernel = initial_spectral_mixture(source.astype(dtype), num_components)
    kernel = _astype(kernel, dtype)

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

    nugget = _LIKELIHOOD_NUGGET[jnp.dtype(dtype)]
    kernel, best, residual, tried, accepted, history = _alternate(
        kernel,
        solve,
        midpoint_residual,
        lambda k, target: _negative_log_likelihood(k, target, nugget),
        max_outer_steps,
        kernel_steps,
        learning_rate,
        rtol,
    )
    values, coefficients, steps, converged = best
    likelihood_kernel = fit_spectrum(
        kernel, values, _negative_log_likelihood, spectrum_steps
    )
    frequencies, weights = reported_spectrum(likelihood_kernel, length)
    values, result, stats = _result_and_stats(
        values, converged, throw, steps, residual, rtol, tried, accepted, history
    )
    return GPSolution(
        grid, values, kernel, coefficients, frequencies, weights, result, stats
    )


def reported_spectrum(kernel, length):
    """(frequencies in cycles per unit length of x, weights), strongest
    first; components at the weight floor are reported with weight 0."""
    frequencies, weights = kernel.spectrum()
    weights = jnp.where(weights > _WEIGHT_FLOOR * 10 * jnp.max(weights), weights, 0.0)
    order = jnp.argsort(-weights)
    return jnp.abs(frequencies[order]) / length, weights[order]


def _result_and_stats(
    values, converged, throw, steps, residual, rtol, tried, accepted, history
):
    """The result code (raising if asked) and the stats both solvers report.
    A residual left above a requested ``rtol`` is a failure: a kernel that
    cannot represent the solution converges to a wrong answer, and this
    residual is what shows it."""
    result = RESULTS.where(
        converged,
        RESULTS.where(
            (rtol <= 0) | (residual <= rtol),
            RESULTS.successful,
            RESULTS.residual_above_rtol,
        ),
        RESULTS.newton_max_steps_reached,
    )
    if throw:
        values = result.error_if(values, result != RESULTS.successful)
    stats = {
        "num_outer_steps": tried,
        "num_accepted": accepted,
        "num_newton_steps": steps,
        "residual_norm": residual,
        "residual_history": history,
    }
    return values, result, stats


def _floor_weights(params):
    """Clip log-weights at a floor below the largest (pruned, still finite);
    a tuple of kernels (one per dimension) is clipped factor by factor."""
    if isinstance(params, tuple):
        return tuple(_floor_weights(p) for p in params)
    if getattr(params, "log_weights", None) is None:
        return params
    log_weights = params.log_weights
    floor = jnp.max(log_weights) + jnp.log(_WEIGHT_FLOOR)
    return eqx.tree_at(lambda k: k.log_weights, params, jnp.maximum(log_weights, floor))


def _astype(tree, dtype):
    return jax.tree.map(
        lambda leaf: leaf.astype(dtype) if eqx.is_inexact_array(leaf) else leaf, tree
    )
