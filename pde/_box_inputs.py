"""Trace-time checks and boundary data shared by the collocation solvers
(Chebyshev and Gaussian-process, on intervals and boxes)."""

import jax
import jax.numpy as jnp
import numpy as np


def check_rtol(rtol, *, zero_allowed: bool):
    """``rtol`` must be a real scalar (Python, NumPy, or a JAX array under
    tracing, whose value is not checked), > 0, or >= 0 where 0 means "no
    target"."""
    if isinstance(rtol, bool | complex) or not isinstance(
        rtol, int | float | np.floating | np.integer | jax.Array
    ):
        raise TypeError(f"rtol must be a real number, got {rtol!r}.")
    if isinstance(rtol, jax.Array):
        return
    if (rtol < 0) if zero_allowed else not rtol > 0:
        bound = ">= 0 (0: no target)" if zero_allowed else "> 0"
        raise ValueError(f"rtol must be {bound}, got {rtol!r}.")


def check_box_inputs(
    domain, num_points, derivatives, *, min_points, interval_solver, max_dims=2
):
    """Clear errors for a domain that is not a box of 2..``max_dims``
    dimensions, grids that are not one int >= ``min_points`` per axis, and
    derivative multi-indices that are not one order 0..4 per axis."""
    shapes = "a rectangle ((a1, b1), (a2, b2))" + (
        " or a box ((a1, b1), (a2, b2), (a3, b3))" if max_dims == 3 else ""
    )
    if not 2 <= len(domain) <= max_dims or any(
        len(interval) != 2 for interval in domain
    ):
        raise ValueError(
            f"domain must be {shapes}; got {domain!r}. Intervals go to "
            f"{interval_solver}; boxes in more than {max_dims} dimensions are "
            "not supported."
        )
    ndim = len(domain)
    for interval in domain:
        if not float(interval[1]) > float(interval[0]):
            raise ValueError(f"each interval needs b > a, got {interval!r}.")
    if len(num_points) != ndim or any(
        not isinstance(n, int) or n < min_points for n in num_points
    ):
        raise ValueError(
            f"num_points must be {ndim} ints >= {min_points}, one per axis; got "
            f"{num_points!r}."
        )
    if not derivatives or any(
        len(term) != ndim
        or any(not isinstance(p, int) or not 0 <= p <= 4 for p in term)
        or sum(term) == 0
        for term in derivatives
    ):
        example = (
            "((2, 0), (0, 2))" if ndim == 2 else "((2, 0, 0), (0, 2, 0), (0, 0, 2))"
        )
        raise ValueError(
            f"derivatives must be a non-empty tuple of multi-indices with {ndim} "
            f"orders 0..4 and a positive sum, e.g. {example}; got {derivatives!r}."
        )


def boundary_on_grid(boundary, points, dtype):
    """Boundary data on the tensor grid ``points`` (n1, ..., nd, d): ``g``
    at every node if it is callable, else an array that must have the grid's
    shape (only its entries on the boundary are used)."""
    shape = points.shape[:-1]
    if callable(boundary):
        flat = points.reshape(-1, points.shape[-1])
        return jax.vmap(boundary)(flat).reshape(shape).astype(dtype)
    values = jnp.asarray(boundary, dtype)
    if values.shape != shape:
        raise ValueError(
            f"boundary array must have the grid's shape {shape}, got {values.shape}."
        )
    return values
