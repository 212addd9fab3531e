"""Property-based accuracy of log I and log K against mpmath, on random
(v, x) over the documented domain: values in float64 and float32, first
derivatives in float64.

Each hypothesis example is a batch of POINTS points, evaluated by the
accuracy tests' compiled programs (padded to their shape), so these tests
compile nothing of their own. The default run draws a small, derandomized
budget over v in [0, 200] and x from 1e-300 (1e-44 in float32, the underflow
band and subnormal x included) to 1e3, where mpmath answers in milliseconds;
``--runslow`` draws a random, larger budget (the hypothesis profile is
chosen in tests/conftest.py).
"""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st

from sciax import numerics
from tests.helpers import eps, mixed_error
from tests.numerics import test_log_bessel_accuracy as accuracy
from tests.numerics.test_log_bessel import evaluate

pytestmark = pytest.mark.skipif(
    not jax.config.jax_enable_x64, reason="the reference checks need float64"
)

POINTS = 8
FUNCTIONS = {"log_iv": numerics.log_iv, "log_kv": numerics.log_kv}
MPMATH = {"log_iv": mpmath.besseli, "log_kv": mpmath.besselk}


def _points(smallest_log10_x):
    """POINTS pairs (v, x): orders from a mix of small and log-spread
    values, x log-uniform (mostly) or one of the edges of its range."""
    order = st.one_of(
        st.floats(0.0, 2.0),
        st.floats(-3.0, np.log10(200.0)).map(lambda t: 10.0**t),
        st.sampled_from([0.0, 0.5, 1.0, 19.5, 20.0, 100.0]),
    )
    argument = st.one_of(
        st.floats(smallest_log10_x, 3.0).map(lambda t: 10.0**t),
        st.floats(-1.0, 1.5).map(lambda t: 10.0**t),
    )
    pair = st.tuples(order, argument)
    return st.lists(pair, min_size=POINTS, max_size=POINTS)


def _padded(column, size, dtype):
    """column in front, 1.0 behind: the accuracy tests' shape, so that their
    compiled programs serve these tests (in one process, or through the
    suite's shared compilation cache)."""
    out = np.ones(size, dtype)
    out[: len(column)] = column
    return jnp.asarray(out)


def _program(dtype):
    """Values, and in float64 the gradients, of both functions, by the
    accuracy tests' programs."""
    size = accuracy.TABLE_POINTS

    def program(v, x):
        names = tuple(sorted(accuracy.VALUE_FUNCTIONS))
        if dtype == jnp.float32:
            names = ("log_iv", "log_kv")
        out = accuracy.values(names, _padded(v, size, dtype), _padded(x, size, dtype))
        out = {name: out[name][: len(v)] for name in FUNCTIONS}
        if dtype == jnp.float64:
            slopes = accuracy.slope_program(
                _padded(v, accuracy.SLOPE_POINTS, dtype),
                _padded(x, accuracy.SLOPE_POINTS, dtype),
            )
            for name in FUNCTIONS:
                out[name + "_slopes"] = tuple(s[: len(v)] for s in slopes[name])
        return out

    return program


def _reference_value(name, v, x):
    with mpmath.workdps(40):
        return float(mpmath.log(MPMATH[name](mpmath.mpf(v), mpmath.mpf(x))))


def _reference(name, v, x):
    """(log f, d/dv log f, d/dx log f) at 40 digits."""
    with mpmath.workdps(40):
        v, x = mpmath.mpf(v), mpmath.mpf(x)
        f = MPMATH[name]
        value = mpmath.log(f(v, x))
        # d/dx from the recurrences: I' = I_{v+1} + (v/x) I, K' = -K_{v+1} + (v/x) K
        sign = 1 if name == "log_iv" else -1
        x_slope = sign * f(v + 1, x) / f(v, x) + v / x
        v_slope = mpmath.diff(lambda order: mpmath.log(f(order, x)), v)
        return float(value), float(v_slope), float(x_slope)


def _check_float64(pairs):
    v, x = (np.asarray(column, np.float64) for column in zip(*pairs, strict=True))
    out = _program(jnp.float64)(v, x)
    for name in FUNCTIONS:
        reference = np.array([_reference(name, *p) for p in zip(v, x, strict=True)])
        value = np.asarray(out[name])
        v_slope, x_slope = (np.asarray(s) for s in out[name + "_slopes"])
        for what, ours, ref, bound in [
            ("value", value, reference[:, 0], 16 * eps(np.float64)),
            # d/dx log K = v/x - K_{v+1}/K_v cancels by up to a factor of
            # two, and where the order slope is taken along (this program),
            # the ratio comes from the differentiated kernel, which at tiny x
            # and v < 1/2 rounds differently: 112 eps measured at
            # (0.301, 5.5e-138), 17 eps without the order slope
            ("d/dx", x_slope, reference[:, 2], 128 * eps(np.float64)),
            ("d/dv", v_slope, reference[:, 1], 1e-10),
        ]:
            error = mixed_error(ours, ref)
            worst = int(np.argmax(error))
            assert error[worst] <= bound, (name, what, v[worst], x[worst], error[worst])


@given(_points(-300.0))
def test_float64_values_and_first_derivatives(pairs):
    _check_float64(pairs)


@given(_points(-44.0))
def test_float32_values(pairs):
    v = np.array([p[0] for p in pairs], np.float32)
    x = np.array([p[1] for p in pairs], np.float32)
    keep = x > 0  # the draw may round below float32's smallest subnormal
    out = _program(jnp.float32)(v, x)
    for name in FUNCTIONS:
        ours = np.asarray(out[name])
        assert ours.dtype == np.float32
        reference = np.array(
            [
                _reference_value(name, float(a), float(b))
                for a, b in zip(v, x, strict=True)
            ]
        )
        error = mixed_error(ours[keep], reference[keep]) / eps(np.float32)
        assert np.all(np.isfinite(ours[keep])), (name, v, x)
        assert error.max() <= 8, (name, v[keep], x[keep], error)


def _any_float():
    """Every kind of float64: nan, +-inf, +-0, subnormal, huge, negative."""
    return st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)


@given(
    st.lists(st.tuples(_any_float(), _any_float()), min_size=POINTS, max_size=POINTS)
)
def test_any_float_input_against_scipy(pairs):
    """The fuzz of the numerics issue as a property: on any float64 pair,
    nan exactly where the domain says (nan input, x < 0, log I of a negative
    I at a negative order), and where SciPy's scaled functions give a
    positive normal number, the same log within 1e-12 relative (SciPy's own
    accuracy, not ours, sets the bound)."""
    v, x = (np.asarray(column, np.float64) for column in zip(*pairs, strict=True))
    # test_log_bessel's program: compiled once for both files
    everything = evaluate(v, x)
    out = {
        name: everything[name] for name in ("log_iv", "log_ive", "log_kv", "log_kve")
    }
    with np.errstate(all="ignore"):
        scipy_values = {
            "log_ive": scipy.special.ive(v, x),
            "log_kve": scipy.special.kve(v, x),
        }
    outside = np.isnan(v) | np.isnan(x) | (x < 0)
    for name, value in out.items():
        value = np.asarray(value)
        assert np.all(np.isnan(value[outside])), (name, v[outside], x[outside])
        if name == "log_kv" or name == "log_kve":
            # K_v(x) > 0 for every real v and x > 0: never nan inside
            assert not np.any(np.isnan(value[~outside])), (name, v, x, value)
    for name, theirs in scipy_values.items():
        usable = ~outside & np.isfinite(theirs) & (theirs > 1e-300) & (theirs < 1e300)
        ours = np.asarray(out[name])[usable]
        expected = np.log(theirs[usable])
        error = np.abs(ours - expected) / np.maximum(1.0, np.abs(expected))
        assert np.all(error <= 1e-12), (name, v[usable], x[usable], error)
