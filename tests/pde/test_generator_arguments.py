"""The argument checks every dataset generator shares: they fail at call
time, before anything compiles, naming the generator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciax import pde

GENERATORS = {
    "darcy_samples": lambda **kw: pde.darcy_samples(
        jax.random.key(0), kw.pop("num_samples", 2), resolution=9, **kw
    ),
    "burgers_samples": lambda **kw: pde.burgers_samples(
        jax.random.key(0), kw.pop("num_samples", 2), resolution=16, **kw
    ),
}


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"num_samples": 0}, "num_samples must be an int >= 1"),
        ({"num_samples": 2.0}, "num_samples must be an int >= 1"),
        ({"num_samples": True}, "num_samples must be an int >= 1"),
        ({"batch_size": 0}, "batch_size must be an int >= 1"),
        ({"batch_size": np.float64(4)}, "batch_size must be an int >= 1"),
    ],
)
def test_counts_are_positive_ints(name, arguments, message):
    with pytest.raises(ValueError, match=f"{name}: {message}"):
        GENERATORS[name](**arguments)


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.int32, jnp.complex64])
def test_only_float32_and_float64(name, dtype):
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        GENERATORS[name](dtype=dtype)


def test_initial_condition_refuses_other_dtypes():
    with pytest.raises(TypeError, match="burgers_initial_condition: dtype"):
        pde.burgers_initial_condition(jax.random.key(0), 16, dtype=jnp.bfloat16)
