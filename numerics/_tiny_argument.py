"""log I_v(x) and log K_v(x) where x is tiny: leading terms in closed form.

Where x^2 is below eps (v + 1), the power series of I_v(x) is its first term
to working precision, and so (for v >= 1/2) is the small-x expansion of
K_v(x):

    I_v(x) = (x/2)^v / Gamma(v + 1) (1 + x^2 / (4 (v + 1)) + ...)   (DLMF 10.25.2)
    K_v(x) = Gamma(v) / 2 (2/x)^v (1 + x^2 / (4 (v - 1)) + ...)     (DLMF 10.30.2)

and for 0 <= v < 1/2 K_v(x) is the first term of Temme's series. These forms
need only log x, which is what makes them work where the general kernels
cannot: the kernels form x/2, x^2/4 and (x/2)^n, which underflow, and XLA's
CPU backend treats subnormal operands as zero (a subnormal x compares equal
to 0 and its log is -inf). Here log x comes from the bits of x, so subnormal
x gets the same relative accuracy as any other.
"""

import jax.numpy as jnp
import numpy as np
from jax import lax

from ._precision import kernel_parameters
from ._small_order import log_gamma_1p, reciprocal_gamma_parts

_LOG_TWO = float(np.log(2.0))


def _bits(x):
    integer = jnp.int64 if x.dtype == jnp.float64 else jnp.int32
    return lax.bitcast_convert_type(x, integer)


def _smallest_normal_bits(dtype):
    integer = np.int64 if dtype == jnp.float64 else np.int32
    return int(np.asarray(np.finfo(dtype).smallest_normal, dtype).view(integer))


def positive_subnormal(x):
    """0 < x < the smallest normal number, decided on the bits (a comparison
    would see 0 where the backend flushes subnormals)."""
    bits = _bits(x)
    return (bits > 0) & (bits < _smallest_normal_bits(x.dtype))


def exactly_zero(x):
    """x is +0 or -0 (not a subnormal that the backend flushes to zero).

    Not (bits << 1) == 0: inside a fused kernel LLVM folds that idiom back
    into the float comparison x == 0, which flushes subnormals."""
    subnormal = positive_subnormal(x) | positive_subnormal(-x)
    return (x == 0) & ~subnormal


def safe_log(x):
    """log x for x > 0, subnormal x included: a positive subnormal is its
    integer bit pattern times 2^(min_exp - mantissa bits), exactly."""
    subnormal = positive_subnormal(x)
    finfo = np.finfo(x.dtype)
    ulp_exponent = finfo.minexp - finfo.nmant  # -1074 in float64, -149 in float32
    mantissa = jnp.where(subnormal, _bits(x), 1).astype(x.dtype)
    from_bits = jnp.log(mantissa) + ulp_exponent * _LOG_TWO
    return jnp.where(subnormal, from_bits, jnp.log(jnp.where(subnormal, 1.0, x)))


def _x_squared_negligible(v, x):
    """x^2 / (4 (v + 1)) below eps / 4: the series' second term is lost.

    Tested on x * x itself rather than on logs (three logarithms per
    element cost ~20% of log_iv's CPU throughput): where x * x underflows,
    flushed to zero or not, the test is rightly true, and where it
    overflows, rightly false."""
    eps = float(np.finfo(x.dtype).eps)
    return x * x < eps * (v + 1.0)


def tiny_i_argument(v, x):
    """Where log I_v(x) is its series' first term: x^2 < eps (v + 1) (this
    covers every subnormal x)."""
    return _x_squared_negligible(v, x) | positive_subnormal(x)


def tiny_k_argument(v, x):
    """Where the closed forms give log K_v(x): every subnormal x, and
    x^2 < eps (v + 1) at orders from the Debye threshold up (below it the
    x^(2v) and x^2 log x terms of K are not yet negligible there, and the
    general kernel is accurate)."""
    large_order = v >= kernel_parameters(x.dtype).debye_order
    return positive_subnormal(x) | (large_order & _x_squared_negligible(v, x))


def _log_gamma_1p(v):
    """log Gamma(1 + v), v >= 0: the small-order form, accurate near the
    zeros at v = 0 and 1, below the Debye threshold (its product of v
    factors would overflow float32 from v ~ 34); XLA's lgamma, a few ulp of
    a value above 15, from there."""
    small = v < kernel_parameters(v.dtype).debye_order
    return jnp.where(
        small,
        log_gamma_1p(jnp.where(small, v, 0.0), unroll=False),
        lax.lgamma(1.0 + jnp.where(small, 1.0, v)),
    )


def log_i_tiny(v, x, log_x, *, scaled: bool):
    """(log I_v(x) [- x], log(I_{v+1}/I_v), I_{v+1}/I_v) where
    ``tiny_i_argument``; v >= 0."""
    log_half_x = log_x - _LOG_TWO
    # v * log(x/2) and -log Gamma(v + 1) have one sign for x < 2; for x >= 2
    # (v > 4 / eps) the second is at least twice the first: no cancellation.
    log_i = v * log_half_x - _log_gamma_1p(v) + 0.25 * x * (x / (v + 1.0))
    if scaled:
        log_i = log_i - x
    # the linear ratio formed directly: exp(log ratio) would multiply the
    # log's rounding by |log ratio| (up to ~700)
    return log_i, log_half_x - jnp.log1p(v), 0.5 * x / (v + 1.0)


def _k_correction(v, x):
    """x^2 / (4 (v - 1)), the series' second term, where it can matter
    (large orders; at subnormal x it is zero)."""
    large = v > 2.0
    return jnp.where(large, 0.25 * x * (x / jnp.where(large, v - 1.0, 1.0)), 0.0)


def _log_k_gamma_form(v, x, log_x):
    """log(Gamma(v) / 2 (2/x)^v (1 + x^2 / (4 (v - 1)))) for v >= 1/2."""
    return lax.lgamma(v) + (v - 1.0) * _LOG_TWO - v * log_x + _k_correction(v, x)


def _log_k_temme_form(v, log_x):
    """log K_v(x) for 0 <= v < 1/2 from the first term of Temme's series:
    K_v(x) = (pi v / sin(pi v)) (gam1 cosh(v L) + gam2 L sinh(v L) / (v L)),
    L = log(2 / x), exact up to terms in x^2 (Temme 1975)."""
    params = kernel_parameters(log_x.dtype)
    gam1, gam2, _ = reciprocal_gamma_parts(v, params)
    log_two_over_x = _LOG_TWO - log_x
    e = v * log_two_over_x
    pi_v = jnp.pi * v
    small = jnp.abs(pi_v) < 1e-4
    pi_v_over_sin = jnp.where(
        small, 1.0 + pi_v * pi_v / 6.0, pi_v / jnp.sin(jnp.where(small, 1.0, pi_v))
    )
    small_e = jnp.abs(e) < 1e-4
    sinh_e_over_e = jnp.where(
        small_e, 1.0 + e * e / 6.0, jnp.sinh(e) / jnp.where(small_e, 1.0, e)
    )
    k = pi_v_over_sin * (gam1 * jnp.cosh(e) + gam2 * sinh_e_over_e * log_two_over_x)
    return jnp.log(k)


def log_k_tiny(v, x, log_x, *, scaled: bool):
    """(log K_v(x) [+ x], log(K_{v+1}/K_v), K_{v+1}/K_v) where
    ``tiny_k_argument``; v >= 0."""
    gamma_form = v >= 0.5
    log_k = jnp.where(
        gamma_form,
        _log_k_gamma_form(jnp.where(gamma_form, v, 1.0), x, log_x),
        _log_k_temme_form(jnp.where(gamma_form, 0.0, v), log_x),
    )
    # K_{v+1}/K_v = (2v/x) (1 + x^2/(4v)) / (1 + x^2/(4(v-1))) for v >= 1/2,
    # written without the difference of two large logs; below 1/2 the two
    # logs are of one size and their difference is well conditioned.
    safe_v = jnp.where(gamma_form, v, 1.0)
    direct = (
        jnp.log(2.0 * safe_v)
        - log_x
        + _k_correction(safe_v + 1.0, x)
        - _k_correction(safe_v, x)
    )
    log_ratio = jnp.where(
        gamma_form, direct, _log_k_gamma_form(v + 1.0, x, log_x) - log_k
    )
    ratio = jnp.where(
        gamma_form,
        2.0
        * safe_v
        / x
        * (1.0 + _k_correction(safe_v + 1.0, x) - _k_correction(safe_v, x)),
        jnp.exp(log_ratio),
    )
    if scaled:
        log_k = log_k + x
    return log_k, log_ratio, ratio
