"""Uniform asymptotic (Debye) expansion of I_v(vz) and K_v(vz) for large v.

With z = x/v, s = sqrt(1 + z^2), p = 1/s and eta = s - asinh(1/z) (DLMF 10.41.3-4):

    I_v(vz) ~ e^{v eta} / (sqrt(2 pi v) sqrt(s)) * sum_k u_k(p) / v^k
    K_v(vz) ~ sqrt(pi / (2v)) e^{-v eta} / sqrt(s) * sum_k (-1)^k u_k(p) / v^k

and the ratios I_{v+1}/I_v, K_{v+1}/K_v follow from the companion expansion of
the derivatives (DLMF 10.41.5-6, polynomials v_k(p)). All quantities are
evaluated in log space, so nothing overflows.
"""

from fractions import Fraction
from functools import cache

import jax
import jax.numpy as jnp
import numpy as np

from ._constants import ETA_PRIME_TAYLOR, LAPLACE_LIMIT_HI, LAPLACE_LIMIT_LO
from ._precision import horner, hypot, kernel_parameters, two_product


@cache
def debye_polynomials(num_terms: int):
    """Coefficients in q = p^2 of U_k and Dt_k, k = 0..num_terms, where

    u_k(p) = p^k U_k(p^2) and v_k(p) - u_k(p) = -z^2 p^k q Dt_k(p^2).

    Built exactly in rationals from DLMF 10.41.10-11 and rounded once.
    """
    u_of_q = [[Fraction(1)]]
    for k in range(num_terms):
        u = u_of_q[-1]
        # u_k(p) = p^k U(q): rewrite the recurrence
        # u_{k+1} = p^2 (1 - p^2) u_k' / 2 + (1/8) int_0^p (1 - 5 t^2) u_k dt
        # directly on the coefficients of U in q.
        nxt = [Fraction(0)] * (len(u) + 2)
        for j, c in enumerate(u):
            power = k + 2 * j  # u contributes c p^power
            # p^2 (1 - p^2) d/dp p^power / 2
            nxt_power = power + 1
            nxt[(nxt_power - (k + 1)) // 2] += c * power / 2
            nxt[(nxt_power + 2 - (k + 1)) // 2] -= c * power / 2
            # integral of (1 - 5 t^2) t^power / 8
            nxt[(power + 1 - (k + 1)) // 2] += c / (8 * (power + 1))
            nxt[(power + 3 - (k + 1)) // 2] -= 5 * c / (8 * (power + 3))
        while len(nxt) > 1 and nxt[-1] == 0:
            nxt.pop()
        u_of_q.append(nxt)

    d_tilde = [[Fraction(0)]]
    for k in range(1, num_terms + 1):
        u = u_of_q[k - 1]
        # (k - 1/2) U + 2 q U'  (the factor -(1 - q) = -z^2 q is applied outside)
        poly = [Fraction(0)] * len(u)
        for j, c in enumerate(u):
            poly[j] += (Fraction(2 * k - 1, 2)) * c
            if j > 0:
                poly[j] += 2 * j * c
        d_tilde.append(poly)

    def to_float(polys):
        return tuple(tuple(float(c) for c in poly) for poly in polys)

    return to_float(u_of_q), to_float(d_tilde)


@cache
def _coefficient_table(polys):
    """The polynomials as rows of one table, highest degree first, padded
    with leading zeros (Horner's rule passes through them exactly: 0 * q + c
    is c), so all of them are evaluated by one Horner loop over the rows."""
    width = max(len(poly) for poly in polys)
    table = np.zeros((width, len(polys)))
    for k, poly in enumerate(polys):
        table[width - len(poly) :, k] = poly[::-1]
    return table


def _alternating_sums(polys, t, q):
    """sum_k t^k P_k(q) split into even and odd k.

    On CPU the polynomials are evaluated side by side along a trailing axis:
    traced one by one they are ~600 scalar operations per call, which cost
    seconds of tracing and compilation under ``grad`` (2 CPU cores, vmap(grad)
    of log_iv: 15.3 s against 10.8 s). On accelerators that axis multiplies
    the kernel's memory traffic (H100, float64 log_kv: 5.4e7 against 1.2e9
    elements/s, and 49 s against 7 s to compile), so there they are traced
    one by one into the fused kernel. Both perform the same operations
    (equal to 1 ulp, where XLA fuses multiply-adds differently).
    """
    if jax.default_backend() == "cpu":
        return _sums_side_by_side(polys, t, q)
    return _sums_one_by_one(polys, t, q)


def _power_sums_by_parity(values, t):
    """(sum over even k, sum over odd k) of t^k values[k]."""
    even = jnp.zeros_like(t)
    odd = jnp.zeros_like(t)
    power = jnp.ones_like(t)
    for k, value in enumerate(values):
        term = power * value
        if k % 2 == 0:
            even = even + term
        else:
            odd = odd + term
        power = power * t
    return even, odd


def _sums_one_by_one(polys, t, q):
    return _power_sums_by_parity((horner(poly, q) for poly in polys), t)


def _sums_side_by_side(polys, t, q):
    table = _coefficient_table(polys)
    q = q[..., None]
    # rows shaped (1, ..., 1, n): the same rank as q, for callers who set
    # jax_numpy_rank_promotion to "raise"
    rows = table.astype(q.dtype).reshape(
        table.shape[:1] + (1,) * (q.ndim - 1) + table.shape[1:]
    )
    values = jnp.broadcast_to(rows[0], q.shape[:-1] + table.shape[1:])
    for row in rows[1:]:
        values = values * q + row
    return _power_sums_by_parity((values[..., k] for k in range(len(polys))), t)


def _split_constant(hi, lo, dtype):
    """hi + lo (a double-double) as a head and tail in ``dtype``.

    Rounding hi alone to float32 would drop its tail of ~1e-8 relative, which
    v * z0 turns into a 30-ulp error of log I near its zero."""
    head = np.asarray(hi, dtype)
    tail = np.asarray((hi - float(head)) + lo, dtype)
    return jnp.asarray(head), jnp.asarray(tail)


def _v_eta_near_root(v, x, params):
    """v * eta(x / v) for |x/v - z0| small, to full relative accuracy.

    eta vanishes at z0 and log I_v there is a small difference of large terms,
    so v*eta needs relative (not absolute) accuracy: w = x - v z0 is formed
    exactly and eta = w/v * sum_k g_k d^k / (k + 1), g_k the Taylor
    coefficients of eta'(z) = s/z at z0.
    """
    z0_hi, z0_lo = _split_constant(LAPLACE_LIMIT_HI, LAPLACE_LIMIT_LO, x.dtype)
    product, error = two_product(v, z0_hi, params.splitter)
    w = ((x - product) - error) - v * z0_lo
    d = w / v
    coefficients = tuple(
        ETA_PRIME_TAYLOR[k] / (k + 1) for k in range(params.eta_series_terms)
    )
    return w * horner(coefficients, d)


def debye_terms(v, x, *, scaled: bool, want_i: bool, want_k: bool):
    """Log-values and log-ratios of I and K from the Debye expansion.

    Args:
        v: order, v >= debye_order (callers clamp).
        x: argument, 0 < x < inf (callers clamp).
        scaled: return log(I e^{-x}) and log(K e^{x}) instead.

    Returns:
        dict with "log_i", "ratio_i" = I_{v+1}/I_v and its log "log_ratio_i",
        "log_k", "ratio_k" = K_{v+1}/K_v and "log_ratio_k", for the kinds
        asked for.
    """
    params = kernel_parameters(x.dtype)
    u_polys, d_polys = debye_polynomials(params.debye_terms)
    z = x / v
    s = hypot(jnp.ones_like(z), z)
    p = 1.0 / s
    q = p * p
    t = p / v
    # asinh(1/z) = asinh(v/x); v/x overflows only for subnormal x, where
    # asinh(y) = log(2y) to working precision.
    ratio = v / x
    asinh_inv_z = jnp.where(
        jnp.isfinite(ratio), jnp.arcsinh(ratio), jnp.log(2.0 * v) - jnp.log(x)
    )
    if scaled:
        # v (eta - z) = v / (s + z) - v asinh(1/z): no cancellation for large z.
        exponent = v / (s + z) - v * asinh_inv_z
    else:
        direct = hypot(v, x) - v * asinh_inv_z
        near_root = jnp.abs(z - LAPLACE_LIMIT_HI) <= params.eta_series_radius
        safe_x = jnp.where(near_root, x, v * LAPLACE_LIMIT_HI)
        exponent = jnp.where(near_root, _v_eta_near_root(v, safe_x, params), direct)

    even_u, odd_u = _alternating_sums(u_polys, t, q)
    even_d, odd_d = _alternating_sums(d_polys, t, q)
    half_log_s = 0.5 * jnp.log(s)
    out = {}
    if want_i:
        sum_i = even_u + odd_u
        out["log_i"] = (
            exponent - 0.5 * jnp.log(2.0 * jnp.pi * v) - half_log_s + jnp.log(sum_i)
        )
        # I_{v+1}/I_v = z/(1+s) - z p sum_k t^k Dt_k(q) / sum_u
        out["ratio_i"] = z / (1.0 + s) - z * p * (even_d + odd_d) / sum_i
        out["log_ratio_i"] = jnp.log(out["ratio_i"])
    if want_k:
        sum_k = even_u - odd_u
        out["log_k"] = (
            -exponent + 0.5 * jnp.log(jnp.pi / (2.0 * v)) - half_log_s + jnp.log(sum_k)
        )
        # K_{v+1}/K_v = (1+s)/z - z p sum_k (-t)^k Dt_k(q) / sum_u
        out["ratio_k"] = (1.0 + s) / z - z * p * (even_d - odd_d) / sum_k
        out["log_ratio_k"] = jnp.log(out["ratio_k"])
    return out
