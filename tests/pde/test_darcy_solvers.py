"""The Darcy generator through the library's solvers: solver=,
preconditioner= and order= (SKR's sorted, recycled generation), the public
coefficient, and sorted datasets on disk."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciax import RESULTS, pde, solvers

jax.config.update("jax_enable_x64", True)

RESOLUTION = 17
COUNT = 6
KEY = jax.random.key(11)
RECYCLING = solvers.GCRODR(rtol=1e-10, atol=0.0, max_steps=3000, restart=30, recycle=10)


@pytest.fixture(scope="module")
def reference():
    """The default generator: multigrid-PCG to 1e-10, independent solves."""
    return pde.darcy_samples(KEY, COUNT, resolution=RESOLUTION)


@functools.cache
def recycled(order):
    return pde.darcy_samples(
        KEY,
        COUNT,
        resolution=RESOLUTION,
        solver=RECYCLING,
        preconditioner=None,
        order=order,
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_the_coefficient_is_the_benchmarks_threshold(dtype):
    field = jnp.asarray([[-1.0, 0.0], [2.0, -0.0]], dtype)
    coefficient = pde.darcy_coefficient(field)
    assert coefficient.dtype == dtype
    np.testing.assert_array_equal(coefficient, [[3.0, 12.0], [12.0, 12.0]])
    np.testing.assert_array_equal(
        pde.darcy_coefficient(field, high=2.0, low=1.0), [[1.0, 2.0], [2.0, 2.0]]
    )
    sample = pde.darcy_sample(KEY, resolution=RESOLUTION)
    field = pde.gaussian_random_field(KEY, (RESOLUTION, RESOLUTION))
    np.testing.assert_array_equal(sample.coefficient, pde.darcy_coefficient(field))


# order "none" solves each sample alone with GCRO-DR: one more large
# compilation, under --runslow
@pytest.mark.parametrize(
    "order", [pytest.param("none", marks=pytest.mark.slow), "greedy"]
)
def test_any_solver_gives_the_same_samples(reference, order):
    samples = recycled(order)
    assert bool(jnp.all(samples.result == RESULTS.successful))
    np.testing.assert_array_equal(samples.coefficient, reference.coefficient)
    scale = float(jnp.max(jnp.abs(reference.solution)))
    # both solves reach a relative residual of 1e-10 (cond ~ 1e2 here)
    np.testing.assert_allclose(samples.solution, reference.solution, atol=1e-8 * scale)
    assert samples.solution.shape == (COUNT, RESOLUTION, RESOLUTION)
    assert samples.stats["num_matvecs"].shape == (COUNT,)


@pytest.mark.slow
def test_the_sorted_chain_recycles():
    # the chain's first system starts fresh; every later one starts with the
    # recycle space of its predecessor and needs fewer matvecs than alone
    alone = np.asarray(recycled("none").stats["num_matvecs"])
    chained = np.asarray(recycled("greedy").stats["num_matvecs"])
    assert chained.sum() < 0.95 * alone.sum()


@pytest.mark.slow
def test_fft_pca_order_gives_the_same_samples(reference):
    samples = pde.darcy_samples(
        KEY, COUNT, resolution=RESOLUTION, solver=RECYCLING, order="fft-pca"
    )
    scale = float(jnp.max(jnp.abs(reference.solution)))
    np.testing.assert_allclose(samples.solution, reference.solution, atol=1e-8 * scale)


@pytest.mark.slow
def test_the_float32_default_with_another_solver():
    solver = solvers.GMRES(rtol=1e-4, atol=0.0, max_steps=500)
    samples = pde.darcy_samples(
        KEY, 2, resolution=RESOLUTION, solver=solver, dtype=jnp.float32
    )
    assert samples.solution.dtype == jnp.float32
    assert bool(jnp.all(samples.result == RESULTS.successful))


def test_bad_generator_arguments():
    with pytest.raises(ValueError, match="not both"):
        pde.darcy_samples(KEY, 2, resolution=RESOLUTION, rtol=1e-8, solver=RECYCLING)
    with pytest.raises(ValueError, match="order must be one of"):
        pde.darcy_samples(KEY, 2, resolution=RESOLUTION, order="sorted")
    with pytest.raises(ValueError, match="batch_size"):
        pde.darcy_samples(KEY, 2, resolution=RESOLUTION, order="greedy", batch_size=2)
    with pytest.raises(TypeError, match="sciax.solvers solver"):
        pde.darcy_sample(KEY, resolution=RESOLUTION, solver="cg")


def test_a_sorted_dataset_is_its_chain_in_shards_and_resumes(tmp_path, reference):
    # CG along the chain: the shards and their order are what is tested here
    options = dict(
        seed=0,
        shard_size=3,
        resolution=RESOLUTION,
        solver=solvers.CG(rtol=1e-10, atol=0.0, max_steps=300),
        order="greedy",
        progress=False,
    )
    directory = pde.write_dataset(tmp_path / "sorted", "darcy", COUNT, **options)
    indices = [
        np.load(directory / f"shard_0000{shard}.npz")["index"] for shard in (0, 1)
    ]
    chain = np.concatenate(indices)
    assert sorted(chain.tolist()) == list(range(COUNT))
    # shard j is the j-th piece of one chain through all samples
    fields = jax.vmap(
        lambda i: pde.darcy_coefficient(
            pde.gaussian_random_field(
                jax.random.fold_in(jax.random.key(0), i), (RESOLUTION, RESOLUTION)
            )
        )
    )(jnp.arange(COUNT))
    expected = solvers.greedy_order(fields.reshape(COUNT, -1))
    np.testing.assert_array_equal(chain, expected)

    # resume after losing a shard: the same bytes
    first = (directory / "shard_00001.npz").read_bytes()
    (directory / "shard_00001.npz").unlink()
    pde.write_dataset(directory, "darcy", COUNT, **options)
    assert (directory / "shard_00001.npz").read_bytes() == first

    loaded = pde.load_dataset(directory, RESOLUTION)
    unsorted = pde.darcy_samples(jax.random.key(0), COUNT, resolution=RESOLUTION)
    np.testing.assert_array_equal(loaded["coefficient"], unsorted.coefficient)
    scale = float(jnp.max(jnp.abs(unsorted.solution)))
    np.testing.assert_allclose(loaded["solution"], unsorted.solution, atol=1e-8 * scale)
    with pytest.raises(ValueError, match="other settings"):
        pde.write_dataset(
            directory,
            "darcy",
            COUNT,
            **{**options, "solver": solvers.GMRES(1e-8, 0.0, 9)},
        )
