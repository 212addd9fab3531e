"""Datasets on disk: a directory of shards plus a JSON manifest, written
atomically and resumable."""

import functools
import hashlib
import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ..._checkpoint import changed_settings, replace_atomically, write_json
from ._burgers import burgers_samples, periodic_subsample
from ._darcy import darcy_order_fields, darcy_samples, darcy_samples_along, subsample
from ._linear_family import (
    FAMILIES,
    default_order,
    family_order_fields,
    family_samples_along,
    linear_family_samples,
)
from ._sample_order import check_order, sample_order


class _Generator(NamedTuple):
    samples: Callable
    default_resolution: int
    subsample: Callable
    fields: tuple[str, str]
    # sorted runs: the fields to sort on, and the samples of given indices
    # solved along a chain (None: the generator has no sorted order)
    order_fields: Callable | None = None
    along: Callable | None = None
    # the order of a run whose options name none
    default_order: str = "none"


GENERATORS = {
    "darcy": _Generator(
        darcy_samples,
        421,
        subsample,
        ("coefficient", "solution"),
        darcy_order_fields,
        darcy_samples_along,
    ),
    "burgers": _Generator(
        burgers_samples, 8192, periodic_subsample, ("initial", "final")
    ),
}
for _family in FAMILIES:
    GENERATORS[_family] = _Generator(
        functools.partial(linear_family_samples, _family),
        65,
        subsample,
        ("field", "solution"),
        functools.partial(family_order_fields, family=_family),
        functools.partial(family_samples_along, family=_family),
        default_order(_family),
    )
# a sorted run's shards also hold the indices of their samples
INDEX = "index"


def _recordable(value):
    """An option as the manifest records it: solvers and preconditioners
    (equinox modules) by their repr, which lists their settings."""
    if isinstance(value, eqx.Module):
        return repr(value)
    if isinstance(value, list | tuple):
        return [_recordable(item) for item in value]
    return value


MANIFEST = "manifest.json"


def _library_version():
    try:
        return metadata.version("sciax")
    except metadata.PackageNotFoundError:
        return "unknown"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_dataset(
    directory,
    generator: str,
    num_samples: int,
    *,
    seed: int,
    shard_size: int = 100,
    resolutions=(),
    progress: bool = True,
    **options,
) -> Path:
    """Generate a dataset into ``directory``, resuming where a previous run stopped.

    Layout: ``manifest.json`` (generator, its options, seed, sample count,
    shard size, saved resolutions, library version, and the SHA-256 of every
    finished shard) and ``shard_00000.npz``, ... each holding
    ``<input>_<r>`` and ``<output>_<r>`` arrays for every saved
    resolution r (the solve resolution first, then ``resolutions``,
    subsampled): ``coefficient`` and ``solution`` for "darcy", ``field`` and
    ``solution`` for the linear families, ``initial`` and ``final`` for
    "burgers". Sample i is generated from ``fold_in(key(seed), i)``, so an
    interrupted and resumed run writes exactly the bytes of an uninterrupted
    one. Shards and the manifest are written to a temporary file and renamed;
    a shard whose digest does not match the manifest (corrupted, or
    written by something else) is generated again.

    A sorted run (``order="greedy"`` or ``"fft-pca"`` among the Darcy
    options, with for instance ``solver=solvers.GCRODR(...)``) first orders
    all samples into one chain (on their coefficients at up to 64 nodes per
    axis; recomputed identically on resume), then writes shard j as the j-th
    contiguous piece of the chain, solved along it with the recycle space
    carried from sample to sample; each such shard also holds ``index``, its
    samples' indices, and ``load_dataset`` returns index order.

    Args:
        directory: where the dataset lives (created if needed).
        generator: "darcy" (``pde.darcy_samples``, solved at 421 by default),
            "burgers" (``pde.burgers_samples``, 8192), or one of the linear
            families "nonsymmetric-darcy", "helmholtz", "heat"
            (``pde.linear_family_samples``, 65; sorted by the family's
            default order unless ``order`` says otherwise).
        num_samples: total number of samples.
        seed: integer seed.
        shard_size: samples per shard.
        resolutions: extra resolutions to store by subsampling (e.g. 85, 141,
            211 from 421; 1024 from 8192).
        progress: show a progress bar (samples done, samples per second).
        **options: passed to the generator (``resolution``, ``alpha``,
            ``solver``, ``preconditioner``, ``order``, ...); solvers and
            preconditioners are recorded in the manifest by their repr.

    Raises:
        ValueError: the directory holds a dataset made with other settings.
    """
    if generator not in GENERATORS:
        raise ValueError(
            f"unknown generator {generator!r}; known: {sorted(GENERATORS)}."
        )
    if num_samples < 1 or shard_size < 1:
        raise ValueError("num_samples and shard_size must be >= 1.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    spec = GENERATORS[generator]
    resolution = int(options.get("resolution", spec.default_resolution))
    saved = [resolution] + [int(r) for r in resolutions if int(r) != resolution]
    settings = {
        "generator": generator,
        "options": {key: _recordable(options[key]) for key in sorted(options)},
        "seed": int(seed),
        "num_samples": int(num_samples),
        "shard_size": int(shard_size),
        "resolutions": saved,
        "library_version": _library_version(),
    }
    manifest_path = directory / MANIFEST
    shards = {}
    if manifest_path.exists():
        existing = json.loads(manifest_path.read_text())
        different = changed_settings(existing, settings)
        if different:
            raise ValueError(
                f"{directory} holds a dataset made with other settings "
                f"(existing, requested): {different}. Use another directory."
            )
        shards = existing.get("shards", {})

    def save_manifest():
        write_json(manifest_path, {**settings, "shards": shards})

    save_manifest()
    key = jax.random.key(seed)
    count = -(-num_samples // shard_size)
    sequence = _run_order(spec, generator, key, num_samples, options)
    bar = tqdm(total=num_samples, unit="sample", disable=not progress, desc=generator)
    for shard in range(count):
        name = f"shard_{shard:05d}.npz"
        path = directory / name
        first = shard * shard_size
        size = min(shard_size, num_samples - first)
        if name in shards and path.exists() and _digest(path) == shards[name]:
            bar.update(size)
            continue
        if sequence is None:
            # an unsorted run of a generator that sorts by default
            unsorted = {**options, "order": "none"} if spec.along else options
            samples = spec.samples(key, size, first_index=first, **unsorted)
        else:
            samples = spec.along(key, sequence[first : first + size], **options)
        arrays = {
            f"{name}_{r}": np.asarray(spec.subsample(getattr(samples, name), r))
            for r in saved
            for name in spec.fields
        }
        if sequence is not None:
            arrays[INDEX] = sequence[first : first + size]
        replace_atomically(path, lambda file, arrays=arrays: np.savez(file, **arrays))
        shards[name] = _digest(path)
        save_manifest()
        bar.update(size)
    bar.close()
    return directory


def _run_order(spec, generator, key, num_samples, options):
    """None for an unsorted run; else the sample indices in solve order
    (recomputed identically on resume, from the seed)."""
    order = check_order("write_dataset", options.get("order", spec.default_order))
    if order == "none":
        return None
    if spec.along is None:
        raise ValueError(f"write_dataset: the {generator!r} generator has no order.")
    indices = jnp.arange(num_samples, dtype=jnp.uint32)
    fields = spec.order_fields(key, indices, **options)
    return np.asarray(sample_order(order, fields)).astype(np.uint32)


def load_dataset(directory, resolution: int) -> dict[str, np.ndarray]:
    """The dataset at one saved resolution, every shard checked against the
    manifest's digest: ``{"coefficient": (N, r, r), "solution": (N, r, r)}``
    for Darcy, ``{"field": (N, r, r), "solution": (N, r, r)}`` for the linear
    families, ``{"initial": (N, r), "final": (N, r)}`` for Burgers.

    Raises:
        ValueError: missing, unfinished or corrupted dataset, or a resolution
            that was not saved.
    """
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.exists():
        raise ValueError(
            f"{directory} has no {MANIFEST}; write it with pde.write_dataset."
        )
    manifest = json.loads(manifest_path.read_text())
    if resolution not in manifest["resolutions"]:
        raise ValueError(
            f"resolution {resolution} was not saved; available: {manifest['resolutions']}."
        )
    count = -(-manifest["num_samples"] // manifest["shard_size"])
    parts = {name: [] for name in GENERATORS[manifest["generator"]].fields}
    indices = []
    for shard in range(count):
        name = f"shard_{shard:05d}.npz"
        path = directory / name
        if name not in manifest["shards"] or not path.exists():
            raise ValueError(
                f"{directory}: {name} is missing; resume pde.write_dataset."
            )
        if _digest(path) != manifest["shards"][name]:
            raise ValueError(
                f"{directory}: {name} is corrupted; resume pde.write_dataset."
            )
        with np.load(path) as data:
            for field in parts:
                parts[field].append(data[f"{field}_{resolution}"])
            if INDEX in data:
                indices.append(data[INDEX])
    arrays = {field: np.concatenate(arrays) for field, arrays in parts.items()}
    if indices:
        # a sorted run's shards are pieces of its chain: back to index order
        order = np.argsort(np.concatenate(indices), kind="stable")
        arrays = {field: values[order] for field, values in arrays.items()}
    return arrays
