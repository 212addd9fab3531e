r"""Newton's method on a nonlinear diffusion problem, with GCRO-DR carrying its
recycle space from one Jacobian system to the next.

    python examples/newton_recycling.py            # 48 x 48 grid, ~1 min
    python examples/newton_recycling.py --small    # 16 x 16, ~25 s on 2 cores

The problem, on the unit square with u = 0 on the boundary:

$$ F(u) = -\nabla \cdot \big( (1 + u^2) \nabla u \big) - f = 0, $$

finite volumes on n x n interior nodes (5-point stencil, the face
coefficient the mean of $1 + u^2$ at its two nodes). Newton's step solves
$J(u_k)\, \delta = -F(u_k)$, with $J$ applied matrix-free through
``jax.linearize``. $J v = -\nabla\cdot((1+u^2)\nabla v) - \nabla\cdot(2 u v
\nabla u)$ is not symmetric, so GMRES-type methods are needed; consecutive
Jacobians differ by the change of u, small once Newton settles, so the
eigenvectors that slow a Krylov method down (the smooth ones, eigenvalues
near the origin) barely move: what GCRO-DR recycles.

Configurations, each running the same Newton iteration to
``||F(u)|| <= newton_rtol ||F(0)||``:

* ``sciax GCRO-DR, recycled``: ``solve(J, -F, GCRODR(...), state=state)``,
  the state of one Newton step passed to the next;
* ``sciax GCRO-DR, fresh``: the same solver and compiled program, each
  system started without a space (an empty ``RecycleState``);
* ``sciax GMRES``: restarted GMRES with the same cycle length;
* ``lineax GMRES``: ``lineax.linear_solve(J, -F, lineax.GMRES(...))`` with
  the same rtol and cycle length. lineax tests ``|r_i| <= atol + rtol |b_i|``
  elementwise (plus a test on the step), not our 2-norm test, and checks
  only at restarts; the table shows the true relative residual reached;
* ``lineax + LineaxSolver(GCRO-DR)``: ``lineax.linear_solve`` with sciax's
  GCRO-DR inside, the recycle space carried through
  ``options={"recycle_state": ...}`` and ``Solution.stats["recycle_state"]``;
* ``optimistix Newton + LineaxSolver``: ``optimistix.root_find`` with
  ``optimistix.Newton(linear_solver=LineaxSolver(GCRODR(...)))``. optimistix
  runs its own loop and hands no solver state from one step to the next,
  so each system starts without a space, and its linear solves' statistics
  are not returned (matvecs: n/a).

Matvecs are Jacobian-vector products summed over the Newton steps (lineax's
GMRES: one per Arnoldi step plus one residual per cycle, from its step
count; checked against a counting matvec). Run time is the compiled Newton
iteration, compile time excluded (reported separately).

What to expect (benchmarks/lineax_newton.py, 2-core CPU, GCRO-DR(40, 20)):
carrying the space saves 15-25% of the matvecs of GCRO-DR without it, and
GCRO-DR needs 0.3-0.5 times the matvecs of restarted GMRES(40). On the CPU
each GCRO-DR cycle costs milliseconds of small dense linear algebra (its
harmonic Ritz step), so wall time follows matvecs only where a matvec is
expensive: at 64 x 64 GCRO-DR is still ~2.4 times slower than lineax's
GMRES, at 128 x 128 (where GMRES(40) needs ~3 times the matvecs and fails to
converge on one step) it is ~2.4 times faster.
"""

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import lineax as lx
import optimistix as optx

from sciax import solvers


def source(n, amplitude, dtype):
    """f on the n x n interior nodes: an off-centre bump plus a smooth
    background, strong enough that u reaches ~2.4 and the diffusion
    coefficient 1 + u^2 varies between 1 and ~7 (measured at n = 32)."""
    h = 1.0 / (n + 1)
    x = jnp.arange(1, n + 1, dtype=dtype) * h
    xx, yy = jnp.meshgrid(x, x, indexing="ij")
    bump = jnp.exp(-((xx - 0.35) ** 2 + (yy - 0.6) ** 2) / 0.04)
    return amplitude * (bump + 0.5 * jnp.sin(jnp.pi * xx) * jnp.sin(jnp.pi * yy))


def residual(u, f):
    """F(u) = -div((1 + u^2) grad u) - f on the interior, u = 0 outside."""
    n = f.shape[0]
    h = 1.0 / (n + 1)
    grid = jnp.pad(u.reshape(n, n), 1)
    k = 1.0 + grid**2
    flux_x = 0.5 * (k[1:, 1:-1] + k[:-1, 1:-1]) * (grid[1:, 1:-1] - grid[:-1, 1:-1])
    flux_y = 0.5 * (k[1:-1, 1:] + k[1:-1, :-1]) * (grid[1:-1, 1:] - grid[1:-1, :-1])
    divergence = (flux_x[1:] - flux_x[:-1] + flux_y[:, 1:] - flux_y[:, :-1]) / h**2
    return (-divergence - f).reshape(-1)


def _newton_update(u, f, solve_linear):
    """u + delta with J(u) delta = -F(u), J applied through jax.linearize
    (linearised once per Newton step); also ||F(u + delta)|| for the
    stopping test and the true relative residual of the linear solve,
    ||J delta + F|| / ||F||, which costs one more matvec (not counted)."""
    fu, jvp = jax.linearize(lambda v: residual(v, f), u)
    delta, extra = solve_linear(jvp, -fu)
    linear = jnp.linalg.norm(jvp(delta) + fu) / jnp.linalg.norm(fu)
    new_u = u + delta
    return new_u, jnp.linalg.norm(residual(new_u, f)), linear, extra


def sciax_step(solver):
    """One Newton step with sciax's solve; the recycle state in and out."""

    @jax.jit
    def step(u, f, state):
        def solve_linear(jvp, b):
            sol = solvers.solve(jvp, b, solver, state=state, throw=False)
            failed = sol.result != solvers.RESULTS.successful
            return sol.value, (sol.state, sol.stats["num_matvecs"], failed)

        return _newton_update(u, f, solve_linear)

    return step


def lineax_step(rtol, max_cycles, restart):
    """One Newton step with lineax.linear_solve(lineax.GMRES).

    lineax's test is elementwise, ``|r_i| <= atol + rtol |b_i|``: with
    atol = 0 a component of b near zero asks for a residual near zero there,
    which GMRES cannot give, and it runs out of cycles. atol = rtol times the
    root mean square of b makes it about as strict as our
    ``||r||_2 <= rtol ||b||_2`` (the table shows the residual each reached)."""

    @jax.jit
    def step(u, f, state):
        def solve_linear(jvp, b):
            atol = rtol * jnp.linalg.norm(b) / jnp.sqrt(b.shape[0])
            solver = lx.GMRES(
                rtol=rtol, atol=atol, max_steps=max_cycles, restart=restart
            )
            operator = lx.FunctionLinearOperator(jvp, jax.eval_shape(lambda: b))
            sol = lx.linear_solve(operator, b, solver, throw=False)
            # lineax's GMRES: a first pass that only computes the residual
            # (one matvec), then full cycles of `restart` Arnoldi steps and
            # one residual each; it tests convergence only between cycles.
            cycles = sol.stats["num_steps"] - 1
            matvecs = 1 + cycles * (min(restart, b.shape[0]) + 1)
            failed = sol.result != lx.RESULTS.successful
            return sol.value, (state, matvecs, failed)

        return _newton_update(u, f, solve_linear)

    return step


def adapter_step(adapter):
    """One Newton step with lineax.linear_solve(LineaxSolver(GCRODR)), the
    recycle space carried through lineax's options and stats."""

    @jax.jit
    def step(u, f, state):
        def solve_linear(jvp, b):
            operator = lx.FunctionLinearOperator(jvp, jax.eval_shape(lambda: b))
            sol = lx.linear_solve(
                operator, b, adapter, options={"recycle_state": state}, throw=False
            )
            failed = sol.result != lx.RESULTS.successful
            stats = sol.stats
            return sol.value, (stats["recycle_state"], stats["num_matvecs"], failed)

        return _newton_update(u, f, solve_linear)

    return step


def newton(step, f, state, carry, newton_rtol, max_newton=20):
    """Newton from u = 0 until ||F(u)|| <= newton_rtol ||F(0)||, each step
    one compiled call (the loop is a handful of steps, in Python so that the
    per-step numbers can be read). ``carry``: pass each step's recycle state
    to the next, else start every step from ``state``."""
    u = jnp.zeros(f.size, f.dtype)
    f0 = float(jnp.linalg.norm(residual(u, f)))
    norm, steps, matvecs, failures, worst = f0, 0, 0, 0, 0.0
    initial = state
    while norm > newton_rtol * f0 and steps < max_newton:
        u, norm, linear, (new_state, count, failed) = step(u, f, state)
        state = new_state if carry else initial
        norm = float(norm)
        steps += 1
        matvecs += int(count)
        failures += int(failed)
        worst = max(worst, float(linear))
    return dict(
        newton_steps=steps,
        matvecs=matvecs,
        failures=failures,
        final=norm / f0,
        linear_residual=worst,
    )


def run(
    n,
    rtol,
    newton_rtol,
    restart,
    recycle,
    max_steps,
    *,
    wrapped=True,
    repeat=1,
    amplitude=150.0,
):
    """Every configuration on one problem, in one process; the table's rows.

    ``wrapped``: also the two runs of sciax's GCRO-DR inside lineax and
    optimistix (each one more GCRO-DR compilation, ~10 s on 2 cores).
    ``repeat``: run each Newton iteration this many times, keep the fastest.
    """
    dtype = jnp.float64
    f = source(n, amplitude, dtype)
    u0 = jnp.zeros(n * n, dtype)
    gcrodr = solvers.GCRODR(
        rtol=rtol, atol=0.0, max_steps=max_steps, restart=restart, recycle=recycle
    )
    gmres = solvers.GMRES(rtol=rtol, atol=0.0, max_steps=max_steps, restart=restart)
    # "no space yet": an empty state rather than None, so that the recycled
    # and the fresh GCRO-DR runs share one compiled program
    empty = gcrodr.init_state(None, u0)
    adapter = solvers.LineaxSolver(gcrodr)
    gcrodr_step = sciax_step(gcrodr)
    configurations = [
        ("sciax GCRO-DR, recycled", gcrodr_step, empty, True),
        ("sciax GCRO-DR, fresh", gcrodr_step, empty, False),
        ("sciax GMRES", sciax_step(gmres), None, False),
        # lineax's max_steps counts cycles
        (
            "lineax GMRES",
            lineax_step(rtol, max_steps // restart + 2, restart),
            None,
            False,
        ),
    ]
    if wrapped:
        configurations.append(
            ("lineax + LineaxSolver(GCRO-DR)", adapter_step(adapter), empty, True)
        )
    rows, compiled = [], {}
    for name, step, state, carry in configurations:
        compile_s = 0.0
        if step not in compiled:
            start = time.perf_counter()
            compiled[step] = step.lower(u0, f, state).compile()
            compile_s = time.perf_counter() - start
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            row = newton(compiled[step], f, state, carry, newton_rtol)
            times.append(time.perf_counter() - start)
        row.update(name=name, seconds=min(times), compile_s=compile_s)
        rows.append(row)
    if wrapped:
        rows.append(_optimistix_row(f, adapter, newton_rtol, repeat))
    return rows


def _optimistix_row(f, adapter, newton_rtol, repeat):
    """optimistix.Newton with LineaxSolver(GCRO-DR): optimistix's own loop,
    which carries no linear-solver state and returns no linear-solve stats.
    Its test: the step below rtol |u| + atol elementwise and |F| below atol;
    atol is set from newton_rtol and ||F(0)||_inf."""
    u0 = jnp.zeros(f.size, f.dtype)
    f0 = float(jnp.linalg.norm(residual(u0, f)))
    atol = newton_rtol * float(jnp.max(jnp.abs(residual(u0, f))))
    newton_solver = optx.Newton(rtol=newton_rtol, atol=atol, linear_solver=adapter)

    @jax.jit
    def root(f):
        return optx.root_find(
            residual, newton_solver, u0, args=f, max_steps=20, throw=False
        )

    start = time.perf_counter()
    compiled = root.lower(f).compile()
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        sol = compiled(f)
        sol.value.block_until_ready()
        times.append(time.perf_counter() - start)
    seconds = min(times)
    return dict(
        name="optimistix Newton + LineaxSolver",
        newton_steps=int(sol.stats["num_steps"]),
        matvecs=None,
        failures=int(sol.result != optx.RESULTS.successful),
        final=float(jnp.linalg.norm(residual(sol.value, f))) / f0,
        linear_residual=None,
        seconds=seconds,
        compile_s=compile_s,
    )


def print_table(rows, reference="lineax GMRES"):
    """The rows as a table; ratios against ``reference``."""
    base = next(row for row in rows if row["name"] == reference)
    header = (
        f"{'configuration':32s} {'Newton':>6s} {'matvecs':>8s} {'ratio':>6s} "
        f"{'run s':>7s} {'ratio':>6s} {'compile s':>9s} {'lin. res.':>9s} "
        f"{'|F|/|F0|':>9s} {'failed':>6s}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        if row["matvecs"] is None:
            matvecs, ratio = "n/a", "n/a"
        else:
            matvecs = str(row["matvecs"])
            ratio = f"{row['matvecs'] / base['matvecs']:.2f}"
        linear = (
            "n/a" if row["linear_residual"] is None else f"{row['linear_residual']:.1e}"
        )
        print(
            f"{row['name']:32s} {row['newton_steps']:6d} {matvecs:>8s} {ratio:>6s} "
            f"{row['seconds']:7.3f} {row['seconds'] / base['seconds']:6.2f} "
            f"{row['compile_s']:9.1f} {linear:>9s} {row['final']:9.1e} "
            f"{row['failures']:6d}"
        )
    print(
        "matvecs: Jacobian-vector products over all Newton steps; ratio: against "
        f"{reference}; run s: the Newton iteration, compiled beforehand; lin. res.: "
        "the worst true relative residual ||J d + F|| / ||F|| of a linear solve; "
        "failed: linear solves (optimistix: the root find) that did not succeed."
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--small",
        action="store_true",
        help="16 x 16 grid, without the lineax/optimistix-wrapped runs (< 30 s)",
    )
    parser.add_argument("--n", type=int, default=None, help="grid side (interior)")
    parser.add_argument("--rtol", type=float, default=1e-8, help="linear rtol")
    parser.add_argument("--newton-rtol", type=float, default=1e-9)
    parser.add_argument("--restart", type=int, default=40)
    parser.add_argument("--recycle", type=int, default=20)
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="run each this many times, keep the fastest (the first run of a compiled program pays one-off costs)",
    )
    parser.add_argument(
        "--wrapped",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also GCRO-DR inside lineax.linear_solve and optimistix.Newton "
        "(default: on, off with --small)",
    )
    args = parser.parse_args(argv)
    n = args.n or (16 if args.small else 48)
    wrapped = (not args.small) if args.wrapped is None else args.wrapped
    print(
        f"Newton on -div((1 + u^2) grad u) = f, {n} x {n} grid, linear rtol "
        f"{args.rtol}, Newton rtol {args.newton_rtol}, restart {args.restart}, "
        f"recycle {args.recycle}"
    )
    rows = run(
        n,
        args.rtol,
        args.newton_rtol,
        args.restart,
        args.recycle,
        max_steps=50 * n,
        wrapped=wrapped,
        repeat=args.repeat,
    )
    print_table(rows)
    if not wrapped:
        print("(the lineax- and optimistix-wrapped GCRO-DR runs: --wrapped)")
    return rows


if __name__ == "__main__":
    main()
