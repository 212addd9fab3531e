"""Matvecs and wall time per system on a sequence of related systems.

    python benchmarks/krylov_recycling.py --n 128 --count 50 --rtol 1e-8
    python benchmarks/krylov_recycling.py --family nonsymmetric   # or helmholtz

Families (``--family``): "darcy", -div(a grad u) with a = exp(GRF)
(alpha = 2, tau = 3, pde.gaussian_random_field), SPD; "nonsymmetric", the
Laplacian times diag(a); "helmholtz", -Laplace(u) - k0^2 a u, indefinite;
"heat", one backward-Euler step (time step 1) with a fixed coefficient, the
systems differing only in their Dirichlet boundary data (a GRF sample's ring).
One GRF sample per system, u = 0 on the boundary, 5-point stencils on n x n
interior nodes, right-hand side 1. Ours run as
one compiled ``solve_sequence`` (compiled beforehand; the table gives the
compile time separately); SciPy runs on the same matrices assembled in CSR
form, in the same process. Matvecs are counted for every method (SciPy's by
wrapping its operator).
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
from jax import lax

from sciax import pde, solvers

FAMILIES = {
    "darcy": pde.darcy_operator,
    "nonsymmetric": pde.nonsymmetric_darcy_operator,
    "helmholtz": None,  # needs the wavenumber: set in main
    "heat": None,  # one fixed matrix: set in main
}
build = pde.darcy_operator


def assemble(operator):
    """CSR matrix of the operator: exact for DiffusionOperator (sum over
    dimensions of D_d^T F_d D_d plus the reaction), else column by column."""
    if not isinstance(operator, solvers.DiffusionOperator):
        size = operator.shape[0]
        columns = jax.vmap(operator.mv)(jnp.eye(size))
        return sps.csr_matrix(np.asarray(columns).T)
    n0, n1 = operator.grid_shape

    def difference(n):
        # faces 0..n; face f couples nodes f-1 and f (boundary values are 0)
        return sps.diags([np.ones(n), -np.ones(n)], [-1, 0], shape=(n + 1, n))

    d0 = sps.kron(difference(n0), sps.identity(n1))
    d1 = sps.kron(sps.identity(n0), difference(n1))
    matrix = 0
    for d, dim in ((d0, 0), (d1, 1)):
        faces = np.asarray(operator._faces(dim)).reshape(-1)
        matrix = matrix + d.T @ sps.diags(faces) @ d
    reaction = np.broadcast_to(np.asarray(operator.reaction), (n0, n1)).reshape(-1)
    return sps.csr_matrix(matrix + sps.diags(reaction))


class Counted(spla.LinearOperator):
    def __init__(self, matrix):
        super().__init__(matrix.dtype, matrix.shape)
        self.matrix = matrix
        self.count = 0

    def _matvec(self, x):
        self.count += 1
        return self.matrix @ x


def run_ours(label, solver, log_a, rhs, **options):
    start = time.perf_counter()
    lowered = solvers.solve_sequence.lower(build, log_a, rhs, solver, **options)
    compiled = lowered.compile()
    compile_time = time.perf_counter() - start
    start = time.perf_counter()
    out = compiled(build, log_a, rhs, solver, **options)
    out.value.block_until_ready()
    elapsed = time.perf_counter() - start
    ok = bool(jnp.all(out.result == solvers.RESULTS.successful))
    return label, np.asarray(out.stats["num_matvecs"]), elapsed, compile_time, ok


def run_scipy(label, matrices, rhs, method):
    counts = []
    start = time.perf_counter()
    ok = True
    for matrix, b in zip(matrices, rhs, strict=True):
        counted = Counted(matrix)
        info = method(counted, b)
        ok &= info == 0
        counts.append(counted.count)
    return label, np.asarray(counts), time.perf_counter() - start, 0.0, ok


def run_jax_peers(log_a, rhs, rtol, max_steps, restart, symmetric_positive):
    """jax.scipy's cg/gmres (no iteration count is returned: matvecs are not
    known, nan in the table) and lineax if installed, as one compiled map."""
    import jax.scipy.sparse.linalg as jspla

    def jax_scipy(method):
        def one(g, b):
            operator = build(g)
            x, _ = method(operator.mv, b)
            return (
                x,
                jnp.linalg.norm(b - operator.mv(x)) <= rtol * jnp.linalg.norm(b),
                0,
            )

        return one

    peers = [
        (
            f"jax.scipy gmres({restart})",
            jax_scipy(
                lambda mv, b: jspla.gmres(
                    mv,
                    b,
                    tol=rtol,
                    atol=0.0,
                    restart=restart,
                    maxiter=max_steps // restart,
                )
            ),
        )
    ]
    if symmetric_positive:
        peers.append(
            (
                "jax.scipy cg",
                jax_scipy(
                    lambda mv, b: jspla.cg(mv, b, tol=rtol, atol=0.0, maxiter=max_steps)
                ),
            )
        )
    try:
        import lineax as lx
    except ImportError:
        lx = None
    if lx is not None:

        def lineax_solver(solver):
            def one(g, b):
                operator = build(g)
                structure = lx.FunctionLinearOperator(
                    operator.mv,
                    jax.ShapeDtypeStruct(b.shape, b.dtype),
                    tags=lx.positive_semidefinite_tag if symmetric_positive else (),
                )
                out = lx.linear_solve(structure, b, solver, throw=False)
                done = jnp.linalg.norm(
                    b - operator.mv(out.value)
                ) <= rtol * jnp.linalg.norm(b)
                return out.value, done, out.stats["num_steps"]

            return one

        peers.append(
            (
                f"lineax GMRES({restart})",
                lineax_solver(
                    lx.GMRES(rtol=rtol, atol=0.0, restart=restart, max_steps=max_steps)
                ),
            )
        )
        if symmetric_positive:
            peers.append(
                (
                    "lineax CG",
                    lineax_solver(lx.CG(rtol=rtol, atol=0.0, max_steps=max_steps)),
                )
            )
    results = []
    for label, one in peers:
        mapped = jax.jit(lambda g, b, one=one: lax.map(lambda args: one(*args), (g, b)))
        start = time.perf_counter()
        compiled = mapped.lower(log_a, rhs).compile()
        compile_time = time.perf_counter() - start
        start = time.perf_counter()
        _, done, steps = compiled(log_a, rhs)
        done.block_until_ready()
        elapsed = time.perf_counter() - start
        # lineax counts iterations; its GMRES's steps are matvecs up to restarts
        matvecs = (
            np.asarray(steps, float) if "lineax" in label else np.full(len(rhs), np.nan)
        )
        results.append((label, matvecs, elapsed, compile_time, bool(jnp.all(done))))
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument("--restart", type=int, default=40)
    parser.add_argument("--recycle", type=int, default=10)
    parser.add_argument("--family", choices=sorted(FAMILIES), default="darcy")
    parser.add_argument("--wavenumber", type=float, default=15.0)
    parser.add_argument("--skip-scipy", action="store_true", help="omit the SciPy rows")
    parser.add_argument(
        "--scipy-methods",
        nargs="+",
        choices=["gmres", "gcrotmk", "cg"],
        default=["gmres", "gcrotmk", "cg"],
        help="which SciPy rows to run (scipy gmres is slow at 256^2)",
    )
    parser.add_argument(
        "--skip-jax-peers", action="store_true", help="omit jax.scipy, lineax"
    )
    parser.add_argument(
        "--only", nargs="+", help="run only our methods whose label has one of these"
    )
    parser.add_argument(
        "--preconditioners",
        action="store_true",
        help="add Jacobi / multigrid rows (rebuilt per system, and one fixed)",
    )
    args = parser.parse_args()
    global build
    n = args.n
    heat = None
    if args.family == "helmholtz":
        build = lambda g: pde.helmholtz_operator(g, args.wavenumber)  # noqa: E731
    elif args.family == "heat":
        field = pde.gaussian_random_field(jax.random.key(123), (n + 2, n + 2))
        heat = pde.heat_operator(jnp.exp(field), 1.0)
        build = lambda g: heat  # noqa: E731
    else:
        build = FAMILIES[args.family]
    symmetric_positive = args.family in ("darcy", "heat")
    count, rtol = args.count, args.rtol
    m, k = args.restart, args.recycle
    print(f"# {' '.join(sys.argv)}")
    device = jax.devices()[0]
    print(f"# device: {device.platform} {device.device_kind}, jax {jax.__version__}")
    keys = jax.random.split(jax.random.key(0), count)
    log_a = jax.vmap(lambda key: pde.gaussian_random_field(key, (n + 2, n + 2)))(keys)
    if heat is None:
        rhs = jnp.ones((count, n * n))
    else:
        # the systems differ in their boundary data only (each GRF sample's ring)
        rhs = jax.vmap(heat.boundary_source)(log_a)
    max_steps = 20 * n * n
    tolerances = {"rtol": rtol, "atol": 0.0, "max_steps": max_steps}
    gcrodr = solvers.GCRODR(**tolerances, restart=m, recycle=k)
    runs = [
        (f"GMRES({m})", solvers.GMRES(**tolerances, restart=m), {"order": "given"}),
        (
            f"GMRES-DR({m},{k})",
            solvers.GMRESDR(**tolerances, restart=m, recycle=k),
            {"order": "given"},
        ),
        (f"GCRO-DR({m},{k}) given order", gcrodr, {"order": "given"}),
        (f"SKR: GCRO-DR({m},{k}) greedy", gcrodr, {"order": "greedy"}),
        ("SKR + warm start", gcrodr, {"order": "greedy", "warm_start": True}),
    ]
    if args.preconditioners:
        # Jacobi and multigrid are rebuilt for every system inside the scan
        # (a preconditioner that changes from system to system); "fixed" is
        # one multigrid hierarchy, built for the first system, used for all.
        fixed = (
            solvers.Multigrid().build(build(log_a[0])) if symmetric_positive else None
        )
        runs += [
            (
                "SKR + Jacobi per system",
                gcrodr,
                {"order": "greedy", "preconditioner": solvers.Jacobi()},
            ),
        ]
        if symmetric_positive:
            runs += [
                (
                    "SKR + multigrid per system",
                    gcrodr,
                    {"order": "greedy", "preconditioner": solvers.Multigrid()},
                ),
                (
                    "SKR + fixed multigrid",
                    gcrodr,
                    {"order": "greedy", "preconditioner": fixed},
                ),
            ]
    if symmetric_positive:
        runs += [
            (
                f"recycled CG (k={k}, 3k directions)",
                solvers.RecycledCG(**tolerances, recycle=k, collect=3 * k),
                {"order": "greedy"},
            ),
            ("CG", solvers.CG(**tolerances), {"order": "given"}),
        ]
        if args.preconditioners:
            runs += [
                (
                    "CG + Jacobi",
                    solvers.CG(**tolerances),
                    {"order": "given", "preconditioner": solvers.Jacobi()},
                ),
                (
                    "CG + multigrid",
                    solvers.CG(**tolerances),
                    {"order": "given", "preconditioner": solvers.Multigrid()},
                ),
                (
                    "recycled CG + multigrid",
                    solvers.RecycledCG(**tolerances, recycle=k, collect=3 * k),
                    {"order": "greedy", "preconditioner": solvers.Multigrid()},
                ),
            ]
    if args.only:
        runs = [run for run in runs if any(word in run[0] for word in args.only)]
    header = f"{'method':34} {'matvecs/sys':>11} {'vs GMRES':>8} {'ms/sys':>8} {'us/matvec':>9} {'compile s':>9} {'ok':>3}"
    print(f"# {args.family}: n = {n} ({n * n} unknowns), {count} systems, rtol {rtol}")
    print(header)
    print("-" * len(header), flush=True)
    results = []

    def report(row):
        results.append(row)
        label, matvecs, elapsed, compile_time, ok = row
        baseline = (
            results[0][1].mean() if results[0][0].startswith("GMRES(") else np.nan
        )
        per_matvec = elapsed / max(matvecs.sum(), 1)
        print(
            f"{label:34} {matvecs.mean():11.1f} {baseline / matvecs.mean():8.2f} "
            f"{1e3 * elapsed / count:8.1f} {1e6 * per_matvec:9.1f} {compile_time:9.1f} {'yes' if ok else 'NO':>3}",
            flush=True,
        )

    for label, solver, options in runs:
        report(run_ours(label, solver, log_a, rhs, **options))
    if not args.skip_jax_peers:
        for row in run_jax_peers(log_a, rhs, rtol, max_steps, m, symmetric_positive):
            report(row)
    scipy_methods = set() if args.skip_scipy else set(args.scipy_methods)
    if not symmetric_positive:
        scipy_methods.discard("cg")
    matrices = (
        [assemble(build(log_a[i])) for i in range(count)] if scipy_methods else []
    )
    rhs_np = np.asarray(rhs)
    if "gmres" in scipy_methods:
        report(
            run_scipy(
                f"scipy gmres({m})",
                matrices,
                rhs_np,
                lambda a, b: spla.gmres(
                    a, b, rtol=rtol, atol=0.0, restart=m, maxiter=max_steps
                )[1],
            )
        )
    if "gcrotmk" in scipy_methods:
        recycle_store = []
        report(
            run_scipy(
                f"scipy gcrotmk(m={m - k},k={k}) + CU",
                matrices,
                rhs_np,
                lambda a, b: spla.gcrotmk(
                    a,
                    b,
                    rtol=rtol,
                    atol=0.0,
                    m=m - k,
                    k=k,
                    CU=recycle_store,
                    discard_C=True,
                    maxiter=max_steps,
                )[1],
            )
        )
    if "cg" in scipy_methods:
        report(
            run_scipy(
                "scipy cg",
                matrices,
                rhs_np,
                lambda a, b: spla.cg(a, b, rtol=rtol, atol=0.0, maxiter=max_steps)[1],
            )
        )
    print(
        "# us/matvec: wall time per matvec, preconditioner and orthogonalisation included"
    )


if __name__ == "__main__":
    main()
