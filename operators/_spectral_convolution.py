"""The Fourier layer's global convolution: a learned multiplier on the
lowest Fourier modes."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class SpectralConvolution(eqx.Module):
    r"""$v \mapsto \mathcal{F}^{-1}(R \cdot \mathcal{F} v)$ on a periodic grid,
    with $R$ a learned complex in x out matrix for each retained mode and
    zero elsewhere (Li et al. 2021, eq. 4).

    The real FFT halves the last axis; in every other axis the ``modes``
    lowest positive and the ``modes`` lowest negative frequencies are kept,
    so 2^(d-1) blocks of weights. Because the weights live on frequencies,
    not grid points, one set of weights acts on any resolution whose grid
    has at least 2 * modes points per axis (zero-shot super-resolution).

    Acts on one unbatched sample of shape (in_channels, n_1, ..., n_d);
    batch with ``jax.vmap``.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        modes: modes kept per axis (a tuple of length d = 1, 2 or 3).
        key: PRNG key (keyword-only).
        dtype: real dtype of the weights (default: the default float).
    """

    weights_real: Float[Array, "blocks i o ..."]
    weights_imag: Float[Array, "blocks i o ..."]
    modes: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self, in_channels, out_channels, modes, *, key: PRNGKeyArray, dtype=None
    ):
        modes = tuple(int(m) for m in modes)
        if len(modes) not in (1, 2, 3) or min(modes) < 1:
            raise ValueError(
                f"SpectralConvolution: modes must be 1 to 3 positive ints, got {modes}."
            )
        dtype = jnp.dtype(dtype or jnp.zeros(0).dtype)
        blocks = 2 ** (len(modes) - 1)
        shape = (blocks, in_channels, out_channels) + modes
        scale = 1.0 / (in_channels * out_channels)
        real_key, imag_key = jax.random.split(key)
        self.weights_real = scale * jax.random.uniform(real_key, shape, dtype)
        self.weights_imag = scale * jax.random.uniform(imag_key, shape, dtype)
        self.modes = modes

    def __call__(self, x: Float[Array, "i ..."]) -> Float[Array, "o ..."]:
        ndim = len(self.modes)
        grid = x.shape[1:]
        if x.ndim != ndim + 1:
            raise ValueError(
                f"SpectralConvolution with {ndim}-D modes needs input (channels, "
                f"{ndim} grid axes), got shape {x.shape}."
            )
        if x.shape[0] != self.weights_real.shape[1]:
            raise ValueError(
                f"SpectralConvolution expects {self.weights_real.shape[1]} input channels, got {x.shape[0]}."
            )
        for axis, (n, m) in enumerate(zip(grid, self.modes, strict=True)):
            limit = n // 2 + 1 if axis == ndim - 1 else n // 2
            if m > limit:
                raise ValueError(
                    f"SpectralConvolution: {m} modes on axis {axis} need at least "
                    f"{2 * m} grid points, got {n}."
                )
        axes = tuple(range(1, ndim + 1))
        spectrum = jnp.fft.rfftn(x, axes=axes)
        out_channels = self.weights_real.shape[2]
        out = jnp.zeros((out_channels,) + spectrum.shape[1:], spectrum.dtype)
        weights = jax.lax.complex(self.weights_real, self.weights_imag).astype(
            spectrum.dtype
        )
        # every other axis keeps its lowest positive and negative frequencies
        for block, signs in enumerate(itertools.product((0, 1), repeat=ndim - 1)):
            window = tuple(
                slice(0, m) if sign == 0 else slice(n - m, n)
                for sign, m, n in zip(signs, self.modes[:-1], grid[:-1], strict=True)
            ) + (slice(0, self.modes[-1]),)
            product = jnp.einsum(
                "i...,io...->o...",
                spectrum[(slice(None),) + window],
                weights[block],
                precision=jax.lax.Precision.HIGHEST,
            )
            out = out.at[(slice(None),) + window].set(product)
        return jnp.fft.irfftn(out, s=grid, axes=axes).astype(x.dtype)
