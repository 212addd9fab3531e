"""Per-dtype parameters of the Bessel kernels and small exact-arithmetic helpers.

Every series length and region threshold lives here, with the error bound that
chose it, so that float32 and float64 follow the same code with their own
numbers.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class KernelParameters(NamedTuple):
    # Orders at or above this use the uniform (Debye) expansion directly; lower
    # orders recur to it (I) or from Temme's |mu| <= 1/2 kernel (K).
    debye_order: int
    # Highest k of u_k(p)/v^k kept: the first dropped term, max_p |u_k(p)| /
    # debye_order^k, is below 5e-19 (float64) or 2e-9 (float32).
    debye_terms: int
    # The power series of I is used for x <= series_max_x and v < debye_order;
    # with (v+1)_k >= k!, the first dropped term is below (x^2/4)^K / K!^2
    # (< 1e-22 of the sum at x = 20, K = 44). Up to x = 20 the series beats the
    # downward recurrence, whose Debye start at order 20 carries an absolute
    # error of a few ulp of 20 asinh(20/x).
    series_max_x: float
    series_terms: int
    # The series is summed as one fraction (no division per term, which is
    # what the terms cost on GPUs in float64); numerator and denominator are
    # rescaled every series_block terms. The denominator grows like
    # prod k (v+k)(v+k+1): 1e191 over all 43 terms at v = 20 (float64, one
    # block); float32 rescales every 3 terms (below 1e14 per block).
    series_block: int
    # eta(z) is summed from its Taylor series about its root z0 for
    # |z - z0| <= eta_series_radius; the series converges for |z - z0| < z0,
    # so the first dropped term is below ~ (radius / z0)^K.
    eta_series_radius: float
    eta_series_terms: int
    # Temme's series for K_mu, K_{mu+1} for x <= temme_max_x: terms fall like
    # (x^2/4)^k / k!^2; it cancels like e^{2x}, hence the small threshold.
    temme_max_x: float
    temme_terms: int
    # Trapezoidal rule for K_mu e^x beyond temme_max_x: step
    # min(trapezoid_step, trapezoid_width / sqrt(x)), trapezoid_nodes nodes.
    # Chosen by scanning mu in [-1/2, 1/2], x in [0.1, 1e8] against mpmath:
    # worst error 0.95 ulp (float64) and 1e-4 ulp (float32) beyond rounding.
    trapezoid_step: float
    trapezoid_width: float
    trapezoid_nodes: int
    # Below this x, K_v(x) is formed in linear scale before its log (it is
    # representable there), which keeps the absolute error small near log K = 0.
    linear_k_max_x: float
    # Terms of the Taylor series of 1/Gamma(1 + mu) for |mu| <= 1/2:
    # |a_k| 2^-k < 1e-17 (float64) or 1e-9 (float32) beyond.
    reciprocal_gamma_terms: int
    # Veltkamp splitting constant 2^ceil(p/2) + 1 for the exact product.
    splitter: float


_FLOAT64 = KernelParameters(
    debye_order=20,
    debye_terms=17,
    series_max_x=20.0,
    series_terms=44,
    series_block=43,
    eta_series_radius=0.2,
    eta_series_terms=32,
    temme_max_x=0.1,
    temme_terms=8,
    trapezoid_step=0.22,
    trapezoid_width=0.4,
    trapezoid_nodes=32,
    linear_k_max_x=30.0,
    reciprocal_gamma_terms=22,
    splitter=134217729.0,
)

_FLOAT32 = KernelParameters(
    debye_order=10,
    debye_terms=7,
    series_max_x=12.0,
    series_terms=22,
    series_block=3,
    eta_series_radius=0.2,
    eta_series_terms=16,
    temme_max_x=0.1,
    temme_terms=5,
    trapezoid_step=0.45,
    trapezoid_width=0.75,
    trapezoid_nodes=15,
    linear_k_max_x=30.0,
    reciprocal_gamma_terms=14,
    splitter=4097.0,
)


def kernel_parameters(dtype) -> KernelParameters:
    return _FLOAT64 if jnp.dtype(dtype) == jnp.float64 else _FLOAT32


def input_float_dtype(*arrays) -> np.dtype:
    """The inputs' result type, integers promoted to the default float.

    Raises:
        TypeError: a list or tuple (as jax.numpy refuses them), or complex
            input (these are functions of real arguments; as
            jax.scipy.special, rather than dropping the imaginary part).
    """
    for array in arrays:
        if isinstance(array, list | tuple):
            raise TypeError(
                f"expected an array or scalar, got a {type(array).__name__}; "
                "pass jnp.asarray(...) of it."
            )
    dtype = jnp.result_type(*arrays)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(
            f"complex input ({dtype}) is not supported: the Bessel functions "
            "here are defined for real order and argument."
        )
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return jnp.dtype(dtype)


def working_dtype(*arrays) -> np.dtype:
    """The floating dtype the kernels compute in: inputs' result type, with
    integers promoted to the default float and 16-bit floats raised to float32."""
    dtype = input_float_dtype(*arrays)
    if jnp.finfo(dtype).bits < 32:
        dtype = jnp.dtype(jnp.float32)
    return jnp.dtype(dtype)


def returns_input_dtype(function):
    """Cast ``function(v, x)``'s result to the inputs' floating dtype.

    The kernels compute 16-bit inputs in float32 (their series lengths and
    thresholds exist for float32 and float64 only); the caller still gets
    the dtype it passed in, as with any jax.numpy function."""

    @functools.wraps(function)
    def wrapper(v, x):
        return function(v, x).astype(input_float_dtype(v, x))

    return wrapper


def two_product(a, b, splitter):
    """a * b = product + error exactly (Dekker), for finite non-huge a, b."""
    product = a * b

    def split(value):
        scaled = splitter * value
        high = scaled - (scaled - value)
        return high, value - high

    a_high, a_low = split(a)
    b_high, b_low = split(b)
    error = (
        (a_high * b_high - product) + a_high * b_low + a_low * b_high
    ) + a_low * b_low
    return product, error


def horner(coefficients, t):
    """sum_k coefficients[k] * t**k."""
    result = jnp.full_like(t, coefficients[-1])
    for c in coefficients[-2::-1]:
        result = result * t + c
    return result


def accurate_log1p(x):
    """log(1 + x). XLA's log1p loses up to ~240 ulp for x < -0.3 (measured on
    CPU); there 1 + x is exact (Sterbenz), so log(1 + x) is used instead."""
    return jnp.where(x < -0.25, jnp.log(1.0 + x), jnp.log1p(x))


@jax.custom_jvp
def hypot(a, b):
    """sqrt(a^2 + b^2) without overflow, as ``jnp.hypot``, with derivatives
    that are right at a == b: ``jnp.hypot`` orders its arguments with max and
    min, whose derivatives split at the tie, so its own second derivative is
    wrong there (by half) although its first is right."""
    return jnp.hypot(a, b)


@hypot.defjvp
def _hypot_jvp(primals, tangents):
    (a, b), (a_dot, b_dot) = primals, tangents
    h = hypot(a, b)
    safe = jnp.where(h == 0, 1.0, h)
    return h, jnp.where(h == 0, 0.0, (a / safe) * a_dot + (b / safe) * b_dot)
