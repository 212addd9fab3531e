"""Cost of one call of ``solvers.ConjugateDirectionNetwork`` in float64
matvecs of the pressure operator, for each number of grid levels without
residual pairs (``pairless_levels``, ``pairless_up_levels``), number of
levels, channel count and network dtype, in one run.

    python benchmarks/direction_network_cost.py --ndim 3 --sizes 64 128 256   # GPU
    python benchmarks/direction_network_cost.py --ndim 3 --sizes 128 256 \
        --pairless-levels 1 --channels 8 16 --dtypes float32 bfloat16   # GPU

Both are timed as the solver's loop runs them: 100 back-to-back compiled
calls (a lone call also times its dispatch, which at 256^3 on an H100 is
longer than the matvec). The cost does not depend on the weights, so the
networks are freshly initialised. The network runs in its dtype, the
matvec in float64 as in the solver's outer loop.
"""

import argparse
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp

# run as a script from anywhere: the repository root holds benchmarks/
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.learned_cg import per_call  # noqa: E402
from sciax import pde, solvers


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ndim", type=int, choices=(2, 3), default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--pairless-levels", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--pairless-up-levels",
        type=int,
        nargs="+",
        default=None,
        help="also without the up pair below these levels (default: as "
        "pairless_levels)",
    )
    parser.add_argument("--levels", type=int, nargs="+", default=[4])
    parser.add_argument("--channels", type=int, nargs="+", default=[16])
    parser.add_argument("--dtypes", nargs="+", default=["float32"])
    args = parser.parse_args()
    device = jax.devices()[0]
    print(f"# python {' '.join(sys.argv)}")
    print(f"# device: {device.platform} {device.device_kind}, jax {jax.__version__}")
    networks = {
        (k, u, n, c, d): solvers.ConjugateDirectionNetwork(
            args.ndim,
            levels=n,
            pairless_levels=k,
            pairless_up_levels=u,
            channels=c,
            dtype=jnp.dtype(d),
            key=jax.random.key(0),
        )
        for k in args.pairless_levels
        for u in (args.pairless_up_levels or [k])
        if u >= k
        for n in args.levels
        for c in args.channels
        for d in args.dtypes
    }
    call = jax.jit(lambda network, residual: network(residual))
    matvec = jax.jit(lambda operator, vector: operator.mv(vector))
    print(
        "ms (matvecs) per call; columns: "
        "pairless_levels/pairless_up_levels/levels/channels/dtype"
    )
    labels = ["/".join(map(str, hyperparameters)) for hyperparameters in networks]
    width = max(16, *map(len, labels))
    print(f"{'grid':12}{'matvec ms':>9}" + "".join(f"  {x:>{width}}" for x in labels))
    for size in args.sizes:
        shape = (size,) * args.ndim
        cells = pde.pressure_cells("obstacles", shape, jax.random.key(7))
        operator = pde.PressureOperator(cells, dtype="float64")
        vector = jax.random.normal(jax.random.key(1), (operator.shape[0],))
        residual = vector.reshape(shape).astype(jnp.float32)
        matvec_seconds = per_call(matvec, operator, vector, repeats=100)
        row = f"{'x'.join(map(str, shape)):12}{matvec_seconds * 1e3:9.3f}"
        for network in networks.values():
            seconds = per_call(call, network, residual, repeats=100)
            cell = f"{seconds * 1e3:.2f} ({seconds / matvec_seconds:.1f})"
            row += f"  {cell:>{width}}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
