"""Burgers' equation end to end: generate the data with the library's
pseudo-spectral solver, train a 1-D Fourier neural operator u(., 0) ->
u(., 1), evaluate it at several resolutions.

    python examples/burgers_fno.py          # small: a few minutes on a laptop CPU
    python examples/burgers_fno.py --full   # the FNO paper's setting (GPU)

Small: 600 samples solved at 1024 points, trained at 256 (500 train, 100
test), evaluated at 256, 512 and 1024. Full: 1200 samples solved at 8192,
trained at 1024 (1000 train, 200 test; the paper's split), evaluated at
1024, 2048 and 8192. Periodic (nodes i / n), so no padding and the FNO's
and normalizers' periodic grid convention. Data, checkpoints and the
figure as in darcy_fno.py.
"""

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np
from operator_learning import load_split, pyplot, run_example

from sciax import pde

SETTINGS = {
    "small": dict(
        solve=1024, train=256, evaluate=(256, 512, 1024), train_samples=500,
        test_samples=100, modes=16, width=32, epochs=40, batch_size=20,
        learning_rate=3e-3, padding=0.0, grid="periodic",
    ),
    "full": dict(
        solve=8192, train=1024, evaluate=(1024, 2048, 8192), train_samples=1000,
        test_samples=200, modes=16, width=64, epochs=300, batch_size=20,
        learning_rate=2e-3, padding=0.0, grid="periodic",
    ),
}  # fmt: skip


def generate(directory, settings, seed, progress=True):
    resolutions = sorted(set(settings["evaluate"]) | {settings["train"]})
    return pde.write_dataset(
        directory,
        "burgers",
        settings["train_samples"] + settings["test_samples"],
        seed=seed,
        shard_size=100,
        resolutions=resolutions,
        resolution=settings["solve"],
        batch_size=100,
        progress=progress,
    )


def save_figure(path, directory, model, settings):
    plt = pyplot()
    if plt is None:
        return
    resolution = settings["evaluate"][-1]
    _, (x, y) = load_split(directory, resolution, settings["train_samples"])
    prediction = np.asarray(model(x[0]), np.float64)  # (n,): no channel axis
    grid = np.arange(resolution) / resolution
    figure, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    axes[0].plot(grid, np.asarray(x[0]), label="u(x, 0)", color="0.6")
    axes[0].plot(grid, np.asarray(y[0]), label="truth u(x, 1)")
    axes[0].plot(grid, prediction, "--", label="prediction")
    axes[0].legend()
    axes[1].plot(grid, prediction - np.asarray(y[0]))
    axes[1].set_title(f"error ({resolution} points)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    print(f"   figure: {path}")


def main():
    run_example("burgers", SETTINGS, generate, save_figure, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
