import os

import jax
import pytest

# float64 on unless the run asks for float32 only; the library itself never
# touches jax.config.
if os.environ.get("JAX_ENABLE_X64", "1") != "0":
    jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


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
