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
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import warnings
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from specgan_jax.errors import CheckpointError

log = logging.getLogger(__name__)


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
        """Block until a pending async save is on disk (finalised and renamed)."""
        self._mgr.wait_until_finished()

    def close(self) -> None:
        self._mgr.wait_until_finished()
        self._mgr.close()


def key_to_json(key) -> list[int]:
    """A PRNG key (typed or raw uint32) as a JSON list of its uint32 words."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return [int(v) for v in np.asarray(key).ravel()]
