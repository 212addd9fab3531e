"""Orders for sequences (Hilbert curve, FFT + PCA) and chunked / sharded
sequence solves."""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciax import solvers
from tests.helpers import diffusion_coefficient, run_with_eight_host_devices


@pytest.mark.parametrize("ndim, bits", [(2, 4), (3, 3)])
def test_hilbert_curve_visits_every_cell_through_neighbours(ndim, bits):
    side = 2**bits
    cells = np.stack(np.meshgrid(*[np.arange(side)] * ndim, indexing="ij"), -1)
    cells = cells.reshape(-1, ndim)
    index = np.asarray(solvers.hilbert_index(jnp.asarray(cells, jnp.int32), bits))
    assert sorted(index.tolist()) == list(range(side**ndim))
    path = cells[np.argsort(index)]
    steps = np.abs(np.diff(path, axis=0)).sum(axis=1)
    assert np.all(steps == 1)  # consecutive positions are grid neighbours


def test_hilbert_index_refuses_too_many_bits():
    with pytest.raises(ValueError, match="bits"):
        solvers.hilbert_index(jnp.zeros((2, 3), jnp.int32), 11)


def test_fft_pca_order_keeps_families_together():
    n, count = 15, 24
    rng = np.random.default_rng(2)
    centres = [
        np.log(diffusion_coefficient(n, seed, contrast=2.0)) for seed in range(4)
    ]
    labels = rng.permutation(np.arange(count) % 4)
    fields = np.stack(
        [centres[k] + 0.02 * rng.normal(size=(n + 2, n + 2)) for k in labels]
    )
    order = np.asarray(solvers.fft_pca_order(jnp.asarray(fields)))
    assert sorted(order.tolist()) == list(range(count))
    # four families, so the sorted chain changes family exactly three times
    changes = np.count_nonzero(np.diff(labels[order]))
    assert changes == 3, labels[order]
    # and a random order changes family far more often
    assert np.count_nonzero(np.diff(labels)) > 10


def _darcy_sequence(n=10, count=10, seed=0):
    rng = np.random.default_rng(seed)
    base = np.log(diffusion_coefficient(n, seed))
    log_a = np.stack(
        [base + 0.2 * rng.normal(size=(n + 2, n + 2)) for _ in range(count)]
    )
    return jnp.asarray(log_a), jnp.asarray(rng.normal(size=(count, n * n)))


def _build(log_a):
    return solvers.DiffusionOperator(jnp.exp(log_a))


@pytest.mark.parametrize(
    "order", ["fft-pca", pytest.param("greedy", marks=pytest.mark.slow)]
)
def test_chunked_sequence_solves_every_system(order):
    log_a, rhs = _darcy_sequence()
    solver = solvers.GCRODR(rtol=1e-10, atol=0.0, max_steps=2000, restart=20, recycle=4)
    # 10 systems in 3 chunks: the last chunk is padded with a repeat
    out = solvers.solve_sequence(_build, log_a, rhs, solver, order=order, chunks=3)
    assert bool(jnp.all(out.result == solvers.RESULTS.successful))
    for i in range(rhs.shape[0]):
        operator = _build(log_a[i])
        residual = jnp.linalg.norm(rhs[i] - operator.mv(out.value[i]))
        assert residual <= 1e-10 * jnp.linalg.norm(rhs[i])
    assert out.state.basis.shape == (4, 100)
    with pytest.raises(ValueError, match="chunks"):
        solvers.solve_sequence(_build, log_a, rhs, solver, chunks=11)
    with pytest.raises(ValueError, match="multiple"):
        solvers.solve_sequence(
            _build, log_a, rhs, solver, chunks=3, devices=jax.devices()[:1] * 2
        )


SHARDED = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    from sciax import solvers
    from tests.solvers.test_sequence_order import _darcy_sequence, _build
    assert len(jax.devices()) == 8, jax.devices()
    log_a, rhs = _darcy_sequence(n=8, count=16, seed=3)
    solver = solvers.GCRODR(rtol=1e-10, atol=0.0, max_steps=1000, restart=16, recycle=3)
    sharded = solvers.solve_sequence(_build, log_a, rhs, solver, chunks=8, devices=jax.devices())
    local = solvers.solve_sequence(_build, log_a, rhs, solver, chunks=8)
    assert bool(jnp.all(sharded.result == solvers.RESULTS.successful))
    np.testing.assert_allclose(sharded.value, local.value, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(sharded.stats["num_matvecs"], local.stats["num_matvecs"])
    print("ok", len(sharded.value.sharding.device_set) if hasattr(sharded.value, "sharding") else 0)
    """
)


@pytest.mark.slow
def test_chunks_sharded_over_eight_host_devices():
    assert run_with_eight_host_devices(SHARDED).startswith("ok")
