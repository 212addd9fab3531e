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

import jax.numpy as jnp
from jax import lax

from ._solver import iterate

_HIGHEST = lax.Precision.HIGHEST


def _apply_rotations(column, cosines, sines, count):
    def rotate(i, col):
        a, b = col[i], col[i + 1]
        c, s = cosines[i], sines[i]
        active = i < count
        col = col.at[i].set(jnp.where(active, c * a + s * b, a))
        return col.at[i + 1].set(jnp.where(active, -s * a + c * b, b))

    return lax.fori_loop(0, cosines.shape[0], rotate, column)


def arnoldi_cycle(
    operator, preconditioner, r, r_norm, restart, step_budget, limit, recycled, unrolled
):
    """Run up to ``restart`` Arnoldi steps from residual r.

    Args:
        recycled: (k, n) orthonormal C to deflate against, or None.
        step_budget: traced int, steps still allowed by max_steps.
        limit: the absolute residual tolerance.

    Returns:
        dict with V (restart+1, n), Z (restart, n), H (restart+1, restart),
        B (k, restart) or None, steps (int), estimate (residual norm estimate),
        finite (bool), and the rotated system (R, g) for GMRES's update.
    """
    n = r.shape[0]
    dtype = r.dtype
    basis = jnp.zeros((restart + 1, n), dtype).at[0].set(r / r_norm)
    directions = jnp.zeros((restart, n), dtype)
    hessenberg = jnp.zeros((restart + 1, restart), dtype)
    rotated = jnp.zeros((restart + 1, restart), dtype)
    cosines = jnp.zeros(restart, dtype)
    sines = jnp.zeros(restart, dtype)
    g = jnp.zeros(restart + 1, dtype).at[0].set(r_norm)
    k = 0 if recycled is None else recycled.shape[0]
    coupling = jnp.zeros((k, restart), dtype)
    steps_cap = jnp.minimum(restart, step_budget)
    init = (
        basis,
        directions,
        hessenberg,
        rotated,
        cosines,
        sines,
        g,
        coupling,
        jnp.asarray(0),
        jnp.asarray(True),
        r / r_norm,
    )

    def cond(carry):
        *_, g, _, j, finite, _ = carry
        return (j < steps_cap) & (jnp.abs(g[j]) > limit) & finite

    def body(carry):
        (
            basis,
            directions,
            hessenberg,
            rotated,
            cosines,
            sines,
            g,
            coupling,
            j,
            _,
            current,
        ) = carry
        # The newest basis vector rides in the carry: read back out of the
        # basis (which the step also updates in place), it made XLA copy the
        # whole basis twice per step (CPU; GCRO-DR at 128^2).
        z = preconditioner(current)
        w = operator.mv(z)
        if recycled is not None:
            c_coef = jnp.matmul(recycled, w, precision=_HIGHEST)
            w = w - jnp.matmul(c_coef, recycled, precision=_HIGHEST)
            coupling = coupling.at[:, j].set(c_coef)
        h = jnp.zeros(restart + 1, dtype)
        for _ in range(2):
            coef = jnp.matmul(basis, w, precision=_HIGHEST)
            coef = jnp.where(jnp.arange(restart + 1) <= j, coef, 0.0)
            w = w - jnp.matmul(coef, basis, precision=_HIGHEST)
            h = h + coef
        w_norm = jnp.sqrt(jnp.vdot(w, w, precision=_HIGHEST))
        h = h.at[j + 1].set(w_norm)
        # A happy breakdown (w = 0) leaves a zero row: the space is invariant
        # and the least-squares solution is exact.
        current = jnp.where(w_norm > 0, w / w_norm, 0.0)
        basis = basis.at[j + 1].set(current)
        directions = directions.at[j].set(z)
        hessenberg = hessenberg.at[:, j].set(h)
        h = _apply_rotations(h, cosines, sines, j)
        a, b = h[j], h[j + 1]
        radius = jnp.hypot(a, b)
        c = jnp.where(radius > 0, a / radius, 1.0)
        s = jnp.where(radius > 0, b / radius, 0.0)
        h = h.at[j].set(radius).at[j + 1].set(0.0)
        rotated = rotated.at[:, j].set(h)
        cosines = cosines.at[j].set(c)
        sines = sines.at[j].set(s)
        g = g.at[j + 1].set(-s * g[j]).at[j].set(c * g[j])
        finite = jnp.isfinite(w_norm) & jnp.isfinite(g[j + 1])
        return (
            basis,
            directions,
            hessenberg,
            rotated,
            cosines,
            sines,
            g,
            coupling,
            j + 1,
            finite,
            current,
        )

    basis, directions, hessenberg, rotated, _, _, g, coupling, steps, finite, _ = (
        iterate(cond, body, init, restart, unrolled)
    )
    return {
        "V": basis,
        "Z": directions,
        "H": hessenberg,
        "B": coupling if recycled is not None else None,
        "R": rotated[:restart],
        "g": g,
        "steps": steps,
        "estimate": jnp.abs(g[steps]),
        "finite": finite,
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
