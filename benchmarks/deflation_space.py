"""GCRO-DR's deflation space without eig: time per call against today's path.

    python benchmarks/deflation_space.py
    python benchmarks/deflation_space.py --dtype float32 --repeats 200

For m in (20, 40, 80) and k in (5, 10, 20) with k < m: the k-dimensional
invariant subspace of the m x m harmonic Ritz pencil (left, right) for its
eigenvalues of smallest modulus, from

- ours: ``solvers.krylov._deflation_space.smallest_eigenspace(left, right, k)``
  (QR/SVD only; any backend);
- reference: today's ``_harmonic_ritz_basis`` tail, ``solve(right, left)``,
  eig, the k smallest |theta|, real/imaginary parts, QR; its eig is
  ``jnp.linalg.eig`` (LAPACK geev) on CPU and the host callback
  ``host_eig`` (numpy on the host, the previous GPU path) elsewhere.

Pencils: the GCRO-DR cycles stored in tests/solvers/data/deflation_pencils.npz
(convection-diffusion, see make_deflation_pencils.py), every stored pencil
of size m, used with each k; a pencil whose cycle used k or fewer columns
(the caller discards its space; ours then runs to max_steps) is left out.
Each function is jitted and run once before timing; calls alternate between
the two, ``--repeats`` per pencil, and the table gives the median over all
calls. ``steps``: our squarings (min/median/max over the pencils); ``angle``:
the largest principal-angle sine between ours and numpy's eig (float64) where
|theta_k| < 0.9 |theta_{k+1}|.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np

from sciax.solvers.krylov._deflation_space import smallest_eigenspace_with_stats

DATA = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "solvers"
    / "data"
    / "deflation_pencils.npz"
)
SIZES = ((20, 5), (20, 10), (40, 5), (40, 10), (40, 20), (80, 5), (80, 10), (80, 20))


def host_eig(matrix):
    """The previous GPU path (up to commit 9b7de2d): numpy's eig through a
    host callback, since cuSOLVER's geev failed on these pencils."""
    complex_dtype = jnp.complex128 if matrix.dtype == jnp.float64 else jnp.complex64
    shapes = (
        jax.ShapeDtypeStruct(matrix.shape[:1], complex_dtype),
        jax.ShapeDtypeStruct(matrix.shape, complex_dtype),
    )

    def eig(a):
        values, vectors = np.linalg.eig(np.asarray(a))
        return values.astype(complex_dtype), vectors.astype(complex_dtype)

    return jax.pure_callback(eig, shapes, matrix, vmap_method="sequential")


def reference(left, right, k):
    """The previous path: eig of solve(right, left), k smallest |theta|, QR."""
    pencil = jnp.linalg.solve(right, left)
    if jax.default_backend() == "cpu":
        values, vectors = jnp.linalg.eig(pencil)
    else:
        values, vectors = host_eig(pencil)
    order = jnp.argsort(jnp.abs(values))[:k]
    chosen = vectors[:, order]
    real = jnp.where(jnp.imag(values[order]) >= 0, jnp.real(chosen), jnp.imag(chosen))
    q, _ = jnp.linalg.qr(real.astype(left.dtype))
    return q


def numpy_angle(left, right, k, basis):
    """sin of the largest principal angle to numpy's k smallest (None
    without a gap |theta_k| < 0.9 |theta_{k+1}|)."""
    values, vectors = np.linalg.eig(np.linalg.solve(right, left))
    order = np.argsort(np.abs(values))
    moduli = np.abs(values[order])
    if not moduli[k - 1] < 0.9 * moduli[k]:
        return None
    chosen = vectors[:, order[:k]]
    u, _, _ = np.linalg.svd(np.concatenate([chosen.real, chosen.imag], 1))
    exact = u[:, :k]
    basis = np.float64(basis)
    return float(np.linalg.norm(basis - exact @ (exact.T @ basis), 2))


def pencils_of_size(m):
    data = np.load(DATA)
    count = sum(name.startswith("left_") for name in data.files)
    return [
        (data[f"left_{i}"], data[f"right_{i}"], int(data[f"used_{i}"].sum()))
        for i in range(count)
        if data[f"left_{i}"].shape[0] == m
    ]


def call_time(function, *args):
    start = time.perf_counter()
    jax.block_until_ready(function(*args))
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=16)
    args = parser.parse_args()
    dtype = jnp.dtype(args.dtype)

    device = jax.devices()[0]
    print(f"# python {' '.join(sys.argv)}")
    print(
        f"# device: {device.platform} {device.device_kind}, jax {jax.__version__}, "
        f"{args.dtype}, {args.repeats} calls per pencil, median"
    )
    eig_name = (
        "jnp.linalg.eig (LAPACK)"
        if jax.default_backend() == "cpu"
        else "_host_eig (host callback)"
    )
    print(f"# reference: solve + {eig_name} + selection + QR")
    header = (
        f"{'m':>3} {'k':>3} {'pencils':>7} {'ours us':>9} {'ref us':>9} "
        f"{'ours/ref':>8} {'steps':>9} {'angle':>8}"
    )
    print(header)
    print("-" * len(header))
    for m, k in SIZES:
        pencils = [(a, b) for a, b, used in pencils_of_size(m) if used > k]
        if not pencils:
            continue
        ours = jax.jit(
            lambda a, b, k=k: smallest_eigenspace_with_stats(
                a, b, k, max_steps=args.max_steps
            )
        )
        ref = jax.jit(lambda a, b, k=k: reference(a, b, k))
        ours_times, ref_times, steps, angles = [], [], [], []
        for left, right in pencils:
            a, b = jnp.asarray(left, dtype), jnp.asarray(right, dtype)
            basis, stats = jax.block_until_ready(ours(a, b))
            jax.block_until_ready(ref(a, b))
            steps.append(int(stats["num_steps"]))
            angle = numpy_angle(left, right, k, np.asarray(basis))
            if angle is not None:
                angles.append(angle)
            for _ in range(args.repeats):
                ours_times.append(call_time(ours, a, b))
                ref_times.append(call_time(ref, a, b))
        t_ours = 1e6 * np.median(ours_times)
        t_ref = 1e6 * np.median(ref_times)
        step_text = f"{min(steps)}/{int(np.median(steps))}/{max(steps)}"
        angle_text = f"{max(angles):.1e}" if angles else "-"
        print(
            f"{m:>3} {k:>3} {len(pencils):>7} {t_ours:>9.0f} {t_ref:>9.0f} "
            f"{t_ours / t_ref:>8.2f} {step_text:>9} {angle_text:>8}"
        )
    print("steps: min/median/max over the pencils; angle: max over gap cases")


if __name__ == "__main__":
    main()
