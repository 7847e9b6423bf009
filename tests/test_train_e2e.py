"""End-to-end training CLI: run dir, checkpoints, exact resume, SIGINT, NaN guard, generate.

Tiny config (dim 4, batch 4, 1 critic update) so XLA compiles fast on CPU; n_critic=5 (the
default) is exercised by the demo test. All runs share a persistent JAX compilation cache, so
the identical programs of later runs (and of the subprocesses) are not compiled again.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from specgan_jax.cli import train as train_cli
from specgan_jax.cli.generate import main as gen_main
from specgan_jax.config import Config, ModelConfig
from specgan_jax.config_json import config_from_dict
from specgan_jax.data.moments import Moments
from specgan_jax.engine.models import resolve_impl
from specgan_jax.errors import NonFiniteError
from specgan_jax.run.metrics_log import read_metrics
from specgan_jax.run.run_dir import LoadedRun, load_run_config
from specgan_jax.training import loop as train_loop
from tests import helpers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSV_ROUNDING = 1e-6  # relative: generate.py writes 7 significant digits (%.7g)


@pytest.fixture(scope="module")
def env(tiny_data):
    return {**tiny_data, "root": tiny_data["root"] / "e2e"}


def tiny_args(env, workdir, steps, *extra):
    return helpers.tiny_args(env["data"], workdir, steps, env["csv_cache"], *extra)


@pytest.fixture(scope="module")
def run4(env):
    """One uninterrupted 4-step run."""
    workdir = env["root"] / "run4"
    assert train_cli.main(tiny_args(env, workdir, 4)) == 0
    return workdir


def restore_state(workdir, step=None):
    return helpers.restore_state(workdir, step=step)


def test_run_directory_layout(run4):
    names = set(os.listdir(run4))
    assert {"config.json", "moments.npz", "labels.json", "checkpoints", "previews",
            "metrics.jsonl"} <= names
    saved = json.loads((run4 / "config.json").read_text())
    # the resolved config: conv_impl=auto as it resolved on this machine (one CPU device:
    # hybrid), the optimizer's defaults for wgan-gp, nothing left auto
    assert "resolved" not in saved
    cfg = config_from_dict(Config, saved)
    assert cfg.model.dim == 4 and cfg.train.steps == 4
    assert cfg.model.conv_impl == resolve_impl(ModelConfig(dim=4)) != "auto"
    assert (cfg.optim.optimizer, cfg.optim.g_lr, cfg.optim.beta2) == ("adam", 1e-4, 0.9)
    assert json.loads((run4 / "labels.json").read_text())["class_names"] == ["cat", "dog"]
    assert sorted(os.listdir(run4 / "checkpoints")) == ["2", "4"]
    assert {"reals.png", "fakes_000002.png", "fakes_000004.png"} <= set(
        os.listdir(run4 / "previews"))
    # data without audio_params.json: no WAV previews (tests/test_audio_preview.py: with one)
    assert not [f for f in os.listdir(run4 / "previews") if f.endswith(".wav")]
    rows = read_metrics(str(run4 / "metrics.jsonl"))
    assert [r["step"] for r in rows] == [2, 4]
    assert {"d_loss", "g_loss", "gp", "wasserstein"} <= set(rows[0])
    assert all(np.isfinite(r["d_loss"]) for r in rows)
    assert int(restore_state(run4).state.step) == 4


def assert_same_run(workdir, ref_workdir):
    """Bitwise the same final state and the same metrics.jsonl rows (but their times)."""
    a, b = restore_state(ref_workdir).state, restore_state(workdir).state
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb and len(la) > 10
    for x, y in zip(la, lb):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    strip = [{k: v for k, v in r.items() if k != "time"}
             for r in read_metrics(str(workdir / "metrics.jsonl"))]
    ref = [{k: v for k, v in r.items() if k != "time"}
           for r in read_metrics(str(ref_workdir / "metrics.jsonl"))]
    assert strip == ref


def test_resume_is_bitwise_identical(env, run4):
    """2 steps, stop, re-run the same command with --steps 4 == 4 steps uninterrupted."""
    workdir = env["root"] / "run2plus2"
    assert train_cli.main(tiny_args(env, workdir, 2)) == 0
    assert train_cli.main(tiny_args(env, workdir, 4)) == 0
    assert_same_run(workdir, run4)
    # Finished: the same command again does nothing and succeeds.
    assert train_cli.main(tiny_args(env, workdir, 4)) == 0
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"]


def test_scan_and_python_loops_give_the_same_run(env, run4):
    """--train.loop python (one jitted step per call) == the default scan over steps."""
    workdir = env["root"] / "run4python"
    assert train_cli.main(tiny_args(env, workdir, 4, "--train.loop", "python")) == 0
    assert_same_run(workdir, run4)


def test_resume_with_other_config_is_refused(env, run4, capsys):
    rc = train_cli.main(tiny_args(env, run4, 4, "--model.dim", "8"))
    assert rc == 1
    err = capsys.readouterr().err
    assert "different config" in err and "model.dim: 4 != 8" in err


def test_generate_csv_round_trip(env, run4, tmp_path):
    out = tmp_path / "gen"
    assert gen_main([str(run4), "--n", "3", "--out", str(out), "--batch-size", "2"]) == 0
    files = sorted(os.listdir(out))
    assert files == ["seed0_00000.csv", "seed0_00001.csv", "seed0_00002.csv"]
    m = Moments.load(str(run4 / "moments.npz"))
    lo, hi = m.mean - 3 * m.std, m.mean + 3 * m.std  # tanh in [-1, 1] -> mean +- 3 std
    xs = []
    for name in files:
        text = (out / name).read_text()
        assert text.count("\n") == 128 and text.splitlines()[0].count(",") == 127
        x = np.loadtxt(out / name, delimiter=",")  # no header, comma separated
        assert x.shape == (128, 128)
        tol = CSV_ROUNDING * np.maximum(np.abs(lo), np.abs(hi))
        assert np.all(x >= (lo - tol)[:, None]) and np.all(x <= (hi + tol)[:, None])
        xs.append(x)
    assert np.std(xs[0]) > 0 and not np.allclose(xs[0], xs[1])
    # A (seed, index) names one sample whatever --n and --batch-size are.
    out1 = tmp_path / "one"
    assert gen_main([str(run4), "--n", "1", "--start", "2", "--out", str(out1)]) == 0
    again = np.loadtxt(out1 / "seed0_00002.csv", delimiter=",")
    np.testing.assert_allclose(again, xs[2], rtol=CSV_ROUNDING, atol=0)
    # npy/png and an older step
    assert gen_main([str(run4), "--n", "2", "--format", "npy", "--step", "2",
                     "--out", str(tmp_path / "npy")]) == 0
    arr = np.load(tmp_path / "npy" / "seed0_00000-00001.npy")
    assert arr.shape == (2, 128, 128) and arr.dtype == np.float32
    assert gen_main([str(run4), "--n", "4", "--format", "png", "--interpolate",
                     "--out", str(tmp_path / "png")]) == 0
    assert os.listdir(tmp_path / "png") == ["interp_seed0.png"]


def test_generate_time_rows_orientation(env, run4):
    """Data read with rows = time comes back with rows = time (transposed)."""
    run = LoadedRun(str(run4))
    z = np.zeros((1, run.config.model.latent_dim), np.float32)
    freq_rows = run.generate(z)
    run.config = dataclasses.replace(
        run.config, data=dataclasses.replace(run.config.data, orientation="time_rows"))
    assert np.array_equal(run.generate(z), np.swapaxes(freq_rows, 1, 2))


def test_generate_errors_are_clear(tmp_path, run4, capsys):
    assert gen_main([str(tmp_path / "nope"), "--n", "1"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert gen_main([str(tmp_path), "--n", "1"]) == 1
    assert "config.json is missing" in capsys.readouterr().err
    assert gen_main([str(run4), "--n", "1", "--step", "3"]) == 1
    err = capsys.readouterr().err
    assert "no checkpoint for step 3" in err and "Traceback" not in err


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(env):
    workdir = env["root"] / "nan"
    args = tiny_args(env, workdir, 6)
    cfg, _ = train_cli.resolve_config(train_cli.build_parser().parse_args(args))

    def poison(state, metrics, step):  # test hook: the chunk ending at step 4 went NaN
        if step == 4:
            metrics = dict(metrics, g_loss=np.array([0.1, np.nan], np.float32))
        return state, metrics

    with pytest.raises(NonFiniteError, match=r"step 4: g_loss = nan") as e:
        train_loop.train_and_evaluate(cfg, str(workdir), progress=False, step_hook=poison,
                                     log=lambda s: None)
    assert "last good checkpoint (step 2)" in str(e.value)
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2"]
    assert [r["step"] for r in read_metrics(str(workdir / "metrics.jsonl"))] == [2]


def test_nonfinite_error_at_cli_level(env, monkeypatch, capsys):
    def boom(*a, **k):
        raise NonFiniteError("non-finite loss at step 7: d_loss = inf")

    monkeypatch.setattr(train_cli, "train_and_evaluate", boom)
    assert train_cli.main(tiny_args(env, env["root"] / "x", 8)) == 1
    err = capsys.readouterr().err
    assert "error: non-finite loss at step 7: d_loss = inf" in err and "Traceback" not in err


def test_sigint_saves_and_exits_cleanly(env, run4):
    """Ctrl-C mid-run: a checkpoint is saved, exit status 130, and it restores."""
    workdir = env["root"] / "sigint"
    args = tiny_args(env, workdir, 10_000, "--train.checkpoint_every", "10000",
                     "--train.checkpoint_every_secs", "0")
    proc = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "scripts", "train.py"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "JAX_COMPILATION_CACHE_DIR": env["cache"],
             "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5"})
    try:
        metrics = workdir / "metrics.jsonl"
        deadline = time.monotonic() + 300
        while not (metrics.exists() and metrics.read_text().strip()):  # training is running
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no training step within 300 s"
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "stopped by SIGINT" in out and "Traceback" not in err
    r = restore_state(workdir)
    assert 2 <= r.step < 10_000 and int(r.state.step) == r.step


def test_demo_command_short(tmp_path):
    """The README's first command (`python scripts/train.py`), shortened to 2 steps: the demo
    preset (dim 8, batch 16, 5 critic updates) on the built-in synthetic data."""
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", "train.py"), "--steps", "2",
         "--no-progress"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Demo run on synthetic data")
    assert lines[1].startswith("Run directory: ")
    run_dir = lines[1].split(": ", 1)[1]
    assert os.path.dirname(run_dir) == str(tmp_path / "runs")
    assert {"reals.png", "fakes_000002.png"} <= set(os.listdir(os.path.join(run_dir, "previews")))
    assert os.listdir(os.path.join(run_dir, "checkpoints")) == ["2"]
