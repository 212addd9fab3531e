"""GCRO-DR: GMRES with deflated restarting and a recycled subspace carried
from one system to the next."""

import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
from jax import lax

from ..._results import RESULTS
from .._solver import (
    AbstractLinearSolver,
    check_count,
    check_tolerances,
    count_field,
    final_result,
    iterate,
    make_stats,
    matmul,
    norm,
    tolerance,
    tolerance_field,
)
from ..preconditioners._preconditioner import identity
from ._arnoldi import arnoldi_cycle, close_cycle, triangular_update
from ._deflation_space import smallest_eigenspace
from ._recycle_state import (
    RecycleState,
    check_recycle_state,
    empty_recycle_state,
    recycle_size,
)


def _harmonic_ritz_basis(g, directions, krylov_basis, used, k, basis_products):
    """k harmonic Ritz directions from A W = V G, as a real orthonormal m x k P.

    Solves G^T G p = theta G^T V^T W p (Parks et al. 2006, eq. 2.11, in the
    flexible form where W = [U; Z] holds x-space directions) and keeps the k
    eigenvectors with the smallest |theta|: they approximate the eigenvectors
    of A nearest the origin, the ones that slow a Krylov method down. Unused
    columns (a cycle that converged early) get a huge theta so they are never
    chosen. Complex pairs contribute their real and imaginary parts, which
    span the same real 2-D subspace as the pair.
    """
    left = matmul(g.T, g)
    if basis_products is None:
        basis_products = matmul(krylov_basis, directions.T)
    right = matmul(g.T, basis_products)
    scale = jnp.max(jnp.abs(left)) + 1.0
    unused = jnp.diag(jnp.where(used, 0.0, 1.0))
    left = jnp.where(used[:, None] & used[None, :], left, 0.0) + 1e12 * scale * unused
    right = jnp.where(used[:, None] & used[None, :], right, 0.0) + unused
    # Which subspace is kept is a discrete choice: no derivative flows through
    # it (unrolled differentiation still reaches U through W).
    return smallest_eigenspace(lax.stop_gradient(left), lax.stop_gradient(right), k)


def _structured_products(krylov_basis, recycled, used):
    """V^ W^T without preconditioning, where W = [U~; V_0..V_{m-k-1}] and
    V^ = [C; V]: only the U~ columns need products (V is orthonormal and
    orthogonal to C), which saves (m+1)(m-k) of the (m+1)m inner products."""
    k = recycled.shape[0]
    m = used.shape[0]
    rows = jnp.arange(m + 1)[:, None]
    columns = jnp.arange(m)[None, :]
    krylov_part = jnp.where(
        (rows == columns) & (columns >= k) & used[None, :], 1.0, 0.0
    )
    krylov_part = krylov_part.astype(krylov_basis.dtype)
    if k == 0:
        return krylov_part
    return krylov_part.at[:, :k].set(matmul(krylov_basis, recycled.T))


def _recycle_from_cycle(g, directions, krylov_basis, used, k, basis_products=None):
    """(U, C) rows with A U = C, C orthonormal, from a cycle with A W = V G."""
    p = _harmonic_ritz_basis(g, directions, krylov_basis, used, k, basis_products)
    q, r = jnp.linalg.qr(matmul(g, p))
    c = matmul(q.T, krylov_basis)
    u = matmul(p.T, directions)
    # U R^{-1} in column form is R^{-T} U in rows.
    u = lax.linalg.triangular_solve(r, u, left_side=True, lower=False, transpose_a=True)
    return u, c


class GCRODR(AbstractLinearSolver):
    r"""GCRO-DR(m, k): restarted GMRES that keeps a k-dimensional subspace
    between cycles and between systems.

    With U (x-space) and C orthonormal such that $AU = C$, each cycle runs
    $m - k$ Arnoldi steps on $(I - CC^T)AM$ and minimises the residual over
    $\mathrm{span}(U) + \mathrm{span}(MV)$; then U is replaced by the k
    harmonic Ritz vectors of the cycle nearest the origin. ``Solution.state``
    exports U; passed to the next solve, it is rebuilt for the new matrix
    with k matvecs and a thin QR ($C = \mathrm{qr}(AU)$), so a sequence of
    related systems keeps the hard part of the spectrum deflated. U is held
    in x-space (flexible variant), so a preconditioner that changes between
    systems does not invalidate it.

    Stopping test: ``||b - A x||_2 <= max(rtol ||b||_2, atol)`` on the true
    residual, recomputed after every cycle; a cycle without progress gives
    ``RESULTS.stagnation``.

    Args:
        rtol: relative tolerance (required).
        atol: absolute tolerance (required).
        max_steps: limit on Arnoldi steps over all cycles.
        restart: m, the Krylov dimension per cycle including the recycled k.
        recycle: k < m.

    The harmonic Ritz step needs the invariant subspace of an m x m pencil
    for its k eigenvalues nearest the origin; it is computed on the device
    with QR, SVD and matmuls only (inverse-free spectral divide and conquer,
    ``_deflation_space.py``), so the solver runs, and exports, on every XLA
    backend.

    References:
        Parks, de Sturler, Mackey, Johnson & Maiti, "Recycling Krylov subspaces
        for sequences of linear systems", SIAM J. Sci. Comput. 28 (2006).
        Carvalho, Gratton, Lago & Vasseur, "A flexible generalized conjugate
        residual method with inner orthogonalization and deflated restarting",
        SIAM J. Matrix Anal. Appl. 32 (2011). Wang et al., "Accelerating data
        generation for neural operators via Krylov subspace recycling", ICLR 2024.
    """

    rtol: float = tolerance_field()
    atol: float = tolerance_field()
    max_steps: int = count_field()
    symmetric: ClassVar[bool] = False
    restart: int = count_field(default=40)
    recycle: int = count_field(default=10)

    def __check_init__(self):
        check_tolerances(self)
        check_count(self, "recycle")
        check_count(self, "restart", minimum=2)
        if not self.restart > self.recycle:
            raise ValueError(
                f"GCRODR: restart ({self.restart}) must exceed recycle ({self.recycle}): "
                "each cycle needs at least one new Krylov direction."
            )

    def bind(self, operator):
        """Itself: the method reads nothing of the operator but its matvec."""
        return self

    def init_state(self, operator, b):
        return empty_recycle_state(self.recycle, b)

    def compute(self, operator, b, x0, preconditioner, state, unrolled):
        check_recycle_state(state, self.recycle, b)
        n = b.shape[0]
        k = recycle_size(self.recycle, n)
        # A deflated cycle finds at most n - k new directions: a longer one
        # would only carry zero rows.
        m = min(self.restart, n + k)
        limit = tolerance(self, norm(b))
        history = jnp.full(self.max_steps, jnp.nan, b.dtype)
        x, r, u, c, matvecs, have_space = _restore_recycle_space(
            operator, state, x0, b - operator.mv(x0), k
        )
        max_cycles = -(-self.max_steps // (m - k)) + 2
        cycle_options = dict(
            operator=operator,
            preconditioner=preconditioner,
            b=b,
            limit=limit,
            restart=m,
            max_steps=self.max_steps,
            unrolled=unrolled,
        )

        def cond(carry):
            _, _, r_norm, _, _, steps, _, result, _, _ = carry
            return (
                (r_norm > limit)
                & (steps < self.max_steps)
                & (result == RESULTS.successful)
            )

        def body(carry):
            # Without a recycle space (none passed in, or the last plain cycle
            # was shorter than k) run a GMRES cycle, which seeds the space.
            return lax.cond(
                carry[-1],
                functools.partial(_deflated_cycle, **cycle_options),
                functools.partial(_plain_cycle, **cycle_options),
                carry,
            )

        init = (
            x,
            r,
            norm(r),
            u,
            c,
            jnp.asarray(0),
            matvecs,
            RESULTS.successful,
            history,
            have_space,
        )
        x, r, r_norm, u, c, steps, matvecs, result, history, have_space = iterate(
            cond, body, init, max_cycles, unrolled
        )
        result = final_result(result, r_norm, limit)
        stats = make_stats(steps, matvecs, r_norm, history)
        new_state = RecycleState(
            basis=jnp.where(have_space, u, state.basis),
            valid=have_space | state.valid,
        )
        return x, result, stats, new_state


def _restore_recycle_space(operator, state, x0, r, k):
    """The recycle space of ``state`` rebuilt for this operator, and x0 and
    its residual projected onto it: ``(x, r, U, C, matvecs, have_space)``.

    The matrix may have changed since U was computed: C = qr(A U) and
    U <- U R^{-1} restore A U = C. A U that has (numerically) lost rank
    cannot be inverted; then the solve starts from a plain cycle (zeros for
    U and C, ``have_space`` False) rather than carry inf/NaN into it."""
    dtype = r.dtype

    def rebuild(_):
        a_u = jax.vmap(operator.mv)(state.basis)
        q, rr = jnp.linalg.qr(a_u.T)
        return q.T, rr

    def no_space(_):
        return jnp.zeros_like(state.basis), jnp.zeros((k, k), dtype)

    c, rr = lax.cond(state.valid, rebuild, no_space, None)
    diagonal = jnp.abs(jnp.diagonal(rr))
    usable = state.valid & (
        jnp.min(diagonal) > 100 * k * jnp.finfo(dtype).eps * jnp.max(diagonal)
    )

    def from_state(_):
        u = lax.linalg.triangular_solve(
            rr, state.basis, left_side=True, lower=False, transpose_a=True
        )
        coefficients = matmul(c, r)
        x = x0 + matmul(coefficients, u)
        new_r = r - matmul(coefficients, c)
        # k matvecs for A U, one for the initial residual
        return x, new_r, u, c, jnp.asarray(k + 1), jnp.asarray(True)

    def start_fresh(_):
        # A U of an unusable space was computed all the same.
        spent = jnp.where(state.valid, k, 0)
        zeros = jnp.zeros_like(state.basis)
        return x0, r, zeros, zeros, 1 + spent, jnp.asarray(False)

    return lax.cond(usable, from_state, start_fresh, None)


def _deflated_cycle(
    carry, *, operator, preconditioner, b, limit, restart, max_steps, unrolled
):
    """One GCRO-DR cycle: m - k Arnoldi steps on (I - C C^T) A M, the
    residual minimised over span(U) + span(M V), and U, C replaced by the
    cycle's k harmonic Ritz vectors nearest the origin."""
    x, r, r_norm, u, c, steps, matvecs, _, history, _ = carry
    m, k = restart, u.shape[0]
    cycle = arnoldi_cycle(
        operator,
        preconditioner,
        r,
        r_norm,
        m - k,
        max_steps - steps,
        limit,
        c,
        unrolled,
    )
    u_norms = jnp.sqrt(jnp.sum(u * u, axis=1))
    scale = 1.0 / u_norms
    u_scaled = u * scale[:, None]
    # A [U~ Z] = [C V] G, G = [[D, B], [0, H]].
    g = jnp.zeros((m + 1, m), b.dtype)
    g = g.at[:k, :k].set(jnp.diag(scale))
    g = g.at[:k, k:].set(cycle["B"])
    g = g.at[k:, k:].set(cycle["H"])
    used = jnp.arange(m) < k + cycle["steps"]
    g = jnp.where(used[None, :], g, 0.0)
    rhs = jnp.zeros(m + 1, b.dtype).at[k].set(r_norm)
    y = _least_squares(g, rhs, used)
    directions = jnp.concatenate([u_scaled, cycle["Z"]])
    krylov_basis = jnp.concatenate([c, cycle["V"]])
    x = x + matmul(y, directions)
    products = (
        _structured_products(krylov_basis, u_scaled, used)
        if preconditioner is identity
        else None
    )
    new_u, new_c = _recycle_from_cycle(g, directions, krylov_basis, used, k, products)
    new_r, new_norm, history, result = close_cycle(
        operator, b, x, r_norm, steps, history, cycle, limit
    )
    return (
        x,
        new_r,
        new_norm,
        new_u,
        new_c,
        steps + cycle["steps"],
        matvecs + cycle["steps"] + 1,
        result,
        history,
        jnp.asarray(True),
    )


def _plain_cycle(
    carry, *, operator, preconditioner, b, limit, restart, max_steps, unrolled
):
    """One GMRES(m) cycle, whose harmonic Ritz vectors seed U and C when it
    ran at least k steps (a shorter cycle leaves the space as it was)."""
    x, r, r_norm, u, c, steps, matvecs, _, history, _ = carry
    m, k = restart, u.shape[0]
    cycle = arnoldi_cycle(
        operator,
        preconditioner,
        r,
        r_norm,
        m,
        max_steps - steps,
        limit,
        None,
        unrolled,
    )
    y = triangular_update(cycle["R"], cycle["g"], cycle["steps"])
    x = x + matmul(y, cycle["Z"])
    used = jnp.arange(m) < cycle["steps"]
    products = (
        _structured_products(cycle["V"], cycle["V"][:0], used)
        if preconditioner is identity
        else None
    )
    new_u, new_c = _recycle_from_cycle(
        cycle["H"], cycle["Z"], cycle["V"], used, k, products
    )
    enough = cycle["steps"] >= k
    new_r, new_norm, history, result = close_cycle(
        operator, b, x, r_norm, steps, history, cycle, limit
    )
    return (
        x,
        new_r,
        new_norm,
        jnp.where(enough, new_u, u),
        jnp.where(enough, new_c, c),
        steps + cycle["steps"],
        matvecs + cycle["steps"] + 1,
        result,
        history,
        enough,
    )


def _least_squares(g, rhs, used):
    """argmin_y ||rhs - G y|| over the used (leading) columns, zeros elsewhere.

    An unused column i gets a 1 in row i + 1, a row no used column touches
    and where rhs is 0, so QR stays nonsingular and y_i = 0."""
    m = g.shape[1]
    fill = (
        jnp.zeros_like(g)
        .at[jnp.arange(1, m + 1), jnp.arange(m)]
        .set(jnp.where(used, 0.0, 1.0))
    )
    q, r = jnp.linalg.qr(g + fill)
    y = lax.linalg.triangular_solve(
        r, matmul(q.T, rhs)[:, None], left_side=True, lower=False
    )[:, 0]
    return jnp.where(used, y, 0.0)


class GMRESDR(AbstractLinearSolver):
    r"""GMRES with deflated restarting, GMRES-DR(m, k): each restart keeps the
    k harmonic Ritz vectors of the previous cycle nearest the origin, so
    small eigenvalues stop slowing convergence after the first cycles.

    It is GCRO-DR on a single system (the same iteration, Parks et al. 2006,
    Sec. 2.3) with nothing carried to the next solve; use ``GCRODR`` to carry
    the subspace across a sequence.

    Stopping test: ``||b - A x||_2 <= max(rtol ||b||_2, atol)`` on the true
    residual.

    Args:
        rtol: relative tolerance (required).
        atol: absolute tolerance (required).
        max_steps: limit on Arnoldi steps.
        restart: m. recycle: k < m.

    References:
        Morgan, "GMRES with deflated restarting", SIAM J. Sci. Comput. 24 (2002).
    """

    rtol: float = tolerance_field()
    atol: float = tolerance_field()
    max_steps: int = count_field()
    symmetric: ClassVar[bool] = False
    restart: int = count_field(default=40)
    recycle: int = count_field(default=10)

    def __check_init__(self):
        self._deflated()

    def bind(self, operator):
        """Itself: the method reads nothing of the operator but its matvec."""
        return self

    def _deflated(self):
        return GCRODR(
            rtol=self.rtol,
            atol=self.atol,
            max_steps=self.max_steps,
            restart=self.restart,
            recycle=self.recycle,
        )

    def init_state(self, operator, b):
        return None

    def compute(self, operator, b, x0, preconditioner, state, unrolled):
        deflated = self._deflated()
        fresh = deflated.init_state(operator, b)
        x, result, stats, _ = deflated.compute(
            operator, b, x0, preconditioner, fresh, unrolled
        )
        return x, result, stats, None
