"""Batched von Mises-Fisher distributions (numpyro/TFP shape semantics), and
the KL divergence to the uniform distribution on the sphere."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.special
import scipy.stats

from sciax import numerics

# mean directions of batch shape (4,) and concentrations of shape (2, 1):
# the batch is their broadcast, (2, 4)
MUS = np.array([[0.0, 0.6, 0.8], [1.0, 0.0, 0.0], [-0.48, 0.6, 0.64], [0.0, 0.0, -1.0]])
KAPPAS = np.array([[0.5], [40.0]])


@jax.jit
def _everything(mean_direction, kappa, x, key):
    vmf = numerics.VonMisesFisher(mean_direction, kappa)
    return {
        "log_prob": vmf.log_prob(x),
        "log_normalizer": vmf.log_normalizer(),
        "entropy": vmf.entropy(),
        "kl_to_uniform": vmf.kl_to_uniform(),
        "mean": vmf.mean(),
        "mode": vmf.mode(),
        "sample": vmf.sample(key, (5,)),
    }


def _points():
    """Unit vectors of shape (3, 1, 4, 3): they broadcast against (2, 4)."""
    x = np.random.default_rng(0).normal(size=(3, 1, 4, 3))
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_shapes_and_values_of_a_broadcast_batch():
    vmf = numerics.VonMisesFisher(MUS, KAPPAS)
    assert vmf.batch_shape == (2, 4) and vmf.event_shape == (3,)
    assert vmf.dim == 3
    x = _points()
    out = _everything(jnp.asarray(MUS), jnp.asarray(KAPPAS), jnp.asarray(x), jr.key(0))
    assert out["log_prob"].shape == (3, 2, 4)
    assert out["log_normalizer"].shape == out["entropy"].shape == (2, 4)
    assert out["kl_to_uniform"].shape == (2, 4)
    assert out["mean"].shape == out["mode"].shape == (2, 4, 3)
    assert out["sample"].shape == (5, 2, 4, 3)
    np.testing.assert_allclose(np.linalg.norm(out["sample"], axis=-1), 1.0, rtol=1e-13)
    log_area = np.log(4 * np.pi)
    for i in range(2):
        for j in range(4):
            kappa, mu = KAPPAS[i, 0], MUS[j]
            scipy_vmf = scipy.stats.vonmises_fisher(mu, kappa)
            np.testing.assert_allclose(
                out["log_prob"][:, i, j], scipy_vmf.logpdf(x[:, 0, j]), rtol=1e-12
            )
            np.testing.assert_allclose(
                out["entropy"][i, j], scipy_vmf.entropy(), rtol=1e-12
            )
            np.testing.assert_allclose(
                out["kl_to_uniform"][i, j],
                log_area - scipy_vmf.entropy(),
                rtol=1e-12,
            )
            mean_length = scipy.special.ive(1.5, kappa) / scipy.special.ive(0.5, kappa)
            np.testing.assert_allclose(out["mean"][i, j], mean_length * mu, rtol=1e-12)
            np.testing.assert_array_equal(out["mode"][i, j], mu)
            # each member's samples concentrate around its own mean
            # direction: the mean of mu.x over 5 samples at kappa = 40 is
            # above 0.9 (its sd is ~0.01)
            if kappa == 40.0:
                assert np.mean(out["sample"][:, i, j] @ mu) > 0.9


def test_one_invalid_member_is_nan_under_jit_and_the_others_are_not():
    mus = MUS.copy()
    mus[2] *= 2.0
    kappas = KAPPAS.copy()
    kappas[1, 0] = -1.0
    out = _everything(
        jnp.asarray(mus), jnp.asarray(kappas), jnp.asarray(_points()), jr.key(0)
    )
    bad = np.zeros((2, 4), bool)
    bad[:, 2] = True
    bad[1, :] = True
    for name, value in out.items():
        value = np.asarray(value)
        if name == "log_prob":
            value = value[0]
        if name == "sample":
            value = value[0]
        if value.ndim == 3:
            value = value[..., 0]
        np.testing.assert_array_equal(np.isnan(value), bad, err_msg=name)


def test_single_distributions_keep_their_shapes():
    vmf = numerics.VonMisesFisher(MUS[0], 2.0)
    assert vmf.batch_shape == () and vmf.event_shape == (3,)
    for shape, expected in [((), (3,)), (7, (7, 3)), ((2, 7), (2, 7, 3))]:
        out = jax.eval_shape(lambda s=shape: vmf.sample(jr.key(0), s))
        assert out.shape == expected


def test_constructor_and_sample_shape_errors():
    with pytest.raises(ValueError, match="does not broadcast"):
        numerics.VonMisesFisher(MUS, np.ones(3))
    with pytest.raises(ValueError, match="d >= 2"):
        numerics.VonMisesFisher(np.ones((4, 1)), 1.0)
    with pytest.raises(ValueError, match="unit vector, got norm 2.0"):
        numerics.VonMisesFisher(np.concatenate([MUS, 2 * MUS[:1]]), 1.0)
    with pytest.raises(ValueError, match="concentration must be >= 0"):
        numerics.VonMisesFisher(MUS, np.array([1.0, -2.0, 1.0, 1.0]))
    with pytest.raises(TypeError, match="real"):
        numerics.VonMisesFisher(MUS.astype(complex), 1.0)
    with pytest.raises(TypeError, match="real"):
        numerics.VonMisesFisher(MUS, True)
    with pytest.raises(TypeError, match="sample_shape"):
        numerics.VonMisesFisher(MUS, 1.0).sample(jr.key(0), (2.0,))


# ------------------------------------------------------------ KL divergence

_D = [2, 3, 10, 100, 1000]
_KAPPAS = [0.0, 1e-6, 1e-2, 0.5, 3.0, 30.0, 100.0, 1e4, 1e6]


def _mpmath_kl(mpmath, d, kappa):
    """kappa A_d - log 0F1(; d/2; kappa^2/4) at 50 digits."""
    if kappa == 0:
        return 0.0
    with mpmath.workdps(50):
        d, kappa = mpmath.mpf(d), mpmath.mpf(kappa)
        nu = d / 2 - 1
        mean_length = mpmath.besseli(nu + 1, kappa) / mpmath.besseli(nu, kappa)
        log_0f1 = (
            mpmath.log(mpmath.besseli(nu, kappa))
            + mpmath.loggamma(nu + 1)
            - nu * mpmath.log(kappa / 2)
        )
        return float(kappa * mean_length - log_0f1)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_kl_to_uniform_and_entropy_against_mpmath(dtype):
    mpmath = pytest.importorskip("mpmath")
    eps = float(jnp.finfo(dtype).eps)
    kappas = np.array(_KAPPAS, dtype)
    for d in _D:
        vmf = numerics.VonMisesFisher(jnp.eye(d, dtype=dtype)[0], kappas)
        kl = np.asarray(vmf.kl_to_uniform(), np.float64)
        entropy = np.asarray(vmf.entropy(), np.float64)
        expected = np.array([_mpmath_kl(mpmath, d, float(k)) for k in kappas])
        with mpmath.workdps(50):
            log_area = float(
                mpmath.log(2)
                + (mpmath.mpf(d) / 2) * mpmath.log(mpmath.pi)
                - mpmath.loggamma(mpmath.mpf(d) / 2)
            )
        assert kl[0] == 0.0
        # float64: measured within 16 eps; float32 within 14 eps except near
        # kappa^2 = 4 d at d = 1000 (140 eps: lgamma(d/2) against
        # nu log(kappa/2) there)
        bound = 32 * eps if dtype == jnp.float64 else 256 * eps
        np.testing.assert_allclose(kl, expected, rtol=bound, atol=0, err_msg=str(d))
        np.testing.assert_allclose(
            entropy,
            log_area - expected,
            rtol=0,
            atol=bound * np.maximum(1.0, np.abs(log_area - expected)).max(),
            err_msg=str(d),
        )


def test_kl_gradient_is_kappa_times_the_slope_of_the_mean_length():
    """d KL / d kappa = kappa A_d'(kappa), A_d' = 1 - A_d^2 - (d-1) A_d / kappa;
    0 at kappa = 0 (not nan)."""

    def kl(kappa):
        return numerics.VonMisesFisher(
            jnp.array([0.0, 0.0, 1.0]), kappa
        ).kl_to_uniform()

    kappas = jnp.array([0.0, 0.3, 5.0, 1e4])
    slopes = jax.vmap(jax.grad(kl))(kappas)
    # d = 3: A = coth(kappa) - 1/kappa, kappa A' = 1/kappa - kappa/sinh^2(kappa)
    k = np.asarray(kappas[1:])
    with np.errstate(over="ignore"):  # sinh(1e4) = inf: the term is 0
        expected = 1 / k - k / np.sinh(k) ** 2
    assert slopes[0] == 0.0
    np.testing.assert_allclose(slopes[1:], expected, rtol=1e-10)
