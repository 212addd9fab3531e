"""mkdocs hook: show griffe the `sciax` package as it installs.

pyproject.toml maps the folders `numerics/`, `solvers/`, `operators/` and `pde/` at the top of
the repository to `sciax.numerics`, ... and `src/sciax/` to `sciax` itself. griffe, which
mkdocstrings uses to read the sources without importing them, finds `src/sciax/` (from the
editable install's finder or a search path) but not the four mapped subpackages, which live
outside that folder. This hook builds, in a temporary directory, a `sciax/` tree of symbolic
links laid out as the installed package (the mapping read from pyproject.toml, so that it
cannot drift from the build) and points the python handler's `paths` at it.

Static analysis keeps source-level information (annotations as written, source order, the
docstrings of attributes) that importing the package would lose.
"""

import shutil
import tempfile
import tomllib
from pathlib import Path

from mkdocs.plugins import event_priority

_ROOT = Path(__file__).resolve().parent.parent
_tree: Path | None = None


def _package_tree(root: Path, destination: Path) -> Path:
    """Link `root`'s packages into `destination` as pyproject.toml's package-dir maps them.

    Returns the directory to put on griffe's search path.
    """
    with open(root / "pyproject.toml", "rb") as file:
        package_dir = tomllib.load(file)["tool"]["setuptools"]["package-dir"]
    # Parents before children: a child's link goes inside its parent's directory.
    for name in sorted(package_dir, key=lambda name: name.count(".")):
        source = root / package_dir[name]
        target = destination.joinpath(*name.split("."))
        if "." not in name:
            # The top-level package is a real directory (its children are linked into
            # it), holding links to its own files and subfolders.
            target.mkdir(parents=True)
            for entry in source.iterdir():
                if entry.name != "__pycache__":
                    (target / entry.name).symlink_to(entry)
        else:
            target.symlink_to(source, target_is_directory=True)
    return destination


@event_priority(100)  # before mkdocstrings' on_config reads the handler's options
def on_config(config):
    global _tree
    _tree = Path(tempfile.mkdtemp(prefix="sciax-docs-"))
    paths = [str(_package_tree(_ROOT, _tree))]
    handlers = config.plugins["mkdocstrings"].config.handlers
    handlers.setdefault("python", {})["paths"] = paths
    return config


def on_shutdown():
    if _tree is not None:
        shutil.rmtree(_tree, ignore_errors=True)
