import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.stats

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


def test_high_dimension_stays_finite():
    for d in (2048, 32768):
        values = numerics.vmf_log_normalizer(d, jnp.array([1e-3, 10.0, 1e4, 1e6]))
        assert np.all(np.isfinite(values))


@pytest.mark.parametrize("d", [3, 32, 2048, 32768])
def test_concentration_recovered_from_sufficient_statistic(d):
    kappas = jnp.array([1e-3, 1.0, 100.0, 1e4, 1e6])
    mean_length = numerics.mean_resultant_length(d, kappas)
    fitted, result = numerics.concentration_from_mean_length(d, mean_length)
    relative = np.abs(np.asarray(fitted) / np.asarray(kappas) - 1)
    # The conditioning of kappa in R is ~ 2 kappa / (d - 1) for kappa >> d.
    bound = np.maximum(
        1e-10, 4 * np.finfo(np.float64).eps * 2 * np.asarray(kappas) / (d - 1)
    )
    assert np.all(relative <= bound), relative
    assert result == numerics.FitResult.successful


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
    mean_direction, kappa, result = numerics.fit_vmf(samples)
    assert result == numerics.FitResult.successful
    assert abs(float(kappa) / 200.0 - 1) < 0.03
    assert float(mean_direction @ mu) > 0.999


def test_fit_weights_vmap_and_edges():
    x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    _, kappa_w, _ = numerics.fit_vmf(x, weights=jnp.array([1.0, 0.0, 1.0]))
    assert kappa_w == jnp.inf
    batched = jax.vmap(lambda r: numerics.concentration_from_mean_length(3, r)[0])(
        jnp.array([0.0, 0.3, 0.9])
    )
    assert batched[0] == 0.0 and np.all(np.isfinite(batched))
    with pytest.raises(ValueError, match="shape"):
        numerics.fit_vmf(jnp.ones(3))
    with pytest.raises(ValueError, match="d >= 2"):
        numerics.VonMisesFisher(jnp.ones(1), 1.0)


def test_float32_fit():
    r = numerics.mean_resultant_length(32, jnp.float32(50.0))
    kappa, _ = numerics.concentration_from_mean_length(32, r)
    assert kappa.dtype == jnp.float32
    assert abs(float(kappa) / 50.0 - 1) < 1e-5


def test_gradient_of_log_prob_in_concentration():
    mu = jnp.array([0.0, 1.0, 0.0])
    x = jnp.array([0.6, 0.8, 0.0])
    grad = jax.grad(lambda k: numerics.VonMisesFisher(mu, k).log_prob(x))(5.0)
    # d/dkappa log p = mu.x - A_d(kappa) (d/dkappa log C_d = -A_d).
    expected = x @ mu - numerics.mean_resultant_length(3, 5.0)
    np.testing.assert_allclose(grad, expected, rtol=1e-9)
