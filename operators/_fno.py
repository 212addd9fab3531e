"""The Fourier neural operator (Li et al., ICLR 2021) in 1, 2 and 3 dimensions."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._checks import check_grid, check_real_float
from ._spectral_convolution import SpectralConvolution


class _Pointwise(eqx.Module):
    """A linear map of the channels at every grid point (a 1 x 1 convolution)."""

    weight: Float[Array, "o i"]
    bias: Float[Array, " o"]

    def __init__(self, in_channels, out_channels, *, key, dtype):
        bound = 1.0 / jnp.sqrt(in_channels)
        weight_key, bias_key = jax.random.split(key)
        self.weight = jax.random.uniform(
            weight_key, (out_channels, in_channels), dtype, -bound, bound
        )
        self.bias = jax.random.uniform(bias_key, (out_channels,), dtype, -bound, bound)

    def __call__(self, x):
        y = jnp.einsum(
            "oi,i...->o...", self.weight, x, precision=jax.lax.Precision.HIGHEST
        )
        return y + self.bias.reshape((-1,) + (1,) * (x.ndim - 1))


class FNO(eqx.Module):
    r"""Fourier neural operator: lifting P, L Fourier layers
    $v \leftarrow \sigma(W v + \mathcal{F}^{-1}(R\,\mathcal{F} v))$, projection Q
    (Li et al., "Fourier Neural Operator for Parametric Partial Differential
    Equations", ICLR 2021). The grid coordinates in [0, 1] are appended to
    the input channels, as in the paper.

    Grid convention (``grid``): ``"closed"`` places the n nodes of an axis at
    $x_i = i / (n - 1)$, both ends of the box included (the paper's Darcy
    data, the library's Darcy generator); ``"periodic"`` at $x_i = i / n$, the
    right end left out because it repeats the left (Burgers, and
    neuraloperator's Darcy files). The coordinate channels then mean the same
    points at every resolution, which zero-shot super-resolution needs.

    Non-periodic problems: ``ceil(padding * (n - 1))`` zero points are
    appended to the end of every axis of n points before the Fourier layers
    and removed after, so the FFT's periodicity does not tie opposite
    boundaries together. The padding is a fraction of the domain, not a
    number of points, so the padded domain has the same physical length at
    every resolution and the Fourier modes mean the same frequencies: a
    fixed number of points would change the learnt operator with the grid
    and break zero-shot super-resolution. The default 0.1 gives the paper's
    9 points at 85 (and 14 at 141, 21 at 211).

    Defaults are the paper's Darcy architecture: 12 modes per axis, width 32,
    4 layers, a 128-channel projection, GELU. Acts on one unbatched sample
    (in_channels, n_1, ..., n_d) and returns (out_channels, n_1, ..., n_d);
    with ``in_channels == 1`` the channel axis may be left out: a sample
    (n_1, ..., n_d) (detected as an array of ``ndim`` axes) gives
    (n_1, ..., n_d) when ``out_channels == 1`` and (out_channels, n_1, ...,
    n_d) otherwise. The same weights serve every resolution whose padded
    grid holds the modes (at least 2 * modes points per axis after
    padding; the error names the smallest grid that does). Batch with
    ``jax.vmap``.

    Args:
        in_channels: channels of the input function.
        out_channels: channels of the output function.
        ndim: 1, 2 or 3 grid axes.
        modes: Fourier modes kept per axis.
        width: channels inside the Fourier layers.
        depth: number of Fourier layers.
        projection: hidden channels of the projection.
        padding: padding per axis as a fraction of the domain (0 for
            periodic problems).
        grid: ``"closed"`` (nodes $i / (n - 1)$) or ``"periodic"`` (nodes
            $i / n$), the convention of the coordinate channels.
        key: PRNG key (keyword-only).
        dtype: real floating dtype of the weights (default: the default
            float); the input must be real floating point too (booleans and
            integers raise ``TypeError``).

    Example:
        >>> model = FNO(1, 1, 2, modes=8, width=16, key=jax.random.key(0))
        >>> model(jnp.ones((32, 32))).shape
        (32, 32)
    """

    lifting: _Pointwise
    spectral: list[SpectralConvolution]
    pointwise: list[_Pointwise]
    projection_hidden: _Pointwise
    projection_out: _Pointwise
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    ndim: int = eqx.field(static=True)
    padding: float = eqx.field(static=True)
    grid: str = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ndim: int = 2,
        *,
        modes: int = 12,
        width: int = 32,
        depth: int = 4,
        projection: int = 128,
        padding: float = 0.1,
        grid: str = "closed",
        key: PRNGKeyArray,
        dtype=None,
    ):
        if ndim not in (1, 2, 3):
            raise ValueError(f"FNO: ndim must be 1, 2 or 3, got {ndim}.")
        if min(in_channels, out_channels, depth, width, modes, projection) < 1:
            raise ValueError(
                "FNO: in_channels, out_channels, depth, width, modes and projection "
                "must be >= 1."
            )
        if padding < 0:
            raise ValueError(f"FNO: padding must be >= 0, got {padding}.")
        dtype = jnp.dtype(dtype or jnp.zeros(0).dtype)
        check_real_float(jnp.zeros(0, dtype), name="FNO", argument="dtype")
        keys = jax.random.split(key, 2 * depth + 3)
        self.lifting = _Pointwise(in_channels + ndim, width, key=keys[0], dtype=dtype)
        self.spectral = [
            SpectralConvolution(
                width, width, (modes,) * ndim, key=keys[1 + i], dtype=dtype
            )
            for i in range(depth)
        ]
        self.pointwise = [
            _Pointwise(width, width, key=keys[1 + depth + i], dtype=dtype)
            for i in range(depth)
        ]
        self.projection_hidden = _Pointwise(
            width, projection, key=keys[-2], dtype=dtype
        )
        self.projection_out = _Pointwise(
            projection, out_channels, key=keys[-1], dtype=dtype
        )
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.ndim = ndim
        self.padding = float(padding)
        self.grid = check_grid(grid, "FNO")

    def _padded(self, n: int) -> int:
        return n + math.ceil(self.padding * (n - 1))

    def _check_modes(self, grid: tuple[int, ...]):
        """The Fourier layers' mode limit, stated on the caller's grid (the
        padded grid is an internal detail)."""
        modes = self.spectral[0].modes[0]

        def holds(n, axis):
            padded = self._padded(n)
            limit = padded // 2 + 1 if axis == self.ndim - 1 else padded // 2
            return modes <= limit

        for axis, n in enumerate(grid):
            if not holds(n, axis):
                smallest = next(m for m in range(2, 4 * modes + 2) if holds(m, axis))
                raise ValueError(
                    f"FNO: {modes} Fourier modes need at least {smallest} grid "
                    f"points on axis {axis} (padding={self.padding}), got the grid "
                    f"{grid}. Use a finer grid or fewer modes."
                )

    def _coordinates(self, grid, dtype):
        if self.grid == "closed":
            axes = [jnp.linspace(0.0, 1.0, n, dtype=dtype) for n in grid]
        else:
            axes = [jnp.arange(n, dtype=dtype) / n for n in grid]
        return jnp.stack(jnp.meshgrid(*axes, indexing="ij"))

    def __call__(self, x: Float[Array, "c ..."]) -> Float[Array, "o ..."]:
        check_real_float(x, name="FNO", argument="x")
        channel_less = x.ndim == self.ndim and self.in_channels == 1
        if channel_less:
            x = x[None]
        if x.ndim != self.ndim + 1:
            one_channel = (
                f" or ({self.ndim} grid axes) for one channel"
                if self.in_channels == 1
                else ""
            )
            raise ValueError(
                f"FNO({self.ndim}-D) takes one sample of shape (channels, "
                f"{self.ndim} grid axes){one_channel}, got shape {x.shape}; batch "
                "with jax.vmap."
            )
        if x.shape[0] != self.in_channels:
            raise ValueError(
                f"FNO expects {self.in_channels} input channels, got {x.shape[0]} "
                f"(shape {x.shape})."
            )
        grid = x.shape[1:]
        self._check_modes(grid)
        v = self.lifting(jnp.concatenate([x, self._coordinates(grid, x.dtype)]))
        v = jnp.pad(v, [(0, 0)] + [(0, self._padded(n) - n) for n in grid])
        for layer, (spectral, pointwise) in enumerate(
            zip(self.spectral, self.pointwise, strict=True)
        ):
            v = spectral(v) + pointwise(v)
            if layer < len(self.spectral) - 1:
                v = jax.nn.gelu(v, approximate=False)
        v = v[(slice(None),) + tuple(slice(0, n) for n in grid)]
        y = self.projection_out(
            jax.nn.gelu(self.projection_hidden(v), approximate=False)
        )
        return y[0] if channel_less and self.out_channels == 1 else y
