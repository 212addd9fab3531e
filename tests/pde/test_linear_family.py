"""pde.linear_family_samples: the non-symmetric Darcy, Helmholtz and heat
families through the library's solvers, unsorted and along a sorted chain."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse.linalg as spla

from sciax import pde, solvers

RESOLUTION = 17
INTERIOR = RESOLUTION - 2


def _matrix(family, sample_field, key, dtype=jnp.float64):
    """The family's matrix, assembled column by column from its own operator
    builders (independent of the generator's plumbing), and its rhs."""
    g = jnp.asarray(sample_field, jnp.float64)
    if family == "nonsymmetric-darcy":
        operator = pde.nonsymmetric_darcy_operator(g)
        b = np.ones(INTERIOR**2)
    elif family == "helmholtz":
        operator = pde.helmholtz_operator(g, 15.0)
        b = np.ones(INTERIOR**2)
    else:
        # drawn in the generator's dtype (its random numbers depend on it)
        h = pde.gaussian_random_field(
            jax.random.fold_in(key, 2**32 - 1), (RESOLUTION, RESOLUTION), dtype=dtype
        ).astype(jnp.float64)
        operator = pde.heat_operator(jnp.exp(h), 1e-3)
        b = np.asarray(g[1:-1, 1:-1]).reshape(-1) / 1e-3
    columns = jax.vmap(operator.mv)(jnp.eye(INTERIOR**2))
    return np.asarray(columns).T, b


@pytest.mark.parametrize("family", ["nonsymmetric-darcy", "helmholtz", "heat"])
def test_default_solution_solves_the_family_system(family):
    key = jax.random.key(3)
    samples = pde.linear_family_samples(family, key, 4, resolution=RESOLUTION)
    assert samples.field.shape == (4, RESOLUTION, RESOLUTION)
    assert samples.solution.shape == (4, RESOLUTION, RESOLUTION)
    assert bool(jnp.all(samples.result == solvers.RESULTS.successful))
    for i in range(4):
        matrix, b = _matrix(family, samples.field[i], key)
        u = np.asarray(samples.solution[i, 1:-1, 1:-1]).reshape(-1)
        residual = np.linalg.norm(b - matrix @ u) / np.linalg.norm(b)
        assert residual < 2e-10, (family, i, residual)
        direct = np.linalg.solve(matrix, b)
        np.testing.assert_allclose(u, direct, rtol=0, atol=1e-7 * np.abs(direct).max())
        assert np.all(samples.solution[i, 0] == 0) and np.all(
            samples.solution[i, :, -1] == 0
        )
    if family == "heat":
        # the input is the initial temperature, zero on the boundary
        assert np.all(samples.field[:, 0] == 0) and np.all(samples.field[:, -1] == 0)


@pytest.mark.parametrize(
    "order",
    # fft-pca: ~30 s more of compiling (suite budget)
    ["none", pytest.param("fft-pca", marks=pytest.mark.slow)],
)
def test_orders_agree_and_samples_do_not_depend_on_the_split(order):
    key = jax.random.key(5)
    chain = pde.linear_family_samples(
        "nonsymmetric-darcy", key, 6, resolution=RESOLUTION, order="greedy"
    )
    other = pde.linear_family_samples(
        "nonsymmetric-darcy", key, 6, resolution=RESOLUTION, order=order
    )
    np.testing.assert_array_equal(chain.field, other.field)
    scale = float(jnp.max(jnp.abs(chain.solution)))
    np.testing.assert_allclose(chain.solution, other.solution, atol=1e-8 * scale)
    # sample i is drawn from fold_in(key, first_index + i), whatever the run
    tail = pde.linear_family_samples(
        "nonsymmetric-darcy", key, 2, resolution=RESOLUTION, order=order, first_index=4
    )
    np.testing.assert_array_equal(tail.field, chain.field[4:])


@pytest.mark.slow  # ~25 s (RESULTS "The other linear families" measures it)
def test_recycling_along_the_chain_saves_matvecs_on_related_systems():
    # GCRO-DR's recycle space carried along the greedy chain must cut the
    # matvecs against fresh solves of the same systems (at 31^2, 8 samples:
    # 1171 against 1342)
    key = jax.random.key(0)
    options = dict(resolution=33)
    fresh = pde.linear_family_samples(
        "nonsymmetric-darcy", key, 8, order="none", **options
    )
    chain = pde.linear_family_samples("nonsymmetric-darcy", key, 8, **options)
    assert int(jnp.sum(chain.stats["num_matvecs"])) < 0.95 * int(
        jnp.sum(fresh.stats["num_matvecs"])
    )


def test_float32():
    key = jax.random.key(1)
    samples = pde.linear_family_samples(
        "heat", key, 3, resolution=RESOLUTION, dtype=jnp.float32
    )
    assert samples.solution.dtype == jnp.float32 and samples.field.dtype == jnp.float32
    assert bool(jnp.all(samples.result == solvers.RESULTS.successful))
    # against a float64 direct solve with the same (float32) fields
    for i in range(3):
        matrix, b = _matrix("heat", samples.field[i], key, jnp.float32)
        u = np.asarray(samples.solution[i, 1:-1, 1:-1], np.float64).reshape(-1)
        direct = np.linalg.solve(matrix, b)
        np.testing.assert_allclose(u, direct, atol=1e-5 * np.abs(direct).max())


def test_failure_raises_or_is_reported():
    stingy = solvers.GMRES(rtol=1e-12, atol=0.0, max_steps=3, restart=3)
    options = dict(resolution=RESOLUTION, solver=stingy, order="none")
    with pytest.raises(Exception, match="linear_family_samples"):
        jax.block_until_ready(
            pde.linear_family_samples("helmholtz", jax.random.key(0), 2, **options)
        )
    samples = pde.linear_family_samples(
        "helmholtz", jax.random.key(0), 2, throw=False, **options
    )
    assert bool(jnp.all(samples.result == solvers.RESULTS.max_steps_reached))


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        (dict(family="poisson"), ValueError, "family must be one of"),
        (dict(resolution=4), ValueError, "resolution must be an int >= 5"),
        (dict(num_samples=0), ValueError, "num_samples must be an int >= 1"),
        (dict(solver=spla.gmres), TypeError, "must be a sciax.solvers solver"),
        (dict(preconditioner="jacobi"), ValueError, "preconditioner must be"),
        (dict(order="sorted"), ValueError, "order must be one of"),
        (dict(family="heat", time_step=0.0), ValueError, "time_step must be positive"),
    ],
)
def test_bad_configuration_is_refused(arguments, error, message):
    options = dict(family="helmholtz", num_samples=2, resolution=RESOLUTION)
    options.update(arguments)
    family, count = options.pop("family"), options.pop("num_samples")
    with pytest.raises(error, match=message):
        pde.linear_family_samples(family, jax.random.key(0), count, **options)


def test_write_dataset_sorted_run_resumes_to_the_same_bytes(tmp_path):
    # the family's default order (greedy): shards are pieces of one chain,
    # and an interrupted run finishes with the bytes of an uninterrupted one
    options = dict(num_samples=6, seed=2, shard_size=3, progress=False)
    whole = pde.write_dataset(
        tmp_path / "whole", "nonsymmetric-darcy", resolution=RESOLUTION, **options
    )
    part = tmp_path / "part"
    pde.write_dataset(part, "nonsymmetric-darcy", resolution=RESOLUTION, **options)
    (part / "shard_00001.npz").unlink()
    pde.write_dataset(part, "nonsymmetric-darcy", resolution=RESOLUTION, **options)
    for name in ("shard_00000.npz", "shard_00001.npz"):
        assert (whole / name).read_bytes() == (part / name).read_bytes()
    data = pde.load_dataset(whole, RESOLUTION)
    direct = pde.linear_family_samples(
        "nonsymmetric-darcy", jax.random.key(2), 6, resolution=RESOLUTION
    )
    np.testing.assert_array_equal(data["field"], direct.field)
    scale = float(jnp.max(jnp.abs(direct.solution)))
    np.testing.assert_allclose(data["solution"], direct.solution, atol=1e-8 * scale)
