import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.stats

import sciax
from sciax import numerics


def test_log_normalizer_against_closed_form_and_scipy():
    kappa = np.array([1e-9, 0.5, 3.0, 40.0])
    # d = 3: C = kappa / (4 pi sinh kappa)
    expected = np.log(kappa / (4 * np.pi * np.sinh(kappa)))
    np.testing.assert_allclose(
        numerics.vmf_log_normalizer(3, kappa), expected, rtol=1e-13
    )
    assert np.isclose(
        numerics.vmf_log_normalizer(3, 0.0), -np.log(4 * np.pi), rtol=1e-15
    )
    mu = np.array([0.0, 0.6, 0.8, 0.0, 0.0])
    x = np.array([[0.0, 0.8, 0.6, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    ours = numerics.VonMisesFisher(mu, 7.0).log_prob(jnp.asarray(x))
    theirs = scipy.stats.vonmises_fisher(mu, 7.0).logpdf(x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    entropy = numerics.VonMisesFisher(mu, 7.0).entropy()
    np.testing.assert_allclose(
        entropy, scipy.stats.vonmises_fisher(mu, 7.0).entropy(), rtol=1e-12
    )


def test_high_dimension_log_normalizer_against_mpmath():
    r"""$\log C_d(\kappa) = (d/2-1)\log\kappa - (d/2)\log 2\pi - \log
    I_{d/2-1}(\kappa)$ at orders where $I$ under- or overflows every float
    format, against mpmath at 40 digits."""
    mpmath = pytest.importorskip("mpmath")
    # mpmath's series does not converge at order 16383 and kappa = 1e6; d is a
    # value in the compiled program, and both calls have the (4,) shape of
    # the test above: one compilation serves the file
    for d, kappas in [(2048, [1e-3, 10.0, 1e4, 1e6]), (32768, [1e-3, 10.0, 1e4])]:
        padded = kappas + [10.0] * (4 - len(kappas))
        ours = np.asarray(numerics.vmf_log_normalizer(d, jnp.array(padded)))
        ours = ours[: len(kappas)]
        with mpmath.workdps(40):
            expected = [
                float(
                    (d / 2 - 1) * mpmath.log(k)
                    - (d / 2) * mpmath.log(2 * mpmath.pi)
                    - mpmath.log(mpmath.besseli(d / 2 - 1, k))
                )
                for k in kappas
            ]
        error = np.abs(ours - expected) / np.maximum(1.0, np.abs(expected))
        assert np.all(error < 16 * np.finfo(np.float64).eps), (d, error)


def test_concentration_recovered_from_sufficient_statistic():
    # d is a value in the compiled programs: one loop, one compilation each
    kappas = jnp.array([1e-3, 1.0, 100.0, 1e4, 1e6])
    for d in (3, 32, 2048, 32768):
        mean_length = numerics.mean_resultant_length(d, kappas)
        solution = numerics.concentration_from_mean_length(d, mean_length)
        relative = np.abs(np.asarray(solution.value) / np.asarray(kappas) - 1)
        # The conditioning of kappa in R is ~ 2 kappa / (d - 1) for kappa >> d.
        bound = np.maximum(
            1e-10, 4 * np.finfo(np.float64).eps * 2 * np.asarray(kappas) / (d - 1)
        )
        assert np.all(relative <= bound), (d, relative)
        assert solution.result == sciax.RESULTS.successful
        assert 1 <= int(solution.stats["num_steps"]) <= 60


def test_fit_from_samples_and_sampler_moments():
    key = jr.PRNGKey(0)
    d = 64
    mu = jr.normal(key, (d,))
    mu = mu / jnp.linalg.norm(mu)
    dist = numerics.VonMisesFisher(mu, 200.0)
    samples = dist.sample(jr.PRNGKey(1), (4000,))
    assert samples.shape == (4000, d)
    np.testing.assert_allclose(jnp.linalg.norm(samples, axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(
        jnp.mean(samples @ mu), numerics.mean_resultant_length(d, 200.0), rtol=5e-3
    )
    fit = numerics.fit_vmf(samples)
    assert fit.result == sciax.RESULTS.successful
    assert isinstance(fit.value, numerics.VonMisesFisher)
    assert abs(float(fit.value.concentration) / 200.0 - 1) < 0.03
    assert float(fit.value.mean_direction @ mu) > 0.999
    np.testing.assert_allclose(
        fit.stats["mean_resultant_length"],
        jnp.linalg.norm(jnp.mean(samples, axis=0)),
        rtol=1e-12,
    )


def test_fit_weights_vmap_and_edges():
    x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    fit = numerics.fit_vmf(x, weights=jnp.array([1.0, 0.0, 1.0]))
    assert fit.value.concentration == jnp.inf
    np.testing.assert_array_equal(fit.value.mean_direction, [1.0, 0.0])
    # five lengths: mean_resultant_length at the shape the test above compiles
    lengths = jnp.array([0.0, 0.3, 0.9, 0.5, 0.99])
    batched = jax.vmap(lambda r: numerics.concentration_from_mean_length(3, r).value)(
        lengths
    )
    assert batched[0] == 0.0
    # each kappa reproduces its mean length (A_3(0) = 0)
    np.testing.assert_allclose(
        numerics.mean_resultant_length(3, batched), lengths, rtol=1e-12
    )
    with pytest.raises(ValueError, match="shape"):
        numerics.fit_vmf(jnp.ones(3))
    with pytest.raises(ValueError, match="d >= 2"):
        numerics.VonMisesFisher(jnp.ones(1), 1.0)


def test_float32_fit():
    r = numerics.mean_resultant_length(32, jnp.float32(50.0))
    kappa = numerics.concentration_from_mean_length(32, r).value
    assert kappa.dtype == jnp.float32
    assert abs(float(kappa) / 50.0 - 1) < 1e-5


def test_gradient_of_log_prob_in_concentration():
    mu = jnp.array([0.0, 1.0, 0.0])
    x = jnp.array([0.6, 0.8, 0.0])
    grad = jax.grad(lambda k: numerics.VonMisesFisher(mu, k).log_prob(x))(5.0)
    # d/dkappa log p = mu.x - A_d(kappa) (d/dkappa log C_d = -A_d).
    expected = x @ mu - numerics.mean_resultant_length(3, 5.0)
    np.testing.assert_allclose(grad, expected, rtol=1e-9)
