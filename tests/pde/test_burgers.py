"""The Burgers generator: against the exact Cole-Hopf solution, the initial
condition's spectrum, determinism, sharding, and datasets on disk."""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciax import RESULTS, pde
from tests.helpers import run_with_eight_host_devices


def cole_hopf(initial, viscosity=0.1, time=1.0):
    """Exact periodic solution: u = -2 nu phi_x / phi with phi the heat flow of
    exp(-U / (2 nu)), U' = u0 (zero mean, so U is periodic)."""
    n = initial.shape[0]
    k = 2 * np.pi * np.fft.fftfreq(n, 1.0 / n)
    spectrum = np.fft.fft(initial)
    antiderivative = np.zeros_like(spectrum)
    antiderivative[1:] = spectrum[1:] / (1j * k[1:])
    phi0 = np.exp(-np.real(np.fft.ifft(antiderivative)) / (2 * viscosity))
    phi_hat = np.fft.fft(phi0) * np.exp(-viscosity * k**2 * time)
    phi = np.real(np.fft.ifft(phi_hat))
    return -2 * viscosity * np.real(np.fft.ifft(1j * k * phi_hat)) / phi


@pytest.mark.parametrize(
    "dtype, num_steps, tolerance",
    [(jnp.float64, 1000, 3e-9), (jnp.float64, 4000, 3e-11), (jnp.float32, 200, 2e-5)],
)
def test_solution_matches_cole_hopf(dtype, num_steps, tolerance):
    initial = pde.burgers_initial_condition(jax.random.key(0), 256, dtype=dtype)
    final = jax.jit(lambda u: pde.burgers_solve(u, num_steps=num_steps))(initial)
    assert final.dtype == dtype and final.shape == (256,)
    reference = cole_hopf(np.asarray(initial, np.float64))
    error = np.linalg.norm(np.asarray(final, np.float64) - reference)
    assert error / np.linalg.norm(reference) <= tolerance


def test_initial_condition_has_the_stated_spectrum():
    n, count = 64, 4000
    keys = jax.random.split(jax.random.key(1), count)
    samples = jax.vmap(lambda k: pde.burgers_initial_condition(k, n))(keys)
    coefficients = np.fft.rfft(np.asarray(samples), axis=1) / n
    np.testing.assert_allclose(coefficients[:, 0], 0.0, atol=1e-15)
    # sqrt(lambda_k) (xi sqrt2 cos + eta sqrt2 sin) has exp(2 pi i k x)
    # coefficient (xi - i eta) sqrt(lambda_k / 2): E|c_k|^2 = lambda_k
    k = np.arange(1, 6)
    expected = 625 * ((2 * np.pi * k) ** 2 + 25) ** -2
    measured = np.mean(np.abs(coefficients[:, 1:6]) ** 2, axis=0)
    np.testing.assert_allclose(measured, expected, rtol=0.1)  # 4000 samples: ~3% sd


def test_solution_conserves_the_mean_and_decays():
    initial = pde.burgers_initial_condition(jax.random.key(2), 128)
    final = pde.burgers_solve(initial, num_steps=200)
    assert abs(float(jnp.mean(final))) <= 1e-15
    assert float(jnp.sum(final**2)) < float(jnp.sum(initial**2))


def test_gradient_through_the_time_stepper():
    initial = pde.burgers_initial_condition(jax.random.key(3), 32)
    direction = pde.burgers_initial_condition(jax.random.key(4), 32)

    def energy(u):
        return jnp.sum(pde.burgers_solve(u, num_steps=10) ** 2)

    derivative = jnp.vdot(jax.grad(energy)(initial), direction)
    step = 1e-6
    finite = (
        energy(initial + step * direction) - energy(initial - step * direction)
    ) / (2 * step)
    np.testing.assert_allclose(derivative, finite, rtol=1e-6)


def test_samples_are_deterministic_and_batch_independent():
    key = jax.random.key(5)
    options = dict(resolution=64, num_steps=20)
    samples = pde.burgers_samples(key, 5, batch_size=2, **options)
    assert isinstance(samples, pde.BurgersSample)
    initial, final = samples.initial, samples.final
    assert initial.shape == final.shape == (5, 64)
    assert bool(jnp.all(samples.result == RESULTS.successful))
    tail = pde.burgers_samples(key, 2, first_index=3, batch_size=2, **options).final
    np.testing.assert_allclose(tail, final[3:], rtol=1e-13, atol=1e-15)
    expected = jax.vmap(lambda u: pde.burgers_solve(u, num_steps=20))(initial)
    np.testing.assert_allclose(final, expected, rtol=1e-12, atol=1e-15)
    single = pde.burgers_initial_condition(jax.random.fold_in(key, 4), 64)
    np.testing.assert_array_equal(initial[4], single)


def test_bad_input():
    with pytest.raises(ValueError, match="even"):
        pde.burgers_samples(jax.random.key(0), 2, resolution=101)
    with pytest.raises(ValueError, match="batch with jax.vmap"):
        pde.burgers_solve(jnp.zeros((2, 64)))
    with pytest.raises(ValueError, match="multiple"):
        pde.periodic_subsample(jnp.zeros(100), 30)
    field = jnp.arange(64.0)
    np.testing.assert_array_equal(pde.periodic_subsample(field, 16), field[::4])


def test_burgers_dataset_round_trip(tmp_path):
    options = dict(
        seed=1, shard_size=3, resolutions=(32,), resolution=128, num_steps=50
    )
    directory = pde.write_dataset(
        tmp_path / "b", "burgers", 4, progress=False, **options
    )
    data = pde.load_dataset(directory, 32)
    assert set(data) == {"initial", "final"}
    assert data["initial"].shape == data["final"].shape == (4, 32)
    full = pde.load_dataset(directory, 128)
    np.testing.assert_array_equal(data["final"], full["final"][:, ::4])
    again = pde.write_dataset(tmp_path / "c", "burgers", 4, progress=False, **options)
    for name in ("shard_00000.npz", "shard_00001.npz"):
        assert (again / name).read_bytes() == (directory / name).read_bytes()


SHARDED = textwrap.dedent(
    """
    import jax, numpy as np
    jax.config.update("jax_enable_x64", True)
    from sciax import pde
    assert len(jax.devices()) == 8
    key = jax.random.key(3)
    options = dict(resolution=64, num_steps=40, batch_size=1)
    many = pde.burgers_samples(key, 10, **options)
    one = pde.burgers_samples(key, 10, devices=jax.devices()[:1], **options)
    np.testing.assert_array_equal(np.asarray(many.initial), np.asarray(one.initial))
    np.testing.assert_allclose(np.asarray(many.final), np.asarray(one.final), rtol=1e-13, atol=1e-16)
    print("ok")
    """
)


# slow: the Darcy generator's 8-device test covers the shared sharding code
@pytest.mark.slow
def test_samples_split_over_eight_host_devices_agree():
    assert run_with_eight_host_devices(SHARDED).startswith("ok")
