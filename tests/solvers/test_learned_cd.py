"""The learned conjugate-direction solver: A-orthogonality, the fallback
(which with a useless network must reproduce CG), convergence with the
shipped 2-D weights, dtypes, jit, vmap, gradients, save/load, training
resumption, bad input."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciax import pde, solvers
from sciax.solvers.learned._learned_cd import a_orthogonalise
from tests.helpers import pressure_problem, random_network


def nan_network(ndim=2, **options):
    return nan_weights(
        solvers.ConjugateDirectionNetwork(ndim, key=jax.random.key(0), **options)
    )


def nan_weights(network):
    return jax.tree_util.tree_map(
        lambda x: jnp.full_like(x, jnp.nan) if eqx.is_inexact_array(x) else x, network
    )


# The 2-D solves share one grid and one configuration each, so that a test
# with a NaN copy of a shipped network reuses the program compiled for the
# shipped one (the weights are traced, the structure and settings are not).
GRID = (24, 24)


def learned(network, **options):
    return solvers.LearnedConjugateDirections(
        network, **{"rtol": 1e-10, "atol": 0.0, "max_steps": 400, **options}
    )


CG = solvers.CG(rtol=1e-10, atol=0.0, max_steps=400)


def multigrid_steps(network):
    return solvers.LearnedConjugateDirections(
        network,
        rtol=1e-8,
        atol=0.0,
        max_steps=100,
        num_orthogonal=8,
        preconditioner_steps=True,
    )


# What a network computes does not matter where it is all NaN (every
# direction falls back) or only trained for a few steps; two levels instead
# of four halve the programs to compile.
SMALL = dict(levels=2)


def sample_obstacles(key):
    # module level: the training loop's compiled programs are keyed on the
    # sampler, so every training call here shares them
    return pde.PressureOperator(
        pde.pressure_cells("obstacles", (16, 16), key), dtype="float32"
    )


def train_small(network, directory, num_steps, checkpoint_every=20, **options):
    """Training on 16^2 obstacle problems, checkpointed to ``directory``."""
    return solvers.train_direction_network(
        network,
        sample_obstacles,
        num_steps=num_steps,
        key=jax.random.key(1),
        batch_size=4,
        num_ritz=24,
        directory=directory,
        checkpoint_every=checkpoint_every,
        progress=False,
        **options,
    )


def test_a_orthogonalise():
    operator, _ = pressure_problem(GRID)
    n = operator.shape[0]
    keys = jax.random.split(jax.random.key(3), 3)
    kept = jnp.stack(
        [jax.random.normal(k, (n,)) * operator.fluid.reshape(-1) for k in keys[:2]]
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
    d = a_orthogonalise(jax.random.normal(keys[2], (n,)), kept, images, curvatures)
    np.testing.assert_allclose(images @ d, 0.0, atol=1e-12)


def test_useless_network_falls_back_to_conjugate_gradients():
    """Every direction of a nan network is replaced by the residual; made
    A-orthogonal to the previous one that is exactly CG's direction, so the
    iteration must take CG's number of steps."""
    operator, b = pressure_problem(GRID)
    ours = solvers.solve(
        operator, b, learned(nan_weights(solvers.pretrained_network(2)))
    )
    cg = solvers.solve(operator, b, CG)
    steps = int(ours.stats["num_steps"])
    assert int(ours.stats["num_fallbacks"]) == steps
    assert abs(steps - int(cg.stats["num_steps"])) <= 2
    np.testing.assert_allclose(ours.value, cg.value, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["box", "obstacles", "free-surface"])
def test_shipped_2d_weights_beat_cg(kind):
    """Convergence to the tolerance with the network's own directions (not
    fallbacks), in fewer iterations than CG (benchmarks/RESULTS.md: 25-44
    against 231-338 at 64^2 to 1e-6; 29-52 against 109-149 at 24^2 to
    1e-10)."""
    operator, b = pressure_problem(GRID, kind, seed=11)
    ours = solvers.solve(operator, b, learned(solvers.pretrained_network(2)))
    cg = solvers.solve(operator, b, CG)
    residual = jnp.linalg.norm(b - operator.mv(ours.value)) / jnp.linalg.norm(b)
    assert float(residual) <= 1e-10
    assert int(ours.stats["num_fallbacks"]) < int(ours.stats["num_steps"]) // 10
    assert int(ours.stats["num_steps"]) < int(cg.stats["num_steps"])


def test_shipped_weights_load():
    """Every shipped file loads into the architecture it was trained with."""
    expected = {
        (2, False): (16, 0, 0),
        (2, True): (16, 1, 1),
        (3, False): (16, 0, 0),
        (3, True): (8, 1, 2),
    }
    for (ndim, multigrid), hyperparameters in expected.items():
        network = solvers.pretrained_network(ndim, multigrid=multigrid)
        assert network.ndim == ndim
        assert (
            network.channels,
            network.pairless_levels,
            network.pairless_up_levels,
        ) == hyperparameters
        for leaf in jax.tree.leaves(eqx.filter(network, eqx.is_inexact_array)):
            assert np.all(np.isfinite(leaf))


def _check_shipped_multigrid_weights(grid, kind):
    """Network step + V-cycle step per iteration with the shipped network for
    len(grid) dimensions: converges to 1e-8 with no fallback, in fewer
    iterations than multigrid-PCG, whose V-cycle each iteration also pays
    for."""
    operator, b = pressure_problem(grid, kind, seed=11)
    ours = solvers.solve(
        operator,
        b,
        multigrid_steps(solvers.pretrained_network(len(grid), multigrid=True)),
        preconditioner=solvers.Multigrid(),
    )
    multigrid_cg = solvers.solve(
        operator,
        b,
        solvers.CG(rtol=1e-8, atol=0.0, max_steps=100),
        preconditioner=solvers.Multigrid(),
    )
    residual = jnp.linalg.norm(b - operator.mv(ours.value)) / jnp.linalg.norm(b)
    assert float(residual) <= 1e-8
    assert int(ours.stats["num_fallbacks"]) == 0
    steps = int(ours.stats["num_steps"])
    # two matvecs per iteration, and one more for each true-residual check
    assert int(ours.stats["num_matvecs"]) >= 2 * steps + 1
    assert steps < int(multigrid_cg.stats["num_steps"])


@pytest.mark.parametrize(
    "kind",
    [
        "box",
        pytest.param("obstacles", marks=pytest.mark.slow),
        pytest.param("free-surface", marks=pytest.mark.slow),
    ],
)
def test_shipped_multigrid_weights_with_multigrid_steps(kind):
    """The shipped 2-D network (measured 4-6 iterations against
    multigrid-PCG's 6-7 at 24^2, where the V-cycle has two levels). The 3-D
    weights at 32^3 are checked with --runslow; the 3-D blocked network they
    use is checked in test_block_convolution.py."""
    _check_shipped_multigrid_weights(GRID, kind)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["box", "obstacles", "free-surface"])
def test_shipped_3d_multigrid_weights_with_multigrid_steps(kind):
    """The shipped 3-D network (measured 6-7 against 8-9 at 32^3); about 50 s
    of compilation on a CPU."""
    _check_shipped_multigrid_weights((32, 32, 32), kind)


def test_multigrid_steps_with_a_useless_network():
    """With a nan network every network step falls back to M r, so each
    iteration is two multigrid steps: it must still converge, and report
    every network step as a fallback."""
    operator, b = pressure_problem(GRID)
    solution = solvers.solve(
        operator,
        b,
        multigrid_steps(nan_weights(solvers.pretrained_network(2, multigrid=True))),
        preconditioner=solvers.Multigrid(),
    )
    assert solution.result == solvers.RESULTS.successful
    assert int(solution.stats["num_fallbacks"]) == int(solution.stats["num_steps"])
    np.testing.assert_allclose(operator.mv(solution.value), b, atol=1e-7)


# the contract suite (test_contract.py) checks dtypes, jit, vmap and
# gradients for every solver by default; these repeat them on pressure
# problems (a fluid mask) under --runslow
@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtypes_and_float64_accuracy(dtype):
    if dtype == "float64" and not jax.config.jax_enable_x64:
        pytest.skip("float64 disabled")
    operator, b = pressure_problem(GRID, dtype=dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-10
    solution = solvers.solve(
        operator, b, learned(solvers.pretrained_network(2), rtol=rtol)
    )
    assert solution.value.dtype == jnp.dtype(dtype)
    residual = jnp.linalg.norm(b - operator.mv(solution.value)) / jnp.linalg.norm(b)
    assert float(residual) <= rtol


@pytest.mark.slow
def test_jit_vmap_and_gradient():
    """One jitted, vmapped program returns each solution and its gradient."""
    operator, b = pressure_problem(GRID)
    solver = learned(solvers.pretrained_network(2))
    rhs = jnp.stack([b, 2 * b, jnp.roll(b, 7) * operator.fluid.reshape(-1)])
    weights = operator.fluid.reshape(-1)

    def objective(r):
        x = solvers.solve(operator, r, solver).value
        return jnp.vdot(weights, x), x

    gradients, batched = jax.jit(jax.vmap(jax.grad(objective, has_aux=True)))(rhs)
    for r, x, gradient in zip(rhs, batched, gradients, strict=True):
        np.testing.assert_allclose(operator.mv(x), r, atol=1e-8)
        # d(w^T x)/db = A^-T w, by the implicit adjoint (another solve)
        np.testing.assert_allclose(operator.mv(gradient), weights, atol=1e-8)


@pytest.mark.parametrize(
    "pairless_levels,pairless_up_levels", [(0, 0), (1, 1), (2, 2), (1, 2)]
)
def test_save_load_round_trip(tmp_path, pairless_levels, pairless_up_levels):
    network = random_network(
        3,
        seed=5,
        cell_types=True,
        pairless_levels=pairless_levels,
        pairless_up_levels=pairless_up_levels,
    )
    path = solvers.save_network(tmp_path / "net.eqx", network)
    loaded = solvers.load_network(path)
    assert (loaded.ndim, loaded.channels, loaded.cell_types) == (3, 16, True)
    assert loaded.pairless_levels == pairless_levels
    assert loaded.pairless_up_levels == pairless_up_levels
    residual = jax.random.normal(jax.random.key(1), (6, 7, 5))
    cells = pde.pressure_cells("box", (6, 7, 5))
    assert jax.tree.structure(loaded) == jax.tree.structure(network)
    for saved, read in zip(
        jax.tree.leaves(network), jax.tree.leaves(loaded), strict=True
    ):
        np.testing.assert_array_equal(saved, read)
    # one program for both (same structure); not bit for bit: on a GPU two
    # compilations may pick different convolution algorithms
    call = eqx.filter_jit(lambda net: net(residual, cells))
    np.testing.assert_allclose(call(network), call(loaded), rtol=1e-5, atol=1e-6)


# two energy iterations: the loop and the stop-gradient between iterations
# at half the program of the default four
@pytest.mark.parametrize(
    "loss_steps",
    [
        pytest.param(0, id="one-step loss"),
        pytest.param(2, id="energy loss", marks=pytest.mark.slow),
    ],
)
def test_training_resumes(tmp_path, loss_steps):
    """Five steps, then a second call that finds the checkpoint and runs the
    other five, end where ten uninterrupted steps end: the optimizer state
    and the key were restored, not just the step count. A new problem every
    five steps, so the resumed call also samples one."""

    def train(directory, steps):
        network = solvers.ConjugateDirectionNetwork(2, key=jax.random.key(0), **SMALL)
        return train_small(
            network,
            directory,
            steps,
            checkpoint_every=5,
            steps_per_problem=5,
            loss_steps=loss_steps,
        )

    first = train(tmp_path / "interrupted", 5)
    assert first.stats["num_steps"] == 5 and len(first.stats["train_loss"]) == 5
    resumed = train(tmp_path / "interrupted", 10)
    assert resumed.stats["num_steps"] == 10 and len(resumed.stats["train_loss"]) == 5
    whole = train(tmp_path / "whole", 10)
    assert whole.result == solvers.RESULTS.successful
    assert np.all(np.isfinite(whole.stats["train_loss"]))
    np.testing.assert_allclose(
        np.concatenate([first.stats["train_loss"], resumed.stats["train_loss"]]),
        whole.stats["train_loss"],
        rtol=1e-5,
    )
    for a, b in zip(
        jax.tree.leaves(eqx.filter(resumed.model, eqx.is_inexact_array)),
        jax.tree.leaves(eqx.filter(whole.model, eqx.is_inexact_array)),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    start = solvers.ConjugateDirectionNetwork(2, key=jax.random.key(0), **SMALL)
    assert not np.allclose(whole.model.lift.weight, start.lift.weight)


def test_training_stops_at_a_nonfinite_loss(tmp_path):
    """A network of NaNs gives a NaN loss at the first step: training stops
    there and says so."""
    # the energy-loss training above compiled this network's step already
    network = nan_network(2, **SMALL)
    training = train_small(network, None, 5, loss_steps=2)
    assert training.result == solvers.RESULTS.nonfinite_loss
    assert training.stats["num_steps"] == 0 and len(training.stats["train_loss"]) == 1


@eqx.filter_jit
def armijo_check(network, operator, rows, loss):
    """The loss at the network, the squared gradient norm, the step, and
    the loss after that step against the gradient: one program."""
    from sciax.solvers.learned._direction_training import energy_loss, one_step_loss

    def value(net):
        if loss == "one-step":
            return one_step_loss(net, operator, rows)
        return energy_loss(net, operator, rows, num_iterations=1)

    start, gradient = eqx.filter_value_and_grad(value)(network)
    squared = sum(jnp.vdot(g, g) for g in jax.tree.leaves(gradient))
    step = 1e-2 / jnp.sqrt(squared)
    moved = eqx.apply_updates(network, jax.tree.map(lambda g: -step * g, gradient))
    return start, squared, step, value(moved)


@pytest.mark.parametrize("loss", ["one-step", "energy"])
def test_training_loss_gradient_descends(loss):
    """A short step against the loss's gradient lowers it by at least half
    the first-order amount (Armijo): the gradient through the network, the
    A-orthogonalisation and the line search is right, so the optimiser
    descends. (How many steps a random network needs to leave the plateau
    near 1 depends on the seed and on the device's convolution algorithms,
    so it is not asserted.) The energy loss with one iteration: with more,
    the state between iterations is held constant for the gradient by
    design, so it is not the total derivative."""
    operator, _ = pressure_problem((16, 16), dtype="float32")
    rows = jax.random.normal(jax.random.key(4), (3, 256), jnp.float32)
    rows = rows * operator.fluid.reshape(1, -1)
    network = solvers.ConjugateDirectionNetwork(2, key=jax.random.key(0), **SMALL)
    # full float32 convolutions: a GPU's default TF32 adds noise of the
    # size of the decrease checked here
    with jax.default_matmul_precision("float32"):
        start, squared, step, moved = armijo_check(network, operator, rows, loss)
    assert float(moved) < float(start - 0.5 * step * squared)


# about 40 s of compilation on 2 CPU cores; the shipped weights are
# trained without multigrid steps, so this path is off the default suite
@pytest.mark.slow
def test_multigrid_energy_loss_matches_the_solver():
    """One iteration of the training loss with a V-cycle step is the
    iteration the solver runs with preconditioner_steps=True: the energy
    left, e^T A e / x*^T A x*, must agree."""
    from sciax.solvers.learned._direction_training import energy_loss

    operator, _ = pressure_problem((16, 16), dtype="float32")
    solution = jax.random.normal(jax.random.key(4), (256,), jnp.float32)
    solution = solution * operator.fluid.reshape(-1)
    network = solvers.ConjugateDirectionNetwork(
        2, pairless_levels=1, key=jax.random.key(2)
    )
    # coarsened to 2^2, so that the V-cycle is not an exact solve
    multigrid = solvers.Multigrid(coarsest_size=4)
    loss = energy_loss(
        network,
        operator,
        solution[None],
        1,
        preconditioner=multigrid.build(operator),
    )
    one_iteration = solvers.solve(
        operator,
        operator.mv(solution),
        solvers.LearnedConjugateDirections(
            network, rtol=1e-12, atol=0.0, max_steps=1, preconditioner_steps=True
        ),
        preconditioner=multigrid,
        throw=False,
    )
    error = solution - one_iteration.value
    left = jnp.vdot(error, operator.mv(error)) / jnp.vdot(
        solution, operator.mv(solution)
    )
    assert 0.0 < float(left) < 0.9
    np.testing.assert_allclose(float(loss), float(left), rtol=2e-3)


# about 40 s of compilation on 2 CPU cores; the shipped weights are
# trained without multigrid steps, so this path is off the default suite
@pytest.mark.slow
def test_training_with_multigrid_steps_resumes(tmp_path):
    def train(steps):
        network = solvers.ConjugateDirectionNetwork(
            2, pairless_levels=1, key=jax.random.key(0)
        )
        return train_small(
            network,
            tmp_path,
            steps,
            preconditioner=solvers.Multigrid(coarsest_size=4),
            checkpoint_every=10,
        )

    start = solvers.ConjugateDirectionNetwork(
        2, pairless_levels=1, key=jax.random.key(0)
    )
    trained = train(20)
    losses = trained.stats["train_loss"]
    assert np.all(np.isfinite(losses)) and max(losses) < 1.0
    assert not np.allclose(trained.model.lift.weight, start.lift.weight)
    more = train(25)
    assert len(more.stats["train_loss"]) == 5


def test_bad_input():
    operator, b = pressure_problem(GRID)
    three_d = solvers.LearnedConjugateDirections(
        random_network(3),
        rtol=1e-6,
        atol=0.0,
        max_steps=10,
    )
    with pytest.raises(ValueError, match="trained for 3-D"):
        solvers.solve(operator, b, three_d)
    multigrid_steps = dataclasses.replace(
        three_d,
        network=solvers.ConjugateDirectionNetwork(2, key=jax.random.key(0)),
        preconditioner_steps=True,
    )
    with pytest.raises(ValueError, match="pass a preconditioner"):
        solvers.solve(operator, b, multigrid_steps)
    with pytest.raises(TypeError, match="grid"):
        solvers.solve(jnp.eye(4), jnp.ones(4), three_d)
    with pytest.raises(FileNotFoundError, match="train_learned_cg.py"):
        solvers.load_network("/nonexistent/weights.eqx")
    with pytest.raises(ValueError, match="pairless_levels"):
        solvers.ConjugateDirectionNetwork(
            2, levels=3, pairless_levels=4, key=jax.random.key(0)
        )
    # the full grid's path has no place without its up pair
    for pairless, up in ((0, 1), (2, 1), (1, 4)):
        with pytest.raises(ValueError, match="pairless_up_levels"):
            solvers.ConjugateDirectionNetwork(
                2,
                levels=3,
                pairless_levels=pairless,
                pairless_up_levels=up,
                key=jax.random.key(0),
            )


class _NegatedPressure(solvers.AbstractGridOperator):
    """-A on A's grid: negative definite, a grid operator from outside the
    library (the protocol the learned solver reads)."""

    inner: pde.PressureOperator

    def mv(self, vector):
        return -self.inner.mv(vector)

    @property
    def grid_shape(self):
        return self.inner.grid_shape

    @property
    def boundary(self):
        return self.inner.boundary

    @property
    def exterior(self):
        return self.inner.exterior

    @property
    def cell_types(self):
        return self.inner.cell_types

    @property
    def fluid(self):
        return self.inner.fluid

    @property
    def shape(self):
        return self.inner.shape

    @property
    def dtype(self):
        return self.inner.dtype

    def diagonal(self):
        return -self.inner.diagonal()


def test_not_spd_reports_breakdown():
    operator, b = pressure_problem(GRID)
    solution = solvers.solve(
        _NegatedPressure(operator),
        b,
        solvers.LearnedConjugateDirections(
            solvers.pretrained_network(2), rtol=1e-8, atol=0.0, max_steps=50
        ),
        throw=False,
    )
    assert solution.result == solvers.RESULTS.breakdown


def test_an_operator_without_a_grid_is_refused():
    operator, b = pressure_problem(GRID)
    plain = solvers.FunctionOperator(operator.mv, b.shape[0], b.dtype)
    solver = solvers.LearnedConjugateDirections(
        solvers.pretrained_network(2), rtol=1e-6, atol=0.0, max_steps=5
    )
    with pytest.raises(TypeError, match="AbstractGridOperator"):
        solvers.solve(plain, b, solver)
