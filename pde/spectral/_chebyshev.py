"""Chebyshev collocation for two-point boundary-value problems: the
classical reference the Gaussian-process solvers are measured against."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float

from ..._results import RESULTS, raise_if_failed
from .._box_inputs import check_rtol


def chebyshev_points(
    num_points: int, domain: tuple[float, float] = (-1.0, 1.0), dtype=None
) -> Float[Array, " n"]:
    r"""The Chebyshev extreme points of $[a, b]$, in increasing order:
    $x_j = a + (b - a)(1 - \cos(\pi j / m)) / 2$, $j = 0, \dots, m$,
    $m$ = ``num_points`` - 1 (Chebyshev-Gauss-Lobatto points, the extrema
    of $T_m$ mapped to $[a, b]$; both ends included).

    Computed in float64 NumPy and rounded once to ``dtype``, so the ends are
    exactly a and b.

    Args:
        num_points: $m + 1 \ge 2$.
        domain: the interval $(a, b)$, $a < b$.
        dtype: float dtype (default: JAX's default float).

    Returns:
        The points, shape (num_points,).

    References:
        L. N. Trefethen, Spectral Methods in MATLAB, SIAM 2000, ch. 5-6.
    """
    dtype = jnp.dtype(dtype or jnp.zeros(0).dtype)
    if num_points < 2:
        raise ValueError(f"chebyshev_points: need num_points >= 2, got {num_points}.")
    a, b = domain
    t = -np.cos(np.pi * np.arange(num_points) / (num_points - 1))
    return jnp.asarray(a + (b - a) * (t + 1) / 2, dtype)


def unit_differentiation_matrix(num_points: int) -> np.ndarray:
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


def chebyshev_differentiation_matrix(
    num_points: int, domain: tuple[float, float] = (-1.0, 1.0), dtype=None
) -> Float[Array, "n n"]:
    r"""The Chebyshev spectral differentiation matrix D on $[a, b]$:
    $(Du)_i = p'(x_i)$ for the polynomial p of degree $m$ = ``num_points``
    $- 1$ that interpolates u at the ``chebyshev_points`` $x_0 < \dots < x_m$.

    Entries (Trefethen, ch. 6, with $c_0 = c_m = 2$, $c_j = 1$ otherwise),
    scaled by $2/(b - a)$ from $[-1, 1]$:
    $D_{ij} = \frac{c_i}{c_j}\frac{(-1)^{i+j}}{x_i - x_j}$ for $i \ne j$ and
    $D_{ii} = -\sum_{j \ne i} D_{ij}$. Exact (to rounding) on polynomials of
    degree at most m; $D^k$ differentiates k times. Built in float64 from
    $\sin$ forms of the point differences, with the diagonal as minus the
    off-diagonal row sums (negative sum trick), which keeps the rounding of
    $D$ at $O(m^2\epsilon)$ instead of $O(m^4\epsilon)$ and of $D^2$ at about
    $m^4\epsilon$ relative to its largest entries.

    Args:
        num_points: $m + 1 \ge 2$.
        domain: the interval $(a, b)$, $a < b$.
        dtype: float dtype (default: JAX's default float).

    Returns:
        D, shape (num_points, num_points).

    References:
        L. N. Trefethen, Spectral Methods in MATLAB, SIAM 2000, ch. 6.
        R. Baltensperger, M. R. Trummer, Spectral differencing with a twist,
        SIAM J. Sci. Comput. 24 (2003).
    """
    if num_points < 2:
        raise ValueError(f"need at least 2 points, got {num_points}.")
    a, b = domain
    if not float(b) > float(a):
        raise ValueError(f"domain must have b > a, got {domain!r}.")
    matrix = unit_differentiation_matrix(num_points) * 2 / (b - a)
    return jnp.asarray(matrix, jnp.dtype(dtype or jnp.zeros(0).dtype))


class ChebyshevSolution(eqx.Module):
    """What ``chebyshev_solve`` returns.

    Attributes:
        grid: the Chebyshev points of the domain (increasing).
        value: the solution there.
        result: ``RESULTS.successful``, or why Newton stopped.
        stats: ``num_steps`` (Newton steps, the last differentiated one
            included) and ``residual_norm`` (max |F| at the collocation
            points, boundary rows included, before the last step).
    """

    grid: Float[Array, " n"]
    value: Float[Array, " n"]
    result: RESULTS
    stats: dict

    def __call__(self, x):
        """The interpolating polynomial at any x in the domain."""
        x = jnp.asarray(x, self.grid.dtype)
        return barycentric_rows(self.grid, x) @ self.value


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
    boundary: tuple[float, float],
    domain: tuple[float, float],
    num_points: int,
    *,
    rtol: float,
    initial=None,
    max_steps: int = 50,
    throw: bool = True,
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
        boundary: $(g_a, g_b)$.
        domain: $(a, b)$.
        num_points: collocation points (>= 3).
        rtol: Newton's stopping tolerance (required, keyword-only). Rounding
            in D^2 makes the step of a converged iteration about n^2 eps: in
            float64 use 1e-9 to 1e-10 at a thousand points, 1e-12 at a
            hundred.
        initial: starting values at the points (default: the straight line
            between the boundary values).
        max_steps: Newton steps at most.
        throw: raise unless the result is ``RESULTS.successful``; pass
            False inside ``jax.vmap`` or gradients and read ``result``.
        dtype: float dtype (default: the default float).

    Returns:
        A ``ChebyshevSolution``: the value at the points, a callable
        (barycentric interpolation) for any x, stats and result.

    References:
        Trefethen, "Spectral Methods in MATLAB", SIAM 2000, ch. 6, 7, 13.
    """
    if num_points < 3:
        raise ValueError(f"chebyshev_solve: num_points must be >= 3, got {num_points}.")
    check_rtol(rtol, zero_allowed=False)
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
    unit = unit_differentiation_matrix(num_points)
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
    if throw:
        u = raise_if_failed(u, result, "sciax.pde.chebyshev_solve")
    stats = {"num_steps": steps + 1, "residual_norm": jnp.max(jnp.abs(value))}
    return ChebyshevSolution(x, u, result, stats)
