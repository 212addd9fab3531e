"""Darcy flow end to end: generate the data with the library's multigrid
solver, train a Fourier neural operator, evaluate it at several resolutions.

    python examples/darcy_fno.py            # small: a few minutes on a laptop CPU
    python examples/darcy_fno.py --full     # the FNO paper's setting (GPU)

Small: 700 samples solved at 141 x 141, trained at 36 x 36 (600 train,
100 test), evaluated at 36, 71 and 141. Full: 1100 samples solved at 421,
trained at 85 (1000 train, 100 test), evaluated at 85, 141 and 211 (zero-shot
super-resolution). Data go to --data (reused, and resumed if interrupted);
training checkpoints to --checkpoints (resumed likewise). Prints the test
relative L2 error at every resolution and saves input / truth / prediction /
error as a PNG (needs matplotlib, the `examples` extra).
"""

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
from operator_learning import load_split, pyplot, run_example, train_fno

from sciax import pde

SETTINGS = {
    "quick": dict(
        solve=85, train=29, evaluate=(29, 43, 85), train_samples=500,
        test_samples=100, modes=8, width=20, epochs=20, batch_size=20,
        learning_rate=5e-3, pointwise=True,
    ),
    "small": dict(
        solve=141, train=36, evaluate=(36, 71, 141), train_samples=600,
        test_samples=100, modes=8, width=24, epochs=30, batch_size=20,
        learning_rate=3e-3, pointwise=True,
    ),
    "full": dict(
        solve=421, train=85, evaluate=(85, 141, 211), train_samples=1000,
        test_samples=100, modes=12, width=32, epochs=150, batch_size=20,
        learning_rate=2e-3, pointwise=True, loss="h1",
    ),
}  # fmt: skip


def generate(directory, settings, seed, progress=True):
    """The dataset (solved at settings["solve"], saved at every training and
    evaluation resolution); reused or resumed if already there."""
    resolutions = sorted(set(settings["evaluate"]) | {settings["train"]})
    return pde.write_dataset(
        directory,
        "darcy",
        settings["train_samples"] + settings["test_samples"],
        seed=seed,
        shard_size=100,
        resolutions=resolutions,
        resolution=settings["solve"],
        batch_size=10,
        progress=progress,
    )


def train(directory, settings, *, seed, checkpoints=None, progress=True):
    (x, y), _ = load_split(directory, settings["train"], settings["train_samples"])
    return train_fno(x, y, settings, seed=seed, checkpoints=checkpoints,
                     progress=progress)  # fmt: skip


def save_figure(path, directory, model, settings):
    plt = pyplot()
    if plt is None:
        return
    resolution = settings["evaluate"][-1]
    _, (x, y) = load_split(directory, resolution, settings["train_samples"])
    prediction = model(x[0])  # one sample (n, n): no channel axis
    panels = {
        "coefficient a": x[0],
        "truth u": y[0],
        "prediction": prediction,
        "error": prediction - y[0],
    }
    figure, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for axis, (title, field) in zip(axes, panels.items(), strict=True):
        image = axis.imshow(jnp.asarray(field, jnp.float64), origin="lower")
        axis.set_title(f"{title} ({resolution}x{resolution})")
        axis.set_xticks([]), axis.set_yticks([])
        figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    print(f"   figure: {path}")


def main():
    run_example("darcy", SETTINGS, generate, save_figure, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
