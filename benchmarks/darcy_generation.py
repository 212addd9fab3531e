"""Time to generate FNO Darcy samples (solved at 421 x 421) and their
agreement with a sparse direct solve.

    python benchmarks/darcy_generation.py --num-samples 1200 --batch-size 50
    python benchmarks/darcy_generation.py --num-samples 48 --batch-size 8   # 2-core CPU

``pde.darcy_samples`` (GRF, threshold, multigrid-PCG to rtol 1e-10) runs
compiled; the first call's compile time is reported separately. The peer in
the same run: SciPy's SuperLU (``spsolve``) on the assembled matrix, on the
host, for ``--check`` of the samples; its time per sample gives the ratio.
"""

import argparse
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np
import scipy.sparse.linalg as spla

from benchmarks.multigrid import assemble
from sciax import pde, solvers


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-samples", type=int, default=1200)
    parser.add_argument("--resolution", type=int, default=421)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument(
        "--check", type=int, default=3, help="samples checked against SciPy"
    )
    args = parser.parse_args()
    device = jax.devices()[0]
    print(f"# python {' '.join(sys.argv)}")
    print(
        f"# device: {device.platform} {device.device_kind} x{len(jax.devices())}, jax {jax.__version__}"
    )
    key = jax.random.key(0)
    start = time.perf_counter()
    warm = pde.darcy_samples(
        key, args.batch_size, resolution=args.resolution, batch_size=args.batch_size
    )
    jax.block_until_ready(warm)
    first_call = time.perf_counter() - start
    start = time.perf_counter()
    samples = pde.darcy_samples(
        key, args.num_samples, resolution=args.resolution, batch_size=args.batch_size
    )
    coefficient, solution = samples.coefficient, samples.solution
    jax.block_until_ready(solution)
    elapsed = time.perf_counter() - start
    errors, direct_times = [], []
    for i in range(args.check):
        operator = solvers.DiffusionOperator(coefficient[i])
        matrix = assemble(operator).tocsc()
        start = time.perf_counter()
        u = spla.spsolve(matrix, np.ones(matrix.shape[0]))
        direct_times.append(time.perf_counter() - start)
        ours = np.asarray(solution[i, 1:-1, 1:-1]).reshape(-1)
        errors.append(np.linalg.norm(ours - u) / np.linalg.norm(u))
    per_sample = elapsed / args.num_samples
    direct = float(np.mean(direct_times)) if direct_times else float("nan")
    print(f"{'what':40} {'value':>12}")
    print(f"{'samples':40} {args.num_samples:12d}")
    print(f"{'first call (compile + one batch) s':40} {first_call:12.1f}")
    print(f"{'generation s (compiled)':40} {elapsed:12.2f}")
    print(f"{'samples per second':40} {1 / per_sample:12.1f}")
    print(f"{'scipy spsolve s per sample (host)':40} {direct:12.3f}")
    print(f"{'speed-up vs scipy spsolve per sample':40} {direct / per_sample:12.1f}")
    print(
        f"{'max rel. difference vs spsolve':40} {max(errors, default=float('nan')):12.2e}"
    )


if __name__ == "__main__":
    main()
