"""Online training of the FNO on Darcy flow (``operators.fit_stream``): the
test error against the number of fresh samples at a fixed time budget, the
throughput of the generator and of training, and whether the two run
concurrently on this device.

GPU, the FNO benchmark's data (solved at 421, trained at 85; about 100
samples/s generated, several thousand trained per second):

    PYTHONPATH=. python benchmarks/streaming_training.py --samples 1000 10000 50000 --seconds 900

2-core CPU (solved and trained at 29 with plain CG, a small FNO):

    PYTHONPATH=. python benchmarks/streaming_training.py --small --samples 200 1000 5000 --seconds 60

Procedure. The generator (``examples/darcy_fno_streaming.py``'s
``darcy_stream``: ``pde.darcy_samples`` subsampled, jitted) and one round of
training (``steps_per_generate`` steps of ``fit_stream``'s compiled round on
a full buffer) are each timed alone (fastest of --repeats, after a compiling
call), then dispatched together: on a device that runs them one after the
other the pair takes the sum of the two, on one that runs them concurrently
less. Then, for each N of --samples, ``fit_stream`` trains a fresh model
(same seed) on N fresh samples within --seconds: the reuse bound is chosen
so that the training steps fill the budget left after generating N samples
one after the other on this device,
``max_reuse = floor(0.8 (seconds - compile - N / g) t / N)`` for generator
and training rates g and t (at least 1; 0.8 leaves room for the rounds'
overheads; a row that runs out of time anyway is stopped by the clock with
fewer fresh samples, and the table says so). The buffer holds
``min(--capacity, N)`` samples. The time budget includes ``fit_stream``'s
compilation of its round (timed above and subtracted in the choice of
``max_reuse``). The test error is the relative L2 on --test-samples samples
drawn with their own key, after the last step.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import darcy_fno_streaming as example

from sciax import operators
from sciax.operators import _streaming, _training

MARGIN = 0.8


def _best_seconds(function, repeats):
    """The fastest of ``repeats`` timed calls: on a machine shared with
    other work the minimum is the least disturbed."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function())
        times.append(time.perf_counter() - start)
    return float(np.min(times))


def throughputs(settings, generate, model, key, repeats):
    """Generator and training samples per second (compiled beforehand), the
    seconds of one compilation of the training round, and the seconds of a
    generator batch and a training round dispatched together."""
    per_batch, batch_size = settings["per_batch"], settings["batch_size"]
    steps = max(1, round(per_batch * settings["max_reuse"] / batch_size))
    generate_seconds = _best_seconds(lambda: generate(key), repeats)

    # one round of fit_stream's steps on a full buffer, as fit_stream runs it
    parameters, frozen = eqx.partition(model, _training._trainable(model))
    optimizer = operators.default_optimizer(
        num_epochs=1, num_samples=10**6, batch_size=batch_size
    )
    with jax.numpy_dtype_promotion("standard"):
        opt_state = optimizer.init(parameters)
    fresh = jax.eval_shape(generate, key)
    buffer = _streaming._empty_buffer(
        settings["capacity"], *fresh, settings["max_reuse"]
    )
    for index in range(settings["capacity"] // per_batch):
        batch = generate(jax.random.fold_in(key, index))
        buffer = _streaming._insert(
            buffer, *batch, jax.random.fold_in(key, 10**6 + index)
        )
    loss = _training._loss_for(model, operators.relative_lp_loss)
    run_round = _streaming._round_function(
        frozen, optimizer, loss, steps, batch_size, settings["max_reuse"]
    )
    # the buffer's counts are not carried over between the timed rounds: a
    # bound of max_reuse could otherwise run them dry
    start = time.perf_counter()
    jax.block_until_ready(run_round(parameters, opt_state, buffer, key))
    round_compile = time.perf_counter() - start
    round_seconds = _best_seconds(
        lambda: run_round(parameters, opt_state, buffer, key), repeats
    )
    together = _best_seconds(
        lambda: (run_round(parameters, opt_state, buffer, key), generate(key)),
        repeats,
    )
    return dict(
        generate=per_batch / generate_seconds,
        train=steps * batch_size / round_seconds,
        generate_seconds=generate_seconds,
        round_seconds=round_seconds,
        together_seconds=together,
        round_compile=round_compile,
        steps=steps,
    )


def run(settings, num_samples, seconds, rates, seed):
    """One row: fit_stream on ``num_samples`` fresh samples within
    ``seconds``; returns its statistics and the test error."""
    per_batch = settings["per_batch"]
    capacity = min(settings["capacity"], num_samples // per_batch * per_batch)
    left = seconds - rates["round_compile"] - num_samples / rates["generate"]
    # planned at MARGIN of the budget left: the rounds' insertions, host
    # round trips and validations cost time that the rates above leave out
    max_reuse = max(1, math.floor(MARGIN * left * rates["train"] / num_samples))
    row = dict(settings, capacity=capacity, max_reuse=max_reuse)
    row["num_samples"] = num_samples
    training, error = example.train(row, seed=seed, max_seconds=seconds, progress=False)
    return row, training.stats, error


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the 2-core CPU setting")
    parser.add_argument("--samples", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--seconds", type=float, default=900.0, help="budget per row")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    for name in (
        "resolution", "solve", "per_batch", "capacity", "batch_size",
        "test_samples", "modes", "width", "depth", "learning_rate",
    ):  # fmt: skip
        value = example.SETTINGS["default"][name]
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value))
    parser.add_argument("--preconditioner", choices=("multigrid", "none"))
    args = parser.parse_args()
    settings = dict(example.SETTINGS["small" if args.small else "default"])
    for name in settings:
        if getattr(args, name, None) is not None:
            settings[name] = getattr(args, name)
    if args.preconditioner is not None:
        settings["multigrid"] = args.preconditioner == "multigrid"
    device = jax.devices()[0]
    print(f"# PYTHONPATH=. python {' '.join(sys.argv)}")
    print(
        f"# device: {device.platform} {device.device_kind} x{len(jax.devices())}, "
        f"jax {jax.__version__}"
    )
    preconditioner = "multigrid-PCG" if settings["multigrid"] else "plain CG"
    print(
        f"# Darcy solved at {settings['solve']} ({preconditioner}, float32), "
        f"trained at {settings['resolution']}; generator batches of "
        f"{settings['per_batch']}; FNO modes {settings['modes']}, width "
        f"{settings['width']}, depth {settings['depth']}; batch "
        f"{settings['batch_size']}, buffer {settings['capacity']}, "
        f"{settings['test_samples']} test samples"
    )
    key = jax.random.key(args.seed)
    generate = example.darcy_stream(settings)
    start = time.perf_counter()
    jax.block_until_ready(generate(key))
    generate_compile = time.perf_counter() - start
    calibration = example.fixed_set(
        generate, jax.random.fold_in(key, 1), settings["calibration_samples"]
    )
    model = example.normalized_fno(settings, calibration, jax.random.fold_in(key, 2))
    rates = throughputs(
        dict(settings, max_reuse=8), generate, model, jax.random.fold_in(key, 3),
        args.repeats,
    )  # fmt: skip
    serial = rates["generate_seconds"] + rates["round_seconds"]
    print(
        f"generator: {rates['generate']:.0f} samples/s "
        f"({1000 * rates['generate_seconds']:.1f} ms a batch; compiled in "
        f"{generate_compile:.1f} s)"
    )
    print(
        f"training:  {rates['train']:.0f} samples/s ({rates['steps']} steps in "
        f"{1000 * rates['round_seconds']:.1f} ms; compiled in "
        f"{rates['round_compile']:.1f} s)"
    )
    hidden = serial - rates["together_seconds"]
    shorter = min(rates["generate_seconds"], rates["round_seconds"])
    print(
        f"together:  a batch and a round dispatched together take "
        f"{1000 * rates['together_seconds']:.1f} ms, the two alone "
        f"{1000 * serial:.1f} ms: {1000 * hidden:.1f} ms hidden, of the "
        f"shorter's {1000 * shorter:.1f} ms (0: they ran one after the other)"
    )
    print()
    print(
        "| fresh samples (asked) | fresh samples | max reuse | mean reuse | steps "
        "| seconds | waiting for generator s | waiting for training s | stopped by "
        "| test rel. L2 |"
    )
    print("|" + "---:|" * 9 + "---:|")
    for num_samples in args.samples:
        row, stats, error = run(settings, num_samples, args.seconds, rates, args.seed)
        print(
            f"| {num_samples} | {stats['num_samples']} | {row['max_reuse']} "
            f"| {stats['reuse_mean']:.2f} | {stats['num_steps']} "
            f"| {stats['seconds']:.1f} | {stats['generate_seconds']:.1f} "
            f"| {stats['train_seconds']:.1f} | {stats['stopped_by']} "
            f"| {100 * error:.2f}% |",
            flush=True,
        )


if __name__ == "__main__":
    main()
