import jax.numpy as jnp
import numpy as np
import pytest

import solvers
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
