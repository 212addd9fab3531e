import os

# One BLAS thread per test process, set before jax loads jaxlib's LAPACK: the
# suite runs one process per core, and two OpenBLAS threads per process on a
# busy 2-core machine spend their time waiting on each other (a 240x240 eigh
# measured 0.69 s of CPU with the default, 0.0064 s with one thread).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import shutil  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest
from hypothesis import HealthCheck, Phase, settings

# Property-based tests: a small fixed budget by default (derandomized, so a
# run is reproducible and CI cannot flake on a new draw), a large random one
# under --runslow. Examples are slow (a compiled program and mpmath at 40
# digits), hence no deadline, and no shrinking by default: a failing batch
# is reported as drawn instead of after minutes of shrinking.
settings.register_profile(
    "default-suite",
    max_examples=6,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "runslow",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# float64 on unless the run asks for float32 only; the library itself never
# touches jax.config.
if os.environ.get("JAX_ENABLE_X64", "1") != "0":
    jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
# Most of the suite's time is XLA compiling small programs that then run for
# milliseconds. Without LLVM's backend optimisations (XLA's own HLO passes,
# fusion included, still run; no fast-math either way, so results agree to
# rounding) compilation takes 15-50% less CPU time (measured on the CPU
# backend: 27% for log_iv, 48% for a multigrid-preconditioned CG solve) and
# the solves run at most ~20% slower. It is opt-in
# (JAX_DISABLE_MOST_OPTIMIZATIONS=1), not the default: in one 2-worker run of
# the whole suite an XLA compilation under it segfaulted
# (test_chunked_sequence_solves_every_system[fft-pca], which passes alone), and
# the default suite runs the library compiled as users compile it.
if os.environ.get("JAX_DISABLE_MOST_OPTIMIZATIONS", "0") == "1":
    jax.config.update("jax_disable_most_optimizations", True)


def _share_compilations(config):
    """One XLA compilation cache for the whole run, in a fresh temporary
    directory that the run removes: identical programs built by different
    tests (a jitted lambda per test is a new function to jax's in-memory
    cache) or by the other xdist worker are compiled once. Measured 10% less
    CPU time on the solver contract tests. The run starts empty, so every
    program is still compiled from scratch once, as a user's first call
    would. SCIAX_TEST_XLA_CACHE=0 turns it off."""
    if os.environ.get("SCIAX_TEST_XLA_CACHE", "1") == "0":
        return
    if "SCIAX_TEST_XLA_CACHE_DIR" not in os.environ:
        # the controller (or a run without xdist): workers, started after
        # this hook, inherit the variable
        directory = tempfile.mkdtemp(prefix="sciax-xla-cache-")
        os.environ["SCIAX_TEST_XLA_CACHE_DIR"] = directory
        config.sciax_cache_to_remove = directory
    jax.config.update(
        "jax_compilation_cache_dir", os.environ["SCIAX_TEST_XLA_CACHE_DIR"]
    )
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    directory = getattr(config, "sciax_cache_to_remove", None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def pytest_configure(config):
    _share_compilations(config)
    settings.load_profile(
        "runslow" if config.getoption("--runslow") else "default-suite"
    )
    # With -n, xdist's default --dist load hands out tests in small batches as
    # workers free up, so parametrisations that share one compiled program
    # land on both workers and are compiled twice. worksteal gives each worker
    # a contiguous half (neighbouring tests share compilations) and balances
    # by stealing at the end: 12% less CPU time than load on the pressure and
    # linear-problem tests (loadfile, whole files per worker, matched it but
    # leaves a worker idle when a large file comes last). Set here rather
    # than in addopts, where --dist would break `-p no:xdist` runs; an
    # explicit --dist on the command line wins.
    explicit = any(
        arg.startswith(("--dist", "-d")) for arg in config.invocation_params.args
    )
    if getattr(config.option, "dist", "no") == "load" and not explicit:
        config.option.dist = "worksteal"


def pytest_addoption(parser):
    parser.addoption(
        "--runslow", action="store_true", default=False, help="run slow and gpu tests"
    )


def pytest_collection_modifyitems(config, items):
    has_gpu = any(d.platform == "gpu" for d in jax.devices())
    skip_slow = pytest.mark.skip(reason="slow: pass --runslow")
    skip_gpu = pytest.mark.skip(reason="gpu: needs --runslow and a GPU")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not (config.getoption("--runslow") and has_gpu):
            item.add_marker(skip_gpu)
