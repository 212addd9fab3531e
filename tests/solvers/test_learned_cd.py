"""The learned conjugate-direction solver: A-orthogonality, the fallback
(which with a useless network must reproduce CG), convergence with the
shipped 2-D weights, dtypes, jit, vmap, gradients, save/load, training
resumption, bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pde
import solvers
from solvers._learned_cd import a_orthogonalise


def pressure_problem(shape=(32, 32), kind="obstacles", seed=1, dtype="float64"):
    cells = pde.pressure_cells(kind, shape, jax.random.key(seed))
    operator = pde.PressureOperator(cells, dtype_name=dtype)
    b = jax.random.normal(jax.random.key(seed + 1), (operator.shape[0],), dtype)
    return operator, b * operator.fluid.reshape(-1)


def nan_network(ndim=2):
    network = solvers.ConjugateDirectionNetwork(ndim, key=jax.random.key(0))
    return jax.tree_util.tree_map(
        lambda x: jnp.full_like(x, jnp.nan) if eqx.is_inexact_array(x) else x, network
    )


def test_a_orthogonalise():
    operator, _ = pressure_problem((8, 8))
    keys = jax.random.split(jax.random.key(3), 3)
    kept = jnp.stack(
        [jax.random.normal(k, (64,)) * operator.fluid.reshape(-1) for k in keys[:2]]
    )
    # make the kept pair A-orthogonal, as the solver keeps them
    kept = kept.at[1].set(
        a_orthogonalise(
            kept[1],
            kept[:1],
            operator.mv(kept[0])[None],
            jnp.vdot(kept[0], operator.mv(kept[0]))[None],
        )
    )
    images = jax.vmap(operator.mv)(kept)
    curvatures = jnp.einsum("ij,ij->i", kept, images)
    d = a_orthogonalise(jax.random.normal(keys[2], (64,)), kept, images, curvatures)
    np.testing.assert_allclose(images @ d, 0.0, atol=1e-12)


def test_useless_network_falls_back_to_conjugate_gradients():
    """Every direction of a nan network is replaced by the residual; made
    A-orthogonal to the previous one that is exactly CG's direction, so the
    iteration must take CG's number of steps."""
    operator, b = pressure_problem()
    ours = solvers.solve(
        operator,
        b,
        solvers.LearnedConjugateDirections(
            nan_network(), rtol=1e-8, atol=0.0, max_steps=500
        ),
    )
    cg = solvers.solve(operator, b, solvers.CG(rtol=1e-8, atol=0.0, max_steps=500))
    steps = int(ours.stats["num_steps"])
    assert int(ours.stats["num_fallbacks"]) == steps
    assert abs(steps - int(cg.stats["num_steps"])) <= 2
    np.testing.assert_allclose(ours.value, cg.value, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["box", "obstacles", "free-surface"])
def test_shipped_2d_weights_beat_cg(kind):
    """Convergence to the tolerance with the network's own directions (not
    fallbacks), in fewer iterations than CG (benchmarks/RESULTS.md: 25-44
    against 231-338 at 64^2)."""
    operator, b = pressure_problem((48, 48), kind, seed=11)
    ours = solvers.solve(
        operator,
        b,
        solvers.LearnedConjugateDirections(
            solvers.pretrained_network(2), rtol=1e-6, atol=0.0, max_steps=1000
        ),
    )
    cg = solvers.solve(operator, b, solvers.CG(rtol=1e-6, atol=0.0, max_steps=1000))
    residual = jnp.linalg.norm(b - operator.mv(ours.value)) / jnp.linalg.norm(b)
    assert float(residual) <= 1e-6
    assert int(ours.stats["num_fallbacks"]) < int(ours.stats["num_steps"]) // 10
    assert int(ours.stats["num_steps"]) < 3 * int(cg.stats["num_steps"])
    assert int(ours.stats["num_steps"]) < int(cg.stats["num_steps"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtypes_and_float64_accuracy(dtype):
    if dtype == "float64" and not jax.config.jax_enable_x64:
        pytest.skip("float64 disabled")
    operator, b = pressure_problem((24, 24), dtype=dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-10
    solution = solvers.solve(
        operator,
        b,
        solvers.LearnedConjugateDirections(
            solvers.pretrained_network(2), rtol=rtol, atol=0.0, max_steps=400
        ),
    )
    assert solution.value.dtype == jnp.dtype(dtype)
    residual = jnp.linalg.norm(b - operator.mv(solution.value)) / jnp.linalg.norm(b)
    assert float(residual) <= rtol


def test_jit_vmap_and_gradient():
    operator, b = pressure_problem((16, 16))
    solver = solvers.LearnedConjugateDirections(
        solvers.pretrained_network(2), rtol=1e-10, atol=0.0, max_steps=300
    )
    rhs = jnp.stack([b, 2 * b, jnp.roll(b, 7) * operator.fluid.reshape(-1)])
    batched = jax.jit(jax.vmap(lambda r: solvers.solve(operator, r, solver).value))(rhs)
    for r, x in zip(rhs, batched, strict=True):
        np.testing.assert_allclose(operator.mv(x), r, atol=1e-8)
    # d(w^T x)/db = A^-T w, by the implicit adjoint (another solve)
    weights = operator.fluid.reshape(-1)
    gradient = jax.grad(
        lambda r: jnp.vdot(weights, solvers.solve(operator, r, solver).value)
    )(b)
    np.testing.assert_allclose(operator.mv(gradient), weights, atol=1e-8)


def test_save_load_round_trip(tmp_path):
    network = solvers.ConjugateDirectionNetwork(
        3, cell_types=True, key=jax.random.key(5)
    )
    path = solvers.save_network(tmp_path / "net.eqx", network)
    loaded = solvers.load_network(path)
    assert (loaded.ndim, loaded.channels, loaded.cell_types) == (3, 16, True)
    residual = jax.random.normal(jax.random.key(1), (6, 7, 5))
    cells = pde.pressure_cells("box", (6, 7, 5))
    np.testing.assert_array_equal(network(residual, cells), loaded(residual, cells))


@pytest.mark.parametrize(
    "loss_steps, num_steps, factor",
    [(0, 40, 0.8), (4, 60, 0.97)],
    ids=["one-step loss", "energy loss"],
)
def test_training_reduces_the_loss_and_resumes(tmp_path, loss_steps, num_steps, factor):
    def sample(key):
        return pde.PressureOperator(
            pde.pressure_cells("obstacles", (16, 16), key), dtype_name="float32"
        )

    def train(steps):
        network = solvers.ConjugateDirectionNetwork(2, key=jax.random.key(0))
        return solvers.train_direction_network(
            network,
            sample,
            num_steps=steps,
            key=jax.random.key(1),
            batch_size=4,
            num_ritz=24,
            loss_steps=loss_steps,
            directory=tmp_path,
            checkpoint_every=20,
            progress=False,
        )

    _, losses = train(num_steps)
    # the energy loss starts near 1 (a random direction removes little
    # energy) and falls more slowly at first
    assert np.mean(losses[-10:]) < factor * np.mean(losses[:5])
    # a second call finds the last checkpoint and runs only the rest
    _, more = train(num_steps + 10)
    assert len(more) == 10


def test_bad_input():
    operator, b = pressure_problem((8, 8))
    three_d = solvers.LearnedConjugateDirections(
        solvers.ConjugateDirectionNetwork(3, key=jax.random.key(0)),
        rtol=1e-6,
        atol=0.0,
        max_steps=10,
    )
    with pytest.raises(ValueError, match="trained for 3-D"):
        solvers.solve(operator, b, three_d)
    with pytest.raises(TypeError, match="grid"):
        solvers.solve(jnp.eye(4), jnp.ones(4), three_d)
    with pytest.raises(FileNotFoundError, match="train_learned_cg.py"):
        solvers.load_network("/nonexistent/weights.eqx")


class _NegatedPressure(solvers.LinearOperator):
    inner: pde.PressureOperator

    def mv(self, vector):
        return -self.inner.mv(vector)

    @property
    def grid_shape(self):
        return self.inner.grid_shape

    @property
    def shape(self):
        return self.inner.shape

    @property
    def dtype(self):
        return self.inner.dtype

    def diagonal(self):
        return -self.inner.diagonal()


def test_not_spd_reports_breakdown():
    operator, b = pressure_problem((12, 12))
    solution = solvers.solve(
        _NegatedPressure(operator),
        b,
        solvers.LearnedConjugateDirections(
            solvers.pretrained_network(2), rtol=1e-8, atol=0.0, max_steps=50
        ),
        throw=False,
    )
    assert solution.result == solvers.RESULTS.breakdown
