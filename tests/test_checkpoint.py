"""specgan_jax.checkpoint on toy pytrees: round trip, keep-last-N, triggers, crash safety; a
write the OS refuses, in orbax's own writer threads (a file size limit), in an asynchronous
save and in the training CLI."""

import errno
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

from specgan_jax.run.checkpoint import ERROR_LOG, CheckpointError, Checkpointer, key_to_json
from tests.helpers import tiny_args

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


# A real write failure that needs no privileges: RLIMIT_FSIZE caps the size of any file the
# process writes; with SIGXFSZ ignored, a write past it fails with EFBIG in whichever thread
# makes it -- here tensorstore's, under orbax's writer threads -- the same path as a full disk.
# Both survive exec, so the wrapper below runs the real program under the limit.
LIMITED = textwrap.dedent("""
    import os, resource, signal, sys
    limit = int(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    os.execv(sys.executable, [sys.executable] + sys.argv[2:])
""")


def run_limited(limit, args, **kw):
    cmd = [sys.executable, *args] if limit is None else [sys.executable, "-c", LIMITED,
                                                          str(limit), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


ASYNC_CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    import jax
    from specgan_jax.run.checkpoint import Checkpointer
    ck = Checkpointer({d!r}, use_async=True)
    ck.save(1, {{"x": jax.random.normal(jax.random.PRNGKey(1), (32, 32))}})  # 4 KB
    ck.wait()
    print("saved 1", flush=True)
    # 256 KB of random floats (incompressible) > the limit: step 2's data file cannot be written
    x = jax.random.normal(jax.random.PRNGKey(2), (256, 256))
    try:
        ck.save(2, {{"x": x}})
        print("save returned", flush=True)
        if {where!r} == "wait":
            ck.wait()
        elif {where!r} == "save":
            ck.save(3, {{"x": x}})
        ck.close()
        print("no error", flush=True)
    except OSError as e:
        print("OSError", e.errno, e.filename, flush=True)
        ck.close()
        print("closed", flush=True)
""")


@pytest.mark.parametrize("where", ["wait", "save", "close"])
def test_async_write_failure_surfaces_as_oserror_without_orbax_noise(tmp_path, where):
    """An asynchronous save whose data file the OS refuses: the failure comes out as an OSError
    naming the file, where the save is next waited for (wait(), the next save() or close());
    orbax's thread tracebacks go to the error log, not to stderr; step 1 stays the latest."""
    d = tmp_path / "ck"
    r = run_limited(100_000, ["-c", ASYNC_CHILD.format(repo=REPO, d=str(d), where=where)])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["saved 1", "save returned"], r.stdout
    assert lines[-1] == "closed", r.stdout
    kind, code, filename = lines[-2].split(" ", 2)
    assert (kind, int(code)) == ("OSError", errno.EFBIG)
    assert filename.startswith(str(d / "2.orbax-checkpoint-tmp"))
    assert "Traceback" not in r.stderr and "ERROR" not in r.stderr, r.stderr
    assert "File too large" in (tmp_path / ERROR_LOG).read_text()
    ck = Checkpointer(str(d), use_async=False)
    assert ck.all_steps() == [1]
    assert ck.restore({"x": jnp.zeros((32, 32))}).step == 1
    ck.close()


def _largest_file(folder, skip=None) -> int:
    sizes = [os.path.getsize(os.path.join(root, f)) for root, dirs, files in os.walk(folder)
             if skip is None or not os.path.abspath(root).startswith(str(skip)) for f in files]
    return max(sizes)


def test_training_on_a_refused_checkpoint_write_reports_one_line_and_resumes(tiny_data,
                                                                            tmp_path):
    """The training CLI, run for real under a file size limit that admits every file of the run
    but a checkpoint's data file: exit 1 with one `error:` line naming the run directory, the
    last good step and how to resume, no traceback; the same command without the limit then
    resumes from that step and finishes."""
    work = tmp_path / "run"
    train = os.path.join(REPO, "scripts", "train.py")
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": tiny_data["cache"],
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5"}
    first = run_limited(None, [train, *tiny_args(tiny_data["data"], work, 2,
                                                 tiny_data["csv_cache"])], env=env)
    assert first.returncode == 0, first.stderr
    # The limit: just above the largest other file the run writes (previews, metrics, the
    # parsed CSV cache), below a checkpoint's largest data file. Not halfway between: orbax
    # splits a checkpoint's data over files whose sizes vary from save to save (seen in one CI
    # run: step 2's largest 2.28 MB, step 4's 1.27 MB, so a limit halfway to step 2's file,
    # 1.4 MB, admitted every file of step 4).
    ckpt_file = _largest_file(work / "checkpoints" / "2")
    other = max(_largest_file(work, skip=work / "checkpoints"),
                _largest_file(tiny_data["csv_cache"]))
    assert other < ckpt_file, (other, ckpt_file)
    args = [train, *tiny_args(tiny_data["data"], work, 4, tiny_data["csv_cache"])]
    # No compilation cache here: its entries would be files the limit refuses too.
    failed = run_limited(other + 1, args)
    assert failed.returncode == 1, failed.stderr
    assert "resumed from checkpoint at step 2" in failed.stdout
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, failed.stderr
    assert errors[0].startswith(f"error: cannot write to the run directory {work}: a file "
                                "exceeds the size limit for files")
    assert f"The last good checkpoint is step 2 ({work / 'checkpoints' / '2'})" in errors[0]
    assert "re-run the same command" in errors[0] and str(work / ERROR_LOG) in errors[0]
    assert "Traceback" not in failed.stderr and "ERROR" not in failed.stderr, failed.stderr
    assert "OCDBT" in (work / ERROR_LOG).read_text()  # orbax's report, kept
    assert sorted(os.listdir(work / "checkpoints"))[0] == "2"

    again = run_limited(None, args, env=env)  # the limit lifted: the same command
    assert again.returncode == 0, again.stderr
    assert "resumed from checkpoint at step 2" in again.stdout and "done: 4 steps" in again.stdout
    assert sorted(os.listdir(work / "checkpoints")) == ["2", "4"]
