"""Pointwise unit-Gaussian normalisation of fields, fitted on training data."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float


class UnitGaussianNormaliser(eqx.Module):
    r"""$x \mapsto (x - \mu) / (\sigma + \epsilon)$ with the mean and standard
    deviation of the training set at every grid point (the FNO paper's
    normaliser); ``decode`` inverts it.

    Pointwise statistics belong to the resolution they were fitted at; for
    evaluation at other resolutions fit with ``pointwise=False`` (one mean and
    one deviation for the whole field), which holds at every resolution.

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

    def encode(self, x):
        return (x - self.mean) / (self.std + self.eps)

    def decode(self, x):
        return x * (self.std + self.eps) + self.mean
