"""log_matern: values and derivatives against a stored mpmath table
(tests/data/matern_reference.csv, made by make_matern_reference.py), the
closed forms at nu = 1/2, 3/2, 5/2, the edges of the domain, dtypes, jit and
vmap, and a property test against mpmath.

Errors are |delta| / max(1, |reference|) in eps of the dtype (absolute near
log M = 0, where a log has no relative accuracy to keep), the x-derivative's
relative. Every test evaluates through one of three compiled programs (float64
values and both derivatives, float32 values, and the public function's own),
each compiled once for the table's padded length.
"""

import csv
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sciax import numerics
from tests.helpers import DATA, eps, mixed_error

pytestmark = pytest.mark.skipif(
    not jax.config.jax_enable_x64, reason="the reference checks need float64"
)

SIZE = 320  # the table's rows, padded; every program is compiled for this length
POINTS = 8  # points per hypothesis example
TINY = float(np.finfo(np.float64).smallest_normal)
LARGEST = float(np.finfo(np.float64).max)


def _reference_module():
    """tests/data/make_matern_reference.py, whose mpmath functions are the
    property test's reference (tests/data is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "make_matern_reference", DATA / "make_matern_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table():
    with (DATA / "matern_reference.csv").open() as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    table = np.array(body, dtype=np.float64)
    return {name: table[:, i] for i, name in enumerate(header)}


TABLE = _table()


@jax.jit
def _values_and_slopes(nu, x):
    value, (d_nu, d_x) = jax.vmap(
        jax.value_and_grad(numerics.log_matern, argnums=(0, 1))
    )(nu, x)
    return value, d_nu, d_x


@jax.jit
def _values(nu, x):
    return numerics.log_matern(nu, x)


def _padded(column, dtype):
    column = np.asarray(column, dtype)
    assert column.shape[0] <= SIZE
    out = np.ones(SIZE, dtype)
    out[: column.shape[0]] = column
    return jnp.asarray(out)


def evaluate64(nu, x):
    """(log M, d/dnu, d/dx) in float64 at the points, as numpy arrays."""
    nu, x = np.broadcast_arrays(np.asarray(nu, np.float64), np.asarray(x, np.float64))
    count = nu.shape[0]
    outs = _values_and_slopes(_padded(nu, np.float64), _padded(x, np.float64))
    return tuple(np.asarray(out)[:count] for out in outs)


def evaluate32(nu, x):
    nu, x = np.broadcast_arrays(np.asarray(nu, np.float32), np.asarray(x, np.float32))
    out = _values(_padded(nu, np.float32), _padded(x, np.float32))
    assert out.dtype == jnp.float32
    return np.asarray(out)[: nu.shape[0]]


def _slope_error(ours, reference):
    """Relative error of the x-slope; references beyond the float range are
    compared with the largest float (where the slope is capped), and below
    the normal range absolutely (the slope may flush to zero there)."""
    reference = np.clip(reference, -LARGEST, LARGEST)
    scale = np.maximum(np.abs(reference), TINY / np.finfo(np.float64).eps)
    return np.abs(ours - reference) / scale


def test_float64_values_against_mpmath():
    value, _, _ = evaluate64(TABLE["nu"], TABLE["x"])
    error = mixed_error(value, TABLE["log_m_hi"], TABLE["log_m_lo"]) / eps(np.float64)
    worst = int(np.argmax(error))
    # measured: 41 eps at (12.0, 3.3), in the band 5 < nu < 20, 1 < x < 30
    # where the terms of the sum on log K reach ~60 (random sweeps: 70);
    # elsewhere a few eps
    assert error[worst] <= 64, (TABLE["nu"][worst], TABLE["x"][worst], error[worst])
    assert np.median(error) <= 1


def test_float64_derivatives_against_mpmath():
    _, d_nu, d_x = evaluate64(TABLE["nu"], TABLE["x"])
    nu, x = TABLE["nu"], TABLE["x"]
    x_error = _slope_error(d_x, TABLE["dlog_m_dx"]) / eps(np.float64)
    # measured: 10 eps for x >= 1e-30; below, for nu < 1, the slope is
    # ~ x^(2 nu - 1), an exponential of ~(2 nu - 1) log x whose rounding
    # (log x ~ -700) gives up to 348 eps (at nu = 0.1, x = 5e-324)
    normal = x >= 1e-30
    worst = int(np.argmax(np.where(normal, x_error, 0.0)))
    assert x_error[worst] <= 32, (nu[worst], x[worst], x_error[worst])
    worst = int(np.argmax(x_error))
    assert x_error[worst] <= 512, (nu[worst], x[worst], x_error[worst])
    nu_error = mixed_error(d_nu, TABLE["dlog_m_dnu"]) / eps(np.float64)
    worst = int(np.argmax(nu_error))
    # measured: 15 eps (random sweeps: 30); the sum on log K cancels in
    # d/dnu as in the value
    assert nu_error[worst] <= 64, (nu[worst], x[worst], nu_error[worst])


def test_float32_values_against_float64():
    """float32 at float32-rounded inputs against float64 at the same inputs
    (accurate to ~60 eps64, far below float32's eps)."""
    nu32 = TABLE["nu"].astype(np.float32)
    x32 = TABLE["x"].astype(np.float32)
    ours = evaluate32(nu32, x32)
    reference, _, _ = evaluate64(nu32.astype(np.float64), x32.astype(np.float64))
    both_nan = np.isnan(ours) & np.isnan(reference)
    assert not np.any(np.isnan(ours) & ~both_nan)
    error = mixed_error(ours, reference) / eps(np.float32)
    worst = int(np.argmax(error))
    # measured: 17 eps32 (random sweeps: 31 eps32, nu in [6, 10), x in [1, 6])
    assert error[worst] <= 48, (nu32[worst], x32[worst], error[worst])


@pytest.mark.parametrize(
    ("nu", "closed_form", "slope"),
    [
        (0.5, lambda x: -x, lambda x: -np.ones_like(x)),
        (1.5, lambda x: np.log1p(x) - x, lambda x: -x / (1 + x)),
        (
            2.5,
            lambda x: np.log1p(x + x * x / 3) - x,
            lambda x: -x * (1 + x) / (3 + 3 * x + x * x),
        ),
    ],
)
def test_closed_forms_at_half_integer_orders(nu, closed_form, slope):
    x = np.concatenate([[0.0, 1e-300, 1e-9], np.linspace(0.01, 60.0, 200)])
    value, d_nu, d_x = evaluate64(np.full_like(x, nu), x)
    expected = closed_form(x)
    error = mixed_error(value, expected) / eps(np.float64)
    assert error.max() <= 8, (x[np.argmax(error)], error.max())
    positive = x > 0
    slope_error = np.abs(d_x - slope(x))[positive] / np.abs(slope(x))[positive]
    assert slope_error.max() <= 16 * eps(np.float64), x[positive][
        np.argmax(slope_error)
    ]
    assert np.all(np.isfinite(d_nu))


def test_edges_and_nan_outside_the_domain():
    nu = np.array([0.3, 0.5, 1.5, 30.0, 1.5, 0.3, 0.0, -1.0, np.nan, np.inf, 1.0, 1.0])
    x = np.array([0.0, 0.0, 0.0, 0.0, np.inf, np.inf, 1.0, 1.0, 1.0, 1.0, -1.0, np.nan])
    value, d_nu, d_x = evaluate64(nu, x)
    # x = 0: log M = 0 for every nu, so d/dnu = 0; d/dx is its limit (0, or
    # -1 at nu = 1/2) and 0 for nu < 1/2 (right derivative -inf): finite,
    # so that x = c r at r = 0 gives exactly 0 in c and nu, never 0 * inf
    np.testing.assert_array_equal(value[:4], 0.0)
    np.testing.assert_array_equal(d_nu[:4], 0.0)
    np.testing.assert_array_equal(d_x[:4], [0.0, -1.0, 0.0, 0.0])
    # x = inf: log M = -inf, slope -1
    np.testing.assert_array_equal(value[4:6], -np.inf)
    np.testing.assert_array_equal(d_x[4:6], -1.0)
    # nu <= 0, nu = nan or inf, x < 0, x = nan: nan with nan derivatives
    for out in (value, d_nu, d_x):
        assert np.all(np.isnan(out[6:])), out[6:]


def test_subnormal_and_tiny_arguments_are_finite():
    nu = np.repeat([0.05, 0.5, 0.999, 1.0, 1.001, 2.0, 7.3, 19.9, 25.0, 300.0], 4)
    x = np.tile([5e-324, 1e-310, 1e-200, 1e-12], 10)
    value, d_nu, d_x = evaluate64(nu, x)
    for out in (value, d_nu, d_x):
        assert np.all(np.isfinite(out)), (nu, x, out)
    assert np.all(value <= 0) and np.all(d_x <= 0)


def test_jit_vmap_and_the_public_function_agree():
    nu = _padded(TABLE["nu"], np.float64)
    x = _padded(TABLE["x"], np.float64)
    direct = np.asarray(numerics.log_matern(nu, x))
    mapped, _, _ = _values_and_slopes(nu, x)
    # the jitted, vmapped program's values come from the derivative rule,
    # which takes the forward pass through the K kernel: it rounds the terms
    # of the general form (up to ~60 in size) differently, by a few ulp
    error = mixed_error(mapped, direct) / eps(np.float64)
    assert error.max() <= 16, error.max()
    np.testing.assert_array_equal(np.isnan(direct), np.isnan(mapped))


def test_integers_promote_to_the_default_float():
    nu = np.ones(SIZE, np.int32) * 2
    out = numerics.log_matern(jnp.asarray(nu), jnp.asarray(nu))
    assert out.dtype == jnp.float64
    # log((1 + 2 + 4/3) e^-2) at nu = 2.5 would differ; nu = 2, x = 2:
    # M_2(2) = 2 * 2^2 / 2 K_2(2) / Gamma(2) ... from the table's neighbour
    reference = _reference_module().log_m(2.0, 2.0)
    assert abs(float(out[0]) - float(reference)) <= 8 * eps(np.float64)


def _points():
    """POINTS pairs (nu, x) over the documented domain: orders mostly below
    the Debye order (mpmath's besselk is quick there), some up to 200;
    x log-uniform from the subnormals to 1e3, or in the band of the largest
    errors."""
    order = st.one_of(
        st.floats(0.01, 2.0),
        st.floats(1.5, 20.0),
        st.floats(-2.0, np.log10(200.0)).map(lambda t: 10.0**t),
    )
    argument = st.one_of(
        st.floats(-320.0, 3.0).map(lambda t: 10.0**t),
        st.floats(-1.0, 1.5).map(lambda t: 10.0**t),
    )
    return st.lists(st.tuples(order, argument), min_size=POINTS, max_size=POINTS)


REFERENCE = _reference_module()


@given(_points())
def test_values_and_x_slopes_against_mpmath(pairs):
    nu, x = (np.asarray(column, np.float64) for column in zip(*pairs, strict=True))
    value, _, d_x = evaluate64(nu, x)
    reference = np.array([float(REFERENCE.log_m(a, b)) for a, b in pairs])
    slopes = np.array([float(REFERENCE.x_slope(a, b)) for a, b in pairs])
    error = mixed_error(value, reference) / eps(np.float64)
    # random sweeps: 70 eps at most (the band of the table test)
    assert error.max() <= 96, (nu, x, error)
    x_error = _slope_error(d_x, slopes) / eps(np.float64)
    # near the underflow at nu < 1 the slope ~ x^(2 nu - 1) is an exponential
    # of (2 nu - 1) log x, whose rounding it inherits: at most that many eps
    # (up to ~700 at the smallest subnormals; found: 554 at nu = 0.03,
    # x = 1e-320)
    bound = 16 + np.abs((2 * nu - 1) * np.log(np.where(x > 0, x, 1.0)))
    assert np.all(x_error <= bound), (nu, x, x_error, bound)


@pytest.mark.slow
def test_float32_derivatives_against_float64():
    program = jax.jit(jax.vmap(jax.value_and_grad(numerics.log_matern, argnums=(0, 1))))
    nu32 = TABLE["nu"].astype(np.float32)
    x32 = TABLE["x"].astype(np.float32)
    value, (d_nu, d_x) = program(_padded(nu32, np.float32), _padded(x32, np.float32))
    count = nu32.shape[0]
    d_nu, d_x = np.asarray(d_nu)[:count], np.asarray(d_x)[:count]
    _, ref_nu, ref_x = evaluate64(nu32.astype(np.float64), x32.astype(np.float64))
    assert np.asarray(value).dtype == np.float32
    finite = np.isfinite(ref_x)
    tiny32 = float(np.finfo(np.float32).smallest_normal) / eps(np.float32)
    scale = np.maximum(np.abs(ref_x), tiny32)
    x_error = (np.abs(d_x - ref_x) / scale)[finite] / eps(np.float32)
    assert x_error.max() <= 64, x_error.max()
    nu_error = mixed_error(d_nu, ref_nu)[finite] / eps(np.float32)
    assert nu_error.max() <= 64, nu_error.max()
