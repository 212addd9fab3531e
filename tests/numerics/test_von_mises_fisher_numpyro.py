"""The numpyro adapter of the von Mises-Fisher distribution (numpyro is an
optional dependency: the module is skipped without it)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

numpyro = pytest.importorskip("numpyro")

import numpyro.distributions as dist  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402
from numpyro.infer.util import log_density  # noqa: E402

from sciax import numerics  # noqa: E402

NumpyroVonMisesFisher = numerics.NumpyroVonMisesFisher

MU = np.array([0.0, 0.6, 0.8])


@pytest.mark.slow  # ~35 s of compiling the batched sampler (suite budget)
def test_shapes_support_and_values_are_those_of_von_mises_fisher():
    mus = np.array([MU, [1.0, 0.0, 0.0]])
    kappas = np.array([[2.0], [30.0]])
    d = NumpyroVonMisesFisher(mus, kappas, validate_args=True)
    assert isinstance(d, dist.Distribution)
    assert d.batch_shape == (2, 2) and d.event_shape == (3,)
    assert d.has_rsample and d.support is dist.constraints.sphere
    assert NumpyroVonMisesFisher.infer_shapes((2, 3), (2, 1)) == ((2, 2), (3,))
    x = d.sample(jr.key(0), (4,))
    assert x.shape == (4, 2, 2, 3)
    reference = numerics.VonMisesFisher(mus, kappas)
    np.testing.assert_array_equal(d.log_prob(x), reference.log_prob(x))
    np.testing.assert_array_equal(d.mean, reference.mean())
    np.testing.assert_array_equal(d.entropy(), reference.entropy())
    # a pytree of its parameters (numpyro's flattening)
    leaves, tree = jax.tree.flatten(d)
    assert len(leaves) == 2
    rebuilt = jax.tree.unflatten(tree, leaves)
    assert rebuilt.batch_shape == (2, 2)
    np.testing.assert_array_equal(rebuilt.log_prob(x), d.log_prob(x))
    # numpyro's support check under validate_args warns, and ours refuses
    with pytest.warns(UserWarning, match="support"):
        with pytest.raises(ValueError, match="unit sphere"):
            d.log_prob(2.0 * x)


def _model(x):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
    mean_direction = z / jnp.linalg.norm(z)
    concentration = numpyro.sample("concentration", dist.LogNormal(1.0, 2.0))
    numpyro.sample("x", NumpyroVonMisesFisher(mean_direction, concentration), obs=x)


def test_log_density_of_a_model_with_observations():
    x = numerics.VonMisesFisher(MU, 12.0).sample(jr.key(1), 50)
    params = {"z": jnp.asarray(2.0 * MU), "concentration": jnp.asarray(12.0)}
    value, _ = log_density(_model, (x,), {}, params)
    expected = (
        dist.Normal(0.0, 1.0).log_prob(params["z"]).sum()
        + dist.LogNormal(1.0, 2.0).log_prob(params["concentration"])
        + numerics.VonMisesFisher(MU, 12.0).log_prob(x).sum()
    )
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    # and its gradient, which NUTS follows, is finite
    gradient = jax.grad(lambda p: log_density(_model, (x,), {}, p)[0], allow_int=True)(
        params
    )
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(gradient))


@pytest.mark.slow
def test_nuts_recovers_the_mean_and_concentration_of_500_unit_vectors():
    """500 observations from kappa = 20: the posterior sd of kappa is about
    kappa / sqrt(n (d - 1) / 2) ~ 0.9 and that of the direction about
    1 / sqrt(n kappa) ~ 0.01, so the posterior means must fall within a few
    of those of the truth (the bounds below are 4 sd of the posterior plus
    the Monte-Carlo error of 200 draws)."""
    kappa = 20.0
    x = numerics.VonMisesFisher(MU, kappa).sample(jr.key(2), 500)
    mcmc = MCMC(NUTS(_model), num_warmup=200, num_samples=200, progress_bar=False)
    # numpyro's samplers mix integer and float arrays, which the suite's
    # strict promotion (conftest.py) refuses
    with jax.numpy_dtype_promotion("standard"):
        mcmc.run(jr.key(3), x)
    samples = mcmc.get_samples()
    z = samples["z"]
    directions = z / jnp.linalg.norm(z, axis=-1, keepdims=True)
    mean_direction = jnp.mean(directions, axis=0)
    mean_direction = mean_direction / jnp.linalg.norm(mean_direction)
    assert float(mean_direction @ MU) > 1 - 0.5 * (4 * 0.01) ** 2
    assert abs(float(jnp.mean(samples["concentration"])) - kappa) < 4 * 0.9 + 0.5
