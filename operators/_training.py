"""Supervised training of neural operators: a whole epoch per compiled call,
data-parallel over devices, checkpointed and resumable, with an optional
validation loss per epoch."""

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

from .._checkpoint import changed_settings, load_checkpoint, save_checkpoint
from .._results import RESULTS
from .._training import Training
from ._checks import check_real_float
from ._losses import relative_lp_loss
from ._normalizer import UnitGaussianNormalizer


def _steps_per_epoch(num_samples: int, batch_size: int) -> int:
    return -(-num_samples // batch_size)


def default_optimizer(
    *,
    num_epochs: int,
    num_samples: int,
    batch_size: int,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
) -> optax.GradientTransformation:
    r"""Adam with decoupled weight decay and a cosine learning-rate decay to
    zero over the whole training (after a 2% linear warm-up).

    The number of optimizer steps is derived as ``fit`` takes them:
    ``num_epochs * ceil(num_samples / batch_size)`` (every sample once per
    epoch, the last batch smaller). ``fit`` builds this optimizer with the
    default learning rate when given ``optimizer=None``; call it with the
    same numbers to change the learning rate or the weight decay.

    The FNO paper uses Adam, learning rate 1e-3, weight decay 1e-4 and a
    step decay (halving every 100 of 500 epochs); the cosine decay reaches
    the same error in far fewer epochs when the budget is fixed in advance.

    Args:
        num_epochs: epochs of the whole training (resumed ones included).
        num_samples: training samples.
        batch_size: samples per step.
        learning_rate: peak learning rate.
        weight_decay: decoupled weight decay (AdamW).
    """
    if min(num_epochs, num_samples, batch_size) < 1:
        raise ValueError(
            "default_optimizer: num_epochs, num_samples and batch_size must be "
            f">= 1, got {num_epochs}, {num_samples} and {batch_size}."
        )
    num_steps = num_epochs * _steps_per_epoch(num_samples, batch_size)
    warmup = max(1, num_steps // 50)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, learning_rate, warmup, max(num_steps, warmup + 1)
    )
    return optax.adamw(schedule, weight_decay=weight_decay)


def _trainable(model):
    """Inexact arrays, except normalizers' statistics (fitted, not trained)."""
    return jtu.tree_map(
        lambda leaf: (
            jtu.tree_map(lambda _: False, leaf)
            if isinstance(leaf, UnitGaussianNormalizer)
            else eqx.is_inexact_array(leaf)
        ),
        model,
        is_leaf=lambda leaf: isinstance(leaf, UnitGaussianNormalizer),
    )


def _grid_ndim(model) -> int | None:
    """The model's number of grid axes (``FNO.ndim``, forwarded by
    ``NormalizedOperator``), or None for a model that does not say."""
    ndim = getattr(model, "ndim", None)
    return ndim if isinstance(ndim, int) and not isinstance(ndim, bool) else None


class _ChannelFirst(eqx.Module):
    """``loss`` on samples given a channel axis where they have none, so a
    loss that reads axis 0 as channels (``relative_h1_loss``) differentiates
    along every grid axis. A Module, not a closure: equal wrappers hit the
    same compilation."""

    loss: Callable
    ndim: int = eqx.field(static=True)

    def __call__(self, prediction, target):
        def channel_first(field):
            return field[None] if field.ndim == self.ndim else field

        return self.loss(channel_first(prediction), channel_first(target))


def _loss_for(model, loss):
    ndim = _grid_ndim(model)
    return loss if ndim is None else _ChannelFirst(loss, ndim)


def _check_data(model, inputs, targets, name, what=("inputs", "targets")):
    """Float arrays with a sample axis and, for a model that states its
    ``ndim``, ``ndim + 1`` axes (one channel, none given) or ``ndim + 2``."""
    for array, argument in zip((inputs, targets), what, strict=True):
        check_real_float(array, name=name, argument=argument)
    inputs, targets = jnp.asarray(inputs), jnp.asarray(targets)
    if inputs.ndim < 2 or targets.ndim < 2 or inputs.shape[0] != targets.shape[0]:
        raise ValueError(
            f"{name}: {what[0]} and {what[1]} must be (samples, channels, grid...) "
            f"or (samples, grid...) with the same number of samples, got "
            f"{inputs.shape} and {targets.shape}."
        )
    ndim = _grid_ndim(model)
    for array, argument in zip((inputs, targets), what, strict=True):
        if ndim is not None and array.ndim not in (ndim + 1, ndim + 2):
            raise ValueError(
                f"{name}: the model has {ndim} grid axes, so {argument} must be "
                f"(samples, channels, {ndim} grid axes), or (samples, {ndim} grid "
                f"axes) for one channel; got shape {array.shape}."
            )
    return inputs, targets


def _check_fit_arguments(model, inputs, targets, validation, options):
    """The data as arrays, the validation pair (or None) and the devices."""
    inputs, targets = _check_data(model, inputs, targets, "fit")
    if validation is not None:
        if not isinstance(validation, tuple | list) or len(validation) != 2:
            raise TypeError(
                "fit: validation must be a pair (inputs, targets), got "
                f"{type(validation).__name__}."
            )
        validation = _check_data(
            model, *validation, "fit", ("validation inputs", "validation targets")
        )
    num_samples = inputs.shape[0]
    devices = options["devices"]
    devices = tuple(jax.local_devices() if devices is None else devices)
    batch_size = options["batch_size"]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"fit: batch_size must be an int, got {batch_size!r}.")
    if batch_size < 1 or batch_size > num_samples or batch_size % len(devices):
        raise ValueError(
            f"fit: batch_size must be between 1 and the number of samples "
            f"({num_samples}) and a multiple of the {len(devices)} devices, "
            f"got {batch_size}."
        )
    if options["num_epochs"] < 1 or options["checkpoint_every"] < 1:
        raise ValueError("fit: num_epochs and checkpoint_every must be >= 1.")
    return inputs, targets, validation, devices


def _resume(checkpoint_dir, state, settings):
    """``(state, first_epoch)``: the saved state when ``checkpoint_dir`` holds
    a checkpoint of the same settings, else the given one and 0."""
    if checkpoint_dir is None:
        return state, 0
    restored, pointer = load_checkpoint(checkpoint_dir, state)
    if pointer is None:
        return state, 0
    different = changed_settings(pointer, settings)
    if different:
        raise ValueError(
            f"fit: {checkpoint_dir} holds a checkpoint made with other "
            f"settings (saved, requested): {different}."
        )
    return restored, pointer["epoch"]


def _epoch_function(frozen, optimizer, loss, mesh, num_samples, batch_size):
    """One epoch, compiled: a permutation, then every minibatch step in one
    ``lax.scan``; returns the new parameters, optimizer state and the mean
    loss over the samples."""
    num_batches = _steps_per_epoch(num_samples, batch_size)
    padded = num_batches * batch_size
    # the last batch is topped up with samples from the start of the
    # permutation at weight zero: every sample counts once per epoch, and
    # the scan keeps one batch shape (one compilation)
    weights = np.zeros(padded)
    weights[:num_samples] = 1.0
    weights = weights.reshape(num_batches, batch_size)
    counts = weights.sum(axis=1)
    weights /= counts[:, None]
    split = jax.sharding.NamedSharding(mesh, P("batch"))

    def batch_loss(parameters, x, y, w):
        predictions = jax.vmap(eqx.combine(parameters, frozen))(x)
        losses = jax.vmap(loss)(predictions, y)
        return jnp.sum(w.astype(losses.dtype) * losses)

    loss_and_grad = jax.value_and_grad(batch_loss)
    if mesh.size > 1:
        # explicit per-device shares: left to the partitioner, the vmapped
        # FFTs and einsums were not split by batch, and two devices each did
        # the whole step; the weights already divide by the batch's count,
        # so the shares add up (psum)
        local_loss_and_grad = loss_and_grad

        def shared_loss_and_grad(parameters, x, y, w):
            return lax.psum(local_loss_and_grad(parameters, x, y, w), "batch")

        loss_and_grad = jax.shard_map(
            shared_loss_and_grad,
            mesh=mesh,
            in_specs=(P(), P("batch"), P("batch"), P("batch")),
            out_specs=P(),
            check_vma=False,
        )

    @eqx.filter_jit
    def run_epoch(parameters, opt_state, inputs, targets, epoch_key):
        order = jax.random.permutation(epoch_key, num_samples)
        order = jnp.concatenate([order, order[: padded - num_samples]])

        def step(carry, batch):
            parameters, opt_state = carry
            indices, w = batch
            x = lax.with_sharding_constraint(inputs[indices], split)
            y = lax.with_sharding_constraint(targets[indices], split)
            w = lax.with_sharding_constraint(w, split)
            value, grads = loss_and_grad(parameters, x, y, w)
            # optax mixes Python scalars and int step counts with float
            # arrays, which a user's strict dtype promotion would reject
            with jax.numpy_dtype_promotion("standard"):
                updates, opt_state = optimizer.update(grads, opt_state, parameters)
            return (optax.apply_updates(parameters, updates), opt_state), value

        (parameters, opt_state), losses = lax.scan(
            step,
            (parameters, opt_state),
            (order.reshape(num_batches, batch_size), jnp.asarray(weights)),
        )
        share = jnp.asarray(counts / num_samples, losses.dtype)
        return parameters, opt_state, jnp.sum(share * losses)

    return run_epoch


def _run_epochs(run_epoch, validate, save, state, first_epoch, data, options):
    """The epoch loop: train, validate, checkpoint, report. Returns the state
    after the last epoch with a finite training loss, the epochs done, the
    result, the seconds of every epoch and, on a non-finite loss, why."""
    num_epochs = options["num_epochs"]
    samples_per_epoch = data[0].shape[0]
    epoch_seconds = np.full(num_epochs, np.nan)
    bar = tqdm(
        total=num_epochs,
        initial=first_epoch,
        unit="epoch",
        disable=not options["progress"],
        desc="training",
    )
    result, why, done = RESULTS.successful, "", first_epoch
    for epoch in range(first_epoch, num_epochs):
        began = time.perf_counter()
        parameters, opt_state, (train_loss, validation_loss) = state
        new_parameters, new_opt_state, mean_loss = run_epoch(
            parameters, opt_state, *data, jax.random.fold_in(options["key"], epoch)
        )
        mean_loss = float(mean_loss)
        if not math.isfinite(mean_loss):
            result = RESULTS.nonfinite_loss
            why = (
                f"the training loss of epoch {epoch + 1} is {mean_loss}; the model "
                f"of epoch {epoch} is returned and its checkpoint kept."
            )
            break
        validated = validate(new_parameters)
        state = (
            new_parameters,
            new_opt_state,
            (
                train_loss.at[epoch].set(mean_loss),
                validation_loss.at[epoch].set(validated),
            ),
        )
        done = epoch + 1
        save(state, done)
        epoch_seconds[epoch] = time.perf_counter() - began
        postfix = {"loss": f"{mean_loss:.4g}"}
        if math.isfinite(validated):
            postfix["validation"] = f"{validated:.4g}"
        postfix["samples_per_s"] = f"{samples_per_epoch / epoch_seconds[epoch]:.0f}"
        bar.set_postfix(postfix)
        bar.update(1)
    bar.close()
    return state, done, result, epoch_seconds, why


def _initial_state(model, optimizer, data, validation, checkpoint_dir, options):
    """``(state, frozen, first_epoch, settings)``: the trainable parameters,
    optimizer state and loss histories (fresh, or restored from
    ``checkpoint_dir``), the frozen rest of the model, the epoch to start
    from and the settings a checkpoint must match."""
    inputs, targets = data
    num_epochs = options["num_epochs"]
    parameters, frozen = eqx.partition(model, _trainable(model))
    with jax.numpy_dtype_promotion("standard"):
        opt_state = optimizer.init(parameters)
    history = (jnp.full(num_epochs, jnp.nan, inputs.dtype),) * 2
    settings = {
        "num_epochs": num_epochs,
        "batch_size": options["batch_size"],
        "num_samples": inputs.shape[0],
        "shapes": [list(inputs.shape), list(targets.shape)],
        "validation_shapes": None
        if validation is None
        else [list(array.shape) for array in validation],
    }
    state, first_epoch = _resume(
        checkpoint_dir, (parameters, opt_state, history), settings
    )
    return state, frozen, first_epoch, settings


def _training(state, frozen, done, result, why, epoch_seconds, options):
    """The ``Training`` of a finished loop; warns, or raises with
    ``throw=True``, when it stopped early."""
    if result != RESULTS.successful:
        message = f"fit stopped: {why} {RESULTS[result]}"
        if options["throw"]:
            raise RuntimeError(message)
        # stacklevel 3: the caller of fit
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    parameters, _, (train_loss, validation_loss) = state
    steps = _steps_per_epoch(options["num_samples"], options["batch_size"])
    return Training(
        model=eqx.combine(parameters, frozen),
        result=result,
        stats={
            "train_loss": train_loss,
            "validation_loss": validation_loss,
            "epoch_seconds": jnp.asarray(epoch_seconds),
            "num_epochs": done,
            "num_steps": done * steps,
            "seconds": time.perf_counter() - options["start"],
        },
    )


def fit(
    model: eqx.Module,
    inputs: Float[Array, "n c ..."],
    targets: Float[Array, "n o ..."],
    *,
    key: PRNGKeyArray,
    num_epochs: int,
    batch_size: int,
    validation: tuple[Array, Array] | None = None,
    optimizer: optax.GradientTransformation | None = None,
    loss: Callable = relative_lp_loss,
    checkpoint_dir=None,
    checkpoint_every: int = 1,
    devices=None,
    progress: bool = True,
    throw: bool = False,
) -> Training:
    r"""Minimize the mean over the training set of ``loss(model(x), y)``
    (default: relative $L^2$, the FNO paper's objective) by minibatch
    gradient descent.

    Every epoch draws a permutation from ``fold_in(key, epoch)`` and runs all
    its ``ceil(num_samples / batch_size)`` steps in one compiled
    ``lax.scan``, so an epoch costs one dispatch. Every sample is used once
    per epoch: when ``batch_size`` does not divide the number of samples
    the last step's batch is smaller (it is padded to the common shape with
    zero-weight samples, so nothing recompiles). The batch is split over
    ``devices`` (default: all local devices; ``batch_size`` must be a
    multiple of their number) with ``jax.shard_map``: the data and the
    parameters are replicated, each device computes the loss and gradient of
    its share of the batch, and the shares are summed across devices
    (``lax.psum``) before the optimizer step.

    Data: (num_samples, channels, *grid) arrays of real floating point
    (booleans and integers raise ``TypeError``). For a model that states
    its number of grid axes ``ndim`` (``FNO``, and ``NormalizedOperator``
    around one) the channel axis of one-channel data may be left out:
    arrays of ``ndim + 1`` axes are (num_samples, *grid), and the loss then
    sees each sample with a channel axis of length 1.

    Validation: with ``validation=(inputs, targets)`` the mean ``loss`` on
    those data is computed after every epoch (``evaluate``'s computation,
    compiled once), shown in the progress bar and recorded in
    ``stats["validation_loss"]``; it does not steer the training.

    Checkpoints: with ``checkpoint_dir``, the model, optimizer state and
    loss histories are saved every ``checkpoint_every`` epochs and after the
    last, atomically (``equinox.tree_serialise_leaves`` to a temporary file,
    renamed, then a JSON pointer with the file's SHA-256). Calling ``fit``
    again with the same arguments resumes after the last saved epoch and
    gives bit-for-bit the model of an uninterrupted run (same devices); a
    checkpoint made with other settings raises ``ValueError``.

    Non-finite training loss: training stops after that epoch, the model of
    the last finite epoch is returned with ``RESULTS.nonfinite_loss`` and a
    ``RuntimeWarning`` says which epoch, and the checkpoint on disk is left
    as it was; with ``throw=True`` a ``RuntimeError`` is raised instead.
    ``throw`` defaults to False, unlike ``solve``: a training run can take
    hours, and the model of its last good epoch is worth returning.

    The statistics of any ``UnitGaussianNormalizer`` inside the model are
    not trained.

    Args:
        model: maps one sample (channels, grid...) to one target.
        inputs: (num_samples, channels, grid...) array, or
            (num_samples, grid...) for one channel (see above).
        targets: as ``inputs``, the outputs of the model.
        key: PRNG key of the shuffling.
        num_epochs: total epochs (including any already checkpointed).
        batch_size: samples per step.
        validation: optional (inputs, targets) evaluated after every epoch.
        optimizer: an optax transformation (default: ``default_optimizer(
            num_epochs=num_epochs, num_samples=num_samples,
            batch_size=batch_size)``).
        loss: ``loss(prediction, target)`` of one sample.
        checkpoint_dir: where to save and resume (None: no checkpoints).
        checkpoint_every: epochs between checkpoints.
        devices: devices to split each batch over.
        progress: show a progress bar with the training and validation
            loss and samples per second.
        throw: raise on a non-finite training loss instead of returning.

    Returns:
        ``sciax.Training(model, result, stats)``, ``stats`` holding
        ``"train_loss"``: mean training loss of every epoch (over all
        samples, each at the parameters of its step), NaN for epochs not
        run, an array of ``num_epochs`` entries;
        ``"validation_loss"``: mean loss on the validation data after every
        epoch, NaN for epochs not run or without validation data;
        ``"epoch_seconds"``: wall-clock seconds of every epoch run by this
        call (the first includes compilation), NaN for the others;
        ``"num_epochs"``: epochs done in all, those before a resume
        included; ``"num_steps"``: optimizer steps done in all (one per
        minibatch, ``ceil(num_samples / batch_size)`` per epoch);
        ``"seconds"``: wall-clock seconds of this call, compilation
        included.
    """
    options = dict(
        key=key, num_epochs=num_epochs, batch_size=batch_size, devices=devices,
        checkpoint_every=checkpoint_every, progress=progress, throw=throw,
        start=time.perf_counter(),
    )  # fmt: skip
    inputs, targets, validation, devices = _check_fit_arguments(
        model, inputs, targets, validation, options
    )
    num_samples = options["num_samples"] = inputs.shape[0]
    if optimizer is None:
        optimizer = default_optimizer(
            num_epochs=num_epochs, num_samples=num_samples, batch_size=batch_size
        )
    loss = _loss_for(model, loss)
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    replicated = jax.sharding.NamedSharding(mesh, P())
    state, frozen, first_epoch, settings = _initial_state(
        model, optimizer, (inputs, targets), validation, checkpoint_dir, options
    )
    # normalizer statistics fitted on data that live elsewhere (say, sharded
    # by the generator) must sit on the training devices too
    state, frozen, data, validation = jtu.tree_map(
        lambda leaf: jax.device_put(leaf, replicated) if eqx.is_array(leaf) else leaf,
        (state, frozen, (inputs, targets), validation),
    )

    def validate(parameters):
        if validation is None:
            return math.nan
        model = eqx.combine(parameters, frozen)
        return float(_mean_loss(model, *validation, loss, batch_size))

    def save(state, done):
        if checkpoint_dir is not None and (
            done % checkpoint_every == 0 or done == num_epochs
        ):
            save_checkpoint(checkpoint_dir, state, epoch=done, metadata=settings)

    run_epoch = _epoch_function(frozen, optimizer, loss, mesh, num_samples, batch_size)
    state, done, result, epoch_seconds, why = _run_epochs(
        run_epoch, validate, save, state, first_epoch, data, options
    )
    return _training(state, frozen, done, result, why, epoch_seconds, options)


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
    error.

    The data are as ``fit`` takes them: real floating point (booleans and
    integers raise ``TypeError``), with or without the channel axis of
    one-channel data for a model that states its ``ndim``.
    """
    inputs, targets = _check_data(model, inputs, targets, "evaluate")
    arrays = jtu.tree_leaves(eqx.filter(model, eqx.is_array))
    if arrays:
        # a model trained on several devices is replicated there; the data
        # follow it instead of failing on mismatched devices
        inputs, targets = jax.device_put((inputs, targets), arrays[0].sharding)
    return _mean_loss(model, inputs, targets, _loss_for(model, loss), batch_size)


# module level, so repeated evaluations of one model and data shape reuse a
# single compilation (a function defined inside evaluate compiled every call)
@eqx.filter_jit
def _mean_loss(model, inputs, targets, loss, batch_size):
    def one(pair):
        x, y = pair
        return loss(model(x), y)

    return jnp.mean(lax.map(one, (inputs, targets), batch_size=batch_size))
