"""Supervised training of neural operators: a whole epoch per compiled call,
data-parallel over devices, checkpointed and resumable."""

import math
import time
import warnings
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax
from jax import lax
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float, PRNGKeyArray
from tqdm.auto import tqdm

from .._checkpoint import load_checkpoint, save_checkpoint
from ._losses import relative_lp_loss
from ._normaliser import UnitGaussianNormaliser


class Training(eqx.Module):
    """What ``fit`` returns.

    Attributes:
        model: the trained model (the last epoch that finished with a finite
            loss).
        train_loss: mean training loss of every epoch, NaN for epochs not run.
        epoch_seconds: wall-clock seconds of every epoch run by this call
            (the first includes compilation), NaN for the others.
        epochs_done: epochs completed (including those before a resume).
        seconds: wall-clock seconds of this call, compilation included.
        status: "finished", or why training stopped early.
    """

    model: eqx.Module
    train_loss: Float[Array, " epochs"]
    epoch_seconds: Float[Array, " epochs"]
    epochs_done: int = eqx.field(static=True)
    seconds: float = eqx.field(static=True)
    status: str = eqx.field(static=True)


def default_optimiser(
    num_steps: int, *, learning_rate: float = 1e-3, weight_decay: float = 1e-4
) -> optax.GradientTransformation:
    r"""Adam with decoupled weight decay and a cosine learning-rate decay to
    zero over ``num_steps`` (after a 2% linear warm-up). The FNO paper uses
    Adam, learning rate 1e-3, weight decay 1e-4 and a step decay (halving
    every 100 of 500 epochs); the cosine decay reaches the same error in
    far fewer epochs when the budget is fixed in advance."""
    warmup = max(1, num_steps // 50)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, learning_rate, warmup, max(num_steps, warmup + 1)
    )
    return optax.adamw(schedule, weight_decay=weight_decay)


def _trainable(model):
    """Inexact arrays, except normalisers' statistics (fitted, not trained)."""
    return jtu.tree_map(
        lambda leaf: (
            jtu.tree_map(lambda _: False, leaf)
            if isinstance(leaf, UnitGaussianNormaliser)
            else eqx.is_inexact_array(leaf)
        ),
        model,
        is_leaf=lambda leaf: isinstance(leaf, UnitGaussianNormaliser),
    )


def _check_data(inputs, targets, name):
    if inputs.ndim < 2 or targets.ndim < 2 or inputs.shape[0] != targets.shape[0]:
        raise ValueError(
            f"{name}: inputs and targets must be (samples, channels, grid...) with "
            f"the same number of samples, got {inputs.shape} and {targets.shape}."
        )


def fit(
    model: eqx.Module,
    inputs: Float[Array, "n c ..."],
    targets: Float[Array, "n o ..."],
    *,
    key: PRNGKeyArray,
    num_epochs: int,
    batch_size: int,
    optimiser: optax.GradientTransformation | None = None,
    loss: Callable = relative_lp_loss,
    checkpoint_dir=None,
    checkpoint_every: int = 1,
    devices=None,
    progress: bool = True,
) -> Training:
    r"""Minimise the mean over the training set of ``loss(model(x), y)``
    (default: relative $L^2$, the FNO paper's objective) by minibatch
    gradient descent.

    Every epoch draws a permutation from ``fold_in(key, epoch)`` and runs all
    its ``num_samples // batch_size`` steps in one compiled ``lax.scan``
    (the remainder of the permutation is skipped, different samples each
    epoch), so an epoch costs one dispatch. The batch is split over
    ``devices`` (default: all local devices; ``batch_size`` must be a
    multiple of their number) with ``jax.shard_map``: the data and the
    parameters are replicated, each device computes the loss and gradient of
    its share of the batch, and the gradients are averaged across devices
    (``lax.pmean``) before the optimiser step.

    Checkpoints: with ``checkpoint_dir``, the model, optimiser state and
    loss history are saved every ``checkpoint_every`` epochs and after the
    last, atomically (``equinox.tree_serialise_leaves`` to a temporary file,
    renamed, then a JSON pointer with the file's SHA-256). Calling ``fit``
    again with the same arguments resumes after the last saved epoch and
    gives bit-for-bit the model of an uninterrupted run (same devices); a
    checkpoint made with other settings raises ``ValueError``.

    Non-finite loss: training stops after that epoch, a warning says which,
    the model of the last finite epoch is returned and the checkpoint on
    disk is left as it was.

    The statistics of any ``UnitGaussianNormaliser`` inside the model are
    not trained.

    Args:
        model: maps one sample (channels, grid...) to one target.
        inputs, targets: (num_samples, channels, grid...) arrays.
        key: PRNG key of the shuffling.
        num_epochs: total epochs (including any already checkpointed).
        batch_size: samples per step.
        optimiser: an optax transformation (default:
            ``default_optimiser(num_epochs * steps_per_epoch)``).
        loss: ``loss(prediction, target)`` of one sample.
        checkpoint_dir: where to save and resume (None: no checkpoints).
        checkpoint_every: epochs between checkpoints.
        devices: devices to split each batch over.
        progress: show a progress bar with the loss and samples per second.
    """
    _check_data(inputs, targets, "fit")
    num_samples = inputs.shape[0]
    devices = tuple(jax.local_devices() if devices is None else devices)
    if batch_size < 1 or batch_size > num_samples or batch_size % len(devices):
        raise ValueError(
            f"fit: batch_size must be between 1 and the number of samples "
            f"({num_samples}) and a multiple of the {len(devices)} devices, "
            f"got {batch_size}."
        )
    if num_epochs < 1 or checkpoint_every < 1:
        raise ValueError("fit: num_epochs and checkpoint_every must be >= 1.")
    steps_per_epoch = num_samples // batch_size
    if optimiser is None:
        optimiser = default_optimiser(num_epochs * steps_per_epoch)
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    replicated = jax.sharding.NamedSharding(mesh, P())
    split = jax.sharding.NamedSharding(mesh, P("batch"))

    trainable = _trainable(model)
    parameters, frozen = eqx.partition(model, trainable)
    with jax.numpy_dtype_promotion("standard"):
        opt_state = optimiser.init(parameters)
    train_loss = jnp.full(num_epochs, jnp.nan, inputs.dtype)
    first_epoch = 0
    settings = {
        "num_epochs": num_epochs,
        "batch_size": batch_size,
        "num_samples": num_samples,
        "shapes": [list(inputs.shape), list(targets.shape)],
    }
    if checkpoint_dir is not None:
        restored, pointer = load_checkpoint(
            checkpoint_dir, (parameters, opt_state, train_loss)
        )
        if pointer is not None:
            different = {
                name: (pointer.get(name), value)
                for name, value in settings.items()
                if pointer.get(name) != value
            }
            if different:
                raise ValueError(
                    f"fit: {checkpoint_dir} holds a checkpoint made with other "
                    f"settings (saved, requested): {different}."
                )
            parameters, opt_state, train_loss = restored
            first_epoch = pointer["epoch"]

    def put(tree, sharding):
        return jax.device_put(tree, sharding)

    parameters, opt_state, train_loss = put(
        (parameters, opt_state, train_loss), replicated
    )
    # normaliser statistics fitted on data that live elsewhere (say, sharded
    # by the generator) must sit on the training devices too
    frozen = jtu.tree_map(
        lambda leaf: put(leaf, replicated) if eqx.is_array(leaf) else leaf, frozen
    )
    inputs, targets = put((inputs, targets), replicated)

    @eqx.filter_jit
    def run_epoch(parameters, opt_state, inputs, targets, epoch_key):
        order = jax.random.permutation(epoch_key, num_samples)
        batches = order[: steps_per_epoch * batch_size].reshape(
            steps_per_epoch, batch_size
        )

        def batch_loss(parameters, x, y):
            model = eqx.combine(parameters, frozen)
            predictions = jax.vmap(model)(x)
            return jnp.mean(jax.vmap(loss)(predictions, y))

        local_value_and_grad = jax.value_and_grad(batch_loss)
        loss_and_grad = local_value_and_grad
        if len(devices) > 1:
            # explicit per-device shares: left to the partitioner, the
            # vmapped FFTs and einsums were not split by batch, and two
            # devices each did the whole step
            def local_loss_and_grad(parameters, x, y):
                value, grads = local_value_and_grad(parameters, x, y)
                return lax.pmean((value, grads), "batch")

            loss_and_grad = jax.shard_map(
                local_loss_and_grad,
                mesh=mesh,
                in_specs=(P(), P("batch"), P("batch")),
                out_specs=P(),
                check_vma=False,
            )

        def step(carry, indices):
            parameters, opt_state = carry
            x = lax.with_sharding_constraint(inputs[indices], split)
            y = lax.with_sharding_constraint(targets[indices], split)
            value, grads = loss_and_grad(parameters, x, y)
            # optax mixes Python scalars and int step counts with float
            # arrays, which a user's strict dtype promotion would reject
            with jax.numpy_dtype_promotion("standard"):
                updates, opt_state = optimiser.update(grads, opt_state, parameters)
            return (optax.apply_updates(parameters, updates), opt_state), value

        (parameters, opt_state), losses = lax.scan(
            step, (parameters, opt_state), batches
        )
        return parameters, opt_state, jnp.mean(losses)

    status = "finished"
    start = time.perf_counter()
    bar = tqdm(
        total=num_epochs,
        initial=first_epoch,
        unit="epoch",
        disable=not progress,
        desc="training",
    )
    epoch_seconds = np.full(num_epochs, np.nan)
    epoch = first_epoch
    for epoch in range(first_epoch, num_epochs):
        began = time.perf_counter()
        new_parameters, new_opt_state, mean_loss = run_epoch(
            parameters, opt_state, inputs, targets, jax.random.fold_in(key, epoch)
        )
        mean_loss = float(mean_loss)
        if not math.isfinite(mean_loss):
            status = (
                f"stopped: the loss of epoch {epoch + 1} is not finite; the model "
                f"of epoch {epoch} is returned and its checkpoint kept. Lower the "
                "learning rate or check the data."
            )
            warnings.warn(status, RuntimeWarning, stacklevel=2)
            break
        parameters, opt_state = new_parameters, new_opt_state
        train_loss = train_loss.at[epoch].set(mean_loss)
        done = epoch + 1
        if checkpoint_dir is not None and (
            done % checkpoint_every == 0 or done == num_epochs
        ):
            save_checkpoint(
                checkpoint_dir,
                (parameters, opt_state, train_loss),
                epoch=done,
                metadata=settings,
            )
        epoch_seconds[epoch] = time.perf_counter() - began
        rate = steps_per_epoch * batch_size / epoch_seconds[epoch]
        bar.set_postfix(loss=f"{mean_loss:.4g}", samples_per_s=f"{rate:.0f}")
        bar.update(1)
    else:
        epoch = num_epochs
    bar.close()
    return Training(
        model=eqx.combine(parameters, frozen),
        train_loss=train_loss,
        epoch_seconds=jnp.asarray(epoch_seconds),
        epochs_done=epoch,
        seconds=time.perf_counter() - start,
        status=status,
    )


def evaluate(
    model: eqx.Module,
    inputs: Float[Array, "n c ..."],
    targets: Float[Array, "n o ..."],
    *,
    loss: Callable = relative_lp_loss,
    batch_size: int = 100,
) -> Float[Array, ""]:
    """Mean of ``loss(model(x), y)`` over a dataset, ``batch_size`` samples
    at a time (``lax.map``), at whatever resolution the data have: with the
    same weights at a finer grid this is the zero-shot super-resolution
    error."""
    _check_data(inputs, targets, "evaluate")
    inputs, targets = jnp.asarray(inputs), jnp.asarray(targets)
    arrays = jtu.tree_leaves(eqx.filter(model, eqx.is_array))
    if arrays:
        # a model trained on several devices is replicated there; the data
        # follow it instead of failing on mismatched devices
        inputs, targets = jax.device_put((inputs, targets), arrays[0].sharding)
    return _mean_loss(model, inputs, targets, loss, batch_size)


# module level, so repeated evaluations of one model and data shape reuse a
# single compilation (a function defined inside evaluate compiled every call)
@eqx.filter_jit
def _mean_loss(model, inputs, targets, loss, batch_size):
    def one(pair):
        x, y = pair
        return loss(model(x), y)

    return jnp.mean(lax.map(one, (inputs, targets), batch_size=batch_size))
