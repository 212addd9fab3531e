"""The convolutional network of the deep conjugate-direction method: it maps
a residual on a grid to a search direction. Saving, loading and the shipped
weights are here too."""

import json
from importlib import resources
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp

from ._checkpoint import replace_atomically

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
    """Residual -> search direction on a 2-D or 3-D grid (Kaneda et al.'s
    architecture): a 3x3(x3) convolution to ``channels`` features, a residual
    pair of convolutions, one level of 2x average pooling with two residual
    pairs, nearest-neighbour upsampling added to the skip connection, one
    more residual pair and a convolution back to one channel. Fully
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
    lift: eqx.nn.Conv
    fine_in: _ResidualPair
    coarse: tuple[_ResidualPair, _ResidualPair]
    fine_out: _ResidualPair
    project: eqx.nn.Conv

    def __init__(
        self,
        ndim: int,
        *,
        channels: int = 16,
        cell_types=False,
        dtype=jnp.float32,
        key,
    ):
        if ndim not in (2, 3):
            raise ValueError(
                f"ConjugateDirectionNetwork: ndim must be 2 or 3, got {ndim}."
            )
        self.ndim = ndim
        self.channels = channels
        self.cell_types = bool(cell_types)
        keys = jax.random.split(key, 6)
        inputs = 4 if cell_types else 1
        conv = dict(padding=1, dtype=dtype)
        self.lift = eqx.nn.Conv(ndim, inputs, channels, 3, **conv, key=keys[0])
        self.fine_in = _ResidualPair(ndim, channels, dtype, keys[1])
        self.coarse = (
            _ResidualPair(ndim, channels, dtype, keys[2]),
            _ResidualPair(ndim, channels, dtype, keys[3]),
        )
        self.fine_out = _ResidualPair(ndim, channels, dtype, keys[4])
        self.project = eqx.nn.Conv(ndim, channels, 1, 3, **conv, key=keys[5])

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
        x = self.fine_in(self.lift(x))
        coarse = _pool(x, self.ndim)
        for pair in self.coarse:
            coarse = pair(coarse)
        x = self.fine_out(x + _upsample(coarse, x.shape[1:]))
        return self.project(jax.nn.relu(x))[0]


def _hyperparameters(network):
    return {
        "ndim": network.ndim,
        "channels": network.channels,
        "cell_types": network.cell_types,
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
        like = ConjugateDirectionNetwork(
            hyperparameters["ndim"],
            channels=hyperparameters["channels"],
            cell_types=hyperparameters["cell_types"],
            dtype=jnp.dtype(hyperparameters["dtype"]),
            key=jax.random.key(0),
        )
        return eqx.tree_deserialise_leaves(file, like)


def pretrained_network(ndim: int) -> ConjugateDirectionNetwork:
    """The shipped weights for 2-D or 3-D pressure problems
    (``solvers/weights/conjugate_directions_{ndim}d.eqx``), reproduced by
    ``examples/train_learned_cg.py``."""
    if ndim not in (2, 3):
        raise ValueError(f"pretrained_network: ndim must be 2 or 3, got {ndim}.")
    name = f"conjugate_directions_{ndim}d.eqx"
    path = Path(str(resources.files("solvers") / "weights" / name))
    if not path.exists():
        raise FileNotFoundError(
            f"the shipped {ndim}-D weights ({path}) are missing; train them with "
            f"{TRAINING_SCRIPT} --ndim {ndim}."
        )
    return load_network(path)
