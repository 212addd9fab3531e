"""Training checkpoints: equinox-serialised state files plus a JSON pointer,
each written atomically, so an interrupted save leaves the previous
checkpoint intact."""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import equinox as eqx

POINTER = "checkpoint.json"


def replace_atomically(path: Path, write) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file beside it,
    fsync, then rename over it: readers see the old file or the new one,
    never a partial one."""
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=path.name, suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, document: dict) -> None:
    """Write ``document`` as indented JSON to ``path``, atomically."""
    text = json.dumps(document, indent=1).encode()
    replace_atomically(path, lambda file: file.write(text))


def changed_settings(saved: dict, requested: dict) -> dict:
    """``{name: (saved value, requested value)}`` for every setting of
    ``requested`` that ``saved`` (a manifest or checkpoint pointer) records
    otherwise; empty when a resumed run may go on from ``saved``."""
    return {
        name: (saved.get(name), value)
        for name, value in requested.items()
        if saved.get(name) != value
    }


def save_checkpoint(directory, state, *, epoch: int, metadata: dict) -> Path:
    """Write ``state`` (a PyTree of arrays and static data) as
    ``epoch_<epoch>.eqx``, then point ``checkpoint.json`` at it (with its
    SHA-256, the epoch and ``metadata``), then delete older state files. A
    crash at any moment leaves a pointer to a complete file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"epoch_{epoch:06d}.eqx"
    path = directory / name
    replace_atomically(path, lambda file: eqx.tree_serialise_leaves(file, state))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    pointer = {"file": name, "sha256": digest, "epoch": epoch, **metadata}
    write_json(directory / POINTER, pointer)
    for old in directory.glob("epoch_*.eqx"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(directory, like):
    """``(state, pointer)`` from the newest complete checkpoint, with
    ``like`` as the template of the state's structure, or ``(None, None)``
    when ``directory`` holds none.

    Raises:
        ValueError: the pointed-to file is missing or does not match its
            digest.
    """
    directory = Path(directory)
    pointer_path = directory / POINTER
    if not pointer_path.exists():
        return None, None
    pointer = json.loads(pointer_path.read_text())
    path = directory / pointer["file"]
    if (
        not path.exists()
        or hashlib.sha256(path.read_bytes()).hexdigest() != pointer["sha256"]
    ):
        raise ValueError(
            f"{path} is missing or corrupted; delete {directory} to start over."
        )
    with path.open("rb") as file:
        return eqx.tree_deserialise_leaves(file, like), pointer
