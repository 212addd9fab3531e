"""Darcy flow, online: an FNO trained on samples generated while it trains
(``operators.fit_stream``), none of them stored on disk.

    python examples/darcy_fno_streaming.py            # 85 x 85 from 421 solves (GPU)
    python examples/darcy_fno_streaming.py --small    # tiny: under a minute on 2 CPU cores

Each call of the generator solves a batch of Darcy problems with the
library's multigrid-PCG (``pde.darcy_samples``) at --solve nodes per axis and
keeps every k-th node (``pde.subsample``), as the FNO benchmark's 85 x 85
data were made from 421 x 421 solves. The samples go into a buffer on the
device from which every step draws its batch; each sample is drawn at most
--max-reuse times, and generation is dispatched before the training steps
that do not need it (see ``fit_stream`` for what overlaps where). Input and
output normalizers are fitted once, on a calibration set drawn with its own
key; the test set has its own key too. Prints the test relative L2 error.

Settings (override any with its flag):

- default: solved at 421, trained at 85, 10,000 fresh samples in batches of
  50, a buffer of 1,000, each drawn at most 20 times, FNO of the paper
  (12 modes, width 32); a few minutes on one GPU.
- --small: solved and trained at 29 with plain CG (multigrid's set-up costs
  more than it saves on a 27 x 27 interior on the CPU), 320 fresh samples,
  a small FNO.
"""

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from sciax import RESULTS, operators, pde
from sciax.solvers import Multigrid

SETTINGS = {
    "default": dict(
        resolution=85, solve=421, multigrid=True, per_batch=50, capacity=1000,
        batch_size=20, max_reuse=20, num_samples=10_000, test_samples=100,
        calibration_samples=200, modes=12, width=32, depth=4, projection=128,
        learning_rate=2e-3,
    ),
    "small": dict(
        resolution=29, solve=29, multigrid=False, per_batch=16, capacity=64,
        batch_size=16, max_reuse=8, num_samples=320, test_samples=32,
        calibration_samples=32, modes=6, width=12, depth=2, projection=32,
        learning_rate=1e-2,
    ),
}  # fmt: skip


def darcy_stream(settings, dtype=jnp.float32):
    """``generate(key) -> (coefficients, solutions)``: ``per_batch`` Darcy
    samples solved at ``solve`` nodes per axis, subsampled to
    ``resolution``, as (samples, resolution, resolution) arrays (one
    channel, no channel axis: ``fit_stream`` and the FNO take them so)."""
    resolution, solve = settings["resolution"], settings["solve"]
    preconditioner = Multigrid() if settings["multigrid"] else None

    def generate(key):
        # throw=False: a sample whose solve stopped short is kept rather than
        # raising inside the compiled stream (at float32's default rtol the
        # multigrid-PCG solves converge in a few steps)
        samples = pde.darcy_samples(
            key, settings["per_batch"], resolution=solve,
            batch_size=settings["per_batch"], preconditioner=preconditioner,
            throw=False, dtype=dtype,
        )  # fmt: skip
        return (
            pde.subsample(samples.coefficient, resolution),
            pde.subsample(samples.solution, resolution),
        )

    # compiled here, so that the test and calibration sets and the stream
    # share one compilation
    return jax.jit(generate)


def fixed_set(generate, key, num_samples):
    """``num_samples`` samples of the stream's distribution from their own
    key (test and calibration sets): whole generator batches, cut."""
    per_batch = jax.eval_shape(generate, key)[0].shape[0]
    batches = [
        generate(jax.random.fold_in(key, i))
        for i in range(-(-num_samples // per_batch))
    ]
    return tuple(
        jnp.concatenate([batch[j] for batch in batches])[:num_samples] for j in (0, 1)
    )


def normalized_fno(settings, calibration, key, dtype=jnp.float32):
    """The paper's FNO between pointwise unit-Gaussian normalizers fitted on
    the calibration set (fixed during training)."""
    x, y = calibration
    fno = operators.FNO(
        1, 1, 2, modes=settings["modes"], width=settings["width"],
        depth=settings["depth"], projection=settings["projection"], key=key,
        dtype=dtype,
    )  # fmt: skip
    return operators.NormalizedOperator(
        fno,
        operators.UnitGaussianNormalizer(x, pointwise=True, grid="closed"),
        operators.UnitGaussianNormalizer(y, pointwise=True, grid="closed"),
    )


def train(settings, *, seed=0, checkpoints=None, max_seconds=None, progress=True):
    """``(training, test_error)``: ``fit_stream``'s ``Training`` and the mean
    test relative L2 error of its model."""
    key = jax.random.key(seed)
    stream_key, test_key, calibration_key, model_key = jax.random.split(key, 4)
    generate = darcy_stream(settings)
    test = fixed_set(generate, test_key, settings["test_samples"])
    calibration = fixed_set(generate, calibration_key, settings["calibration_samples"])
    model = normalized_fno(settings, calibration, model_key)
    steps = max(
        1, round(settings["per_batch"] * settings["max_reuse"] / settings["batch_size"])
    )
    fill = settings["capacity"] // settings["per_batch"]
    rounds = -(-settings["num_samples"] // settings["per_batch"])
    optimizer = operators.default_optimizer(
        num_epochs=1,
        num_samples=(rounds - fill + 1) * steps * settings["batch_size"],
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
    )
    training = operators.fit_stream(
        model,
        generate,
        stream_key,
        batch_size=settings["batch_size"],
        capacity=settings["capacity"],
        max_reuse=settings["max_reuse"],
        num_samples=settings["num_samples"],
        max_seconds=max_seconds,
        steps_per_generate=steps,
        validation=test,
        optimizer=optimizer,
        checkpoint_dir=checkpoints,
        # validation (the test set) about five times, the last after the
        # last round: that one is the test error (no second compilation)
        checkpoint_every=max(1, (rounds - fill + 1) // 5),
        progress=progress,
    )
    return training, float(training.stats["validation_loss"][-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny CPU run")
    for name, value in SETTINGS["default"].items():
        if isinstance(value, bool):
            continue
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value))
    parser.add_argument(
        "--preconditioner", choices=("multigrid", "none"), default=None,
        help="of the Darcy solves (default: multigrid, none with --small)",
    )  # fmt: skip
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--checkpoints", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    settings = dict(SETTINGS["small" if args.small else "default"])
    for name in settings:
        if getattr(args, name, None) is not None:
            settings[name] = getattr(args, name)
    if args.preconditioner is not None:
        settings["multigrid"] = args.preconditioner == "multigrid"
    device = jax.devices()[0]
    print(
        f"darcy streaming ({'small' if args.small else 'default'}) on "
        f"{device.platform} {device.device_kind}: solved at {settings['solve']}, "
        f"trained at {settings['resolution']}, {settings['num_samples']} fresh "
        f"samples, buffer {settings['capacity']}, max reuse {settings['max_reuse']}"
    )
    start = time.perf_counter()
    training, error = train(
        settings,
        seed=args.seed,
        checkpoints=args.checkpoints,
        max_seconds=args.max_seconds,
        progress=not args.no_progress,
    )
    stats = training.stats
    outcome = RESULTS[training.result] or "finished"
    print(
        f"   {stats['num_steps']} steps on {stats['num_samples']} fresh samples "
        f"(reuse {stats['reuse_mean']:.2f} on average, at most "
        f"{settings['max_reuse']}; stopped by {stats['stopped_by']}, {outcome}) "
        f"in {stats['seconds']:.1f} s: {stats['generate_seconds']:.1f} s waiting "
        f"for the generator, {stats['train_seconds']:.1f} s for training"
    )
    print(
        f"   test relative L2 at {settings['resolution']}: {100 * error:.2f}% "
        f"({time.perf_counter() - start:.1f} s in all)"
    )
    return error


if __name__ == "__main__":
    main()
