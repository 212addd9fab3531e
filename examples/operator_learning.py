"""The pieces the operator-learning examples share: load a split of a
dataset, train a normalized FNO on it, measure the test error at several
resolutions."""

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from sciax import RESULTS, operators, pde


def load_split(directory, resolution, train_samples, dtype=jnp.float32):
    """((x_train, y_train), (x_test, y_test)) at one saved resolution, as
    (samples, *grid) arrays (one channel: FNO, fit and evaluate take them
    without a channel axis): the first train_samples samples train, the rest
    test."""
    data = pde.load_dataset(directory, resolution)
    source, target = data.values()  # (input, output) in the generator's order
    inputs = jnp.asarray(source, dtype)
    targets = jnp.asarray(target, dtype)
    return (inputs[:train_samples], targets[:train_samples]), (
        inputs[train_samples:],
        targets[train_samples:],
    )


def train_fno(
    x, y, settings, *, seed, validation=None, checkpoints=None, progress=True
):
    """An FNO between unit-Gaussian normalizations, trained with Adam and a
    cosine decay on the relative L2 (or, with settings["loss"] = "h1", H1)
    loss, with the test error per epoch when given ``validation=(x, y)``;
    returns ``operators.fit``'s ``Training``."""
    grid = settings.get("grid", "closed")
    model_key, shuffle_key = jax.random.split(jax.random.key(seed))
    fno = operators.FNO(
        1,
        1,
        x.ndim - 1,
        modes=settings["modes"],
        width=settings["width"],
        padding=settings.get("padding", 0.1),
        grid=grid,
        key=model_key,
        dtype=x.dtype,
    )
    # pointwise statistics (the paper's) resample to any grid of the same
    # convention; Burgers uses one mean and deviation per field
    pointwise = settings.get("pointwise", False)
    model = operators.NormalizedOperator(
        fno,
        operators.UnitGaussianNormalizer(x, pointwise=pointwise, grid=grid),
        operators.UnitGaussianNormalizer(y, pointwise=pointwise, grid=grid),
    )
    optimizer = operators.default_optimizer(
        num_epochs=settings["epochs"],
        num_samples=x.shape[0],
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
    )
    losses = {"l2": operators.relative_lp_loss, "h1": operators.relative_h1_loss}
    return operators.fit(
        model,
        x,
        y,
        loss=losses[settings.get("loss", "l2")],
        key=shuffle_key,
        num_epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        validation=validation,
        optimizer=optimizer,
        checkpoint_dir=checkpoints,
        checkpoint_every=10,
        progress=progress,
    )


def test_errors(directory, model, settings, dtype=jnp.float32):
    """{resolution: mean test relative L2} at every evaluation resolution."""
    errors = {}
    for resolution in settings["evaluate"]:
        _, (x, y) = load_split(directory, resolution, settings["train_samples"], dtype)
        errors[resolution] = float(operators.evaluate(model, x, y, batch_size=20))
    return errors


def pyplot():
    """matplotlib's pyplot without a display, or None when not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("   (matplotlib not installed: pip install -e '.[examples]' for the PNG)")
        return None
    return plt


def run_example(problem, settings_table, generate, save_figure, description):
    """The command line both examples share: --full for the paper's
    setting, --data / --checkpoints to choose (and resume) where things go;
    generate, train, print the test error per resolution, save the figure."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--full", action="store_true", help="the paper's setting")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--checkpoints", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", type=Path, default=Path(f"{problem}_fno.png"))
    args = parser.parse_args()
    name = "full" if args.full else "small"
    settings = dict(settings_table[name])
    if args.epochs:
        settings["epochs"] = args.epochs
    data = args.data or Path("data") / f"{problem}_{settings['solve']}"
    print(f"{problem} ({name}): data solved at {settings['solve']}, in {data}")
    start = time.perf_counter()
    generate(data, settings, args.seed)
    print(f"   data ready in {time.perf_counter() - start:.1f} s")
    (x, y), test = load_split(data, settings["train"], settings["train_samples"])
    result = train_fno(
        x, y, settings, seed=args.seed, validation=test, checkpoints=args.checkpoints
    )
    outcome = RESULTS[result.result] or "finished"
    print(
        f"   trained {result.stats['num_epochs']} epochs at {settings['train']}: "
        f"{result.stats['seconds']:.1f} s including compilation ({outcome}); "
        f"test relative L2 per epoch in result.stats['validation_loss']"
    )
    for resolution, error in test_errors(data, result.model, settings).items():
        print(f"   test relative L2 at {resolution:5d}: {100 * error:.2f}%")
    save_figure(args.figure, data, result.model, settings)
