"""Online training of neural operators: samples generated on the device while
the model trains, held in a fixed-capacity buffer from which every step draws
its batch, each sample drawn a bounded number of times (Meyer et al., ICML
2023)."""

import json
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax
from jax import lax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray
from tqdm.auto import tqdm

from .._checkpoint import (
    POINTER,
    changed_settings,
    load_checkpoint,
    save_checkpoint,
)
from .._results import RESULTS
from .._training import Training
from ._checks import check_real_float
from ._losses import relative_lp_loss
from ._training import (
    _check_data,
    _grid_ndim,
    _loss_for,
    _mean_loss,
    _trainable,
    default_optimizer,
)

_NAME = "fit_stream"


class _Buffer(eqx.Module):
    """The reservoir: ``capacity`` slots of (input, target) pairs on the
    training device, how often each slot's sample has been drawn, and the
    counts that the statistics need."""

    inputs: Float[Array, "capacity ..."]
    targets: Float[Array, "capacity ..."]
    # draws of the sample now in each slot; a slot is live while filled and
    # uses < max_reuse
    uses: Int[Array, " capacity"]
    filled: Bool[Array, " capacity"]
    # evicted[u]: samples replaced after exactly u draws
    evicted: Int[Array, " max_reuse_plus_1"]
    # steps whose batch found fewer than batch_size live samples
    short_steps: Int[Array, ""]


def _empty_buffer(capacity, inputs, targets, max_reuse):
    def zeros(struct):
        return jnp.zeros((capacity, *struct.shape[1:]), struct.dtype)

    return _Buffer(
        inputs=zeros(inputs),
        targets=zeros(targets),
        uses=jnp.zeros(capacity, jnp.int32),
        filled=jnp.zeros(capacity, bool),
        evicted=jnp.zeros(max_reuse + 1, jnp.int32),
        short_steps=jnp.zeros((), jnp.int32),
    )


@eqx.filter_jit
def _insert(buffer: _Buffer, inputs, targets, key) -> _Buffer:
    """``buffer`` with the fresh samples in the slots that are empty, else
    those whose samples were drawn most (closest to their bound, or at it);
    a random fraction below one draw breaks ties, so equally used samples
    are replaced uniformly at random (the reservoir's random eviction)."""
    count = inputs.shape[0]
    jitter = jr.uniform(key, buffer.uses.shape, jnp.float32, 0.0, 0.5)
    priority = jnp.where(
        buffer.filled, buffer.uses.astype(jnp.float32) + jitter, jnp.inf
    )
    _, slots = lax.top_k(priority, count)
    evicted = buffer.evicted.at[buffer.uses[slots]].add(
        buffer.filled[slots].astype(jnp.int32)
    )
    return _Buffer(
        inputs=buffer.inputs.at[slots].set(inputs.astype(buffer.inputs.dtype)),
        targets=buffer.targets.at[slots].set(targets.astype(buffer.targets.dtype)),
        uses=buffer.uses.at[slots].set(0),
        filled=buffer.filled.at[slots].set(True),
        evicted=evicted,
        short_steps=buffer.short_steps,
    )


def _round_function(frozen, optimizer, loss, steps, batch_size, max_reuse):
    """The ``steps`` optimizer steps of one round, compiled as one
    ``lax.scan``: each draws ``batch_size`` distinct live slots uniformly
    at random, steps on the mean loss of those that are live, and counts
    the draws. Returns the new parameters, optimizer state and draw counts,
    the round's mean loss and its number of draws."""

    def batch_loss(parameters, x, y, drawn, count):
        predictions = jax.vmap(eqx.combine(parameters, frozen))(x)
        losses = jax.vmap(loss)(predictions, y)
        # a short batch (fewer live samples than batch_size) is the mean over
        # its live samples; dead ones weigh zero. The weights are formed in
        # the loss's dtype: 1 / count rounded to float32 would scale a
        # float64 gradient by 1 + 1e-8
        w = drawn.astype(losses.dtype) / jnp.maximum(count, 1).astype(losses.dtype)
        return jnp.sum(w * losses)

    loss_and_grad = jax.value_and_grad(batch_loss)

    @eqx.filter_jit
    def run_round(parameters, opt_state, buffer, key):
        def step(carry, step_key):
            parameters, opt_state, uses = carry
            live = buffer.filled & (uses < max_reuse)
            # the top batch_size of iid uniform scores, dead slots below
            # every live one: a uniformly random subset of the live slots,
            # without repeats, in one fixed shape
            scores = jr.uniform(step_key, uses.shape, jnp.float32)
            _, slots = lax.top_k(jnp.where(live, scores, -1.0), batch_size)
            drawn = live[slots]
            count = jnp.sum(drawn, dtype=jnp.int32)
            value, grads = loss_and_grad(
                parameters, buffer.inputs[slots], buffer.targets[slots], drawn, count
            )
            # optax mixes Python scalars and int step counts with float
            # arrays, which a user's strict dtype promotion would reject
            with jax.numpy_dtype_promotion("standard"):
                updates, new_opt_state = optimizer.update(grads, opt_state, parameters)
            new_parameters = optax.apply_updates(parameters, updates)
            # a batch without a live sample must not move the model (AdamW's
            # weight decay would, on a zero gradient)
            moved = count > 0
            parameters, opt_state = jtu.tree_map(
                lambda new, old: jnp.where(moved, new, old),
                (new_parameters, new_opt_state),
                (parameters, opt_state),
            )
            uses = uses.at[slots].add(drawn.astype(uses.dtype))
            return (parameters, opt_state, uses), (value, count)

        (parameters, opt_state, uses), (values, counts) = lax.scan(
            step, (parameters, opt_state, buffer.uses), jr.split(key, steps)
        )
        draws = jnp.sum(counts)
        weights = counts.astype(values.dtype)
        mean_loss = jnp.sum(weights * values) / jnp.maximum(draws, 1).astype(
            values.dtype
        )
        short = buffer.short_steps + jnp.sum(counts < batch_size, dtype=jnp.int32)
        # the buffer's fields back separately: inputs and targets are not
        # outputs, so the round never copies them
        return parameters, opt_state, uses, short, mean_loss

    return run_round


def _int(value, name, minimum=1, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{_NAME}: {name} must be an int, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{_NAME}: {name} must be >= {minimum}, got {value}.")
    return int(value)


def _check_generator(model, generate, key):
    """The shapes and dtypes of one generated batch, as
    ``jax.ShapeDtypeStruct``s, checked against each other and the model
    without running anything (``jax.eval_shape``)."""
    if not callable(generate):
        raise TypeError(
            f"{_NAME}: generate must be a function key -> (inputs, targets), got "
            f"{type(generate).__name__}."
        )
    batch = eqx.filter_eval_shape(generate, key)
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise TypeError(
            f"{_NAME}: generate(key) must return a pair (inputs, targets) of "
            f"arrays, got {type(batch).__name__}."
        )
    inputs, targets = batch
    what = ("generated inputs", "generated targets")
    for struct, argument in zip(batch, what, strict=True):
        if not isinstance(struct, jax.ShapeDtypeStruct):
            raise TypeError(f"{_NAME}: {argument} must be an array, got {struct!r}.")
        check_real_float(struct, name=_NAME, argument=argument)
    if inputs.ndim < 2 or targets.ndim < 2 or inputs.shape[0] != targets.shape[0]:
        raise ValueError(
            f"{_NAME}: generate(key) must return inputs and targets shaped "
            f"(samples, channels, grid...) or (samples, grid...) with the same "
            f"number of samples, got {inputs.shape} and {targets.shape}."
        )
    ndim = _grid_ndim(model)
    for struct, argument in zip(batch, what, strict=True):
        if ndim is not None and struct.ndim not in (ndim + 1, ndim + 2):
            raise ValueError(
                f"{_NAME}: the model has {ndim} grid axes, so {argument} must be "
                f"(samples, channels, {ndim} grid axes), or (samples, {ndim} grid "
                f"axes) for one channel; got shape {struct.shape}."
            )
    one = jax.ShapeDtypeStruct(inputs.shape[1:], inputs.dtype)
    try:
        prediction = eqx.filter_eval_shape(model, one)
    except Exception as error:
        raise ValueError(
            f"{_NAME}: the model cannot take one generated input of shape "
            f"{one.shape} ({type(error).__name__}: {error})."
        ) from error
    if getattr(prediction, "shape", None) != targets.shape[1:]:
        raise ValueError(
            f"{_NAME}: the model maps one generated input of shape {one.shape} "
            f"to shape {getattr(prediction, 'shape', prediction)}, but one "
            f"generated target has shape {targets.shape[1:]}; make generate "
            "return targets shaped as the model's output."
        )
    return inputs, targets


def _check_options(options, per_batch):
    """Counts and stop criteria, checked; returns ``steps_per_generate``."""
    batch_size = _int(options["batch_size"], "batch_size")
    capacity = _int(options["capacity"], "capacity")
    _int(options["max_reuse"], "max_reuse")
    _int(options["checkpoint_every"], "checkpoint_every")
    if capacity < batch_size:
        raise ValueError(
            f"{_NAME}: capacity ({capacity}) must be >= batch_size ({batch_size}): "
            "a batch is drawn from distinct samples of the buffer."
        )
    if capacity % per_batch:
        raise ValueError(
            f"{_NAME}: capacity ({capacity}) must be a multiple of the "
            f"{per_batch} samples that one generate(key) call returns."
        )
    num_samples = _int(options["num_samples"], "num_samples", optional=True)
    _int(options["num_steps"], "num_steps", optional=True)
    seconds = options["max_seconds"]
    if seconds is not None and (isinstance(seconds, bool) or not float(seconds) > 0):
        raise ValueError(f"{_NAME}: max_seconds must be > 0, got {seconds!r}.")
    if num_samples is None and options["num_steps"] is None and seconds is None:
        raise ValueError(
            f"{_NAME}: give at least one stop criterion: num_samples (fresh "
            "samples), num_steps or max_seconds."
        )
    if num_samples is not None and num_samples < capacity:
        raise ValueError(
            f"{_NAME}: num_samples ({num_samples}) must be >= capacity "
            f"({capacity}): the buffer is filled before the first step."
        )
    steps = options["steps_per_generate"]
    if steps is None:
        # each fresh sample drawn max_reuse times on average: the rate at
        # which the buffer's draws are used up equals the rate of supply
        return max(1, round(per_batch * options["max_reuse"] / batch_size))
    return _int(steps, "steps_per_generate")


def _planned_steps(options):
    """The optimizer steps that the sample and step criteria allow (whole
    rounds), or None where only the time budget bounds the run."""
    fill = options["capacity"] // options["per_batch"]
    steps = options["steps_per_generate"]
    rounds = []
    if options["num_samples"] is not None:
        rounds.append(-(-options["num_samples"] // options["per_batch"]))
    if options["num_steps"] is not None:
        rounds.append(fill - 1 + -(-options["num_steps"] // steps))
    return (min(rounds) - fill + 1) * steps if rounds else None


def _key_data(key) -> list[int]:
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jr.key_data(key)
    return np.asarray(key).ravel().tolist()


def fit_stream(
    model: eqx.Module,
    generate: Callable,
    key: PRNGKeyArray,
    *,
    batch_size: int,
    capacity: int,
    max_reuse: int,
    num_samples: int | None = None,
    num_steps: int | None = None,
    max_seconds: float | None = None,
    steps_per_generate: int | None = None,
    validation: tuple[Array, Array] | None = None,
    optimizer: optax.GradientTransformation | None = None,
    loss: Callable = relative_lp_loss,
    checkpoint_dir=None,
    checkpoint_every: int = 10,
    progress: bool = True,
    throw: bool = False,
) -> Training:
    r"""Train on a stream of generated samples (online training): minimize
    the mean of ``loss(model(x), y)`` over samples that ``generate`` makes
    while the model trains, each drawn at most ``max_reuse`` times.

    The approach of Meyer et al. (ICML 2023): data generation and training
    run together, and a buffer ("reservoir") of ``capacity`` samples
    between them decorrelates the batches from the order of generation and
    lets a slow generator feed a fast trainer by reusing samples. Here the
    buffer lives on the training device and the run goes in rounds:

    1. ``generate`` makes the j-th fresh batch of G samples (G is the
       leading axis of what it returns) from the j-th key of a stream
       derived from ``key``. The fresh samples replace empty slots, else
       those drawn most often (ties at random);
    2. once the buffer is full (after ``capacity / G`` batches),
       ``steps_per_generate`` optimizer steps follow each insertion (one
       compiled ``lax.scan``), each on ``batch_size`` distinct samples drawn
       uniformly at random from the live ones (filled, drawn fewer than
       ``max_reuse`` times). A sample drawn ``max_reuse`` times is never
       drawn again and is the first to be replaced. Should fewer than
       ``batch_size`` samples be live, the step averages over those there
       are, and with none leaves the model and optimizer state as they
       were; such steps are counted in ``stats["num_short_steps"]``.

    The default ``steps_per_generate = round(G * max_reuse / batch_size)``
    (at least 1) draws as many samples per round as it supplies draws, so
    in a long run the mean number of draws per sample approaches
    ``max_reuse`` and short steps are rare when ``capacity`` is a few
    batches. Deviation from the paper: there training draws from the
    reservoir whenever it holds enough data and a sample stays until a new
    one replaces it, so the reuse depends on the relative speeds of
    generation and training; here the bound is hard and the schedule fixed,
    which keeps a run reproducible and resumable.

    Overlap: JAX dispatches asynchronously, so each round queues its
    training steps and then the next batch's generation (which does not
    depend on them) before the host waits for anything. What that buys
    depends on the devices. On one GPU, XLA runs programs one after another
    on the device's stream: generation and training do not run
    concurrently, but the device does not wait for the host between them.
    A generator on another device runs concurrently with the training:
    pass a ``key`` placed there (``jax.device_put(key, device)``; a jitted
    generator runs where its key is) and the fresh batches are moved to the
    training device, the model's. On the CPU they ran one after the other
    too (measured on 2 cores: a batch and a round dispatched together took
    the sum of their times); ``benchmarks/streaming_training.py`` measures
    this on any device.
    ``stats["generate_seconds"]`` and ``stats["train_seconds"]`` are the
    host's waits for each (dispatch included), so their sum against
    ``stats["seconds"]`` shows how much was hidden. For a generator of g samples/s and a trainer of t
    samples/s on one device, the training time is a fraction
    ``max_reuse / (max_reuse + t / g)`` of the run.

    Stop criteria (at least one; the first reached ends the run, checked
    after every round): ``num_samples`` fresh samples generated (rounded up
    to whole batches), ``num_steps`` optimizer steps (rounded up to whole
    rounds), ``max_seconds`` of wall-clock time (in all, resumed runs
    included; compilation included). ``stats["stopped_by"]`` says which.

    Validation: with ``validation=(inputs, targets)`` the mean ``loss`` on
    those data is computed every ``checkpoint_every`` rounds once training
    has begun, and after the last, recorded in ``stats["validation_loss"]``
    with the step numbers in ``stats["validation_steps"]``.

    Checkpoints: with ``checkpoint_dir``, the model, optimizer state and
    buffer (samples and draw counts) are saved every ``checkpoint_every``
    rounds and after the last, atomically as ``fit`` saves them, with the
    counters, loss histories and the key in the JSON pointer. Calling
    ``fit_stream`` again with the same arguments resumes after the last
    saved round and, for a deterministic ``generate``, gives bit-for-bit
    the model of an uninterrupted run stopped by ``num_samples`` or
    ``num_steps`` (a time budget stops where the clock says); the batch
    being generated at the interruption is made again. A checkpoint made
    with other settings raises ``ValueError``; ``max_seconds`` may change.

    Non-finite training loss: as ``fit``, training stops, the model before
    that round is returned with ``RESULTS.nonfinite_loss`` and a
    ``RuntimeWarning`` (``RuntimeError`` with ``throw=True``), and the
    checkpoint on disk is left as it was.

    Data: ``generate(key)`` returns (G, channels, *grid) arrays of real
    floating point, or (G, *grid) for one channel of a model that states
    its ``ndim``, as ``fit`` takes them; the model must map one input to
    one target's shape. These are checked with ``jax.eval_shape`` before
    anything runs. ``generate`` is compiled with ``equinox.filter_jit``
    (unless compiled already: ``jax.jit``, ``equinox.filter_jit``) and
    must be a deterministic function of its key. The statistics of any
    ``UnitGaussianNormalizer`` inside the model are not trained.

    Args:
        model: maps one sample (channels, grid...) to one target.
        generate: ``generate(key) -> (inputs, targets)``, a batch of G fresh
            samples; e.g. ``pde.darcy_samples`` subsampled (see the
            example ``examples/darcy_fno_streaming.py``).
        key: PRNG key of the generation, the eviction and the draws.
        batch_size: samples per step.
        capacity: samples the buffer holds; >= batch_size and a multiple of
            G.
        max_reuse: the most times one sample is drawn (>= 1).
        num_samples: stop after this many fresh samples (>= capacity).
        num_steps: stop after this many optimizer steps.
        max_seconds: stop after this many seconds.
        steps_per_generate: optimizer steps per fresh batch (default above).
        validation: optional (inputs, targets), evaluated every
            ``checkpoint_every`` rounds.
        optimizer: an optax transformation (default: ``default_optimizer``
            over the steps that ``num_samples`` and ``num_steps`` allow;
            with only ``max_seconds`` pass one).
        loss: ``loss(prediction, target)`` of one sample.
        checkpoint_dir: where to save and resume (None: no checkpoints).
        checkpoint_every: rounds between checkpoints and validations.
        progress: show a progress bar with the training and validation
            loss, the fresh samples, the mean reuse and samples per second.
        throw: raise on a non-finite training loss instead of returning.

    Returns:
        ``sciax.Training(model, result, stats)``, ``stats`` holding
        ``"train_loss"``: mean training loss of every training round (over
        its draws, each at the parameters of its step);
        ``"validation_loss"`` and ``"validation_steps"``: the validation
        loss and the step after which it was measured;
        ``"num_steps"``: optimizer steps in all; ``"num_samples"``: fresh
        samples generated and inserted in all; ``"num_draws"``: samples
        drawn into batches in all; ``"reuse_mean"``: draws per fresh
        sample; ``"reuse_histogram"``: entry u counts the samples drawn
        exactly u times (those still in the buffer with their draws so
        far), ``max_reuse + 1`` entries; ``"num_short_steps"``: steps that
        found fewer than ``batch_size`` live samples; ``"num_rounds"``:
        generate calls inserted; ``"generate_seconds"`` and
        ``"train_seconds"``: this call's seconds spent waiting for fresh
        batches and for training rounds; ``"seconds"``: wall-clock seconds
        of this call, compilation included; ``"stopped_by"``:
        ``"num_samples"``, ``"num_steps"``, ``"max_seconds"`` or
        ``"nonfinite_loss"``.

    References:
        L. Meyer, M. Schouler, R. A. Caulk, A. Ribés, B. Raffin, "Training
        Deep Surrogate Models with Large Scale Online Learning", ICML 2023
        (arXiv:2306.16133).

    Example:
        >>> def generate(key):  # 16 samples solved at 421, trained at 85
        ...     samples = pde.darcy_samples(key, 16, resolution=421, batch_size=16)
        ...     return (pde.subsample(samples.coefficient, 85),
        ...             pde.subsample(samples.solution, 85))
        >>> result = operators.fit_stream(
        ...     model, generate, jax.random.key(0), batch_size=20, capacity=320,
        ...     max_reuse=20, num_samples=10_000)
        >>> result.stats["reuse_mean"], result.stats["num_steps"]
    """
    start = time.perf_counter()
    options = dict(
        batch_size=batch_size, capacity=capacity, max_reuse=max_reuse,
        num_samples=num_samples, num_steps=num_steps, max_seconds=max_seconds,
        steps_per_generate=steps_per_generate, checkpoint_every=checkpoint_every,
        progress=progress, throw=throw, start=start,
    )  # fmt: skip
    fresh = _check_generator(model, generate, key)
    options["per_batch"] = fresh[0].shape[0]
    options["steps_per_generate"] = _check_options(options, options["per_batch"])
    if validation is not None:
        if not isinstance(validation, tuple | list) or len(validation) != 2:
            raise TypeError(
                f"{_NAME}: validation must be a pair (inputs, targets), got "
                f"{type(validation).__name__}."
            )
        validation = _check_data(
            model, *validation, _NAME, ("validation inputs", "validation targets")
        )
    planned_steps = _planned_steps(options)
    if optimizer is None:
        if planned_steps is None:
            raise ValueError(
                f"{_NAME}: the default optimizer decays its learning rate over "
                "the number of steps, which a time budget alone does not fix: "
                "give num_samples or num_steps, or pass optimizer."
            )
        optimizer = default_optimizer(
            num_epochs=1, num_samples=planned_steps * batch_size, batch_size=batch_size
        )
    loss = _loss_for(model, loss)
    arrays = jtu.tree_leaves(eqx.filter(model, eqx.is_array))
    # train where the model lives; fresh batches are moved there
    device = next(iter(arrays[0].devices())) if arrays else jax.devices()[0]
    options["device"] = device
    state, frozen, log, settings = _initial_state(
        model, optimizer, fresh, validation, key, checkpoint_dir, options
    )
    state, frozen, validation = jtu.tree_map(
        lambda leaf: jax.device_put(leaf, device) if eqx.is_array(leaf) else leaf,
        (state, frozen, validation),
    )

    def validate(parameters):
        if validation is None:
            return math.nan
        model = eqx.combine(parameters, frozen)
        return float(_mean_loss(model, *validation, loss, batch_size))

    def save(state, done, seconds):
        if checkpoint_dir is not None:
            metadata = {**settings, **log, "seconds": seconds}
            save_checkpoint(checkpoint_dir, state, epoch=done, metadata=metadata)

    run_round = _round_function(
        frozen, optimizer, loss, options["steps_per_generate"], batch_size, max_reuse
    )
    loop = _RoundLoop(generate, key, run_round, validate, save, log, options)
    state, done, result, record = loop.run(state, planned_steps)
    return _training(state, frozen, done, result, record, log, options)


def _initial_state(model, optimizer, fresh, validation, key, checkpoint_dir, options):
    """``(state, frozen, log, settings)``: the trainable parameters,
    optimizer state and buffer (fresh, or restored from ``checkpoint_dir``),
    the frozen rest of the model, the host's record (rounds done, seconds,
    loss histories) and the settings a checkpoint must match."""
    parameters, frozen = eqx.partition(model, _trainable(model))
    with jax.numpy_dtype_promotion("standard"):
        opt_state = optimizer.init(parameters)
    buffer = _empty_buffer(options["capacity"], *fresh, options["max_reuse"])
    settings = {
        name: options[name]
        for name in (
            "batch_size", "capacity", "max_reuse", "num_samples", "num_steps",
            "steps_per_generate",
        )
    }  # fmt: skip
    settings |= {
        "shapes": [list(fresh[0].shape), list(fresh[1].shape)],
        "dtypes": [str(fresh[0].dtype), str(fresh[1].dtype)],
        "validation_shapes": None
        if validation is None
        else [list(array.shape) for array in validation],
        "key": _key_data(key),
    }
    log = {
        "rounds": 0,
        "seconds": 0.0,
        "train_loss": [],
        "validation_loss": [],
        "validation_steps": [],
    }
    state = (parameters, opt_state, buffer)
    if checkpoint_dir is None:
        return state, frozen, log, settings
    pointer_path = Path(checkpoint_dir) / POINTER
    if not pointer_path.exists():
        return state, frozen, log, settings
    # settings first: the buffer's shapes depend on them, and a state file
    # of other shapes would fail to load with a less helpful message
    different = changed_settings(json.loads(pointer_path.read_text()), settings)
    if different:
        raise ValueError(
            f"{_NAME}: {checkpoint_dir} holds a checkpoint made with other "
            f"settings (saved, requested): {different}."
        )
    restored, pointer = load_checkpoint(checkpoint_dir, state)
    log = {name: pointer[name] for name in log}
    return restored, frozen, log, settings


class _RoundLoop:
    """The host's loop over rounds: wait for the fresh batch, insert it,
    queue the round's training and then the next batch, wait for the loss,
    validate, checkpoint, report, test the stop criteria."""

    def __init__(self, generate, key, run_round, validate, save, log, options):
        # a generator compiled already (jax.jit, equinox.filter_jit) is used
        # as it is: wrapped again it would compile a second, outer program
        compiled = hasattr(generate, "lower")
        self.generate = generate if compiled else eqx.filter_jit(generate)
        self.device = options["device"]
        # three independent streams (generation, eviction, draws); folding in
        # the round makes every round's keys the same wherever a run resumed
        self.generate_key, insert_key, draw_key = jr.split(key, 3)
        # the generator's key stays where the caller put it (a key on another
        # device runs the generator there); the buffer's keys go to the
        # training device
        self.insert_key, self.draw_key = jax.device_put(
            (insert_key, draw_key), options["device"]
        )
        self.run_round, self.validate, self.save = run_round, validate, save
        self.log, self.options = log, options
        self.fill = options["capacity"] // options["per_batch"]

    def trained(self, rounds):
        """Training rounds among the first ``rounds``: none until the buffer
        is full."""
        return max(0, rounds - self.fill + 1)

    def stop(self, rounds, seconds):
        """The criterion that ends the run after ``rounds`` rounds, or None."""
        options = self.options
        steps = self.trained(rounds) * options["steps_per_generate"]
        if options["num_samples"] is not None and (
            rounds * options["per_batch"] >= options["num_samples"]
        ):
            return "num_samples"
        if options["num_steps"] is not None and steps >= options["num_steps"]:
            return "num_steps"
        if options["max_seconds"] is not None and seconds >= options["max_seconds"]:
            return "max_seconds"
        return None

    def fresh(self, index):
        """Queue the ``index``-th fresh batch (asynchronous)."""
        batch = self.generate(jr.fold_in(self.generate_key, index))
        # a generator on other devices: its batch comes to the buffer's
        return jax.device_put(tuple(batch), self.device)

    def run(self, state, planned_steps):
        options, log = self.options, self.log
        steps_per_round = options["steps_per_generate"]
        record = dict(generate_seconds=0.0, train_seconds=0.0, why="")
        result, done = RESULTS.successful, log["rounds"]

        # wall-clock seconds in all: those of the runs before a resume and
        # this call's
        seconds_before = log["seconds"]

        def seconds():
            return seconds_before + time.perf_counter() - options["start"]

        bar = tqdm(
            total=planned_steps,
            initial=self.trained(done) * steps_per_round,
            unit="step",
            disable=not options["progress"],
            desc="training",
        )

        def timed(name, function, *args):
            # dispatch included: where a backend runs a program at dispatch
            # (small programs on the CPU) the wait alone would miss it
            began = time.perf_counter()
            value = function(*args)
            record[name] += time.perf_counter() - began
            return value

        draws = 0
        stopped = self.stop(done, seconds_before)
        pending = None if stopped else timed("generate_seconds", self.fresh, done)
        while stopped is None:
            parameters, opt_state, buffer = state
            fresh = timed("generate_seconds", jax.block_until_ready, pending)
            buffer = _insert(buffer, *fresh, jr.fold_in(self.insert_key, done))
            training = self.trained(done + 1) > 0
            if training:
                round_key = jr.fold_in(self.draw_key, done)
                outputs = timed(
                    "train_seconds",
                    self.run_round,
                    parameters,
                    opt_state,
                    buffer,
                    round_key,
                )
            # the next batch, queued behind this round's steps and
            # independent of them: the device moves on to it while the host
            # waits for the loss below
            last = self.stop(done + 1, -math.inf) is not None
            pending = None if last else timed("generate_seconds", self.fresh, done + 1)
            if training:
                new_parameters, new_opt_state, uses, short, mean_loss = outputs
                mean_loss = timed("train_seconds", float, mean_loss)
                if not math.isfinite(mean_loss):
                    result, stopped = RESULTS.nonfinite_loss, "nonfinite_loss"
                    record["why"] = (
                        f"the training loss of round {done + 1} is {mean_loss}; "
                        "the model before it is returned and its checkpoint kept."
                    )
                    break
                buffer = eqx.tree_at(
                    lambda b: (b.uses, b.short_steps), buffer, (uses, short)
                )
                parameters, opt_state = new_parameters, new_opt_state
                log["train_loss"].append(mean_loss)
                draws += options["batch_size"] * steps_per_round
                bar.update(steps_per_round)
            state, done = (parameters, opt_state, buffer), done + 1
            stopped = self.stop(done, seconds())
            trained = self.trained(done)
            if trained and (stopped or trained % options["checkpoint_every"] == 0):
                validated = self.validate(parameters)
                if math.isfinite(validated):
                    log["validation_loss"].append(validated)
                    log["validation_steps"].append(trained * steps_per_round)
                log["rounds"], log["seconds"] = done, seconds()
                self.save(state, done, log["seconds"])
                self.report(bar, done, validated, draws, buffer)
        bar.close()
        record["stopped_by"] = stopped
        return state, done, result, record

    def report(self, bar, done, validated, draws, buffer):
        postfix = {"loss": f"{self.log['train_loss'][-1]:.4g}"}
        if math.isfinite(validated):
            postfix["validation"] = f"{validated:.4g}"
        fresh = done * self.options["per_batch"]
        postfix["fresh"] = fresh
        postfix["reuse"] = f"{_total_draws(_reuse_histogram(buffer)) / fresh:.2f}"
        elapsed = time.perf_counter() - self.options["start"]
        postfix["samples_per_s"] = f"{draws / elapsed:.0f}"
        bar.set_postfix(postfix)


@jax.jit
def _reuse_histogram(buffer):
    """Entry u: samples drawn exactly u times, evicted or still buffered."""
    current = (
        jnp.zeros_like(buffer.evicted)
        .at[buffer.uses]
        .add(buffer.filled.astype(jnp.int32))
    )
    return buffer.evicted + current


def _total_draws(histogram) -> int:
    """Draws in all, on the host in int64 (int32 on the device would wrap
    after 2^31 draws, days of a GPU's training)."""
    histogram = np.asarray(histogram, np.int64)
    return int(np.sum(np.arange(histogram.shape[0]) * histogram))


def _training(state, frozen, done, result, record, log, options):
    """The ``Training`` of a finished loop; warns, or raises with
    ``throw=True``, when it stopped early."""
    if result != RESULTS.successful:
        message = f"{_NAME} stopped: {record['why']} {RESULTS[result]}"
        if options["throw"]:
            raise RuntimeError(message)
        # stacklevel 3: the caller of fit_stream
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    parameters, _, buffer = state
    fill = options["capacity"] // options["per_batch"]
    histogram = np.asarray(_reuse_histogram(buffer))
    draws = _total_draws(histogram)
    fresh = done * options["per_batch"]
    dtype = buffer.inputs.dtype
    return Training(
        model=eqx.combine(parameters, frozen),
        result=result,
        stats={
            "train_loss": jnp.asarray(log["train_loss"], dtype),
            "validation_loss": jnp.asarray(log["validation_loss"], dtype),
            "validation_steps": np.asarray(log["validation_steps"], np.int64),
            "num_steps": max(0, done - fill + 1) * options["steps_per_generate"],
            "num_samples": fresh,
            "num_draws": draws,
            "reuse_mean": draws / fresh if fresh else math.nan,
            "reuse_histogram": histogram,
            "num_short_steps": int(buffer.short_steps),
            "num_rounds": done,
            "generate_seconds": record["generate_seconds"],
            "train_seconds": record["train_seconds"],
            "seconds": time.perf_counter() - options["start"],
            "stopped_by": record["stopped_by"],
        },
    )
