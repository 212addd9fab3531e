"""Second derivatives of the log-Bessel functions against mpmath, and the
underflow band, where log I_v(x) is finite although I_v(x) underflows.

The references are the stored tables tests/data/second_derivative_reference.csv
and tests/data/underflow_band_reference.csv, made from mpmath's own besseli
and besselk (which share no code with ours) by
tests/data/make_second_derivative_reference.py."""

import csv
import functools

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

from sciax import numerics

from ..helpers import DATA, eps, mixed_error


def _table(name):
    with (DATA / name).open() as fh:
        return list(csv.DictReader(fh))


@functools.cache
def _second_derivative_table(name):
    """(v, x, [d2/dv2, d2/dvdx, d2/dx2]) of one function: a grid over the
    series region (v < 20, x <= 20), the recurrence and Debye regions, the
    tie v == x of the uniform expansion, and tiny x."""
    # log_ive and log_kve differ from log_iv and log_kv by -x and +x, which
    # no second derivative sees
    name = {"log_ive": "log_iv", "log_kve": "log_kv"}.get(name, name)
    rows = [
        row
        for row in _table("second_derivative_reference.csv")
        if row["function"] == name
    ]
    v = np.array([float(row["v"]) for row in rows])
    x = np.array([float(row["x"]) for row in rows])
    reference = np.array(
        [[float(row[key]) for key in ("d2_dv2", "d2_dvdx", "d2_dx2")] for row in rows]
    )
    return v, x, reference


@functools.cache
def _hessians(name):
    """[d2/dv2, d2/dvdx, d2/dx2] at the table's points by jax.hessian,
    jacfwd(grad) and forward-over-forward, in one compiled program."""
    function = getattr(numerics, name)
    v, x, _ = _second_derivative_table(name)
    v, x = jnp.asarray(v), jnp.asarray(x)

    def entries(matrix):
        return jnp.stack([matrix[0][0], matrix[0][1], matrix[1][1]])

    @jax.jit
    def program(v, x):
        by_hessian = jax.vmap(lambda v, x: entries(jax.hessian(function, (0, 1))(v, x)))
        by_jacfwd_grad = jax.vmap(
            lambda v, x: entries(jax.jacfwd(jax.grad(function, (0, 1)), (0, 1))(v, x))
        )
        by_jacfwd = jax.vmap(
            lambda v, x: entries(jax.jacfwd(jax.jacfwd(function, (0, 1)), (0, 1))(v, x))
        )
        return by_hessian(v, x), by_jacfwd_grad(v, x), by_jacfwd(v, x)

    return tuple(np.asarray(h) for h in program(v, x))


# Slow: compiling the three second-derivative programs of log_iv takes
# minutes of CPU (jacfwd(grad) alone 112 s on a busy 2-core machine): the
# compile cost that the numerics issue's section 3 is about.
@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["log_iv", "log_kv", "log_ive", "log_kve", "log_iv_ratio", "log_kv_ratio"]
)
def test_second_derivatives_against_mpmath(name):
    v, x, reference = _second_derivative_table(name)
    for ours in _hessians(name):
        error = np.abs(ours - reference) / np.maximum(1.0, np.abs(reference))
        worst = np.unravel_index(np.argmax(error), error.shape)
        point = (v[worst[0]], x[worst[0]])
        assert error.max() <= 1e-8, (name, point, worst[1], error.max())


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_underflow_band_is_finite_and_accurate(dtype):
    """Where I_v(x) underflows in the dtype (random points of the band that
    the numerics issue's probe found, and subnormal x): log I and log K
    finite and within 16 eps (float64) or 8 eps (float32)."""
    rows = [
        row
        for row in _table("underflow_band_reference.csv")
        if row["dtype"] == jnp.dtype(dtype).name
    ]
    v = jnp.asarray([float(row["v"]) for row in rows], dtype)
    x = jnp.asarray([float(row["x"]) for row in rows], dtype)
    values = jax.jit(lambda v, x: (numerics.log_iv(v, x), numerics.log_kv(v, x)))(v, x)
    for name, ours in zip(("log_iv", "log_kv"), values, strict=True):
        expected = np.array([float(row[name]) for row in rows])
        ours = np.asarray(ours, np.float64)
        assert np.all(np.isfinite(ours)), (name, ours)
        error = mixed_error(ours, expected) / eps(dtype)
        worst = int(np.argmax(error))
        bound = 16 if dtype == jnp.float64 else 8
        assert error[worst] <= bound, (name, rows[worst], error[worst])


def test_subnormal_x_in_the_linear_functions():
    # scipy.special semantics: I_0 -> 1, K_v -> huge but finite for small v
    x = jnp.asarray([1e-310, 5e-324])
    assert np.allclose(np.asarray(numerics.iv(0.0, x)), 1.0)
    kv = np.asarray(numerics.kv(0.3, x))
    expected = [float(mpmath.besselk(0.3, float(value))) for value in np.asarray(x)]
    assert np.allclose(kv, expected, rtol=1e-13)


# Slow: forward-over-forward-over-forward programs take minutes to compile
# on 2 CPU cores (log_kv ~100 s). log_iv is checked in x only: with the
# order its program (which carries K's for the negative-order reflection)
# compiled for over 15 minutes on 2 CPU cores.
_THIRD_DERIVATIVES = {
    "log_kv": ((3, 0), (2, 1), (0, 3)),
    "log_iv": ((0, 3),),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(_THIRD_DERIVATIVES))
def test_third_derivatives_against_mpmath(name):
    """Third derivatives (Laplace approximations, Newton on a learnt order)
    finite and right at points of the series, Temme and Debye regions,
    against mpmath's numerical differentiation at 40 digits."""
    function = getattr(numerics, name)
    bessel = {"log_iv": mpmath.besseli, "log_kv": mpmath.besselk}[name]
    orders = _THIRD_DERIVATIVES[name]
    v = np.array([0.5, 3.3, 25.0])
    x = np.array([2.0, 0.7, 30.0])

    def third(v, x):
        def derivative(dv, dx):
            g = function
            for argument in (0,) * dv + (1,) * dx:
                g = jax.jacfwd(g, argument)
            return g(v, x)

        return jnp.stack([derivative(dv, dx) for dv, dx in orders])

    ours = np.asarray(jax.jit(jax.vmap(third))(jnp.asarray(v), jnp.asarray(x)))
    assert np.all(np.isfinite(ours)), ours
    with mpmath.workdps(40):
        reference = np.array(
            [
                [
                    float(
                        mpmath.diff(
                            lambda a, b: mpmath.log(bessel(a, b)), (vi, xi), order
                        )
                    )
                    for order in orders
                ]
                for vi, xi in zip(v, x, strict=True)
            ]
        )
    error = np.abs(ours - reference) / np.maximum(1.0, np.abs(reference))
    assert error.max() <= 1e-8, (name, error)
