"""The Darcy generator through the library's solvers: which solver, which
preconditioner and which order make training data fastest.

    python benchmarks/darcy_generator_solvers.py --resolution 65 --count 20

``pde.darcy_samples`` (the FNO benchmark's two-phase coefficient, 12 / 3
thresholded from a Gaussian random field, right-hand side 1, u = 0 on the
boundary) with each solver x preconditioner x order in turn, all to the
same relative residual (1e-8 by default, float64), against SciPy's gcrotmk
with a recycle store carried over the samples in the same greedy order
(the SKR paper's baseline) and SciPy's CG, on the same matrices. Per
sample: matvecs and wall time, compile time apart; "vs MG-PCG" is the
default generator's time over the row's.
"""

import argparse
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import scipy.sparse.linalg as spla

from benchmarks.krylov_recycling import Counted, assemble
from sciax import pde, solvers


def run_generator(key, count, resolution, **options):
    """Compile (one call on the same shapes), then time a second call."""
    start = time.perf_counter()
    jax.block_until_ready(
        pde.darcy_samples(key, count, resolution=resolution, throw=False, **options)
    )
    first = time.perf_counter() - start
    start = time.perf_counter()
    samples = pde.darcy_samples(
        key, count, resolution=resolution, throw=False, **options
    )
    jax.block_until_ready(samples)
    elapsed = time.perf_counter() - start
    ok = bool(jnp.all(samples.result == solvers.RESULTS.successful))
    return samples, elapsed, max(first - elapsed, 0.0), ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolution", type=int, default=65)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument("--restart", type=int, default=40)
    parser.add_argument("--recycle", type=int, default=20)
    args = parser.parse_args()
    print(f"# python {' '.join(sys.argv)}")
    device = jax.devices()[0]
    print(
        f"# device: {device.platform} {device.device_kind}, jax {jax.__version__}; "
        f"{args.count} samples at {args.resolution}^2 nodes, rtol {args.rtol}"
    )
    key = jax.random.key(0)
    rtol, m, k = args.rtol, args.restart, args.recycle
    size = (args.resolution - 2) ** 2
    limits = {"rtol": rtol, "atol": 0.0, "max_steps": 20 * size}
    gcrodr = solvers.GCRODR(**limits, restart=m, recycle=k)
    recycled_cg = solvers.RecycledCG(**limits, recycle=k, collect=3 * k)
    rows = [
        ("MG-PCG (default)", dict(rtol=rtol)),
        ("CG", dict(solver=solvers.CG(**limits), preconditioner=None)),
        (
            f"GMRES({m})",
            dict(solver=solvers.GMRES(**limits, restart=m), preconditioner=None),
        ),
        (
            f"GMRES-DR({m},{k})",
            dict(
                solver=solvers.GMRESDR(**limits, restart=m, recycle=k),
                preconditioner=None,
            ),
        ),
        (f"GCRO-DR({m},{k}), no order", dict(solver=gcrodr, preconditioner=None)),
        (
            f"GCRO-DR({m},{k}), greedy",
            dict(solver=gcrodr, preconditioner=None, order="greedy"),
        ),
        (
            f"GCRO-DR({m},{k}), fft-pca",
            dict(solver=gcrodr, preconditioner=None, order="fft-pca"),
        ),
        (
            "recycled CG, greedy",
            dict(solver=recycled_cg, preconditioner=None, order="greedy"),
        ),
        ("recycled CG + MG, greedy", dict(solver=recycled_cg, order="greedy")),
        ("GCRO-DR + MG, greedy", dict(solver=gcrodr, order="greedy")),
    ]
    header = (
        f"{'method':30} {'matvecs/sample':>14} {'ms/sample':>9} {'vs MG-PCG':>9} "
        f"{'compile s':>9} {'ok':>3}"
    )
    print(header)
    print("-" * len(header), flush=True)
    baseline = None
    reference = None
    for label, options in rows:
        samples, elapsed, compile_time, ok = run_generator(
            key, args.count, args.resolution, **options
        )
        per_sample = 1e3 * elapsed / args.count
        baseline = baseline or per_sample
        if reference is None:
            reference = samples
        print(
            f"{label:30} {float(jnp.mean(samples.stats['num_matvecs'])):14.1f} "
            f"{per_sample:9.1f} {baseline / per_sample:9.2f} {compile_time:9.1f} "
            f"{'yes' if ok else 'NO':>3}",
            flush=True,
        )

    # SciPy on the same matrices, in the greedy order of the GCRO-DR rows
    operators = [
        solvers.DiffusionOperator(reference.coefficient[i]) for i in range(args.count)
    ]
    matrices = [assemble(operator) for operator in operators]
    order = np.asarray(
        pde.datasets._sample_order.sample_order("greedy", reference.coefficient)
    )
    b = np.ones(size)

    def scipy_row(label, method):
        counts, ok = [], True
        start = time.perf_counter()
        for i in order:
            counted = Counted(matrices[i])
            ok &= method(counted) == 0
            counts.append(counted.count)
        per_sample = 1e3 * (time.perf_counter() - start) / args.count
        print(
            f"{label:30} {np.mean(counts):14.1f} {per_sample:9.1f} "
            f"{baseline / per_sample:9.2f} {0.0:9.1f} {'yes' if ok else 'NO':>3}",
            flush=True,
        )

    store = []
    scipy_row(
        f"scipy gcrotmk({m - k},{k}) + CU, greedy",
        lambda a: spla.gcrotmk(
            a,
            b,
            rtol=rtol,
            atol=0.0,
            m=m - k,
            k=k,
            CU=store,
            discard_C=True,
            maxiter=20 * size,
        )[1],
    )
    scipy_row(
        "scipy cg", lambda a: spla.cg(a, b, rtol=rtol, atol=0.0, maxiter=20 * size)[1]
    )


if __name__ == "__main__":
    main()
