"""The trainer: the loss goes down, resume gives the uninterrupted result,
non-finite losses stop training, normalisers stay fixed, data parallelism,
checkpoints, bad input."""

import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciax.operators._training as training_module
from sciax import operators
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


def leaves(model):
    return [
        np.asarray(leaf) for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_array))
    ]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_training_lowers_the_loss(dtype):
    x, y = smoothing_problem(dtype)
    model = small_fno(dtype)
    before = operators.evaluate(model, x, y)
    optimiser = operators.default_optimiser(15 * 6, learning_rate=1e-2)
    result = operators.fit(
        model, x, y, key=jax.random.key(2), num_epochs=15, batch_size=8,
        optimiser=optimiser, progress=False,
    )  # fmt: skip
    after = operators.evaluate(result.model, x, y)
    assert result.status == "finished" and result.epochs_done == 15
    assert result.train_loss.dtype == dtype and np.all(np.isfinite(result.train_loss))
    assert float(after) < 0.5 * float(before)
    assert float(result.train_loss[-1]) < float(result.train_loss[0])


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
    assert resumed.epochs_done == 4
    for a, b in zip(leaves(whole.model), leaves(resumed.model), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(whole.train_loss, resumed.train_loss)
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
    with pytest.warns(RuntimeWarning, match="not finite"):
        stopped = operators.fit(
            good.model, x, bad_targets, num_epochs=3, checkpoint_dir=tmp_path / "new",
            **options,
        )  # fmt: skip
    assert stopped.status.startswith("stopped") and stopped.epochs_done == 0
    for a, b in zip(leaves(good.model), leaves(stopped.model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "new" / "checkpoint.json").exists()
    assert (tmp_path / "checkpoint.json").read_text() == pointer


def test_normaliser_statistics_are_not_trained():
    x, y = smoothing_problem()
    normalised = operators.NormalisedOperator(
        small_fno(),
        operators.UnitGaussianNormaliser(x, pointwise=False),
        operators.UnitGaussianNormaliser(y, pointwise=False),
    )
    result = operators.fit(
        normalised, x, y, key=jax.random.key(5), num_epochs=2, batch_size=8,
        progress=False,
    )  # fmt: skip
    trained = result.model
    for before, after in (
        (normalised.input_normaliser, trained.input_normaliser),
        (normalised.output_normaliser, trained.output_normaliser),
    ):
        np.testing.assert_array_equal(before.mean, after.mean)
        np.testing.assert_array_equal(before.std, after.std)
    assert not np.array_equal(
        leaves(normalised.operator)[0], leaves(trained.operator)[0]
    )


def test_evaluate_at_another_resolution_and_bad_input():
    x, y = smoothing_problem()
    model = small_fno()
    coarse = operators.evaluate(model, x, y, batch_size=16)
    assert coarse.shape == () and np.isfinite(coarse)
    fine = operators.evaluate(
        model, jnp.repeat(x, 2, axis=-1), jnp.repeat(y, 2, axis=-1)
    )
    assert np.isfinite(fine)
    with pytest.raises(ValueError, match="multiple"):
        operators.fit(model, x, y, key=jax.random.key(0), num_epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="same number of samples"):
        operators.fit(
            model, x, y[:5], key=jax.random.key(0), num_epochs=1, batch_size=4
        )


DATA_PARALLEL = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, equinox as eqx
    jax.config.update("jax_enable_x64", True)
    from sciax import operators
    from tests.operators.test_training import smoothing_problem, small_fno, leaves
    assert len(jax.devices()) == 8
    x, y = smoothing_problem()
    options = dict(key=jax.random.key(6), num_epochs=3, batch_size=16, progress=False)
    spread = operators.fit(small_fno(), x, y, **options)
    alone = operators.fit(small_fno(), x, y, devices=jax.devices()[:1], **options)
    for a, b in zip(leaves(spread.model), leaves(alone.model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # data sharded over all eight (as a generator leaves them), a normaliser
    # fitted on them, training and evaluation on one device
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("d",))
    sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("d"))
    xs, ys = jax.device_put((x, y), sharded)
    model = operators.NormalisedOperator(
        small_fno(), operators.UnitGaussianNormaliser(xs, pointwise=False)
    )
    one = operators.fit(model, xs, ys, devices=jax.devices()[:1], **options)
    assert np.isfinite(float(operators.evaluate(one.model, xs, ys)))
    print("ok")
    """
)


def test_data_parallel_over_eight_host_devices_matches_one_device():
    assert run_with_eight_host_devices(DATA_PARALLEL).startswith("ok")
