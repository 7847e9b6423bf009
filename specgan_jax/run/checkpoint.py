"""Checkpoints of a training run: orbax CheckpointManager, saved by step count and wall time.

A checkpoint is one orbax step directory `checkpoints/<step>/` with two items:
  state: the whole TrainState pytree (parameters, optimizer states, BN statistics, step),
  meta:  a small JSON object whose entries the caller reads back and checks (training: the
         PRNG key of the step draws; the best checkpoint: the metric and its score). Orbax's
         own `_CHECKPOINT_METADATA` records when the step was saved.

Atomicity (orbax-checkpoint 0.12.8, checked in its source, _src/path/atomicity.py): a save is
written to `<step>.orbax-checkpoint-tmp-<n>/` and renamed to `<step>/` only once complete
(AtomicRenameTemporaryPath). `all_steps()` lists finalised directories only, so a process killed
with SIGKILL mid-save leaves a tmp directory that is ignored, and the previous step stays the
latest. As a second line of defence `restore()` falls back to the next older step, with a
warning, if the newest one cannot be read (e.g. a file deleted by hand or a truncated copy).

A write that the OS refuses (disk full, file too large, read-only) fails inside orbax's writer
threads; orbax logs it through absl from those threads and re-raises it (as a ValueError
carrying the OS error code) where the save is waited for: in save() when synchronous, else in
wait(), the next save() or close(). Checkpointer turns that into an OSError naming the file, so
the caller reports it as a write failure; orbax's own messages about it (absl errors with their
thread tracebacks, and the complaints of the writes it leaves behind unfinished) go to
`checkpoint_errors.log` beside the checkpoint folder rather than to the terminal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import sys
import threading
import time
import traceback
import warnings
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from specgan_jax.errors import CheckpointError

log = logging.getLogger(__name__)

ERROR_LOG = "checkpoint_errors.log"  # beside the checkpoint folder: orbax's own error reports


@dataclasses.dataclass
class Restored:
    """What restore() returns."""

    step: int  # the orbax step (= generator updates done)
    state: Any  # the TrainState (or whatever pytree was saved), on the target's shardings
    meta: dict  # the JSON item saved alongside


def abstract_like(tree):
    """ShapeDtypeStructs (with shardings) of a pytree of arrays: the restore target."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpointer:
    """orbax CheckpointManager for one run, with a step- and a wall-time trigger.

    Args:
      directory: the run's `checkpoints/` directory (created if missing).
      keep: how many newest checkpoints to keep (orbax max_to_keep).
      every_steps: save when `step % every_steps == 0`.
      every_secs: also save when this many seconds passed since the last save (0: never).
      use_async: write in a background thread (orbax's default). Arrays are copied to host
        memory before save() returns, so the caller may donate/overwrite them afterwards.
    """

    def __init__(self, directory: str, keep: int = 3, every_steps: int = 1000,
                 every_secs: float = 0.0, use_async: bool = True):
        self.directory = os.path.abspath(directory)
        self.every_steps = every_steps
        self.every_secs = every_secs
        self._last_save_time = time.monotonic()
        self.error_log = os.path.join(os.path.dirname(self.directory), ERROR_LOG)
        self._failed: Optional[OSError] = None  # the write failure already raised, if any
        _ORBAX_ERRORS.watch(self.directory, self.error_log)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=use_async)
        self._mgr = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=("state", "meta"))

    # -- queries -----------------------------------------------------------------------------
    def all_steps(self) -> list[int]:
        """Finalised checkpoint steps, oldest first (tmp directories are never listed)."""
        self._mgr.reload()
        return sorted(self._mgr.all_steps())

    def latest_step(self) -> Optional[int]:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def should_save(self, step: int, now: Optional[float] = None) -> bool:
        """Whether a checkpoint is due at `step` (step multiple or wall-time interval)."""
        if step % self.every_steps == 0:
            return True
        now = time.monotonic() if now is None else now
        return self.every_secs > 0 and now - self._last_save_time >= self.every_secs

    # -- save / restore ----------------------------------------------------------------------
    def save(self, step: int, state, meta: Optional[dict] = None) -> bool:
        """Save `state` (a pytree of arrays) and `meta` (JSON-able) as checkpoint `step`.

        Returns False (and saves nothing) if `step` is already saved.
        """
        if step in self._mgr.all_steps():
            return False
        meta = dict(meta or {})
        with self._writing():
            self._mgr.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
        self._last_save_time = time.monotonic()
        return True

    def restore(self, target, step: Optional[int] = None, legacy=None) -> Restored:
        """Restore checkpoint `step`, or the newest readable one when `step` is None.

        target: a pytree of arrays or ShapeDtypeStructs of the saved structure; restored arrays
          take its dtypes and shardings.
        legacy: the structure older code saved (e.g. the TrainState without the fields added
          since), tried when a checkpoint does not read as `target`; the caller fills the rest.
        Raises CheckpointError if there is no (readable) checkpoint or `step` does not exist.
        """
        self.wait()
        steps = self.all_steps()
        if not steps:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        if step is not None:
            if step not in steps:
                raise CheckpointError(f"no checkpoint for step {step} in {self.directory}; "
                                      f"available: {', '.join(map(str, steps))}")
            return self._restore_either(target, legacy, step)
        errors = []
        for s in reversed(steps):
            try:
                restored = self._restore_either(target, legacy, s)
            except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: try the older one
                errors.append(f"step {s}: {type(e).__name__}: {e}")
                warnings.warn(f"checkpoint {os.path.join(self.directory, str(s))} is unreadable "
                              f"({type(e).__name__}); trying an older one", stacklevel=2)
                continue
            return restored
        raise CheckpointError(f"no readable checkpoint in {self.directory}:\n  "
                              + "\n  ".join(errors))

    def _restore_either(self, target, legacy, step: int) -> Restored:
        try:
            return self._restore_one(target, step)
        except Exception:  # noqa: BLE001 - another structure: try the legacy one, else re-raise
            if legacy is None:
                raise
            return self._restore_one(legacy, step)

    def _restore_one(self, target, step: int) -> Restored:
        abstract = abstract_like(target)
        out = self._mgr.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        return Restored(step=step, state=out["state"], meta=dict(out["meta"]))

    def read_meta(self, step: int) -> dict:
        """The JSON `meta` item of checkpoint `step` alone (the state is not read)."""
        self.wait()
        out = self._mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(out["meta"])

    def delete(self, step: int) -> None:
        """Remove checkpoint `step` from disk."""
        self.wait()
        self._mgr.delete(step)

    def wait(self) -> None:
        """Block until a pending async save is on disk (finalised and renamed). OSError if the
        OS refused one of its writes."""
        with self._writing():
            self._mgr.wait_until_finished()

    def close(self) -> None:
        """Wait for a pending save and close. After a write failure was raised, what orbax
        raises again about it while closing goes to the error log, not to the caller."""
        reported = self._failed is not None
        try:
            with self._writing():
                self._mgr.close()
        except OSError:
            if not reported:
                raise

    @contextlib.contextmanager
    def _writing(self):
        """Turn the failure of a write that orbax reports into an OSError naming the file;
        anything else (a bug) propagates unchanged. A second report of a failure already
        raised is logged to the error log and not raised again."""
        _ORBAX_ERRORS.saving(self.error_log)
        try:
            yield
        except Exception as e:  # noqa: BLE001 - sorted below: OS write failures, or re-raised
            os_error = os_error_of(e, self.directory)
            if os_error is None:
                raise
            if self._failed is not None:
                _append(self.error_log, "".join(traceback.format_exception(e)))
                raise self._failed from None
            self._failed = os_error
            raise os_error from e


_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")
_FAILED_FILE = re.compile(r'(?:Failed writing|Error writing local file|local file):? "([^"]+)"')


def os_error_of(e: BaseException, default_path: str) -> Optional[OSError]:
    """The OSError behind an exception from orbax's save, or None if it is not one.

    orbax re-raises tensorstore's failures as ValueError('<STATUS>: Error writing ... Failed
    writing: "<file>": ... [os_error_code=28]'); the code is errno's. Python-level writes
    (directories, JSON) raise OSError themselves. Walks the __cause__/__context__ chain."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            return e
        text = str(e)
        code = _OS_ERROR_CODE.search(text)
        if code is not None:
            where = _FAILED_FILE.findall(text)
            return OSError(int(code.group(1)), os.strerror(int(code.group(1))),
                           where[-1] if where else default_path)
        e = e.__cause__ or e.__context__
    return None


def _append(path: str, text: str) -> None:
    """Append to a log file, best effort: the disk may be the full one."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
    except OSError:
        pass


class _OrbaxErrors(logging.Filter):
    """Keeps orbax's reports of a failed checkpoint write off the terminal.

    Installed once, by the first Checkpointer, for the rest of the process (the last reports
    arrive when the process exits):
      * on the "absl" logger (orbax logs through it) and the "asyncio" one: an ERROR record
        naming the directory of a Checkpointer goes to that Checkpointer's error log instead
        of the usual handlers; every other record passes unchanged;
      * sys.unraisablehook: when one write of a save fails, orbax closes the event loop its
        other writes run on; each complains as an "unraisable" exception when tensorstore
        completes it (RuntimeError 'Event loop is closed', often before the failure reaches
        the caller) and again when its coroutine is collected. Exactly those go to the error
        log of the Checkpointer that saved last; any other goes to the previous hook.
    """

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self._logs: dict[str, str] = {}  # Checkpointer directory -> its error log
        self._saving_log: Optional[str] = None  # the error log of the latest save
        self._previous_hook = None

    def watch(self, directory: str, error_log: str) -> None:
        with self._lock:
            if self._previous_hook is None:
                for name in ("absl", "asyncio"):
                    logging.getLogger(name).addFilter(self)
                self._previous_hook = sys.unraisablehook
                sys.unraisablehook = self._unraisable
            self._logs[directory] = error_log

    def saving(self, error_log: str) -> None:
        self._saving_log = error_log

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        try:
            message = record.getMessage()
            e = record.exc_info[1] if record.exc_info else None
            while e is not None and len(message) < 100_000:  # the exception names the file
                message += "\n" + str(e)
                e = e.__cause__ or e.__context__
        except Exception:  # noqa: BLE001 - a malformed record: leave it to the handlers
            return True
        with self._lock:
            logs = [p for d, p in self._logs.items() if d in message]
        if not logs:
            return True
        try:
            _append(logs[0], logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s %(pathname)s:%(lineno)d %(message)s"
            ).format(record))
        except Exception:  # noqa: BLE001 - e.g. at interpreter exit: drop it
            pass
        return False

    def _unraisable(self, u) -> None:
        code = getattr(u.object, "cr_code", None)
        orbax = ((code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename)
                 or (isinstance(u.exc_value, RuntimeError)
                     and str(u.exc_value) == "Event loop is closed"))
        if not orbax or self._saving_log is None:
            return self._previous_hook(u)
        try:
            text = "".join(traceback.format_exception(u.exc_type, u.exc_value,
                                                      u.exc_traceback))
            _append(self._saving_log, f"unraisable exception in {u.object!r}:\n{text}")
        except Exception:  # noqa: BLE001 - at interpreter exit formatting may fail: drop it
            pass


_ORBAX_ERRORS = _OrbaxErrors()


def key_to_json(key) -> list[int]:
    """A PRNG key (typed or raw uint32) as a JSON list of its uint32 words."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return [int(v) for v in np.asarray(key).ravel()]
