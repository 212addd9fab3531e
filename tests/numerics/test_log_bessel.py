"""Properties of the log-Bessel functions: edges, identities, transformations."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sp

from sciax import numerics
from tests.helpers import eps, mixed_error

ORDERS = np.array([0.0, 0.3, 1.0, 2.5, 7.0, 19.5, 20.0, 35.0, 400.0, 3e4])
ARGUMENTS = np.array([1e-8, 0.05, 0.7, 1.9, 6.5, 30.0, 250.0, 4e3, 1e6, 2.0])

# Each public function takes seconds to compile and compiles anew for every
# shape and dtype. The tests below therefore pad their points to one length
# and evaluate every function they need in one jitted program per dtype
# (one program compiles in about half the time of its functions one by one).
SIZE = 16
LINEAR = ("iv", "ive", "kv", "kve")
LOGS = ("log_iv", "log_ive", "log_kv", "log_kve", "log_iv_ratio", "log_kv_ratio")
SIXTEEN_BIT = ("log_iv", "log_ive", "log_kv", "log_kve", "log_iv_ratio", "kv")
# float32: what test_dtype_is_kept and the 16-bit test compare against
FLOAT32 = ("log_iv", "log_ive", "log_kv", "log_kve", "log_iv_ratio", "iv", "kv")


def _float_dtypes():
    return [jnp.float32, jnp.float64] if jax.config.jax_enable_x64 else [jnp.float32]


@functools.partial(jax.jit, static_argnums=0)
def _program(names, v, x):
    out = {name: getattr(numerics, name)(v, x) for name in names if name != "vmap"}
    if "vmap" in names:
        out["vmap"] = jax.vmap(numerics.log_iv)(v, x)
        out["vmap_grid"] = jax.vmap(lambda vi: numerics.log_iv(vi, x))(v)
        out["broadcast_grid"] = numerics.log_iv(v[:, None], x[None, :])
    return out


def _names(dtype):
    if dtype == jnp.result_type(float):
        return LOGS + LINEAR + ("vmap",)
    if dtype == jnp.float32:
        return FLOAT32
    if jnp.finfo(dtype).bits < 32:
        return SIXTEEN_BIT
    raise ValueError(dtype)


def evaluate(v, x, dtype=None):
    """Every function's values at the points (v, x) (1-D, at most SIZE long),
    as numpy arrays of the points' length."""
    v, x = np.broadcast_arrays(np.asarray(v), np.asarray(x))
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    count = v.shape[0]
    assert count <= SIZE
    pad = (0, SIZE - count)
    v = jnp.asarray(np.pad(v, pad, constant_values=1.0), dtype)
    x = jnp.asarray(np.pad(x, pad, constant_values=1.0), dtype)
    out = _program(_names(dtype), v, x)
    grids = {"vmap_grid", "broadcast_grid"}
    return {
        name: value if name in grids else value[:count] for name, value in out.items()
    }


def test_edges_and_no_overflow_where_scipy_gives_up():
    inf, nan = np.inf, np.nan
    points = [
        (0.0, 0.0),
        (2.0, 0.0),
        (-2.0, 0.0),
        (-0.5, 0.0),
        (-1.5, 0.0),  # I_{-1.5}(0+) -> -inf: nan
        (3.0, inf),
        (3.0, 0.0),
        (1.0, -1.0),
        (nan, 1.0),
        (1.0, nan),
        (1e4, 1.0),
        (1.0, 1e4),
        (1e4, 1e-3),
    ]
    v, x = np.array(points).T
    out = {name: np.asarray(value) for name, value in evaluate(v, x).items()}
    np.testing.assert_array_equal(out["log_iv"][:6], [0.0, -inf, -inf, inf, nan, inf])
    assert out["log_ive"][5] == -inf
    assert out["log_kv"][6] == inf and out["log_kv"][5] == -inf
    for name in ("log_iv", "log_kv", "log_ive", "log_kve"):
        assert np.all(np.isnan(out[name][7:10])), name
    # SciPy: iv(1e4, 1) underflows to 0 and iv(1, 1e4) overflows to inf.
    assert sp.iv(1e4, 1.0) == 0.0 and np.isinf(sp.iv(1.0, 1e4))
    assert np.all(np.isfinite(out["log_iv"][10:12]))
    assert np.isfinite(out["log_kv"][12])


@pytest.mark.parametrize("dtype", _float_dtypes())
def test_dtype_is_kept(dtype):
    out = evaluate(ORDERS, ARGUMENTS, dtype)
    for name in ("log_iv", "log_kv", "log_iv_ratio", "iv"):
        assert out[name].dtype == dtype, name
        if name != "iv":  # iv overflows where the log does not
            assert np.all(np.isfinite(out[name])), name


def test_integers_promote_to_default_float():
    assert numerics.log_iv(2, 3).dtype == jnp.result_type(float)


def test_scipy_semantics_of_linear_functions():
    v = ORDERS[:7]
    x = ARGUMENTS[:7]
    out = evaluate(v, x)
    for name in LINEAR:
        np.testing.assert_allclose(out[name], getattr(sp, name)(v, x), rtol=1e-13)


def test_negative_orders_against_scipy():
    v = np.array([-0.5, -1.0, -2.5, -3.7, -10.2, -0.01])
    x = np.array([0.3, 2.0, 1.3, 5.0, 4.0, 1e-3])
    out = evaluate(v, x)
    np.testing.assert_allclose(out["iv"], sp.iv(v, x), rtol=1e-12)
    np.testing.assert_allclose(out["kv"], sp.kv(v, x), rtol=1e-13)
    expected = np.where(sp.iv(v, x) > 0, np.log(np.abs(sp.iv(v, x))), np.nan)
    np.testing.assert_allclose(out["log_iv"], expected, rtol=1e-12)


def test_recurrence_in_log_space():
    # I_{v-1} = I_{v+1} + (2v/x) I_v, i.e. log I_{v-1} = log I_v + log(2v/x + R_v).
    v = ORDERS[1:] + 1.0
    x = ARGUMENTS[1:]
    lhs = evaluate(v - 1, x)["log_iv"]
    at_v = evaluate(v, x)
    rhs = at_v["log_iv"] + jnp.log(2 * v / x + jnp.exp(at_v["log_iv_ratio"]))
    assert mixed_error(lhs, np.asarray(rhs)).max() <= 16 * eps(lhs.dtype)


def test_wronskian_in_log_space():
    # I_v K_{v+1} + I_{v+1} K_v = 1/x
    out = evaluate(ORDERS, ARGUMENTS)
    log_i, log_k = out["log_iv"], out["log_kv"]
    log_i1 = log_i + out["log_iv_ratio"]
    log_k1 = log_k + out["log_kv_ratio"]
    lhs = jnp.logaddexp(log_i + log_k1, log_i1 + log_k)
    # Adding two large logs of opposite sign keeps their absolute rounding.
    scale = np.maximum(1.0, np.abs(np.asarray(log_i)) + np.abs(np.asarray(log_k1)))
    error = np.abs(np.asarray(lhs) + np.log(ARGUMENTS)) / scale
    assert error.max() <= 16 * eps(lhs.dtype)


def test_jit_matches_eager():
    v, x = ORDERS[:4], ARGUMENTS[:4]
    jitted = evaluate(v, x)["log_kv"]
    with jax.disable_jit():
        eager = numerics.log_kv(jnp.asarray(v), jnp.asarray(x))
    # Eager runs each op unfused; XLA's fusion may round differently.
    np.testing.assert_allclose(jitted, eager, rtol=64 * eps(jitted.dtype))


def test_vmap_matches_broadcasting():
    out = evaluate(ORDERS, ARGUMENTS)
    tight = 2 * eps(out["log_iv"].dtype)
    np.testing.assert_allclose(out["vmap"], out["log_iv"], rtol=tight)
    # the grids run over the padded points too
    np.testing.assert_allclose(out["vmap_grid"], out["broadcast_grid"], rtol=tight)
    assert out["vmap_grid"].shape == (SIZE, SIZE)


GRADIENT_POINTS = np.array([(0.4, 1.3), (2.5, 7.0), (25.0, 16.0), (300.0, 50.0)])
X_DIFFERENTIABLE = ("log_iv", "log_kv", "log_ive", "log_kve")


@jax.jit
def _x_slopes(v, x, tangent, cotangent):
    out = {}
    for name in X_DIFFERENTIABLE:

        def function(t, name=name):
            return getattr(numerics, name)(v, t)

        primal, forward = jax.jvp(function, (x,), (tangent,))
        (backward,) = jax.vjp(function, x)[1](cotangent)
        out[name] = (primal, forward, backward)
    return out


# slow: weaker than the x-derivative against mpmath (the accuracy table and
# the property tests), which run by default
@pytest.mark.slow
def test_gradients_in_x_by_finite_differences():
    """What jax.test_util.check_grads(order=1, modes=["fwd", "rev"]) checks, for
    all four functions in one compiled program: forward mode against central
    differences (its step and float64 tolerance), reverse mode against forward
    mode."""
    v, x = GRADIENT_POINTS.T
    pad = (0, SIZE - len(v))
    vs = jnp.asarray(np.pad(v, pad, constant_values=1.0))
    xs = jnp.asarray(np.pad(x, pad, constant_values=1.0))
    rng = np.random.default_rng(0)
    tangent = jnp.asarray(rng.uniform(0.5, 1.5, SIZE))
    cotangent = jnp.asarray(rng.uniform(0.5, 1.5, SIZE))
    slopes = _x_slopes(vs, xs, tangent, cotangent)
    step = 1e-4
    above = evaluate(v, x + step * np.asarray(tangent)[: len(v)])
    below = evaluate(v, x - step * np.asarray(tangent)[: len(v)])
    values = evaluate(v, x)
    for name in X_DIFFERENTIABLE:
        primal, forward, backward = (np.asarray(a)[: len(v)] for a in slopes[name])
        np.testing.assert_allclose(primal, values[name], rtol=1e-13, err_msg=name)
        numerical = (np.asarray(above[name]) - np.asarray(below[name])) / (2 * step)
        np.testing.assert_allclose(
            forward, numerical, rtol=1e-5, atol=1e-5, err_msg=name
        )
        # elementwise, so <J t, c> = <t, J^T c> holds point by point
        np.testing.assert_allclose(
            forward * np.asarray(cotangent)[: len(v)],
            backward * np.asarray(tangent)[: len(v)],
            rtol=1e-12,
            err_msg=name,
        )


# With float64 on, test_log_bessel_accuracy.py checks d/dv at these points
# (and against mpmath over the whole table) in the program it compiles anyway:
# the order slope of log I takes ~20 s to compile.
@pytest.mark.skipif(
    jax.config.jax_enable_x64, reason="float64: checked in test_log_bessel_accuracy"
)
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


@pytest.mark.parametrize(
    "dtype", [jnp.float16, pytest.param(jnp.bfloat16, marks=pytest.mark.slow)]
)
def test_16_bit_inputs_computed_in_float32_returned_in_their_dtype(dtype):
    v = np.array([0.5, 3.0, 40.0])
    x = np.array([0.25, 2.0, 30.0])
    # 16-bit points are exact in float32
    narrow = evaluate(v, x, dtype)
    wide = evaluate(
        np.asarray(jnp.asarray(v, dtype), np.float32),
        np.asarray(jnp.asarray(x, dtype), np.float32),
        jnp.float32,
    )
    for name in SIXTEEN_BIT:
        assert narrow[name].dtype == dtype, name
        np.testing.assert_array_equal(narrow[name], wide[name].astype(dtype))


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_debye_sums_agree_on_every_backend(dtype):
    """The Debye polynomials are evaluated side by side on CPU and one by one
    on accelerators (``_debye._alternating_sums``); only the CPU one runs in
    this suite, so the other is held to it here: the same operations, equal
    but for XLA's choice of fused multiply-adds (1 ulp)."""
    from sciax.numerics import _debye
    from sciax.numerics._precision import kernel_parameters

    u_polys, d_polys = _debye.debye_polynomials(kernel_parameters(dtype).debye_terms)
    rng = np.random.default_rng(7)
    p = jnp.asarray(rng.uniform(0.0, 1.0, 64), dtype)
    t = p / jnp.asarray(rng.uniform(20.0, 1e4, 64), dtype)
    for polys in (u_polys, d_polys):
        side = jax.jit(functools.partial(_debye._sums_side_by_side, polys))(t, p * p)
        single = jax.jit(functools.partial(_debye._sums_one_by_one, polys))(t, p * p)
        for a, b in zip(side, single, strict=True):
            np.testing.assert_allclose(
                np.asarray(a), np.asarray(b), rtol=2 * eps(dtype), atol=0
            )
