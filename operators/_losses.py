"""Losses for operator learning that do not depend on the grid resolution."""

import jax.numpy as jnp
from jaxtyping import Array, Float


def relative_lp_loss(
    prediction: Float[Array, "..."], target: Float[Array, "..."], p: float = 2.0
) -> Float[Array, ""]:
    r"""$\|u - v\|_p / \|v\|_p$ over all entries of one sample (the FNO
    paper's metric). A ratio of two grid norms: the quadrature weight $h^d$
    cancels, so the value estimates the continuous relative $L^p$ error at
    any resolution. Batch with ``jax.vmap`` and average."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"relative_lp_loss: shapes differ, {prediction.shape} vs {target.shape}."
        )
    difference = jnp.sum(jnp.abs(prediction - target) ** p) ** (1.0 / p)
    return difference / jnp.sum(jnp.abs(target) ** p) ** (1.0 / p)


def relative_h1_loss(
    prediction: Float[Array, "c ..."], target: Float[Array, "c ..."]
) -> Float[Array, ""]:
    r"""Relative $H^1$ error $\|u - v\|_{H^1} / \|v\|_{H^1}$ of one sample
    (channels first, then the grid on the unit box), with the squared norm
    $\|w\|^2 + \sum_d \|\partial_d w\|^2$ and derivatives by central
    differences (one-sided at the ends) with spacing 1/(n - 1): the
    derivatives scale with the resolution as they should, so the loss is
    comparable across resolutions."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"relative_h1_loss: shapes differ, {prediction.shape} vs {target.shape}."
        )

    def squared_norm(w):
        total = jnp.mean(w * w)
        for axis in range(1, w.ndim):
            spacing = 1.0 / (w.shape[axis] - 1)
            total = total + jnp.mean(jnp.gradient(w, spacing, axis=axis) ** 2)
        return total

    return jnp.sqrt(squared_norm(prediction - target) / squared_norm(target))
