"""The von Mises-Fisher distribution and its fit at the edges of their
contract: what scipy.stats.vonmises_fisher refuses is refused where values are
concrete and nan under a transform; infinite and nan concentrations, int
shapes, float16 samples, and the fit's implicit gradient (cases from an
outside fuzz of the API)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import sciax
from sciax import numerics

MU = jnp.array([0.0, 0.6, 0.8])


@pytest.mark.parametrize(
    "mean", [[0.0, 0.0, 2.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [np.nan, 0.0, 1.0]]
)
def test_a_mean_that_is_not_a_unit_vector_is_refused(mean):
    with pytest.raises(ValueError, match="unit vector"):
        numerics.VonMisesFisher(jnp.array(mean), 2.0)


def test_a_negative_concentration_is_refused():
    with pytest.raises(ValueError, match="concentration must be >= 0"):
        numerics.VonMisesFisher(MU, -1.0)


def test_under_jit_an_invalid_distribution_gives_nan():
    def everything(mean, kappa):
        vmf = numerics.VonMisesFisher(mean, kappa)
        return (
            vmf.log_prob(MU),
            vmf.sample(jr.key(0), 4),
            vmf.mean(),
            vmf.entropy(),
        )

    run = jax.jit(everything)
    for mean, kappa in [(2.0 * MU, 2.0), (MU, -1.0), (jnp.zeros(3), 2.0)]:
        for out in run(mean, kappa):
            assert np.all(np.isnan(out))
    # the valid one is untouched
    for out in run(MU, 2.0):
        assert np.all(np.isfinite(out))


def test_log_prob_off_the_sphere():
    vmf = numerics.VonMisesFisher(MU, 2.0)
    with pytest.raises(ValueError, match="unit sphere"):
        vmf.log_prob(jnp.array([0.0, 0.0, 0.5]))
    points = jnp.array([[0.0, 0.0, 0.5], [0.0, 0.0, 1.0]])
    traced = jax.jit(lambda p: vmf.log_prob(p))(points)
    assert np.isnan(traced[0])
    np.testing.assert_allclose(traced[1], vmf.log_prob(points[1]), rtol=1e-15)
    # a list is array-like, as in scipy
    np.testing.assert_allclose(vmf.log_prob([0.0, 0.6, 0.8]), vmf.log_prob(MU))


def test_samples_for_an_int_shape_and_non_finite_concentrations():
    key = jr.key(3)
    assert numerics.VonMisesFisher(MU, 2.0).sample(key, 5).shape == (5, 3)
    # the rejection loop used to spin forever on these
    at_inf = numerics.VonMisesFisher(MU, jnp.inf).sample(key, 4)
    np.testing.assert_array_equal(at_inf, np.broadcast_to(MU, (4, 3)))
    assert np.all(np.isnan(numerics.VonMisesFisher(MU, jnp.nan).sample(key, 4)))
    # 4 kappa^2 overflows here; the samples are mu to rounding
    huge = numerics.VonMisesFisher(MU, 1e300).sample(key, 4)
    np.testing.assert_allclose(huge, np.broadcast_to(MU, (4, 3)), atol=1e-12)


def test_fit_of_identical_vectors_is_a_point_mass():
    # it used to be nan: the resultant's norm came out an ulp above n. Here
    # R-bar is 1 to rounding, so kappa is inf or the ~1/eps that rounding
    # leaves.
    rows = jnp.broadcast_to(MU, (100, 3))
    fit = numerics.fit_vmf(rows)
    assert fit.result == sciax.RESULTS.successful
    assert fit.value.concentration > 1e14
    exact = numerics.fit_vmf(jnp.broadcast_to(jnp.array([0.0, 1.0, 0.0]), (100, 3)))
    assert exact.value.concentration == jnp.inf


def test_fit_refuses_rows_off_the_sphere_and_gives_nan_under_jit():
    samples = numerics.VonMisesFisher(MU, 10.0).sample(jr.key(1), 50)
    with pytest.raises(ValueError, match="unit vectors"):
        numerics.fit_vmf(0.5 * samples)
    assert np.isnan(jax.jit(numerics.fit_vmf)(0.5 * samples).value.concentration)


def test_float16_samples_fit_without_overflow():
    samples = numerics.VonMisesFisher(MU, 10.0).sample(jr.key(2), 500)
    wide = numerics.fit_vmf(samples).value.concentration
    narrow = numerics.fit_vmf(samples.astype(jnp.float16)).value.concentration
    assert narrow.dtype == jnp.float16
    assert abs(float(narrow) / float(wide) - 1) < 1e-2


def test_fit_gradient_by_the_implicit_function_theorem():
    samples = numerics.VonMisesFisher(MU, 10.0).sample(jr.key(4), 40)
    weights = jnp.linspace(0.5, 1.5, 40)

    def kappa(w):
        return numerics.fit_vmf(samples, weights=w).value.concentration

    # reverse mode, through the Newton loop that has no reverse rule
    gradient = jax.grad(kappa)(weights)
    direction = jnp.cos(jnp.arange(40.0))
    # kappa is converged to ~16 eps relative; a larger step keeps that noise
    # below the truncation error
    h = 1e-4
    difference = (kappa(weights + h * direction) - kappa(weights - h * direction)) / (
        2 * h
    )
    np.testing.assert_allclose(gradient @ direction, difference, rtol=1e-6)
    # d kappa / d R-bar = d at R-bar = 0
    slope = jax.grad(lambda r: numerics.concentration_from_mean_length(3, r).value)
    np.testing.assert_allclose(slope(0.0), 3.0, rtol=1e-15)


def test_dimension_as_a_numpy_integer_and_under_jit():
    np.testing.assert_allclose(
        numerics.vmf_log_normalizer(np.int64(3), 1.0),
        numerics.vmf_log_normalizer(3, 1.0),
        rtol=1e-15,
    )
    with pytest.raises(TypeError, match="static"):
        jax.jit(numerics.vmf_log_normalizer)(3, 1.0)
