"""The Fourier neural operator (Li et al., ICLR 2021) in 1, 2 and 3 dimensions."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

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
    the same weights serve every resolution with at least 2 * modes points
    per axis. Batch with ``jax.vmap``.

    Args:
        in_channels, out_channels: channels of the input and output functions.
        ndim: 1, 2 or 3.
        modes: Fourier modes kept per axis.
        width: channels inside the Fourier layers.
        depth: number of Fourier layers.
        projection: hidden channels of the projection.
        padding: padding per axis as a fraction of the domain (0 for
            periodic problems).
        key: PRNG key (keyword-only).
        dtype: float dtype of the weights (default: the default float).
    """

    lifting: _Pointwise
    spectral: list[SpectralConvolution]
    pointwise: list[_Pointwise]
    projection_hidden: _Pointwise
    projection_out: _Pointwise
    ndim: int = eqx.field(static=True)
    padding: float = eqx.field(static=True)

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
        key: PRNGKeyArray,
        dtype=None,
    ):
        if ndim not in (1, 2, 3):
            raise ValueError(f"FNO: ndim must be 1, 2 or 3, got {ndim}.")
        if depth < 1 or width < 1 or modes < 1 or padding < 0:
            raise ValueError("FNO: depth, width and modes must be >= 1, padding >= 0.")
        dtype = jnp.dtype(dtype or jnp.zeros(0).dtype)
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
        self.ndim = ndim
        self.padding = float(padding)

    def __call__(self, x: Float[Array, "c ..."]) -> Float[Array, "o ..."]:
        if x.ndim != self.ndim + 1:
            raise ValueError(
                f"FNO({self.ndim}-D) takes one sample of shape (channels, {self.ndim} grid "
                f"axes), got shape {x.shape}; batch with jax.vmap."
            )
        expected = self.lifting.weight.shape[1] - self.ndim
        if x.shape[0] != expected:
            raise ValueError(
                f"FNO expects {expected} input channels, got {x.shape[0]}."
            )
        grid = x.shape[1:]
        coordinates = jnp.meshgrid(
            *[jnp.linspace(0.0, 1.0, n, dtype=x.dtype) for n in grid], indexing="ij"
        )
        v = self.lifting(jnp.concatenate([x, jnp.stack(coordinates)]))
        v = jnp.pad(
            v,
            [(0, 0)] + [(0, math.ceil(self.padding * (n - 1))) for n in grid],
        )
        for layer, (spectral, pointwise) in enumerate(
            zip(self.spectral, self.pointwise, strict=True)
        ):
            v = spectral(v) + pointwise(v)
            if layer < len(self.spectral) - 1:
                v = jax.nn.gelu(v, approximate=False)
        v = v[(slice(None),) + tuple(slice(0, n) for n in grid)]
        return self.projection_out(
            jax.nn.gelu(self.projection_hidden(v), approximate=False)
        )
