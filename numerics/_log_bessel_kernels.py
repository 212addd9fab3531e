"""Region dispatch for log I_v(x) and log K_v(x) with v >= 0, 0 < x < inf.

I: orders v >= V0 use the Debye expansion; lower orders take it at
   v + m >= V0 (m an integer <= V0) and recur downwards,
       I_nu / I_{nu+1} = I_{nu+1}/I_{nu+2} ... i.e. R_nu = 1 / (R_{nu+1} + 2(nu+1)/x),
   which is stable because I is the minimal solution of the recurrence; for
   x <= 20 the power series is used instead (it keeps absolute accuracy where
   log I_v(x) ~ 0).
K: orders v >= V0 use the Debye expansion; lower orders use Temme's kernel.

On CPU only regions that some element needs are evaluated (``lax.cond`` on
the batch), and large batches are first grouped by region (``_region_sort``),
so a batch spread over all regions costs each element one kernel, not all.
On GPUs XLA may turn these conditionals (whose loops are unrolled there)
into selects, so that every element pays for every region in one fused
kernel; the kernels are written for that: no division inside a loop (the
power series is summed as one fraction, the downward recurrence runs on I
itself). Not all of them are: on an H100, float64 log_iv runs at 1.0e9 el/s
on the broad family and 2.0e9 where one region serves every element.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from ._debye import debye_terms
from ._fixed_loop import fixed_loop
from ._precision import kernel_parameters
from ._region_sort import evaluate_by_region
from ._small_order import power_series_i, temme_k
from ._tiny_argument import (
    log_i_tiny,
    log_k_tiny,
    safe_log,
    tiny_i_argument,
    tiny_k_argument,
)


def _maybe(needed, compute, like):
    """compute() if needed else NaN arrays shaped like ``like``."""

    def skip():
        return tuple(jnp.full_like(like, jnp.nan) for _ in range(3))

    return lax.cond(needed, compute, skip)


def log_i_and_ratio(v, x, *, scaled: bool, unroll: bool = True):
    """(log I_v(x) [- x if scaled], log(I_{v+1}(x) / I_v(x)), I_{v+1}(x) / I_v(x)).

    For v >= 0, 0 < x < inf, subnormal x included (tiny x, where the
    series is its first term, takes the closed form of ``_tiny_argument``).
    The linear ratio is returned as well because
    exp(log ratio) would amplify the log's rounding by |log ratio|.
    ``unroll=False`` keeps the loops rolled on accelerators too: for code
    that autodiff will transform, where unrolled loops cost minutes of
    compilation.
    """
    params = kernel_parameters(x.dtype)
    use_debye = v >= params.debye_order
    use_series = (~use_debye) & (x <= params.series_max_x)
    tiny = tiny_i_argument(v, x)
    region = jnp.where(tiny, 3, jnp.where(use_series, 0, jnp.where(use_debye, 1, 2)))
    kernel = functools.partial(_log_i_and_ratio_adaptive, scaled=scaled, unroll=unroll)
    return evaluate_by_region(kernel, region, 4, v, x)


def _select(mask, on_true, on_false):
    return tuple(jnp.where(mask, a, b) for a, b in zip(on_true, on_false, strict=True))


def _with_tiny_argument(general_kernel, tiny_kernel, tiny_test, v, x, *, skip):
    """general_kernel on the elements whose argument is not tiny, the tiny-x
    closed form on the rest; with ``skip``, the closed form is evaluated only
    where some element needs it (a conditional on the batch)."""
    tiny = tiny_test(v, x)
    general = general_kernel(v, jnp.where(tiny, 1.0, x))

    def closed_form():
        return tiny_kernel(v, x, safe_log(x))

    closed = _maybe(jnp.any(tiny), closed_form, x) if skip else closed_form()
    return _select(tiny, closed, general)


def _log_i_and_ratio_adaptive(v, x, *, scaled: bool, unroll: bool):
    """log_i_and_ratio on one chunk, evaluating only the regions it needs."""
    return _with_tiny_argument(
        functools.partial(_log_i_general, scaled=scaled, unroll=unroll),
        functools.partial(log_i_tiny, scaled=scaled),
        tiny_i_argument,
        v,
        x,
        # pays on an H100 too (float64 log_iv, broad family: 7.2e8 -> 9.0e8
        # el/s)
        skip=True,
    )


def _log_i_general(v, x, *, scaled: bool, unroll: bool):
    params = kernel_parameters(x.dtype)
    order_threshold = params.debye_order
    use_debye = v >= order_threshold
    use_series = (~use_debye) & (x <= params.series_max_x)
    use_recurrence = ~(use_debye | use_series)

    def series():
        xs = jnp.where(use_series, x, 1.0)
        vs = jnp.where(use_series, v, 0.0)
        return power_series_i(vs, xs, scaled=scaled, unroll=unroll)

    def debye_and_recurrence():
        steps = jnp.where(use_recurrence, jnp.ceil(order_threshold - v), 0.0)
        steps = jnp.where(use_debye | use_recurrence, steps, 0.0)
        v_low = jnp.where(use_series, order_threshold, v)
        top = v_low + steps
        xd = jnp.where(use_series, 1.0, x)
        terms = debye_terms(top, xd, scaled=scaled, want_i=True, want_k=False)
        # top = v + steps is rounded; the exact top order is top + order_error.
        # First-order Debye correction: d/dv log I_v = -asinh(v/x) - p^2/(2v).
        order_error = v_low - (top - steps)
        z = xd / top
        slope = -jnp.arcsinh(1.0 / z) - 0.5 / (top * (1.0 + z * z))
        log_top = terms["log_i"] + order_error * slope
        ratio = jnp.exp(terms["log_ratio_i"])

        # The ratio recurrence R_nu = 1 / (R_{nu+1} + 2 (nu+1) / x) carried
        # as a fraction R = N / D: N <- D, D <- N + (2 (nu+1) / x) D is the
        # recurrence I_nu = I_{nu+2} + (2 (nu+1) / x) I_{nu+1} itself, and the
        # product of the ratios telescopes to 1 / D. No division per step
        # (divisions were most of this loop's cost in float64 on GPUs); D
        # stays below e^(V0^2 / 2x) since x > series_max_x here.
        two_over_x = 2.0 / xd

        def step_down(j, state):
            numerator, denominator = state
            active = j < steps
            coefficient = (v_low + (steps - j)) * two_over_x
            return (
                jnp.where(active, denominator, numerator),
                jnp.where(active, numerator + coefficient * denominator, denominator),
            )

        def recur():
            # Rolled, each of the 20 steps is a pass over device memory: on
            # an H100 that was 6 of the 15 ms that 2^24 float64 elements of
            # the broad benchmark family took.
            return fixed_loop(
                0,
                order_threshold,
                step_down,
                (ratio, jnp.ones_like(xd)),
                unroll_on_accelerators=unroll,
            )

        numerator, denominator = lax.cond(
            jnp.any(use_recurrence), recur, lambda: (ratio, jnp.ones_like(xd))
        )
        ratio = numerator / denominator
        return log_top + jnp.log(denominator), jnp.log(ratio), ratio

    series_out = _maybe(jnp.any(use_series), series, x)
    debye_out = _maybe(jnp.any(~use_series), debye_and_recurrence, x)
    return tuple(
        jnp.where(use_series, a, b) for a, b in zip(series_out, debye_out, strict=True)
    )


def log_k_and_ratio(v, x, *, scaled: bool, unroll: bool = True):
    """(log K_v(x) [+ x if scaled], log(K_{v+1}(x) / K_v(x)), K_{v+1}(x) / K_v(x)).

    For v >= 0, 0 < x < inf; the linear ratio overflows to inf only where x
    is below ~1e-308 v. ``unroll`` as for ``log_i_and_ratio``.
    """
    params = kernel_parameters(x.dtype)
    tiny = tiny_k_argument(v, x)
    region = jnp.where(tiny, 2, (v >= params.debye_order).astype(jnp.int32))
    kernel = functools.partial(_log_k_and_ratio_adaptive, scaled=scaled, unroll=unroll)
    return evaluate_by_region(kernel, region, 3, v, x)


def _log_k_and_ratio_adaptive(v, x, *, scaled: bool, unroll: bool):
    """log_k_and_ratio on one chunk, evaluating only the regions it needs."""
    return _with_tiny_argument(
        functools.partial(_log_k_general, scaled=scaled, unroll=unroll),
        functools.partial(log_k_tiny, scaled=scaled),
        tiny_k_argument,
        v,
        x,
        # On an H100 the conditional halves float64 log_kv's throughput
        # (1.6e9 -> 7.6e8 el/s, whichever branch is taken); on CPU it pays.
        skip=jax.default_backend() == "cpu",
    )


def _log_k_general(v, x, *, scaled: bool, unroll: bool):
    params = kernel_parameters(x.dtype)
    use_debye = v >= params.debye_order

    def debye():
        vd = jnp.where(use_debye, v, params.debye_order)
        terms = debye_terms(vd, x, scaled=scaled, want_i=False, want_k=True)
        return terms["log_k"], terms["log_ratio_k"], terms["ratio_k"]

    def temme():
        vt = jnp.where(use_debye, 0.0, v)
        return temme_k(vt, x, scaled=scaled, unroll=unroll)

    debye_out = _maybe(jnp.any(use_debye), debye, x)
    temme_out = _maybe(jnp.any(~use_debye), temme, x)
    return tuple(
        jnp.where(use_debye, a, b) for a, b in zip(debye_out, temme_out, strict=True)
    )
