"""Writes deflation_pencils.npz: harmonic Ritz pencils that GCRO-DR builds on
a sequence of convection-diffusion systems, for tests/solvers/test_deflation_space.py.

    python tests/solvers/data/make_deflation_pencils.py

The systems: -Laplace(u) + beta . grad(u) + c u on a 20 x 20 interior grid
(n = 400, h = 1/21, u = 0 on the boundary), 5-point Laplacian, central
differences for the convection, beta = w (0.5 - y, x - 0.5) + drift (a
recirculating flow: non-normal, complex eigenvalues), c = -60 (indefinite:
three eigenvalues left of the origin, which makes deflation matter). Four
systems per chain, w = 50, 55, 60, 65 and drift (5, 3 - i), one random
right-hand side each (seed 0); GCRO-DR(m, k) for (m, k) = (20, 5), (40, 10),
(80, 20), rtol 1e-10, the recycle space carried along the chain with
``state``.

Every cycle's pencil is captured by wrapping
``sciax.solvers.krylov._gcrodr._harmonic_ritz_basis``: the wrapper forms
``left`` and ``right`` as that function does (G^T G and G^T V^T W, unused
columns padded so that their theta is 1e12 * scale) and hands them to the
host with ``jax.debug.callback``. (If that function's arguments change, this
wrapper must follow; the stored file does not.)

Kept per (m, k): cycles with a gap |theta_k| < 0.9 |theta_{k+1}| (the
eigenvalues from numpy.linalg.eig on solve(right, left)), cycles where a
complex pair straddles position k, and cycles that converged before using
all m columns (padded). Stored as float64 arrays ``left_{i}``, ``right_{i}``,
``used_{i}`` and scalar ``k_{i}``; ``kind_{i}`` is "gap", "pair" or "padded".
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sps

from sciax import solvers
from sciax.solvers.krylov import _gcrodr

OUT = Path(__file__).with_name("deflation_pencils.npz")
GRID = 20
PER_KIND = 2
REACTION = -60.0

captured = []
original = _gcrodr._harmonic_ritz_basis


def recording(g, directions, krylov_basis, used, k, basis_products):
    left = g.T @ g
    products = krylov_basis @ directions.T if basis_products is None else basis_products
    right = g.T @ products
    scale = jnp.max(jnp.abs(left)) + 1.0
    unused = jnp.diag(jnp.where(used, 0.0, 1.0))
    both = used[:, None] & used[None, :]
    left = jnp.where(both, left, 0.0) + 1e12 * scale * unused
    right = jnp.where(both, right, 0.0) + unused
    jax.debug.callback(
        lambda a, b, u: captured.append((np.array(a), np.array(b), np.array(u), k)),
        left,
        right,
        used,
    )
    return original(g, directions, krylov_basis, used, k, basis_products)


def convection_diffusion(rotation, drift, reaction):
    """-Laplace(u) + beta . grad(u) + reaction u, beta = rotation * (0.5 - y,
    x - 0.5) + drift: a recirculating flow (complex eigenvalues)."""
    h = 1.0 / (GRID + 1)
    second = sps.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(GRID, GRID)) / h**2
    first = sps.diags([-1.0, 1.0], [-1, 1], shape=(GRID, GRID)) / (2 * h)
    eye = sps.identity(GRID)
    nodes = h * np.arange(1, GRID + 1)
    y, x = np.meshgrid(nodes, nodes, indexing="ij")  # node index y * GRID + x
    beta_x = (rotation * (0.5 - y) + drift[0]).ravel()
    beta_y = (rotation * (x - 0.5) + drift[1]).ravel()
    laplace = sps.kron(eye, second) + sps.kron(second, eye)
    convection = sps.diags(beta_x) @ sps.kron(eye, first) + sps.diags(
        beta_y
    ) @ sps.kron(first, eye)
    matrix = laplace + convection + reaction * sps.identity(GRID * GRID)
    return np.asarray(matrix.todense())


def classify(left, right, used, k):
    values = np.linalg.eigvals(np.linalg.solve(right, left))
    moduli = np.sort(np.abs(values))
    n_used = int(used.sum())
    if n_used < used.shape[0] and n_used > k + 1:
        return "padded"
    if n_used < used.shape[0]:
        return None
    if moduli[k - 1] < 0.9 * moduli[k]:
        return "gap"
    if np.isclose(moduli[k - 1], moduli[k], rtol=1e-9):
        return "pair"
    return None


def capture(m, k, count=4, seed=0):
    """Every cycle's (left, right, used, k) of GCRO-DR(m, k) along one chain."""
    _gcrodr._harmonic_ritz_basis = recording
    try:
        rng = np.random.default_rng(seed)
        solver = solvers.GCRODR(
            rtol=1e-10, atol=0.0, max_steps=3000, restart=m, recycle=k
        )
        state = None
        captured.clear()
        for i in range(count):
            matrix = convection_diffusion(50.0 + 5.0 * i, (5.0, 3.0 - i), REACTION)
            b = jnp.asarray(rng.normal(size=GRID * GRID))
            solution = solvers.solve(jnp.asarray(matrix), b, solver, state=state)
            state = solution.state
            jax.block_until_ready(solution.value)
            print(
                f"m={m} k={k} system {i}: {int(solution.stats['num_matvecs'])} matvecs",
                file=sys.stderr,
            )
        return list(captured)
    finally:
        _gcrodr._harmonic_ritz_basis = original


def main():
    kept = {}
    for m, k in ((20, 5), (40, 10), (80, 20)):
        pencils = capture(m, k)
        counts = {"gap": 0, "pair": 0, "padded": 0}
        for left, right, used, kk in pencils:
            kind = classify(left, right, used, kk)
            if kind is None or counts[kind] >= PER_KIND:
                continue
            counts[kind] += 1
            kept[len(kept)] = (left, right, used, kk, kind)
        print(f"m={m} k={k}: {len(pencils)} cycles, kept {counts}", file=sys.stderr)
    arrays = {}
    for i, (left, right, used, k, kind) in kept.items():
        arrays[f"left_{i}"] = left
        arrays[f"right_{i}"] = right
        arrays[f"used_{i}"] = used
        arrays[f"k_{i}"] = np.asarray(k)
        arrays[f"kind_{i}"] = np.asarray(kind)
    temporary = OUT.with_suffix(".tmp.npz")
    np.savez_compressed(temporary, **arrays)
    os.replace(temporary, OUT)
    print(f"wrote {OUT} ({len(kept)} pencils)", file=sys.stderr)


if __name__ == "__main__":
    main()
