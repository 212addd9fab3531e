"""Trace-time checks and boundary data shared by the solvers on rectangles."""

import jax
import jax.numpy as jnp


def check_box_inputs(domain, num_points, derivatives, *, min_points, interval_solver):
    """Clear errors for a domain that is not a rectangle, grids that are not
    two ints >= ``min_points``, and derivative multi-indices that are not
    pairs of orders 0..4."""
    if len(domain) != 2 or any(len(interval) != 2 for interval in domain):
        raise ValueError(
            "domain must be a rectangle ((a1, b1), (a2, b2)); got "
            f"{domain!r}. Intervals go to {interval_solver}; boxes in three or "
            "more dimensions are not supported."
        )
    for interval in domain:
        if not float(interval[1]) > float(interval[0]):
            raise ValueError(f"each interval needs b > a, got {interval!r}.")
    if len(num_points) != 2 or any(
        not isinstance(n, int) or n < min_points for n in num_points
    ):
        raise ValueError(
            f"num_points must be two ints >= {min_points}, one per axis; got "
            f"{num_points!r}."
        )
    if not derivatives or any(
        len(term) != 2
        or any(not isinstance(p, int) or not 0 <= p <= 4 for p in term)
        or sum(term) == 0
        for term in derivatives
    ):
        raise ValueError(
            "derivatives must be a non-empty tuple of (p1, p2) with orders 0..4 "
            f"and p1 + p2 >= 1, e.g. ((2, 0), (0, 2)); got {derivatives!r}."
        )


def boundary_on_grid(boundary, points, dtype):
    """Boundary data on the tensor grid ``points`` (n1, n2, 2): ``g`` at
    every node if it is callable, else an array that must have the grid's
    shape (only its entries on the boundary are used)."""
    shape = points.shape[:2]
    if callable(boundary):
        return jax.vmap(jax.vmap(boundary))(points).astype(dtype)
    values = jnp.asarray(boundary, dtype)
    if values.shape != shape:
        raise ValueError(
            f"boundary array must have the grid's shape {shape}, got {values.shape}."
        )
    return values
