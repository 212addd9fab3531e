"""One restart cycle of (flexible, optionally deflated) Arnoldi, shared by
GMRES and GCRO-DR.

Builds an orthonormal basis V of the Krylov space of (I - C C^T) A M started
at r / ||r||, keeping Z = M V (flexible: M may change between cycles or
systems) and the Hessenberg matrix H with A Z = C B + V H. Orthogonalisation
is classical Gram-Schmidt applied twice ("twice is enough", Giraud et al.
2005): two matrix-vector products with V per step, which map to fast
matmuls, at HIGHEST precision so that GPUs do not drop to TF32. Givens
rotations of a copy of H give the GMRES residual estimate after every step,
so a cycle stops as soon as it meets the tolerance.
"""

from typing import NamedTuple

import jax.numpy as jnp
from jax import lax
from jaxtyping import Array

from .._solver import cycle_result, iterate, norm

_HIGHEST = lax.Precision.HIGHEST


def _apply_rotations(column, cosines, sines, count):
    def rotate(i, col):
        a, b = col[i], col[i + 1]
        c, s = cosines[i], sines[i]
        active = i < count
        col = col.at[i].set(jnp.where(active, c * a + s * b, a))
        return col.at[i + 1].set(jnp.where(active, -s * a + c * b, b))

    return lax.fori_loop(0, cosines.shape[0], rotate, column)


class _ArnoldiState(NamedTuple):
    basis: Array  # V, (restart + 1, n)
    directions: Array  # Z = M V, (restart, n)
    hessenberg: Array
    rotated: Array  # H after the Givens rotations
    cosines: Array
    sines: Array
    g: Array  # rotated right-hand side; |g[j]| is the residual estimate
    coupling: Array  # B = C^T A Z, (k, restart)
    steps: Array
    finite: Array
    # The newest basis vector, carried on its own: read back out of the
    # basis (which the step also updates in place), it made XLA copy the
    # whole basis twice per step (CPU; GCRO-DR at 128^2).
    current: Array


def arnoldi_cycle(
    operator,
    preconditioner,
    r,
    r_norm,
    restart,
    step_budget,
    limit,
    recycled,
    unrolled,
    keep_directions=True,
):
    """Run up to ``restart`` Arnoldi steps from residual r.

    Args:
        recycled: (k, n) orthonormal C to deflate against, or None.
        keep_directions: store Z = M V (flexible methods); without it "Z"
            is returned empty and the caller applies M to V y itself.
        step_budget: traced int, steps still allowed by max_steps.
        limit: the absolute residual tolerance.

    Returns:
        dict with V (restart+1, n), Z (restart, n), H (restart+1, restart),
        B (k, restart) or None, steps (int), estimate (residual norm estimate),
        finite (bool), and the rotated system (R, g) for GMRES's update.
    """
    n = r.shape[0]
    dtype = r.dtype
    start = r / r_norm
    k = 0 if recycled is None else recycled.shape[0]
    steps_cap = jnp.minimum(restart, step_budget)
    init = _ArnoldiState(
        basis=jnp.zeros((restart + 1, n), dtype).at[0].set(start),
        directions=jnp.zeros((restart if keep_directions else 0, n), dtype),
        hessenberg=jnp.zeros((restart + 1, restart), dtype),
        rotated=jnp.zeros((restart + 1, restart), dtype),
        cosines=jnp.zeros(restart, dtype),
        sines=jnp.zeros(restart, dtype),
        g=jnp.zeros(restart + 1, dtype).at[0].set(r_norm),
        coupling=jnp.zeros((k, restart), dtype),
        steps=jnp.asarray(0),
        finite=jnp.asarray(True),
        current=start,
    )

    def cond(state):
        j = state.steps
        return (j < steps_cap) & (jnp.abs(state.g[j]) > limit) & state.finite

    def body(state):
        j = state.steps
        z = preconditioner(state.current)
        w = operator.mv(z)
        coupling = state.coupling
        if recycled is not None:
            c_coef = jnp.matmul(recycled, w, precision=_HIGHEST)
            w = w - jnp.matmul(c_coef, recycled, precision=_HIGHEST)
            coupling = coupling.at[:, j].set(c_coef)
        h = jnp.zeros(restart + 1, dtype)
        for _ in range(2):
            coef = jnp.matmul(state.basis, w, precision=_HIGHEST)
            coef = jnp.where(jnp.arange(restart + 1) <= j, coef, 0.0)
            w = w - jnp.matmul(coef, state.basis, precision=_HIGHEST)
            h = h + coef
        w_norm = jnp.sqrt(jnp.vdot(w, w, precision=_HIGHEST))
        h = h.at[j + 1].set(w_norm)
        # A happy breakdown (w = 0) leaves a zero row: the space is invariant
        # and the least-squares solution is exact.
        current = jnp.where(w_norm > 0, w / w_norm, 0.0)
        hessenberg = state.hessenberg.at[:, j].set(h)
        h = _apply_rotations(h, state.cosines, state.sines, j)
        a, b = h[j], h[j + 1]
        radius = jnp.hypot(a, b)
        c = jnp.where(radius > 0, a / radius, 1.0)
        s = jnp.where(radius > 0, b / radius, 0.0)
        h = h.at[j].set(radius).at[j + 1].set(0.0)
        g = state.g.at[j + 1].set(-s * state.g[j]).at[j].set(c * state.g[j])
        return _ArnoldiState(
            basis=state.basis.at[j + 1].set(current),
            directions=state.directions.at[j].set(z)
            if keep_directions
            else state.directions,
            hessenberg=hessenberg,
            rotated=state.rotated.at[:, j].set(h),
            cosines=state.cosines.at[j].set(c),
            sines=state.sines.at[j].set(s),
            g=g,
            coupling=coupling,
            steps=j + 1,
            finite=jnp.isfinite(w_norm) & jnp.isfinite(g[j + 1]),
            current=current,
        )

    final = iterate(cond, body, init, restart, unrolled)
    return {
        "V": final.basis,
        "Z": final.directions,
        "H": final.hessenberg,
        "B": final.coupling if recycled is not None else None,
        "R": final.rotated[:restart],
        "g": final.g,
        "steps": final.steps,
        "estimate": jnp.abs(final.g[final.steps]),
        "finite": final.finite,
    }


def triangular_update(rotated, g, steps):
    """y solving the leading steps x steps block of R y = g (zeros beyond)."""
    restart = rotated.shape[1]
    used = jnp.arange(restart) < steps
    square = jnp.where(used[:, None] & used[None, :], rotated, 0.0)
    square = square + jnp.diag(jnp.where(used, 0.0, 1.0))
    rhs = jnp.where(used, g[:restart], 0.0)
    return lax.linalg.triangular_solve(
        square, rhs[:, None], left_side=True, lower=False
    )[:, 0]


def record_history(history, start, cycle):
    """Write a cycle's residual estimates into the NaN-padded history at
    positions start, start + 1, ... (those past max_steps are dropped)."""
    width = cycle["g"].shape[0] - 1
    positions = start + jnp.arange(width)
    valid = jnp.arange(width) < cycle["steps"]
    return history.at[jnp.where(valid, positions, history.shape[0])].set(
        jnp.abs(cycle["g"][1:]), mode="drop"
    )


def close_cycle(operator, b, x, r_norm, steps, history, cycle, limit):
    """The end of every restart cycle (GMRES, GCRO-DR's plain and deflated
    cycles): the true residual of the updated x, the cycle's residual
    estimates in the history, and the cycle's outcome (nonfinite,
    stagnation, or so far successful). Returns
    ``(residual, residual_norm, history, result)``."""
    new_r = b - operator.mv(x)
    new_norm = norm(new_r)
    history = record_history(history, steps, cycle)
    finite = cycle["finite"] & jnp.isfinite(new_norm)
    return new_r, new_norm, history, cycle_result(finite, new_norm, r_norm, limit)
