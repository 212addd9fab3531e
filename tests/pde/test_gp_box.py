import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciax import pde, solvers
from sciax.pde.gp import _gp_box

DOMAIN = ((0.0, 2 * np.pi), (0.0, np.pi))


def _exact(p):
    return jnp.sin(6 * p[0]) * jnp.cos(3 * p[1]) + 0.2 * p[1]


def _poisson(p, u, uxx, uyy):
    return uxx + uyy + 45 * jnp.sin(6 * p[0]) * jnp.cos(3 * p[1])


def _mild(p):
    return 0.5 * jnp.sin(6 * p[0]) * jnp.cos(3 * p[1]) + 0.1 * p[1]


def _allen_cahn(p, u, uxx, uyy):
    # amplitude below 0.6, so u_xx + u_yy + (3u^2 - 1) stays negative definite
    # and u = _mild is the only solution
    wave = _mild(p)
    laplacian = -45 * 0.5 * jnp.sin(6 * p[0]) * jnp.cos(3 * p[1])
    return uxx + uyy + u * (u**2 - 1) - (laplacian + wave * (wave**2 - 1))


def _relative_error(solution, exact=_exact):
    axes = [jnp.linspace(a, b, 201, dtype=solution.value.dtype) for a, b in DOMAIN]
    points = jnp.stack(jnp.meshgrid(*axes, indexing="ij"), axis=-1)
    truth = jax.vmap(jax.vmap(exact))(points)
    error = solution.on_grid(*axes) - truth
    return float(jnp.linalg.norm(error) / jnp.linalg.norm(truth))


SMALL = dict(rtol=0.0, max_outer_steps=2, kernel_steps=10)
# the spectrum's refit is tested with the high-frequency problems; elsewhere
# it only costs time
NO_SPECTRUM = dict(rtol=0.0, max_outer_steps=0, spectrum_steps=0)


def _high_frequency_poisson(wavenumber, points, check_points):
    """sin(kx) sin(ky) on [0, 2 pi]^2 with the starting kernel: the solution,
    its exact field and its relative L2 error on a check grid; asserts the
    solve succeeded."""

    def exact(p):
        return jnp.sin(wavenumber * p[0]) * jnp.sin(wavenumber * p[1])

    def poisson(p, u, uxx, uyy):
        return uxx + uyy + 2 * wavenumber**2 * exact(p)

    domain = ((0.0, 2 * np.pi), (0.0, 2 * np.pi))
    solution = pde.gp_solve_box(
        poisson, exact, domain, (points, points), rtol=0.0, max_outer_steps=0
    )
    assert solution.result == solvers.RESULTS.successful
    axes = [jnp.linspace(0.0, 2 * np.pi, check_points)] * 2
    grid = jnp.stack(jnp.meshgrid(*axes, indexing="ij"), axis=-1)
    truth = jax.vmap(jax.vmap(exact))(grid)
    error = jnp.linalg.norm(solution.on_grid(*axes) - truth) / jnp.linalg.norm(truth)
    return solution, exact, float(error)


def test_high_frequency_poisson_small():
    # sin(8x) sin(8y) at 48^2 (6 nodes per period; Q1 has 4) in the default
    # suite (measured 4.6e-5); the paper's Q1 at 400^2 is the slow test
    # below. The dense normal matrix has (48^2)^2 entries: at 80^2 its
    # Cholesky factor alone took most of this test's time.
    solution, _, error = _high_frequency_poisson(8, 48, 401)
    assert error < 1e-4
    # the reported spectrum, refitted to the solved values, on the frequency
    # (measured 3.7e-6 relative on both axes; the starting kernel's is 1.4e-3)
    for frequencies, weights in zip(
        solution.frequencies, solution.weights, strict=True
    ):
        live = frequencies[weights > 0]
        assert float(jnp.min(jnp.abs(2 * np.pi * live - 8))) < 8 * 1e-4
    assert int(solution.stats["num_matvecs"]) <= 3 * int(
        solution.stats["num_newton_steps"]
    )


@pytest.mark.slow
def test_high_frequency_poisson_q1():
    # GP-HM's Q1: u = sin(100x) sin(100y) on [0, 2 pi]^2, 400^2 nodes; the
    # issue's bar is 6.5e-5
    solution, exact, error = _high_frequency_poisson(100, 400, 1001)
    assert error < 2e-5
    # the constant-coefficient principal part is inverted exactly: one CG
    # step per Gauss-Newton step
    assert int(solution.stats["num_matvecs"]) <= 3 * int(
        solution.stats["num_newton_steps"]
    )
    point = jnp.array([[1.3, 0.4]])
    np.testing.assert_allclose(solution(point), jax.vmap(exact)(point), atol=1e-4)
    np.testing.assert_allclose(
        solution.derivative(point, (2, 0)) + solution.derivative(point, (0, 2)),
        -2e4 * jax.vmap(exact)(point),
        rtol=1e-3,
    )
    for frequencies, weights in zip(
        solution.frequencies, solution.weights, strict=True
    ):
        live = frequencies[weights > 0]
        assert float(jnp.min(jnp.abs(2 * np.pi * live - 100))) < 100 * 1e-4


@pytest.mark.parametrize(
    "equation, exact, newton_steps",
    [(_poisson, _exact, 2), (_allen_cahn, _mild, 4)],
)
def test_low_frequency_poisson_and_allen_cahn(equation, exact, newton_steps):
    # smooth content at 48 x 40 nodes with the starting kernel: the residual
    # is collocated unweighted at every node (a K^-1-weighted residual left
    # 1e-2 here); Poisson is solved by its first step (the second confirms),
    # Allen-Cahn by Gauss-Newton
    solution = pde.gp_solve_box(equation, exact, DOMAIN, (48, 40), **NO_SPECTRUM)
    assert solution.result == solvers.RESULTS.successful
    assert _relative_error(solution, exact) < 1e-4
    assert int(solution.stats["num_newton_steps"]) == newton_steps
    assert not bool(solution.stats["rank_truncated"])
    assert set(solution.stats) == {
        "num_steps",
        "num_accepted",
        "num_newton_steps",
        "num_matvecs",
        "residual_norm",
        "residual_history",
        "rank_truncated",
    }


def test_normal_matrix_blocks_match_dense_rows():
    # the operator and boundary Gram matrices, assembled from per-axis Gram
    # matrices, against the dense Kronecker rows of every node and of the
    # boundary nodes
    keys = jax.random.split(jax.random.key(0), 4)
    n1, n2, r1, r2 = 7, 5, 6, 4
    values = [
        jax.random.normal(keys[0], (n1, r1)),
        jax.random.normal(keys[1], (n2, r2)),
    ]
    slopes = [
        jax.random.normal(keys[2], (n1, r1)),
        jax.random.normal(keys[3], (n2, r2)),
    ]
    coefficients = [jnp.array(0.7), jnp.array(-2.0)]
    compact = _gp_box._operator_gram([values, slopes], coefficients)
    rows = 0.7 * jnp.kron(*values) - 2.0 * jnp.kron(*slopes)
    np.testing.assert_allclose(compact, rows.T @ rows, rtol=1e-12, atol=1e-11)
    nodes = jnp.kron(*values).reshape(n1, n2, r1 * r2)
    boundary = jax.vmap(_gp_box._gather_boundary, in_axes=2, out_axes=1)(nodes)
    np.testing.assert_allclose(
        _gp_box._boundary_gram(values), boundary.T @ boundary, rtol=1e-12, atol=1e-11
    )
    grid = jnp.arange(n1 * n2).reshape(n1, n2)
    back = _gp_box._scatter_boundary(_gp_box._gather_boundary(grid), (n1, n2))
    assert int(jnp.sum(back != 0)) == 2 * n1 + 2 * n2 - 4 - 1  # (0, 0) holds 0


def test_kronecker_application_matches_dense_kron():
    key1, key2, key3 = jax.random.split(jax.random.key(1), 3)
    a = jax.random.normal(key1, (4, 3))
    b = jax.random.normal(key2, (5, 6))
    x = jax.random.normal(key3, (3, 6))
    np.testing.assert_allclose(
        _gp_box.apply_along_axes([a, b], x).reshape(-1),
        jnp.kron(a, b) @ x.reshape(-1),
        rtol=1e-12,
    )


def test_float32_is_finite_and_close():
    solution = pde.gp_solve_box(
        _poisson,
        _exact,
        DOMAIN,
        (32, 28),
        dtype=jnp.float32,
        # a short spectrum fit: enough to show it stays finite in float32
        spectrum_steps=100,
        **SMALL,
    )
    assert solution.value.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(solution.value)))
    for frequencies, weights in zip(
        solution.frequencies, solution.weights, strict=True
    ):
        assert bool(jnp.all(jnp.isfinite(frequencies) & jnp.isfinite(weights)))


def test_a_kernel_that_cannot_represent_the_solution_is_reported():
    # a squared-exponential length of 0.3 (unit coordinates) is too smooth
    # for sin(6x) cos(3y) at 24^2: the solve converges to a wrong answer,
    # and the residual between the nodes, against a requested rtol, says so
    def solve(length, throw=False):
        kernel = pde.SquaredExponentialKernel(
            jnp.array(0.0), jnp.log(jnp.array(length))
        )
        return pde.gp_solve_box(
            _poisson,
            _exact,
            DOMAIN,
            (24, 24),
            kernels=(kernel, kernel),
            rtol=1e-2,
            throw=throw,
            max_outer_steps=0,
            spectrum_steps=0,
        )

    smooth = solve(0.3)
    assert smooth.result == solvers.RESULTS.residual_above_rtol
    assert float(smooth.stats["residual_norm"]) > 1e-2
    assert _relative_error(smooth) > 0.1
    fitting = solve(0.1)
    assert fitting.result == solvers.RESULTS.successful
    assert _relative_error(fitting) < 1e-2
    with pytest.raises(Exception, match="below rtol"):
        solve(0.3, throw=True)


def test_jit_and_vmap_over_boundary_data():
    kernel = pde.SquaredExponentialKernel(jnp.array(0.0), jnp.log(jnp.array(0.1)))

    def solve(shift):
        return pde.gp_solve_box(
            _poisson,
            lambda p: _exact(p) + shift,
            DOMAIN,
            (24, 20),
            kernels=(kernel, kernel),
            **NO_SPECTRUM,
        ).value

    shifts = jnp.array([0.0, 0.5])
    batched = jax.jit(jax.vmap(solve))(shifts)
    for index, shift in enumerate(shifts):
        np.testing.assert_allclose(batched[index], solve(shift), rtol=1e-8, atol=1e-8)


def test_bad_input():
    with pytest.raises(ValueError, match="rectangle"):
        pde.gp_solve_box(_poisson, _exact, ((0.0, 1.0),), (10, 10), rtol=0.0)
    with pytest.raises(ValueError, match="more than 3 dimensions"):
        pde.gp_solve_box(_poisson, _exact, ((0.0, 1.0),) * 4, (10,) * 4, rtol=0.0)
    with pytest.raises(ValueError, match="multi-indices with 3 orders"):
        pde.gp_solve_box(
            _poisson,
            _exact,
            ((0.0, 1.0),) * 3,
            (10,) * 3,
            rtol=0.0,
            derivatives=((2, 0),),
        )
    with pytest.raises(ValueError, match="b > a"):
        pde.gp_solve_box(_poisson, _exact, ((0.0, 1.0), (1.0, 0.0)), (10, 10), rtol=0.0)
    with pytest.raises(ValueError, match="2 ints >="):
        pde.gp_solve_box(_poisson, _exact, DOMAIN, (10,), rtol=0.0)
    with pytest.raises(ValueError, match="multi-indices with 2 orders"):
        pde.gp_solve_box(
            _poisson, _exact, DOMAIN, (10, 10), rtol=0.0, derivatives=((0, 0),)
        )
    with pytest.raises(ValueError, match="grid's shape"):
        pde.gp_solve_box(_poisson, jnp.zeros((3, 3)), DOMAIN, (10, 10), rtol=0.0)
    with pytest.raises(ValueError, match="gp_solve_box"):
        pde.gp_solve(lambda x, u, d: d, (0.0, 0.0), DOMAIN, 10, rtol=0.0)


def _exact_3d(p):
    return (
        jnp.sin(2 * p[0]) * jnp.cos(p[1]) * jnp.sin(1.5 * p[2])
        + 0.1 * p[0] * p[1] * p[2]
    )


def _laplacian_3d(p):
    return jnp.trace(jax.hessian(_exact_3d)(p))


def _poisson_3d(p, u, uxx, uyy, uzz):
    return uxx + uyy + uzz - _laplacian_3d(p)


def _allen_cahn_3d(p, u, uxx, uyy, uzz):
    wave = _exact_3d(p)
    return uxx + uyy + uzz + u * (u**2 - 1) - (_laplacian_3d(p) + wave * (wave**2 - 1))


@pytest.mark.parametrize(
    "equation", [_poisson_3d, pytest.param(_allen_cahn_3d, marks=pytest.mark.slow)]
)
def test_three_dimensional_box(equation):
    # 16^3 nodes, a squared-exponential kernel per axis: 4,096 whitened
    # unknowns, the dense normal matrix in the kernel's rank
    domain = ((0.0, np.pi), (0.0, 2.0), (0.0, 1.0))
    kernel = pde.SquaredExponentialKernel(jnp.array(0.0), jnp.log(jnp.array(0.3)))
    solution = pde.gp_solve_box(
        equation,
        _exact_3d,
        domain,
        (16, 16, 16),
        kernels=(kernel,) * 3,
        **NO_SPECTRUM,
    )
    assert solution.result == solvers.RESULTS.successful
    assert solution.value.shape == (16, 16, 16)
    axes = [jnp.linspace(a, b, 21) for a, b in domain]
    points = jnp.stack(jnp.meshgrid(*axes, indexing="ij"), axis=-1)
    truth = jax.vmap(_exact_3d)(points.reshape(-1, 3)).reshape(points.shape[:-1])
    error = jnp.linalg.norm(solution.on_grid(*axes) - truth) / jnp.linalg.norm(truth)
    assert float(error) < 1e-5
    point = jnp.array([[1.0, 0.5, 0.3]])
    np.testing.assert_allclose(solution(point), jax.vmap(_exact_3d)(point), atol=1e-5)
    second = sum(
        solution.derivative(point, orders)
        for orders in ((2, 0, 0), (0, 2, 0), (0, 0, 2))
    )
    np.testing.assert_allclose(second, jax.vmap(_laplacian_3d)(point), atol=1e-3)


def _box_error(n, kernel):
    solution = pde.gp_solve_box(
        _poisson, _exact, DOMAIN, (n, n), kernels=(kernel, kernel), **NO_SPECTRUM
    )
    return _relative_error(solution)


@pytest.mark.slow
def test_error_falls_as_the_grid_is_refined():
    # manufactured solution, fixed squared-exponential kernel: spectral
    # convergence until the rank cutoff
    # (measured: 0.23, 8.4e-4, 7.0e-5)
    kernel = pde.SquaredExponentialKernel(jnp.array(0.0), jnp.log(jnp.array(0.1)))
    errors = [_box_error(n, kernel) for n in (16, 24, 32)]
    assert errors[0] > 5 * errors[1] > 25 * errors[2]
    assert errors[2] < 2e-4


def test_inner_solve_matches_the_dense_least_squares_problem():
    # the Cholesky-preconditioned Gauss-Newton solve of _fit_values against
    # the normal equations of the same objective formed from dense
    # Kronecker rows, on a grid small enough for them
    n1, n2 = 9, 7
    kernel = pde.SquaredExponentialKernel(jnp.array(0.0), jnp.log(jnp.array(0.3)))
    grids = [jnp.linspace(a, b, n) for (a, b), n in zip(DOMAIN, (n1, n2), strict=True)]
    points = jnp.stack(jnp.meshgrid(*grids, indexing="ij"), axis=-1)
    boundary = jax.vmap(jax.vmap(_exact))(points)
    lengths = tuple(b - a for a, b in DOMAIN)
    precision = 1e6
    values, *_ = _gp_box._fit_values(
        _poisson,
        points,
        boundary,
        (kernel, kernel),
        ((2, 0), (0, 2)),
        lengths,
        precision,
        20,
        100,
        (n1, n2),
    )
    factors = [
        _gp_box._factor(kernel, n, [2], length, 1e-14, n)
        for n, length in zip((n1, n2), lengths, strict=True)
    ]
    values_rows = jnp.kron(factors[0].slopes[0], factors[1].slopes[0])
    operator_rows = jnp.kron(factors[0].slopes[2], factors[1].slopes[0]) + jnp.kron(
        factors[0].slopes[0], factors[1].slopes[2]
    )
    boundary_rows = values_rows[_gp_box._boundary_index((n1, n2))]
    source = -jax.vmap(_poisson)(points.reshape(-1, 2), *(jnp.zeros(n1 * n2),) * 3)
    count = jnp.sum(factors[0].keep, dtype=float) * jnp.sum(
        factors[1].keep, dtype=float
    )
    residual_weight = precision * count / jnp.sum(operator_rows**2)
    boundary_weight = precision * count / jnp.sum(boundary_rows**2)
    normal = (
        jnp.eye(n1 * n2)
        + residual_weight * operator_rows.T @ operator_rows
        + boundary_weight * boundary_rows.T @ boundary_rows
    )
    right = residual_weight * operator_rows.T @ source + boundary_weight * (
        boundary_rows.T @ _gp_box._gather_boundary(boundary)
    )
    dense = values_rows @ jnp.linalg.solve(normal, right)
    np.testing.assert_allclose(values.reshape(-1), dense, rtol=1e-7, atol=1e-7)
