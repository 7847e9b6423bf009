"""Training: `train_and_evaluate(config, workdir)` and the `specgan-train` CLI (`main`).

Run directory (predictable names, DESIGN §7.6):
    config.json     the resolved Config (what `--config` reads back)
    moments.npz     per-frequency moments; with config.json and a checkpoint, rebuilds G
    labels.json     class names by label index (when the data has classes)
    checkpoints/    orbax CheckpointManager steps (specgan_jax.checkpoint)
    previews/       reals.png once, fakes_NNNNNN.png every train.preview_every steps and at the end
    metrics.jsonl   one row every train.log_every steps (and "eval/*" rows every train.eval_every)
    checkpoints_best_<metric>/  the best checkpoint by train.eval_metric (when eval_every > 0)
    tensorboard/    event files, only when a TensorBoard writer is importable

Loop: one host call runs a chunk of train.steps_per_call generator steps (lax.scan inside
TrainFns.chunk); the metrics come back once per chunk. Chunks are cut so they end exactly on
log/preview/checkpoint steps. All randomness is folded from the step number, so a run resumed
from a checkpoint computes bitwise the same numbers as an uninterrupted one (on CPU).

Devices: data-parallel over every device of every process (`jax.devices()`): a Mesh with one
`data` axis, the state replicated, the dataset and each batch split along `data`
(train_step.make_train_fns(mesh=...)). train.batch_size is the global batch and must be a
multiple of the device count. Multi-host: `--distributed` runs jax.distributed.initialize()
first (specgan_jax.distributed); every process runs this same loop, process 0 alone writes
config.json, moments.npz, labels.json, previews and metrics, and all processes take part in
orbax's checkpoint saves (the run directory must be on storage every process sees).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import math
import os
import signal
import sys
import time
from typing import Callable, Optional

import numpy as np

from specgan_jax import atomic
from specgan_jax.cli import flags as cli
from specgan_jax.training import distributed as dist_lib
from specgan_jax.config import Config, LaunchConfig, TrainConfig

# The no-argument demo run: a small model that trains in minutes on a 2-core CPU. Only fields
# not given by --config/flags take these values. Departures from the SpecGAN defaults:
# upsample="nn" (transposed convs leave a checkerboard over the whole picture this early) and
# lr 5e-4 instead of 1e-4 (with 1e-4 and 150 steps the samples were still identical noise).
# Batch 8 for 400 steps rather than batch 16 for 200: the same ~3 min, and measured better with
# `scripts/evaluate.py RUN --real demo` (one run each, same code): FD 11.7 vs 43.9, NDB 8 vs 13,
# Inception-style score 2.28 vs 1.15, within-set NN distance 0.16 vs 0.05 (the batch-16 run had
# collapsed to near-identical samples); real-vs-real baselines: FD 0.05, NDB 0, IS 3.49, 0.28.
# Caveat: this early, one run says little: the batch-16 preset on the previous code revision
# (the same maths, other rounding) scored FD 2.7, FD moved 5.3 -> 10.5 -> 11.7 over steps
# 300/350/400 of one run, and this preset with conv_impl=hybrid (rounding only) scored FD 5.5.
DEMO_PRESET = {
    "model": {"dim": 8, "upsample": "nn"},
    "optim": {"g_lr": 5e-4, "d_lr": 5e-4},
    "train": {"steps": 400, "batch_size": 8, "steps_per_call": 10, "log_every": 20,
              "checkpoint_every": 100, "preview_every": 100, "n_preview": 16},
}
DEMO_N_PER_CLASS = 64  # demo spectrograms per class

ALIASES = {"data": "data.path", "steps": "train.steps", "seed": "train.seed",
           "batch-size": "train.batch_size"}
LAUNCH_ALIASES = {"distributed": "distributed.enabled"}
EXIT_SIGNAL_BASE = 128  # exit status after SIGINT/SIGTERM: 128 + signal number (Unix convention)


_print = functools.partial(print, flush=True)  # lines interleave correctly with tqdm's stderr


class NonFiniteError(RuntimeError):
    """A loss became NaN/inf; the message names the step and the loss."""


class RunDirError(ValueError):
    """The run directory holds a run with a different config (or is unusable)."""


@dataclasses.dataclass
class Outcome:
    """What train_and_evaluate did."""

    step: int  # generator steps done at the end
    state: object  # the final TrainState
    interrupted: Optional[int] = None  # the signal number if stopped by SIGINT/SIGTERM
    workdir: str = ""


# ----------------------------------------------------------------------------------------------
# Small file helpers


def _config_json(config: Config) -> str:
    return json.dumps(cli.config_to_dict(config), indent=2, sort_keys=True) + "\n"


def load_run_config(workdir: str) -> Config:
    """The Config saved in a run directory (cli.ConfigError naming the file if bad)."""
    path = os.path.join(workdir, "config.json")
    return cli.config_from_dict(Config, cli.load_json(path), source=path)


def _check_or_write_config(config: Config, workdir: str, write: bool = True) -> bool:
    """Write config.json for a new run; for an existing one require equal non-run-control
    fields. Returns True if the run directory already existed (a resume). write=False (the
    processes other than 0 of a multi-host run): check only, never write."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        if write:
            atomic.write_text(path, _config_json(config))
        return False
    saved = cli.config_to_dict(load_run_config(workdir))
    now = cli.config_to_dict(config)
    differences = cli.diff(saved, now, ignore={"train": TrainConfig.RUN_CONTROL})
    if differences:
        raise RunDirError(
            f"{workdir} holds a run with a different config; resuming needs the same options "
            f"(only {', '.join('train.' + f for f in TrainConfig.RUN_CONTROL)} may change).\n"
            "  saved config.json != this invocation:\n    " + "\n    ".join(differences)
            + f"\n  Use another --workdir, or pass --config {path} to continue it.")
    # Keep config.json the latest resolved config (run-control fields may have changed).
    if write:
        atomic.write_text(path, _config_json(config))
    return True


def default_run_name(config: Config, demo: bool) -> str:
    """runs/<name>: the data folder's name (or 'demo') and a hash of the options that define
    the run, so the same command finds (and resumes) the same run directory."""
    d = cli.config_to_dict(config)
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


# ----------------------------------------------------------------------------------------------
# Data


def _load_data(config: Config, workdir: str, demo: bool, log: Callable[[str], None],
               write: bool = True):
    """Dataset (raw units) and Moments (computed once, then read from moments.npz).
    write=False: write neither moments.npz nor labels.json (processes other than 0; every
    process computes the same moments from the same data)."""
    from specgan_jax.data import moments as moments_lib

    if demo:
        from specgan_jax.data import demo as demo_data

        from specgan_jax.data.csv import Dataset

        x, labels, class_names = demo_data.make_demo_dataset(DEMO_N_PER_CLASS, config.train.seed)
        dataset = Dataset(x=x, labels=labels, class_names=class_names,
                          paths=[f"<demo {class_names[c]} #{i}>" for i, c in enumerate(labels)],
                          skipped=[])
    else:
        from specgan_jax.data import csv as data_lib

        dataset = data_lib.load_dataset(config.data, progress=write)
        for path, reason in dataset.skipped:
            log(f"skipped {path}: {reason}")
    n, f_, t_ = dataset.x.shape
    if (f_, t_) != (128, 128):
        raise RunDirError(f"the SpecGAN generator makes 128x128 spectrograms; the data is "
                          f"{f_}x{t_} (frequency x time). Use --data.shape_policy crop_pad "
                          f"with --data.n_freq 128 --data.n_time 128.")
    if n < config.train.batch_size:
        log(f"note: {n} spectrograms < batch size {config.train.batch_size}; batches repeat "
            "examples")
    mpath = os.path.join(workdir, "moments.npz")
    if os.path.exists(mpath):
        moments = moments_lib.Moments.load(mpath)
    else:
        if demo:
            moments = moments_lib.compute_moments(dataset.x)
        else:
            moments = moments_lib.moments_for(dataset, config.data, progress=write)
        if write:
            moments.save(mpath)
    if write and (len(dataset.class_names) > 1 or demo):
        labels_path = os.path.join(workdir, "labels.json")
        atomic.write_text(labels_path, json.dumps(
            {"class_names": list(dataset.class_names)}, indent=2) + "\n")
    return dataset, moments


def _preview_indices(labels: np.ndarray, n: int) -> np.ndarray:
    """n example indices, round-robin over classes (deterministic), for reals.png."""
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    out, i = [], 0
    while len(out) < min(n, len(labels)):
        for idx in by_class:
            if i < len(idx) and len(out) < n:
                out.append(int(idx[i]))
        i += 1
    return np.asarray(out)


# ----------------------------------------------------------------------------------------------
# The loop


def _format_line(step: int, total: int, m: dict, rate: float) -> str:
    """Fixed-width log line (columns line up across the run)."""
    return (f"step {step:>8d}/{total:<8d} | d_loss {m['d_loss']:>10.4f} | g_loss "
            f"{m['g_loss']:>10.4f} | gp {m.get('gp', float('nan')):>9.4f} | W "
            f"{m.get('wasserstein', float('nan')):>9.4f} | {rate:>7.2f} steps/s")


def _first_nonfinite(metrics: dict, start_step: int) -> Optional[tuple[int, str, float]]:
    """(step, loss name, value) of the first non-finite loss in a chunk's metrics, or None."""
    names = [k for k in ("d_loss", "g_loss", "gp", "wasserstein") if k in metrics]
    n = len(next(iter(metrics.values())))
    for i in range(n):
        for k in names:
            v = float(metrics[k][i])
            if not math.isfinite(v):
                return start_step + i + 1, k, v
    return None


class _SignalFlag:
    """Catches SIGINT/SIGTERM: the loop saves at the end of the current chunk and stops.
    A second signal restores the default handler, so pressing Ctrl-C twice stops at once."""

    def __init__(self):
        self.signum: Optional[int] = None
        self._old = {}

    def __enter__(self):
        if threading_is_main():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum
        for s, old in self._old.items():
            signal.signal(s, old)

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        return False


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class _NoMetricsLog:
    """MetricsLog's interface, writing nothing (processes other than 0 of a multi-host run)."""

    tb = None

    def truncate_after(self, step: int) -> None:
        pass

    def write(self, step: int, metrics: dict, elapsed: Optional[float] = None) -> None:
        pass

    def close(self) -> None:
        pass


def train_and_evaluate(config: Config, workdir: str, *, demo: Optional[bool] = None,
                       log: Callable[[str], None] = _print, progress: bool = True,
                       step_hook: Optional[Callable] = None) -> Outcome:
    """Train (or resume) the run in `workdir` up to config.train.steps.

    demo: use the built-in synthetic dataset (default: when config.data has no source).
    step_hook: tests only — called as step_hook(state, metrics, step) -> (state, metrics) after
      every chunk (e.g. to inject a NaN).
    Raises NonFiniteError on a NaN/inf loss (nothing of that chunk is saved), RunDirError for
    a run directory with another config, data.DataError for bad data.
    """
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from tqdm.auto import tqdm

    from specgan_jax.run import checkpoint as ckpt_lib
    from specgan_jax.data import normalize as norm_lib
    from specgan_jax.run import preview as preview_lib
    from specgan_jax.data import sampler as sampler_lib
    from specgan_jax.engine import step as train_step
    from specgan_jax.run.metrics_log import MetricsLog

    tc = config.train
    if demo is None:
        demo = config.data.path is None and config.data.file_list is None
    # Every device of every process (after jax.distributed.initialize, jax.devices() is global).
    devices = jax.devices()
    if tc.batch_size % len(devices):
        raise cli.ConfigError(train_step.batch_divisibility_message(
            tc.batch_size, len(devices), what="train.batch_size (--batch-size)"))
    is_main = dist_lib.is_main_process()
    if not is_main:  # one process speaks and writes; the others compute alongside it
        log, progress = (lambda _: None), False
    os.makedirs(workdir, exist_ok=True)
    resumed_dir = _check_or_write_config(config, workdir, write=is_main)
    for sub in ("checkpoints", "previews"):
        os.makedirs(os.path.join(workdir, sub), exist_ok=True)

    log(f"JAX devices: {len(devices)} x {devices[0].platform} ({devices[0].device_kind})"
        + (f" over {jax.process_count()} processes" if jax.process_count() > 1 else ""))
    mesh = Mesh(np.asarray(devices), ("data",))
    replicated = NamedSharding(mesh, P())

    dataset, moments = _load_data(config, workdir, demo, log, write=is_main)
    # [N, F, T, 1] normalised, sharded along N over the mesh's 'data' axis.
    data = sampler_lib.to_device(
        sampler_lib.build_dataset(dataset.x, dataset.labels, moments, config.data.storage_dtype),
        NamedSharding(mesh, P("data")))
    sampler = sampler_lib.make_sampler(config.augment)
    log(f"data: {dataset.x.shape[0]} spectrograms, {len(dataset.class_names)} class(es)"
        + (" (demo)" if demo else ""))

    root = jax.random.PRNGKey(tc.seed)
    k_init, k_train, k_preview = jax.random.split(root, 3)
    # Initialised by one jitted call straight onto every device (replicated), not op by op on
    # device 0 and then copied (and, across processes, all-gathered to check it is equal).
    state = jax.jit(functools.partial(train_step.create_train_state, config.model, config.loss,
                                      config.optim), out_shardings=replicated)(k_init)
    fns = train_step.make_train_fns(config.model, config.loss, config.optim, tc.batch_size,
                                    sampler, mesh=mesh)

    ckpt = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"), keep=tc.keep_checkpoints,
                                 every_steps=tc.checkpoint_every,
                                 every_secs=tc.checkpoint_every_secs, use_async=False)
    metrics_log = MetricsLog(workdir, tensorboard=tc.tensorboard) if is_main else _NoMetricsLog()
    if is_main and tc.tensorboard and metrics_log.tb is None:
        log("TensorBoard: no writer importable (pip install tensorboard); metrics.jsonl only")
    step = 0
    if ckpt.latest_step() is not None:
        restored = ckpt.restore(state)
        state, step = restored.state, int(restored.step)
        if int(state.step) != step:
            raise ckpt_lib.CheckpointError(f"checkpoint {step} holds state.step={int(state.step)}")
        metrics_log.truncate_after(step)
        log(f"resumed from checkpoint at step {step}")
    elif resumed_dir:
        log("run directory exists but has no checkpoint yet: starting at step 0")

    # Fixed latents for every preview grid (the same picture positions across steps).
    z_preview = train_step.sample_latents(k_preview, tc.n_preview, config.model.latent_dim,
                                          config.loss.latent_dist)
    gen_fn = jax.jit(lambda p, bs, z: train_step.generate(config.model, p, bs, z))
    reals_idx = _preview_indices(np.asarray(dataset.labels), tc.n_preview)
    reals = np.asarray(dataset.x[reals_idx])  # [n, F, T] raw units
    vmin, vmax = preview_lib.color_range(reals)
    names = [dataset.class_names[int(c)] for c in np.asarray(dataset.labels)[reals_idx]]
    reals_png = os.path.join(workdir, "previews", "reals.png")
    if is_main and not os.path.exists(reals_png):
        preview_lib.save_grid(reals_png, reals, title="real examples", vmin=vmin, vmax=vmax,
                              labels=names if len(dataset.class_names) > 1 else None)

    def save_preview(st, at_step):
        # Every process runs G (a computation on the global mesh); process 0 writes the PNG.
        fake = gen_fn(st.g_params, st.g_batch_stats, z_preview)[..., 0]  # [n, F, T] in [-1, 1]
        if not is_main:
            return
        fake = norm_lib.denormalize(np.asarray(fake), moments)
        preview_lib.save_grid(os.path.join(workdir, "previews", preview_lib.fakes_name(at_step)),
                              fake, title=f"generated, step {at_step}", vmin=vmin, vmax=vmax)

    meta = {"key": ckpt_lib.key_to_json(k_train), "sampler_state": None,
            "config_sha1": hashlib.sha1(_config_json(config).encode()).hexdigest()}

    if step >= tc.steps:
        log(f"already trained to step {step} (train.steps={tc.steps}); nothing to do. "
            f"Pass --steps N (N > {step}) to train further.")
        metrics_log.close()
        ckpt.close()
        return Outcome(step=step, state=state, workdir=workdir)

    def next_boundary(s: int) -> int:
        """The next step at which something must happen (log, preview, checkpoint, end)."""
        cands = [tc.steps, s + tc.steps_per_call]
        for every in (tc.log_every, tc.preview_every, tc.checkpoint_every, tc.eval_every):
            if every:
                cands.append((s // every + 1) * every)
        return min(cands)

    use_scan = tc.loop == "scan" or (tc.loop == "auto" and jax.default_backend() != "cpu")

    def run_chunk(st, n: int):
        """n generator steps -> (state, metrics as numpy [n] arrays); one host sync."""
        if use_scan:
            st, m = fns.chunk(st, data, k_train, n)
            return st, jax.device_get(m)
        ms = []
        for _ in range(n):  # dispatched asynchronously; nothing waits until device_get
            st, m = fns.step(st, data, k_train)
            ms.append(m)
        ms = jax.device_get(ms)
        return st, {k: np.stack([m[k] for m in ms]) for k in ms[0]}

    periodic = None  # sample-quality evaluation + best checkpoint (specgan_jax.evaluate)
    if tc.eval_every:
        from specgan_jax.evaluation.evaluator import PeriodicEval

        try:
            periodic = PeriodicEval(config, dataset, moments, workdir, gen_fn, step, log)
        except BaseException:
            metrics_log.close()
            ckpt.close()
            raise

    t_start = time.monotonic()
    rate_from = (step, t_start)  # (step, time) the steps/s of the next log line counts from
    interrupted = None
    bar = tqdm(total=tc.steps, initial=step, unit="step", dynamic_ncols=True,
               disable=not progress, smoothing=0.1)
    try:
        with _SignalFlag() as flag:
            while step < tc.steps:
                n = next_boundary(step) - step
                new_state, metrics = run_chunk(state, n)
                if step_hook is not None:
                    new_state, metrics = step_hook(new_state, metrics, step + n)
                bad = _first_nonfinite(metrics, step)
                if bad is not None:
                    b_step, b_name, b_val = bad
                    last = ckpt.latest_step()
                    raise NonFiniteError(
                        f"non-finite loss at step {b_step}: {b_name} = {b_val}. Training stopped; "
                        + (f"the last good checkpoint (step {last}) stays the latest."
                           if last is not None else "no checkpoint was saved before it.")
                        + " Lower the learning rates (--optim.g_lr/--optim.d_lr) or check the "
                          "data.")
                state, step = new_state, step + n
                last_m = {k: float(v[-1]) for k, v in metrics.items()}
                now = time.monotonic()
                # Since the last log line: excludes the first chunk's compile once logging starts.
                rate = (step - rate_from[0]) / max(now - rate_from[1], 1e-9)
                bar.update(n)
                bar.set_postfix(d=f"{last_m['d_loss']:.3f}", g=f"{last_m['g_loss']:.3f}",
                                refresh=False)
                if step % tc.log_every == 0 or step == tc.steps:
                    metrics_log.write(step, last_m, elapsed=time.monotonic() - t_start)
                    line = _format_line(step, tc.steps, last_m, rate)
                    rate_from = (step, now)
                    if progress:
                        bar.write(line)  # above the bar, which keeps its place
                    else:
                        log(line)
                if step % tc.preview_every == 0 or step == tc.steps:
                    save_preview(state, step)
                # One decision for all processes (orbax's save and the stop are collective);
                # with one process agree_any returns its arguments.
                save_now, stop = dist_lib.agree_any(
                    ckpt.should_save(step) or step == tc.steps, flag.signum is not None)
                if save_now or stop:
                    ckpt.save(step, state, meta)
                if periodic is not None and step % tc.eval_every == 0:
                    metrics_log.write(step, periodic(state, step))
                    rate_from = (step, time.monotonic())  # steps/s without the evaluation
                if stop:
                    # A process that got no signal stops because another one did (e.g. a
                    # cluster preempting one host): it reports SIGTERM, the usual such signal.
                    interrupted = flag.signum if flag.signum is not None else int(signal.SIGTERM)
                    break
    finally:
        bar.close()
        metrics_log.close()
        ckpt.close()
        if periodic is not None:
            periodic.close()
    if interrupted is not None:
        log(f"stopped by {signal.Signals(interrupted).name} at step {step}; checkpoint saved. "
            "Re-run the same command to resume.")
    else:
        log(f"done: {step} steps in {time.monotonic() - t_start:.1f} s. Run directory: {workdir}")
    return Outcome(step=step, state=state, interrupted=interrupted, workdir=workdir)


# ----------------------------------------------------------------------------------------------
# CLI

EPILOG = """\
examples:
  # Demo: the built-in synthetic dataset, a small model, a few minutes on a laptop CPU.
  python scripts/train.py

  # Your data (a folder of 128x128 CSVs, or of class subfolders), SpecGAN defaults:
  python scripts/train.py --data data/spectrograms --workdir runs/mydata

  # Re-running the same command resumes from the latest checkpoint; train further:
  python scripts/train.py --data data/spectrograms --workdir runs/mydata --steps 300000

  # Options: every config field is a flag; or put them in a JSON file (same layout as a
  # run's config.json) and override single fields on the command line.
  python scripts/train.py --data data/spectrograms --loss.loss dcgan --model.use_batchnorm
  python scripts/train.py --config runs/mydata/config.json --train.batch_size 32 --dry-run

  # Linear-magnitude CSVs (log-transform before normalising), rows = time:
  python scripts/train.py --data data/lin --data.log_transform --data.orientation time_rows

  # All devices are used, data-parallel (train.batch_size is the global batch, a
  # multiple of the device count). Several hosts: the same command on each, e.g. 2 hosts:
  python scripts/train.py --data /shared/spectrograms --workdir /shared/runs/mydata \\
      --distributed --distributed.coordinator_address host0:1234 \\
      --distributed.num_processes 2 --distributed.process_id 0     # 1 on the other host
  # (or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID; on Slurm, Open MPI
  # or Cloud TPU `--distributed` alone: JAX detects the rest)

Ctrl-C (or SIGTERM) saves a checkpoint and exits with status 128 + the signal number
(130 for Ctrl-C, 143 for SIGTERM); the same command resumes.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="specgan-train", description="Train SpecGAN (JAX) on CSV spectrograms.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default=None,
                   help="run directory (created; an existing one is resumed). "
                        "Default: runs/<data name>-<config hash>")
    p.add_argument("--config", default=None, metavar="FILE.json",
                   help="JSON config (sections model/loss/optim/data/augment/train); "
                        "flags override it")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config and the run directory, then exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    cli.add_config_flags(p, Config, ALIASES)
    cli.add_config_flags(p, LaunchConfig, LAUNCH_ALIASES)
    return p


def resolve_config(args: argparse.Namespace) -> tuple[Config, bool]:
    """The Config from defaults < demo preset < --config file < flags, and whether it is the
    demo run (no data source anywhere)."""
    file_over = cli.load_json(args.config) if args.config else {}
    if not isinstance(file_over, dict):
        raise cli.ConfigError(f"{args.config}: expected a JSON object")
    flag_over = cli.overrides_from_args(args, Config)
    given = cli.merge(file_over, flag_over)
    demo = not (given.get("data", {}).get("path") or given.get("data", {}).get("file_list"))
    # Validate the file alone first so its errors name it.
    if args.config:
        cli.config_from_dict(Config, file_over, source=args.config)
    base = DEMO_PRESET if demo else {}
    return cli.config_from_dict(Config, cli.merge(base, given), source="options"), demo


def resolve_launch(args: argparse.Namespace) -> LaunchConfig:
    """The launch options (--distributed.*): flags only, never from or into config.json."""
    return cli.config_from_dict(LaunchConfig, cli.overrides_from_args(args, LaunchConfig),
                                source="options")


def main(argv: Optional[list[str]] = None) -> int:
    """CLI entry point; returns/exits with 0 on success, 1 on a user/data error, 2 on bad
    options, 128 + signum when stopped by SIGINT/SIGTERM."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from specgan_jax.data.csv import DataError
    from specgan_jax.run.checkpoint import CheckpointError
    from specgan_jax.evaluation.evaluator import EvaluateError

    try:
        config, demo = resolve_config(args)
        launch = resolve_launch(args)
    except cli.ConfigError as e:
        parser.error(str(e))
    workdir = args.workdir or os.path.join("runs", default_run_name(config, demo))
    say = _print
    if not args.dry_run:
        try:  # before any other JAX call
            dist_lib.initialize(launch.distributed)
        except dist_lib.DistributedError as e:
            print(f"error: {e}", file=sys.stderr)
            return cli.finish(1, argv)
        if launch.distributed.enabled and not dist_lib.is_main_process():
            say = lambda *a, **k: None  # noqa: E731 - process 0 speaks for the run
    if demo:
        say("Demo run on synthetic data (no --data given): the built-in procedural "
            f"spectrograms, a small model (dim {config.model.dim}, batch "
            f"{config.train.batch_size}, {config.train.steps} steps).")
    say(f"Run directory: {os.path.abspath(workdir)}")
    if args.dry_run:
        print(_config_json(config), end="")
        return 0
    try:
        outcome = train_and_evaluate(config, workdir, demo=demo, progress=not args.no_progress)
    except (cli.ConfigError, RunDirError, DataError, CheckpointError, NonFiniteError,
            EvaluateError) as e:
        print(f"error: {e}", file=sys.stderr)
        return cli.finish(1, argv)
    if outcome.interrupted is not None:
        return cli.finish(EXIT_SIGNAL_BASE + outcome.interrupted, argv)
    if demo:
        say(f"Look at {os.path.join(workdir, 'previews')} (reals.png vs fakes_*.png) and "
            f"generate CSVs with: python scripts/generate.py {workdir} --n 8 --out samples")
    return cli.finish(0, argv)



if __name__ == "__main__":
    main()
