"""Periodic evaluation during training (train.eval_every): the metrics logged, the best
checkpoint kept, a resumed run identical to an uninterrupted one, training unchanged, and
metric choices that need classes.

Runs are tiny (dim 4, batch 4, 1 critic update, 4 steps) and share a persistent JAX
compilation cache.
"""

import os
import shutil

import jax
import numpy as np
import pytest

from specgan_jax.cli import train as train_cli
from specgan_jax.run.checkpoint import Checkpointer
from specgan_jax.run.metrics_log import read_metrics
from tests import helpers
from tests.eval_env import env, tiny_args  # noqa: F401 (env: a fixture)


@pytest.fixture(scope="module")
def eval_run(env):
    """4 steps with an evaluation every 2 steps."""
    workdir = env["root"] / "run_eval"
    assert train_cli.main(tiny_args(env, workdir, 4, "--train.eval_every", "2")) == 0
    return workdir


def restore(workdir, sub="checkpoints", step=None):
    return helpers.restore_state(workdir, sub, step)


def strip_time(rows):
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


def test_periodic_eval_logs_and_keeps_best(eval_run):
    rows = read_metrics(str(eval_run / "metrics.jsonl"))
    evals = [r for r in rows if "eval/fd" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert {"eval/fd_real_baseline", "eval/kid", "eval/ndb", "eval/nn_train", "eval/memorization",
            "eval/best_fd", "eval/best_step"} <= set(evals[0])
    assert [r["step"] for r in rows if "d_loss" in r] == [2, 4]  # loss rows unchanged
    best_i = int(np.argmin([r["eval/fd"] for r in evals]))
    assert evals[-1]["eval/best_fd"] == evals[best_i]["eval/fd"]
    assert evals[-1]["eval/best_step"] == evals[best_i]["step"]
    assert os.listdir(eval_run / "checkpoints_best_fd") == [str(evals[best_i]["step"])]
    best = restore(eval_run, "checkpoints_best_fd")
    assert best.meta["score"] == evals[best_i]["eval/fd"] and best.meta["eval_metric"] == "fd"
    assert int(best.state.step) == best.step == evals[best_i]["step"]
    regular = restore(eval_run, step=best.step).state  # the very state of that step
    for u, v in zip(jax.tree.leaves(best.state), jax.tree.leaves(regular)):
        assert np.array_equal(np.asarray(u), np.asarray(v))


def test_periodic_eval_does_not_change_training_and_resumes(env, eval_run):
    """Training without evaluation ends in bitwise the same state; a run stopped at step 2
    and resumed logs the same rows and keeps the same best checkpoint as the uninterrupted one."""
    plain = env["root"] / "run_plain"
    assert train_cli.main(tiny_args(env, plain, 4)) == 0
    a, b = restore(eval_run).state, restore(plain).state
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.array_equal(np.asarray(u), np.asarray(v))
    resumed = env["root"] / "run_resumed"
    assert train_cli.main(tiny_args(env, resumed, 2, "--train.eval_every", "2")) == 0
    assert train_cli.main(tiny_args(env, resumed, 4, "--train.eval_every", "2")) == 0
    assert strip_time(read_metrics(str(resumed / "metrics.jsonl"))) == strip_time(
        read_metrics(str(eval_run / "metrics.jsonl")))
    assert os.listdir(resumed / "checkpoints_best_fd") == os.listdir(
        eval_run / "checkpoints_best_fd")


def test_resume_drops_best_checkpoints_after_the_resume_step(env, eval_run):
    """A run killed after saving a best checkpoint but before its regular checkpoint resumes
    from an earlier step; the best checkpoint "from the future" (here a planted step 3 with an
    unbeatable score) is dropped and the result equals the uninterrupted run's."""
    crashed = env["root"] / "run_crashed"
    shutil.copytree(eval_run, crashed)
    shutil.rmtree(crashed / "checkpoints" / "4")  # the last regular checkpoint never happened
    ck = Checkpointer(str(crashed / "checkpoints_best_fd"), keep=5, use_async=False)
    ck.save(3, restore(eval_run, step=2).state, {"eval_metric": "fd", "score": -1.0, "step": 3})
    ck.close()
    assert train_cli.main(tiny_args(env, crashed, 4, "--train.eval_every", "2")) == 0
    assert os.listdir(crashed / "checkpoints_best_fd") == os.listdir(
        eval_run / "checkpoints_best_fd")
    assert strip_time(read_metrics(str(crashed / "metrics.jsonl"))) == strip_time(
        read_metrics(str(eval_run / "metrics.jsonl")))


def test_periodic_eval_metric_needs_classes(env, capsys):
    rc = train_cli.main(tiny_args(env, env["root"] / "run_is", 2, "--train.eval_every", "2",
                                  "--train.eval_metric", "inception_score"))
    assert rc == 1
    assert "inception_score needs data with more than one class" in capsys.readouterr().err
