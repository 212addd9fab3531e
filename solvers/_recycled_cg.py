"""Deflated (recycled) conjugate gradients for sequences of SPD systems."""

import jax
import jax.numpy as jnp
from jax import lax

from ._gcrodr import RecycleState
from ._results import RESULTS
from ._solver import (
    AbstractLinearSolver,
    check_tolerances,
    dot,
    iterate,
    make_stats,
    norm,
    tolerance,
)

_HIGHEST = lax.Precision.HIGHEST


def _matmul(a, b):
    return jnp.matmul(a, b, precision=_HIGHEST)


def _ritz_space(vectors, images, k):
    """The k Ritz vectors of A with the smallest Ritz values in the span of
    the rows of ``vectors`` (``images`` = their products with A). Rows that
    are zero or dependent are dropped through the eigen-decomposition of the
    Gram matrix, so a short solve (fewer directions than collected) is fine."""
    gram = _matmul(vectors, vectors.T)
    projected = _matmul(vectors, images.T)
    projected = 0.5 * (projected + projected.T)
    sigma, basis = jnp.linalg.eigh(gram)
    keep = sigma > jnp.finfo(gram.dtype).eps * jnp.max(sigma) * gram.shape[0]
    whiten = (
        basis
        * jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, sigma, 1.0)), 0.0)[None, :]
    )
    reduced = _matmul(whiten.T, _matmul(projected, whiten))
    huge = jnp.max(jnp.abs(reduced)) * 1e6 + 1.0
    reduced = reduced + jnp.diag(jnp.where(keep, 0.0, huge))
    _, ritz = jnp.linalg.eigh(reduced)
    combination = _matmul(whiten, ritz[:, :k])
    return _matmul(combination.T, vectors), jnp.sum(keep) >= k


class RecycledCG(AbstractLinearSolver):
    r"""Deflated CG: CG on the A-orthogonal complement of a recycled space W.

    With $E = W A W^T$ (k x k), the start is corrected by
    $x_0 \leftarrow x_0 + W^T E^{-1} W r_0$ and every search direction is made
    A-orthogonal to W, $p \leftarrow z + \beta p - W^T E^{-1} (AW) z$, so the
    k eigen-directions W approximates no longer slow the iteration; CG's
    short recurrence is kept (one matvec per step; $AW$ is computed once per
    system with k matvecs). The first ``collect`` search directions of a
    solve and the current W give, by Rayleigh-Ritz, the k Ritz vectors with
    the smallest Ritz values: the recycle space for the next system
    (``Solution.state``). A and M must be SPD.

    Stopping test: ``||b - A x||_2 <= max(rtol ||b||_2, atol)`` on the true
    residual (checked when the recursive one proposes convergence).

    Args:
        rtol, atol: tolerances (required).
        max_steps: iteration limit.
        recycle: k, the dimension of the recycled space.
        collect: how many search directions feed the next space.

    References:
        Saad, Yeung, Erhel & Guyomarc'h, "A deflated version of the conjugate
        gradient algorithm", SIAM J. Sci. Comput. 21 (2000); Parks et al. 2006
        (recycling across a sequence).
    """

    rtol: float
    atol: float
    max_steps: int
    recycle: int = 10
    collect: int = 30

    def __check_init__(self):
        check_tolerances(self)
        for name in ("recycle", "collect"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(
                    f"RecycledCG: {name} must be a positive int, got {value}."
                )

    @property
    def symmetric(self):
        return True

    def init_state(self, operator, b):
        return RecycleState(
            basis=jnp.zeros((self.recycle, b.shape[0]), b.dtype),
            valid=jnp.asarray(False),
        )

    def compute(self, operator, b, x0, preconditioner, state, unrolled):
        k, s = self.recycle, self.collect
        if state.basis.shape != (k, b.shape[0]) or state.basis.dtype != b.dtype:
            raise ValueError(
                f"state.basis must have shape {(k, b.shape[0])} and dtype {b.dtype}; "
                f"got {state.basis.shape}, {state.basis.dtype}."
            )
        dtype = b.dtype
        limit = tolerance(self, norm(b))
        w = jnp.where(state.valid, state.basis, 0.0)
        a_w = lax.cond(
            state.valid, lambda: jax.vmap(operator.mv)(w), lambda: jnp.zeros_like(w)
        )
        energy = _matmul(w, a_w.T)
        energy = 0.5 * (energy + energy.T)
        # Without a valid space W = 0: E = I keeps the projections exact zeros.
        energy = jnp.where(state.valid, energy, jnp.eye(k, dtype=dtype))
        factor = jax.scipy.linalg.cho_factor(energy)

        def deflate(vector):
            """W^T E^{-1} (AW) vector: the A-orthogonal projection onto W."""
            return _matmul(jax.scipy.linalg.cho_solve(factor, _matmul(a_w, vector)), w)

        r = b - operator.mv(x0)
        correction = _matmul(jax.scipy.linalg.cho_solve(factor, _matmul(w, r)), w)
        x = x0 + correction
        r = r - _matmul(jax.scipy.linalg.cho_solve(factor, _matmul(w, r)), a_w)
        z = preconditioner(r)
        p = z - deflate(z)
        history = jnp.full(self.max_steps, jnp.nan, dtype)
        directions = jnp.zeros((s, b.shape[0]), dtype)
        images = jnp.zeros((s, b.shape[0]), dtype)
        # the initial residual, and A W when there is a space
        matvecs = jnp.where(state.valid, 1 + k, 1)
        init = (
            x,
            r,
            z,
            p,
            dot(r, z),
            jnp.asarray(0),
            matvecs,
            norm(r) <= limit,
            RESULTS.successful,
            history,
            directions,
            images,
        )

        def cond(carry):
            step, done = carry[5], carry[7]
            return (~done) & (step < self.max_steps)

        def body(carry):
            x, r, z, p, rz, step, matvecs, _, _, history, directions, images = carry
            ap = operator.mv(p)
            curvature = dot(p, ap)
            alpha = rz / curvature
            directions = directions.at[step].set(p, mode="drop")
            images = images.at[step].set(ap, mode="drop")
            x = x + alpha * p
            r = r - alpha * ap
            r_norm = norm(r)
            history = history.at[step].set(r_norm)
            proposed = r_norm <= limit
            true_r = jnp.where(proposed, b - operator.mv(x), r)
            matvecs = matvecs + 1 + proposed.astype(matvecs.dtype)
            converged = proposed & (norm(true_r) <= limit)
            r = true_r
            z = preconditioner(r)
            rz_new = dot(r, z)
            beta = jnp.where(proposed, 0.0, rz_new / rz).astype(dtype)
            p = z + beta * p - deflate(z)
            broke = ~(curvature > 0)
            finite = jnp.isfinite(r_norm) & jnp.isfinite(alpha)
            result = RESULTS.where(
                ~finite,
                RESULTS.nonfinite,
                RESULTS.where(broke, RESULTS.breakdown, RESULTS.successful),
            )
            done = converged | broke | ~finite
            return (
                x,
                r,
                z,
                p,
                rz_new,
                step + 1,
                matvecs,
                done,
                result,
                history,
                directions,
                images,
            )

        final = iterate(cond, body, init, self.max_steps, unrolled)
        x, r, _, _, _, steps, matvecs, done, result, history, directions, images = final
        result = RESULTS.where(
            done | (norm(r) <= limit), result, RESULTS.max_steps_reached
        )
        candidates = jnp.concatenate([w, directions])
        candidate_images = jnp.concatenate([a_w, images])
        new_basis, enough = _ritz_space(
            lax.stop_gradient(candidates), lax.stop_gradient(candidate_images), k
        )
        new_state = RecycleState(
            basis=jnp.where(enough, new_basis, state.basis),
            valid=enough | state.valid,
        )
        return x, result, make_stats(steps, matvecs, norm(r), history), new_state
