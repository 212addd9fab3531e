"""``iv``, ``ive``, ``kv``, ``kve`` with ``scipy.special`` semantics, through the logs."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._log_bessel import _log_i_signed, _prepare, _sin_pi, log_kv, log_kve
from ._precision import returns_input_dtype
from ._tiny_argument import exactly_zero


@jax.custom_jvp
def _with_slope(value, slope, x):
    """value, with derivative slope in x (value and slope are constants)."""
    return value


@_with_slope.defjvp
def _with_slope_jvp(primals, tangents):
    value, slope, _ = primals
    return value, slope * tangents[2]


def _i_signed(v, x, scaled):
    """I_v(x) [e^{-x}] with the right x-derivative at x = 0 too.

    There log I has an infinite slope (I_v ~ (x/2)^v / Gamma(v+1)), and
    exp(log I) would differentiate to 0 * inf. At x = 0 value and slope are
    closed forms: I_0 = 1 with slope 0 (scaled: -1), I_1 slope 1/2, slope 0
    for v > 1 and +inf for 0 < v < 1; negative integer orders as their
    reflections, other negative orders inf with a nan slope. The kernels
    see x = 1 there, so their derivatives stay finite and the branch that
    is not taken sends no 0 * inf back."""
    at_zero = exactly_zero(x)
    log_abs, sign = _log_i_signed(v, jnp.where(at_zero, 1.0, x), scaled)
    away = sign * jnp.exp(log_abs)
    order = jnp.abs(v)
    integer = _sin_pi(order) == 0
    reflected = (v < 0) & ~integer
    value = jnp.where(
        order == 0,
        1.0,
        jnp.where(reflected, jnp.sign(_sin_pi(order)) * jnp.inf, 0.0),
    )
    slope = jnp.where(
        order == 0,
        -1.0 if scaled else 0.0,
        jnp.where(order == 1, 0.5, jnp.where(order > 1, 0.0, jnp.inf)),
    )
    # the slope must be finite where it is not used: its cotangent there is 0
    slope = jnp.where(at_zero, jnp.where(reflected, jnp.nan, slope), 0.0)
    value = jnp.where(jnp.isnan(v), jnp.nan, value)
    return jnp.where(at_zero, _with_slope(value, slope, x), away)


@jax.jit
@returns_input_dtype
def iv(v: ArrayLike, x: ArrayLike) -> Float[Array, "..."]:
    r"""Modified Bessel function of the first kind $I_v(x)$, as ``scipy.special.iv``
    for $x \ge 0$: overflows to inf only where the true value does. Negative
    orders give the signed value. $x < 0$ gives nan (SciPy extends integer
    orders to $x < 0$; we do not). Accuracy: that of ``log_iv`` times
    $\max(1, |\log I|)$ in relative terms. Differentiable in $v$ and $x$,
    at $x = 0$ too: $dI_v/dx(0)$ is 0 for $v = 0$ and $v > 1$, 1/2 for
    $v = 1$, inf for $0 < v < 1$ (jax.scipy.special.i1 agrees)."""
    return _i_signed(*_prepare(v, x), False)


@jax.jit
@returns_input_dtype
def ive(v: ArrayLike, x: ArrayLike) -> Float[Array, "..."]:
    r"""Exponentially scaled $I_v(x)\,e^{-x}$, as ``scipy.special.ive`` for $x \ge 0$
    (its slope at $x = 0$ is that of ``iv`` minus $I_v(0)$: -1 for $v = 0$)."""
    return _i_signed(*_prepare(v, x), True)


@jax.jit
@returns_input_dtype
def kv(v: ArrayLike, x: ArrayLike) -> Float[Array, "..."]:
    r"""Modified Bessel function of the second kind $K_v(x)$, as ``scipy.special.kv``:
    inf at $x = 0$, nan for $x < 0$. Computed as ``exp(log_kv(v, x))``."""
    return jnp.exp(log_kv(*_prepare(v, x)))


@jax.jit
@returns_input_dtype
def kve(v: ArrayLike, x: ArrayLike) -> Float[Array, "..."]:
    r"""Exponentially scaled $K_v(x)\,e^{x}$, as ``scipy.special.kve``."""
    return jnp.exp(log_kve(*_prepare(v, x)))
