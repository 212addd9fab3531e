"""Unit-Gaussian normalization of fields, fitted on training data."""

import equinox as eqx
import jax.numpy as jnp
import jax.scipy.ndimage as jndimage
from jaxtyping import Array, Float

from ._checks import check_grid, check_real_float


class UnitGaussianNormalizer(eqx.Module):
    r"""$x \mapsto (x - \mu) / (\sigma + \epsilon)$ with the mean and standard
    deviation of the training set at every grid point (the FNO paper's
    normalizer); ``decode`` inverts it.

    Other resolutions: pointwise statistics are fields on the training grid.
    Applied to a sample on another grid of the same box (the same number of
    axes, any number of points per axis) they are first resampled to that
    grid by multilinear interpolation, with the nodes placed by ``grid``:
    ``"closed"`` takes $x_i = i / (n - 1)$ (both ends of every axis, as the
    Darcy data), ``"periodic"`` takes $x_i = i / n$ and interpolates across
    the wrap-around between the last node and the first. So one normalizer
    serves every resolution. The interpolation error is second order in the
    training grid's spacing where the statistics are smooth; where they
    jump (a piecewise-constant coefficient's mean does not), use
    ``pointwise=False``: one mean and one deviation for the whole field,
    the same at every resolution.

    Channels: a length-1 leading axis present on one side only (statistics
    fitted on (N, 1, *grid) data applied to a (*grid) sample, or the other
    way round) is matched up, so the statistics serve data with and without
    a channel axis.

    Args:
        data: training fields, shape (N, ...), real floating point.
        pointwise: statistics per grid point (True) or one scalar pair.
        eps: added to sigma.
        grid: ``"closed"`` or ``"periodic"``, where the nodes of the data lie
            (used only to resample pointwise statistics).
    """

    mean: Float[Array, "..."]
    std: Float[Array, "..."]
    eps: float = eqx.field(static=True)
    grid: str = eqx.field(static=True)

    def __init__(
        self,
        data,
        *,
        pointwise: bool = True,
        eps: float = 1e-5,
        grid: str = "closed",
    ):
        check_real_float(data, name="UnitGaussianNormalizer", argument="data")
        data = jnp.asarray(data)
        if data.ndim < 1 or data.shape[0] < 1:
            raise ValueError(
                "UnitGaussianNormalizer: data must be (N, ...) with N >= 1 samples, "
                f"got shape {data.shape}."
            )
        axis = 0 if pointwise else None
        self.mean = jnp.mean(data, axis=axis)
        self.std = jnp.std(data, axis=axis)
        self.eps = float(eps)
        self.grid = check_grid(grid, "UnitGaussianNormalizer")

    def _on_grid_of(self, statistic, x):
        if statistic.ndim == 0 or statistic.shape == x.shape:
            return statistic
        if statistic.ndim == x.ndim + 1 and statistic.shape[0] == 1:
            statistic = statistic[0]
        elif x.ndim == statistic.ndim + 1 and x.shape[0] == 1:
            return self._on_grid_of(statistic, x[0])[None]
        if statistic.ndim != x.ndim:
            raise ValueError(
                f"UnitGaussianNormalizer: fitted on samples of shape {statistic.shape}, "
                f"applied to shape {x.shape}; the number of axes must agree (up to "
                "a length-1 channel axis)."
            )
        if statistic.shape == x.shape:
            return statistic
        if self.grid == "closed":
            axes = [
                jnp.linspace(0.0, old - 1.0, new, dtype=statistic.dtype)
                for old, new in zip(statistic.shape, x.shape, strict=True)
            ]
            mode = "nearest"
        else:
            # node j of n_new sits at j / n_new, i.e. at index j n_old / n_new
            # of the old grid; "wrap" interpolates between its last node and
            # the first, one period on
            axes = [
                jnp.arange(new, dtype=statistic.dtype) * (old / new)
                for old, new in zip(statistic.shape, x.shape, strict=True)
            ]
            mode = "wrap"
        coordinates = jnp.meshgrid(*axes, indexing="ij")
        return jndimage.map_coordinates(statistic, coordinates, order=1, mode=mode)

    def encode(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        r"""$(x - \mu) / (\sigma + \epsilon)$ on one sample."""
        check_real_float(x, name="UnitGaussianNormalizer.encode", argument="x")
        mean, std = self._on_grid_of(self.mean, x), self._on_grid_of(self.std, x)
        return (x - mean) / (std + self.eps)

    def decode(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        r"""$x (\sigma + \epsilon) + \mu$ on one sample: the inverse of
        ``encode``."""
        check_real_float(x, name="UnitGaussianNormalizer.decode", argument="x")
        mean, std = self._on_grid_of(self.mean, x), self._on_grid_of(self.std, x)
        return x * (std + self.eps) + mean
