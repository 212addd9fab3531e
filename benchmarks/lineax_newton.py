"""Newton on nonlinear diffusion: GCRO-DR recycling across Newton steps
against lineax's GMRES, in matvecs and wall time.

    PYTHONPATH=. python benchmarks/lineax_newton.py --n 32 48 64 --repeat 3

For each grid (n x n interior nodes) the problem and the configurations of
``examples/newton_recycling.py`` run in one process: sciax GCRO-DR with the
recycle space carried from one Newton step to the next, the same without
carrying it, sciax GMRES, lineax's GMRES (same rtol and cycle length;
lineax's elementwise test with atol = rtol * rms(b)), sciax's GCRO-DR through
``lineax.linear_solve`` (``LineaxSolver``, space carried through
``options``/``stats``) and through ``optimistix.Newton`` (no space carried,
linear-solve statistics not returned). Every configuration's compiled
program is built before it is timed; the run time is the fastest of
``--repeat`` runs of the whole Newton iteration. The ratios are against
lineax's GMRES. The command that produced the table is printed above it.
"""

import argparse
import importlib.util
import shlex
import sys
from pathlib import Path

import jax

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "newton_recycling.py"


def _example():
    spec = importlib.util.spec_from_file_location("newton_recycling", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[32, 48, 64])
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument("--newton-rtol", type=float, default=1e-9)
    parser.add_argument("--restart", type=int, default=40)
    parser.add_argument("--recycle", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    example = _example()
    command = "PYTHONPATH=. python benchmarks/lineax_newton.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    print(command)
    print(
        f"jax {jax.__version__}, {jax.devices()[0].device_kind}; linear rtol "
        f"{args.rtol}, Newton rtol {args.newton_rtol}, GCRO-DR({args.restart}, "
        f"{args.recycle}), GMRES({args.restart}); run s: fastest of {args.repeat}\n"
    )
    print(
        "| n | configuration | Newton steps | matvecs | matvecs / lineax | run s "
        "| run / lineax | compile s | worst linear residual |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.n:
        rows = example.run(
            n,
            args.rtol,
            args.newton_rtol,
            args.restart,
            args.recycle,
            max_steps=50 * n,
            wrapped=True,
            repeat=args.repeat,
        )
        base = next(row for row in rows if row["name"] == "lineax GMRES")
        for row in rows:
            if row["matvecs"] is None:
                matvecs = ratio = "n/a"
            else:
                matvecs = str(row["matvecs"])
                ratio = f"{row['matvecs'] / base['matvecs']:.2f}"
            linear = (
                "n/a"
                if row["linear_residual"] is None
                else f"{row['linear_residual']:.1e}"
            )
            failed = f" ({row['failures']} failed)" if row["failures"] else ""
            print(
                f"| {n} | {row['name']}{failed} | {row['newton_steps']} | {matvecs} "
                f"| {ratio} | {row['seconds']:.3f} "
                f"| {row['seconds'] / base['seconds']:.2f} | {row['compile_s']:.1f} "
                f"| {linear} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
