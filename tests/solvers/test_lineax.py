"""lineax interoperability: lineax operators into ``solve``, sciax solvers as
``lineax.AbstractLinearSolver`` (``LineaxSolver``) inside lineax, optimistix
and diffrax, and the Newton example at its small size.

Most of the cost is compiling: the default-run tests use GMRES and CG (2-5 s
each to compile on 2 cores) on one small system, and share compiled programs
where they can (same shapes, solver and ``throw``); GCRO-DR (~10 s to
compile), diffrax's Kvaerno5 and the example run under --runslow.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

lx = pytest.importorskip("lineax")

from sciax import solvers  # noqa: E402
from sciax.solvers import RESULTS  # noqa: E402

from ..helpers import eps  # noqa: E402

N = 24
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "newton_recycling.py"


def _system(dtype, *, spd=False, seed=0):
    """A well-conditioned n x n system: diagonally dominant nonsymmetric, or SPD."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((N, N)) / np.sqrt(N)
    matrix = g @ g.T + 2 * np.eye(N) if spd else g + 3 * np.eye(N)
    b = rng.standard_normal(N)
    return jnp.asarray(matrix, dtype), jnp.asarray(b, dtype)


def _gmres(dtype, **kwargs):
    rtol = 1e-10 if dtype == jnp.float64 else 1e-5
    options = dict(rtol=rtol, atol=0.0, max_steps=200, restart=20)
    options.update(kwargs)
    return solvers.GMRES(**options)


def _relative_residual(matrix, x, b):
    return float(jnp.linalg.norm(matrix @ x - b) / jnp.linalg.norm(b))


# -- lineax operators into sciax.solvers.solve ---------------------------------


def test_solve_accepts_a_lineax_matrix_operator():
    matrix, b = _system(jnp.float64)
    solution = solvers.solve(lx.MatrixLinearOperator(matrix), b, _gmres(jnp.float64))
    assert solution.result == RESULTS.successful
    assert _relative_residual(matrix, solution.value, b) <= 1e-10
    np.testing.assert_allclose(
        solution.value, jnp.linalg.solve(matrix, b), rtol=1e-8, atol=1e-10
    )


def test_cg_needs_the_positive_semidefinite_tag():
    matrix, b = _system(jnp.float64, spd=True)
    cg = solvers.CG(rtol=1e-10, atol=0.0, max_steps=200)
    # untagged, or only symmetric: refused before anything is compiled
    for tags in (frozenset(), lx.symmetric_tag):
        with pytest.raises(ValueError, match="positive_semidefinite_tag"):
            solvers.solve(lx.MatrixLinearOperator(matrix, tags), b, cg)
    with pytest.raises(ValueError, match="negative semidefinite"):
        solvers.solve(
            lx.MatrixLinearOperator(-matrix, lx.negative_semidefinite_tag), b, cg
        )
    tagged = lx.MatrixLinearOperator(
        matrix, (lx.symmetric_tag, lx.positive_semidefinite_tag)
    )
    solution = solvers.solve(tagged, b, cg)
    assert solution.result == RESULTS.successful
    assert _relative_residual(matrix, solution.value, b) <= 1e-10


def test_solve_flattens_a_pytree_function_operator():
    """A FunctionLinearOperator on a dict of two arrays (one 2-D): solve works
    on the vector that ravel_pytree makes, in the same order."""
    matrix, b = _system(jnp.float64)
    structure = {
        "a": jax.ShapeDtypeStruct((4,), jnp.float64),
        "b": jax.ShapeDtypeStruct((4, 5), jnp.float64),
    }
    flat = jax.flatten_util.ravel_pytree(
        jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), structure)
    )[1]

    def mv(tree):
        vector, _ = jax.flatten_util.ravel_pytree(tree)
        return flat(matrix @ vector)

    operator = lx.FunctionLinearOperator(mv, structure)
    solution = solvers.solve(operator, b, _gmres(jnp.float64))
    assert solution.result == RESULTS.successful
    np.testing.assert_allclose(
        solution.value, jnp.linalg.solve(matrix, b), rtol=1e-8, atol=1e-10
    )


def test_operators_that_do_not_flatten_simply_are_refused():
    mixed = {
        "a": jax.ShapeDtypeStruct((3,), jnp.float64),
        "b": jax.ShapeDtypeStruct((3,), jnp.float32),
    }
    with pytest.raises(TypeError, match="several dtypes"):
        solvers.LineaxOperator(lx.FunctionLinearOperator(lambda x: x, mixed))
    complex_matrix = lx.MatrixLinearOperator(jnp.eye(3, dtype=jnp.complex128))
    with pytest.raises(TypeError, match="real"):
        solvers.LineaxOperator(complex_matrix)
    with pytest.raises(ValueError, match="square"):
        solvers.LineaxOperator(lx.MatrixLinearOperator(jnp.ones((3, 4))))
    with pytest.raises(TypeError, match="sciax solver"):
        solvers.LineaxSolver(lx.GMRES(rtol=1e-6, atol=0.0))
    with pytest.raises(TypeError, match="only used by GCRODR"):
        solvers.LineaxSolver(
            _gmres(jnp.float64),
            recycle_state=solvers.RecycleState(
                basis=jnp.zeros((2, N)), valid=jnp.asarray(False)
            ),
        )


# -- LineaxSolver inside lineax.linear_solve -----------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_adapter_in_linear_solve_keeps_the_dtype(dtype):
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        pytest.skip("float64 needs JAX_ENABLE_X64")
    matrix, b = _system(dtype)
    adapter = solvers.LineaxSolver(_gmres(dtype))
    # throw=False: the program that the non-convergence test reuses
    solution = lx.linear_solve(lx.MatrixLinearOperator(matrix), b, adapter, throw=False)
    assert solution.result == lx.RESULTS.successful
    assert solution.value.dtype == dtype
    # the stopping test, checked in float64 (float32 rounding of A x adds a
    # few eps to the solver's own estimate)
    rtol = _gmres(dtype).rtol
    residual = (
        _relative_residual(
            jnp.asarray(matrix, jnp.float64),
            jnp.asarray(solution.value, jnp.float64),
            jnp.asarray(b, jnp.float64),
        )
        if jax.config.jax_enable_x64
        else _relative_residual(matrix, solution.value, b)
    )
    assert residual <= rtol + 20 * eps(dtype), residual
    # the wrapped solver's statistics come through lineax's Solution
    assert int(solution.stats["num_matvecs"]) > 0
    assert float(solution.stats["residual_norm"]) <= rtol * float(jnp.linalg.norm(b))


def test_adapter_under_jit_matches_eager_and_takes_y0():
    matrix, b = _system(jnp.float64)
    operator = lx.MatrixLinearOperator(matrix)
    adapter = solvers.LineaxSolver(_gmres(jnp.float64))
    # throw=False: the float64 dtype test's compiled program
    eager = lx.linear_solve(operator, b, adapter, throw=False).value

    @jax.jit
    def solve_from(b, y0):
        solution = lx.linear_solve(operator, b, adapter, options={"y0": y0})
        return solution.value, solution.stats["num_steps"]

    jitted, _ = solve_from(b, jnp.zeros_like(b))
    np.testing.assert_allclose(jitted, eager, rtol=1e-12, atol=1e-14)
    # started from the answer, the solve does no Arnoldi step
    _, steps = solve_from(b, eager)
    assert int(steps) == 0


def test_gradient_through_the_adapter():
    """lineax differentiates linear_solve itself (a tangent solve and, for
    reverse mode, a solve with A^T through LineaxSolver.transpose)."""
    matrix, b = _system(jnp.float64)
    adapter = solvers.LineaxSolver(_gmres(jnp.float64))
    weights = jnp.linspace(-1.0, 1.0, N)

    def loss(matrix, b):
        x = lx.linear_solve(lx.MatrixLinearOperator(matrix), b, adapter).value
        return jnp.dot(weights, x)

    def reference(matrix, b):
        return jnp.dot(weights, jnp.linalg.solve(matrix, b))

    got = jax.grad(loss, argnums=(0, 1))(matrix, b)
    want = jax.grad(reference, argnums=(0, 1))(matrix, b)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-7, atol=1e-10)


def test_non_convergence_is_reported_not_silent():
    """The cyclic shift with b = e_1: every Krylov space of dimension below n
    holds no better iterate than x = 0, so restarted GMRES(20) on n = 24
    makes no progress at all. The failure reaches lineax's result, and
    throw=True raises it (the same compiled program as the dtype test)."""
    shift = jnp.roll(jnp.eye(N), 1, axis=0)
    b = jnp.zeros(N).at[0].set(1.0)
    operator = lx.MatrixLinearOperator(shift)
    adapter = solvers.LineaxSolver(_gmres(jnp.float64))
    solution = lx.linear_solve(operator, b, adapter, throw=False)
    assert solution.result == lx.RESULTS.stagnation
    assert _relative_residual(shift, solution.value, b) > 0.5


def test_negative_definite_operator_with_cg_is_negated():
    """As lineax.CG does: a negative definite A is solved as (-A) x = -b."""
    matrix, b = _system(jnp.float64, spd=True)
    operator = lx.MatrixLinearOperator(-matrix, lx.negative_semidefinite_tag)
    adapter = solvers.LineaxSolver(solvers.CG(rtol=1e-10, atol=0.0, max_steps=200))
    solution = lx.linear_solve(operator, b, adapter)
    np.testing.assert_allclose(
        solution.value, jnp.linalg.solve(-matrix, b), rtol=1e-8, atol=1e-12
    )
    with pytest.raises(ValueError, match="positive_semidefinite_tag"):
        lx.linear_solve(lx.MatrixLinearOperator(matrix), b, adapter)


@pytest.mark.slow  # ~12 s on 2 cores: compiling GCRO-DR's eigen-step
def test_gcrodr_recycle_space_round_trip_through_lineax():
    """The space leaves through Solution.stats and enters through options:
    on a nearby matrix the recycled solve needs fewer Arnoldi steps."""
    matrix, b = _system(jnp.float64)
    # small eigenvalues that restarted GMRES(10) struggles with
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    spectrum = np.concatenate([np.geomspace(1e-3, 1e-2, 4), np.linspace(1, 2, N - 4)])
    hard = jnp.asarray(q @ np.diag(spectrum) @ q.T) + 0.05 * matrix / 3
    gcrodr = solvers.GCRODR(rtol=1e-10, atol=0.0, max_steps=400, restart=10, recycle=4)
    adapter = solvers.LineaxSolver(gcrodr)
    empty = gcrodr.init_state(None, b)
    first = lx.linear_solve(
        lx.MatrixLinearOperator(hard), b, adapter, options={"recycle_state": empty}
    )
    assert first.result == lx.RESULTS.successful
    space = first.stats["recycle_state"]
    assert bool(space.valid)
    nearby = hard + 1e-4 * jnp.asarray(rng.standard_normal((N, N)))
    fresh = lx.linear_solve(
        lx.MatrixLinearOperator(nearby), b, adapter, options={"recycle_state": empty}
    )
    recycled = lx.linear_solve(
        lx.MatrixLinearOperator(nearby), b, adapter, options={"recycle_state": space}
    )
    assert recycled.result == lx.RESULTS.successful
    assert _relative_residual(nearby, recycled.value, b) <= 1e-10
    assert int(recycled.stats["num_steps"]) < int(fresh.stats["num_steps"])


# -- optimistix and diffrax ----------------------------------------------------


def _nonlinear(u, forcing):
    """A small nonlinear system whose Jacobian, 3 I + L + diag(3 u^2), is
    nonsymmetric (L is a one-sided difference)."""
    shifted = jnp.concatenate([u[1:], jnp.zeros(1, u.dtype)])
    return 3.0 * u + u**3 - shifted - forcing


def test_optimistix_newton_with_the_adapter():
    optx = pytest.importorskip("optimistix")
    forcing = jnp.linspace(0.5, 2.0, N)
    adapter = solvers.LineaxSolver(_gmres(jnp.float64))
    newton = optx.Newton(rtol=1e-10, atol=1e-10, linear_solver=adapter)
    solution = optx.root_find(_nonlinear, newton, jnp.zeros(N), args=forcing)
    assert solution.result == optx.RESULTS.successful
    assert float(jnp.max(jnp.abs(_nonlinear(solution.value, forcing)))) <= 1e-9


def test_optimistix_reports_a_failing_linear_solve():
    """A linear solve that runs out of steps ends the root find with that
    failure instead of returning a wrong root as successful."""
    optx = pytest.importorskip("optimistix")
    forcing = jnp.linspace(0.5, 2.0, N)
    adapter = solvers.LineaxSolver(_gmres(jnp.float64, max_steps=2, restart=2))
    newton = optx.Newton(rtol=1e-10, atol=1e-10, linear_solver=adapter)
    solution = optx.root_find(
        _nonlinear, newton, jnp.zeros(N), args=forcing, throw=False
    )
    assert solution.result != optx.RESULTS.successful


@pytest.mark.slow  # ~15 s: GCRO-DR inside optimistix compiles once more
def test_optimistix_newton_with_gcrodr_and_a_frozen_space():
    optx = pytest.importorskip("optimistix")
    forcing = jnp.linspace(0.5, 2.0, N)
    gcrodr = solvers.GCRODR(rtol=1e-10, atol=0.0, max_steps=400, restart=8, recycle=3)
    # the space from the Jacobian at the initial guess, frozen for every step
    jacobian = jax.jacfwd(_nonlinear)(jnp.zeros(N), forcing)
    space = solvers.solve(jacobian, forcing, gcrodr).state
    adapter = solvers.LineaxSolver(gcrodr, recycle_state=space)
    newton = optx.Newton(rtol=1e-10, atol=1e-10, linear_solver=adapter)
    solution = optx.root_find(_nonlinear, newton, jnp.zeros(N), args=forcing)
    assert solution.result == optx.RESULTS.successful
    assert float(jnp.max(jnp.abs(_nonlinear(solution.value, forcing)))) <= 1e-9


def _stiff_ode(root_finder):
    """y' = -K y, K = 50 (3 I - shift), over [0, 0.1] with Kvaerno5, against
    the exact solution expm(-0.1 K) y0."""
    diffrax = pytest.importorskip("diffrax")
    stiffness = 50.0 * (3.0 * jnp.eye(N) - jnp.eye(N, k=1))
    y0 = jnp.linspace(1.0, 2.0, N)
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, args: -stiffness @ y),
        diffrax.Kvaerno5(root_finder=root_finder),
        t0=0.0,
        t1=0.1,
        dt0=0.01,
        y0=y0,
        stepsize_controller=diffrax.PIDController(rtol=1e-7, atol=1e-9),
    )
    assert solution.result == diffrax.RESULTS.successful
    exact = jax.scipy.linalg.expm(-0.1 * stiffness) @ y0
    np.testing.assert_allclose(solution.ys[-1], exact, rtol=1e-6, atol=1e-9)


@pytest.mark.slow  # ~7 s: compiling Kvaerno5's step with the root finder
def test_diffrax_implicit_solver_with_the_adapter():
    optx = pytest.importorskip("optimistix")
    adapter = solvers.LineaxSolver(_gmres(jnp.float64))
    _stiff_ode(optx.Newton(rtol=1e-8, atol=1e-8, linear_solver=adapter))


@pytest.mark.xfail(
    raises=TypeError,
    strict=True,
    reason="optimistix 0.1.0's Chord and diffrax 0.7.2's VeryChord apply "
    "lax.stop_gradient to the linear solver's state, which holds a linearised "
    "operator (a jaxpr leaf): lineax's own GMRES fails the same way. Passes "
    "once they filter that call.",
)
@pytest.mark.parametrize("which", ["sciax", "lineax"])
@pytest.mark.parametrize("chord", ["optimistix", "diffrax"])
def test_chord_root_finders_with_a_matrix_free_solver(which, chord):
    if which == "sciax":
        linear_solver = solvers.LineaxSolver(_gmres(jnp.float64))
    else:
        linear_solver = lx.GMRES(rtol=1e-10, atol=1e-12, max_steps=50, restart=20)
    if chord == "diffrax":
        diffrax = pytest.importorskip("diffrax")
        _stiff_ode(diffrax.VeryChord(rtol=1e-8, atol=1e-8, linear_solver=linear_solver))
    else:
        optx = pytest.importorskip("optimistix")
        forcing = jnp.linspace(0.5, 2.0, N)
        chord_solver = optx.Chord(rtol=1e-10, atol=1e-10, linear_solver=linear_solver)
        optx.root_find(_nonlinear, chord_solver, jnp.zeros(N), args=forcing)


# -- optional extra, example ---------------------------------------------------


def test_adapter_without_lineax_names_the_extra(monkeypatch):
    """The lazy hook: with lineax unimportable, sciax.solvers.LineaxSolver
    raises an ImportError that names the extra, and solve does not look for
    lineax operators (in-process: _lineax is dropped and re-imported)."""
    monkeypatch.delitem(sys.modules, "sciax.solvers._lineax", raising=False)
    monkeypatch.delattr(solvers, "_lineax", raising=False)
    monkeypatch.setitem(sys.modules, "lineax", None)
    with pytest.raises(ImportError, match=r"sciax\[lineax\]"):
        solvers.LineaxSolver  # noqa: B018
    assert not solvers._operator.is_lineax_operator(object())


@pytest.mark.slow  # ~10 s: a fresh interpreter imports jax and sciax
def test_sciax_solvers_imports_without_lineax():
    """With lineax unimportable, sciax.solvers loads and solves."""
    code = (
        "import sys; sys.modules['lineax'] = None\n"
        "import jax.numpy as jnp\n"
        "from sciax import solvers\n"
        "x = solvers.solve(jnp.eye(3), jnp.ones(3), solvers.CG(rtol=1e-6, atol=0.0, "
        "max_steps=10)).value\n"
        "assert float(x[0]) == 1.0\n"
        "try:\n"
        "    solvers.LineaxSolver\n"
        "except ImportError as error:\n"
        "    assert 'sciax[lineax]' in str(error), error\n"
        "else:\n"
        "    raise AssertionError('LineaxSolver imported without lineax')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _example():
    spec = importlib.util.spec_from_file_location("newton_recycling", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # ~25 s on 2 cores, most of it compiling GCRO-DR once
def test_newton_recycling_example_small(capsys):
    example = _example()
    rows = {row["name"]: row for row in example.main(["--small", "--repeat", "1"])}
    recycled = rows["sciax GCRO-DR, recycled"]
    fresh = rows["sciax GCRO-DR, fresh"]
    for row in rows.values():
        assert row["failures"] == 0, row
        assert row["final"] <= 1e-9, row
    # the point of the example: recycling across Newton steps saves matvecs
    assert recycled["matvecs"] < fresh["matvecs"] < rows["lineax GMRES"]["matvecs"]
    assert "lineax GMRES" in capsys.readouterr().out
