"""Every public jittable entry point lowers for CPU, CUDA and TPU together.

``jax.export.export(jax.jit(f), platforms=("cpu", "cuda", "tpu"))`` lowers
one StableHLO module for the three platforms at once (nothing is compiled,
so it runs on a CPU-only machine). It fails where a program would fail on
one of them: a host callback (``jax.pure_callback``, ``io_callback``,
``jax.debug.*``, equinox's ``error_if``: "multi-platform lowering for
python_callback"), a primitive without a lowering for a platform (``eig``
has none on TPU), a custom call with no compatibility guarantee. So a path
that only works on the machine the library was developed on cannot come
back unnoticed.

Inputs are ``jax.ShapeDtypeStruct``s wherever the entry point takes arrays
(models and networks as shape-only pytrees, from ``eqx.filter_eval_shape``):
nothing is computed or compiled, only traced and lowered. Sizes are the
smallest that still take the code path (scalars for the special functions,
2^14 elements for the log-Bessel functions' sorted-by-region evaluation on
CPU, a multigrid hierarchy of two levels); settings the smallest that keep
the structure (few steps, small restarts). Float32 throughout (what a TPU runs), float64 as
well for ``sciax.numerics``.

Lowering is mostly tracing, 0.1-3 s a case on one CPU core, so the default
suite exports every entry point at least once (float32, some inside
another: ``darcy_sample`` in ``darcy_samples``) and ``log_iv``/``log_kv`` in
float64; variants that lower the same code again (the other numerics
functions in float64, the multigrid V-cycle under each solver, ...) run
under ``--runslow``, each marked, with its reason, where it is registered.

Every case passes ``throw=False`` where the entry point has it: ``throw=True``
is equinox's ``error_if``, a host callback by design (the documented setting
inside jit, vmap and gradients is ``throw=False``).

Not exported (not jittable by design):

- ``solvers.train_direction_network``, ``operators.fit`` and
  ``operators.fit_stream``: Python-level training loops (a progress bar,
  checkpoints written to disk, a Python stopping test on the loss); their
  compiled step is covered by ``operators-train-step``, the same
  ``value_and_grad`` of the loss and ``default_optimizer`` update.
- ``pde.write_dataset`` and ``pde.load_dataset``: files on disk.
- ``numerics.NumpyroVonMisesFisher`` and ``solvers.LineaxSolver`` /
  ``LineaxOperator`` (optional extras): thin adapters whose computations are
  those of ``VonMisesFisher`` and ``solve``, exported above.
- ``solvers.save_network``, ``solvers.load_network`` and
  ``solvers.pretrained_network``: files on disk (the networks they return
  are exported, ``network-*`` and ``solve-LearnedConjugateDirections*``).
- ``operators.default_optimizer``: builds an optax transformation (its
  update is in ``operators-train-step``).
- ``pde.chebyshev_points`` and ``pde.chebyshev_differentiation_matrix``:
  constants computed with numpy (exported inside the Chebyshev solvers).
- ``solvers.solve_sequence(devices=...)``: the devices are concrete
  machines; ``chunks > 1`` without them (the vmapped chains) is exported
  (under ``--runslow``).
- ``operators.evaluate`` with a traced model: it places the data on the
  devices of the model's first array (``arrays[0].sharding``), which a
  tracer has not; it is exported with a concrete model, as it is called.
- classes that are containers or abstract (``Solution``, ``RESULTS``,
  ``Training``, ``RecycleState``, ``AbstractLinearSolver``, ...): their
  methods and constructors run inside the cases above.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from sciax import numerics, operators, pde, solvers

PLATFORMS = ("cpu", "cuda", "tpu")

F32 = jnp.float32
F64 = jnp.float64


def shape(*dims, dtype=F32):
    return jax.ShapeDtypeStruct(dims, dtype)


def key_shape():
    return jax.eval_shape(lambda: jax.random.key(0))


def parameters_and_static(module):
    """A module with ShapeDtypeStruct leaves (``eqx.filter_eval_shape``) split
    into its shapes, to export as arguments, and the rest."""
    return eqx.partition(module, lambda leaf: isinstance(leaf, jax.ShapeDtypeStruct))


def as_shapes(tree):
    """A module's arrays as ShapeDtypeStructs (the weights of a loaded network)."""
    return jax.tree.map(
        lambda leaf: (
            jax.ShapeDtypeStruct(leaf.shape, leaf.dtype) if eqx.is_array(leaf) else leaf
        ),
        tree,
    )


CASES = {}


def case(name, *, slow=False, x64=False):
    """Registers ``build() -> (function, arguments)`` under ``name``."""

    def register(build):
        marks = []
        if slow:
            marks.append(pytest.mark.slow)
        if x64:
            marks.append(
                pytest.mark.skipif(
                    not jax.config.jax_enable_x64, reason="float64 needs jax_enable_x64"
                )
            )
        CASES[name] = pytest.param(build, id=name, marks=marks)
        return build

    return register


# ---------------------------------------------------------------- numerics

BESSEL = ["log_iv", "log_ive", "log_kv", "log_kve", "log_iv_ratio", "log_kv_ratio"]
SCALED = ["iv", "ive", "kv", "kve"]
# sorted-by-region evaluation (numerics/_region_sort.py) from this many
# elements on, CPU only: a lax.platform_dependent with another branch
# elsewhere. A multi-platform export lowers every branch for every platform
# (GCRODR's CPU branch, jnp.linalg.eig, fails it for TPU), so the CPU branch
# must lower everywhere too.
GROUPED = 1 << 14


def _bessel(name, dtype, size=None):
    """Scalars, or vectors of ``size``: at the scalar shape the programs
    traced here are those that the von Mises-Fisher functions call, which
    then reuse the traces."""
    function = getattr(numerics, name)
    dims = () if size is None else (size,)
    return lambda: (function, (shape(*dims, dtype=dtype), shape(*dims, dtype=dtype)))


for _name in BESSEL + SCALED:
    # log_iv and log_kv at the size where CPU sorts by region: that export
    # holds both the CPU branch and the plain kernels that CUDA and TPU run
    _size = GROUPED if _name in ("log_iv", "log_kv") else None
    case(f"numerics-{_name}-float32")(_bessel(_name, F32, _size))
# float64: log_iv and log_kv by default; the ratios, the scaled variants and
# the wrappers (the same kernels, 0.2-1.2 s each) and the sorted-by-region
# branch under --runslow
for _name in BESSEL + SCALED:
    case(
        f"numerics-{_name}-float64",
        x64=True,
        slow=_name not in ("log_iv", "log_kv"),
    )(_bessel(_name, F64))
for _name in ("log_iv", "log_kv"):
    case(f"numerics-{_name}-float64-grouped", x64=True, slow=True)(
        _bessel(_name, F64, GROUPED)
    )


def _von_mises_fisher(dtype):
    def build():
        def all_of_it(mean_direction, kappa, x, weights, key):
            distribution = numerics.VonMisesFisher(mean_direction, kappa)
            fit = numerics.fit_vmf(x, weights=weights)
            return (
                numerics.vmf_log_normalizer(3, kappa),
                numerics.mean_resultant_length(3, kappa),
                numerics.concentration_from_mean_length(3, kappa / (1 + kappa)),
                distribution.log_prob(x),
                distribution.log_normalizer(),
                distribution.mean(),
                distribution.entropy(),
                distribution.mode(),
                distribution.kl_to_uniform(),
                distribution.sample(key, 4),
                fit,
            )

        arguments = (
            shape(3, dtype=dtype),
            shape(dtype=dtype),
            shape(5, 3, dtype=dtype),
            shape(5, dtype=dtype),
            key_shape(),
        )
        return all_of_it, arguments

    return build


case("numerics-von-mises-fisher-float32")(_von_mises_fisher(F32))
# --runslow: the same code in float64 (3.5 s to lower)
case("numerics-von-mises-fisher-float64", x64=True, slow=True)(_von_mises_fisher(F64))


# --runslow: the implicit reparameterisation of samples (its quadrature and
# Newton iteration) under reverse mode
@case("numerics-von-mises-fisher-sample-gradient", slow=True)
def _():
    def run(mean_direction, kappa, key):
        def projected(mean_direction, kappa):
            x = numerics.VonMisesFisher(mean_direction, kappa).sample(key, 4)
            return jnp.sum(x[:, 0])

        return jax.grad(projected, argnums=(0, 1))(mean_direction, kappa)

    return run, (shape(3), shape(), key_shape())


@case("numerics-log_matern")
def _():
    def run(nu, x):
        value = numerics.log_matern(nu, x)
        slopes = jax.vmap(jax.grad(numerics.log_matern, argnums=(0, 1)))(nu, x)
        return value, slopes

    return run, (shape(8), shape(8))


# ----------------------------------------------------------------- solvers

# an 8 x 8 grid: Multigrid(coarsest_size=8) builds two levels (8^2 -> 4^2 -> 2^2)
GRID = 8
TOLERANCES = dict(rtol=1e-5, atol=0.0, max_steps=12)
SOLVERS = {
    "CG": solvers.CG(**TOLERANCES),
    "RecycledCG": solvers.RecycledCG(**TOLERANCES, recycle=2, collect=4),
    "GMRES": solvers.GMRES(**TOLERANCES, restart=4),
    "GMRESDR": solvers.GMRESDR(**TOLERANCES, restart=4, recycle=2),
    "GCRODR": solvers.GCRODR(**TOLERANCES, restart=4, recycle=2),
}
PRECONDITIONERS = {
    "none": None,
    "jacobi": solvers.Jacobi(),
    "multigrid": solvers.Multigrid(coarsest_size=8),
}


def _diffusion_solve(solver, preconditioner):
    def build():
        def run(coefficient, b):
            operator = solvers.DiffusionOperator(coefficient)
            return solvers.solve(
                operator, b, solver, preconditioner=preconditioner, throw=False
            )

        return run, (shape(GRID + 2, GRID + 2), shape(GRID * GRID))

    return build


# Every solver without and with a preconditioner (the deflated solvers take
# another path with one: the flexible variant). --runslow: the V-cycle, 1.2-
# 1.5 s to lower and the same program whatever the solver, under the solvers
# but CG; GMRESDR with Jacobi (GMRESDR runs GCRODR's restart cycle, whose
# flexible path solve-GCRODR-jacobi exports; solve_sequence-GMRESDR exports
# it without one).
for _solver_name, _solver in SOLVERS.items():
    for _label, _preconditioner in PRECONDITIONERS.items():
        case(
            f"solve-{_solver_name}-{_label}",
            slow=(_label == "multigrid" and _solver_name != "CG")
            or (_solver_name, _label) in (("GMRESDR", "jacobi"), ("GMRESDR", "none")),
        )(_diffusion_solve(_solver, _preconditioner))


@case("solve-GMRES-matrix-x0")
def _():
    def run(matrix, b, x0):
        return solvers.solve(matrix, b, SOLVERS["GMRES"], x0=x0, throw=False)

    return run, (shape(16, 16), shape(16), shape(16))


# --runslow: the state path lowers inside solve_sequence-GCRODR by default
@case("solve-GCRODR-matrix-state", slow=True)
def _():
    # a recycle space passed in, as from the previous system's Solution.state
    def run(matrix, b, basis, valid):
        state = solvers.RecycleState(basis=basis, valid=valid)
        return solvers.solve(matrix, b, SOLVERS["GCRODR"], state=state, throw=False)

    return run, (shape(16, 16), shape(16), shape(2, 16), shape(dtype=jnp.bool_))


@case("solve-RecycledCG-matrix-state")
def _():
    def run(matrix, b, basis, valid):
        state = solvers.RecycleState(basis=basis, valid=valid)
        return solvers.solve(matrix, b, SOLVERS["RecycledCG"], state=state, throw=False)

    return run, (shape(16, 16), shape(16), shape(2, 16), shape(dtype=jnp.bool_))


@case("solve-CG-sparse")
def _():
    from jax.experimental import sparse

    n, nnz = 16, 48

    def run(data, indices, b):
        matrix = sparse.BCOO((data, indices), shape=(n, n))
        return solvers.solve(
            matrix, b, SOLVERS["CG"], preconditioner=solvers.Jacobi(), throw=False
        )

    return run, (shape(nnz), shape(nnz, 2, dtype=jnp.int32), shape(n))


def _gradients(adjoint, *names):
    def build():
        def loss(coefficient, b, solver):
            solution = solvers.solve(
                solvers.DiffusionOperator(coefficient),
                b,
                solver,
                preconditioner=solvers.Jacobi(),
                adjoint=adjoint,
                throw=False,
            )
            return jnp.sum(solution.value**2)

        def run(coefficient, b):
            gradient = jax.grad(loss, argnums=(0, 1))
            return [gradient(coefficient, b, SOLVERS[name]) for name in names]

        return run, (shape(GRID + 2, GRID + 2), shape(GRID * GRID))

    return build


# the implicit adjoint: one more solve, with A^T and M^T for GMRES (CG's is
# symmetric); --runslow: the unrolled adjoint (through the iterations)
case("solve-gradients-implicit")(_gradients("implicit", "CG", "GMRES"))
case("solve-gradients-unrolled", slow=True)(_gradients("unrolled", "CG"))


# the shipped networks: 2-D and 3-D, for plain steps (Kaneda et al.'s
# network on the full grid) and for multigrid steps (blocked, pairless levels)
NETWORKS = {
    "2d": (2, False),
    "2d-multigrid": (2, True),
    "3d": (3, False),
    "3d-multigrid": (3, True),
}
# divisible by 2^levels (levels = 4)
NETWORK_GRID = 16


def _network(ndim, multigrid):
    network = solvers.pretrained_network(ndim, multigrid=multigrid)
    return parameters_and_static(as_shapes(network))


def _network_call(ndim, multigrid):
    def build():
        weights, static = _network(ndim, multigrid)

        def run(weights, residual, cell_types):
            network = eqx.combine(weights, static)
            if network.cell_types:
                return network(residual, cell_types)
            return network(residual)

        grid = (NETWORK_GRID,) * ndim
        return run, (weights, shape(*grid), shape(*grid, dtype=jnp.int32))

    return build


# the 2-D network for plain steps runs inside solve-LearnedConjugateDirections
for _label, (_ndim, _multigrid) in NETWORKS.items():
    case(f"solvers-network-{_label}", slow=_label == "2d")(
        _network_call(_ndim, _multigrid)
    )


def _learned_solve(ndim, multigrid, preconditioner):
    def build():
        weights, static = _network(ndim, multigrid)
        grid = (NETWORK_GRID,) * ndim

        def run(weights, cell_types, b):
            solver = solvers.LearnedConjugateDirections(
                eqx.combine(weights, static),
                **TOLERANCES,
                preconditioner_steps=multigrid,
            )
            return solvers.solve(
                pde.PressureOperator(cell_types, dtype=F32),
                b,
                solver,
                preconditioner=preconditioner,
                throw=False,
            )

        size = NETWORK_GRID**ndim
        return run, (weights, shape(*grid, dtype=jnp.int32), shape(size))

    return build


case("solve-LearnedConjugateDirections-none")(_learned_solve(2, False, None))
# --runslow: multigrid steps (1.6 s in 2-D, 2.5 s in 3-D: the V-cycle and the
# networks for multigrid steps are exported by default on their own), the
# fallback along M r with Jacobi
case("solve-LearnedConjugateDirections-multigrid", slow=True)(
    _learned_solve(2, True, solvers.Multigrid(coarsest_size=16))
)
case("solve-LearnedConjugateDirections-jacobi", slow=True)(
    _learned_solve(2, False, solvers.Jacobi())
)
case("solve-LearnedConjugateDirections-3d-multigrid", slow=True)(
    _learned_solve(3, True, solvers.Multigrid(coarsest_size=64))
)


def _network_preconditioned_solve():
    weights, static = _network(2, True)
    grid = (NETWORK_GRID,) * 2

    def run(weights, cell_types, b):
        preconditioner = solvers.NetworkPreconditioner(
            eqx.combine(weights, static), solvers.Multigrid(coarsest_size=16)
        )
        return solvers.solve(
            pde.PressureOperator(cell_types, dtype=F32),
            b,
            solvers.CG(**TOLERANCES, flexible=True),
            preconditioner=preconditioner,
            throw=False,
        )

    return run, (weights, shape(*grid, dtype=jnp.int32), shape(NETWORK_GRID**2))


# the network as a varying preconditioner, then a V-cycle, in flexible CG
case("solve-CG-flexible-NetworkPreconditioner")(_network_preconditioned_solve)


# a sequence of 3 Darcy systems on the 8 x 8 grid
SEQUENCE = 3


def _sequence(solver, **options):
    def build():
        def run(log_coefficients, rhs):
            return solvers.solve_sequence(
                pde.darcy_operator, log_coefficients, rhs, solver, **options
            )

        return run, (
            shape(SEQUENCE, GRID + 2, GRID + 2),
            shape(SEQUENCE, GRID * GRID),
        )

    return build


for _solver_name in ("CG", "RecycledCG", "GMRESDR", "GCRODR"):
    case(f"solve_sequence-{_solver_name}")(_sequence(SOLVERS[_solver_name]))
case("solve_sequence-CG-fft-pca")(_sequence(SOLVERS["CG"], order="fft-pca"))
# --runslow: chunks > 1, the chains side by side (1.1 s: the same CG program
# under vmap)
case("solve_sequence-CG-chunks-warm-start", slow=True)(
    _sequence(SOLVERS["CG"], order="given", chunks=2, warm_start=True)
)


# --runslow: called directly (solve_sequence above runs all three)
@case("solvers-orderings", slow=True)
def _():
    def run(features, coordinates, fields):
        return (
            solvers.greedy_order(features),
            solvers.hilbert_index(coordinates, 4),
            solvers.fft_pca_order(fields, modes=2, components=2),
        )

    return run, (
        shape(6, 3),
        shape(6, 2, dtype=jnp.int32),
        shape(6, GRID, GRID),
    )


# --------------------------------------------------------------- operators


def _fno(ndim, dtype=F32, **options):
    return eqx.filter_eval_shape(
        lambda: operators.FNO(
            2,
            1,
            ndim,
            modes=3,
            width=4,
            depth=2,
            projection=8,
            key=jax.random.key(0),
            dtype=dtype,
            **options,
        )
    )


def _forward(ndim, **options):
    def build():
        parameters, static = parameters_and_static(_fno(ndim, **options))

        def run(parameters, x):
            return eqx.combine(parameters, static)(x)

        return run, (parameters, shape(2, *(8,) * ndim))

    return build


case("operators-FNO-1d-periodic")(_forward(1, padding=0.0, grid="periodic"))
case("operators-FNO-2d")(_forward(2))
case("operators-FNO-3d")(_forward(3))


@case("operators-normalized-and-spectral-convolution")
def _():
    def build():
        fno = _fno(2)
        convolution = eqx.filter_eval_shape(
            lambda: operators.SpectralConvolution(2, 3, (3, 3), key=jax.random.key(0))
        )
        normalizer = eqx.filter_eval_shape(
            lambda: operators.UnitGaussianNormalizer(jnp.zeros((4, 2, 8, 8), F32))
        )
        target = eqx.filter_eval_shape(
            lambda: operators.UnitGaussianNormalizer(
                jnp.zeros((4, 8, 8), F32), pointwise=False
            )
        )
        return parameters_and_static((fno, convolution, normalizer, target))

    parameters, static = build()

    def run(parameters, x, y):
        fno, convolution, normalizer, target = eqx.combine(parameters, static)
        model = operators.NormalizedOperator(fno, normalizer, target)
        return (
            model(x),
            # statistics of the 8 x 8 training grid resampled to 12 x 12
            model(y),
            normalizer.decode(normalizer.encode(y)),
            convolution(x),
        )

    return run, (parameters, shape(2, 8, 8), shape(2, 12, 12))


@case("operators-losses")
def _():
    def run(prediction, target):
        return (
            operators.relative_lp_loss(prediction, target),
            operators.relative_lp_loss(prediction, target, p=1.0),
            operators.relative_h1_loss(prediction, target),
        )

    return run, (shape(2, 8, 8), shape(2, 8, 8))


@case("operators-evaluate")
def _():
    # evaluate places the data on the devices of the model's first array
    # (``arrays[0].sharding``), which a traced model has not: the model is a
    # concrete one (zeros), as evaluate is called on a trained model
    model = jax.tree.map(
        lambda leaf: (
            jnp.asarray(np.zeros(leaf.shape, leaf.dtype))
            if isinstance(leaf, jax.ShapeDtypeStruct)
            else leaf
        ),
        _fno(2),
    )

    def run(inputs, targets):
        return (
            operators.evaluate(model, inputs, targets, batch_size=2),
            operators.evaluate(
                model, inputs, targets, loss=operators.relative_h1_loss, batch_size=2
            ),
        )

    return run, (shape(3, 2, 8, 8), shape(3, 1, 8, 8))


@case("operators-train-step")
def _():
    parameters, static = parameters_and_static(_fno(2))
    optimizer = operators.default_optimizer(num_epochs=2, num_samples=4, batch_size=2)
    state = jax.eval_shape(optimizer.init, parameters)

    def run(parameters, state, inputs, targets):
        def loss(parameters):
            model = eqx.combine(parameters, static)
            predictions = jax.vmap(model)(inputs)
            return jnp.mean(jax.vmap(operators.relative_lp_loss)(predictions, targets))

        value, grads = jax.value_and_grad(loss)(parameters)
        # optax mixes Python scalars and int step counts with float arrays
        with jax.numpy_dtype_promotion("standard"):
            updates, state = optimizer.update(grads, state, parameters)
        return eqx.apply_updates(parameters, updates), state, value

    return run, (parameters, state, shape(2, 2, 8, 8), shape(2, 1, 8, 8))


# --------------------------------------------------------------------- pde


@case("pde-linear-operators")
def _():
    def run(log_coefficient, coefficient, values, v):
        return (
            pde.darcy_operator(log_coefficient).mv(v),
            pde.nonsymmetric_darcy_operator(log_coefficient).mv(v),
            pde.helmholtz_operator(log_coefficient, 3.0).mv(v),
            pde.heat_operator(coefficient, 0.1).mv(v),
            pde.heat_operator(coefficient, 0.1).boundary_source(values),
        )

    node = shape(GRID + 2, GRID + 2)
    return run, (node, node, node, shape(GRID * GRID))


@case("pde-pressure")
def _():
    def run(key, v):
        cells = {
            kind: pde.pressure_cells(kind, (GRID, GRID), key)
            for kind in ("box", "obstacles", "free-surface")
        }
        cells_3d = pde.pressure_cells("obstacles", (GRID,) * 3, key, num_obstacles=2)
        operator = pde.PressureOperator(cells["obstacles"], dtype=F32)
        return cells, cells_3d, operator.mv(v), operator.diagonal(), operator.fluid

    return run, (key_shape(), shape(GRID * GRID))


@case("pde-random-fields-and-subsampling")
def _():
    def run(key, field_2d, field_1d):
        return (
            pde.gaussian_random_field(key, (8,), dtype=F32),
            pde.gaussian_random_field(key, (8, 8), dtype=F32),
            pde.gaussian_random_field(key, (4, 4, 4), dtype=F32),
            pde.subsample(field_2d, 5),
            pde.periodic_subsample(field_1d, 4),
        )

    return run, (key_shape(), shape(2, 9, 9), shape(2, 16))


@case("pde-burgers")
def _():
    def run(key):
        initial = pde.burgers_initial_condition(key, 16, dtype=F32)
        return (
            initial,
            pde.burgers_solve(initial, num_steps=2),
            pde.burgers_samples(
                key,
                3,
                resolution=16,
                num_steps=2,
                batch_size=2,
                throw=False,
                dtype=F32,
            ),
        )

    return run, (key_shape(),)


# 7^2 interior nodes: the default Multigrid (coarsest_size=512) is then its
# coarsest level alone (the hierarchy is in solve-CG-multigrid)
DARCY_RESOLUTION = 9


# --runslow: darcy_samples (by default) runs it
@case("pde-darcy_sample", slow=True)
def _():
    def run(key):
        return pde.darcy_sample(
            key, resolution=DARCY_RESOLUTION, throw=False, dtype=F32
        )

    return run, (key_shape(),)


@case("pde-darcy_samples")
def _():
    def run(key):
        return pde.darcy_samples(
            key, 3, resolution=DARCY_RESOLUTION, batch_size=2, throw=False, dtype=F32
        )

    return run, (key_shape(),)


@case("pde-linear_family_samples")
def _():
    def run(key):
        return pde.linear_family_samples(
            "helmholtz", key, 3, resolution=DARCY_RESOLUTION, throw=False, dtype=F32
        )

    return run, (key_shape(),)


def _poisson_1d(x, u, uxx):
    return uxx + 4 * jnp.sin(2 * x)


def _poisson_1d_first(x, u, ux, uxx):
    return uxx - u * ux - jnp.sin(x)


GP_SMALL = dict(
    rtol=1e-3,
    max_outer_steps=1,
    kernel_steps=2,
    newton_steps=2,
    spectrum_steps=2,
    throw=False,
)


@case("pde-gp_solve")
def _():
    def run(boundary, z):
        solution = pde.gp_solve(
            _poisson_1d, boundary, (0.0, 3.0), 16, num_components=2, **GP_SMALL
        )
        return solution, solution(z), solution.derivative(z, 1)

    return run, (shape(2), shape(5))


# --runslow: a Matern mixture (log_kv) as the GP's kernel (2 s; the kernel
# itself is in pde-gp-kernels)
@case("pde-gp_solve-matern", slow=True)
def _():
    def run(boundary, weights, frequencies, log_lengthscales):
        kernel = pde.MaternMixtureKernel(weights, frequencies, log_lengthscales, 2.5)
        return pde.gp_solve(
            _poisson_1d, boundary, (0.0, 3.0), 16, kernel=kernel, **GP_SMALL
        )

    q = shape(2)
    return run, (shape(2), q, q, q)


@case("pde-gp-kernels")
def _():
    def run(difference, log_weights, frequencies, logs, scalar):
        kernels = (
            pde.SpectralMixtureKernel(log_weights, frequencies, logs),
            pde.MaternMixtureKernel(log_weights, frequencies, logs, 1.5),
            pde.SquaredExponentialKernel(scalar, scalar),
            pde.MaternKernel(scalar, scalar, 2.5),
        )
        return [
            (kernel.derivative(difference, order), kernel.spectrum())
            for kernel in kernels
            # the derivatives below order 2 are computed on the way
            for order in (2,)
        ]

    q = shape(2)
    return run, (shape(5), q, q, q, shape())


def _poisson_box(p, u, uxx, uyy):
    return uxx + uyy - jnp.sin(p[0]) * jnp.cos(p[1])


def _box_boundary(p):
    return p[0] * p[1]


@case("pde-gp_solve_box")
def _():
    def run(points):
        solution = pde.gp_solve_box(
            _poisson_box,
            _box_boundary,
            ((0.0, 1.0), (0.0, 1.0)),
            (8, 8),
            num_components=2,
            cg_steps=2,
            dtype=F32,
            **GP_SMALL,
        )
        return solution, solution(points), solution.on_grid(points[:, 0], points[:, 1])

    return run, (shape(5, 2),)


@case("pde-chebyshev_solve")
def _():
    def run(z):
        solution = pde.chebyshev_solve(
            _poisson_1d_first,
            (0.0, 1.0),
            (0.0, 2.0),
            9,
            rtol=1e-5,
            max_steps=2,
            throw=False,
            dtype=F32,
        )
        return solution, solution(z)

    return run, (shape(5),)


def _transport(p, u, ux, ut):
    return ut + ux


@case("pde-chebyshev_solve_box")
def _():
    def run(points):
        # all four sides given, second order: GMRES with the fast
        # diagonalisation; transport on (x, t): the dense Newton path
        fast = pde.chebyshev_solve_box(
            _poisson_box,
            _box_boundary,
            ((0.0, 1.0), (0.0, 1.0)),
            (8, 9),
            rtol=1e-5,
            max_steps=2,
            max_linear_steps=4,
            throw=False,
            dtype=F32,
        )
        dense = pde.chebyshev_solve_box(
            _transport,
            _box_boundary,
            ((0.0, 1.0), (0.0, 1.0)),
            (6, 6),
            rtol=1e-5,
            derivatives=((1, 0), (0, 1)),
            dirichlet=((True, False), (True, False)),
            max_steps=2,
            throw=False,
            dtype=F32,
        )
        return fast, dense, fast(points), dense.on_grid(points[:, 0], points[:, 1])

    return run, (shape(5, 2),)


# ------------------------------------------------------------------- test


@pytest.mark.parametrize("build", list(CASES.values()))
def test_exports_for_cpu_cuda_and_tpu(build):
    function, arguments = build()
    exported = export.export(jax.jit(function), platforms=PLATFORMS)(*arguments)
    assert exported.platforms == PLATFORMS
