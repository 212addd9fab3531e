import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from sciax import pde


def _kernels(dtype):
    def a(values):
        return jnp.asarray(values, dtype)

    return {
        "spectral mixture": pde.SpectralMixtureKernel(
            a([0.0, -0.5]), a([0.0, 3.2]), a([0.1, -0.7])
        ),
        "matern mixture": pde.MaternMixtureKernel(
            a([0.0, -0.3]), a([0.0, 2.5]), a([-0.5, 0.2]), nu=2.7
        ),
        "squared exponential": pde.SquaredExponentialKernel(a(0.3), a(-0.4)),
        "matern": pde.MaternKernel(a(0.1), a(-0.2), nu=3.5),
    }


# the Matern mixture's derivatives are the Matern kernel's (checked by
# default) summed; 16 s of compilation, so under --runslow
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.slow) if name == "matern mixture" else name
        for name in _kernels(jnp.float64)
    ],
)
def test_each_derivative_is_the_slope_of_the_one_below(name):
    kernel = _kernels(jnp.float64)[name]
    d = jnp.asarray([-0.9, -0.31, 0.05, 0.4, 1.3])
    step = 1e-5
    for order in range(1, 5):
        lower = jax.jit(lambda t, order=order: kernel.derivative(t, order - 1))
        central = (lower(d + step) - lower(d - step)) / (2 * step)
        np.testing.assert_allclose(
            kernel.derivative(d, order), central, rtol=1e-6, atol=1e-6
        )


@pytest.mark.parametrize("name", ["spectral mixture", "squared exponential"])
def test_derivatives_match_autodiff_of_the_value(name):
    kernel = _kernels(jnp.float64)[name]
    d = jnp.asarray([-0.9, -0.31, 0.05, 0.4, 1.3])
    reference = lambda t: kernel.derivative(t, 0)
    for order in range(1, 5):
        reference = jax.grad(reference)
        np.testing.assert_allclose(
            kernel.derivative(d, order), jax.vmap(reference)(d), rtol=1e-10, atol=1e-10
        )


def test_matern_derivatives_at_zero_are_the_spectral_moments():
    nu, lengthscale = 3.5, 0.7
    kernel = pde.MaternKernel(jnp.asarray(0.0), jnp.log(lengthscale), nu=nu)
    assert kernel.derivative(0.0, 0) == pytest.approx(1.0)
    assert kernel.derivative(0.0, 1) == 0.0
    assert kernel.derivative(0.0, 2) == pytest.approx(
        -nu / ((nu - 1) * lengthscale**2), rel=1e-13
    )
    assert kernel.derivative(0.0, 4) == pytest.approx(
        3 * nu**2 / ((nu - 1) * (nu - 2) * lengthscale**4), rel=1e-13
    )
    # continuity: the value just off 0 approaches the limit
    assert float(kernel.derivative(1e-6, 2)) == pytest.approx(
        float(kernel.derivative(0.0, 2)), rel=1e-6
    )


def test_matern_closed_forms():
    d = jnp.linspace(0.0, 2.0, 9)
    lengthscale = 0.6
    half = pde.MaternKernel(jnp.asarray(0.0), jnp.log(lengthscale), nu=0.5)
    np.testing.assert_allclose(
        half.derivative(d, 0), jnp.exp(-d / lengthscale), rtol=1e-13
    )
    three_halves = pde.MaternKernel(jnp.asarray(0.0), jnp.log(lengthscale), nu=1.5)
    r = np.sqrt(3) * np.asarray(d) / lengthscale
    np.testing.assert_allclose(
        three_halves.derivative(d, 0), (1 + r) * np.exp(-r), rtol=1e-13
    )
    # any real order through log_kv, against scipy
    nu = 2.3
    general = pde.MaternKernel(jnp.asarray(0.0), jnp.log(lengthscale), nu=nu)
    r = np.sqrt(2 * nu) * np.asarray(d[1:]) / lengthscale
    expected = 2 ** (1 - nu) / scipy.special.gamma(nu) * r**nu * scipy.special.kv(nu, r)
    np.testing.assert_allclose(general.derivative(d[1:], 0), expected, rtol=1e-12)


def test_spectral_mixture_is_positive_definite_with_its_spectrum():
    kernel = _kernels(jnp.float64)["spectral mixture"]
    t = jnp.linspace(0, 1, 60)
    covariance = kernel.derivative(t[:, None] - t[None, :], 0)
    assert jnp.min(jnp.linalg.eigvalsh(covariance)) > -1e-10
    frequencies, weights = kernel.spectrum()
    np.testing.assert_allclose(frequencies, [0.0, 3.2])
    np.testing.assert_allclose(weights, np.exp([0.0, -0.5]))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_jit_and_vmap(dtype):
    for kernel in _kernels(dtype).values():
        d = jnp.linspace(-1, 1, 7, dtype=dtype)
        value = jax.jit(lambda k, d: k.derivative(d, 2))(kernel, d)
        assert value.dtype == dtype
        assert jnp.all(jnp.isfinite(value))
        mapped = jax.vmap(lambda t, k=kernel: k.derivative(t, 2))(d)
        np.testing.assert_allclose(mapped, value, rtol=1e-5)


def test_gradient_in_the_parameters():
    kernel = _kernels(jnp.float64)["matern mixture"]

    def loss(k):
        return jnp.sum(k.derivative(jnp.linspace(-1, 1, 5), 2) ** 2)

    # filter_grad: the Python-number nu is configuration, not differentiated
    # (jax.grad would differentiate it too; test_nu_given_as_an_array_is_learnt)
    gradient = eqx.filter_grad(loss)(kernel)
    assert gradient.nu is None
    step = 1e-6
    shifted = pde.MaternMixtureKernel(
        kernel.log_weights,
        kernel.frequencies.at[1].add(step),
        kernel.log_lengthscales,
        nu=kernel.nu,
    )
    finite = (loss(shifted) - loss(kernel)) / step
    assert float(gradient.frequencies[1]) == pytest.approx(float(finite), rel=1e-4)


def test_bad_configuration():
    with pytest.raises(ValueError, match="same length"):
        pde.SpectralMixtureKernel(jnp.zeros(2), jnp.zeros(3), jnp.zeros(2))
    with pytest.raises(ValueError, match="nu must be positive"):
        pde.MaternKernel(jnp.asarray(0.0), jnp.asarray(0.0), nu=-1.0)
    smooth_enough_for_values = pde.MaternKernel(
        jnp.asarray(0.0), jnp.asarray(0.0), nu=0.5
    )
    with pytest.raises(ValueError, match="no derivative of order 2"):
        smooth_enough_for_values.derivative(jnp.zeros(3), 2)
    with pytest.raises(ValueError, match="order must be 0..4"):
        smooth_enough_for_values.derivative(jnp.zeros(3), 5)


def _matern_loss(kernel):
    # values at distances 0 (the Gram matrix's diagonal) and beyond
    d = jnp.asarray([0.0, 0.05, 0.3, 1.1])
    return jnp.sum(jnp.asarray([1.0, 2.0, 3.0, 4.0]) * kernel.derivative(d, 0))


def test_nu_given_as_an_array_is_learnt():
    kernel = pde.MaternKernel(jnp.asarray(0.2), jnp.log(0.7), nu=jnp.asarray(1.7))
    gradient = eqx.filter_grad(_matern_loss)(kernel)
    step = 1e-6

    def shifted(delta):
        return pde.MaternKernel(
            kernel.log_variance, kernel.log_lengthscale, nu=kernel.nu + delta
        )

    central = (_matern_loss(shifted(step)) - _matern_loss(shifted(-step))) / (2 * step)
    assert float(gradient.nu) == pytest.approx(float(central), rel=1e-7)
    # at distance 0 the value is the variance for every nu and lengthscale:
    # both derivatives exactly 0 (not 0 * inf = nan), whatever the cotangent
    at_zero = eqx.filter_grad(lambda k: 1e6 * k.derivative(jnp.zeros(()), 0))(kernel)
    assert float(at_zero.nu) == 0.0
    assert float(at_zero.log_lengthscale) == 0.0
    assert float(at_zero.log_variance) == pytest.approx(1e6 * np.exp(0.2))


def test_nu_given_as_a_number_is_fixed_configuration():
    zero = jnp.asarray(0.0)
    for given, stored in [(2.5, 2.5), (3, 3.0), (np.float32(1.5), 1.5)]:
        nu = pde.MaternKernel(zero, zero, nu=given).nu
        assert type(nu) is float and nu == stored
    assert isinstance(pde.MaternKernel(zero, zero, nu=jnp.asarray(2.5)).nu, jax.Array)
    with pytest.raises(TypeError, match="bool"):
        pde.MaternKernel(zero, zero, nu=True)
    with pytest.raises(TypeError, match="real"):
        pde.MaternKernel(zero, zero, nu=jnp.asarray(1.0 + 2.0j))
    with pytest.raises(ValueError, match="scalar"):
        pde.MaternKernel(zero, zero, nu=jnp.ones(2))
    # concrete arrays are checked as numbers are
    with pytest.raises(ValueError, match="nu must be positive"):
        pde.MaternKernel(zero, zero, nu=jnp.asarray(-1.0))
    with pytest.raises(ValueError, match="no derivative of order 2"):
        pde.MaternKernel(zero, zero, nu=jnp.asarray(0.9)).derivative(jnp.zeros(3), 2)
    # a number stays static under filter_jit: checked at trace time there too
    rough = pde.MaternKernel(zero, zero, nu=0.9)
    with pytest.raises(ValueError, match="no derivative of order 2"):
        eqx.filter_jit(lambda k: k.derivative(jnp.zeros(3), 2))(rough)


def test_traced_nu_outside_the_order_domain_gives_nan():
    zero = jnp.asarray(0.0)
    d = jnp.linspace(-1.0, 1.0, 5)

    def second_derivative(nu):
        return pde.MaternKernel(zero, zero, nu=nu).derivative(d, 2)

    rough = jax.jit(second_derivative)(jnp.asarray(0.9))
    assert jnp.all(jnp.isnan(rough))
    smooth = jax.jit(second_derivative)(jnp.asarray(2.5))
    np.testing.assert_allclose(
        smooth, pde.MaternKernel(zero, zero, nu=2.5).derivative(d, 2), rtol=1e-12
    )
