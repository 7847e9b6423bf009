"""Backward compatibility: a run directory written by the code before the package split
(tests/fixtures/run_v0, see tests/fixtures/README.md) still loads, generates the same samples,
and resumes to the same numbers the old code reached."""

import os
import shutil

import numpy as np
import pytest

from specgan_jax.cli import train as train_cli
from specgan_jax.engine.sampling import latents
from specgan_jax.run.run_dir import LoadedRun
from specgan_jax.run.metrics_log import read_metrics

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
RUN_V0 = os.path.join(FIXTURES, "run_v0")
# XLA:CPU may pick other kernels on another CPU; on the machine that wrote the fixture the
# numbers are bitwise equal. Values are log-magnitudes of order 1-10.
ATOL = 1e-4


@pytest.fixture(scope="module")
def expected():
    with np.load(os.path.join(FIXTURES, "run_v0_expected.npz")) as z:
        return {k: z[k] for k in z.files}


def generate_subsampled(run_dir, raw=True):
    # raw: the old code had no EMA; its numbers are those of the trained weights
    run = LoadedRun(run_dir, raw=raw)
    z = latents(0, np.arange(5), run.config.model.latent_dim, run.config.loss.latent_dist)
    return run.step, run.generate(z, batch_size=2)[:, ::8, ::8]


def test_old_run_directory_loads_and_generates_the_same_samples(expected):
    step, x = generate_subsampled(RUN_V0)
    assert step == 2
    np.testing.assert_allclose(x, expected["step2"], rtol=0, atol=ATOL)
    # a checkpoint without an EMA loads with the EMA equal to the trained weights
    _, x_ema = generate_subsampled(RUN_V0, raw=False)
    np.testing.assert_array_equal(x_ema, x)


def test_old_run_directory_resumes_to_the_old_codes_numbers(tmp_path, expected):
    work = tmp_path / "run"
    shutil.copytree(RUN_V0, work)
    rc = train_cli.main(["--workdir", str(work), "--config", str(work / "config.json"),
                         "--steps", "3", "--no-progress"])
    assert rc == 0
    assert [r["step"] for r in read_metrics(str(work / "metrics.jsonl"))] == [1, 2, 3]
    step, x = generate_subsampled(str(work))
    assert step == 3
    np.testing.assert_allclose(x, expected["step3"], rtol=0, atol=ATOL)
