"""Train the network of the learned conjugate-direction solver
(``solvers.LearnedConjugateDirections``) on pressure Poisson problems and
write its weights; this script produced the shipped weights.

    python examples/train_learned_cg.py --ndim 2    # 81 s on one H100
    python examples/train_learned_cg.py --ndim 2 --steps 1500 --batch 16  # 2 CPU cores, 9 min

The shipped 3-D weights come from four runs on one H100 (97 s, 92 s, 330 s
and 330 s): the one-step loss from scratch, then the energy loss from those
weights (from scratch at 64^3 the energy loss collapsed to a dead network),
continued twice (the second with another seed). Each run fits in 10 minutes;
the four take 14.5 minutes together:

    python examples/train_learned_cg.py --ndim 3 --out one_step_3d.eqx
    python examples/train_learned_cg.py --ndim 3 --loss-steps 4 --steps 1000 \
        --learning-rate 1e-4 --init one_step_3d.eqx --out energy_1k.eqx \
        --checkpoints checkpoints/learned_cg_3d_energy
    python examples/train_learned_cg.py --ndim 3 --loss-steps 4 --steps 5000 \
        --learning-rate 1e-4 --init energy_1k.eqx --out energy_6k.eqx \
        --checkpoints checkpoints/learned_cg_3d_energy_6k
    python examples/train_learned_cg.py --ndim 3 --loss-steps 4 --steps 5000 \
        --learning-rate 1e-4 --init energy_6k.eqx --seed 1 \
        --checkpoints checkpoints/learned_cg_3d_energy_11k

The shipped networks for ``preconditioner_steps=True`` with multigrid
(``pretrained_network(ndim, multigrid=True)``: no pairs on the full grid)
are trained alone in the same way: 67 s in 2-D (16 channels); in 3-D, with
8 channels and no up pair on the once-coarsened grid either, the one-step
loss (64 s), then the energy loss (141 s), continued with another seed
(153 s), on one H100; the three 3-D runs take 6.0 minutes of wall time
together, inside one 10-minute run:

    python examples/train_learned_cg.py --ndim 2 --pairless-levels 1
    python examples/train_learned_cg.py --ndim 3 --pairless-levels 1 \
        --channels 8 --pairless-up-levels 2 --out one_step_3d_multigrid.eqx \
        --checkpoints checkpoints/one_step_mg
    python examples/train_learned_cg.py --ndim 3 --pairless-levels 1 \
        --loss-steps 4 --steps 6800 --learning-rate 2e-4 \
        --init one_step_3d_multigrid.eqx --out energy_3d_multigrid.eqx \
        --checkpoints checkpoints/energy_mg
    python examples/train_learned_cg.py --ndim 3 --pairless-levels 1 \
        --loss-steps 4 --steps 6800 --learning-rate 2e-4 --seed 1 \
        --init energy_3d_multigrid.eqx --checkpoints checkpoints/energy_mg_2

(``--channels`` and ``--pairless-up-levels`` apply to a network built from
scratch; ``--init`` keeps the file's.) 8 channels in 3-D make a call at
256^3 cost 24-25 float64 matvecs instead of 33-35, and dropping the up
pair 18; with the V-cycle that knows the pressure walls the solver needs
no more iterations for either (in 2-D 8 channels needed more iterations
at every size; ``benchmarks/NOTES.md``).

Problems: fluid in a box with an open top, with random box and ball
obstacles, and under a random smooth free surface (``pde.pressure_cells``),
a fresh one every few steps; solutions (energy loss) or right-hand sides
(one-step loss) from Lanczos Ritz vectors of each, weighted to the low end
of the spectrum. Checkpoints go to ``--checkpoints`` atomically; rerunning
the same command resumes.
"""

import argparse
import time
from pathlib import Path

import jax

from sciax import pde, solvers

KINDS = ("box", "obstacles", "free-surface")
# ndim: (grid, steps, batch, learning rate, loss steps). 3-D starts with the
# one-step loss: from scratch at 64^3 the energy loss collapsed to a dead
# network; it is applied afterwards, from those weights (--init).
DEFAULTS = {
    2: (64, 3000, 32, 1e-3, 4),
    3: (64, 3000, 4, 3e-4, 0),
}


def sample_operator(shape):
    def sample(key):
        kind_key, cells_key = jax.random.split(key)
        choice = jax.random.randint(kind_key, (), 0, len(KINDS))
        cells = jax.lax.switch(
            choice,
            [lambda k, kind=kind: pde.pressure_cells(kind, shape, k) for kind in KINDS],
            cells_key,
        )
        return pde.PressureOperator(cells, dtype="float32")

    return sample


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ndim", type=int, choices=(2, 3), default=2)
    parser.add_argument("--grid", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--ritz", type=int, default=96)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument(
        "--channels",
        type=int,
        default=16,
        help="features per cell (8 for the shipped 3-D multigrid network)",
    )
    parser.add_argument(
        "--pairless-levels",
        type=int,
        default=0,
        help="grid levels without residual pairs, from the full grid (1: none "
        "on the full grid, about 6x cheaper per cell; the shipped multigrid "
        "networks)",
    )
    parser.add_argument(
        "--pairless-up-levels",
        type=int,
        default=None,
        help="grid levels without the residual pair on the way up (default: "
        "--pairless-levels; 2 with --pairless-levels 1 drops the up pair of "
        "the once-coarsened grid)",
    )
    parser.add_argument(
        "--multigrid",
        action="store_true",
        help="train inside the iteration of preconditioner_steps=True with "
        "solvers.Multigrid() (a network step, then a V-cycle step); the "
        "shipped weights are trained alone, which carried over to larger "
        "grids far better",
    )
    parser.add_argument(
        "--cell-types",
        action="store_true",
        help="feed the cell types as input channels too",
    )
    parser.add_argument(
        "--loss-steps",
        type=int,
        default=None,
        help="iterations of the method in the energy loss (0: the paper's "
        "one-step loss; default 4 in 2-D, 0 in 3-D)",
    )
    parser.add_argument(
        "--init", default=None, help="start from these weights (save_network file)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoints", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    grid, steps, batch, learning_rate, loss_steps = DEFAULTS[args.ndim]
    learning_rate = args.learning_rate or learning_rate
    if args.loss_steps is not None:
        loss_steps = args.loss_steps
    grid = args.grid or grid
    steps = args.steps or steps
    batch = args.batch or batch
    shape = (grid,) * args.ndim
    # the networks without pairs on the full grid are the ones shipped for
    # multigrid steps (pretrained_network(ndim, multigrid=True))
    variant = f"{args.ndim}d_multigrid" if args.pairless_levels else f"{args.ndim}d"
    out = Path(
        args.out
        or Path(solvers.learned.__file__).parent
        / "weights"
        / f"conjugate_directions_{variant}.eqx"
    )
    checkpoints = args.checkpoints or f"checkpoints/learned_cg_{variant}"
    key = jax.random.key(args.seed)
    network_key, train_key = jax.random.split(key)
    if args.init:
        network = solvers.load_network(args.init)
    else:
        network = solvers.ConjugateDirectionNetwork(
            args.ndim,
            channels=args.channels,
            levels=args.levels,
            cell_types=args.cell_types,
            pairless_levels=args.pairless_levels,
            pairless_up_levels=args.pairless_up_levels,
            key=network_key,
        )
    start = time.perf_counter()
    training = solvers.train_direction_network(
        network,
        sample_operator(shape),
        num_steps=steps,
        key=train_key,
        batch_size=batch,
        learning_rate=learning_rate,
        num_ritz=args.ritz,
        loss_steps=loss_steps,
        preconditioner=solvers.Multigrid() if args.multigrid else None,
        directory=checkpoints,
    )
    seconds = time.perf_counter() - start
    if training.result != solvers.RESULTS.successful:
        raise SystemExit(f"training stopped: {solvers.RESULTS[training.result]}")
    losses = list(training.stats["train_loss"])
    solvers.save_network(out, training.model)
    if losses:
        tail = sum(losses[-50:]) / len(losses[-50:])
        print(f"loss over the last {min(50, len(losses))} steps: {tail:.4f}")
    print(f"trained {len(losses)} steps at {shape} in {seconds:.0f} s -> {out}")


if __name__ == "__main__":
    main()
