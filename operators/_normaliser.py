"""Pointwise unit-Gaussian normalisation of fields, fitted on training data."""

import equinox as eqx
import jax.numpy as jnp
import jax.scipy.ndimage as jndimage
from jaxtyping import Array, Float


class UnitGaussianNormaliser(eqx.Module):
    r"""$x \mapsto (x - \mu) / (\sigma + \epsilon)$ with the mean and standard
    deviation of the training set at every grid point (the FNO paper's
    normaliser); ``decode`` inverts it.

    Pointwise statistics are fields on the training grid. Applied to a
    sample on another grid of the same box they are first resampled by
    multilinear interpolation between nodes, the grids taken to include both
    ends of every axis (x_i = i / (n - 1), as the Darcy data): so one
    normaliser serves every resolution. For periodic grids (x_i = i / n) the
    interpolation is off by up to half a cell; use ``pointwise=False`` there
    (one mean and one deviation for the whole field).

    Args:
        data: training fields, shape (N, ...).
        pointwise: statistics per grid point (True) or one scalar pair.
        eps: added to sigma.
    """

    mean: Float[Array, "..."]
    std: Float[Array, "..."]
    eps: float = eqx.field(static=True)

    def __init__(self, data, *, pointwise: bool = True, eps: float = 1e-5):
        axis = 0 if pointwise else None
        self.mean = jnp.mean(data, axis=axis)
        self.std = jnp.std(data, axis=axis)
        self.eps = eps

    def _on_grid_of(self, statistic, x):
        if statistic.ndim == 0 or statistic.shape == x.shape:
            return statistic
        if statistic.ndim != x.ndim:
            raise ValueError(
                f"UnitGaussianNormaliser: fitted on samples of shape {statistic.shape}, "
                f"applied to shape {x.shape}; the number of axes must agree."
            )
        axes = [
            jnp.linspace(0.0, old - 1.0, new, dtype=statistic.dtype)
            for old, new in zip(statistic.shape, x.shape, strict=True)
        ]
        coordinates = jnp.meshgrid(*axes, indexing="ij")
        return jndimage.map_coordinates(statistic, coordinates, order=1)

    def encode(self, x):
        mean, std = self._on_grid_of(self.mean, x), self._on_grid_of(self.std, x)
        return (x - mean) / (std + self.eps)

    def decode(self, x):
        mean, std = self._on_grid_of(self.mean, x), self._on_grid_of(self.std, x)
        return x * (std + self.eps) + mean
