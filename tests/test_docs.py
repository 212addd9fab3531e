"""The documentation site: a strict build that fails on any broken reference, an API
page that shows every public name, and guide pages whose code runs.

The site is `docs/mkdocs.yml` (pages in `docs/pages/`); the README says how to build
it. The build reads the sources with griffe (no import), so it costs a few seconds;
the guides' code is what a user would paste, at sizes that run in seconds.
"""

import contextlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import pytest

import sciax

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "docs" / "mkdocs.yml"
PAGES = ROOT / "docs" / "pages"
PACKAGES = ("numerics", "solvers", "operators", "pde")
# Pages whose code blocks are executed, each page's blocks in order in one namespace.
EXECUTED = ("getting-started.md", *(f"guides/{name}.md" for name in PACKAGES))
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _mkdocs(*arguments, cwd=ROOT):
    environment = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built with --strict; the build's output if it failed."""
    directory = tmp_path_factory.mktemp("site")
    # From another working directory: no path in the config may depend on it.
    build = _mkdocs(
        "build", "--strict", "-f", str(CONFIG), "-d", str(directory), cwd=directory
    )
    return build, directory


def test_strict_build_passes(site):
    build, _ = site
    assert build.returncode == 0, build.stdout + build.stderr


@pytest.mark.parametrize("package", PACKAGES)
def test_api_page_shows_every_public_name(site, package):
    build, directory = site
    if build.returncode != 0:
        pytest.skip("the build failed (test_strict_build_passes says why)")
    html = (directory / "api" / package / "index.html").read_text()
    module = getattr(sciax, package)
    # Functions and classes; constants (pde.FLUID, ...) are documented where
    # they are used.
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and (isinstance(value, type) or callable(value))
    }
    shown = set(re.findall(rf'id="sciax\.{package}\.([A-Za-z_0-9]+)"', html))
    # A name missing here has no docstring, or is not re-exported as
    # `from ._x import name as name` in the package's __init__.py.
    assert public <= shown, sorted(public - shown)


def test_strict_build_fails_on_a_broken_reference(tmp_path):
    # The real configuration (hooks, extensions, options) with one page that links
    # to an object that does not exist.
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "index.md").write_text(
        "# Broken\n\nSee [the solver][sciax.solvers.NoSuchSolver].\n"
    )
    script = tmp_path / "build.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import logging

            from mkdocs.commands.build import build
            from mkdocs.config import load_config

            logging.basicConfig(level=logging.WARNING)
            config = load_config(
                {str(CONFIG)!r},
                strict=True,
                docs_dir={str(pages)!r},
                site_dir={str(tmp_path / "site")!r},
                nav=[{{"Broken": "index.md"}}],
            )
            config.plugins.on_startup(command="build", dirty=False)
            try:
                build(config)
            finally:
                config.plugins.on_shutdown()
            """
        )
    )
    environment = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    run = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "sciax.solvers.NoSuchSolver" in output, output


def _python_blocks(page):
    return _PYTHON_BLOCK.findall((PAGES / page).read_text())


# Each page compiles its solvers, networks and fits afresh: 30-110 s a page on a
# loaded 2-core machine, most of it compilation.
@pytest.mark.slow
@pytest.mark.parametrize("page", EXECUTED)
def test_guide_code_runs(page, tmp_path, monkeypatch):
    blocks = _python_blocks(page)
    assert blocks, f"{page} has no python code block"
    monkeypatch.chdir(tmp_path)  # anything a page writes lands here
    namespace = {"__name__": "__docs__"}
    # As a user runs them: the test suite's strict promotion rules are for the
    # library's own code; the pages enable float64 themselves.
    with contextlib.ExitStack() as stack:
        stack.enter_context(jax.numpy_dtype_promotion("standard"))
        stack.enter_context(jax.numpy_rank_promotion("allow"))
        for number, block in enumerate(blocks, 1):
            code = compile(block, f"{page}, python block {number}", "exec")
            exec(code, namespace)
