"""Shared fixtures: a tiny CSV dataset, and the suite's persistent JAX compilation cache (root
conftest.py), so the identical programs of the tests' tiny runs (and of their subprocesses)
compile once."""

from pathlib import Path

import jax
import numpy as np
import pytest

from tests.helpers import write_spectrograms


@pytest.fixture(scope="session")
def jax_cache():
    """The suite's persistent compilation cache (set up by the root conftest.py for every
    process of the run), for tests that hand it to the subprocesses they start explicitly."""
    return Path(jax.config.jax_compilation_cache_dir)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, jax_cache):
    """2 classes ("cat", "dog") x 4 CSV spectrograms (rows = frequency) in root/"data", a CSV
    cache folder root/"csv_cache", and the compile cache."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for c, offset in (("cat", 0.0), ("dog", 2.0)):
        write_spectrograms(root / "data" / c, 4, rng, offset)
    return {"root": root, "data": str(root / "data"), "csv_cache": str(root / "csv_cache"),
            "cache": str(jax_cache)}
