"""The learned conjugate-direction solver (``solvers.LearnedConjugateDirections``
with the shipped weights) against CG, Jacobi-PCG and multigrid-PCG on
pressure Poisson problems, in one run.

    python benchmarks/learned_cg.py --ndim 2 --sizes 64 128 256
    python benchmarks/learned_cg.py --ndim 3 --sizes 64 128 256     # GPU

Per problem and grid: iterations to a relative residual of 1e-4 and 1e-6
(read off one solve to 1e-6) and the wall time of that solve (compiled,
second call; multigrid's setup is inside the timed call). Problems: "box"
(fluid with an open top), "obstacles" and "free-surface" as in training
(in distribution), and "crowded": twenty obstacles, three times the
training's count, at a seed never used in training (out of distribution).
Float64 systems (the network runs in float32 inside), right-hand side
random on the fluid cells. The last
column is one network call in matvecs: the time of 20 back-to-back calls
of each, as inside the solver's loop (a lone call also times its dispatch,
which at 256^3 on the H100 is longer than the matvec itself and made the
ratio look 2.5x smaller).

Methods (``--methods``): CG, Jacobi-PCG, MG-PCG (``solvers.Multigrid``),
"learned" (the network alone, ``pretrained_network(ndim)``) and
"learned+MG" (``preconditioner_steps=True`` with a multigrid step after
every network step, ``pretrained_network(ndim, multigrid=True)``, each
direction A-orthogonalised against the last 8; one of its iterations is a
network call, a V-cycle and two matvecs).

The network as a varying preconditioner (``solvers.NetworkPreconditioner``)
in the flexible methods: "FCG+net" (``CG(flexible=True)``), "FGMRES+net"
(GMRES(30), flexible by default), and "FCG+net+MG" / "FGMRES+net+MG" with
the multigrid network followed by a V-cycle in each application (a network
call, a V-cycle and a matvec; the matvecs inside a preconditioner are not
counted in the iterations).

    python benchmarks/learned_cg.py --ndim 3 --sizes 64 128 \
        --methods CG MG-PCG learned+MG FCG+net FGMRES+net FCG+net+MG FGMRES+net+MG
"""

import argparse
import dataclasses
import sys
import time

import equinox as eqx
import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp

from sciax import pde, solvers

TOLERANCES = (1e-4, 1e-6)
PROBLEMS = {
    "box": ("box", 6),
    "obstacles": ("obstacles", 6),
    "free-surface": ("free-surface", 6),
    "crowded": ("obstacles", 20),
}


def _cg(network, max_steps):
    return solvers.CG(rtol=1e-6, atol=0.0, max_steps=max_steps)


METHODS = {
    "CG": (_cg, None),
    "Jacobi-PCG": (_cg, solvers.Jacobi()),
    "MG-PCG": (_cg, solvers.Multigrid()),
    "learned": (
        lambda network, max_steps: solvers.LearnedConjugateDirections(
            network, rtol=1e-6, atol=0.0, max_steps=max_steps
        ),
        None,
    ),
    "learned+MG": (
        lambda network, max_steps: solvers.LearnedConjugateDirections(
            network,
            rtol=1e-6,
            atol=0.0,
            max_steps=max_steps,
            num_orthogonal=8,
            preconditioner_steps=True,
        ),
        solvers.Multigrid(),
    ),
    # the network as a varying preconditioner in the flexible methods
    "FCG+net": (
        lambda network, max_steps: solvers.CG(
            rtol=1e-6, atol=0.0, max_steps=max_steps, flexible=True
        ),
        "network",
    ),
    "FGMRES+net": (
        lambda network, max_steps: solvers.GMRES(
            rtol=1e-6, atol=0.0, max_steps=max_steps, restart=30
        ),
        "network",
    ),
    "FCG+net+MG": (
        lambda network, max_steps: solvers.CG(
            rtol=1e-6, atol=0.0, max_steps=max_steps, flexible=True
        ),
        "network+multigrid",
    ),
    "FGMRES+net+MG": (
        lambda network, max_steps: solvers.GMRES(
            rtol=1e-6, atol=0.0, max_steps=max_steps, restart=30
        ),
        "network+multigrid",
    ),
}
# which shipped network each method uses: the plain one, or the one trained
# to complement multigrid steps
MULTIGRID_NETWORK = {"learned+MG", "FCG+net+MG", "FGMRES+net+MG"}


def timed(function, *args):
    jax.block_until_ready(function(*args))
    start = time.perf_counter()
    result = jax.block_until_ready(function(*args))
    return result, time.perf_counter() - start


def per_call(function, *args, repeats=20):
    """Seconds per call over back-to-back calls, compiled."""
    jax.block_until_ready(function(*args))
    start = time.perf_counter()
    for _ in range(repeats):
        out = function(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / repeats


def iterations_to(history, b_norm, target):
    """First iteration whose residual is at most target |b| (-1: never)."""
    reached = jnp.nonzero(history <= target * b_norm, size=1, fill_value=-1)[0]
    return int(reached[0]) + 1 if int(reached[0]) >= 0 else -1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ndim", type=int, choices=(2, 3), default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument(
        "--num-orthogonal",
        type=int,
        default=None,
        help="previous directions each new one is A-orthogonalised against "
        "(default: 2 for learned, 8 for learned+MG)",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="network file (save_network) for 'learned' instead of the shipped one",
    )
    parser.add_argument(
        "--multigrid-weights",
        default=None,
        help="network file for 'learned+MG' instead of the shipped one",
    )
    parser.add_argument(
        "--network-dtype",
        default=None,
        help="run the networks in this dtype (e.g. bfloat16): their weights are cast",
    )
    args = parser.parse_args()
    device = jax.devices()[0]
    print(f"# python {' '.join(sys.argv)}")
    print(f"# device: {device.platform} {device.device_kind}, jax {jax.__version__}")
    networks = {}
    for method in args.methods:
        if method in ("CG", "Jacobi-PCG", "MG-PCG"):
            continue
        if method in MULTIGRID_NETWORK:
            networks[method] = (
                solvers.load_network(args.multigrid_weights)
                if args.multigrid_weights
                else solvers.pretrained_network(args.ndim, multigrid=True)
            )
        else:
            networks[method] = (
                solvers.load_network(args.weights)
                if args.weights
                else solvers.pretrained_network(args.ndim)
            )
    if args.network_dtype:
        dtype = jnp.dtype(args.network_dtype)
        networks = {
            method: jax.tree.map(
                lambda leaf: leaf.astype(dtype) if eqx.is_inexact_array(leaf) else leaf,
                network,
            )
            for method, network in networks.items()
        }
    network_call = jax.jit(lambda n, r, c: n(r.reshape(c.shape), c))
    print(
        f"{'problem':12} {'grid':>11} {'method':10} {'it 1e-4':>7} {'it 1e-6':>7} "
        f"{'seconds':>8} {'vs CG':>6} {'fallbacks':>9} {'net/matvec':>10}"
    )
    for size in args.sizes:
        shape = (size,) * args.ndim
        for name in args.problems:
            kind, count = PROBLEMS[name]
            seed = 1000 + size if name == "crowded" else 7
            cells = pde.pressure_cells(
                kind, shape, jax.random.key(seed), num_obstacles=count
            )
            operator = pde.PressureOperator(cells, dtype="float64")
            b = jax.random.normal(jax.random.key(1), (operator.shape[0],), jnp.float64)
            b = b * operator.fluid.reshape(-1)
            b_norm = jnp.linalg.norm(b)
            matvec_seconds = per_call(jax.jit(lambda a, v: a.mv(v)), operator, b)
            cg_seconds = None
            for method in args.methods:
                network = networks.get(method)
                make, preconditioner = METHODS[method]
                solver = make(network, args.max_steps)
                if preconditioner == "network":
                    preconditioner = solvers.NetworkPreconditioner(network)
                elif preconditioner == "network+multigrid":
                    preconditioner = solvers.NetworkPreconditioner(
                        network, solvers.Multigrid()
                    )
                if (
                    isinstance(solver, solvers.LearnedConjugateDirections)
                    and args.num_orthogonal is not None
                ):
                    solver = dataclasses.replace(
                        solver, num_orthogonal=args.num_orthogonal
                    )

                # the operator is an argument, not a constant: XLA would
                # otherwise fold the multigrid setup on a 256^3 constant
                @jax.jit
                def run(a, b, solver=solver, preconditioner=preconditioner):
                    solution = solvers.solve(
                        a, b, solver, preconditioner=preconditioner, throw=False
                    )
                    return solution.stats, solution.result

                (stats, result), seconds = timed(run, operator, b)
                history = stats["residual_history"]
                counts = [iterations_to(history, b_norm, t) for t in TOLERANCES]
                if method == "CG":
                    cg_seconds = seconds
                fallbacks = stats.get("num_fallbacks")
                flag = "" if result == solvers.RESULTS.successful else " (failed)"
                ratio = f"{'':10}"
                if network is not None:
                    network_seconds = per_call(network_call, network, b, cells)
                    ratio = f"{network_seconds / matvec_seconds:10.1f}"
                versus = f"{seconds / cg_seconds:6.2f}" if cg_seconds else f"{'':6}"
                print(
                    f"{name:12} {'x'.join(map(str, shape)):>11} {method:10} "
                    f"{counts[0]:7d} {counts[1]:7d} {seconds:8.3f} {versus} "
                    f"{'' if fallbacks is None else int(fallbacks):>9} {ratio}{flag}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
