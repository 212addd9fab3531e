"""Accuracy of the log-Bessel functions against the stored mpmath table."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciax import numerics
from tests.helpers import bessel_reference, eps, mixed_error

pytestmark = pytest.mark.skipif(
    not jax.config.jax_enable_x64, reason="the reference checks need float64"
)


@pytest.fixture(scope="module")
def table():
    return bessel_reference()


VALUE_FUNCTIONS = {
    "log_iv": numerics.log_iv,
    "log_kv": numerics.log_kv,
    "log_iv_ratio": numerics.log_iv_ratio,
    "log_kv_ratio": numerics.log_kv_ratio,
}


# Each function takes seconds to compile for each shape and dtype; the tests
# below evaluate every function they need at every point of the table in one
# jitted program (about half the compile time of the functions one by one)
# and select points afterwards, so that no other shape is compiled.
@functools.partial(jax.jit, static_argnums=0)
def values(names, v, x):
    return {name: VALUE_FUNCTIONS[name](v, x) for name in names}


@functools.cache
def _float64_values():
    table = bessel_reference()
    v, x = jnp.asarray(table["v"]), jnp.asarray(table["x"])
    out = values(tuple(sorted(VALUE_FUNCTIONS)), v, x)
    return {name: np.asarray(value) for name, value in out.items()}


# d/dv log K_v(x) at v = 0 is 0 by symmetry; elsewhere it must not be: these
# points go through the slope program with the table's.
NOT_ZERO_V = np.array([0.5, 3.0, 40.0])
NOT_ZERO_X = np.full(3, 2.0)


@jax.jit
def slope_program(v, x):
    """(d/dv, d/dx) of log I and log K: reverse mode gives both from one
    pass. Shared with test_properties.py at the same shape."""
    return {
        name: jax.vmap(jax.grad(VALUE_FUNCTIONS[name], argnums=(0, 1)))(v, x)
        for name in ("log_iv", "log_kv")
    }


# the shapes of the two programs, which test_properties.py pads to
TABLE_POINTS = len(bessel_reference()["v"])
SLOPE_POINTS = TABLE_POINTS + len(NOT_ZERO_V)


@functools.cache
def _slopes():
    """slope_program at the table's points and NOT_ZERO's, in one program."""
    table = bessel_reference()
    v = jnp.asarray(np.concatenate([table["v"], NOT_ZERO_V]))
    x = jnp.asarray(np.concatenate([table["x"], NOT_ZERO_X]))
    program = slope_program
    out = program(v, x)
    return {name: tuple(np.asarray(s) for s in slopes) for name, slopes in out.items()}


@pytest.mark.parametrize("name", sorted(VALUE_FUNCTIONS))
def test_float64_against_mpmath(table, name):
    ours = _float64_values()[name]
    hi, lo = table[name + "_hi"], table[name + "_lo"]
    assert np.all(np.isfinite(ours) == np.isfinite(hi)), "non-finite where finite"
    error = mixed_error(ours, hi, lo) / eps(np.float64)
    worst = int(np.argmax(error))
    assert error.max() <= 16, (name, error.max(), table["v"][worst], table["x"][worst])
    assert np.median(error) <= 1, (name, np.median(error))


X_DERIVATIVE_BOUND = 16


@pytest.mark.parametrize("name", ["log_iv", "log_kv"])
def test_x_derivative_against_mpmath(table, name):
    slope = _slopes()[name][1][: len(table["x"])]
    hi, lo = table[f"d{name}_dx_hi"], table[f"d{name}_dx_lo"]
    error = mixed_error(slope, hi, lo) / eps(np.float64)
    assert np.all(np.isfinite(slope))
    assert error.max() <= X_DERIVATIVE_BOUND, (name, error.max())


@pytest.mark.parametrize("name", ["log_iv", "log_kv"])
def test_order_derivative_against_mpmath(table, name):
    reference = table[f"d{name}_dv"]
    keep = np.isfinite(reference)
    slope = _slopes()[name][0][: len(reference)][keep]
    error = mixed_error(slope, reference[keep])
    assert np.all(np.isfinite(slope))
    # The stored d/dv is itself a double rounded from 50 digits.
    assert error.max() <= 1e-10, (name, error.max())


def test_order_gradient_is_not_silently_zero():
    # d/dv log K_v(x) > 0 and d/dv log I_v(x) < 0 for v > 0: a derivative that
    # is not implemented must not come out as 0.
    count = len(NOT_ZERO_V)
    assert np.all(_slopes()["log_kv"][0][-count:] > 0)
    assert np.all(_slopes()["log_iv"][0][-count:] < 0)


FLOAT32_BOUND = 8


@pytest.mark.parametrize("name", ["log_iv", "log_kv"])
def test_float32_against_float64(table, name):
    """float32 at float32 inputs against our float64 at the same inputs (which
    the tests above hold to the mpmath table)."""
    v32 = table["v"].astype(np.float32)
    x32 = table["x"].astype(np.float32)
    ours = np.asarray(
        values(("log_iv", "log_kv"), jnp.asarray(v32), jnp.asarray(x32))[name]
    )
    assert ours.dtype == np.float32
    # the float64 program at the table's shape: the rounded points as float64
    reference = np.asarray(
        values(
            tuple(sorted(VALUE_FUNCTIONS)),
            jnp.asarray(v32, jnp.float64),
            jnp.asarray(x32, jnp.float64),
        )[name]
    )
    keep = (x32 > 0) & np.isfinite(x32)
    ours, reference = ours[keep], reference[keep]
    finite = np.isfinite(reference) & (np.abs(reference) < 3e38)
    assert np.all(np.isfinite(ours[finite])), "non-finite where finite"
    error = mixed_error(ours[finite], reference[finite]) / eps(np.float32)
    assert error.max() <= FLOAT32_BOUND, (name, error.max())
