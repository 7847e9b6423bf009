"""A run directory: the names of its artefacts, its config.json, and its trained generator.

    config.json     the resolved Config (specgan_jax.config.resolve: no auto / None option
                    left), what `--config` reads back
    moments.npz     per-frequency moments; with config.json and a checkpoint, rebuilds G
    labels.json     class names by label index (when the data has classes)
    checkpoints/    orbax CheckpointManager steps (specgan_jax.run.checkpoint)
    previews/       reals.png once, fakes_NNNNNN.png every train.preview_every steps and at the end
                    (and reals.wav, fakes_NNNNNN.wav beside them when the data folder holds
                    audio_params.json: the grid's first samples through Griffin-Lim)
    metrics.jsonl   one row every train.log_every steps (and "eval/*" rows every train.eval_every)
    checkpoints_best_<metric>/  the best checkpoint by train.eval_metric (when eval_every > 0)
    tensorboard/    event files, only when a TensorBoard writer is importable
    stopped.json    why training stopped early (train.stop_after_no_improvement), if it did
    checkpoint_errors.log  orbax's own report of a checkpoint write the OS refused, if one was

docs/run-directory.md describes each file and what a resume requires of it.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
from typing import Optional

import jax
import numpy as np

from specgan_jax import atomic
from specgan_jax.config import Config, TrainConfig
from specgan_jax.config.resolve import resolve_saved
from specgan_jax.config_json import (config_from_dict, config_json_text, config_to_dict, diff,
                                     load_config_json)
from specgan_jax.data.moments import Moments
from specgan_jax.data.normalize import denormalize
from specgan_jax.engine.sampling import generate_batched, make_generate_fn
from specgan_jax.engine.step import create_train_state, upgrade_state
from specgan_jax.errors import RunDirError, RunWriteError
from specgan_jax.run.checkpoint import ERROR_LOG, Checkpointer, Restored

CONFIG = "config.json"
MOMENTS = "moments.npz"
LABELS = "labels.json"
CHECKPOINTS = "checkpoints"
PREVIEWS = "previews"
STOPPED = "stopped.json"  # why training stopped early (train.stop_after_no_improvement)


def best_checkpoints(metric: str) -> str:
    """The folder of the best checkpoint by `metric` (kept by periodic evaluation)."""
    return f"checkpoints_best_{metric}"


def is_run_config(path: str) -> bool:
    """Whether `path` is a run directory's config.json (a checkpoints folder beside it), i.e.
    a complete record written by train.py, not a hand-written partial config file."""
    folder = os.path.dirname(os.path.abspath(path))
    return (os.path.basename(path) == CONFIG
            and os.path.isdir(os.path.join(folder, CHECKPOINTS)))


def load_run_config(workdir: str) -> Config:
    """The Config saved in a run directory (ConfigError naming the file if bad)."""
    path = os.path.join(workdir, CONFIG)
    return config_from_dict(Config, load_config_json(path), source=path)


# Fields that may differ between a run directory's config.json and a resumed invocation: the
# run-control fields, and the convolution implementation (the platform's choice under "auto":
# the parameters and the numbers are the same either way), so a run resumes on other devices.
RESUME_MAY_CHANGE = {"train": TrainConfig.RUN_CONTROL, "model": ("conv_impl",)}


def check_or_write_config(config: Config, workdir: str, write: bool = True) -> bool:
    """Write config.json (the resolved `config`, specgan_jax.config.resolve) for a new run; for
    an existing one require equal fields but RESUME_MAY_CHANGE (an older config.json's auto /
    None options compared as they resolved), then rewrite it (run-control fields may have
    changed). Returns True if config.json existed (a resume).
    write=False (the processes other than 0 of a multi-host run): check only."""
    path = os.path.join(workdir, CONFIG)
    existed = os.path.exists(path)
    if existed:
        saved = config_to_dict(resolve_saved(load_run_config(workdir)))
        differences = diff(saved, config_to_dict(config), ignore=RESUME_MAY_CHANGE)
        if differences:
            may = [f"{sec}.{f}" for sec, names in RESUME_MAY_CHANGE.items() for f in names]
            raise RunDirError(
                f"{workdir} holds a run with a different config; resuming needs the same "
                f"options (only {', '.join(may)} may change).\n  saved config.json != this "
                "invocation:\n    " + "\n    ".join(differences)
                + f"\n  Use another --workdir, or pass --config {path} to continue it.")
    if write:
        atomic.write_text(path, config_json_text(config))
    return existed


def default_run_name(config: Config, demo: bool) -> str:
    """runs/<name>: the data folder's name (or 'demo') and a hash of the options that define
    the run, so the same command finds (and resumes) the same run directory.

    Only options that differ from their defaults enter the hash: a field added in a later
    version, at its default, leaves the names of existing runs unchanged."""
    d, defaults = config_to_dict(config), config_to_dict(Config())
    d = {sec: {k: v for k, v in fields.items() if v != defaults.get(sec, {}).get(k, object())}
         for sec, fields in d.items()}
    for f in TrainConfig.RUN_CONTROL:
        d["train"].pop(f, None)
    digest = hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]
    if demo:
        base = "demo"
    else:
        src = config.data.path or config.data.file_list or "data"
        base = os.path.basename(os.path.normpath(src)) or "data"
        base = os.path.splitext(base)[0] if config.data.file_list else base
    return f"{base}-{digest}"


def write_labels(workdir: str, class_names) -> None:
    atomic.write_text(os.path.join(workdir, LABELS),
                      json.dumps({"class_names": list(class_names)}, indent=2) + "\n")


def load_labels(workdir: str) -> list[str]:
    """labels.json's class names by label index; [] when the run has none."""
    path = os.path.join(workdir, LABELS)
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as fh:
            names = json.load(fh)["class_names"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunDirError(f"{path}: not a labels file with a class_names list ({e})") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RunDirError(f"{path}: class_names must be a list of strings")
    return names


def load_basics(run_dir: str) -> tuple[Config, Moments]:
    """config.json and moments.npz of an existing run directory (RunDirError if missing)."""
    if not os.path.isdir(run_dir):
        raise RunDirError(f"run directory {run_dir} does not exist")
    for name in (CONFIG, MOMENTS):
        if not os.path.exists(os.path.join(run_dir, name)):
            raise RunDirError(f"{run_dir} is not a run directory: {name} is missing "
                              "(scripts/train.py writes it)")
    return load_run_config(run_dir), Moments.load(os.path.join(run_dir, MOMENTS))


def checkpoint_steps(workdir: str, sub: str = CHECKPOINTS) -> list[int]:
    """The finalised checkpoint steps on disk, oldest first, read from the folder names (orbax
    renames `<step>.orbax-checkpoint-tmp-*` to `<step>` only once a save is complete)."""
    try:
        names = os.listdir(os.path.join(workdir, sub))
    except OSError:
        return []
    return sorted(int(n) for n in names if n.isdigit())


def write_stopped(workdir: str, step: int, reason: str, metric: str, best_step: int,
                  best_score: float) -> None:
    """stopped.json: the early stop's step and reason, and the best evaluation."""
    atomic.write_text(os.path.join(workdir, STOPPED), json.dumps(
        {"step": int(step), "reason": reason, "eval_metric": metric,
         "best_step": int(best_step), "best_score": float(best_score)}, indent=2) + "\n")


def write_failure(workdir: str, e: OSError) -> RunWriteError:
    """The user's error for an OSError raised while writing the run in `workdir`."""
    what = {errno.ENOSPC: "no space left on the device",
            errno.EDQUOT: "disk quota exceeded",
            errno.EFBIG: "a file exceeds the size limit for files (file too large)",
            errno.EROFS: "the file system is read-only",
            errno.EACCES: "permission denied", errno.EPERM: "operation not permitted"
            }.get(e.errno, e.strerror or type(e).__name__)
    where = f" ({e.filename})" if e.filename else ""
    steps = checkpoint_steps(workdir)
    last = (f"The last good checkpoint is step {steps[-1]} "
            f"({os.path.join(os.path.abspath(workdir), CHECKPOINTS, str(steps[-1]))})."
            if steps else "No checkpoint was saved yet.")
    report = os.path.join(os.path.abspath(workdir), ERROR_LOG)
    report = f" Details: {report}." if os.path.exists(report) else ""
    return RunWriteError(
        f"cannot write to the run directory {os.path.abspath(workdir)}: {what}{where}. {last} "
        "Free some space (or make the directory writable) and re-run the same command: it "
        f"resumes from the last good checkpoint.{report}")


def restore_train_state(ckpt: Checkpointer, target, step: Optional[int] = None,
                        aug_p: float = 0.0) -> Restored:
    """The TrainState of checkpoint `step` (None: the newest readable one) on `target`'s
    shardings. A checkpoint written before the generator EMA and ADA existed (no g_ema) is read
    with that older structure and upgraded: the EMA starts at the trained weights."""
    new_fields = ("g_ema", "aug_p", "ada_acc")
    legacy = {f.name: getattr(target, f.name) for f in dataclasses.fields(target)
              if f.name not in new_fields}  # orbax saved the TrainState as this dict
    restored = ckpt.restore(target, step=step, legacy=legacy)
    if isinstance(restored.state, dict):
        up = upgrade_state(type(target)(**restored.state), aug_p)
        restored.state = jax.tree.map(lambda x, t: jax.device_put(x, t.sharding), up, target)
    return restored


class LoadedRun:
    """A run directory's generator, ready to sample: config, moments, G variables, step.

    Samples come from the EMA of G's weights (engine.ema), the trained weights with
    raw=True; a run saved before the EMA existed has only the trained weights.

    A class-conditional run (model.conditional) samples G(z, y): `generate` needs a label per
    latent (`class_ids` turns class names into labels); an unconditional one takes none.
    `class_names` are labels.json's names by label index ([] without labels.json; for a
    conditional run without one, "0", "1", ... so that labels can still be named)."""

    def __init__(self, run_dir: str, step: Optional[int] = None,
                 checkpoint_dir: str = CHECKPOINTS, raw: bool = False):
        self.config, self.moments = load_basics(run_dir)
        ckdir = os.path.join(run_dir, checkpoint_dir)
        if not os.path.isdir(ckdir):
            raise RunDirError(f"no checkpoint in {run_dir} (no {checkpoint_dir}/ folder)")
        c = self.config
        self.conditional = bool(c.model.conditional)
        self.class_names = load_labels(run_dir)
        if self.conditional:
            if not self.class_names:
                self.class_names = [str(k) for k in range(c.model.n_classes)]
            if len(self.class_names) != c.model.n_classes:
                raise RunDirError(
                    f"{os.path.join(run_dir, LABELS)} names {len(self.class_names)} classes; "
                    f"the run's conditional model has model.n_classes={c.model.n_classes}")
        abstract = jax.eval_shape(lambda k: create_train_state(c.model, c.loss, c.optim, k),
                                  jax.random.PRNGKey(0))
        dev = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=dev),
                                abstract)
        ckpt = Checkpointer(ckdir, use_async=False)
        try:
            restored = restore_train_state(ckpt, abstract, step=step)
        finally:
            ckpt.close()
        self.step = restored.step
        self.state = restored.state
        self.raw = raw
        self.g_params = restored.state.g_params if raw else restored.state.g_ema
        self.g_batch_stats = restored.state.g_batch_stats
        self._gen = make_generate_fn(c.model)

    def class_ids(self, names) -> np.ndarray:
        """Class names (labels.json's) -> int32 labels of a conditional model; RunDirError for
        an unconditional model or an unknown name (the message lists the known ones)."""
        if not self.conditional:
            raise RunDirError(self.unconditional_message())
        known = {n: k for k, n in enumerate(self.class_names)}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise RunDirError(f"unknown class {', '.join(map(repr, unknown))}; this run's "
                              f"classes are: {', '.join(self.class_names)}")
        return np.asarray([known[n] for n in names], np.int32)

    def unconditional_message(self) -> str:
        classes = (f" (its data's classes {', '.join(self.class_names)} were not given to it)"
                   if len(self.class_names) > 1 else "")
        return ("this run's model is unconditional (model.conditional is off): it generates "
                f"without classes{classes}, so class labels cannot be given")

    def _labels(self, labels, n: int):
        """Check `labels` against the model: None for unconditional, int32 [n] otherwise."""
        if labels is None:
            if self.conditional:
                raise RunDirError(
                    "this run's model is class-conditional: give a class per sample (classes: "
                    f"{', '.join(self.class_names)})")
            return None
        if not self.conditional:
            raise RunDirError(self.unconditional_message())
        labels = np.asarray(labels)
        if labels.dtype.kind in "US":  # class names
            labels = self.class_ids(labels.tolist())
        labels = labels.astype(np.int32)
        if labels.shape != (n,):
            raise RunDirError(f"{labels.shape} class labels for {n} latents; give one per latent")
        bad = labels[(labels < 0) | (labels >= len(self.class_names))]
        if len(bad):
            raise RunDirError(f"class label {int(bad[0])} is out of range: this run has "
                              f"{len(self.class_names)} classes (0..{len(self.class_names) - 1})")
        return labels

    def generate_normalized(self, z, labels=None, batch_size: int = 64) -> np.ndarray:
        """z [N, latent] (and, for a conditional model, labels [N]: ints or class names) ->
        G's output [N, F, T] float32 in the normalised domain [-1, 1] (rows = frequency), as
        the model sees data."""
        if isinstance(labels, (int, np.integer)):  # an old positional batch_size
            raise TypeError("generate(z, labels=None, batch_size=64): pass batch_size by name")
        labels = self._labels(labels, len(z))
        return generate_batched(self._gen, self.g_params, self.g_batch_stats, z,
                                min(batch_size, len(z)), labels=labels)

    def generate(self, z, labels=None, batch_size: int = 64) -> np.ndarray:
        """z [N, latent] (and labels [N] for a conditional model, see generate_normalized) ->
        spectrograms [N, rows, cols] in the input's units and orientation (rows = frequency
        unless the run's data.orientation is 'time_rows'), the lowest frequency first whatever
        data.freq_order (the generate CLI writes 'high_first' data's files flipped back)."""
        x = denormalize(self.generate_normalized(z, labels, batch_size), self.moments)
        if self.config.data.orientation == "time_rows":
            x = np.swapaxes(x, 1, 2)  # back to the files' rows = time
        return x
