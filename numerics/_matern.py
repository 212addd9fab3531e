"""The logarithm of the normalised Matérn correlation,

    log M_nu(x),   M_nu(x) = 2^(1 - nu) / Gamma(nu) x^nu K_nu(x),   M_nu(0) = 1,

for nu > 0, x >= 0, with derivatives in x and nu that stay finite (and right)
at x = 0, where a hand-built x^nu K_nu(x) differentiates to 0 * inf.

M_nu(x) = E[exp(-x^2 / (4T))] for T ~ Gamma(nu, 1) (DLMF 10.32.10), so
0 < M <= 1 and log M <= 0, with log M ~ -x^2 / (4 (nu - 1)) near 0 for nu > 1.
Written as the sum (1 - nu) log 2 - log Gamma(nu) + nu log x + log K_nu(x),
the terms are large where the sum is small (x -> 0 and nu -> inf) and cancel.
Four regions avoid that:

- nu >= V0 (the Debye order: 20 in float64, 10 in float32): the uniform
  expansion of K_nu(nu z) with Gamma(nu) from the same expansion at z = 0,
  combined analytically so that no large terms remain;
- nu < 3/2 and x^2 < eps (subnormal x included): the leading terms of the
  small-x series in closed form, with the poles at nu = 1 cancelled;
- 3/2 <= nu < V0 and x small enough (up to x ~ 5 at nu ~ 20): the
  truncated small-x series of 1 - M, whose terms barely cancel;
- elsewhere: the sum above, on ``log_kv``, whose terms are moderate there.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, ArrayLike, Float

from ._debye import _alternating_sums, debye_polynomials
from ._fixed_loop import fixed_loop
from ._log_bessel import _is_symbolic_zero, _prepare
from ._log_bessel_kernels import log_k_and_ratio
from ._precision import hypot, kernel_parameters, returns_input_dtype
from ._region_sort import _MIN_SIZE, _grouped
from ._small_order import reciprocal_gamma_parts
from ._tiny_argument import exactly_zero, positive_subnormal, safe_log

_LOG_TWO = float(np.log(2.0))
# Below this |t|, expm1(t y)/t, log1p(t)/t and atanh(t)/t are their Taylor
# polynomials to the t^3 term (the first dropped term, ~ t^4 / 5, is below
# 2e-17 relative).
_SERIES_SWITCH = 1e-4


# The truncated series of ``_series_form`` is used where
# log10(x^2 / 4) <= alpha - beta / nu: there the terms it drops are below
# eps / 16 in absolute value. Fitted (with margin) to the largest such x^2/4
# found against mpmath for nu in [1.5, 20), near-integer orders included
# (float64: 10^-11.75 at nu = 1.5, 10^-4 at 4, 10^-0.75 at 10, 10^0.75 at
# 19.9; float32: 10^-5.75, 10^-1.75, 10^0.25).
_SERIES_RANGE = {
    np.dtype("float64"): (1.5, 22.5),
    np.dtype("float32"): (1.0, 11.5),
}


def _regions(nu, x):
    """Masks of the interior and of the four regions (Debye, tiny x at
    nu < 3/2, series at 3/2 <= nu < V0, general), in ``_FORMS`` order."""
    params = kernel_parameters(x.dtype)
    positive = (x > 0) | positive_subnormal(x)
    inside = positive & (x < jnp.inf) & (nu > 0) & (nu < jnp.inf)
    debye = inside & (nu >= params.debye_order)
    # x * x < eps: the series' terms beyond the closed forms' are below
    # eps relative (x * x underflows to 0 for the subnormals, which are in).
    tiny = _tiny_x(x)
    low_order = inside & ~debye & (nu < 1.5)
    small = low_order & tiny
    alpha, beta = _SERIES_RANGE[np.dtype(x.dtype)]
    safe_nu = jnp.where(inside, nu, 1.0)
    log_a = 2.0 * (safe_log(jnp.where(inside, x, 1.0)) - _LOG_TWO)
    in_range = log_a <= float(np.log(10.0)) * (alpha - beta / safe_nu)
    series = inside & ~debye & ~low_order & (tiny | in_range)
    general = inside & ~debye & ~small & ~series
    return inside, debye, small, series, general


def _clamp(mask, nu, x, nu_default, x_default):
    return jnp.where(mask, nu, nu_default), jnp.where(mask, x, x_default)


def _expm1_over(t, y):
    """expm1(t y) / t, with its limit y at t = 0."""
    u = t * y
    small = jnp.abs(u) < _SERIES_SWITCH
    safe_t = jnp.where(small, 1.0, t)
    series = y * (1.0 + u * (0.5 + u * (1.0 / 6.0 + u / 24.0)))
    return jnp.where(small, series, jnp.expm1(jnp.where(small, 0.0, u)) / safe_t)


def _scaled_expm1_over(scale, log_scale, log_product, t, y):
    """scale expm1(t y) / t for scale = exp(log_scale) > 0, given
    log_product = log_scale + t y formed by the caller without the rounding
    of a large log x (as (2 nu - 1) log(x/2) + ...). Where t y is large,
    as (exp(log_product) - scale) / t: finite where the result is (the
    scale may underflow while exp(t y) overflows, as for a^e with a tiny),
    and with the rounding of log_product rather than of t y, whichever is
    smaller; also where the scale is subnormal (flushed to 0 by some
    backends) and |t y| > 1/2 (t is then away from 0). Elsewhere with the
    scale itself, which (x/2 or x^2/4 formed directly) carries none of the
    rounding of exp(log_scale), or exp(log_scale) where it is subnormal."""
    u = t * y
    tiny_scale = scale < float(np.finfo(scale.dtype).smallest_normal)
    big = (
        (u > 600.0)
        | (tiny_scale & (jnp.abs(u) > 0.5))
        | ((u > 1.0) & (jnp.abs(log_product) < u))
    )
    safe_t = jnp.where(big, t, 1.0)
    factor = jnp.where(tiny_scale, jnp.exp(log_scale), scale)
    direct = factor * _expm1_over(t, jnp.where(big, 0.0, y))
    # exp(log_product) overflows only where the result itself would
    combined = (
        jnp.exp(jnp.where(big, log_product, 0.0)) - jnp.where(big, factor, 0.0)
    ) / safe_t
    return jnp.where(big, combined, direct)


def _log1p_over(t):
    """log1p(t) / t, with its limit 1 at t = 0."""
    small = jnp.abs(t) < _SERIES_SWITCH
    safe_t = jnp.where(small, 1.0, t)
    series = 1.0 + t * (-0.5 + t * (1.0 / 3.0 - t / 4.0))
    return jnp.where(small, series, jnp.log1p(safe_t) / safe_t)


def _atanh_over(y):
    """atanh(y) / y, with its limit 1 at y = 0."""
    small = jnp.abs(y) < _SERIES_SWITCH
    safe_y = jnp.where(small, 0.5, y)
    series = 1.0 + y * y * (1.0 / 3.0 + y * y / 5.0)
    return jnp.where(small, series, jnp.arctanh(safe_y) / safe_y)


def _log_gamma_odd_quotient(t):
    """(log Gamma(1 - t) - log Gamma(1 + t)) / t for |t| <= 1/2; 2 gamma at 0.

    With 1/Gamma(1 -+ t) = gam2 +- t gam1 (Temme's gam1, gam2, from the
    Taylor series of 1/Gamma(1 + t)) the difference is
    log((1 - y) / (1 + y)) = -2 atanh(y), y = t gam1 / gam2: no cancellation
    and no division by t."""
    params = kernel_parameters(t.dtype)
    gam1, gam2, _ = reciprocal_gamma_parts(t, params)
    ratio = gam1 / gam2
    return -2.0 * ratio * _atanh_over(t * ratio)


def _tiny_parts(nu, x):
    """(log M, d/dx log M) where x^2 < eps, for every nu > 0 (the value for
    nu < 3/2, the slope for nu < V0): the closed forms from the small-x series

        M = 0F1(; 1 - nu; a) - c a^nu 0F1(; 1 + nu; a),
        a = x^2 / 4,  c = Gamma(1 - nu) / Gamma(1 + nu)

    (DLMF 10.27.4 and 10.25.2 with Gamma(nu) Gamma(1 - nu) = pi / sin(pi nu)),
    kept to the terms that matter at a < eps / 4 (what is dropped is O(a^2)
    or O(a) relative):

    - nu <= 1/2: M = M0 (1 + a/(1+nu)) + 2 nu a / (1 - nu^2) with
      1 - M0 = c a^nu = exp(u), u = nu (log a + H(nu)), H the quotient of
      ``_log_gamma_odd_quotient``: all terms positive, M0 = -expm1(u)
      relative accurate as nu -> 0 (where M -> 0), and 1 - M formed
      directly where M is near 1;
    - 1/2 < nu < 3/2: the poles of a/(nu - 1) and c a^nu at nu = 1 cancel:
      1 - M = -a E, E = expm1(e L) / e, e = nu - 1,
      L = log a + H(e) - log1p(e)/e (at nu = 1, 1 - M = -a (log a + 2 gamma - 1));
    - 3/2 <= nu < 5/2 (slope only; the value is ``_series_form``'s): the
      poles of the a^2 term and c a^nu at nu = 2 cancel the same way, with
      d = nu - 2: 1 - M = a / (nu - 1) + a^2 E2 / (2 (1 + d)),
      E2 = expm1(d L2) / d, L2 = log a + H(d) - log1p(d)/d - log1p(d/2)/d;
      it changes the slope by up to 1e-8 relative at nu = 3/2;
    - nu >= 5/2 (slope only): d/dx log M = -x / (2 (nu - 1)).

    log a is 2 log x - log 4 with log x from the bits of x, so subnormal x
    keeps its accuracy; slopes that are themselves subnormal may flush to
    0."""
    log_x = safe_log(x)
    log_half_x = log_x - _LOG_TWO
    log_a = 2.0 * log_half_x
    # formed directly, not as exp(log a) (whose error is |log a| eps); they
    # underflow, flushed or not, only where they are negligible
    half_x = 0.5 * x
    a = half_x * half_x

    low = nu <= 0.5
    middle = (nu > 0.5) & (nu < 1.5)
    near_two = (nu >= 1.5) & (nu < 2.5)
    # each element needs the gamma quotient at one argument in [-1/2, 1/2]:
    # nu, nu - 1 or nu - 2 (one evaluation instead of three)
    shift = jnp.where(low, 0.0, jnp.where(middle, 1.0, 2.0))
    t = jnp.where(low | middle | near_two, nu - shift, 0.0)
    gamma_quotient = _log_gamma_odd_quotient(t)
    log1p_quotient = _log1p_over(t)

    n = jnp.where(low, nu, 0.25)
    gamma_part = gamma_quotient  # used where low only; finite elsewhere
    u = n * (log_a + gamma_part)
    m0 = -jnp.expm1(u)
    growth = 1.0 + a / (1.0 + n)
    linear = 2.0 * n * a / (1.0 - n * n)
    m = m0 * growth + linear
    one_minus_m = jnp.exp(u) - m0 * a / (1.0 + n) - linear
    value_low = jnp.where(m0 < 0.5, jnp.log(m), jnp.log1p(-one_minus_m))
    # dM/dx = (x/2) dM/da; the c a^nu part is (2 nu / x) exp(u) ~ x^(2 nu - 1).
    # exp of a rounded log x carries |exponent| eps of relative error, up to
    # ~700 eps at x ~ 1e-300: for nu >= 1/4 the exponent is formed as
    # (2 nu - 1) log(x/2) + nu H - log 2 (small near nu = 1/2); below, as
    # exp(u) / x, whose error is ~ |u| eps (u = 2 nu log(x/2) + nu H), where
    # x is normal and the quotient finite.
    combined = jnp.exp((2.0 * n - 1.0) * log_half_x + n * gamma_part - _LOG_TWO)
    normal = x >= float(np.finfo(x.dtype).smallest_normal)
    quotient = jnp.exp(u) / jnp.where(normal, x, 1.0)
    use_quotient = (n < 0.25) & normal & (quotient < float(np.finfo(x.dtype).max))
    steep = (2.0 * n) * jnp.where(use_quotient, quotient, combined)
    slope_low = (
        -steep * growth + 0.5 * x * (m0 / (1.0 + n) + 2.0 * n / (1.0 - n * n))
    ) / m

    nu_mid = jnp.where(middle, nu, 1.0)
    e = jnp.where(middle, t, 0.0)
    gamma_part_middle = jnp.where(
        middle, gamma_quotient - log1p_quotient, 2.0 * np.euler_gamma - 1.0
    )
    big_l = log_a + gamma_part_middle
    # log(a exp(e L)) = 2 nu log(x/2) + e G and log((x/2) exp(e L)) =
    # (2 nu - 1) log(x/2) + e G: formed so, for the reason given for
    # nu <= 1/2 (and so that a tiny a times a huge E, e < 0, is not 0 * inf)
    log_a_growth = 2.0 * nu_mid * log_half_x + e * gamma_part_middle
    log_half_x_growth = (2.0 * nu_mid - 1.0) * log_half_x + e * gamma_part_middle
    a_expm1 = _scaled_expm1_over(a, log_a, log_a_growth, e, big_l)
    value_middle = jnp.log1p(a_expm1)
    # d(1 - M)/da = -(E + exp(e L)), times x/2
    slope_middle = (
        _scaled_expm1_over(half_x, log_half_x, log_half_x_growth, e, big_l)
        + jnp.exp(log_half_x_growth)
    ) / (1.0 + a_expm1)

    d = jnp.where(near_two, t, 0.0)
    gamma_part_two = jnp.where(
        near_two,
        gamma_quotient - log1p_quotient - 0.5 * _log1p_over(0.5 * d),
        2.0 * np.euler_gamma - 1.5,
    )
    big_l2 = log_a + gamma_part_two
    # log(a exp(d L2)) = 2 (1 + d) log(x/2) + d G2, as above
    log_a_growth2 = 2.0 * (1.0 + d) * log_half_x + d * gamma_part_two
    correction = (
        _scaled_expm1_over(a, log_a, log_a_growth2, d, big_l2)
        + 0.5 * jnp.exp(log_a_growth2)
    ) / (1.0 + d)
    slope_near_two = -0.5 * x * (1.0 / (1.0 + d) + correction)
    nu_high = jnp.where(low | middle | near_two, 3.0, nu)
    slope_high = -x / (2.0 * (nu_high - 1.0))

    value = jnp.where(low, value_low, value_middle)
    slope = jnp.where(
        low,
        slope_low,
        jnp.where(
            middle, slope_middle, jnp.where(near_two, slope_near_two, slope_high)
        ),
    )
    return value, slope


def _series_form(nu, x, *, slope: bool, unroll: bool):
    """(log M_nu(x), d/dx log M) for 3/2 <= nu < V0 and small x. The value is
    log1p(-D) with

        D = 1 - M = sum_{k=1}^{K} (-1)^(k+1) a^k / (k! (nu-1)(nu-2)...(nu-k)),

    a = x^2 / 4, K = floor(nu - 1/2): the terms of 0F1(; 1 - nu; a) in the
    small-x series whose denominators stay at least 1/2 from 0. What it
    drops (the rest of that series and c a^nu 0F1(; 1 + nu; a), whose poles
    at integer nu cancel) is O(a^(nu - 1/2)), below eps / 16 where
    ``_regions`` selects this form. Where log M is small, as here, its terms
    (a / nu)^k / k! barely cancel, while the general form's are ~ nu log x.
    """
    params = kernel_parameters(x.dtype)
    a = 0.25 * x * x
    num_terms = jnp.floor(nu - 0.5)

    def add_term(k, state):
        term, total = state
        k = jnp.asarray(k, x.dtype)
        active = k <= num_terms
        term = jnp.where(active, term * a / (k * (nu - k)), term)
        sign = jnp.where(jnp.mod(k, 2.0) == 1.0, 1.0, -1.0)
        return term, jnp.where(active, total + sign * term, total)

    one = jnp.ones_like(x)
    _, total = fixed_loop(
        1,
        params.debye_order,
        add_term,
        (one, jnp.zeros_like(x)),
        unroll_on_accelerators=False,
    )
    value = jnp.log1p(-total)
    if not slope:
        return value, jnp.zeros_like(value), value
    # the slope is not the series' (what it drops is O(a^(nu - 3/2))
    # relative there): the closed form where x^2 < eps; elsewhere it is
    # completed in ``_complete_slope``, from the K kernel at order nu - 1
    tiny = _tiny_x(x)
    nu_t, x_t = _clamp(tiny, nu, x, 2.0, 1e-30)
    return value, jnp.where(tiny, _tiny_parts(nu_t, x_t)[1], 0.0), value


def _debye_value(nu, x):
    """log M_nu(x) for nu >= V0 from the uniform (Debye) expansion.

    With z = x / nu, s = sqrt(1 + z^2), p = 1/s and
    S(nu, p) = sum_k (-1)^k u_k(p) / nu^k,
    K_nu(nu z) ~ sqrt(pi / (2 nu)) e^(-nu eta) S(nu, p) / sqrt(s) (DLMF
    10.41.4), and at z -> 0 the same expansion gives Gamma(nu) as Stirling's
    form times S(nu, 1). The large terms of log M cancel analytically:

        log M = nu (log1p(w / 2) - w) - log(s) / 2 + log S(nu, p) - log S(nu, 1),

    w = s - 1 = z^2 / (1 + s). Every piece vanishes at z = 0 (log M = 0
    exactly there) and none is large where log M is small."""
    params = kernel_parameters(x.dtype)
    u_polys, _ = debye_polynomials(params.debye_terms)
    z = x / nu
    s = hypot(jnp.ones_like(z), z)
    w = z * (z / (1.0 + s))
    p = 1.0 / s
    even, odd = _alternating_sums(u_polys, p / nu, p * p)
    one = jnp.ones_like(z)
    even_1, odd_1 = _alternating_sums(u_polys, one / nu, one)
    log_sum = jnp.log(even - odd) - jnp.log(even_1 - odd_1)
    return nu * (jnp.log1p(0.5 * w) - w) - 0.5 * jnp.log1p(w) + log_sum


def _debye_form(nu, x, *, slope: bool, unroll: bool):
    """(log M_nu(x), d/dx log M) for nu >= V0: the slope by forward-mode
    differentiation of the expansion in x (analytic, and no cancellation:
    it is ~ -x / (2 nu) near 0 and -1 at large x)."""
    del unroll
    if not slope:
        value = _debye_value(nu, x)
        return value, jnp.zeros_like(value), value
    value, x_slope = jax.jvp(lambda y: _debye_value(nu, y), (x,), (jnp.ones_like(x),))
    # where x^2 < eps the slope is -x / (2 (nu - 1)) to O(x^2) relative;
    # near the underflow the forward pass's products (~ x / nu^2) flush
    x_slope = jnp.where(_tiny_x(x), -x / (2.0 * (nu - 1.0)), x_slope)
    return value, x_slope, value


def _small_form(nu, x, *, slope: bool, unroll: bool):
    """(log M_nu(x), d/dx log M) where x^2 < eps and 0 < nu < 3/2: the
    closed forms of ``_tiny_parts``."""
    del slope, unroll
    value, x_slope = _tiny_parts(nu, x)
    return value, x_slope, value


def _general_form(nu, x, *, slope: bool, unroll: bool):
    """(log M_nu(x), d/dx log M for nu >= 1, log K_nu(x)) for nu < V0 and
    x^2 >= eps, as (1 - nu) log 2 - log Gamma(nu) + nu log x + log K_nu(x),
    whose terms are at most ~60 in size there. K comes from the K kernel of
    ``log_kv``, at order nu - 1 for nu >= 1, where the same evaluation gives
    the ratio K_nu / K_{nu-1} of the slope; for nu < 1 at order nu, whose
    ratio K_{nu+1} / K_nu gives the slope where x >= 3 nu (elsewhere it
    needs K_{1-nu}: ``_complete_slope``)."""
    above_one = nu >= 1.0
    order = jnp.where(above_one, nu - 1.0, nu)
    log_k, log_ratio, ratio = log_k_and_ratio(order, x, scaled=False, unroll=unroll)
    log_k = jnp.where(above_one, log_k + log_ratio, log_k)
    value = (1.0 - nu) * _LOG_TWO - lax.lgamma(nu) + nu * safe_log(x) + log_k
    if not slope:
        return value, jnp.zeros_like(x), log_k
    # nu < 1 and x >= 3 nu: K_{nu-1}/K_nu = K_{nu+1}/K_nu - 2 nu / x (the
    # recurrence), where K_{nu+1}/K_nu >= (nu + sqrt(nu^2 + x^2)) / x is at
    # least twice 2 nu / x: the difference loses at most a factor of two,
    # while exp of a difference of two logs ~ -x would carry ~x ulp
    recurrence = ~above_one & _recurrence_safe(nu, x)
    x_slope = jnp.where(
        above_one, -1.0 / ratio, jnp.where(recurrence, 2.0 * nu / x - ratio, 0.0)
    )
    return value, x_slope, log_k


def _recurrence_safe(nu, x):
    """Where ``_general_form`` takes the slope for nu < 1 from the ratio at
    order nu: x >= 3 nu."""
    return x >= 3.0 * nu


# Each region's form returns (value, the x-slope where its own evaluation
# gives it, else 0, and log K_nu(x) in the general form), and
# ``_complete_slope`` fills in the rest of the x-slope.
_FORMS = (_debye_form, _small_form, _series_form, _general_form)
# Clamped inputs for the elements outside a form's region: inside the
# region, away from its edges.
_DEFAULTS = ((30.0, 1.0), (1.0, 1e-30), (4.0, 1e-3), (2.0, 1.0))


def _edges(nu, x):
    """log M at x = 0 (0) and x = inf (-inf) for valid nu; nan elsewhere
    outside the interior."""
    valid_order = (nu > 0) & (nu < jnp.inf)
    edge = jnp.where(exactly_zero(x), 0.0, jnp.where(x == jnp.inf, -jnp.inf, jnp.nan))
    return jnp.where(valid_order, edge, jnp.nan)


def _form_outputs(form, nu, x, *, slope: bool, order: bool):
    """(value, x-slope part, log K, order slope) of one form. The order slope
    by forward-mode differentiation with a unit tangent (the forms are
    elementwise and analytic in nu; in the general form that is the K
    kernel's own order derivative, as ``log_kv``'s), with rolled loops
    (unrolled, differentiated kernels take minutes to compile for
    accelerators; see ``_log_bessel``)."""
    if not order:
        value, x_slope, log_k = form(nu, x, slope=slope, unroll=True)
        return value, x_slope, log_k, jnp.zeros_like(value)
    (value, x_slope, log_k), (order_slope, _, _) = jax.jvp(
        lambda n: form(n, x, slope=slope, unroll=False),
        (nu,),
        (jnp.ones_like(nu),),
    )
    return value, x_slope, log_k, order_slope


def _by_region(nu, x, *, slope: bool, order: bool):
    """Each form's outputs on its region's clamped inputs, evaluated only if
    some element needs it (a conditional on the batch), and blended."""
    _, *masks = _regions(nu, x)
    out = None
    for form, mask, (nu_default, x_default) in zip(
        _FORMS, masks, _DEFAULTS, strict=True
    ):
        nu_c, x_c = _clamp(mask, nu, x, nu_default, x_default)

        def evaluate(form=form, nu_c=nu_c, x_c=x_c):
            return _form_outputs(form, nu_c, x_c, slope=slope, order=order)

        def skip(nu_c=nu_c):
            return tuple(jnp.full_like(nu_c, jnp.nan) for _ in range(4))

        values = lax.cond(jnp.any(mask), evaluate, skip)
        out = (
            values
            if out is None
            else tuple(jnp.where(mask, v, o) for v, o in zip(values, out, strict=True))
        )
    return out


def _complete_slope(nu, x, x_slope, log_k, *, unroll: bool):
    """The x-slope where the forms leave it: in the series region away from
    x^2 < eps, -K_{nu-1} / K_nu from the K kernel at order nu - 1 >= 1/2
    (the series' own derivative drops O(a^(nu - 3/2)) relative); in the
    general region for nu < 1 and x < 3 nu, -K_{1-nu} / K_nu
    (K_{nu-1} = K_{1-nu}) from the kernel at order 1 - nu and the form's
    log K_nu (both logs are moderate there). One evaluation of the
    kernel serves both, outside the forward pass in nu: inside it, the
    slope's own order derivative would be traced as well (and stopping it
    would make second derivatives wrong)."""
    _, _, _, series, general = _regions(nu, x)
    from_ratio = series & ~_tiny_x(x)
    from_logs = general & (nu < 1.0) & ~_recurrence_safe(nu, x)
    needed = from_ratio | from_logs
    order = jnp.where(from_ratio, nu - 1.0, jnp.where(from_logs, 1.0 - nu, 0.5))
    x_c = jnp.where(needed, x, 1.0)
    log_k_nu = jnp.where(from_logs, log_k, 0.0)

    def kernel_slope():
        log_k_other, _, ratio = log_k_and_ratio(order, x_c, scaled=False, unroll=unroll)
        return jnp.where(from_ratio, -1.0 / ratio, -jnp.exp(log_k_other - log_k_nu))

    completed = lax.cond(jnp.any(needed), kernel_slope, lambda: jnp.zeros_like(x))
    return jnp.where(needed, completed, x_slope)


def _evaluate(nu, x, *, slope: bool, order: bool):
    """(value, x-slope, order slope) in the interior, each element from its
    region's form. Large batches on CPU are first grouped by region (as in
    ``evaluate_by_region``), so that an element pays for its own form only,
    not for every form some element of the batch needs."""
    _, debye, small, series, _ = _regions(nu, x)
    region = jnp.where(debye, 0, jnp.where(small, 1, jnp.where(series, 2, 3)))

    def kernel(nu, x):
        value, x_slope, log_k, order_slope = _by_region(nu, x, slope=slope, order=order)
        if slope:
            x_slope = _complete_slope(nu, x, x_slope, log_k, unroll=not order)
        return value, x_slope, order_slope

    region = region.astype(jnp.int32)
    if jax.default_backend() != "cpu" or region.size < _MIN_SIZE:
        return kernel(nu, x)
    # evaluate_by_region picks the grouping on CPU through
    # lax.platform_dependent, which traces the (differentiated) forms once
    # per branch; decided here on the default backend instead, the tracing
    # halves (2 cores, grad at 20100 elements: trace and lower 10.4 s ->
    # 4.6 s, of 17 s -> 11.5 s in all). Grouped on any backend is still
    # right, only slower.
    return _grouped(kernel, region, 4, nu, x)


def _tiny_x(x):
    """x^2 < eps, subnormal x included: where the closed forms hold."""
    eps = float(np.finfo(x.dtype).eps)
    return (x * x < eps) | positive_subnormal(x)


@jax.custom_jvp
def _log_matern(nu, x):
    inside = _regions(nu, x)[0]
    value, _, _ = _evaluate(nu, x, slope=False, order=False)
    return jnp.where(inside, value, _edges(nu, x))


def _finish_x_slope(nu, x, inside, slope):
    """The interior x-slope capped at the largest float in size (it grows
    like x^(2 nu - 1) as x -> 0 for nu < 1/2), with the edges: at x = 0 the
    limit 0 for nu > 1/2 and -1 at nu = 1/2; for nu < 1/2 the right
    derivative is -inf and 0 is returned, so that chain-rule products with
    dx = 0 (x = c r at r = 0) are 0, not nan. At x = inf the limit -1."""
    largest = float(np.finfo(x.dtype).max)
    slope = jnp.clip(slope, -largest, largest)
    at_zero = jnp.where(nu == 0.5, -1.0, 0.0)
    valid_order = (nu > 0) & (nu < jnp.inf)
    edge = jnp.where(exactly_zero(x), at_zero, jnp.where(x == jnp.inf, -1.0, jnp.nan))
    return jnp.where(inside, slope, jnp.where(valid_order, edge, jnp.nan))


@_log_matern.defjvp
def _log_matern_jvp(primals, tangents):
    nu, x = primals
    nu_dot, x_dot = tangents
    inside = _regions(nu, x)[0]
    need_slope = not _is_symbolic_zero(x_dot)
    need_order = not _is_symbolic_zero(nu_dot)
    value, x_slope, order_slope = _evaluate(nu, x, slope=need_slope, order=need_order)
    value = jnp.where(inside, value, _edges(nu, x))
    tangent = jnp.zeros_like(value)
    if need_order:
        # At x = 0 log M is 0 for every nu: its order slope is exactly 0.
        # At x = inf (log M = -inf) and outside the domain: nan.
        valid_order = (nu > 0) & (nu < jnp.inf)
        at_edge = jnp.where(valid_order & exactly_zero(x), 0.0, jnp.nan)
        tangent = tangent + jnp.where(inside, order_slope, at_edge) * nu_dot
    if need_slope:
        tangent = tangent + _finish_x_slope(nu, x, inside, x_slope) * x_dot
    return value, tangent


_log_matern.defjvp(_log_matern_jvp, symbolic_zeros=True)


@jax.jit
@returns_input_dtype
def log_matern(nu: ArrayLike, x: ArrayLike) -> Float[Array, "..."]:
    r"""Logarithm of the normalised Matérn correlation, $\log M_\nu(x)$.

    $$M_\nu(x) = \frac{2^{1-\nu}}{\Gamma(\nu)}\, x^\nu K_\nu(x),
    \qquad M_\nu(0) = 1,$$

    the Matérn covariance of smoothness $\nu$ at the scaled distance $x$
    (with lengthscale $\ell$ and distance $r$, usually
    $x = \sqrt{2\nu}\, r/\ell$). Equivalently
    $M_\nu(x) = E[e^{-x^2/(4T)}]$ for $T \sim \mathrm{Gamma}(\nu, 1)$, so
    $0 < M_\nu \le 1$; $M_{1/2}(x) = e^{-x}$,
    $M_{3/2}(x) = (1 + x)e^{-x}$, $M_{5/2}(x) = (1 + x + x^2/3)e^{-x}$, and
    $M_\nu(x) \to e^{-x^2/(4\nu)}$ as $\nu \to \infty$.

    Computed without the cancellation of
    $(1-\nu)\log 2 - \log\Gamma(\nu) + \nu\log x + \log K_\nu(x)$, whose
    terms are large where the result is small ($x \to 0$, $\nu \to \infty$):
    orders $\nu \ge V_0$ (20 in float64, 10 in float32) use the uniform
    (Debye) expansion with $\Gamma(\nu)$ from the same expansion, combined
    analytically so that $\log M_\nu(0) = 0$ exactly; for $3/2 \le \nu < V_0$
    and small $x$ (up to $x \approx 5$ at $\nu \approx 20$) the truncated
    small-$x$ series of $1 - M_\nu$; for $\nu < 3/2$ and $x^2 < \epsilon$
    (subnormal $x$ included) its leading terms in closed form, with the poles
    of its two parts at $\nu = 1$ cancelled; elsewhere the sum above, on the
    $K$ kernel of ``log_kv``, whose terms are moderate there (at most ~60).

    Domain: $\nu > 0$, $x \ge 0$, broadcast elementwise. $\log M_\nu(0) = 0$,
    $\log M_\nu(\infty) = -\infty$. $\nu \le 0$, $\nu = \infty$ (whose limit
    depends on how $x$ grows with $\nu$), $x < 0$ and nan give nan, with nan
    derivatives.

    Accuracy: error $|\Delta\log M| / \max(1, |\log M|)$ against mpmath
    (``tests/numerics/test_matern.py``: a stored table over
    $\nu \in [0.01, 1000]$, $x$ from the smallest subnormal to 700, and random
    sweeps): at most 41 eps in float64 on the table (70 in random sweeps) and
    17 eps in float32 (31 in sweeps), median 0.15 eps. The largest errors are
    for $5 \lesssim \nu < V_0$, $1 \lesssim x \lesssim 30$, where the sum's
    terms reach ~60; elsewhere a few eps.

    Derivatives (``jax.custom_jvp``): $\partial_x \log M_\nu(x) =
    -K_{\nu-1}(x)/K_\nu(x)$ (from $(x^\nu K_\nu)' = -x^\nu K_{\nu-1}$), from
    the $K$ kernel's ratio (a ratio of one sign, or for $\nu < 1$,
    $x \ge 3\nu$ the recurrence, which loses at most a factor of two), by
    forward-mode differentiation of the Debye form, and where $x^2 < \epsilon$
    from the closed forms: at most 10 eps relative for $x \ge 10^{-30}$;
    below that, for $\nu < 1$, where the slope is ~$x^{2\nu-1}$, up to
    about $|(2\nu - 1)\log x|$ eps (an exponential of that argument; ~700 eps
    at the smallest subnormal $x$).
    $\partial_\nu$ by forward-mode differentiation of each region's form
    (through the $K$ kernel's own order derivative, as ``log_kv``'s): at
    most 15 eps on the table (30 in sweeps) in the error measure above. At
    $x = 0$ the value is 0 for every $\nu$, so $\partial_\nu = 0$ exactly,
    and $\partial_x$ is its limit 0 for $\nu > 1/2$ and $-1$ at
    $\nu = 1/2$; for $\nu < 1/2$ the right derivative is $-\infty$ and 0 is
    returned instead, so that in $x = c\,r$ at $r = 0$ the derivatives in
    $c$ (lengthscale) and $\nu$ are exactly 0 rather than
    $0\cdot\infty$ = nan. The $x$-slope is capped at the largest float in
    size (it grows like $x^{2\nu-1}$ for $\nu < 1/2$); at $x = \infty$ it is
    $-1$ and $\partial_\nu$ is nan. Second derivatives are those of the
    derivative rule (not tuned for accuracy).

    Cost (``benchmarks/matern.py``, float64, 10^6 elements, 2 CPU cores,
    against the hand-built sum on ``log_kv`` and ``gammaln``): the value at
    0.8x its throughput, compiling in 1.8x its time (4.2 s); value and
    gradient at 0.45x its throughput, compiling in 2.8x its time (11 s): a
    second evaluation of the $K$ kernel for the $x$-slope in parts of the
    domain, and the series, closed and Debye forms besides the kernel.

    Args:
        nu: smoothness $\nu > 0$.
        x: scaled distance $x \ge 0$.

    Returns:
        $\log M_\nu(x) \le 0$ in the floating dtype of the inputs (integers
        promote to the default float; float16/bfloat16 compute in float32).

    References:
        Stein, "Interpolation of Spatial Data" (1999), §2.7 (the Matérn
        class). DLMF 10.25.2, 10.27.4, 10.29.4, 10.32.10, 10.41.4. Temme,
        "On the numerical evaluation of the modified Bessel function of the
        third kind", J. Comput. Phys. 19 (1975) (the gamma quotients).

    Example:
        >>> numerics.log_matern(1.5, 1.0)   # log((1 + 1) e^-1) = -0.3068528
        >>> jax.grad(numerics.log_matern, argnums=0)(2.5, 0.0)   # 0.0
    """
    nu, x = _prepare(nu, x)
    return _log_matern(nu, x)
