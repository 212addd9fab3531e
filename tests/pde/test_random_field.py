import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciax import pde


def test_field_statistics_follow_the_spectrum():
    """Empirical variance of one cosine coefficient against lambda_k."""
    shape = (32, 32)
    keys = jax.random.split(jax.random.key(0), 400)
    fields = jax.vmap(
        lambda k: pde.gaussian_random_field(k, shape, alpha=2.0, tau=3.0)
    )(keys)
    assert fields.shape == (400, *shape)
    mean_mode = fields.mean(axis=(1, 2))
    np.testing.assert_allclose(mean_mode, 0.0, atol=1e-12)
    coefficients = jax.vmap(lambda f: jax.scipy.fft.dctn(f, type=2, norm="ortho"))(
        fields
    )
    k = (1, 2)
    expected = 3.0**2 * (np.pi**2 * 5 + 9.0) ** -2.0 * 32 * 32
    measured = float(jnp.var(coefficients[:, k[0], k[1]]))
    assert abs(measured / expected - 1) < 0.25


def test_same_key_same_field_and_dtype():
    a = pde.gaussian_random_field(jax.random.key(1), (16, 8), dtype=jnp.float32)
    b = pde.gaussian_random_field(jax.random.key(1), (16, 8), dtype=jnp.float32)
    assert a.dtype == jnp.float32
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="alpha"):
        pde.gaussian_random_field(jax.random.key(1), (8, 8), alpha=-1.0)


def test_problem_families_have_the_structure_they_claim():
    n = 6
    g = pde.gaussian_random_field(jax.random.key(2), (n + 2, n + 2))
    eye = jnp.eye(n * n)
    for build, symmetric in (
        (pde.darcy_operator, True),
        (pde.nonsymmetric_darcy_operator, False),
        (lambda g: pde.helmholtz_operator(g, 10.0), True),
    ):
        operator = build(g)
        dense = np.asarray(jax.vmap(operator.mv)(eye)).T
        asymmetry = np.max(np.abs(dense - dense.T)) / np.max(np.abs(dense))
        assert (asymmetry < 1e-14) == symmetric
        np.testing.assert_allclose(operator.diagonal(), np.diag(dense), rtol=1e-13)
    eigenvalues = np.linalg.eigvalsh(
        np.asarray(jax.vmap(pde.helmholtz_operator(g, 10.0).mv)(eye))
    )
    assert eigenvalues.min() < 0 < eigenvalues.max()
