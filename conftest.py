"""Suite-wide: one persistent JAX compilation cache for the whole test run, shared by every
pytest-xdist worker and by the subprocesses the tests start (they inherit the environment), so
a program that one process compiled is loaded, not compiled again, by any other that builds
the same program. XLA_FLAGS and the compile options are part of the cache key
(jax/_src/cache_key.py), so the second-instruction-set pass compiles its own programs.
A size limit turns on the cache's file lock: without one, a worker could read an entry that
another is still writing. Set SPECGAN_TEST_JAX_CACHE to keep the cache across runs."""

import os
import tempfile

import jax

_VAR = "SPECGAN_TEST_JAX_CACHE"


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
