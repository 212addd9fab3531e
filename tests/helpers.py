"""Shared test utilities: per-dtype tolerances and the reference tables."""

import csv
from pathlib import Path

import jax
import numpy as np

from sciax import pde

DATA = Path(__file__).with_name("data")


def eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


def mixed_error(value, reference_hi, reference_lo=0.0):
    """|value - reference| / max(1, |reference|): relative for large logs,
    absolute near zero, where a log has no relative accuracy to keep."""
    value = np.asarray(value, np.float64)
    difference = (value - reference_hi) - reference_lo
    both_inf = np.isinf(value) & (value == reference_hi)
    error = np.abs(difference) / np.maximum(1.0, np.abs(reference_hi))
    return np.where(both_inf, 0.0, error)


def bessel_reference() -> dict[str, np.ndarray]:
    """Columns of tests/data/bessel_reference.csv (made by make_bessel_reference.py)."""
    with (DATA / "bessel_reference.csv").open() as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    table = np.array(body, dtype=np.float64)
    return {name: table[:, i] for i, name in enumerate(header)}


def diffusion_coefficient(n: int, seed: int, ndim: int = 2, contrast: float = 1.0):
    """exp(contrast * smooth noise) on (n + 2)^ndim nodes: a positive,
    variable coefficient for the diffusion stencil tests."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(n + 2,) * ndim)
    spectrum = np.fft.fftn(noise)
    frequencies = np.meshgrid(*[np.fft.fftfreq(n + 2)] * ndim, indexing="ij")
    decay = 1.0 / (1.0 + 40.0 * sum(f * f for f in frequencies)) ** 2
    field = np.real(np.fft.ifftn(spectrum * decay))
    field = field / (np.std(field) + 1e-30)
    return np.exp(contrast * field)


def assembled_diffusion(coefficient, reaction=0.0):
    """The diffusion stencil assembled entry by entry as a scipy CSR matrix,
    independently of solvers.DiffusionOperator (loops over faces)."""
    import scipy.sparse as sps

    coefficient = np.asarray(coefficient)
    grid = tuple(s - 2 for s in coefficient.shape)
    size = int(np.prod(grid))
    index = np.arange(size).reshape(grid)
    rows, cols, values = [], [], []
    diagonal = np.broadcast_to(np.asarray(reaction, float), grid).copy()
    for dim in range(len(grid)):
        h = 1.0 / (grid[dim] + 1)
        for node in np.ndindex(*grid):
            full = tuple(i + 1 for i in node)
            for step in (-1, 1):
                neighbour = list(full)
                neighbour[dim] += step
                face = 0.5 * (coefficient[full] + coefficient[tuple(neighbour)]) / h**2
                diagonal[node] += face
                inner = tuple(i - 1 for i in neighbour)
                if all(0 <= i < g for i, g in zip(inner, grid, strict=True)):
                    rows.append(index[node])
                    cols.append(index[inner])
                    values.append(-face)
    rows += list(range(size))
    cols += list(range(size))
    values += list(diagonal.reshape(-1))
    return sps.csr_matrix((values, (rows, cols)), shape=(size, size))


def run_with_eight_host_devices(script: str) -> str:
    """Run a Python script in a fresh process whose JAX sees 8 CPU devices
    (the flag must be set before JAX starts); returns its stdout."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    environment = dict(os.environ)
    environment["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    environment["JAX_PLATFORMS"] = "cpu"
    # the subprocess follows tests/conftest.py's opt-in
    # (JAX_DISABLE_MOST_OPTIMIZATIONS=1), inherited through os.environ
    environment["PYTHONPATH"] = (
        str(root) + os.pathsep + environment.get("PYTHONPATH", "")
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def random_network(ndim, seed=0, **options):
    """A ``solvers.ConjugateDirectionNetwork`` with uniform weights from
    numpy (scaled by fan-in like equinox's), for tests of what a network
    computes: JAX's initializer compiles a random op per layer shape, 1-2 s
    each on a CPU."""
    import equinox as eqx
    import jax.numpy as jnp

    from sciax import solvers

    like = eqx.filter_eval_shape(
        solvers.ConjugateDirectionNetwork, ndim, key=jax.random.key(0), **options
    )
    rng = np.random.default_rng(seed)

    def draw(leaf):
        if not isinstance(leaf, jax.ShapeDtypeStruct):
            return leaf
        fan_in = int(np.prod(leaf.shape[1:]))
        # biases are (out, 1, ..): those of a 3^d kernel of 16 channels
        limit = 1 / np.sqrt(fan_in if fan_in > 1 else 16 * 3**ndim)
        return jnp.asarray(rng.uniform(-limit, limit, leaf.shape), leaf.dtype)

    return jax.tree.map(draw, like)


def pressure_problem(shape=(32, 32), kind="obstacles", seed=1, dtype="float64"):
    """A pressure Poisson system of ``pde.pressure_cells`` and a random
    right-hand side on its fluid cells."""
    cells = pde.pressure_cells(kind, shape, jax.random.key(seed))
    operator = pde.PressureOperator(cells, dtype=dtype)
    b = jax.random.normal(jax.random.key(seed + 1), (operator.shape[0],), dtype)
    return operator, b * operator.fluid.reshape(-1)
