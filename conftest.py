"""Suite-wide: one persistent JAX compilation cache for the whole test run, shared by every
pytest-xdist worker and by the subprocesses the tests start (they inherit the environment), so
a program that one process compiled is loaded, not compiled again, by any other that builds
the same program. XLA_FLAGS and the compile options are part of the cache key
(jax/_src/cache_key.py), so the second-instruction-set pass compiles its own programs.
A size limit turns on the cache's file lock: without one, a worker could read an entry that
another is still writing. Set SPECGAN_TEST_JAX_CACHE to keep the cache across runs.

Compile effort by directory. The parity suite (parity_tests/) compiles as users' programs do:
its tolerances are about the programs that train. The behavioural tests (tests/) compare runs
with runs made under the same flags (resume bitwise, 1 vs N devices, CLI against library), or
check bookkeeping, so they compile with JAX's `jax_disable_most_optimizations` (XLA:CPU backend
optimisation level 0): measured 75 s -> 45 s for tests/test_conditional_training.py on one
core. Such programs round differently (3 training steps at dim 4 differ by up to 1e-2 in some
parameter), so a module switches the flag at its start and drops the in-memory compiled
programs when it changes (`jax.clear_caches`), and every module's programs come from its own
directory's setting; toggled back, a program gives the default's numbers bitwise. Subprocesses
inherit it through JAX_DISABLE_MOST_OPTIMIZATIONS."""

import collections
import os
import tempfile
from pathlib import Path

import jax
import pytest

_VAR = "SPECGAN_TEST_JAX_CACHE"
_BEHAVIOURAL = Path(__file__).parent / "tests"
_effort = {"low": None}  # this process's current setting (None: not set by this conftest)


@pytest.fixture(scope="module", autouse=True)
def _compile_effort(request):
    low = _BEHAVIOURAL in Path(request.node.path).parents
    if _effort["low"] is not low:
        jax.config.update("jax_disable_most_optimizations", low)
        os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1" if low else "0"
        if _effort["low"] is not None:
            jax.clear_caches()
        _effort["low"] = low
    yield


def pytest_configure(config):
    # The controller (or a run without xdist) picks the folder; the workers, started after
    # this hook, inherit it through the environment.
    cache = os.environ.setdefault(_VAR, tempfile.mkdtemp(prefix="specgan-test-jax-cache-"))
    settings = {"JAX_COMPILATION_CACHE_DIR": cache,
                "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5",
                "JAX_COMPILATION_CACHE_MAX_SIZE": str(8 << 30)}
    os.environ.update(settings)
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_compilation_cache_max_size", 8 << 30)


# Test files go to the workers in this order (pyproject's --no-loadscope-reorder hands them
# out as collected): the longest single test first, the parity suite once more on a second
# instruction set (a subprocess on one core, 196 s of a 15-minute 2-worker run), then the files
# with the most tests first (xdist's own default order). With xdist's reordering, by test count,
# that one-test file went last and ran alone for its 196 s after the other worker had finished.
_FIRST = "parity_tests/test_second_isa.py"


def pytest_collection_modifyitems(config, items):
    file_of = {item: item.nodeid.split("::")[0] for item in items}
    per_file = collections.Counter(file_of.values())
    items.sort(key=lambda item: (file_of[item] != _FIRST, -per_file[file_of[item]],
                                 file_of[item]))
