"""Second derivatives of the log-Bessel functions against mpmath, and the
underflow band, where log I_v(x) is finite although I_v(x) underflows.

The references are computed here from mpmath at 30 digits (a few dozen
points: cheap), by numerical differentiation of mpmath's own besseli and
besselk, which share no code with ours."""

import functools

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

from sciax import numerics

from ..helpers import eps, mixed_error

# (v, x): the series region (v < 20, x <= 20), the recurrence and Debye
# regions, the tie v == x of the uniform expansion, tiny x.
POINTS = [
    (0.0, 2.0),
    (1.5, 2.0),
    (19.5, 20.0),
    (7.25, 35.0),
    (3.0, 1e-6),
    (20.0, 20.0),
    (100.0, 100.0),
    (250.0, 40.0),
    (0.3, 0.05),
    (2.5, 400.0),
]

REFERENCE = {"log_iv": mpmath.besseli, "log_kv": mpmath.besselk}


@functools.cache
def _reference(name):
    mpmath.mp.dps = 30
    bessel = REFERENCE[name]

    def log_f(v, x):
        return mpmath.log(bessel(v, x))

    out = []
    for v, x in POINTS:
        vv, xx = mpmath.mpf(v), mpmath.mpf(x)
        out.append(
            [
                float(mpmath.diff(log_f, (vv, xx), (2, 0))),
                float(mpmath.diff(log_f, (vv, xx), (1, 1))),
                float(mpmath.diff(log_f, (vv, xx), (0, 2))),
            ]
        )
    return np.asarray(out)


@functools.cache
def _hessians(name):
    """[d2/dv2, d2/dvdx, d2/dx2] at POINTS by jax.hessian, jacfwd(grad) and
    forward-over-forward, in one compiled program."""
    function = getattr(numerics, name)
    v, x = (jnp.asarray(column, jnp.float64) for column in zip(*POINTS, strict=True))

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
@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_second_derivatives_against_mpmath(name):
    reference = _reference(name)
    for ours in _hessians(name):
        error = np.abs(ours - reference) / np.maximum(1.0, np.abs(reference))
        worst = np.unravel_index(np.argmax(error), error.shape)
        assert error.max() <= 1e-8, (name, POINTS[worst[0]], worst[1], error.max())


# Points of the underflow band: I_v(x) below the smallest normal number, its
# log finite. Float64 from the probes; x subnormal in the last rows.
BAND64 = [
    (18.97, 6.7e-16),
    (19.3338, 2.739e-16),
    (8.3, 1e-40),
    (20.0, 1e-307),
    (1e300, 1e-12),
    (0.0, 2.3e-308),
    (0.0, 1e-310),
    (2.5, 1e-310),
    (25.0, 4e-320),
]
BAND32 = [(0.88195, 1.4e-45), (1.0, 2e-38), (9.5, 1e-20), (1e6, 1e-34), (3.0, 2.7e-40)]


def _log_i_reference(v, x):
    mpmath.mp.dps = 50
    return float(mpmath.log(mpmath.besseli(mpmath.mpf(v), mpmath.mpf(x))))


def _log_k_reference(v, x):
    mpmath.mp.dps = 50
    v, x = mpmath.mpf(v), mpmath.mpf(x)
    if v > 1e6:
        # mpmath's besselk meets a pole of its hypergeometric series there;
        # DLMF 10.30.2's leading term has relative error x^2 / (4v) < 1e-300
        return float(mpmath.loggamma(v) + (v - 1) * mpmath.log(2) - v * mpmath.log(x))
    return float(mpmath.log(mpmath.besselk(v, x)))


@pytest.mark.parametrize(
    "dtype, points", [(jnp.float64, BAND64), (jnp.float32, BAND32)]
)
def test_underflow_band_is_finite_and_accurate(dtype, points):
    v = jnp.asarray([p[0] for p in points], dtype)
    x = jnp.asarray([p[1] for p in points], dtype)
    # the reference at the rounded inputs, as the function sees them
    v_seen = np.asarray(v, np.float64)
    x_seen = [float(value) for value in np.asarray(x)]
    values = jax.jit(lambda v, x: (numerics.log_iv(v, x), numerics.log_kv(v, x)))(v, x)
    for name, ours, reference in zip(
        ("log_iv", "log_kv"), values, (_log_i_reference, _log_k_reference), strict=True
    ):
        expected = np.asarray(
            [reference(a, b) for a, b in zip(v_seen, x_seen, strict=True)]
        )
        ours = np.asarray(ours, np.float64)
        assert np.all(np.isfinite(ours)), (name, ours)
        error = mixed_error(ours, expected) / eps(dtype)
        assert error.max() <= (16 if dtype == jnp.float64 else 8), (name, error)


def test_subnormal_x_in_the_linear_functions():
    # scipy.special semantics: I_0 -> 1, K_v -> huge but finite for small v
    x = jnp.asarray([1e-310, 5e-324])
    assert np.allclose(np.asarray(numerics.iv(0.0, x)), 1.0)
    kv = np.asarray(numerics.kv(0.3, x))
    expected = [float(mpmath.besselk(0.3, float(value))) for value in np.asarray(x)]
    assert np.allclose(kv, expected, rtol=1e-13)
