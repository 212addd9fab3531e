"""The distribution installs one import package, ``sciax``, with the four
folders of the repository as its subpackages, in a wheel and in an editable
install; nothing it installs shadows another project's top-level name (py-pde
is imported as ``pde``)."""

import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"sciax": ROOT / "src" / "sciax"} | {
    f"sciax.{name}": ROOT / name for name in ("numerics", "solvers", "operators", "pde")
}
IMPORTS = (
    "import sciax; from sciax import numerics; from sciax.solvers import CG; "
    "from sciax import operators, pde; import importlib.util as u; "
    "assert u.find_spec('pde') is None, 'a top-level pde was installed'; "
    "assert sciax.solvers.pretrained_network(2) is not None; "
    "print(sciax.__version__, sciax.numerics.__file__)"
)


def _source_packages() -> set[str]:
    names = set()
    for package, folder in FOLDERS.items():
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder).parts
            names.add(".".join((package, *relative)))
    return names


def test_every_source_package_is_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == _source_packages()
    assert set(config["package-dir"]) == set(FOLDERS)


def _run_elsewhere(python, tmp_path, extra_path=()):
    # From a directory without the repository's folders, so that only the
    # installed layout can answer `import sciax` (and `import pde`).
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(map(str, extra_path)),
        "JAX_PLATFORMS": "cpu",
    }
    done = subprocess.run(
        [str(python), "-c", IMPORTS],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _pip(*args, cwd):
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _site_packages() -> list[Path]:
    return [Path(p) for p in sys.path if p.endswith("site-packages")]


def test_wheel_installs_only_sciax(tmp_path):
    _pip("wheel", "--no-deps", "--wheel-dir", str(tmp_path / "dist"), ".", cwd=ROOT)
    (wheel,) = (tmp_path / "dist").glob("sciax-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        installed = [
            line.split(",")[0] for line in archive.read(record).decode().split()
        ]
        archive.extractall(tmp_path / "site")
    top_level = {path.split("/")[0] for path in installed}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"sciax"}
    assert any(n.startswith("sciax/solvers/learned/weights/") for n in installed)
    # The extracted wheel first on the path, then the test venv's
    # dependencies: the wheel's layout is what imports.
    out = _run_elsewhere(
        sys.executable, tmp_path, [tmp_path / "site", *_site_packages()]
    )
    assert str(tmp_path / "site" / "sciax" / "numerics") in out


def test_editable_install_maps_the_folders(tmp_path):
    # A fresh venv with only sciax in it (no dependencies: those come from
    # the test venv through PYTHONPATH), so that the editable finder alone
    # maps sciax.numerics to the repository's numerics/.
    venv.create(tmp_path / "venv", with_pip=False)
    python = tmp_path / "venv" / "bin" / "python"
    _pip("--python", str(python), "install", "--no-deps", "-e", ".", cwd=ROOT)
    out = _run_elsewhere(python, tmp_path, _site_packages())
    assert str(ROOT / "numerics") in out
