"""What the interval and box Gaussian-process solvers share: kernel matrices
on uniform grids, the whitened basis, the pointwise linearisation of F and
the damped Gauss-Newton loop of the inner solve, the starting spectral
mixture read off a spectrum, the outer loop that alternates kernel fits and
solves, the reported spectrum, and the result code and stats. Names here are public inside ``pde.gp`` and
private to users."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jaxtyping import Array, Float

from ..._results import RESULTS, raise_if_failed
from ._gp_kernels import SpectralMixtureKernel

# Residual precision relative to the prior (after each block of rows is scaled
# to unit RMS row norm); 1e12 in float64 puts the PDE residual at ~1e-6 of the
# solution's prior scale, the float64 rounding floor of the whitened basis. In
# float32 the prior's shrinkage dominates below 1e5 and rounding above it
# (test problem: 0.12 at 1e4, 5.2e-3 at 1e5, 9.8e-3 at 1e6, 1.1e-2 at 1e8);
# 1e6 keeps a decade from the cliff.
DEFAULT_PRECISION = {jnp.dtype("float64"): 1e12, jnp.dtype("float32"): 1e6}
# Nugget of the marginal likelihood that fits the kernel to the current
# solution, relative to the mean prior variance (the likelihood needs a
# Cholesky factor; the solve itself never does).
LIKELIHOOD_NUGGET = {jnp.dtype("float64"): 1e-10, jnp.dtype("float32"): 1e-4}
# Mixture weights are not allowed below this fraction of the largest: such a
# component is pruned (reported with weight 0) but stays differentiable.
WEIGHT_FLOOR = 1e-12
# Spectral peaks of the source below this fraction of the strongest start as
# pruned components.
_PEAK_THRESHOLD = 1e-3
# A kernel update is kept only when it lowers the midpoint residual. Tried:
# accepting anything within 1.25x of the lowest lets the spectrum keep
# sharpening at the rounding floor, but the error then drifts up 2-4x (P5, A2).

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
    """A spectral mixture on the unit interval from the magnitude spectrum
    of samples on n uniform nodes: one component at frequency 0 (trends,
    boundary layers) and the others at the strongest peaks (those below
    ``_PEAK_THRESHOLD`` of the strongest start pruned), refined by parabolic
    interpolation of the log magnitude; bandwidths start at two bins."""
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
        [jnp.zeros((1,), dtype), jnp.where(valid, 0.0, jnp.log(WEIGHT_FLOOR))]
    ).astype(dtype)
    log_scales = jnp.full((num_components,), jnp.log(2.0), dtype)
    return SpectralMixtureKernel(log_weights, frequencies, log_scales)


def kernel_dtype(kernel):
    """The dtype of a kernel's (or a tuple of kernels') parameters."""
    leaves = [leaf for leaf in jax.tree.leaves(kernel) if eqx.is_inexact_array(leaf)]
    return leaves[0].dtype


def uniform_kernel_matrix(kernel, num_rows, num_nodes, order, shift=0.0):
    """$k^{(p)}((i + shift - j) h)$, h = 1 / (num_nodes - 1), for rows i and nodes j
    of the uniform unit grid: a Toeplitz matrix, so the kernel is evaluated
    at its num_rows + num_nodes - 1 distinct differences only."""
    dtype = kernel_dtype(kernel)
    offsets = np.arange(-(num_nodes - 1), num_rows)
    differences = jnp.asarray((offsets + shift) / (num_nodes - 1), dtype)
    values = kernel.derivative(differences, order)
    index = np.arange(num_rows)[:, None] - np.arange(num_nodes)[None, :] + num_nodes - 1
    return values[index]


def whitened_modes(eigenvalues, eigenvectors, cutoff):
    r"""The whitened basis of $K = Q\Lambda Q^T$ (eigenvalues ascending):
    ``values`` = $Q\Lambda^{1/2}$ (u at the nodes is ``values`` $\beta$ and
    the prior $U^TK^{-1}U$ is $|\beta|^2$), ``whitening`` = $Q\Lambda^{-1/2}$
    (the kernel coefficients are ``whitening`` $\beta$), and ``keep``: the
    modes above ``cutoff`` times the largest eigenvalue. The others are
    rounding and are zeroed in both."""
    keep = eigenvalues > cutoff * eigenvalues[-1]
    safe = jnp.where(keep, eigenvalues, 1.0)
    whitening = eigenvectors * jnp.where(keep, 1 / jnp.sqrt(safe), 0.0)[None, :]
    values = eigenvectors * jnp.where(keep, jnp.sqrt(safe), 0.0)[None, :]
    return values, whitening, keep


def linearise_pointwise(equation, args, shape=None):
    """F and its partials in every argument after x, point by point:
    ``args`` = (x, u, derivatives...), each batched along its first axis;
    with ``shape``, the residual and each partial reshaped to it."""
    residual = jax.vmap(equation)(*args)
    if shape is not None:
        residual = residual.reshape(shape)
    partials = jax.vmap(jax.grad(equation, argnums=tuple(range(1, len(args)))))(*args)
    if shape is not None:
        partials = [p.reshape(shape) for p in partials]
    return residual, partials


def gauss_newton(step, beta, max_steps, num_steps, *counters):
    r"""Damped Gauss-Newton on whitened coefficients from ``beta``.

    ``step(beta, *counters)`` returns (the new beta, the damping scale, the
    full step, *the updated counters). The iteration stops once the damped
    step is at most $100\sqrt\epsilon$ of the new beta (2-norms), or after
    ``max_steps`` steps. ``num_steps`` is the step counter's initial value,
    whose dtype the returned count keeps.

    Returns:
        (beta, num_steps, converged, *counters).
    """
    dtype = beta.dtype
    tolerance = 100 * jnp.finfo(dtype).eps ** 0.5

    def body(carry):
        beta, _, step_count, *counters = carry
        new_beta, scale, full_step, *counters = step(beta, *counters)
        size = jnp.linalg.norm(scale * full_step) / jnp.maximum(
            jnp.linalg.norm(new_beta), jnp.finfo(dtype).tiny
        )
        return (new_beta, size, step_count + 1, *counters)

    def not_converged(carry):
        _, size, step_count, *_ = carry
        return (size > tolerance) & (step_count < max_steps)

    beta, size, num_steps, *counters = lax.while_loop(
        not_converged,
        body,
        (beta, jnp.asarray(jnp.inf, dtype), num_steps, *counters),
    )
    return (beta, num_steps, size <= tolerance, *counters)


def astype(tree, dtype):
    """Every inexact array leaf of ``tree`` cast to ``dtype``."""
    return jax.tree.map(
        lambda leaf: leaf.astype(dtype) if eqx.is_inexact_array(leaf) else leaf, tree
    )


def floor_weights(params):
    """Clip log-weights at a floor below the largest (pruned, still finite);
    a tuple of kernels (one per dimension) is clipped factor by factor."""
    if isinstance(params, tuple):
        return tuple(floor_weights(p) for p in params)
    if getattr(params, "log_weights", None) is None:
        return params
    log_weights = params.log_weights
    floor = jnp.max(log_weights) + jnp.log(WEIGHT_FLOOR)
    return eqx.tree_at(lambda k: k.log_weights, params, jnp.maximum(log_weights, floor))


def kernel_steps(parameters, optimizer_state, static, loss, rates):
    """One Adam step on ``loss(kernel)`` per entry of ``rates`` (that step's
    learning rate), the kernel being ``eqx.combine(parameters, static)``."""
    optimizer = optax.adam(1.0)

    def step(state, rate):
        p, s = state
        gradient = jax.grad(lambda q: loss(eqx.combine(q, static)))(p)
        # optax mixes its int32 step count with floats
        with jax.numpy_dtype_promotion("standard"):
            updates, s = optimizer.update(gradient, s, p)
        updates = jax.tree.map(lambda u: rate * u, updates)
        return (floor_weights(optax.apply_updates(p, updates)), s), None

    (parameters, optimizer_state), _ = lax.scan(
        step, (parameters, optimizer_state), rates
    )
    return parameters, optimizer_state


def normalized(values):
    """``values`` scaled to unit RMS (the likelihood's target)."""
    return values / jnp.sqrt(jnp.mean(values**2) + jnp.finfo(values.dtype).tiny)


def fit_spectrum(kernel, values, likelihood, num_steps):
    """The kernel after ``num_steps`` Adam steps (cosine-decayed from
    2e-2 so that the last iterate has settled) on ``likelihood(kernel,
    normalized values, nugget)`` with the nugget ``_SPECTRUM_NUGGET``: the
    maximum-likelihood spectrum of the final solution. The outer loop keeps
    a kernel only when it lowers the PDE residual, which stops falling once
    the solve is at rounding level, so its kernel's frequencies stay where
    the first accepted updates left them (3.9e-4 off on Q1); the values
    themselves pin the frequencies."""
    if num_steps == 0:
        # a scan of length 0 still traces the likelihood's gradient
        return kernel
    parameters, static = eqx.partition(kernel, eqx.is_inexact_array)
    target = normalized(values)
    nugget = _SPECTRUM_NUGGET[jnp.dtype(values.dtype)]
    schedule = optax.cosine_decay_schedule(_SPECTRUM_LEARNING_RATE, max(num_steps, 1))
    # optax mixes its int32 step with Python floats
    with jax.numpy_dtype_promotion("standard"):
        rates = jax.vmap(schedule)(jnp.arange(num_steps)).astype(values.dtype)
    parameters, _ = kernel_steps(
        parameters,
        optax.adam(1.0).init(parameters),
        static,
        lambda k: likelihood(k, target, nugget),
        rates,
    )
    return eqx.combine(parameters, static)


class OuterLoop(eqx.Module):
    """What ``alternate`` returns: the kept kernel and its solve (the tuple
    that ``solve(kernel)`` returns), the midpoint residual of that solve,
    the outer steps tried and kept, and the residual after each step."""

    kernel: object
    solve: tuple
    residual_norm: Array
    num_steps: Array
    num_accepted: Array
    residual_history: Array


def alternate(
    kernel,
    solve,
    midpoint_residual,
    likelihood,
    max_outer_steps,
    num_kernel_steps,
    learning_rate,
    rtol,
) -> OuterLoop:
    """The outer loop shared by the interval and box solvers: ``num_kernel_steps``
    Adam steps on ``likelihood(kernel, normalized values)``, a solve with the
    new kernel, kept only if ``midpoint_residual`` went down (a rejected
    update halves the step, as a trust region would). ``solve(kernel)``
    returns (values, coefficients, ...). Stops doing work once the residual
    is at most ``rtol``."""
    best = solve(kernel)
    residual = midpoint_residual(kernel, best[1])
    zero_count = jnp.asarray(0, jnp.int32)
    if max_outer_steps == 0:
        # a scan of length 0 would still trace a second solve and the
        # likelihood's gradient (XLA drops the loop, but tracing it took
        # 0.9 of 2.0 s CPU for a 48 x 40 gp_solve_box)
        return OuterLoop(
            kernel,
            best,
            residual,
            zero_count,
            zero_count,
            jnp.zeros((0,), residual.dtype),
        )
    parameters, static = eqx.partition(kernel, eqx.is_inexact_array)
    # Adam is built with unit step and scaled by rate (halved on rejection)
    rate = jnp.asarray(learning_rate, residual.dtype)
    optimizer_state = optax.adam(1.0).init(parameters)

    def outer_step(carry):
        params, opt_state, best, residual, tried, accepted, rate = carry
        target = normalized(best[0])
        trial_params, trial_state = kernel_steps(
            params,
            opt_state,
            static,
            lambda k: likelihood(k, target),
            jnp.full(num_kernel_steps, rate),
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

    initial = (
        parameters,
        optimizer_state,
        best,
        residual,
        zero_count,
        zero_count,
        rate,
    )
    final, history = lax.scan(scan_step, initial, None, length=max_outer_steps)
    params, _, best, residual, tried, accepted, _ = final
    return OuterLoop(
        eqx.combine(params, static), best, residual, tried, accepted, history
    )


def reported_spectrum(kernel, length):
    """(frequencies in cycles per unit length of x, weights), strongest
    first; components at the weight floor are reported with weight 0."""
    frequencies, weights = kernel.spectrum()
    weights = jnp.where(weights > WEIGHT_FLOOR * 10 * jnp.max(weights), weights, 0.0)
    order = jnp.argsort(-weights)
    return jnp.abs(frequencies[order]) / length, weights[order]


def result_and_stats(
    value, converged, newton_steps, loop: OuterLoop, rtol, throw, entry_point
):
    """The result code (raising if asked) and the stats both solvers report.
    A residual left above a positive ``rtol`` is a failure: a kernel that
    cannot represent the solution converges to a wrong answer, and this
    residual is what shows it."""
    result = RESULTS.where(
        converged,
        RESULTS.where(
            (rtol <= 0) | (loop.residual_norm <= rtol),
            RESULTS.successful,
            RESULTS.residual_above_rtol,
        ),
        RESULTS.newton_max_steps_reached,
    )
    if throw:
        value = raise_if_failed(value, result, entry_point)
    stats = {
        "num_steps": loop.num_steps,
        "num_accepted": loop.num_accepted,
        "num_newton_steps": newton_steps,
        "residual_norm": loop.residual_norm,
        "residual_history": loop.residual_history,
    }
    return value, result, stats
