"""Scaling over the local devices: Darcy generation (samples per second, and
identical data whatever the device count), data-parallel FNO training on
those data subsampled to 85 (time per epoch, test error after the same
epochs) and the recycled sequence solver with one chunk per device (systems
per second).

    python benchmarks/multi_device.py --num-samples 1200 --systems 64 --n 128

Runs every measurement with the first 1, 2, 4, ... local devices in the same
process; ratios are against one device.
"""

import argparse
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np

from sciax import operators, pde, solvers


def timed(function):
    out = function()
    jax.block_until_ready(out)  # compile and warm up
    start = time.perf_counter()
    out = function()
    jax.block_until_ready(out)
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-samples", type=int, default=1200)
    parser.add_argument("--resolution", type=int, default=421)
    parser.add_argument("--systems", type=int, default=64)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--fno-batch", type=int, nargs="+", default=[20, 80])
    args = parser.parse_args()
    devices = jax.local_devices()
    counts = [c for c in (1, 2, 4, 8, 16) if c <= len(devices)]
    print(f"# python {' '.join(sys.argv)}")
    print(
        f"# devices: {len(devices)} x {devices[0].device_kind}, jax {jax.__version__}"
    )
    key = jax.random.key(0)
    print(
        f"{'task':34} {'devices':>7} {'seconds':>8} {'per second':>10} {'speed-up':>8} {'same data':>9}"
    )
    reference, base = None, None
    for count in counts:
        samples, elapsed = timed(
            lambda count=count: pde.darcy_samples(
                key,
                args.num_samples,
                resolution=args.resolution,
                devices=devices[:count],
            )
        )
        coefficient, solution = samples.coefficient, np.asarray(samples.solution)
        if reference is None:
            reference, base = solution, elapsed
        same = bool(np.array_equal(solution, reference))
        print(
            f"{f'Darcy {args.resolution}² generation':34} {count:7d} {elapsed:8.2f} "
            f"{args.num_samples / elapsed:10.1f} {base / elapsed:8.2f} {str(same):>9}"
        )
    fno_training(coefficient, solution, devices, counts, args)
    n = args.n
    keys = jax.random.split(jax.random.key(1), args.systems)
    log_a = jax.vmap(lambda k: pde.gaussian_random_field(k, (n + 2, n + 2)))(keys)
    rhs = jnp.ones((args.systems, n * n))
    solver = solvers.GCRODR(
        rtol=1e-8, atol=0.0, max_steps=20 * n * n, restart=40, recycle=10
    )
    base = None
    for count in counts:
        out, elapsed = timed(
            lambda count=count: solvers.solve_sequence(
                pde.darcy_operator,
                log_a,
                rhs,
                solver,
                order="greedy",
                chunks=count,
                devices=devices[:count],
            )
        )
        base = base or elapsed
        ok = bool(jnp.all(out.result == solvers.RESULTS.successful))
        matvecs = float(out.stats["num_matvecs"].mean())
        print(
            f"{f'SKR sequence {n}², {matvecs:.0f} mv/sys':34} {count:7d} {elapsed:8.2f} "
            f"{args.systems / elapsed:10.2f} {base / elapsed:8.2f} {'ok' if ok else 'FAILED':>9}"
        )


def fno_training(coefficient, solution, devices, counts, args):
    """The paper's Darcy FNO (float32, field-wide normalization) trained on
    the first 1000 samples at 85 with the batch split over the devices."""
    x = jnp.asarray(pde.subsample(coefficient, 85)[:, None], jnp.float32)
    y = jnp.asarray(pde.subsample(solution, 85)[:, None], jnp.float32)
    train = min(1000, x.shape[0] - 100)
    for batch in args.fno_batch:
        base = None
        for count in counts:
            if batch % count:
                continue
            model = operators.NormalizedOperator(
                operators.FNO(1, 1, key=jax.random.key(0), dtype=jnp.float32),
                operators.UnitGaussianNormalizer(x[:train], pointwise=False),
                operators.UnitGaussianNormalizer(y[:train], pointwise=False),
            )
            optimizer = operators.default_optimizer(
                num_epochs=args.epochs, num_samples=train, batch_size=batch,
                learning_rate=2e-3,
            )  # fmt: skip
            result = operators.fit(
                model, x[:train], y[:train], key=jax.random.key(1),
                num_epochs=args.epochs, batch_size=batch,
                optimizer=optimizer,
                devices=devices[:count], progress=False,
            )  # fmt: skip
            epoch = float(np.median(np.asarray(result.stats["epoch_seconds"])[1:]))
            base = base or epoch
            error = float(operators.evaluate(result.model, x[train:], y[train:]))
            print(
                f"{f'FNO Darcy 85, batch {batch}, {args.epochs} ep':34} {count:7d} "
                f"{epoch:8.3f} {train / epoch:10.1f} {base / epoch:8.2f} "
                f"{100 * error:8.2f}%"
            )


if __name__ == "__main__":
    main()
