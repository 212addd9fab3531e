"""Geometric multigrid: the Galerkin hierarchy, the V-cycle as an SPD
preconditioner, flat iteration counts under refinement, Neumann problems,
and the transformations."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciax import pde, solvers
from sciax.pde import gaussian_random_field
from sciax.solvers.preconditioners import _multigrid
from tests.helpers import diffusion_coefficient, pressure_problem


def darcy_coefficient(n, ndim=2, dtype=jnp.float64, seed=0):
    """The FNO benchmark's two-valued coefficient (12 / 3) on (n + 2)^ndim nodes."""
    field = gaussian_random_field(jax.random.PRNGKey(seed), (n + 2,) * ndim)
    return jnp.where(field >= 0, 12.0, 3.0).astype(dtype)


def dense_of(apply, size, dtype):
    return jax.vmap(apply)(jnp.eye(size, dtype=dtype)).T


def cg(rtol, max_steps=200):
    return solvers.CG(rtol=rtol, atol=0.0, max_steps=max_steps)


@pytest.mark.parametrize(
    "ndim, boundary", [(2, "dirichlet"), (2, "neumann"), (3, "dirichlet")]
)
def test_coarse_stencil_is_galerkin_product(ndim, boundary):
    n = 9 if ndim == 2 else 5
    coefficient = jnp.asarray(diffusion_coefficient(n, 3, ndim=ndim, contrast=1.5))
    operator = solvers.DiffusionOperator(coefficient, reaction=0.5, boundary=boundary)
    grid = operator.grid_shape
    coarse = tuple(s // 2 for s in grid)
    prolong = _multigrid._prolongation(grid, boundary == "neumann")
    size, coarse_size = operator.shape[0], int(np.prod(coarse))

    # one compiled program: op-by-op dispatch of the probing compiles every
    # primitive on its own
    @eqx.filter_jit
    def matrices(operator):
        P = dense_of(
            lambda e: prolong(e.reshape(coarse)).reshape(-1), coarse_size, jnp.float64
        )
        A = dense_of(operator.mv, size, jnp.float64)
        apply = lambda u: operator.mv(u.reshape(-1)).reshape(u.shape)  # noqa: E731
        stencil = _multigrid._probe_stencil(
            lambda e: jax.linear_transpose(prolong, e)(apply(prolong(e)))[0],
            coarse,
            jnp.float64,
        )
        galerkin = dense_of(
            lambda e: _multigrid._apply_stencil(stencil, e.reshape(coarse)).reshape(-1),
            coarse_size,
            jnp.float64,
        )
        return P, A, galerkin

    P, A, galerkin = matrices(operator)
    np.testing.assert_allclose(
        galerkin, P.T @ A @ P, rtol=1e-12, atol=1e-10 * jnp.max(A)
    )
    if boundary == "neumann":
        # constants are interpolated exactly, as the Neumann null space needs
        np.testing.assert_allclose(P @ jnp.ones(coarse_size), jnp.ones(size))


@eqx.filter_jit
def dense_vcycle(multigrid, operator):
    """The V-cycle as a dense matrix, hierarchy setup included, in one
    compiled program (op by op, every primitive compiles on its own)."""
    return dense_of(multigrid.build(operator), operator.shape[0], operator.dtype)


def test_vcycle_is_symmetric_positive_definite():
    coefficient = jnp.asarray(diffusion_coefficient(15, 1, contrast=2.0))
    operator = solvers.DiffusionOperator(coefficient)
    M = dense_vcycle(solvers.Multigrid(coarsest_size=10), operator)
    np.testing.assert_allclose(M, M.T, rtol=0, atol=1e-12 * jnp.max(jnp.abs(M)))
    assert jnp.min(jnp.linalg.eigvalsh(0.5 * (M + M.T))) > 0


# 31 has one level below the finest, 63 two (coarsest 15^2 <= 512); each
# grid compiles its own hierarchy (16 s for 63 on 2 cores), so the deeper
# ones wait for --runslow
@pytest.mark.parametrize(
    "n",
    [
        31,
        pytest.param(63, marks=pytest.mark.slow),
        pytest.param(127, marks=pytest.mark.slow),
        pytest.param(255, marks=pytest.mark.slow),
    ],
)
def test_iterations_flat_under_refinement(n):
    operator = solvers.DiffusionOperator(darcy_coefficient(n))
    b = jnp.ones(n * n)
    solution = solvers.solve(operator, b, cg(1e-8), preconditioner=solvers.Multigrid())
    residual = jnp.linalg.norm(b - operator.mv(solution.value)) / jnp.linalg.norm(b)
    assert residual <= 1e-8
    assert int(solution.stats["num_steps"]) <= 10


@pytest.mark.slow  # 50 s on 2 cores
def test_even_grid_and_three_dimensions():
    for coefficient in (darcy_coefficient(100), darcy_coefficient(30, ndim=3)):
        operator = solvers.DiffusionOperator(coefficient)
        b = jnp.ones(operator.shape[0])
        solution = solvers.solve(
            operator, b, cg(1e-8), preconditioner=solvers.Multigrid()
        )
        assert int(solution.stats["num_steps"]) <= 10


def test_singular_neumann_problem():
    # 6 PCG steps against 257 unpreconditioned at 31 (7 and 501 at 63)
    n = 31
    operator = solvers.DiffusionOperator(darcy_coefficient(n), boundary="neumann")
    np.testing.assert_allclose(operator.mv(jnp.ones(n * n)), 0.0, atol=1e-9)
    b = jax.random.normal(jax.random.PRNGKey(4), (n * n,))
    b = b - jnp.mean(b)  # the compatibility condition
    solution = solvers.solve(operator, b, cg(1e-8), preconditioner=solvers.Multigrid())
    residual = jnp.linalg.norm(b - operator.mv(solution.value)) / jnp.linalg.norm(b)
    assert residual <= 1e-8
    assert int(solution.stats["num_steps"]) <= 10
    unpreconditioned = solvers.solve(operator, b, cg(1e-8, 5000))
    assert int(unpreconditioned.stats["num_steps"]) > 20 * int(
        solution.stats["num_steps"]
    )


def test_neumann_operator_closes_only_the_boundary_faces():
    coefficient = jnp.asarray(diffusion_coefficient(6, 2))
    dirichlet = dense_of(solvers.DiffusionOperator(coefficient).mv, 36, jnp.float64)
    neumann = dense_of(
        solvers.DiffusionOperator(coefficient, boundary="neumann").mv, 36, jnp.float64
    )
    off = ~np.eye(36, dtype=bool)
    np.testing.assert_array_equal(np.asarray(neumann)[off], np.asarray(dirichlet)[off])
    np.testing.assert_allclose(neumann, neumann.T)
    interior = np.zeros((6, 6), bool)
    interior[1:-1, 1:-1] = True
    np.testing.assert_allclose(
        np.diag(neumann)[interior.ravel()], np.diag(dirichlet)[interior.ravel()]
    )
    assert np.all(
        np.diag(neumann)[~interior.ravel()] < np.diag(dirichlet)[~interior.ravel()]
    )


def test_float32():
    # two levels below the finest, as 127 had three; 4 steps at both
    operator = solvers.DiffusionOperator(darcy_coefficient(63, dtype=jnp.float32))
    b = jnp.ones(63 * 63, jnp.float32)
    solution = solvers.solve(operator, b, cg(1e-4), preconditioner=solvers.Multigrid())
    assert solution.value.dtype == jnp.float32
    assert int(solution.stats["num_steps"]) <= 6


def test_vmap_builds_one_hierarchy_per_coefficient_and_matches_a_loop():
    coefficients = jnp.stack([darcy_coefficient(31, seed=s) for s in range(3)])
    b = jnp.ones(31 * 31)

    def solve_one(coefficient):
        operator = solvers.DiffusionOperator(coefficient)
        # cg(1e-8) at 31^2, as test_iterations_flat_under_refinement[31]:
        # the loop reuses that compiled solve
        return solvers.solve(
            operator, b, cg(1e-8), preconditioner=solvers.Multigrid()
        ).value

    batched = jax.vmap(solve_one)(coefficients)
    for k in range(3):
        np.testing.assert_allclose(batched[k], solve_one(coefficients[k]), rtol=1e-9)


def test_gradient_through_a_preconditioned_solve():
    coefficient = jnp.asarray(diffusion_coefficient(15, 5))
    b = jnp.ones(15 * 15)

    def loss(scale):
        operator = solvers.DiffusionOperator(coefficient * scale)
        x = solvers.solve(
            operator, b, cg(1e-12), preconditioner=solvers.Multigrid(coarsest_size=16)
        ).value
        return jnp.sum(x**2)

    step = 1e-6
    value_and_grad = jax.jit(jax.value_and_grad(loss))
    at_one, gradient = value_and_grad(1.0)
    up_and_down = jax.jit(jax.vmap(loss))(jnp.asarray([1.0 + step, 1.0 - step]))
    finite_difference = (up_and_down[0] - up_and_down[1]) / (2 * step)
    np.testing.assert_allclose(gradient, finite_difference, rtol=1e-6)
    # x = A^{-1} b / scale exactly, so d/ds sum x^2 = -2 sum x^2 at s = 1
    np.testing.assert_allclose(gradient, -2 * at_one, rtol=1e-9)


def without_walls(operator):
    """The V-cycle as it was before it knew the pressure walls: zero beyond
    the grid's edges and interpolation onto the solid cells."""
    return solvers.Multigrid(
        boundary="dirichlet", exterior=jnp.zeros(operator.grid_shape, bool)
    )


# 45 s of CPU at (32, 64) on 2 cores: under --runslow with 256^2; the
# default suite checks flat iterations under refinement on Darcy
# coefficients (test_iterations_flat_under_refinement)
@pytest.mark.slow
@pytest.mark.parametrize("sizes", [(32, 64), (256,)])
def test_pressure_walls_keep_iterations_flat(sizes):
    """Neumann interpolation at the grid's walls and none onto solid cells
    (read off PressureOperator.boundary and .exterior): PCG needs 5-6
    iterations to 1e-6 at 32^2 (one coarse level) and 64^2 (two), 5-9 at
    256^2 (measured), where the V-cycle that treats walls as Dirichlet and
    solids as a mass term needs 14-18 at 32^2, 20-27 at 64^2, 20-54 in the
    benchmark, growing with the grid. The kinds differ only in the cells'
    values, so one test runs them all on each grid's two compiled solves."""
    for n in sizes:
        for kind in ("box", "obstacles", "free-surface"):
            operator, b = pressure_problem((n, n), kind, seed=7)
            solution = solvers.solve(
                operator, b, cg(1e-6), preconditioner=solvers.Multigrid()
            )
            residual = jnp.linalg.norm(
                b - operator.mv(solution.value)
            ) / jnp.linalg.norm(b)
            steps = int(solution.stats["num_steps"])
            assert float(residual) <= 1e-6, (n, kind)
            assert steps <= 10, (n, kind, steps)
            unaware = solvers.solve(
                operator, b, cg(1e-6), preconditioner=without_walls(operator)
            )
            unaware_steps = int(unaware.stats["num_steps"])
            assert unaware_steps > 2 * steps, (n, kind, steps, unaware_steps)


def test_vcycle_with_exterior_is_symmetric_positive_definite():
    operator, _ = pressure_problem((13, 12), "obstacles", seed=7)
    assert bool(jnp.any(operator.exterior))
    M = dense_vcycle(solvers.Multigrid(coarsest_size=4), operator)
    np.testing.assert_allclose(M, M.T, rtol=0, atol=1e-12 * jnp.max(jnp.abs(M)))
    assert jnp.min(jnp.linalg.eigvalsh(0.5 * (M + M.T))) > 0
    # nothing is interpolated onto the solid cells: their rows of M are
    # the Chebyshev smoother's alone, a polynomial in 1 (their D^-1 A)
    solid = operator.exterior.reshape(-1)
    off_block = M[solid][:, ~solid]
    np.testing.assert_allclose(off_block, 0, atol=1e-14)


def test_exterior_defaults_to_the_operators_and_batches():
    operator, b = pressure_problem((32, 32), "obstacles", seed=7, dtype="float32")
    explicit = solvers.Multigrid(boundary="neumann", exterior=operator.exterior)

    @eqx.filter_jit
    def both(operator, b):
        return solvers.Multigrid().build(operator)(b), explicit.build(operator)(b)

    np.testing.assert_allclose(*both(operator, b), rtol=1e-6)
    cells = jnp.stack(
        [pde.pressure_cells("obstacles", (32, 32), jax.random.key(s)) for s in (2, 3)]
    )

    @jax.jit
    @jax.vmap
    def batched(cell_types):
        op = pde.PressureOperator(cell_types, dtype="float32")
        rhs = op.fluid.reshape(-1)
        return solvers.solve(op, rhs, cg(1e-4), preconditioner=solvers.Multigrid())

    solutions = batched(cells)
    assert solutions.value.dtype == jnp.float32
    for k in range(2):
        op = pde.PressureOperator(cells[k], dtype="float32")
        rhs = op.fluid.reshape(-1)
        alone = solvers.solve(op, rhs, cg(1e-4), preconditioner=solvers.Multigrid())
        np.testing.assert_allclose(
            solutions.value[k], alone.value, rtol=1e-4, atol=1e-4
        )
        assert int(solutions.stats["num_steps"][k]) <= 8


def test_bad_configuration():
    with pytest.raises(ValueError, match="degree"):
        solvers.Multigrid(degree=0)
    with pytest.raises(ValueError, match="lower_fraction"):
        solvers.Multigrid(lower_fraction=1.5)
    with pytest.raises(ValueError, match="boundary"):
        solvers.Multigrid(boundary="periodic")
    with pytest.raises(ValueError, match="exterior"):
        operator, b = pressure_problem((8, 8), "box")
        solvers.solve(
            operator,
            b,
            cg(1e-6),
            preconditioner=solvers.Multigrid(exterior=jnp.zeros((8, 9), bool)),
        )
    matrix = jnp.eye(16)
    with pytest.raises(TypeError, match="grid_shape"):
        solvers.solve(
            matrix, jnp.ones(16), cg(1e-6), preconditioner=solvers.Multigrid()
        )
    with pytest.raises(ValueError, match="nodes"):
        solvers.solve(
            matrix,
            jnp.ones(16),
            cg(1e-6),
            preconditioner=solvers.Multigrid(grid_shape=(3, 3)),
        )
    # a matrix on a 4 x 4 grid is fine when the grid is named
    solution = solvers.solve(
        4 * jnp.eye(16),
        jnp.ones(16),
        cg(1e-10),
        preconditioner=solvers.Multigrid(grid_shape=(4, 4), coarsest_size=2),
    )
    np.testing.assert_allclose(solution.value, 0.25)


@pytest.mark.gpu
@pytest.mark.parametrize(
    "dtype, rtol, sizes",
    # float32's attainable true residual is about eps * |A||x| / |b|, which
    # grows like 1/h^2: near 1e-3 at 421^2, so it is tested there only
    [(jnp.float64, 1e-6, (421, 1025)), (jnp.float32, 5e-3, (421,))],
)
def test_flat_iterations_on_gpu_at_421_and_1025(dtype, rtol, sizes):
    for nodes in sizes:
        operator = solvers.DiffusionOperator(darcy_coefficient(nodes - 2, dtype=dtype))
        b = jnp.ones(operator.shape[0], dtype)
        solution = solvers.solve(
            operator, b, cg(rtol), preconditioner=solvers.Multigrid()
        )
        assert solution.value.devices().pop().platform == "gpu"
        residual = jnp.linalg.norm(b - operator.mv(solution.value)) / jnp.linalg.norm(b)
        assert residual <= rtol
        assert int(solution.stats["num_steps"]) <= 12


@pytest.mark.gpu
def test_recycling_sequence_on_gpu():
    from tests.solvers.test_sequence_order import _build, _darcy_sequence

    log_a, rhs = _darcy_sequence(n=32, count=6, seed=1)
    solver = solvers.GCRODR(rtol=1e-8, atol=0.0, max_steps=3000, restart=30, recycle=8)
    out = solvers.solve_sequence(_build, log_a, rhs, solver, order="greedy", chunks=2)
    assert bool(jnp.all(out.result == solvers.RESULTS.successful))
    fresh = solvers.solve(_build(log_a[0]), rhs[0], solver)
    assert (
        float(out.stats["num_matvecs"].mean()) < float(fresh.stats["num_matvecs"]) * 1.2
    )
