"""specgan_jax.checkpoint on toy pytrees: round trip, keep-last-N, triggers, crash safety."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from specgan_jax.run.checkpoint import CheckpointError, Checkpointer, key_to_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def toy_state(step: int):
    """A TrainState-like pytree: params, an optax state (namedtuples), an int32 step."""
    params = {"w": jnp.full((3, 4), float(step)), "b": jnp.arange(4, dtype=jnp.float32) + step}
    return {"step": jnp.int32(step), "params": params,
            "opt": optax.adam(1e-3).init(params), "empty": {}}


def assert_tree_equal(a, b):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_meta_and_keep_last(tmp_path):
    ck = Checkpointer(str(tmp_path / "ck"), keep=2, every_steps=10, use_async=False)
    for s in (1, 2, 3):
        assert ck.save(s, toy_state(s), {"key": key_to_json(jax.random.PRNGKey(7)), "s": s})
    assert not ck.save(3, toy_state(3))  # already saved: refused, not overwritten
    assert ck.all_steps() == [2, 3]  # keep=2 deleted step 1
    r = ck.restore(toy_state(0))
    assert r.step == 3 and r.meta["s"] == 3
    assert r.meta["key"] == [int(v) for v in np.asarray(jax.random.PRNGKey(7))]
    assert_tree_equal(r.state, toy_state(3))
    r2 = ck.restore(toy_state(0), step=2)
    assert_tree_equal(r2.state, toy_state(2))
    with pytest.raises(CheckpointError, match="no checkpoint for step 1"):
        ck.restore(toy_state(0), step=1)
    ck.close()


def test_no_checkpoint_is_a_clear_error(tmp_path):
    ck = Checkpointer(str(tmp_path / "empty"), use_async=False)
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        ck.restore(toy_state(0))


def test_triggers_by_step_and_wall_time(tmp_path):
    ck = Checkpointer(str(tmp_path / "ck"), every_steps=5, every_secs=300.0, use_async=False)
    t0 = time.monotonic()
    assert ck.should_save(10, now=t0)  # a multiple of every_steps
    assert not ck.should_save(11, now=t0 + 1)
    assert ck.should_save(11, now=t0 + 301)  # 300 s since construction (= "last save")
    ck.save(11, toy_state(11))
    assert not ck.should_save(12, now=time.monotonic() + 1)  # the save reset the clock
    off = Checkpointer(str(tmp_path / "ck2"), every_steps=5, every_secs=0.0, use_async=False)
    assert not off.should_save(11, now=time.monotonic() + 1e6)  # 0 disables the time trigger


def test_unfinished_tmp_dir_is_ignored(tmp_path):
    """What a save killed mid-write leaves (orbax's <step>.orbax-checkpoint-tmp-*) is skipped."""
    d = tmp_path / "ck"
    ck = Checkpointer(str(d), use_async=False)
    ck.save(1, toy_state(1))
    ck.close()
    shutil.copytree(d / "1", d / "2.orbax-checkpoint-tmp-1234")
    ck = Checkpointer(str(d), use_async=False)
    assert ck.all_steps() == [1]
    assert ck.restore(toy_state(0)).step == 1


def test_unreadable_latest_falls_back_with_warning(tmp_path):
    d = tmp_path / "ck"
    ck = Checkpointer(str(d), keep=3, use_async=False)
    ck.save(1, toy_state(1))
    ck.save(2, toy_state(2))
    ck.close()
    for entry in os.scandir(d / "2" / "state"):  # damage the newest: drop its array files
        if entry.is_file():
            os.remove(entry.path)
        else:
            shutil.rmtree(entry.path)
    ck = Checkpointer(str(d), use_async=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = ck.restore(toy_state(0))
    assert r.step == 1
    assert_tree_equal(r.state, toy_state(1))
    assert any("unreadable" in str(w.message) for w in caught)


CHILD = textwrap.dedent("""
    import sys, jax.numpy as jnp
    sys.path.insert(0, {repo!r})
    from specgan_jax.run.checkpoint import Checkpointer
    ck = Checkpointer({d!r}, keep=3, use_async=False)
    s = 1
    while True:  # big enough (16 MB) that a kill often lands mid-save
        ck.save(s, {{"x": jnp.full((2048, 2048), float(s)), "step": jnp.int32(s)}})
        print(s, flush=True)
        s += 1
""")


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.13])
def test_sigkill_during_saves_leaves_latest_readable(tmp_path, delay):
    """SIGKILL a process that saves in a loop at an arbitrary moment: the latest finalised
    checkpoint restores and holds exactly what was saved for its step."""
    d = str(tmp_path / "ck")
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(repo=REPO, d=d)],
                            stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(2):  # wait until two saves completed, then kill during later ones
            assert proc.stdout.readline(), "child died before saving"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    ck = Checkpointer(d, use_async=False)
    target = {"x": jnp.zeros((2048, 2048)), "step": jnp.int32(0)}
    r = ck.restore(target)
    assert r.step >= 2
    assert int(r.state["step"]) == r.step
    assert np.all(np.asarray(r.state["x"]) == r.step)
