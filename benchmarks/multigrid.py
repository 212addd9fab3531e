"""Multigrid-preconditioned CG on the FNO Darcy problem as the grid grows.

    python benchmarks/multigrid.py --nodes 129 257 421 1025 --rtol 1e-6
    python benchmarks/multigrid.py --ndim 3 --nodes 34 66 130 --rtol 1e-6

-div(a grad u) = 1, u = 0 on the boundary, a = 12 where a Gaussian random
field (alpha = 2, tau = 3) is >= 0 and 3 elsewhere (the FNO benchmark's
coefficient), on ``nodes``^d grid nodes (boundary included). Our CG, Jacobi-PCG
and Multigrid-PCG run compiled (compile time excluded, given separately); the
multigrid time includes building the hierarchy, which happens inside every
solve. Peers in the same run: SciPy's sparse direct solve (SuperLU) on the
assembled matrix and, if installed, pyamg's smoothed aggregation (setup +
solve).
"""

import argparse
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sps
import scipy.sparse.linalg as spla

from sciax import pde, solvers


def assemble(operator):
    """CSR matrix of a DiffusionOperator: sum over dimensions of D^T F D."""
    grid = operator.grid_shape
    matrix = 0
    for dim, n in enumerate(grid):
        difference = sps.diags([np.ones(n), -np.ones(n)], [-1, 0], shape=(n + 1, n))
        factors = [sps.identity(s) for s in grid]
        factors[dim] = difference
        d = factors[0]
        for f in factors[1:]:
            d = sps.kron(d, f)
        faces = np.asarray(operator._faces(dim)).reshape(-1)
        matrix = matrix + d.T @ sps.diags(faces) @ d
    return sps.csr_matrix(matrix)


def timed(function, *args, repeats):
    start = time.perf_counter()
    compiled = jax.jit(function).lower(*args).compile()
    compile_time = time.perf_counter() - start
    out = compiled(*args)
    jax.block_until_ready(out)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = compiled(*args)
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - start)
    return out, best, compile_time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, nargs="+", default=[129, 257, 421])
    parser.add_argument("--ndim", type=int, default=2, choices=(2, 3))
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--skip-cg", action="store_true", help="omit unpreconditioned CG"
    )
    parser.add_argument("--skip-scipy", action="store_true")
    args = parser.parse_args()
    dtype = jnp.dtype(args.dtype)
    print(f"# python {' '.join(sys.argv)}")
    device = jax.devices()[0]
    print(
        f"# device: {device.platform} {device.device_kind}, jax {jax.__version__}, {dtype}"
    )
    header = (
        f"{'grid':>10} {'method':22} {'iters':>6} {'rel. residual':>13} "
        f"{'time s':>8} {'compile s':>9} {'vs ours MG':>10}"
    )
    print(header)
    print("-" * len(header))
    try:
        import pyamg
    except ImportError:
        pyamg = None
    for nodes in args.nodes:
        shape = (nodes,) * args.ndim
        field = pde.gaussian_random_field(jax.random.key(0), shape, dtype=jnp.float64)
        coefficient = jnp.where(field >= 0, 12.0, 3.0).astype(dtype)
        operator = solvers.DiffusionOperator(coefficient)
        size = operator.shape[0]
        b = jnp.ones(size, dtype)
        rows = []
        methods = [
            ("CG + multigrid", solvers.Multigrid()),
            ("CG + Jacobi", solvers.Jacobi()),
        ]
        if not args.skip_cg:
            methods.append(("CG", None))
        for label, preconditioner in methods:
            solver = solvers.CG(rtol=args.rtol, atol=0.0, max_steps=50 * nodes)

            def run(coefficient, b, preconditioner=preconditioner, solver=solver):
                operator = solvers.DiffusionOperator(coefficient)
                return solvers.solve(
                    operator, b, solver, preconditioner=preconditioner, throw=False
                )

            out, elapsed, compile_time = timed(
                run, coefficient, b, repeats=args.repeats
            )
            residual = float(
                jnp.linalg.norm(b - operator.mv(out.value)) / jnp.linalg.norm(b)
            )
            ok = out.result == solvers.RESULTS.successful
            rows.append(
                (
                    label,
                    int(out.stats["num_steps"]),
                    residual,
                    elapsed,
                    compile_time,
                    ok,
                )
            )
        if not args.skip_scipy:
            matrix = assemble(operator).astype(np.float64)
            rhs = np.ones(size)
            start = time.perf_counter()
            x = spla.spsolve(matrix.tocsc(), rhs)
            elapsed = time.perf_counter() - start
            residual = np.linalg.norm(rhs - matrix @ x) / np.linalg.norm(rhs)
            rows.append(("scipy spsolve (direct)", 1, residual, elapsed, 0.0, True))
            if pyamg is not None:
                start = time.perf_counter()
                ml = pyamg.smoothed_aggregation_solver(matrix)
                history = []
                x = ml.solve(rhs, tol=args.rtol, accel="cg", residuals=history)
                elapsed = time.perf_counter() - start
                residual = np.linalg.norm(rhs - matrix @ x) / np.linalg.norm(rhs)
                rows.append(
                    (
                        "pyamg SA-CG (+setup)",
                        len(history) - 1,
                        residual,
                        elapsed,
                        0.0,
                        True,
                    )
                )
        ours = rows[0][3]
        grid = "x".join(str(s) for s in shape)
        for label, iterations, residual, elapsed, compile_time, ok in rows:
            flag = "" if ok else "  (did not converge)"
            print(
                f"{grid:>10} {label:22} {iterations:6d} {residual:13.2e} {elapsed:8.3f} "
                f"{compile_time:9.1f} {elapsed / ours:10.2f}{flag}"
            )


if __name__ == "__main__":
    main()
