"""The convolutional network of the deep conjugate-direction method: it maps
a residual on a grid to a search direction. Saving, loading and the shipped
weights are here too."""

import json
from importlib import resources
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp

from ..._checkpoint import replace_atomically
from ._block_convolution import (
    block_convolution,
    composed_kernel,
    depth_to_space,
    pooled_kernel,
    space_to_depth,
    stride_one_kernel,
    upsampled_kernel,
)

TRAINING_SCRIPT = "examples/train_learned_cg.py"


def _pool(x, ndim):
    """Average over 2^d blocks, odd sizes padded by repeating the last layer."""
    pad = [(0, 0)] + [(0, n % 2) for n in x.shape[1:]]
    x = jnp.pad(x, pad, mode="edge")
    shape = [x.shape[0]]
    for n in x.shape[1:]:
        shape += [n // 2, 2]
    return x.reshape(shape).mean(axis=tuple(range(2, 2 + 2 * ndim, 2)))


def _upsample(x, like_shape):
    for axis in range(1, x.ndim):
        x = jnp.repeat(x, 2, axis=axis)
    return x[(slice(None),) + tuple(slice(0, n) for n in like_shape)]


class _ResidualPair(eqx.Module):
    first: eqx.nn.Conv
    second: eqx.nn.Conv

    def __init__(self, ndim, channels, dtype, key):
        k1, k2 = jax.random.split(key)
        self.first = eqx.nn.Conv(
            ndim, channels, channels, 3, padding=1, dtype=dtype, key=k1
        )
        self.second = eqx.nn.Conv(
            ndim, channels, channels, 3, padding=1, dtype=dtype, key=k2
        )

    def __call__(self, x):
        return x + self.second(jax.nn.relu(self.first(jax.nn.relu(x))))


class ConjugateDirectionNetwork(eqx.Module):
    """Residual -> search direction on a 2-D or 3-D grid: a 3x3(x3)
    convolution to ``channels`` features and a residual pair of
    convolutions; then ``levels`` times 2x average pooling, each followed by
    a residual pair (two at the coarsest level); back up by nearest-neighbour
    upsampling added to the skip connection of each level, each followed by
    a residual pair; a convolution back to one channel.

    ``pairless_levels`` grid levels, from the full grid, have no residual
    pairs (0: Kaneda et al.'s network). With 1 or more the full grid keeps
    only the convolutions to and from one channel, with no nonlinearity
    between them (one would need the multi-channel tensor on the full
    grid): the direction is project(lift(r) + upsample(relu(y))), y the
    features of the once-coarsened grid, which start from the pooled lift.
    Both terms are then convolutions of the grid of 2^d blocks (the pooled
    lift a strided convolution of r, project(lift(r)) one 5^d convolution
    of r, the projection of the upsampled y one on the block grid), so no
    multi-channel tensor is formed on the full grid; project(lift(r)) is
    taken with the composed kernel, which differs from the two
    convolutions in sequence only within one cell of the grid's edge.
    ``pairless_up_levels`` (default ``pairless_levels``, at least that, and
    only with ``pairless_levels >= 1``) drops the up pairs of more levels:
    2 with ``pairless_levels=1`` leaves the once-coarsened grid with its
    down pair only.

    On the H100 a call at 256^3 with 16 channels costs about 205 float64
    matvecs with ``pairless_levels=0``, 33-35 with 1 (65 when it was
    computed on the full grid, where moving its 16-channel tensors
    dominated) and 15 with 2; with 1 the pairs on the once-coarsened grid
    are 3.5 of its 5.9 ms. With 1 and 8 channels a call costs 24-25
    matvecs (4.2 ms); with 2 (16 channels) the solver needed 1.4-1.9x the
    iterations at 256^3 and 1.05-1.36x the wall time. The shipped 3-D
    network for multigrid steps also drops the up pair of the
    once-coarsened grid (``pairless_up_levels=2``, 8 channels): a call
    costs 18 matvecs (3.1 ms), and with ``solvers.Multigrid`` aware of the
    pressure walls the solver needs no more iterations than with the up
    pair (with the earlier V-cycle it needed up to 1.7x). A fifth level
    (``levels=5``) cut the iterations at 64^3 and 128^3 but not at 256^3
    (``benchmarks/NOTES.md``). Half precision is no cheaper: with 8-16
    channels the bfloat16 network took 1.1-2.5x as long on the H100.

    A network without pairs on the full grid is meant to be paired with a
    multigrid step (``LearnedConjugateDirections(preconditioner_steps=True)``),
    which handles the finest scales. ``levels=1`` is Kaneda et al.'s
    architecture; more levels reach further (the inverse of a Laplacian is
    global, a 3x3 stack of one level sees about 30 cells). Fully
    convolutional with zero padding, so one set of weights serves every grid
    size. With ``cell_types`` the cell type (fluid / solid / air, one-hot)
    is fed as extra input channels.

    Call with a residual of the grid's shape (and the int cell types when
    the network was built with them); returns a direction of that shape.
    The network runs in its own dtype (``dtype``, float32 by default, also
    when float64 is enabled); the solver casts
    residuals in and directions out, so a float64 outer loop keeps its
    accuracy.
    """

    ndim: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    cell_types: bool = eqx.field(static=True)
    levels: int = eqx.field(static=True)
    pairless_levels: int = eqx.field(static=True)
    pairless_up_levels: int = eqx.field(static=True)
    lift: eqx.nn.Conv
    fine_in: _ResidualPair | None
    down: tuple[_ResidualPair, ...]
    bottom: _ResidualPair
    up: tuple[_ResidualPair, ...]
    project: eqx.nn.Conv

    def __init__(
        self,
        ndim: int,
        *,
        channels: int = 16,
        cell_types=False,
        levels: int = 4,
        pairless_levels: int = 0,
        pairless_up_levels: int | None = None,
        dtype=jnp.float32,
        key,
    ):
        if ndim not in (2, 3):
            raise ValueError(
                f"ConjugateDirectionNetwork: ndim must be 2 or 3, got {ndim}."
            )
        self.ndim = ndim
        self.channels = channels
        if not (isinstance(levels, int) and levels >= 1):
            raise ValueError(
                f"ConjugateDirectionNetwork: levels must be an int >= 1, got {levels}."
            )
        self.cell_types = bool(cell_types)
        self.levels = levels
        if not (isinstance(pairless_levels, int) and 0 <= pairless_levels <= levels):
            raise ValueError(
                "ConjugateDirectionNetwork: pairless_levels must be an int in "
                f"[0, levels={levels}], got {pairless_levels}."
            )
        self.pairless_levels = pairless_levels
        if pairless_up_levels is None:
            pairless_up_levels = pairless_levels
        # the full grid's path always has its up pair, so only a network
        # without pairs there can drop more of them
        highest = levels if pairless_levels > 0 else 0
        if not (
            isinstance(pairless_up_levels, int)
            and pairless_levels <= pairless_up_levels <= highest
        ):
            raise ValueError(
                "ConjugateDirectionNetwork: pairless_up_levels must be an int in "
                f"[pairless_levels={pairless_levels}, {highest}], got "
                f"{pairless_up_levels}."
            )
        self.pairless_up_levels = pairless_up_levels
        keys = list(jax.random.split(key, 4 + 2 * levels))
        inputs = 4 if cell_types else 1
        conv = dict(padding=1, dtype=dtype)
        self.lift = eqx.nn.Conv(ndim, inputs, channels, 3, **conv, key=keys.pop())
        self.project = eqx.nn.Conv(ndim, channels, 1, 3, **conv, key=keys.pop())

        def pair():
            return _ResidualPair(ndim, channels, dtype, keys.pop())

        # down[l - first] serves level l >= first, up[l - pairless_up]
        # level pairless_up <= l < levels; the full grid's down pair is
        # fine_in
        self.fine_in = pair() if pairless_levels == 0 else None
        self.down = tuple(pair() for _ in range(levels - self._first_down_level + 1))
        self.bottom = pair()
        self.up = tuple(pair() for _ in range(levels - pairless_up_levels))

    @property
    def _first_down_level(self) -> int:
        """The coarsest level's index is ``levels``; level 0 (the full
        grid) keeps its pair in ``fine_in``, so ``down`` starts at 1 or
        later."""
        return max(1, self.pairless_levels)

    @property
    def full_resolution(self) -> bool:
        """Whether the full grid has residual pairs (Kaneda et al.'s network)."""
        return self.pairless_levels == 0

    @property
    def dtype(self):
        return self.lift.weight.dtype

    def __call__(self, residual, cell_types=None):
        if residual.ndim != self.ndim:
            raise ValueError(
                f"this network was built for {self.ndim}-D grids, got a residual of "
                f"shape {residual.shape}."
            )
        x = residual.astype(self.dtype)[None]
        if self.cell_types:
            if cell_types is None:
                raise ValueError("this network reads cell types: pass cell_types.")
            one_hot = jax.nn.one_hot(cell_types, 3, axis=0, dtype=self.dtype)
            x = jnp.concatenate([x, one_hot])
        if not self.full_resolution:
            return self._blocked_call(x, residual.shape)
        finest = self.fine_in(self.lift(x))
        y = self._coarse_levels(_pool(finest, self.ndim))
        y = self.up[0](finest + _upsample(y, finest.shape[1:]))
        return self.project(jax.nn.relu(y))[0]

    def _coarse_levels(self, level_one):
        """From the features of the once-coarsened grid down to the
        coarsest and back up to the once-coarsened grid, residual pairs on
        the levels from ``pairless_levels`` on."""
        first = self._first_down_level
        skips = [None]
        for level in range(1, self.levels + 1):
            x = level_one if level == 1 else _pool(skips[-1], self.ndim)
            skips.append(self.down[level - first](x) if level >= first else x)
        y = self.bottom(skips[-1])
        for level in range(self.levels - 1, 0, -1):
            y = skips[level] + _upsample(y, skips[level].shape[1:])
            if level >= self.pairless_up_levels:
                y = self.up[level - self.pairless_up_levels](y)
        return y

    def _blocked_call(self, x, shape):
        """project(lift(x) + upsample(relu(y))) on the grid of 2^d blocks:
        the pooled lift and the projection of the upsampled features are
        strided convolutions, and project(lift(x)) is one 5-tap convolution
        of the residual, so both are convolutions of the block grid."""
        blocks = space_to_depth(x)
        lift_bias = self.lift.bias.reshape(-1)
        level_one = block_convolution(
            blocks, pooled_kernel(self.lift.weight), lift_bias
        )
        y = self._coarse_levels(level_one)
        project = self.project.weight
        kernel = jnp.concatenate(
            [
                upsampled_kernel(project),
                stride_one_kernel(composed_kernel(project, self.lift.weight)),
            ],
            axis=1,
        )
        # the lift's bias through the projection (its value away from walls)
        bias = self.project.bias.reshape(-1) + jnp.vdot(
            project.reshape(self.channels, -1).sum(axis=1), lift_bias
        )
        features = jnp.concatenate([jax.nn.relu(y), blocks])
        out = block_convolution(
            features, kernel, jnp.broadcast_to(bias, (2**self.ndim,))
        )
        return depth_to_space(out, shape)[0]


def _hyperparameters(network):
    return {
        "ndim": network.ndim,
        "channels": network.channels,
        "cell_types": network.cell_types,
        "levels": network.levels,
        "pairless_levels": network.pairless_levels,
        "pairless_up_levels": network.pairless_up_levels,
        "dtype": jnp.dtype(network.dtype).name,
    }


def save_network(path, network: ConjugateDirectionNetwork) -> Path:
    """Write the network as one file (a JSON line of hyperparameters, then the
    equinox-serialised weights), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json.dumps(_hyperparameters(network)).encode() + b"\n"

    def write(file):
        file.write(header)
        eqx.tree_serialise_leaves(file, network)

    replace_atomically(path, write)
    return path


def load_network(path) -> ConjugateDirectionNetwork:
    """Read a network written by ``save_network``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no network weights at {path}; train them with {TRAINING_SCRIPT}."
        )
    with path.open("rb") as file:
        hyperparameters = json.loads(file.readline())
        # shapes only: initializing weights that are overwritten at once
        # compiled and ran a random op per layer shape (seconds per load)
        like = eqx.filter_eval_shape(
            ConjugateDirectionNetwork,
            hyperparameters["ndim"],
            channels=hyperparameters["channels"],
            cell_types=hyperparameters["cell_types"],
            levels=hyperparameters["levels"],
            pairless_levels=hyperparameters.get(
                "pairless_levels",
                0 if hyperparameters.get("full_resolution", True) else 1,
            ),
            # absent in files written before it existed: the default
            pairless_up_levels=hyperparameters.get("pairless_up_levels"),
            dtype=jnp.dtype(hyperparameters["dtype"]),
            key=jax.random.key(0),
        )
        return eqx.tree_deserialise_leaves(file, like)


def pretrained_network(ndim: int, multigrid: bool = False) -> ConjugateDirectionNetwork:
    """The shipped weights for 2-D or 3-D pressure problems, reproduced by
    ``examples/train_learned_cg.py``.

    ``multigrid=False``: the network trained to work alone
    (``solvers/learned/weights/conjugate_directions_{ndim}d.eqx``).
    ``multigrid=True``: the cheaper network without pairs on the full grid
    (``pairless_levels=1``, ``conjugate_directions_{ndim}d_multigrid.eqx``;
    in 3-D 8 channels and ``pairless_up_levels=2``, in 2-D 16 channels),
    trained alone in the same way, to be
    used with
    ``LearnedConjugateDirections(preconditioner_steps=True)`` and
    ``solve(..., preconditioner=solvers.Multigrid())``: the V-cycle takes
    the finest scales that the network no longer resolves."""
    if ndim not in (2, 3):
        raise ValueError(f"pretrained_network: ndim must be 2 or 3, got {ndim}.")
    suffix = "_multigrid" if multigrid else ""
    name = f"conjugate_directions_{ndim}d{suffix}.eqx"
    path = Path(str(resources.files(__package__) / "weights" / name))
    if not path.exists():
        flag = " --pairless-levels 1" if multigrid else ""
        raise FileNotFoundError(
            f"the shipped {ndim}-D weights ({path}) are missing; train them with "
            f"{TRAINING_SCRIPT} --ndim {ndim}{flag}."
        )
    return load_network(path)
