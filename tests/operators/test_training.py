"""The trainer: the loss goes down, resume gives the uninterrupted result,
non-finite losses stop training, normalizers stay fixed, every sample is
used once per epoch, validation, data without a channel axis, the derived
optimizer schedule, data parallelism, checkpoints, bad input."""

import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sciax.operators._training as training_module
from sciax import RESULTS, operators
from tests.helpers import run_with_eight_host_devices

N, SAMPLES = 32, 48


def smoothing_problem(dtype=jnp.float64):
    """y = a low-pass filtered x: a linear operator an FNO can represent."""
    x = jax.random.normal(jax.random.key(0), (SAMPLES, 1, N), dtype)
    spectrum = jnp.fft.rfft(x, axis=-1)
    decay = (1.0 / (1.0 + jnp.arange(N // 2 + 1, dtype=dtype) ** 2)).astype(
        spectrum.dtype
    )
    y = jnp.fft.irfft(spectrum * decay[None, None], n=N, axis=-1).astype(dtype)
    return x, y


def small_fno(dtype=jnp.float64):
    return operators.FNO(
        1, 1, 1, modes=4, width=8, depth=2, projection=16, padding=0,
        key=jax.random.key(1), dtype=dtype,
    )  # fmt: skip


class Affine(eqx.Module):
    """u -> w u + b at every grid point: a model whose output and gradient
    are known by hand (one grid axis, as FNO.ndim says)."""

    w: jax.Array
    b: jax.Array
    ndim: int = eqx.field(static=True, default=1)

    def __call__(self, u):
        return self.w * u + self.b


def leaves(model):
    return [
        np.asarray(leaf) for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_array))
    ]


@pytest.mark.parametrize(
    "dtype", [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.slow)]
)
def test_training_lowers_the_loss(dtype):
    x, y = smoothing_problem(dtype)
    model = small_fno(dtype)
    before = operators.evaluate(model, x, y)
    optimizer = operators.default_optimizer(
        num_epochs=15, num_samples=SAMPLES, batch_size=8, learning_rate=1e-2
    )
    result = operators.fit(
        model, x, y, key=jax.random.key(2), num_epochs=15, batch_size=8,
        optimizer=optimizer, progress=False,
    )  # fmt: skip
    after = operators.evaluate(result.model, x, y)
    train_loss = result.stats["train_loss"]
    assert result.result == RESULTS.successful
    assert result.stats["num_epochs"] == 15 and result.stats["num_steps"] == 15 * 6
    assert train_loss.dtype == dtype and np.all(np.isfinite(train_loss))
    assert np.all(np.isnan(result.stats["validation_loss"]))
    assert float(after) < 0.5 * float(before)
    assert float(train_loss[-1]) < float(train_loss[0])


def test_resume_after_interrupt_gives_the_uninterrupted_model(tmp_path, monkeypatch):
    x, y = smoothing_problem()
    options = dict(key=jax.random.key(3), num_epochs=4, batch_size=8, progress=False)
    whole = operators.fit(small_fno(), x, y, checkpoint_dir=tmp_path / "a", **options)

    saves = []
    real_save = training_module.save_checkpoint

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        saves.append(kwargs["epoch"])
        if kwargs["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(training_module, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        operators.fit(small_fno(), x, y, checkpoint_dir=tmp_path / "b", **options)
    monkeypatch.setattr(training_module, "save_checkpoint", real_save)
    assert saves == [1, 2]
    resumed = operators.fit(small_fno(), x, y, checkpoint_dir=tmp_path / "b", **options)
    assert resumed.stats["num_epochs"] == 4
    for a, b in zip(leaves(whole.model), leaves(resumed.model), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        whole.stats["train_loss"], resumed.stats["train_loss"]
    )
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "checkpoint.json",
        "epoch_000004.eqx",
    ]
    with pytest.raises(ValueError, match="other settings"):
        operators.fit(
            small_fno(),
            x,
            y,
            checkpoint_dir=tmp_path / "b",
            **{**options, "batch_size": 4},
        )


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    x, y = smoothing_problem()
    options = dict(key=jax.random.key(4), batch_size=8, progress=False)
    good = operators.fit(
        small_fno(), x, y, num_epochs=3, checkpoint_dir=tmp_path, **options
    )
    pointer = (tmp_path / "checkpoint.json").read_text()
    bad_targets = y.at[:].set(jnp.nan)
    # the same settings with more epochs would resume; keep num_epochs and
    # start a fresh run in another directory seeded from the good one
    with pytest.warns(RuntimeWarning, match="epoch 1 is nan"):
        stopped = operators.fit(
            good.model, x, bad_targets, num_epochs=3, checkpoint_dir=tmp_path / "new",
            **options,
        )  # fmt: skip
    assert stopped.result == RESULTS.nonfinite_loss
    assert stopped.stats["num_epochs"] == 0 and stopped.stats["num_steps"] == 0
    for a, b in zip(leaves(good.model), leaves(stopped.model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "new" / "checkpoint.json").exists()
    assert (tmp_path / "checkpoint.json").read_text() == pointer
    with pytest.raises(RuntimeError, match="NaN or inf loss"):
        operators.fit(good.model, x, bad_targets, num_epochs=3, throw=True, **options)


def test_normalizer_statistics_are_not_trained():
    x, y = smoothing_problem()
    normalized = operators.NormalizedOperator(
        small_fno(),
        operators.UnitGaussianNormalizer(x, pointwise=False),
        operators.UnitGaussianNormalizer(y, pointwise=False),
    )
    result = operators.fit(
        normalized, x, y, key=jax.random.key(5), num_epochs=2, batch_size=8,
        progress=False,
    )  # fmt: skip
    trained = result.model
    for before, after in (
        (normalized.input_normalizer, trained.input_normalizer),
        (normalized.output_normalizer, trained.output_normalizer),
    ):
        np.testing.assert_array_equal(before.mean, after.mean)
        np.testing.assert_array_equal(before.std, after.std)
    assert not np.array_equal(
        leaves(normalized.operator)[0], leaves(trained.operator)[0]
    )


def test_evaluate_is_the_mean_relative_error_at_any_resolution():
    # identity model, targets (1 + e_i) x: relative L2 error |e_i| / (1 + e_i)
    x = jax.random.normal(jax.random.key(0), (7, 1, 16))
    e = jnp.array([0.1, -0.2, 0.3, 0.05, -0.1, 0.4, 0.0])
    y = (1 + e)[:, None, None] * x
    identity = Affine(jnp.ones(()), jnp.zeros(()))
    expected = np.mean(np.abs(e) / (1 + e))
    for batch_size in (7, 3):  # 3: lax.map's remainder batch
        value = operators.evaluate(identity, x, y, batch_size=batch_size)
        np.testing.assert_allclose(value, expected, rtol=1e-13)
    # a finer grid, and no channel axis: the same error
    fine = operators.evaluate(identity, jnp.repeat(x, 2, -1), jnp.repeat(y, 2, -1))
    np.testing.assert_allclose(fine, expected, rtol=1e-13)
    np.testing.assert_allclose(
        operators.evaluate(identity, x[:, 0], y[:, 0]), expected, rtol=1e-13
    )
    # without a channel axis the H1 loss still differentiates along the grid
    # (given to it as (1, n)); read as channels, the grid would have no
    # derivative term
    h1 = [
        operators.evaluate(identity, a, b, loss=operators.relative_h1_loss)
        for a, b in ((x, y), (x[:, 0], y[:, 0]))
    ]
    np.testing.assert_allclose(h1[0], h1[1], rtol=1e-13)


def test_bad_input_is_refused():
    x, y = smoothing_problem()
    model = small_fno()
    options = dict(key=jax.random.key(0), num_epochs=1, progress=False)
    with pytest.raises(ValueError, match="multiple"):
        operators.fit(model, x, y, batch_size=0, **options)
    with pytest.raises(ValueError, match="same number of samples"):
        operators.fit(model, x, y[:5], batch_size=4, **options)
    with pytest.raises(ValueError, match="1 grid axes"):
        operators.evaluate(model, x[..., None], y[..., None])
    for bad in (x > 0, (4 * x).astype(jnp.int32)):
        with pytest.raises(TypeError, match="inputs has dtype"):
            operators.fit(model, bad, y, batch_size=4, **options)
        with pytest.raises(TypeError, match="targets has dtype"):
            operators.evaluate(model, x, bad)
        with pytest.raises(TypeError, match="validation inputs has dtype"):
            operators.fit(model, x, y, batch_size=4, validation=(bad, y), **options)


def test_every_sample_is_used_once_per_epoch_and_the_last_batch_is_smaller():
    # 10 samples, batches of 4: steps on 4, 4 and 2 samples, each the mean
    # gradient of its own samples, as plain SGD by hand
    x = jax.random.normal(jax.random.key(0), (10, 1, 8))
    y = 3.0 * x + 0.5
    model = Affine(jnp.ones(()), jnp.zeros(()))
    key = jax.random.key(7)
    result = operators.fit(
        model, x, y, key=key, num_epochs=1, batch_size=4,
        optimizer=optax.sgd(0.1), progress=False,
    )  # fmt: skip
    order = np.asarray(jax.random.permutation(jax.random.fold_in(key, 0), 10))

    def mean_loss(model, indices):
        losses = jax.vmap(operators.relative_lp_loss)(
            jax.vmap(model)(x[indices]), y[indices]
        )
        return jnp.mean(losses)

    by_hand, losses = model, []
    for indices in (order[:4], order[4:8], order[8:]):
        value, grads = eqx.filter_value_and_grad(mean_loss)(by_hand, indices)
        by_hand = jax.tree.map(lambda p, g: p - 0.1 * g, by_hand, grads)
        losses.append(float(value) * len(indices) / 10)
    for a, b in zip(leaves(by_hand), leaves(result.model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(result.stats["train_loss"][0], sum(losses), rtol=1e-12)
    assert result.stats["num_steps"] == 3


def test_validation_loss_and_data_without_a_channel_axis():
    # the affine model compiles in a fraction of the FNO's time; the FNO's
    # own channel-less call is tested in test_fno.py
    x, y = smoothing_problem()
    model = Affine(jnp.ones(()), jnp.zeros(()))
    options = dict(
        key=jax.random.key(8), num_epochs=2, batch_size=16, loss=operators.relative_h1_loss,
        progress=False,
    )  # fmt: skip
    with_channel = operators.fit(
        model, x[:32], y[:32], validation=(x[32:], y[32:]), **options
    )
    without = operators.fit(
        model, x[:32, 0], y[:32, 0], validation=(x[32:, 0], y[32:, 0]), **options
    )
    for a, b in zip(leaves(with_channel.model), leaves(without.model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    validation = with_channel.stats["validation_loss"]
    assert validation.shape == (2,) and np.all(np.isfinite(validation))
    np.testing.assert_allclose(
        validation[-1],
        operators.evaluate(
            with_channel.model, x[32:], y[32:], loss=operators.relative_h1_loss
        ),
        rtol=1e-12,
    )
    np.testing.assert_allclose(without.stats["validation_loss"], validation, rtol=1e-12)


def test_the_default_optimizer_decays_to_zero_over_the_derived_steps():
    # with zero gradients AdamW's update is -lr(t) * weight_decay * p: it
    # reads the schedule, which must reach zero after exactly
    # 2 epochs * ceil(10 / 4) = 6 steps (not 2 * (10 // 4) = 4)
    optimizer = operators.default_optimizer(
        num_epochs=2, num_samples=10, batch_size=4, weight_decay=1.0
    )
    p = jnp.ones(())
    state = optimizer.init(p)
    rates = []
    with jax.numpy_dtype_promotion("standard"):
        for _ in range(7):
            updates, state = optimizer.update(jnp.zeros(()), state, p)
            rates.append(-float(updates))
    assert rates[0] == 0 and rates[5] > 0 and rates[6] == pytest.approx(0, abs=1e-12)
    assert rates[1] == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="batch_size"):
        operators.default_optimizer(num_epochs=2, num_samples=10, batch_size=0)


DATA_PARALLEL = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, equinox as eqx
    jax.config.update("jax_enable_x64", True)
    from sciax import RESULTS, operators
    from tests.operators.test_training import smoothing_problem, small_fno, leaves
    assert len(jax.devices()) == 8
    x, y = smoothing_problem()
    options = dict(key=jax.random.key(6), num_epochs=3, batch_size=16, progress=False)
    # 40 samples in batches of 16: the last batch holds 8, padded with
    # zero-weight samples that the devices share like the others
    spread = operators.fit(small_fno(), x[:40], y[:40], **options)
    alone = operators.fit(
        small_fno(), x[:40], y[:40], devices=jax.devices()[:1], **options
    )
    for a, b in zip(leaves(spread.model), leaves(alone.model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # data sharded over all eight (as a generator leaves them), a normalizer
    # fitted on them, training and evaluation on one device
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("d",))
    sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("d"))
    xs, ys = jax.device_put((x, y), sharded)
    model = operators.NormalizedOperator(
        small_fno(), operators.UnitGaussianNormalizer(xs, pointwise=False)
    )
    one = operators.fit(model, xs, ys, devices=jax.devices()[:1], **options)
    assert np.isfinite(float(operators.evaluate(one.model, xs, ys)))
    print("ok")
    """
)


# slow (28 s of CPU): the Darcy generator's 8-device test runs by default
@pytest.mark.slow
def test_data_parallel_over_eight_host_devices_matches_one_device():
    assert run_with_eight_host_devices(DATA_PARALLEL).startswith("ok")
