"""The linear-family generators through the library's solvers: which solver,
preconditioner and order make each family's data fastest, against SciPy.

    python benchmarks/family_generator_solvers.py --family nonsymmetric-darcy
    python benchmarks/family_generator_solvers.py --family helmholtz
    python benchmarks/family_generator_solvers.py --family heat

``pde.linear_family_samples`` (u = 0 on the boundary, 5-point stencils,
right-hand side 1, or one backward-Euler step from a random field for
"heat") with each solver x preconditioner x order in turn, all to the same
relative residual (1e-8 by default, float64): the family's default order
and preconditioner first (the default solver's space set to the rows'),
then GMRES(m), GMRES-DR(m, k), GCRO-DR(m, k) unsorted, greedy and fft-pca,
and for the SPD heat family CG, multigrid-PCG and recycled CG; against
SciPy's gcrotmk with a recycle store carried over the samples in the greedy
order (the SKR paper's baseline, equal memory: m - k Arnoldi vectors plus k
recycled) and SciPy's gmres(m), on the same matrices in the same run. Per
sample: matvecs and wall time (a second call of the compiled generator),
compile time apart; "vs default" is the default generator's time over the
row's, "mv vs gcrotmk" SciPy gcrotmk + CU's matvecs over the row's.
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

from benchmarks.krylov_recycling import Counted
from sciax import pde, solvers


def run_generator(family, key, count, resolution, **options):
    """Compile (one call on the same shapes), then time a second call."""

    def call():
        return pde.linear_family_samples(
            family, key, count, resolution=resolution, throw=False, **options
        )

    start = time.perf_counter()
    jax.block_until_ready(call())
    first = time.perf_counter() - start
    start = time.perf_counter()
    samples = jax.block_until_ready(call())
    elapsed = time.perf_counter() - start
    ok = bool(jnp.all(samples.result == solvers.RESULTS.successful))
    return samples, elapsed, max(first - elapsed, 0.0), ok


def family_system(family, key, field, resolution, wavenumber, time_step):
    """CSR matrix and right-hand side of one sample, assembled column by
    column from the family's own operator builder."""
    g = jnp.asarray(field)
    size = (resolution - 2) ** 2
    if family == "nonsymmetric-darcy":
        operator, b = pde.nonsymmetric_darcy_operator(g), np.ones(size)
    elif family == "helmholtz":
        operator, b = pde.helmholtz_operator(g, wavenumber), np.ones(size)
    else:
        h = pde.gaussian_random_field(
            jax.random.fold_in(key, 2**32 - 1), (resolution, resolution)
        )
        operator = pde.heat_operator(jnp.exp(h), time_step)
        b = np.asarray(g[1:-1, 1:-1]).reshape(-1) / time_step
    columns = jax.jit(jax.vmap(operator.mv))(jnp.eye(size))
    return sps.csr_matrix(np.asarray(columns).T), b


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--family", choices=["nonsymmetric-darcy", "helmholtz", "heat"], required=True
    )
    parser.add_argument("--resolution", type=int, default=50)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument("--restart", type=int, default=40)
    parser.add_argument("--recycle", type=int, default=20)
    parser.add_argument("--wavenumber", type=float, default=15.0)
    parser.add_argument("--time-step", type=float, default=1.0)
    args = parser.parse_args()
    print(f"# python {' '.join(sys.argv)}")
    device = jax.devices()[0]
    print(
        f"# device: {device.platform} {device.device_kind}, jax {jax.__version__}; "
        f"{args.family}, {args.count} samples at {args.resolution}^2 nodes, "
        f"rtol {args.rtol}"
    )
    key = jax.random.key(0)
    rtol, m, k = args.rtol, args.restart, args.recycle
    size = (args.resolution - 2) ** 2
    limits = {"rtol": rtol, "atol": 0.0, "max_steps": 20 * size}
    family_options = {"wavenumber": args.wavenumber, "time_step": args.time_step}
    gcrodr = solvers.GCRODR(**limits, restart=m, recycle=k)
    none = {"preconditioner": None, **family_options}
    rows = [
        (
            f"default order, GCRO-DR({m},{k})",
            dict(solver=gcrodr, **family_options),
        ),
        (
            f"GMRES({m})",
            dict(solver=solvers.GMRES(**limits, restart=m), order="none", **none),
        ),
        (
            f"GMRES-DR({m},{k})",
            dict(
                solver=solvers.GMRESDR(**limits, restart=m, recycle=k),
                order="none",
                **none,
            ),
        ),
        (f"GCRO-DR({m},{k}), no order", dict(solver=gcrodr, order="none", **none)),
        (f"GCRO-DR({m},{k}), greedy", dict(solver=gcrodr, order="greedy", **none)),
        (f"GCRO-DR({m},{k}), fft-pca", dict(solver=gcrodr, order="fft-pca", **none)),
    ]
    if args.family == "heat":
        recycled_cg = solvers.RecycledCG(**limits, recycle=k, collect=3 * k)
        rows[0] = (
            "default, MG-PCG",
            dict(solver=solvers.CG(**limits), **family_options),
        )
        rows += [
            ("CG", dict(solver=solvers.CG(**limits), order="none", **none)),
            ("recycled CG, greedy", dict(solver=recycled_cg, order="greedy", **none)),
            (
                "recycled CG + MG, greedy",
                dict(
                    solver=recycled_cg,
                    order="greedy",
                    preconditioner=solvers.Multigrid(),
                    **family_options,
                ),
            ),
        ]
    header = (
        f"{'method':32} {'matvecs/sample':>14} {'ms/sample':>9} {'vs default':>10} "
        f"{'mv vs gcrotmk':>13} {'compile s':>9} {'ok':>3}"
    )
    measured = []
    reference = None
    for label, options in rows:
        samples, elapsed, compile_time, ok = run_generator(
            args.family, key, args.count, args.resolution, **options
        )
        if reference is None:
            reference = samples
        matvecs = float(jnp.mean(samples.stats["num_matvecs"]))
        measured.append((label, matvecs, 1e3 * elapsed / args.count, compile_time, ok))
        print(f"# measured {label}", file=sys.stderr, flush=True)

    systems = [
        family_system(
            args.family,
            key,
            reference.field[i],
            args.resolution,
            args.wavenumber,
            args.time_step,
        )
        for i in range(args.count)
    ]
    order = np.asarray(
        pde.datasets._sample_order.sample_order("greedy", reference.field)
    )

    def scipy_row(label, method):
        counts, ok = [], True
        start = time.perf_counter()
        for i in order:
            matrix, b = systems[i]
            counted = Counted(matrix)
            ok &= method(counted, b) == 0
            counts.append(counted.count)
        per_sample = 1e3 * (time.perf_counter() - start) / args.count
        measured.append((label, float(np.mean(counts)), per_sample, 0.0, bool(ok)))

    store = []
    scipy_row(
        f"scipy gcrotmk({m - k},{k}) + CU, greedy",
        lambda a, b: spla.gcrotmk(
            a, b, rtol=rtol, atol=0.0, m=m - k, k=k, CU=store, discard_C=True,
            maxiter=20 * size,
        )[1],
    )  # fmt: skip
    scipy_row(
        f"scipy gmres({m})",
        lambda a, b: spla.gmres(
            a, b, rtol=rtol, atol=0.0, restart=m, maxiter=20 * size // m
        )[1],
    )
    gcrotmk_matvecs = measured[len(rows)][1]
    default_time = measured[0][2]
    print(header)
    print("-" * len(header))
    for label, matvecs, per_sample, compile_time, ok in measured:
        print(
            f"{label:32} {matvecs:14.1f} {per_sample:9.1f} "
            f"{default_time / per_sample:10.2f} {gcrotmk_matvecs / matvecs:13.2f} "
            f"{compile_time:9.1f} {'yes' if ok else 'NO':>3}"
        )


if __name__ == "__main__":
    main()
