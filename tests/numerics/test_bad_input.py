"""Inputs outside the functions' contract get a clear error or a documented
nan, never a silent wrong value (cases from an outside fuzz of the API)."""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

from sciax import numerics

from ..helpers import eps, mixed_error

FUNCTIONS = [numerics.log_iv, numerics.log_kv, numerics.iv, numerics.kve]


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad", [[1.0, 2.0], (1.0, 2.0)], ids=["list", "tuple"])
def test_sequences_are_refused_as_jax_numpy_does(function, bad):
    with pytest.raises(TypeError, match="expected an array or scalar"):
        function(0.5, bad)


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_complex_input_is_refused(function):
    # the imaginary part used to be dropped silently
    with pytest.raises(TypeError, match="complex input"):
        function(0.5, 1.0 + 2.0j)
    with pytest.raises(TypeError, match="complex input"):
        function(jnp.asarray(0.5 + 0.1j), 1.0)


def test_gradient_of_a_nan_value_is_nan():
    # I_{-1.5}(1) < 0, so log I is nan; its derivative must not be 0
    assert np.isnan(numerics.log_iv(-1.5, 1.0))
    assert np.isnan(jax.grad(numerics.log_iv, 1)(-1.5, 1.0))


@pytest.mark.parametrize(
    "dtype, x", [(jnp.float64, 1e308), (jnp.float64, 1.7e308), (jnp.float32, 2e38)]
)
def test_log_kve_near_the_largest_float(dtype, x):
    # K_{1/2}(x) e^x = sqrt(pi / (2x)) exactly
    x = jnp.asarray(x, dtype)
    expected = float(0.5 * (mpmath.log(mpmath.pi / 2) - mpmath.log(float(x))))
    ours = float(numerics.log_kve(jnp.asarray(0.5, dtype), x))
    assert mixed_error(np.asarray(ours), np.asarray(expected)) / eps(dtype) <= 4
