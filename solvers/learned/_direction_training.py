"""Unsupervised training of the conjugate-direction network: Ritz vectors
computed on the device (as solutions for the energy loss, right-hand sides
for the paper's one-step loss), the losses, and a resumable loop with atomic
checkpoints and a progress bar."""

import functools
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ..._checkpoint import load_checkpoint, save_checkpoint
from ..._results import RESULTS
from ..._training import Training
from .._operator import AbstractGridOperator
from .._solver import dot, matmul
from ..preconditioners._preconditioner import AbstractPreconditioner
from ._direction_network import ConjugateDirectionNetwork
from ._learned_cd import conjugate_step


def _grid_attribute(operator, name):
    """``operator.<name>`` for a grid operator, None for any other."""
    if isinstance(operator, AbstractGridOperator):
        return getattr(operator, name)
    return None


def _ritz_pairs(operator, num_steps: int, key):
    r"""Ritz values (ascending) and unit Ritz vectors (columns, n x m) of a
    symmetric operator from ``num_steps`` Lanczos steps with full
    reorthogonalization, started from a random vector restricted to the
    operator's ``fluid`` cells when it has them. The low end converges to
    the smallest eigenpairs first: the modes conjugate gradients resolves
    last."""
    n = operator.shape[0]
    dtype = operator.dtype
    fluid = _grid_attribute(operator, "fluid")
    mask = jnp.ones(n, dtype) if fluid is None else fluid.reshape(-1)
    start = jax.random.normal(key, (n,), dtype) * mask
    start = start / jnp.sqrt(dot(start, start))
    basis = jnp.zeros((num_steps, n), dtype).at[0].set(start)

    def step(carry, j):
        basis, alphas, betas = carry
        v = basis[j]
        w = operator.mv(v) * mask
        alpha = dot(v, w)
        # twice-applied classical Gram-Schmidt against the whole basis
        for _ in range(2):
            w = w - matmul(matmul(basis, w), basis)
        beta = jnp.sqrt(dot(w, w))
        following = jnp.where(beta > 0, w / jnp.where(beta > 0, beta, 1), 0)
        basis = basis.at[j + 1].set(following, mode="drop")
        return (basis, alphas.at[j].set(alpha), betas.at[j].set(beta)), None

    zeros = jnp.zeros(num_steps, dtype)
    (basis, alphas, betas), _ = jax.lax.scan(
        step, (basis, zeros, zeros), jnp.arange(num_steps)
    )
    tridiagonal = jnp.diag(alphas) + jnp.diag(betas[:-1], 1) + jnp.diag(betas[:-1], -1)
    values, vectors = jnp.linalg.eigh(tridiagonal)
    return values, matmul(basis.T, vectors)


# jitted: it runs every training step, and eagerly it is a dozen dispatches
@functools.partial(jax.jit, static_argnums=(1, 3))
def _ritz_right_hand_sides(ritz_vectors, num: int, key, low_weight: float = 9.0):
    """``num`` unit right-hand sides $b = Yc$, c Gaussian with the weights of
    the lower half of the spectrum ``low_weight`` times those of the upper
    half (Kaneda et al. weight the low end, which is where a learned
    direction has to beat the residual)."""
    m = ritz_vectors.shape[1]
    dtype = ritz_vectors.dtype
    weights = jnp.where(jnp.arange(m) < m // 2, low_weight, 1.0).astype(dtype)
    coefficients = jax.random.normal(key, (num, m), dtype) * weights[None, :]
    b = matmul(coefficients, ritz_vectors.T)
    return b / jnp.linalg.norm(b, axis=1, keepdims=True)


def _fluid_mask(network, operator):
    fluid = _grid_attribute(operator, "fluid")
    return 1.0 if fluid is None else fluid.reshape(-1).astype(network.dtype)


def _proposer(network, operator):
    """The network's direction for a flat residual, restricted to the fluid
    cells, as ``LearnedConjugateDirections`` forms it."""
    grid = operator.grid_shape
    cell_types = _grid_attribute(operator, "cell_types")
    mask = _fluid_mask(network, operator)

    def propose(residual):
        return network(residual.reshape(grid), cell_types).reshape(-1) * mask

    return propose


def one_step_loss(network, operator, b):
    r"""Mean over rows of b of $\|b - \alpha A d\|^2 / \|b\|^2$ with
    $d = N(b)$ and $\alpha = d^Tb / d^TAd$: the residual after one
    conjugate-direction step from zero. Scale-invariant in d, so the network
    only has to point the right way."""
    propose = _proposer(network, operator)

    def single(rhs):
        rhs = rhs.astype(network.dtype)
        d = propose(rhs)
        image = operator.mv(d.astype(operator.dtype)).astype(network.dtype)
        alpha = jnp.vdot(d, rhs) / jnp.vdot(d, image)
        residual = rhs - alpha * image
        return jnp.vdot(residual, residual) / jnp.vdot(rhs, rhs)

    return jnp.mean(jax.vmap(single)(b))


def energy_loss(
    network,
    operator,
    solutions,
    num_iterations: int,
    num_orthogonal: int = 2,
    preconditioner=None,
):
    r"""Mean energy-norm error reduction per iteration of the
    conjugate-direction method from zero on $Ax = b$, $b = A x^*$ for the
    rows $x^*$ of ``solutions``: $\frac1T\sum_t \|e_{t+1}\|_A^2 / \|e_t\|_A^2$
    with $\|e_t\|_A^2 = e_t^Tr_t$, over ``num_iterations`` iterations run as
    ``LearnedConjugateDirections`` runs them. The exact line search
    minimises exactly this quantity, so every term is at most 1. Later
    iterations see the residuals the network itself leaves; the state between
    iterations is held constant for the gradient.

    With ``preconditioner`` (the function $v \mapsto Mv$ for this operator)
    each iteration is a network step followed by a step along $Mr$, as with
    ``preconditioner_steps=True``; the gradient reaches the network through
    both, so it learns the directions that M misses."""
    propose = _proposer(network, operator)
    n = solutions.shape[1]
    mask = _fluid_mask(network, operator)

    def single(solution):
        solution = solution.astype(network.dtype) * mask
        r = operator.mv(solution.astype(operator.dtype)).astype(network.dtype)
        error = solution
        kept = jnp.zeros((num_orthogonal, n), network.dtype)
        images = jnp.zeros((num_orthogonal, n), network.dtype)
        curvatures = jnp.ones(num_orthogonal, network.dtype)
        total = 0.0

        def apply(v):
            return operator.mv(v.astype(operator.dtype)).astype(network.dtype)

        def step_along(slot, direction, error, r, kept, images, curvatures):
            (d, image, alpha, _), history = conjugate_step(
                apply, direction, r, (kept, images, curvatures), slot % num_orthogonal
            )
            # e_{t+1}^T r_{t+1} = e^T r - (d^T r)^2 / d^T A d
            drop = alpha * dot(d, r)
            return (error - alpha * d, r - alpha * image, *history), drop

        # below this energy (relative to the first) the error is at rounding
        # level (a V-cycle that is an exact solve on a small grid) and its
        # ratio is noise: no term
        floor = jnp.finfo(network.dtype).eps * jnp.vdot(error, r)
        steps_per_iteration = 1 if preconditioner is None else 2
        for iteration in range(num_iterations):
            slot = steps_per_iteration * iteration
            energy = jnp.vdot(error, r)
            scale = jnp.sqrt(jnp.vdot(r, r))
            d = propose(r / jnp.where(scale > 0, scale, 1))
            state, drop = step_along(slot, d, error, r, kept, images, curvatures)
            if preconditioner is not None:
                step_r = state[1]
                d = preconditioner(step_r.astype(operator.dtype)).astype(network.dtype)
                # the step does not depend on |Mr|; unit length keeps the
                # curvature of a rounding-level residual out of underflow
                length = jnp.sqrt(jnp.vdot(d, d))
                d = d / jnp.where(length > 0, length, 1)
                state, drop_m = step_along(slot + 1, d * mask, *state)
                drop = drop + drop_m
            solved = ~(energy > floor)
            total = total + jnp.where(
                solved, 0, 1 - drop / jnp.where(solved, 1, energy)
            )
            error, r, kept, images, curvatures = jax.lax.stop_gradient(state)
        return total / num_iterations

    return jnp.mean(jax.vmap(single)(solutions))


# Module level, not closures of train_direction_network: a second call (a
# resumed run, a schedule of runs in one process) with the same network
# structure, problem sampler and settings reuses the compiled programs
# instead of compiling them again.
@eqx.filter_jit
def _train_step(
    parameters,
    opt_state,
    operator,
    b,
    *,
    static,
    learning_rate,
    loss_steps,
    preconditioner,
):
    """One Adam step on the loss of the batch b for ``operator``."""
    # built once per step, outside the differentiated function
    apply = None if preconditioner is None else preconditioner.build(operator)

    def loss_of(p):
        if loss_steps:
            return energy_loss(
                eqx.combine(p, static),
                operator,
                b,
                loss_steps,
                preconditioner=apply,
            )
        return one_step_loss(eqx.combine(p, static), operator, b)

    loss, gradient = jax.value_and_grad(loss_of)(parameters)
    # clipped to global norm 1: one bad batch (a nearly singular
    # curvature d^T A d) must not throw the weights into a dead-ReLU
    # state (optax's clip_by_global_norm fails under strict promotion)
    leaves = jax.tree_util.tree_leaves(gradient)
    size = jnp.sqrt(sum(jnp.sum(g**2) for g in leaves))
    shrink = jnp.minimum(1, 1 / jnp.maximum(size, jnp.finfo(size.dtype).tiny))
    gradient = jax.tree_util.tree_map(lambda g: g * shrink.astype(g.dtype), gradient)
    # optax mixes Python floats with int32 step counts, which a user's
    # strict dtype promotion would reject
    with jax.numpy_dtype_promotion("standard"):
        optimizer = optax.adam(learning_rate)
        updates, opt_state = optimizer.update(gradient, opt_state, parameters)
    return optax.apply_updates(parameters, updates), opt_state, loss


@eqx.filter_jit
def _new_problem(sample_operator, num_ritz, key):
    operator = sample_operator(key)
    _, vectors = _ritz_pairs(operator, num_ritz, jax.random.fold_in(key, 1))
    return operator, vectors


def train_direction_network(
    network: ConjugateDirectionNetwork,
    sample_operator: Callable,
    *,
    num_steps: int,
    key,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    num_ritz: int = 64,
    steps_per_problem: int = 10,
    loss_steps: int = 4,
    preconditioner: AbstractPreconditioner | None = None,
    directory=None,
    checkpoint_every: int = 100,
    progress: bool = True,
):
    """Train ``network`` with Adam on ``energy_loss`` over ``loss_steps``
    iterations of the method, or on the paper's ``one_step_loss`` with
    ``loss_steps=0``.

    With ``preconditioner`` (e.g. ``solvers.Multigrid()``, built for every
    problem) the energy loss runs the iteration of
    ``preconditioner_steps=True``: a network step, then a step along Mr.

    The energy loss is what made the method work here: on 2-D 64^2
    pressure systems the one-step loss gave 286-1061 iterations to 1e-6
    (CG: 231-338), four energy steps 25-44 (``benchmarks/NOTES.md``).

    Every ``steps_per_problem`` steps a new problem comes from
    ``sample_operator(key)`` (an operator on a grid, e.g. a
    ``pde.PressureOperator``; the same grid every time, so nothing
    recompiles), its Ritz vectors from ``num_ritz`` Lanczos steps, and each
    step draws ``batch_size`` fresh combinations of them (solutions for the
    energy loss, right-hand sides for the one-step loss): nothing is
    stored, unlike the paper's 21 GB set at 64^3.

    With ``directory`` the network, optimizer state, step and key are saved
    atomically every ``checkpoint_every`` steps and at the end, and a run
    finds the newest checkpoint there and continues from it, so an
    interrupted run loses at most ``checkpoint_every`` steps.

    Training stops early at a non-finite loss and keeps the parameters of
    the last finite step.

    Returns:
        ``sciax.Training(model, result, stats)``: the trained network,
        ``RESULTS.successful`` or ``RESULTS.nonfinite_loss``, and ``stats``
        with ``"train_loss"`` (the loss of every step this call ran),
        ``"num_steps"`` (steps done in all, those before a resume included)
        and ``"seconds"`` (wall-clock time of this call).
    """
    start_time = time.perf_counter()
    optimizer = optax.adam(learning_rate)
    parameters, static = eqx.partition(network, eqx.is_inexact_array)
    opt_state = optimizer.init(parameters)
    first = 0
    if directory is not None:
        like = (parameters, opt_state, jax.random.key_data(key))
        state, pointer = load_checkpoint(directory, like)
        if state is not None:
            parameters, opt_state, key_data = state
            key = jax.random.wrap_key_data(key_data)
            first = int(pointer["epoch"])

    losses = []
    result = RESULTS.successful
    done = first
    bar = tqdm(range(first, num_steps), disable=not progress, desc="training")
    operator = vectors = None
    for step in bar:
        key, problem_key, rhs_key = jax.random.split(key, 3)
        if operator is None or (step - first) % steps_per_problem == 0:
            operator, vectors = _new_problem(sample_operator, num_ritz, problem_key)
        b = _ritz_right_hand_sides(vectors, batch_size, rhs_key)
        stepped, stepped_opt_state, loss = _train_step(
            parameters,
            opt_state,
            operator,
            b,
            static=static,
            learning_rate=learning_rate,
            loss_steps=loss_steps,
            preconditioner=preconditioner,
        )
        losses.append(float(loss))
        if not np.isfinite(losses[-1]):
            result = RESULTS.nonfinite_loss
            break
        parameters, opt_state = stepped, stepped_opt_state
        bar.set_postfix(loss=f"{losses[-1]:.3g}")
        done = step + 1
        if directory is not None and (
            done % checkpoint_every == 0 or done == num_steps
        ):
            save_checkpoint(
                Path(directory),
                (parameters, opt_state, jax.random.key_data(key)),
                epoch=done,
                metadata={"loss": losses[-1]},
            )
    bar.close()
    return Training(
        model=eqx.combine(parameters, static),
        result=result,
        stats={
            "train_loss": np.asarray(losses),
            "num_steps": done,
            "seconds": time.perf_counter() - start_time,
        },
    )
