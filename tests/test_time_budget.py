"""train.minutes: a budget of training time, measured with an injected clock (deterministic),
that stops a run with a checkpoint and exit status 0, survives resumes, and may be raised on
resume like --steps."""

import functools
import os
import shutil

import pytest

from specgan_jax.cli import train as train_cli
from specgan_jax.config import TrainConfig
from specgan_jax.training import loop as loop_lib
from specgan_jax.run.checkpoint import Checkpointer
from tests.helpers import restore_state, tiny_args

RUN_V0 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "run_v0")


class TenSecondsACall:
    """A clock that advances 10 s each time it is read: every timed training call takes 10 s."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 10.0
        return self.now


@pytest.fixture
def fake_clock(monkeypatch):
    """train_cli's training runs on a TenSecondsACall clock (a fresh one per call, as a fresh
    process would start)."""
    real = loop_lib.train_and_evaluate

    def with_clock(*a, **k):
        return real(*a, clock=TenSecondsACall(), **k)

    monkeypatch.setattr(train_cli, "train_and_evaluate", with_clock)


def saved_meta(work) -> tuple[int, dict]:
    """The latest checkpoint's step and meta item (read without restoring the state)."""
    ck = Checkpointer(str(work / "checkpoints"), use_async=False)
    try:
        step = ck.latest_step()
        return step, ck.read_meta(step)
    finally:
        ck.close()


def test_clock_skips_each_functions_first_call():
    timer = loop_lib.TrainClock(minutes=0.75, seconds=5.0, clock=TenSecondsACall())
    for function in ("scan", "scan", "step", "scan", "step"):
        with timer.timing(function):
            pass
    assert timer.seconds == 5.0 + 3 * 10.0  # the first "scan" and the first "step" compile
    assert not timer.spent()
    with timer.timing("scan"):
        pass
    assert timer.seconds == 45.0 and timer.spent()
    assert not loop_lib.TrainClock(None, 1e9).spent()  # no budget


def test_minutes_validated():
    with pytest.raises(ValueError, match="train.minutes must be > 0"):
        TrainConfig(minutes=0)


def test_budget_stops_with_a_checkpoint_and_a_larger_one_resumes(tiny_data, tmp_path,
                                                                 fake_clock, capsys):
    work = tmp_path / "run"
    args = functools.partial(tiny_args, tiny_data["data"], work, 20, tiny_data["csv_cache"])
    # Calls of 2 steps: 0->2 compiles (not counted), then 10 s each: 30 s reached at step 8.
    assert train_cli.main(args("--train.minutes", "0.5")) == 0
    out = capsys.readouterr().out
    assert "time budget reached at step 8: 0.50 minutes of training (train.minutes=0.5)" in out
    r = restore_state(work)  # restores, at the step the meta says
    assert r.step == 8 and int(r.state.step) == 8 and r.meta["train_seconds"] == 30.0

    # A larger budget on resume is accepted (run control); the first call after the resume
    # compiles again and is not counted: 8->10 free, then 40, 50, 60 s at step 16.
    assert train_cli.main(args("--train.minutes", "1")) == 0
    out = capsys.readouterr().out
    assert "resumed from checkpoint at step 8" in out
    assert "time budget reached at step 16: 1.00 minutes" in out
    assert saved_meta(work) == (16, {"key": r.meta["key"], "train_seconds": 60.0})

    # The same budget again: nothing left to train.
    assert train_cli.main(args("--train.minutes", "1")) == 0
    assert "time budget reached at step 16" in capsys.readouterr().out
    assert saved_meta(work)[0] == 16

    # train.steps still caps a run with budget left: 16->18 (compiles, free), done at 18.
    assert train_cli.main(tiny_args(tiny_data["data"], work, 18, tiny_data["csv_cache"],
                                    "--train.minutes", "10")) == 0
    out = capsys.readouterr().out
    assert "done: 18 steps" in out and "time budget" not in out
    assert saved_meta(work) == (18, {"key": r.meta["key"], "train_seconds": 60.0})


def test_old_run_without_saved_seconds_counts_as_zero(tmp_path, fake_clock, capsys):
    """run_v0's checkpoint (step 2, calls of 1 step) saved no training time: resumed with a
    30 s budget it trains 2->3 (compiles), then 10 s a step, and stops at step 6."""
    work = tmp_path / "run"
    shutil.copytree(RUN_V0, work)
    step, meta = saved_meta(work)
    assert step == 2 and "train_seconds" not in meta
    assert train_cli.main(["--workdir", str(work), "--config", str(work / "config.json"),
                           "--steps", "10", "--train.minutes", "0.5", "--no-progress"]) == 0
    assert "time budget reached at step 6" in capsys.readouterr().out
    step, meta = saved_meta(work)
    assert step == 6 and meta["train_seconds"] == 30.0
