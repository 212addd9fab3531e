"""Maximum-likelihood fit of the von Mises-Fisher distribution."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, ArrayLike, Float

from .._results import RESULTS
from ._log_bessel import log_iv_ratio
from ._von_mises_fisher import (
    VonMisesFisher,
    _check_dimension,
    _concretely_true,
    _float_input,
    _off_sphere,
)


class ConcentrationSolution(eqx.Module):
    r"""What ``concentration_from_mean_length`` returns.

    Attributes:
        value: $\kappa$, elementwise, the shape of the mean lengths given.
        result: ``RESULTS.successful``, or
            ``RESULTS.concentration_max_steps_reached`` when Newton's
            iteration did not converge for every element.
        stats: ``"num_steps"``, the Newton steps taken (the polishing step
            included).
    """

    value: Float[Array, "..."]
    result: RESULTS
    stats: dict[str, Array]


class VonMisesFisherFit(eqx.Module):
    """What ``fit_vmf`` returns.

    Attributes:
        value: the fitted ``VonMisesFisher`` (``value.mean_direction``,
            ``value.concentration``).
        result: ``RESULTS.successful``, or
            ``RESULTS.concentration_max_steps_reached`` when Newton's
            iteration for $\\kappa$ did not converge.
        stats: ``"num_steps"`` (Newton steps) and
            ``"mean_resultant_length"`` ($\bar R$, the sufficient statistic).
    """

    value: VonMisesFisher
    result: RESULTS
    stats: dict[str, Array]


def concentration_from_mean_length(
    d: int, mean_length: ArrayLike, *, max_steps: int = 60
) -> ConcentrationSolution:
    r"""Solve $A_d(\kappa) = \bar R$ for $\kappa$ (elementwise).

    Newton's method on $\log\kappa$ for $\log A_d(\kappa) - \log\bar R$, with
    $A_d = \exp(\texttt{log\_iv\_ratio}(d/2-1, \kappa))$ and
    $A_d' = 1 - A_d^2 - (d-1)A_d/\kappa$, started from Banerjee et al.'s
    approximation $\bar R(d - \bar R^2)/(1 - \bar R^2)$. $\bar R = 0$ gives 0,
    $\bar R = 1$ gives inf, outside [0, 1] gives nan.

    Accuracy: the condition number of $\kappa$ in $\bar R$ is about
    $2\kappa/(d-1)$ for $\kappa \gg d$, so $\kappa$ is recovered to about
    $\epsilon\,2\kappa/(d-1)$ relative: 1e-10 or better for
    $\kappa/(d-1) \le 2\cdot10^5$ in float64.

    Derivatives (forward and reverse mode) by the implicit function theorem,
    not through Newton's loop: $d\kappa/d\bar R = 1/A_d'(\kappa)$ ($d$ at
    $\kappa = 0$, inf at $\bar R = 1$).

    Args:
        d: the dimension, a Python int >= 2 (a value in the compiled
            computation: one compilation serves every $d$).
        mean_length: $\bar R$, any shape.
        max_steps: limit on Newton steps.

    Returns:
        ``ConcentrationSolution(value, result, stats)``, ``value`` the
        concentrations.
    """
    d = _check_dimension(d)
    r = _float_input(mean_length)
    d = jnp.asarray(d, r.dtype)
    solution = _concentration(d, lax.stop_gradient(r), max_steps)
    return eqx.tree_at(
        lambda s: s.value, solution, _with_implicit_slope(solution.value, d, r)
    )


@jax.custom_jvp
def _with_implicit_slope(kappa, d, r):
    """kappa, whose derivative in r is 1 / A_d'(kappa) (kappa and d are
    constants: kappa solves A_d(kappa) = r)."""
    return kappa


@_with_implicit_slope.defjvp
def _with_implicit_slope_jvp(primals, tangents):
    kappa, d, r = primals
    _, _, r_dot = tangents
    safe = jnp.where((kappa > 0) & (kappa < jnp.inf), kappa, 1.0)
    a = jnp.exp(log_iv_ratio(d / 2 - 1, safe))
    derivative = (1.0 - a) * (1.0 + a) - (d - 1.0) * a / safe
    slope = jnp.where(
        kappa == 0, d, jnp.where(kappa == jnp.inf, jnp.inf, 1.0 / derivative)
    )
    return kappa, slope * r_dot


@eqx.filter_jit
def _concentration(d: Array, r: Array, max_steps: int) -> ConcentrationSolution:
    nu = d / 2 - 1
    inside = (r > 0) & (r < 1)
    rs = jnp.where(inside, r, 0.5)
    log_r = jnp.log(rs)
    kappa0 = rs * (d - rs * rs) / ((1.0 - rs) * (1.0 + rs))
    eps = jnp.finfo(r.dtype).eps

    def step(state):
        log_kappa, _, steps = state
        kappa = jnp.exp(log_kappa)
        log_a = log_iv_ratio(nu, kappa)
        a = jnp.exp(log_a)
        # d log A / d log kappa = kappa A'/A
        slope = kappa * ((1.0 - a) * (1.0 + a) / a) - (d - 1.0)
        delta = (log_a - log_r) / jnp.where(slope > 0, slope, 1.0)
        delta = jnp.clip(delta, -2.0, 2.0)
        return log_kappa - delta, jnp.abs(delta), steps + 1

    def tolerance(log_kappa):
        # Rounding in log A_d moves log kappa by ~eps / (d log A / d log kappa),
        # which is ~ 2 kappa / (d - 1) for kappa >> d: stop at that noise floor.
        kappa = jnp.exp(log_kappa)
        return 16 * eps * jnp.maximum(1.0, 2 * kappa / (d - 1))

    def keep_going(state):
        log_kappa, change, steps = state
        return jnp.any(change > tolerance(log_kappa)) & (steps < max_steps)

    init = (jnp.log(kappa0), jnp.full_like(rs, jnp.inf), jnp.asarray(0))
    log_kappa, change, num_steps = lax.while_loop(keep_going, step, init)
    # One more step after the tolerance is met polishes the last ulp.
    converged = jnp.all(change <= tolerance(log_kappa))
    log_kappa, _, _ = step((log_kappa, change, 0))
    kappa = jnp.where(
        inside,
        jnp.exp(log_kappa),
        jnp.where(r == 0, 0.0, jnp.where(r == 1, jnp.inf, jnp.nan)),
    )
    result = RESULTS.where(
        converged, RESULTS.successful, RESULTS.concentration_max_steps_reached
    )
    return ConcentrationSolution(
        value=kappa, result=result, stats={"num_steps": num_steps + 1}
    )


def fit_vmf(
    x: Float[Array, "n d"], *, weights: Float[Array, " n"] | None = None
) -> VonMisesFisherFit:
    r"""Maximum-likelihood von Mises-Fisher fit to unit vectors.

    $\hat\mu = \sum_i w_i x_i / \|\sum_i w_i x_i\|$ and $\hat\kappa$ solves
    $A_d(\kappa) = \bar R = \|\sum_i w_i x_i\| / \sum_i w_i$ (see
    ``concentration_from_mean_length``). Works for any $d \ge 2$ (tested to
    32768) and $\kappa$ up to 1e6, where SciPy's fit returns $\kappa \approx 0$
    for $d \gtrsim 2048$.

    Rows that are not unit vectors (relative tolerance 1e-5, or 16 eps in
    float16) raise a ``ValueError`` where ``x`` is concrete, and give a nan
    fit under a transform, as ``scipy.stats.vonmises_fisher.fit`` refuses
    them. Sums are formed in at least float32 (float16 samples would
    overflow in the norm of the resultant). Differentiable in ``x`` and
    ``weights`` in forward and reverse mode (the concentration by the
    implicit function theorem).

    Args:
        x: samples, shape (n, d), rows of unit norm.
        weights: optional non-negative weights, shape (n,).

    Returns:
        ``VonMisesFisherFit(value, result, stats)``: ``value`` is the fitted
        ``VonMisesFisher``; ``result`` is ``RESULTS.successful`` unless
        Newton's iteration for $\kappa$ failed to converge.

    Example:
        >>> fit = numerics.fit_vmf(samples)
        >>> fit.value.mean_direction, fit.value.concentration

    References:
        Banerjee, Dhillon, Ghosh & Sra, "Clustering on the Unit Hypersphere
        using von Mises-Fisher Distributions", JMLR 6 (2005).
    """
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"x must have shape (n, d) with d >= 2, got {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(float)
    if weights is None:
        weights = jnp.ones(x.shape[0], x.dtype)
    weights = jnp.asarray(weights, x.dtype)
    if weights.shape != (x.shape[0],):
        raise ValueError(
            f"weights must have shape ({x.shape[0]},), got {weights.shape}"
        )
    off_sphere = jnp.any(_off_sphere(x))
    if _concretely_true(off_sphere):
        raise ValueError(
            "fit_vmf fits unit vectors; some rows of x are not (divide them by "
            "their norms)"
        )
    return _fit(x, weights, off_sphere)


@eqx.filter_jit
def _fit(x, weights, off_sphere):
    sum_dtype = x.dtype if jnp.finfo(x.dtype).bits >= 32 else jnp.float32
    resultant = weights.astype(sum_dtype) @ x.astype(sum_dtype)
    norm = jnp.linalg.norm(resultant)
    mean_direction = (resultant / norm).astype(x.dtype)
    # Identical rows give a norm equal to the weight's sum up to rounding,
    # which may exceed it by an ulp: R-bar above 1 is rounding here, since
    # every row is a unit vector.
    mean_length = jnp.minimum(norm / jnp.sum(weights.astype(sum_dtype)), 1.0)
    mean_length = jnp.where(off_sphere, jnp.nan, mean_length).astype(x.dtype)
    concentration = concentration_from_mean_length(x.shape[1], mean_length)
    return VonMisesFisherFit(
        value=VonMisesFisher(mean_direction, concentration.value),
        result=concentration.result,
        stats={
            "num_steps": concentration.stats["num_steps"],
            "mean_resultant_length": mean_length,
        },
    )
