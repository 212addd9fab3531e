"""Accuracy of the log-Bessel functions against the stored mpmath table."""

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


@pytest.mark.parametrize("name", sorted(VALUE_FUNCTIONS))
def test_float64_against_mpmath(table, name):
    v, x = jnp.asarray(table["v"]), jnp.asarray(table["x"])
    ours = np.asarray(VALUE_FUNCTIONS[name](v, x))
    hi, lo = table[name + "_hi"], table[name + "_lo"]
    assert np.all(np.isfinite(ours) == np.isfinite(hi)), "non-finite where finite"
    error = mixed_error(ours, hi, lo) / eps(np.float64)
    worst = int(np.argmax(error))
    assert error.max() <= 16, (name, error.max(), table["v"][worst], table["x"][worst])
    assert np.median(error) <= 1, (name, np.median(error))


X_DERIVATIVE_BOUND = 16


@pytest.mark.parametrize("name", ["log_iv", "log_kv"])
def test_x_derivative_against_mpmath(table, name):
    function = VALUE_FUNCTIONS[name]
    v, x = jnp.asarray(table["v"]), jnp.asarray(table["x"])
    slope = jax.vmap(jax.grad(function, argnums=1))(v, x)
    hi, lo = table[f"d{name}_dx_hi"], table[f"d{name}_dx_lo"]
    error = mixed_error(np.asarray(slope), hi, lo) / eps(np.float64)
    assert np.all(np.isfinite(slope))
    assert error.max() <= X_DERIVATIVE_BOUND, (name, error.max())


@pytest.mark.parametrize("name", ["log_iv", "log_kv"])
def test_order_derivative_against_mpmath(table, name):
    reference = table[f"d{name}_dv"]
    keep = np.isfinite(reference)
    v, x = jnp.asarray(table["v"][keep]), jnp.asarray(table["x"][keep])
    slope = np.asarray(jax.vmap(jax.grad(VALUE_FUNCTIONS[name], argnums=0))(v, x))
    error = mixed_error(slope, reference[keep])
    assert np.all(np.isfinite(slope))
    # The stored d/dv is itself a double rounded from 50 digits.
    assert error.max() <= 1e-10, (name, error.max())


FLOAT32_BOUND = 8


@pytest.mark.parametrize("name", ["log_iv", "log_kv"])
def test_float32_against_float64(table, name):
    """float32 at float32 inputs against our float64 at the same inputs (which
    the tests above hold to the mpmath table)."""
    function = VALUE_FUNCTIONS[name]
    v32 = table["v"].astype(np.float32)
    x32 = table["x"].astype(np.float32)
    keep = (x32 > 0) & np.isfinite(x32)
    v32, x32 = v32[keep], x32[keep]
    ours = np.asarray(function(jnp.asarray(v32), jnp.asarray(x32)))
    assert ours.dtype == np.float32
    reference = np.asarray(
        function(jnp.asarray(v32, jnp.float64), jnp.asarray(x32, jnp.float64))
    )
    finite = np.isfinite(reference) & (np.abs(reference) < 3e38)
    assert np.all(np.isfinite(ours[finite])), "non-finite where finite"
    error = mixed_error(ours[finite], reference[finite]) / eps(np.float32)
    assert error.max() <= FLOAT32_BOUND, (name, error.max())
