"""Properties of the log-Bessel functions: edges, identities, transformations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sp
from jax.test_util import check_grads

from sciax import numerics
from tests.helpers import eps, mixed_error

ORDERS = np.array([0.0, 0.3, 1.0, 2.5, 7.0, 19.5, 20.0, 35.0, 400.0, 3e4])
ARGUMENTS = np.array([1e-8, 0.05, 0.7, 1.9, 6.5, 30.0, 250.0, 4e3, 1e6, 2.0])


def _float_dtypes():
    return [jnp.float32, jnp.float64] if jax.config.jax_enable_x64 else [jnp.float32]


def test_edges():
    inf, nan = np.inf, np.nan
    assert numerics.log_iv(0.0, 0.0) == 0.0
    assert numerics.log_iv(2.0, 0.0) == -inf
    assert numerics.log_iv(-2.0, 0.0) == -inf
    assert numerics.log_iv(-0.5, 0.0) == inf
    assert np.isnan(numerics.log_iv(-1.5, 0.0))  # I_{-1.5}(0+) -> -inf
    assert numerics.log_iv(3.0, inf) == inf
    assert numerics.log_ive(3.0, inf) == -inf
    assert numerics.log_kv(3.0, 0.0) == inf
    assert numerics.log_kv(3.0, inf) == -inf
    for function in (
        numerics.log_iv,
        numerics.log_kv,
        numerics.log_ive,
        numerics.log_kve,
    ):
        assert np.isnan(function(1.0, -1.0))
        assert np.isnan(function(nan, 1.0))
        assert np.isnan(function(1.0, nan))


def test_no_overflow_where_scipy_gives_up():
    # SciPy: iv(1e4, 1) underflows to 0 and iv(1, 1e4) overflows to inf.
    assert sp.iv(1e4, 1.0) == 0.0 and np.isinf(sp.iv(1.0, 1e4))
    assert np.isfinite(numerics.log_iv(1e4, 1.0))
    assert np.isfinite(numerics.log_iv(1.0, 1e4))
    assert np.isfinite(numerics.log_kv(1e4, 1e-3))


@pytest.mark.parametrize("dtype", _float_dtypes())
def test_dtype_is_kept(dtype):
    v = jnp.asarray(ORDERS, dtype)
    x = jnp.asarray(ARGUMENTS, dtype)
    for function in (
        numerics.log_iv,
        numerics.log_kv,
        numerics.log_iv_ratio,
        numerics.iv,
    ):
        out = function(v, x)
        assert out.dtype == dtype
        if function is not numerics.iv:  # iv overflows where the log does not
            assert np.all(np.isfinite(out))


def test_integers_promote_to_default_float():
    assert numerics.log_iv(2, 3).dtype == jnp.result_type(float)


def test_scipy_semantics_of_linear_functions():
    v = ORDERS[:7]
    x = ARGUMENTS[:7]
    for ours, theirs in [
        (numerics.iv, sp.iv),
        (numerics.ive, sp.ive),
        (numerics.kv, sp.kv),
        (numerics.kve, sp.kve),
    ]:
        np.testing.assert_allclose(ours(v, x), theirs(v, x), rtol=1e-13)


def test_negative_orders_against_scipy():
    v = np.array([-0.5, -1.0, -2.5, -3.7, -10.2, -0.01])
    x = np.array([0.3, 2.0, 1.3, 5.0, 4.0, 1e-3])
    np.testing.assert_allclose(numerics.iv(v, x), sp.iv(v, x), rtol=1e-12)
    np.testing.assert_allclose(numerics.kv(v, x), sp.kv(v, x), rtol=1e-13)
    expected = np.where(sp.iv(v, x) > 0, np.log(np.abs(sp.iv(v, x))), np.nan)
    np.testing.assert_allclose(numerics.log_iv(v, x), expected, rtol=1e-12)


def test_recurrence_in_log_space():
    # I_{v-1} = I_{v+1} + (2v/x) I_v, i.e. log I_{v-1} = log I_v + log(2v/x + R_v).
    v = jnp.asarray(ORDERS[1:]) + 1.0
    x = jnp.asarray(ARGUMENTS[1:])
    lhs = numerics.log_iv(v - 1, x)
    rhs = numerics.log_iv(v, x) + jnp.log(
        2 * v / x + jnp.exp(numerics.log_iv_ratio(v, x))
    )
    assert mixed_error(lhs, np.asarray(rhs)).max() <= 16 * eps(lhs.dtype)


def test_wronskian_in_log_space():
    # I_v K_{v+1} + I_{v+1} K_v = 1/x
    v, x = jnp.asarray(ORDERS), jnp.asarray(ARGUMENTS)
    log_i, log_k = numerics.log_iv(v, x), numerics.log_kv(v, x)
    log_i1 = log_i + numerics.log_iv_ratio(v, x)
    log_k1 = log_k + numerics.log_kv_ratio(v, x)
    lhs = jnp.logaddexp(log_i + log_k1, log_i1 + log_k)
    # Adding two large logs of opposite sign keeps their absolute rounding.
    scale = np.maximum(1.0, np.abs(np.asarray(log_i)) + np.abs(np.asarray(log_k1)))
    error = np.abs(np.asarray(lhs) + np.log(ARGUMENTS)) / scale
    assert error.max() <= 16 * eps(lhs.dtype)


def test_jit_matches_eager():
    v, x = jnp.asarray(ORDERS[:4]), jnp.asarray(ARGUMENTS[:4])
    jitted = numerics.log_kv(v, x)
    with jax.disable_jit():
        eager = numerics.log_kv(v, x)
    # Eager runs each op unfused; XLA's fusion may round differently.
    np.testing.assert_allclose(jitted, eager, rtol=64 * eps(jitted.dtype))


def test_vmap_matches_broadcasting():
    v, x = jnp.asarray(ORDERS), jnp.asarray(ARGUMENTS)
    tight = 2 * eps(v.dtype)
    np.testing.assert_allclose(
        jax.vmap(numerics.log_iv)(v, x), numerics.log_iv(v, x), rtol=tight
    )
    grid = jax.vmap(lambda vi: numerics.log_iv(vi, x))(v)
    np.testing.assert_allclose(
        grid, numerics.log_iv(v[:, None], x[None, :]), rtol=tight
    )


@pytest.mark.parametrize("name", ["log_iv", "log_kv", "log_ive", "log_kve"])
def test_gradients_in_x_by_finite_differences(name):
    function = getattr(numerics, name)
    for v, x in [(0.4, 1.3), (2.5, 7.0), (25.0, 16.0), (300.0, 50.0)]:
        check_grads(lambda t, v=v: function(v, t), (x,), order=1, modes=["fwd", "rev"])


def test_order_gradient_is_not_silently_zero():
    # d/dv log K_v(x) at v = 0 is 0 by symmetry; elsewhere it must not be.
    slopes = jax.vmap(jax.grad(numerics.log_kv), (0, None))(
        jnp.array([0.5, 3.0, 40.0]), 2.0
    )
    assert np.all(np.asarray(slopes) > 0)
    slopes_i = jax.vmap(jax.grad(numerics.log_iv), (0, None))(
        jnp.array([0.5, 3.0, 40.0]), 2.0
    )
    assert np.all(np.asarray(slopes_i) < 0)


@pytest.mark.slow  # 45 s on 2 cores
@pytest.mark.parametrize("name", ["log_iv", "log_kv"])
def test_large_batches_grouped_by_region_match_small_ones(name):
    """Batches above the grouping threshold are permuted, chunked and put back;
    every element must come back to its place with the value (and slopes) a
    small batch gives."""
    function = getattr(numerics, name)
    rng = np.random.default_rng(3)
    size = 40_000
    v = jnp.asarray(10 ** rng.uniform(-2, 3, size))
    x = jnp.asarray(10 ** rng.uniform(-3, 3, size))
    large = function(v, x)
    small = jnp.concatenate(
        [function(v[i : i + 1000], x[i : i + 1000]) for i in range(0, size, 1000)]
    )
    np.testing.assert_allclose(large, small, rtol=4 * eps(np.float64), atol=0)
    slopes = jax.vmap(jax.grad(function, argnums=(0, 1)))
    large_grad = jax.grad(lambda a, b: function(a, b).sum(), argnums=(0, 1))(v, x)
    small_grad = slopes(v[:1000], x[:1000])
    for big, little in zip(large_grad, small_grad, strict=True):
        np.testing.assert_allclose(big[:1000], little, rtol=1e-13, atol=0)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_16_bit_inputs_computed_in_float32_returned_in_their_dtype(dtype):
    v = jnp.asarray([0.5, 3.0, 40.0], dtype)
    x = jnp.asarray([0.25, 2.0, 30.0], dtype)
    for name in ("log_iv", "log_ive", "log_kv", "log_kve", "log_iv_ratio", "kv"):
        function = getattr(numerics, name)
        out = function(v, x)
        assert out.dtype == dtype, name
        wide = function(v.astype(jnp.float32), x.astype(jnp.float32))
        np.testing.assert_array_equal(out, wide.astype(dtype))
