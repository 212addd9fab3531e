"""``iv``, ``ive``, ``kv``, ``kve`` with ``scipy.special`` semantics, through the logs."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._log_bessel import _log_i_signed, _prepare, log_kv, log_kve
from ._precision import returns_input_dtype


@jax.jit
@returns_input_dtype
def iv(v: ArrayLike, x: ArrayLike) -> Float[Array, "..."]:
    r"""Modified Bessel function of the first kind $I_v(x)$, as ``scipy.special.iv``
    for $x \ge 0$: overflows to inf only where the true value does. Negative
    orders give the signed value. $x < 0$ gives nan (SciPy extends integer
    orders to $x < 0$; we do not). Accuracy: that of ``log_iv`` times
    $\max(1, |\log I|)$ in relative terms. Differentiable in $v$ and $x$."""
    v, x = _prepare(v, x)
    log_abs, sign = _log_i_signed(v, x, False)
    return sign * jnp.exp(log_abs)


@jax.jit
@returns_input_dtype
def ive(v: ArrayLike, x: ArrayLike) -> Float[Array, "..."]:
    r"""Exponentially scaled $I_v(x)\,e^{-x}$, as ``scipy.special.ive`` for $x \ge 0$."""
    v, x = _prepare(v, x)
    log_abs, sign = _log_i_signed(v, x, True)
    return sign * jnp.exp(log_abs)


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
