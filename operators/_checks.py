"""Input checks shared by the neural operators, the normalizer and training."""

import jax.numpy as jnp
import numpy as np

GRIDS = ("closed", "periodic")


def check_real_float(x, *, name: str, argument: str):
    """Raise ``TypeError`` unless ``x`` holds real floating-point numbers.

    Boolean and integer fields would otherwise flow through silently: the
    FNO would build its coordinate channels in that dtype and a loss of
    booleans would train on nothing useful.
    """
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        dtype = np.asarray(x).dtype
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(
            f"{name}: {argument} has dtype {dtype}; these operators act on real "
            "fields: pass the real and imaginary parts as two channels."
        )
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{name}: {argument} has dtype {dtype}; pass a real floating-point "
            f"array, e.g. {argument}.astype(jnp.float32) (a boolean mask becomes "
            "0.0 / 1.0)."
        )


def check_grid(grid: str, name: str) -> str:
    """The grid convention, checked: ``"closed"`` or ``"periodic"``."""
    if grid not in GRIDS:
        raise ValueError(
            f'{name}: grid must be "closed" (nodes i / (n - 1), both ends of the '
            f'box) or "periodic" (nodes i / n), got {grid!r}.'
        )
    return grid
