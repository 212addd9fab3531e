"""Flexible Krylov methods: FGMRES (GMRES's default), flexible GCRO-DR,
CG(flexible=True), and the direction network as a varying preconditioner.

With a fixed preconditioner the flexible and non-flexible forms take the
same iterates; with one that changes between applications (an inner solve
to a random tolerance, a network) the flexible forms converge and the
non-flexible ones stall or break down, and say so."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciax import pde, solvers
from tests.helpers import diffusion_coefficient


def _nonsymmetric(n=60, seed=0):
    rng = np.random.default_rng(seed)
    matrix = (
        np.eye(n) * 3
        + rng.normal(size=(n, n)) / np.sqrt(n)
        + np.diag(np.linspace(0, 5, n))
    )
    return jnp.asarray(matrix), jnp.asarray(rng.normal(size=n))


def _random_inner_solve(operator, solver_class, **options):
    """v -> an inner solve of A z = v to a tolerance drawn at random for
    every application (the seed is v's bits): a preconditioner that is a
    different nonlinear map each time it is applied."""

    def apply(v):
        seed = jax.lax.bitcast_convert_type(jnp.sum(v * v), jnp.int64)
        tolerance = jax.random.uniform(jax.random.PRNGKey(seed), (), v.dtype, 0.05, 0.5)
        inner = solver_class(rtol=tolerance, atol=0.0, max_steps=20, **options)
        return solvers.solve(operator, v, inner, throw=False).value

    return apply


def test_fixed_preconditioner_same_iterates():
    matrix, b = _nonsymmetric()
    scaling = jnp.asarray(1 / np.linspace(1, 4, matrix.shape[0]))
    preconditioner = jnp.diag(scaling)
    histories = []
    for flexible in (True, False):
        solver = solvers.GMRES(
            rtol=1e-10, atol=0.0, max_steps=200, restart=12, flexible=flexible
        )
        solution = solvers.solve(matrix, b, solver, preconditioner=preconditioner)
        histories.append(solution.stats["residual_history"])
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-6)
    operator = solvers.DiffusionOperator(jnp.asarray(diffusion_coefficient(12, 0)))
    rhs = jnp.asarray(np.random.default_rng(1).normal(size=144))
    cg_histories = [
        solvers.solve(
            operator,
            rhs,
            solvers.CG(rtol=1e-10, atol=0.0, max_steps=300, flexible=flexible),
            preconditioner=solvers.Jacobi(),
        ).stats["residual_history"]
        for flexible in (True, False)
    ]
    np.testing.assert_allclose(cg_histories[0], cg_histories[1], rtol=1e-6)


@pytest.mark.slow  # two GCRO-DR compilations, 8 s on 2 cores
def test_flexible_gcrodr_with_a_fixed_preconditioner():
    matrix, b = _nonsymmetric()
    scaling = jnp.asarray(1 / np.linspace(1, 4, matrix.shape[0]))
    preconditioner = jnp.diag(scaling)
    # Flexible GCRO-DR with M and GCRO-DR on A M: the first (GMRES) cycle is
    # the same; after it the flexible form's harmonic Ritz problem reads
    # x-space directions and picks another (equally valid) space.
    solver = solvers.GCRODR(rtol=1e-10, atol=0.0, max_steps=200, restart=12, recycle=4)
    flexible = solvers.solve(matrix, b, solver, preconditioner=preconditioner)
    on_product = solvers.solve(matrix * scaling[None, :], b, solver)
    np.testing.assert_allclose(
        flexible.stats["residual_history"][:12],
        on_product.stats["residual_history"][:12],
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        flexible.value, scaling * on_product.value, rtol=0, atol=1e-9
    )


def test_varying_preconditioner_needs_the_flexible_form():
    matrix, b = _nonsymmetric()
    preconditioner = _random_inner_solve(matrix, solvers.GMRES, restart=20)
    steps = {}
    for label, solver in {
        "FGMRES": solvers.GMRES(rtol=1e-10, atol=0.0, max_steps=60, restart=30),
        "GMRES": solvers.GMRES(
            rtol=1e-10, atol=0.0, max_steps=60, restart=30, flexible=False
        ),
        "FGCRODR": solvers.GCRODR(
            rtol=1e-10, atol=0.0, max_steps=60, restart=30, recycle=5
        ),
    }.items():
        solution = solvers.solve(
            matrix, b, solver, preconditioner=preconditioner, throw=False
        )
        residual = jnp.linalg.norm(b - matrix @ solution.value) / jnp.linalg.norm(b)
        steps[label] = int(solution.stats["num_steps"])
        if label == "GMRES":
            # not a silent wrong answer: the failure is reported
            assert solution.result != solvers.RESULTS.successful
            assert residual > 1e-10
        else:
            assert solution.result == solvers.RESULTS.successful, label
            assert residual <= 1e-10
    assert steps["FGMRES"] <= 20 and steps["FGCRODR"] <= 20

    operator = solvers.DiffusionOperator(jnp.asarray(diffusion_coefficient(16, 0)))
    rhs = jnp.asarray(np.random.default_rng(1).normal(size=256))
    varying = _random_inner_solve(operator, solvers.CG)
    flexible = solvers.solve(
        operator,
        rhs,
        solvers.CG(rtol=1e-10, atol=0.0, max_steps=100, flexible=True),
        preconditioner=varying,
    )
    assert int(flexible.stats["num_steps"]) <= 30
    plain = solvers.solve(
        operator,
        rhs,
        solvers.CG(rtol=1e-10, atol=0.0, max_steps=100),
        preconditioner=varying,
        throw=False,
    )
    assert plain.result == solvers.RESULTS.breakdown


# 20-40 s of compiling the network on 2 cores per dtype; the default suite
# exports it (tests/test_export.py) and checks the flexible methods with an
# inner solve above
@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_network_preconditioner_in_flexible_methods(dtype):
    cells = pde.pressure_cells(
        "obstacles", (32, 32), jax.random.key(7), num_obstacles=4
    )
    operator = pde.PressureOperator(cells, dtype=dtype)
    b = jax.random.normal(jax.random.key(1), (operator.shape[0],), dtype)
    b = b * operator.fluid.reshape(-1)
    rtol = 1e-4 if dtype == jnp.float32 else 1e-8
    network = solvers.NetworkPreconditioner(solvers.pretrained_network(2))
    with_multigrid = solvers.NetworkPreconditioner(
        solvers.pretrained_network(2, multigrid=True), solvers.Multigrid()
    )
    # one compiled program each: FGMRES with the network; flexible CG with the
    # network and a V-cycle, batched over two right-hand sides
    fgmres = solvers.GMRES(rtol=rtol, atol=0.0, max_steps=200, restart=30)
    flexible_cg = solvers.CG(rtol=rtol, atol=0.0, max_steps=200, flexible=True)
    single = jax.jit(
        lambda a, b: solvers.solve(a, b, fgmres, preconditioner=network, throw=False)
    )(operator, b)
    batch = jnp.stack([b, 2 * b])
    batched = jax.jit(
        jax.vmap(
            lambda a, b: solvers.solve(
                a, b, flexible_cg, preconditioner=with_multigrid, throw=False
            ),
            in_axes=(None, 0),
        )
    )(operator, batch)
    assert single.result == solvers.RESULTS.successful
    assert bool(jnp.all(batched.result == solvers.RESULTS.successful))
    for value, rhs in [
        (single.value, b),
        (batched.value[0], b),
        (batched.value[1], 2 * b),
    ]:
        assert value.dtype == dtype
        residual = jnp.linalg.norm(rhs - operator.mv(value))
        assert residual <= rtol * jnp.linalg.norm(rhs) * 1.0001


def test_network_preconditioner_refuses_what_it_cannot_use():
    network = solvers.pretrained_network(2)
    with pytest.raises(TypeError, match="ConjugateDirectionNetwork"):
        solvers.NetworkPreconditioner(jnp.eye(2))
    with pytest.raises(TypeError, match="correction"):
        solvers.NetworkPreconditioner(network, correction=jnp.eye(2))
    b = jnp.ones(4)
    with pytest.raises(TypeError, match="grid"):
        solvers.solve(
            jnp.eye(4),
            b,
            solvers.CG(rtol=1e-6, atol=0.0, max_steps=10, flexible=True),
            preconditioner=solvers.NetworkPreconditioner(network),
        )
