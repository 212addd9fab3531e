import jax.numpy as jnp
import numpy as np
import pytest

from sciax import solvers
from tests.helpers import diffusion_coefficient


def _sequence(n, count, seed):
    base = np.log(diffusion_coefficient(n, seed))
    rng = np.random.default_rng(seed + 1)
    for _ in range(count):
        log_a = base + 0.1 * np.log(
            diffusion_coefficient(n, int(rng.integers(1 << 30)))
        )
        yield (
            solvers.DiffusionOperator(jnp.asarray(np.exp(log_a))),
            jnp.asarray(rng.normal(size=n * n)),
        )


def test_recycled_space_cuts_matvecs_on_a_sequence():
    solver = solvers.GCRODR(
        rtol=1e-10, atol=0.0, max_steps=4000, restart=30, recycle=10
    )
    plain = solvers.GMRES(rtol=1e-10, atol=0.0, max_steps=4000, restart=30)
    state = None
    recycled, fresh, gmres = [], [], []
    for operator, b in _sequence(24, 4, seed=0):
        solution = solvers.solve(operator, b, solver, state=state)
        state = solution.state
        recycled.append(int(solution.stats["num_matvecs"]))
        fresh.append(int(solvers.solve(operator, b, solver).stats["num_matvecs"]))
        gmres.append(int(solvers.solve(operator, b, plain).stats["num_matvecs"]))
        residual = jnp.linalg.norm(b - operator.mv(solution.value)) / jnp.linalg.norm(b)
        assert residual <= 1e-10
    assert bool(state.valid) and state.basis.shape == (10, 24 * 24)
    # after the first system, the carried space pays for its k extra matvecs
    assert np.mean(recycled[1:]) < 0.85 * np.mean(fresh[1:]), (recycled, fresh)
    assert np.mean(fresh) < 0.8 * np.mean(gmres), (fresh, gmres)


def test_state_of_wrong_shape_is_refused():
    operator, b = next(_sequence(6, 1, seed=3))
    solver = solvers.GCRODR(rtol=1e-8, atol=0.0, max_steps=100, restart=10, recycle=3)
    state = solvers.RecycleState(basis=jnp.zeros((4, 36)), valid=jnp.asarray(True))
    with pytest.raises(ValueError, match="state.basis"):
        solvers.solve(operator, b, solver, state=state)


def test_greedy_order_is_the_nearest_neighbour_chain():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(15, 4))
    order = np.asarray(solvers.greedy_order(jnp.asarray(features)))
    expected, visited = [0], {0}
    for _ in range(14):
        distances = np.linalg.norm(features - features[expected[-1]], axis=1)
        distances[list(visited)] = np.inf
        expected.append(int(np.argmin(distances)))
        visited.add(expected[-1])
    assert order.tolist() == expected


def test_solve_sequence_returns_solutions_in_the_callers_order():
    n, count = 8, 6
    rng = np.random.default_rng(1)
    families = [np.log(diffusion_coefficient(n, seed)) for seed in (0, 1)]
    log_a = np.stack(
        [families[i % 2] + 0.05 * rng.normal(size=(n + 2, n + 2)) for i in range(count)]
    )
    rhs = jnp.asarray(rng.normal(size=(count, n * n)))
    solver = solvers.GCRODR(rtol=1e-10, atol=0.0, max_steps=2000, restart=20, recycle=4)

    def build(parameters):
        return solvers.DiffusionOperator(jnp.exp(parameters))

    out = solvers.solve_sequence(
        build, jnp.asarray(log_a), rhs, solver, order="greedy", warm_start=True
    )
    # from system 0 the chain visits the rest of its family before the other
    assert (np.asarray(out.order)[:3] % 2 == 0).all(), out.order
    assert set(np.asarray(out.order).tolist()) == set(range(count))
    assert bool(jnp.all(out.result == solvers.RESULTS.successful))
    for i in range(count):
        operator = build(jnp.asarray(log_a[i]))
        residual = jnp.linalg.norm(
            rhs[i] - operator.mv(out.value[i])
        ) / jnp.linalg.norm(rhs[i])
        assert residual <= 1e-10
    assert out.stats["num_matvecs"].shape == (count,)
    with pytest.raises(ValueError, match="order"):
        solvers.solve_sequence(build, jnp.asarray(log_a), rhs, solver, order="random")


def test_a_degenerate_recycle_space_falls_back_to_a_fresh_start():
    operator, b = next(_sequence(8, 1, seed=5))
    solver = solvers.GCRODR(rtol=1e-10, atol=0.0, max_steps=2000, restart=20, recycle=4)
    row = jnp.asarray(np.random.default_rng(0).normal(size=64))
    repeated = solvers.RecycleState(basis=jnp.stack([row] * 4), valid=jnp.asarray(True))
    solution = solvers.solve(operator, b, solver, state=repeated)
    assert solution.result == solvers.RESULTS.successful
    assert bool(jnp.all(jnp.isfinite(solution.state.basis)))


def test_solve_sequence_starts_each_system_from_its_own_x0():
    n, count = 8, 4
    log_a = jnp.stack(
        [jnp.log(diffusion_coefficient(n, seed)) for seed in range(count)]
    )
    rhs = jnp.ones((count, n * n))
    solver = solvers.CG(rtol=1e-10, atol=0.0, max_steps=500)

    def build(parameters):
        return solvers.DiffusionOperator(jnp.exp(parameters))

    cold = solvers.solve_sequence(build, log_a, rhs, solver, order="greedy")
    # the solutions themselves as guesses, in the caller's order: no steps
    warm = solvers.solve_sequence(
        build, log_a, rhs, solver, order="greedy", x0=cold.value
    )
    np.testing.assert_array_equal(warm.stats["num_steps"], 0)
    # a guess for one system only changes that system's count
    guesses = jnp.zeros_like(rhs).at[2].set(cold.value[2])
    partial = solvers.solve_sequence(
        build, log_a, rhs, solver, x0=guesses, order="given"
    )
    steps = np.asarray(partial.stats["num_steps"])
    assert steps[2] == 0 and (np.delete(steps, 2) > 0).all()
    with pytest.raises(ValueError, match="not both"):
        solvers.solve_sequence(build, log_a, rhs, solver, x0=guesses, warm_start=True)
    with pytest.raises(ValueError, match="shape of rhs"):
        solvers.solve_sequence(build, log_a, rhs, solver, x0=guesses[:2])
