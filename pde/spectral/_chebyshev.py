"""Chebyshev collocation for two-point boundary-value problems: the
classical reference the Gaussian-process solvers are measured against."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float

from ...solvers import RESULTS


def chebyshev_points(num_points: int, domain=(-1.0, 1.0), dtype=None):
    r"""$x_j = a + (b - a)(1 - \cos(\pi j / n)) / 2$, j = 0..n, n = num_points - 1:
    the Chebyshev extreme points of [a, b], in increasing order."""
    dtype = jnp.dtype(dtype or jnp.zeros(0).dtype)
    a, b = domain
    t = -np.cos(np.pi * np.arange(num_points) / (num_points - 1))
    return jnp.asarray(a + (b - a) * (t + 1) / 2, dtype)


def _unit_differentiation_matrix(num_points: int) -> np.ndarray:
    """D on [-1, 1] in float64 NumPy (a constant of the compiled program)."""
    n = num_points - 1
    j = np.arange(num_points)
    # x_j = -cos(pi j / n); x_i - x_j = 2 sin(pi (i + j) / 2n) sin(pi (i - j) / 2n)
    theta = np.pi * j / n
    difference = (
        2
        * np.sin((theta[:, None] + theta[None, :]) / 2)
        * np.sin((theta[:, None] - theta[None, :]) / 2)
    )
    c = np.where((j == 0) | (j == n), 2.0, 1.0) * (-1.0) ** j
    matrix = (c[:, None] / c[None, :]) / (np.eye(num_points) + difference)
    np.fill_diagonal(matrix, 0.0)
    np.fill_diagonal(matrix, -matrix.sum(axis=1))
    return matrix


def chebyshev_differentiation_matrix(num_points: int, domain=(-1.0, 1.0), dtype=None):
    r"""D with $(D u)_i = p'(x_i)$ for the polynomial p interpolating u at
    ``chebyshev_points`` (Trefethen, Spectral Methods in MATLAB, ch. 6).
    Built in float64 from $\sin$ forms of the point differences and with
    the diagonal as minus the off-diagonal row sums, which keeps rounding at
    $O(n^2\epsilon)$ instead of $O(n^4\epsilon)$ (Baltensperger & Trummer)."""
    if num_points < 2:
        raise ValueError(f"need at least 2 points, got {num_points}.")
    a, b = domain
    matrix = _unit_differentiation_matrix(num_points) * 2 / (b - a)
    return jnp.asarray(matrix, jnp.dtype(dtype or jnp.zeros(0).dtype))


class ChebyshevSolution(eqx.Module):
    """What ``chebyshev_solve`` returns.

    Attributes:
        points: the Chebyshev points of the domain (increasing).
        values: the solution there.
        result: ``solvers.RESULTS.successful``, or why Newton stopped.
        stats: ``num_steps`` (Newton steps) and ``residual_norm`` (max |F| at
            the collocation points, boundary rows included).
    """

    points: Float[Array, " n"]
    values: Float[Array, " n"]
    result: RESULTS
    stats: dict

    def __call__(self, x):
        """The interpolating polynomial at any x in the domain."""
        x = jnp.asarray(x, self.points.dtype)
        return barycentric_rows(self.points, x) @ self.values


def barycentric_rows(nodes, x):
    r"""Weights $\ell_j(x)$ with $p(x) = \sum_j \ell_j(x)u_j$ for the
    polynomial interpolating at the Chebyshev points ``nodes``, shape
    ``x.shape + (n,)``: the barycentric formula of the second kind (stable;
    weights $(-1)^j$, halved at the ends), exact at the nodes themselves."""
    n = nodes.shape[0]
    weights = jnp.asarray(
        (-1.0) ** np.arange(n)
        * np.where((np.arange(n) == 0) | (np.arange(n) == n - 1), 0.5, 1.0),
        nodes.dtype,
    )
    shaped = nodes.reshape((1,) * x.ndim + (n,))
    difference = x[..., None] - shaped
    exact = difference == 0
    ratio = weights.reshape(shaped.shape) / jnp.where(exact, 1.0, difference)
    rows = ratio / jnp.sum(ratio, -1, keepdims=True)
    hit = jnp.any(exact, -1, keepdims=True)
    return jnp.where(hit, exact.astype(nodes.dtype), rows)


def halving_line_search(residual, u, step, size, max_halvings=30):
    """The fraction 2^-k (k <= ``max_halvings``) of ``step`` at which the
    largest |residual| first drops below ``size``: damped Newton, since plain
    Newton from a poor start can run off to ever larger iterates."""

    def too_long(state):
        fraction, trials = state
        trial = jnp.max(jnp.abs(residual(u + fraction * step)))
        return (~(trial < size)) & (trials < max_halvings)

    fraction, _ = lax.while_loop(
        too_long, lambda s: (s[0] / 2, s[1] + 1), (jnp.asarray(1.0, u.dtype), 0)
    )
    return fraction


def chebyshev_solve(
    equation: Callable,
    domain: tuple[float, float],
    boundary: tuple,
    num_points: int,
    *,
    initial=None,
    rtol: float,
    max_steps: int = 50,
    dtype=None,
) -> ChebyshevSolution:
    r"""Solve $F(x, u, u', u'') = 0$ on [a, b] with $u(a) = g_a$, $u(b) = g_b$
    by Chebyshev collocation and Newton's method.

    The unknowns are u at ``num_points`` Chebyshev points; derivatives are
    the differentiation matrix D and $D^2$; the equation is imposed at the
    interior points and the boundary values at the two ends (a square
    system). Each Newton step solves with the dense Jacobian from
    ``jax.jacfwd`` (LU, $O(n^3)$; n up to a few thousand) and is halved
    until the largest residual decreases (damped Newton), so a poor start
    does not run away. A linear equation converges in one step. Stops when
    the full Newton step is at most ``rtol`` times the solution (max norms);
    otherwise ``result`` says why (``newton_max_steps_reached`` or
    ``nonfinite``).

    Accuracy: spectral for smooth solutions (error falls exponentially in n
    once the solution is resolved, about pi points per wavelength), down to
    about $n^2\epsilon$ times the solution's scale from rounding in $D^2$.

    Differentiable: the Newton iterations run without gradients and one
    last Newton step is differentiated, which gives the exact derivative of
    the converged solution (implicit function theorem) with respect to any
    parameter closed over by ``equation``, the boundary values or the
    domain.

    Args:
        equation: ``F(x, u, du, d2u)`` elementwise, zero at the solution
            (e.g. ``lambda x, u, du, d2u: d2u - f(x)``).
        domain: (a, b).
        boundary: (g_a, g_b).
        num_points: collocation points (>= 3).
        initial: starting values at the points (default: the straight line
            between the boundary values).
        rtol: Newton's stopping tolerance (required). Rounding in D^2 makes
            the step of a converged iteration about n^2 eps: in float64 use
            1e-9 to 1e-10 at a thousand points, 1e-12 at a hundred.
        max_steps: Newton steps at most.
        dtype: float dtype (default: the default float).

    References:
        Trefethen, "Spectral Methods in MATLAB", SIAM 2000, ch. 6, 7, 13.
    """
    if num_points < 3:
        raise ValueError(f"chebyshev_solve: num_points must be >= 3, got {num_points}.")
    if len(domain) != 2 or len(boundary) != 2:
        raise ValueError(
            "chebyshev_solve: domain and boundary are (left, right) pairs."
        )
    dtype = jnp.dtype(dtype or jnp.zeros(0).dtype)
    a, b = (jnp.asarray(v, dtype) for v in domain)
    left, right = (jnp.asarray(v, dtype) for v in boundary)
    t = chebyshev_points(num_points, dtype=dtype)
    x = a + (b - a) * (t + 1) / 2
    # D and D^2 on [-1, 1] as float64 constants: a product of traced
    # constants would be folded by the compiler, slowly, at every jit
    unit = _unit_differentiation_matrix(num_points)
    d1 = jnp.asarray(unit, dtype) * (2 / (b - a))
    d2 = jnp.asarray(unit @ unit, dtype) * (2 / (b - a)) ** 2

    def residual(u):
        interior = equation(x, u, d1 @ u, d2 @ u)
        return interior.at[0].set(u[0] - left).at[-1].set(u[-1] - right)

    def newton_step(u):
        value = residual(u)
        return u - jnp.linalg.solve(jax.jacfwd(residual)(u), value), value

    def damped_step(u):
        """Newton's step, halved (up to 30 times) until |F| decreases: plain
        Newton from a poor start can run off to ever larger iterates."""
        value = residual(u)
        step = -jnp.linalg.solve(jax.jacfwd(residual)(u), value)
        fraction = halving_line_search(residual, u, step, jnp.max(jnp.abs(value)))
        return u + fraction * step, jnp.max(jnp.abs(step))

    u0 = (
        left + (right - left) * (t + 1) / 2
        if initial is None
        else jnp.asarray(initial, dtype)
    )

    def keep_going(state):
        _, step, count, _ = state
        return (step > 0) & (count < max_steps)

    def iterate(state):
        u, _, count, _ = state
        new, change = damped_step(u)
        done = change <= rtol * jnp.max(jnp.abs(new))
        return new, jnp.where(done | ~jnp.isfinite(change), 0, 1), count + 1, change

    u, _, steps, change = lax.while_loop(
        keep_going,
        iterate,
        (
            lax.stop_gradient(u0),
            jnp.asarray(1),
            jnp.asarray(0),
            jnp.asarray(jnp.inf, dtype),
        ),
    )
    u = lax.stop_gradient(u)
    u, value = newton_step(u)
    converged = change <= rtol * jnp.max(jnp.abs(u))
    result = RESULTS.where(
        jnp.all(jnp.isfinite(u)),
        RESULTS.where(converged, RESULTS.successful, RESULTS.newton_max_steps_reached),
        RESULTS.nonfinite,
    )
    stats = {"num_steps": steps + 1, "residual_norm": jnp.max(jnp.abs(value))}
    return ChebyshevSolution(x, u, result, stats)
