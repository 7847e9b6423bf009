"""The tiny training data and run flags shared by tests/test_eval_periodic.py and
tests/test_eval_cli.py (import the `env` fixture from here: it is module-scoped, one per test
file)."""

import os

import numpy as np
import pytest

from tests import helpers


def write_csvs(folder, xs):
    os.makedirs(folder, exist_ok=True)
    for i, x in enumerate(xs):
        np.savetxt(os.path.join(folder, f"{i:03d}.csv"), x, delimiter=",", fmt="%.6f")


@pytest.fixture(scope="module")
def env(tmp_path_factory, jax_cache):
    """Training data: one folder of 12 CSVs (one class -> random_conv features in training);
    --real data: 2 classes x 6 CSVs (classifier features in the CLI); a shared compile cache."""
    root = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(0)
    helpers.write_spectrograms(root / "train", 12, rng, name="{i:03d}.csv")
    helpers.write_spectrograms(root / "real" / "lo", 6, rng, name="{i:03d}.csv")
    helpers.write_spectrograms(root / "real" / "hi", 6, rng, 1.0, name="{i:03d}.csv")
    return {"root": root, "train": str(root / "train"), "real": str(root / "real"),
            "cache": str(jax_cache)}


def tiny_args(env, workdir, steps, *extra):
    return helpers.tiny_args(env["train"], workdir, steps, env["root"] / "csv_cache", *extra,
                             preview_every=4)
