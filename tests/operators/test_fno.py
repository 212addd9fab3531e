"""Spectral convolution, the FNO, losses and the normalizer: values,
resolution invariance, dtypes, jit, vmap, gradients, bad input, grid
conventions, data without a channel axis."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sciax import operators


def test_spectral_convolution_matches_a_direct_fourier_multiplier():
    layer = operators.SpectralConvolution(2, 3, (4,), key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (2, 16))
    weights = np.asarray(layer.weights_real[0]) + 1j * np.asarray(layer.weights_imag[0])
    spectrum = np.fft.rfft(np.asarray(x), axis=1)
    expected_spectrum = np.zeros((3, 9), complex)
    expected_spectrum[:, :4] = np.einsum("im,iom->om", spectrum[:, :4], weights)
    expected = np.fft.irfft(expected_spectrum, n=16, axis=1)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-14)


def test_spectral_convolution_commutes_with_periodic_shifts_and_resolution():
    layer = operators.SpectralConvolution(1, 1, (3, 3), key=jax.random.key(2))

    def field(n):
        t = jnp.arange(n) / n
        x, y = jnp.meshgrid(t, t, indexing="ij")
        return (
            jnp.sin(2 * jnp.pi * x) * jnp.cos(4 * jnp.pi * y) + jnp.cos(2 * jnp.pi * y)
        )[None]

    coarse, fine = layer(field(16)), layer(field(32))
    # a band-limited input gives the same function at every resolution
    np.testing.assert_allclose(fine[:, ::2, ::2], coarse, atol=1e-12)
    shifted = layer(jnp.roll(field(16), 3, axis=1))
    np.testing.assert_allclose(shifted, jnp.roll(coarse, 3, axis=1), atol=1e-12)


# Every dimension in float32 and float64 2-D by default; the other float64
# cases (13-18 s each on 2 cores) under --runslow.
@pytest.mark.parametrize(
    "dtype, ndim, grid",
    [
        pytest.param(dtype, ndim, grid, marks=[pytest.mark.slow] if slow else [])
        for dtype, ndim, grid, slow in [
            (jnp.float32, 1, (24,), False),
            (jnp.float32, 2, (20, 18), False),
            (jnp.float32, 3, (10, 10, 12), False),
            (jnp.float64, 1, (24,), True),
            (jnp.float64, 2, (20, 18), False),
            (jnp.float64, 3, (10, 10, 12), True),
        ]
    ],
)
def test_fno_shapes_dtypes_jit_and_vmap(dtype, ndim, grid):
    model = operators.FNO(
        2,
        1,
        ndim,
        modes=4,
        width=8,
        depth=2,
        projection=16,
        padding=0.125,
        key=jax.random.key(0),
        dtype=dtype,
    )
    x = jax.random.normal(jax.random.key(1), (3, 2) + grid, dtype)
    batched = jax.vmap(model)(x)
    assert batched.shape == (3, 1) + grid and batched.dtype == dtype
    tolerance = 1e-5 if dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(batched[1], model(x[1]), rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(
        eqx.filter_jit(model)(x[2]), model(x[2]), rtol=tolerance, atol=tolerance
    )


def test_fno_paper_defaults_and_bad_input():
    model = operators.FNO(1, 1, key=jax.random.key(0))
    assert model.spectral[0].modes == (12, 12) and len(model.spectral) == 4
    assert model.lifting.weight.shape == (32, 3)
    assert (model.in_channels, model.out_channels, model.grid) == (1, 1, "closed")
    assert model(jnp.ones((1, 29, 29))).shape == (1, 29, 29)
    with pytest.raises(ValueError, match="channels"):
        model(jnp.ones((2, 29, 29)))
    with pytest.raises(ValueError, match="vmap"):
        model(jnp.ones((4, 1, 29, 29)))
    # 16 points padded to 18 hold 9 modes; the message names the user's 16
    # and the smallest grid that works (22 + 3 padding points = 25)
    with pytest.raises(ValueError, match=r"at least 22 grid points.*\(16, 16\)"):
        model(jnp.ones((1, 16, 16)))
    with pytest.raises(ValueError, match="ndim"):
        operators.FNO(1, 1, 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="grid"):
        operators.FNO(1, 1, grid="torus", key=jax.random.key(0))


def test_fno_modes_error_names_the_smallest_grid_that_works():
    model = operators.FNO(
        1, 1, 1, modes=6, width=4, depth=1, projection=4, padding=0.25,
        key=jax.random.key(0),
    )  # fmt: skip
    # 1-D: the last (real-FFT) axis holds padded // 2 + 1 modes, so 6 modes
    # need 10 padded points: 8 + ceil(0.25 * 7) = 10, 7 + 2 = 9
    assert model(jnp.ones(8)).shape == (8,)
    with pytest.raises(ValueError, match=r"at least 8 grid points.*\(7,\)"):
        model(jnp.ones(7))


@pytest.mark.parametrize("bad", [jnp.bool_, jnp.int32, jnp.complex64])
def test_non_float_input_is_refused(bad):
    model = operators.FNO(
        1, 1, 1, modes=2, width=4, depth=1, projection=4, key=jax.random.key(0)
    )
    with pytest.raises(TypeError, match="dtype"):
        model(jnp.ones(8, bad))
    with pytest.raises(TypeError, match="dtype"):
        operators.UnitGaussianNormalizer(jnp.ones((4, 8), bad))
    normalizer = operators.UnitGaussianNormalizer(jnp.ones((4, 8)))
    with pytest.raises(TypeError, match="dtype"):
        normalizer.encode(jnp.ones(8, bad))
    if bad != jnp.complex64:
        with pytest.raises(TypeError, match="floating"):
            operators.FNO(1, 1, 1, key=jax.random.key(0), dtype=bad)


def test_fno_without_a_channel_axis():
    one = operators.FNO(
        1, 1, 1, modes=2, width=4, depth=1, projection=4, key=jax.random.key(0)
    )
    x = jax.random.normal(jax.random.key(1), (10,))
    np.testing.assert_array_equal(one(x), one(x[None])[0])
    two_out = operators.FNO(
        1, 2, 1, modes=2, width=4, depth=1, projection=4, key=jax.random.key(0)
    )
    assert two_out(x).shape == (2, 10)
    two_in = operators.FNO(
        2, 1, 1, modes=2, width=4, depth=1, projection=4, key=jax.random.key(0)
    )
    with pytest.raises(ValueError, match="channels"):
        two_in(x)
    # a normalizer fitted with or without the channel axis serves both
    data = jax.random.normal(jax.random.key(2), (5, 10))
    for fitted in (data, data[:, None]):
        model = operators.NormalizedOperator(
            one,
            operators.UnitGaussianNormalizer(fitted),
            operators.UnitGaussianNormalizer(fitted),
        )
        assert model.ndim == 1 and model.in_channels == 1
        np.testing.assert_allclose(model(x), model(x[None])[0], rtol=1e-12)


def test_grid_conventions_place_the_coordinate_channels():
    def model(grid):
        return operators.FNO(
            1, 1, 1, modes=2, width=4, depth=1, projection=4, padding=0,
            grid=grid, key=jax.random.key(0),
        )  # fmt: skip

    closed, periodic = model("closed"), model("periodic")
    np.testing.assert_allclose(
        closed._coordinates((4,), jnp.float64)[0], [0, 1 / 3, 2 / 3, 1]
    )
    np.testing.assert_allclose(
        periodic._coordinates((4,), jnp.float64)[0], [0, 0.25, 0.5, 0.75]
    )
    # the same weights, other coordinates: the lifting sees them, so the
    # outputs differ (at every point but the first, x_0 = 0 in both)
    x = jnp.ones(8)
    difference = np.abs(np.asarray(closed(x) - periodic(x)))
    assert difference[1:].min() > 0


# slow: operators/test_training.py trains the FNO through fit by default
@pytest.mark.slow
def test_training_steps_lower_the_loss_and_gradients_are_finite():
    model = operators.FNO(
        1,
        1,
        1,
        modes=6,
        width=12,
        depth=2,
        projection=16,
        padding=0,
        key=jax.random.key(3),
    )
    t = jnp.linspace(0, 1, 32, endpoint=False)
    phases = jax.random.uniform(jax.random.key(4), (16,)) * 2 * jnp.pi
    inputs = jnp.sin(2 * jnp.pi * t[None] + phases[:, None])[:, None]
    targets = jnp.cos(2 * jnp.pi * t[None] + phases[:, None])[
        :, None
    ]  # the derivative / 2 pi

    def loss(model):
        predictions = jax.vmap(model)(inputs)
        return jnp.mean(jax.vmap(operators.relative_lp_loss)(predictions, targets))

    optimizer = optax.adam(3e-3)
    state = optimizer.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model, state):
        value, grads = eqx.filter_value_and_grad(loss)(model)
        updates, state = optimizer.update(grads, state)
        return eqx.apply_updates(model, updates), state, value, grads

    first = None
    # optax's bias correction mixes a Python float with an int32 count,
    # which the suite's strict promotion refuses
    with jax.numpy_dtype_promotion("standard"):
        model, state, first, _ = step(model, state)
    for _ in range(60):
        with jax.numpy_dtype_promotion("standard"):
            model, state, value, grads = step(model, state)
        leaves = jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_array))
        assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in leaves)
    assert float(loss(model)) < 0.5 * float(first)


def test_losses():
    target = jnp.array([3.0, 4.0])
    assert float(operators.relative_lp_loss(jnp.zeros(2), target)) == pytest.approx(1.0)
    assert float(operators.relative_lp_loss(target * 1.1, target)) == pytest.approx(0.1)
    assert float(
        operators.relative_lp_loss(jnp.array([3.0, 5.0]), target, p=1)
    ) == pytest.approx(1 / 7)
    with pytest.raises(ValueError, match="shapes"):
        operators.relative_lp_loss(jnp.zeros(3), target)

    # resolution-aware: the same functions sampled at two resolutions
    def pair(n):
        x = jnp.linspace(0, 1, n)
        exact = jnp.sin(jnp.pi * x)[None]
        return exact + 0.05 * jnp.sin(5 * jnp.pi * x)[None], exact

    for loss in (operators.relative_lp_loss, operators.relative_h1_loss):
        coarse, fine = loss(*pair(65)), loss(*pair(513))
        assert abs(float(coarse) / float(fine) - 1) < 0.05
    # H1 weighs the oscillating error by its derivative (5 times larger)
    assert float(operators.relative_h1_loss(*pair(513))) > 3 * float(
        operators.relative_lp_loss(*pair(513))
    )


def test_unit_gaussian_normalizer_round_trip():
    data = 2.0 + 3.0 * jax.random.normal(jax.random.key(0), (50, 8, 8))
    normalizer = operators.UnitGaussianNormalizer(data)
    encoded = jax.vmap(normalizer.encode)(data)
    np.testing.assert_allclose(jnp.mean(encoded, axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(jnp.std(encoded, axis=0), 1.0, atol=1e-4)
    np.testing.assert_allclose(jax.vmap(normalizer.decode)(encoded), data, rtol=1e-12)
    scalar = operators.UnitGaussianNormalizer(data, pointwise=False)
    assert scalar.mean.shape == () and scalar.encode(data[0]).shape == (8, 8)


def test_pointwise_statistics_follow_the_resolution():
    # a linear field on the nodes of [0, 1]: interpolation reproduces it
    def ramp(n):
        t = jnp.linspace(0.0, 1.0, n)
        return (1.0 + t[:, None] + 2.0 * t[None, :])[None]

    data = jnp.stack([ramp(9) * scale for scale in (1.0, 2.0, 3.0)])
    normalizer = operators.UnitGaussianNormalizer(data)
    fine = 2.0 * ramp(17)
    np.testing.assert_allclose(normalizer.encode(fine), 0.0, atol=1e-12)
    np.testing.assert_allclose(normalizer.decode(normalizer.encode(fine)), fine)
    with pytest.raises(ValueError, match="number of axes"):
        normalizer.encode(jnp.ones(17))


def test_periodic_statistics_resample_across_the_wrap():
    # a triangle wave with its kinks on the coarse nodes i / 4: linear
    # interpolation reproduces it on the nodes j / 8, the last of which
    # (7 / 8) lies between the last coarse node and the first, one period on
    triangle = jnp.array([0.0, 1.0, 2.0, 1.0])
    data = jnp.stack([scale * triangle for scale in (1.0, 2.0, 3.0)])
    fine_mean = 2.0 * jnp.array([0.0, 0.5, 1.0, 1.5, 2.0, 1.5, 1.0, 0.5])
    periodic = operators.UnitGaussianNormalizer(data, grid="periodic")
    np.testing.assert_allclose(periodic.decode(jnp.zeros(8)), fine_mean, atol=1e-12)
    # read as closed nodes i / 3 the same statistics mean another field
    closed = operators.UnitGaussianNormalizer(data)
    assert not np.allclose(closed.decode(jnp.zeros(8)), fine_mean)
    with pytest.raises(ValueError, match="grid"):
        operators.UnitGaussianNormalizer(data, grid="open")
