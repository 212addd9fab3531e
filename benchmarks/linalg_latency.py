"""Latency of small dense linear algebra on the current backend, and of
GCRO-DR's deflation-space step with variants of its two kernels.

    python benchmarks/linalg_latency.py

Per operation: microseconds per call, ten calls chained inside one compiled
loop (so dispatch is not counted), median of 30 runs, for m = 20, 40, 80
(float64). Then ``smallest_eigenspace`` (k = 10) on three stored GCRO-DR
pencils with its null space from LU instead of a complete QR, and its
singular values from cuSOLVER's Jacobi or QR-iteration SVD (GPU only), with
the largest principal-angle sine to numpy's eig. The figures of one H100
are in NOTES.md ("GCRO-DR's eigen-step on the GPU").
"""

import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
from jax import lax

REPS = 10  # ops chained inside one program


def timeit(f, *args, n=30):
    f = jax.jit(f)
    try:
        jax.block_until_ready(f(*args))
    except Exception as e:
        return f"ERR {type(e).__name__}: {str(e)[:60]}"
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        ts.append(time.perf_counter() - t)
    return f"{np.median(ts) / REPS * 1e6:9.1f}"


def chain(op):
    def f(x):
        def body(i, x):
            y = op(x)
            return x + 1e-30 * jnp.sum(jnp.abs(y)).astype(x.dtype)

        return lax.fori_loop(0, REPS, body, x)

    return f


def host_eig(a):
    shapes = (
        jax.ShapeDtypeStruct(a.shape[:1], jnp.complex128),
        jax.ShapeDtypeStruct(a.shape, jnp.complex128),
    )
    return jax.pure_callback(lambda x: tuple(np.linalg.eig(np.asarray(x))), shapes, a)


la = lax.linalg
ops = {
    "matmul": lambda a: a @ a,
    "qr_reduced(2m,m)": lambda a: jnp.linalg.qr(jnp.concatenate([a, a.T]))[0],
    "qr_complete(2m,m)": lambda a: jnp.linalg.qr(
        jnp.concatenate([a, a.T]), mode="complete"
    )[0],
    "svdvals2 default": lambda a: jnp.linalg.svd(jnp.stack([a, a.T]), compute_uv=False),
    "svdvals2 jacobi": lambda a: la.svd(
        jnp.stack([a, a.T]), compute_uv=False, algorithm=la.SvdAlgorithm.JACOBI
    ),
    "svdvals2 qr": lambda a: la.svd(
        jnp.stack([a, a.T]), compute_uv=False, algorithm=la.SvdAlgorithm.QR
    ),
    "svdvals2 polar": lambda a: la.svd(
        jnp.stack([a, a.T]), compute_uv=False, algorithm=la.SvdAlgorithm.POLAR
    ),
    "svd full default": lambda a: jnp.linalg.svd(a)[0],
    "svd full jacobi": lambda a: la.svd(a, algorithm=la.SvdAlgorithm.JACOBI)[0],
    "eigh default": lambda a: jnp.linalg.eigh(a + a.T)[1],
    "eigh jacobi": lambda a: la.eigh(
        a + a.T, implementation=la.EighImplementation.JACOBI
    )[1],
    "eigvalsh default": lambda a: jnp.linalg.eigvalsh(a + a.T),
    "cholesky": lambda a: jnp.linalg.cholesky(a @ a.T + jnp.eye(a.shape[0])),
    "lu": lambda a: la.lu(a)[0],
    "solve": lambda a: jnp.linalg.solve(a, a),
    "triangular_solve": lambda a: la.triangular_solve(
        jnp.triu(a) + 5 * jnp.eye(a.shape[0]), a, left_side=True
    ),
    "eig cusolver": lambda a: la.eig(
        a, compute_left_eigenvectors=False, implementation=la.EigImplementation.CUSOLVER
    )[0],
    "eig default": lambda a: jnp.linalg.eig(a)[1],
    "host_eig": lambda a: host_eig(a)[1],
}
print("# python benchmarks/linalg_latency.py")
print(
    "backend",
    jax.default_backend(),
    jax.devices()[0].device_kind,
    "jax",
    jax.__version__,
)
print(f"per-op microseconds (chained x{REPS} in one program, median of 30)")
sizes = (20, 40, 80)
print(f"{'op':22s}" + "".join(f"{m:>10d}" for m in sizes))
rng = np.random.default_rng(0)
for name, op in ops.items():
    row = []
    for m in sizes:
        a = jnp.asarray(rng.standard_normal((m, m)))
        row.append(timeit(chain(op), a))
    print(
        f"{name:22s}"
        + "".join(f"{r:>10s}" if not r.startswith("ERR") else "  " + r for r in row),
        flush=True,
    )

# ---- the whole eigen-step, with variants of its two kernels ----
from pathlib import Path

from sciax.solvers.krylov import _deflation_space as ds

DATA = (
    Path(__file__).resolve().parent.parent / "tests/solvers/data/deflation_pencils.npz"
)
data = np.load(DATA)
orig_null, orig_logtan = ds._null_space, ds._log_tangents
orig_fast = ds._log_tangents_from_gram


def null_lu(relation):
    m = relation.shape[0]
    lu, _, perm = la.lu(relation.T)  # C^T[perm] = L U
    l1, l2 = lu[:m], lu[m:]
    top = -la.triangular_solve(
        l1, l2.T, left_side=True, lower=True, transpose_a=True, unit_diagonal=True
    )
    y = jnp.concatenate([top, jnp.eye(m, dtype=lu.dtype)])
    z = jnp.zeros_like(y).at[perm].set(y)
    return jnp.linalg.qr(z)[0]


def logtan_alg(alg):
    def f(graph, floor):
        m = graph.shape[0] // 2
        values = la.svd(
            jnp.stack([graph[m:], graph[:m]]), compute_uv=False, algorithm=alg
        )
        sines, cosines = values[0], values[1, ::-1]
        return jnp.log(jnp.maximum(sines, floor)) - jnp.log(jnp.maximum(cosines, floor))

    return f


def logtan_gram(graph, floor):
    # squares from the Gram matrices' eigenvalues (NOTES: float32 pairs)
    m = graph.shape[0] // 2
    blocks = jnp.stack([graph[m:], graph[:m]])
    squares = jnp.linalg.eigvalsh(jnp.swapaxes(blocks, 1, 2) @ blocks)
    sines2, cosines2 = squares[0, ::-1], squares[1]
    floor2 = floor * floor
    return 0.5 * (
        jnp.log(jnp.maximum(sines2, floor2)) - jnp.log(jnp.maximum(cosines2, floor2))
    )


# (null space, log tangents for the pair test, log tangents elsewhere)
variants = {
    "current": (orig_null, orig_logtan, orig_fast),
    "svd-every-step": (orig_null, orig_logtan, orig_logtan),
    "lu-null": (null_lu, orig_logtan, orig_fast),
    "qrsvd": (orig_null, logtan_alg(la.SvdAlgorithm.QR), orig_fast),
    "gram-only": (orig_null, logtan_gram, logtan_gram),
}
print(
    "\nwhole smallest_eigenspace, k=10, microseconds per call (median of 20), and angle to numpy"
)
for name, (nul, lt, fast) in variants.items():
    ds._null_space, ds._log_tangents, ds._log_tangents_from_gram = nul, lt, fast
    for i in (0, 8, 12):
        left, right = data[f"left_{i}"], data[f"right_{i}"]
        m = left.shape[0]
        f = jax.jit(lambda l, r: ds.smallest_eigenspace_with_stats(l, r, 10))
        try:
            basis, st = jax.block_until_ready(f(left, right))
        except Exception as e:
            print(f"{name:12s} m={m:3d} ERR {type(e).__name__}: {str(e)[:80]}")
            continue
        ts = []
        for _ in range(20):
            t = time.perf_counter()
            jax.block_until_ready(f(left, right))
            ts.append(time.perf_counter() - t)
        vals, vecs = np.linalg.eig(np.linalg.solve(right, left))
        o = np.argsort(np.abs(vals))[:10]
        u, _, _ = np.linalg.svd(np.concatenate([vecs[:, o].real, vecs[:, o].imag], 1))
        ex = u[:, :10]
        b = np.asarray(basis)
        ang = np.linalg.norm(b - ex @ (ex.T @ b), 2)
        print(
            f"{name:12s} m={m:3d} {np.median(ts) * 1e6:9.0f} us steps={int(st['num_steps'])} angle={ang:.1e}",
            flush=True,
        )
ds._null_space, ds._log_tangents = orig_null, orig_logtan
ds._log_tangents_from_gram = orig_fast
