"""User errors end as one clear message and exit status 1: a full disk or unwritable run
directory during training, a checkpoint that cannot be restored (resources still closed), and
export without torch installed. Also: batched generation compiles once for a ragged last batch."""

import errno
import os
import shutil
import sys

import jax
import numpy as np
import pytest

from specgan_jax.cli import export as export_cli
from specgan_jax.cli import train as train_cli
from specgan_jax.engine.sampling import generate_batched, latents, map_padded
from specgan_jax.errors import CheckpointError
from specgan_jax.run import checkpoint as ckpt_lib
from specgan_jax.run import metrics_log as metrics_log_lib
from specgan_jax.run.run_dir import LoadedRun
from tests import helpers

RUN_V0 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "run_v0")


@pytest.fixture
def run_v0(tmp_path):
    """A copy of the committed tiny run (a checkpoint at step 2), to resume."""
    work = tmp_path / "run"
    shutil.copytree(RUN_V0, work)
    return work


def resume_args(work, steps=4):
    return ["--workdir", str(work), "--config", str(work / "config.json"), "--steps",
            str(steps), "--no-progress"]


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left on the device"),
                                         (errno.EROFS, "the file system is read-only")])
def test_write_failure_names_directory_last_checkpoint_and_resume(run_v0, monkeypatch, capsys,
                                                                   code, words):
    def full_disk(self, step, state, meta=None):
        raise OSError(code, os.strerror(code), os.path.join(self.directory, str(step)))

    monkeypatch.setattr(ckpt_lib.Checkpointer, "save", full_disk)
    assert train_cli.main(resume_args(run_v0)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write to the run directory " + str(run_v0))
    assert words in err and "Traceback" not in err
    assert f"last good checkpoint is step 2 ({run_v0 / 'checkpoints' / '2'})" in err
    assert "re-run the same command" in err
    monkeypatch.undo()  # space freed: the same command resumes from step 2
    assert train_cli.main(resume_args(run_v0, steps=3)) == 0
    assert sorted(os.listdir(run_v0 / "checkpoints")) == ["3"]


def test_oserror_outside_the_run_directory_is_not_blamed_on_it(run_v0, monkeypatch):
    def elsewhere(self, step, metrics, elapsed=None):
        raise OSError(errno.ENOSPC, "No space left on device", "/somewhere/else")

    monkeypatch.setattr(metrics_log_lib.MetricsLog, "write", elsewhere)
    with pytest.raises(OSError, match="somewhere"):
        train_cli.main(resume_args(run_v0))


def test_checkpoint_error_during_restore_closes_checkpointer_and_metrics_log(run_v0,
                                                                            monkeypatch,
                                                                            capsys):
    closed = []

    def bad_restore(self, target, step=None, legacy=None):
        raise CheckpointError(f"no readable checkpoint in {self.directory}")

    def record(cls):
        real = cls.close
        monkeypatch.setattr(cls, "close", lambda self: closed.append(cls.__name__) or real(self))

    monkeypatch.setattr(ckpt_lib.Checkpointer, "restore", bad_restore)
    record(ckpt_lib.Checkpointer)
    record(metrics_log_lib.MetricsLog)
    assert train_cli.main(resume_args(run_v0)) == 1
    assert "error: no readable checkpoint in" in capsys.readouterr().err
    assert sorted(closed) == ["Checkpointer", "MetricsLog"]


def test_export_without_torch_says_which_extra_to_install(run_v0, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert export_cli.export_main([str(run_v0), "--out", str(tmp_path / "G.pt")]) == 1
    err = capsys.readouterr().err
    assert 'pip install -e ".[torch]"' in err and "Traceback" not in err
    assert not (tmp_path / "G.pt").exists()


def test_padded_batches_compile_once_and_match_unbatched():
    traces = []

    @jax.jit
    def double(x):
        traces.append(x.shape)  # runs once per compilation (trace)
        return 2 * x, None

    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    y, none = map_padded(double, x, 4)  # batches of 4, 4 and 2 (+2 rows of padding)
    assert traces == [(4, 3)] and none is None
    np.testing.assert_array_equal(y, 2 * x)


def test_loaded_run_generates_a_ragged_last_batch_without_recompiling():
    run = LoadedRun(RUN_V0)
    z = latents(0, np.arange(5), run.config.model.latent_dim, run.config.loss.latent_dist)
    batched = run.generate_normalized(z, batch_size=2)  # 2 + 2 + 1 (padded to 2)
    assert run._gen._cache_size() == 1
    one = generate_batched(run._gen, run.g_params, run.g_batch_stats, z, 5)
    np.testing.assert_allclose(batched, one, rtol=0, atol=1e-6)


def test_conditional_training_needs_classes_and_says_why(tmp_path, tiny_data, capsys):
    """--model.conditional on data with one class, or a --model.n_classes the data does not
    have: a one-line error naming the cause, no traceback, no run directory content."""
    write_one = tmp_path / "one"
    helpers.write_spectrograms(write_one, 2, np.random.default_rng(0))
    assert train_cli.main(["--model.conditional", "--data", str(write_one), "--workdir",
                           str(tmp_path / "run"), "--steps", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    # found from the class folders before any file is parsed: the only line on stderr
    assert err.startswith("error: model.conditional: the data has 1 class") and \
        err.count("\n") == 1 and "one subfolder per class" in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "run" / "config.json")
    assert train_cli.main(["--model.conditional", "--model.n_classes", "3", "--data",
                           tiny_data["data"], "--workdir", str(tmp_path / "run2"), "--steps", "1",
                           "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "model.n_classes=3, but the data has 2 classes (cat, dog)" in err
