"""Kernels for orders below the Debye threshold.

- ``log_gamma_1p``: log Gamma(1 + v) for 0 <= v < ~30, exact to a few ulp in
  absolute terms near its zeros at v = 0 and v = 1 (XLA's lgamma loses ~14 ulp
  there).
- ``power_series_i``: I_v(x) = (x/2)^v / Gamma(v+1) sum_k (x^2/4)^k / (k! (v+1)_k)
  (DLMF 10.25.2), every term positive, so no cancellation.
- ``temme_k``: K_mu and K_{mu+1} for |mu| <= 1/2 by Temme's series (x <= 0.1) or
  the trapezoidal rule on the integral representation (x > 0.1), then forward
  recurrence, which is stable for K (Temme 1975, J. Comput. Phys. 19;
  Trefethen & Weideman 2014, SIAM Review 56, for the trapezoidal rule).
"""

import jax
import jax.numpy as jnp
import numpy as np

from ._constants import RECIPROCAL_GAMMA_TAYLOR
from ._fixed_loop import fixed_loop
from ._precision import accurate_log1p, horner, kernel_parameters


def reciprocal_gamma_parts(mu, params):
    """gam1 = (1/G(1-mu) - 1/G(1+mu)) / (2 mu), gam2 = (1/G(1-mu) + 1/G(1+mu)) / 2,
    and 1/Gamma(1 + mu) - 1, from the Taylor series of 1/Gamma(1 + mu)."""
    coefficients = RECIPROCAL_GAMMA_TAYLOR[: params.reciprocal_gamma_terms]
    mu2 = mu * mu
    odd = horner(coefficients[1::2], mu2)
    even_tail = horner(coefficients[2::2], mu2) * mu2
    gam1 = -odd
    gam2 = 1.0 + even_tail
    reciprocal_minus_one = mu * odd + even_tail
    return gam1, gam2, reciprocal_minus_one


_MAX_LOG_GAMMA_ORDER = 40


def log_gamma_1p(v, *, unroll: bool = True):
    """log Gamma(1 + v) for 0 <= v <= 40 with small absolute error near v = 0, 1."""
    params = kernel_parameters(v.dtype)
    n = jnp.round(v)
    mu = v - n
    _, _, reciprocal_minus_one = reciprocal_gamma_parts(mu, params)
    result = -accurate_log1p(reciprocal_minus_one)
    # Gamma(1 + n + mu) = Gamma(1 + mu) prod_{j=1..n} (j + mu); the j = 1 factor
    # goes through log1p so that log Gamma(2 + mu) keeps its accuracy at mu ~ 0.
    result = result + jnp.where(n >= 1, accurate_log1p(mu), 0.0)

    def multiply(j, product):
        return jnp.where(n >= j, product * (j + mu), product)

    product = fixed_loop(
        2,
        _MAX_LOG_GAMMA_ORDER + 1,
        multiply,
        jnp.ones_like(v),
        unroll_on_accelerators=unroll,
    )
    return result + jnp.log(product)


_NORMAL_WITH_MARGIN = {
    name: float(np.finfo(name).smallest_normal) * 2.0**20
    for name in ("float32", "float64")
}


def _log_series_prefactor(v, x, params, unroll):
    """log((x/2)^v / Gamma(v + 1)) for 0 <= v < debye_order, 0 < x <= 20.

    v log(x/2) and log Gamma(v + 1) are each up to ~25 at the top of the
    range and nearly cancel where log I_v(x) ~ 0; their separate roundings
    cost ~15 ulp there. Instead, with v = n + mu, the integer part is a product
    prod_j (x/2)/(j + mu) formed in linear form (relative error ~n/2 ulp)
    and logged once; only the small parts mu log(x/2) and log Gamma(1 + mu)
    remain. Where (x/2)^n would underflow, log I is far from 0 and the direct
    form is as accurate."""
    n = jnp.round(v)
    mu = v - n
    half_x = 0.5 * x
    log_half_x = jnp.log(half_x)
    _, _, reciprocal_minus_one = reciprocal_gamma_parts(mu, params)
    log_gamma_mu = -accurate_log1p(reciprocal_minus_one)

    def multiply(j, state):
        numerator, denominator = state
        active = n >= j
        return (
            jnp.where(active, numerator * half_x, numerator),
            jnp.where(active, denominator * (j + mu), denominator),
        )

    one = jnp.ones_like(x)
    numerator, denominator = fixed_loop(
        1, params.debye_order + 1, multiply, (one, one), unroll_on_accelerators=unroll
    )
    # (x/2)^n and its quotient by prod (j + mu) must both stay normal numbers
    # (with room for their rounding): a subnormal quotient loses bits, and
    # where the backend flushes subnormals its log is -inf.
    quotient = numerator / denominator
    normal = (numerator > _NORMAL_WITH_MARGIN[x.dtype.name]) & (
        quotient > _NORMAL_WITH_MARGIN[x.dtype.name]
    )
    linear = jnp.log(jnp.where(normal, quotient, 1.0)) + mu * log_half_x - log_gamma_mu
    direct = v * log_half_x - log_gamma_1p(v, unroll=unroll)
    return jnp.where(normal, linear, direct)


@jax.custom_jvp
def _reciprocal(denominator):
    """1 / denominator, differentiable to any order for denominators whose
    square overflows or underflows."""
    return 1.0 / denominator


@_reciprocal.defjvp
def _reciprocal_jvp(primals, tangents):
    # The default rule forms denominator^-2, which underflows to zero for the
    # series' denominators (up to 1e191) and drops the denominator's tangent;
    # (tangent / denominator) / denominator keeps every factor in range. The
    # rule calls _reciprocal again, so derivatives of every order stay exact.
    (denominator,), (denominator_dot,) = primals, tangents
    inverse = _reciprocal(denominator)
    return inverse, -(denominator_dot * inverse) * inverse


@jax.custom_jvp
def _divide(numerator, denominator):
    """numerator / denominator, differentiable to any order where the
    denominator's square leaves the float range (the default rule forms
    denominator^-2: 0 * inf at a tiny denominator)."""
    return numerator / denominator


@_divide.defjvp
def _divide_jvp(primals, tangents):
    (numerator, denominator), (numerator_dot, denominator_dot) = primals, tangents
    quotient = _divide(numerator, denominator)
    return quotient, _divide(numerator_dot - quotient * denominator_dot, denominator)


def _divide_both(a, b, denominator):
    """(a / denominator, b / denominator) with one reciprocal."""
    inverse = _reciprocal(denominator)
    return a * inverse, b * inverse


def power_series_i(v, x, *, scaled: bool, unroll: bool = True):
    """(log I_v(x), log(I_{v+1}(x)/I_v(x)), I_{v+1}(x)/I_v(x)) by the power series, 0 < x <= 20."""
    params = kernel_parameters(x.dtype)
    quarter_x2 = 0.25 * x * x
    num_terms = params.series_terms - 1
    block = params.series_block
    if num_terms % block:
        raise ValueError("series_terms - 1 must be a multiple of series_block")

    # Both series (orders v and v + 1) by Horner's rule from the last term,
    # S = 1 + a/(1 (v+1)) (1 + a/(2 (v+2)) (1 + ...)), carried as fractions
    # N/D over the common denominators k (v+k)(v+k+1): every term is
    # positive, so this is as accurate as the term-by-term sum, and it needs
    # no division per term.
    def add_block(b, state):
        def add_term(i, state):
            numerator, numerator_next, denominator = state
            k = jnp.asarray(num_terms - b * block - i, x.dtype)
            rising = (v + k) * (v + k + 1.0)
            term_denominator = k * rising
            scaled_denominator = denominator * term_denominator
            numerator = scaled_denominator + quarter_x2 * (v + k + 1.0) * numerator
            numerator_next = scaled_denominator + quarter_x2 * (v + k) * numerator_next
            return numerator, numerator_next, scaled_denominator

        # No division inside the block, so its loop may be rolled: traced term
        # by term, the 43 float64 terms were ~1,300 operations under jvp and
        # most of the compile time of the series.
        numerator, numerator_next, denominator = fixed_loop(
            0, block, add_term, state, unroll_on_accelerators=unroll
        )
        numerator, numerator_next = _divide_both(numerator, numerator_next, denominator)
        return numerator, numerator_next, jnp.ones_like(x)

    one = jnp.ones_like(x)
    total, total_next, _ = fixed_loop(
        0,
        num_terms // block,
        add_block,
        (one, one, one),
        unroll_on_accelerators=unroll,
    )
    log_i = _log_series_prefactor(v, x, params, unroll) + jnp.log(total)
    if scaled:
        log_i = log_i - x
    ratio = 0.5 * x / (v + 1.0) * total_next / total
    return log_i, jnp.log(ratio), ratio


def temme_k(v, x, *, scaled: bool, unroll: bool = True):
    """(log K_v(x), log(K_{v+1}(x)/K_v(x)), K_{v+1}(x)/K_v(x)) for 0 <= v < debye_order.

    0 < x < inf; the linear ratio overflows to inf only for x below ~1e-308 * v.
    """
    params = kernel_parameters(x.dtype)
    n = jnp.round(v)
    mu = v - n
    small = x <= params.temme_max_x
    # Each region's kernel runs on a clamped copy of x so that neither leaks
    # inf or NaN into the other's lanes (or their gradients).
    log_k_mu_small, q_small = _temme_series(
        mu, jnp.where(small, x, 1.0), params, unroll
    )
    xl = jnp.where(small, 1.0, x)
    log_kve_mu_large, q_large = _trapezoid_k(mu, xl, params, unroll)
    q = jnp.where(small, q_small, q_large)
    product, q, log_scale_steps = _recur_up(n, mu, x, q, params, unroll)

    log_k_small = log_k_mu_small + jnp.log(product) + log_scale_steps
    if scaled:
        log_k_small = log_k_small + x
        log_k_large = log_kve_mu_large + jnp.log(product) + log_scale_steps
    else:
        # Below x ~ 30 K_v itself is representable: forming it in linear form
        # before the single log keeps the absolute error near log K = 0 small.
        linear = jnp.exp(log_kve_mu_large - xl) * product
        log_k_large = jnp.where(
            xl < params.linear_k_max_x,
            jnp.log(linear) + log_scale_steps,
            log_kve_mu_large - xl + jnp.log(product) + log_scale_steps,
        )
    log_k = jnp.where(small, log_k_small, log_k_large)
    ratio = q / x
    log_ratio = jnp.where(jnp.isfinite(ratio), jnp.log(ratio), jnp.log(q) - jnp.log(x))
    return log_k, log_ratio, ratio


def _temme_series(mu, xs, params, unroll):
    """(log K_mu(x), x K_{mu+1}(x) / K_mu(x)) for |mu| <= 1/2 by Temme's
    series, x <= temme_max_x."""
    mu2 = mu * mu
    gam1, gam2, reciprocal_minus_one = reciprocal_gamma_parts(mu, params)
    one_over_gamma_plus = 1.0 + reciprocal_minus_one  # 1/Gamma(1 + mu)
    one_over_gamma_minus = gam2 + mu * gam1  # 1/Gamma(1 - mu)
    log_two_over_x = jnp.log(2.0) - jnp.log(xs)
    e = mu * log_two_over_x
    pimu = jnp.pi * mu
    # pi mu / sin(pi mu) and sinh(e)/e, both even with value 1 at 0.
    fact = jnp.where(
        jnp.abs(pimu) < 1e-4,
        1.0 + pimu * pimu / 6.0,
        pimu / jnp.sin(jnp.where(pimu == 0, 1.0, pimu)),
    )
    fact2 = jnp.where(
        jnp.abs(e) < 1e-4, 1.0 + e * e / 6.0, jnp.sinh(e) / jnp.where(e == 0, 1.0, e)
    )
    ff = fact * (gam1 * jnp.cosh(e) + gam2 * fact2 * log_two_over_x)
    exp_e = jnp.exp(e)
    pk = 0.5 * exp_e / one_over_gamma_plus
    qk = 0.5 / (exp_e * one_over_gamma_minus)
    quarter_x2 = 0.25 * xs * xs

    def add_term(i, state):
        ff, ck, pk, qk, total, total1 = state
        i = jnp.asarray(i, xs.dtype)
        ff = (i * ff + pk + qk) / (i * i - mu2)
        ck = ck * quarter_x2 / i
        pk = pk / (i - mu)
        qk = qk / (i + mu)
        return ff, ck, pk, qk, total + ck * ff, total1 + ck * (pk - i * ff)

    # A loop rather than terms traced one by one: each term has four
    # divisions, and traced out under jvp the series alone took 1.4 s to
    # compile on CPU.
    state = (ff, jnp.ones_like(xs), pk, qk, ff, pk)
    *_, total, total1 = fixed_loop(
        1, params.temme_terms, add_term, state, unroll_on_accelerators=unroll
    )
    return jnp.log(total), 2.0 * total1 / total


def _trapezoid_k(mu, xl, params, unroll):
    """(log(K_mu(x) e^x), x K_{mu+1}(x) / K_mu(x)) for |mu| <= 1/2 by the
    trapezoidal rule, x > temme_max_x.

    K_nu(x) e^x = int_0^inf exp(-x (cosh t - 1)) cosh(nu t) dt. The integrand
    is entire and decays doubly exponentially, so the rule converges
    geometrically in 1/h; the step shrinks like 1/sqrt(x) to resolve the
    peak of width ~ 1/sqrt(x). All terms are positive: no cancellation.
    """
    step = jnp.minimum(params.trapezoid_step, params.trapezoid_width / jnp.sqrt(xl))
    growth_mu = jnp.exp(mu * step)
    # sinh and cosh of half the node advance by the addition theorems, so each
    # node costs one exp (the weight) instead of three transcendentals.
    half_sinh_step = jnp.sinh(0.5 * step)
    half_cosh_step = jnp.cosh(0.5 * step)

    def add_node(j, state):
        power_mu, half_sinh, half_cosh, total0, total1 = state
        power_mu = power_mu * growth_mu
        half_sinh, half_cosh = (
            half_sinh * half_cosh_step + half_cosh * half_sinh_step,
            half_cosh * half_cosh_step + half_sinh * half_sinh_step,
        )
        # (2 sinh) (x sinh): 2 x overflows for x near the largest float
        weight = jnp.exp(-(2.0 * half_sinh) * (xl * half_sinh))
        inverse_mu = 1.0 / power_mu
        cosh_mu = 0.5 * (power_mu + inverse_mu)
        sinh_mu = 0.5 * (power_mu - inverse_mu)
        cosh_node = 1.0 + 2.0 * half_sinh * half_sinh
        sinh_node = 2.0 * half_sinh * half_cosh
        # cosh((mu + 1) t) = cosh(mu t) cosh t + sinh(mu t) sinh t
        cosh_mu1 = cosh_mu * cosh_node + sinh_mu * sinh_node
        return (
            power_mu,
            half_sinh,
            half_cosh,
            total0 + weight * cosh_mu,
            total1 + weight * cosh_mu1,
        )

    half = 0.5 * jnp.ones_like(xl)
    zero = jnp.zeros_like(xl)
    _, _, _, total0, total1 = fixed_loop(
        1,
        params.trapezoid_nodes,
        add_node,
        (jnp.ones_like(xl), zero, jnp.ones_like(xl), half, half),
        unroll_on_accelerators=unroll,
    )
    return jnp.log(step * total0), xl * (total1 / total0)


def _recur_up(n, mu, x, q, params, unroll):
    """From q_mu = x K_{mu+1} / K_mu up to q_v, v = n + mu, by the forward
    recurrence q_{nu+1} = x^2 / q_nu + 2 (nu + 1) (stable for K).

    Returns (prod K_{nu+1}/K_nu over the n steps, each divided by
    max(x, 1); q_v; n log(max(x, 1) / x)): the product is kept in linear
    form, the scale keeping it in range, and the scale's log added back.
    """
    scale = jnp.maximum(x, 1.0)

    def step_up(j, state):
        product, q = state
        active = j < n
        product = jnp.where(active, product * (q / scale), product)
        # x / q is ~1 where x is tiny, but x^2 (in the default rule's
        # q^-2) underflows from x ~ 1e-154: the order derivative was -inf
        q = jnp.where(active, x * _divide(x, q) + 2.0 * (mu + j + 1.0), q)
        return product, q

    product, q = fixed_loop(
        0,
        params.debye_order,
        step_up,
        (jnp.ones_like(x), q),
        unroll_on_accelerators=unroll,
    )
    return product, q, n * (jnp.log(scale) - jnp.log(x))
