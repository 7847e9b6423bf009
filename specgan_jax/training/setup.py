"""Setting up a training run: devices and mesh, config.json, data and moments, the train state
(restored from the latest checkpoint), previews and periodic evaluation.

`setup_run` registers every resource it opens (checkpointer, metrics log, best-checkpoint
keeper) on the caller's contextlib.ExitStack as soon as it is open, so an error at any later
point -- a checkpoint that cannot be restored included -- still closes them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from typing import Callable, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from specgan_jax.config import Config
from specgan_jax.config.resolve import (DataSummary, Platform, check_options, check_platform,
                                        resolve)
from specgan_jax.audio import wav_out
from specgan_jax.data import demo as demo_data
from specgan_jax.data import sampler as sampler_lib
from specgan_jax.data import windows as windows_lib
from specgan_jax.data.cache import Dataset, load_dataset
from specgan_jax.data.csv import discover
from specgan_jax.data.moments import Moments, compute_moments, moments_for
from specgan_jax.data.normalize import denormalize
from specgan_jax.engine.compile import jit
from specgan_jax.engine.sampling import generate_batched, make_generate_fn, run_keys
from specgan_jax.engine.diffaug import gain_scale_from_std
from specgan_jax.engine.sampling import sample_latents
from specgan_jax.engine.step import TrainFns, create_train_state, make_train_fns
from specgan_jax.errors import CheckpointError, ConfigError
from specgan_jax.evaluation.periodic import PeriodicEval
from specgan_jax.run import preview as preview_lib
from specgan_jax.run import run_dir as run_dir_lib
from specgan_jax.run.checkpoint import Checkpointer, key_to_json
from specgan_jax.run.metrics_log import MetricsLog
from specgan_jax.training import distributed as dist_lib


class _NoMetricsLog:
    """MetricsLog's interface, writing nothing (processes other than 0 of a multi-host run)."""

    tb = None

    def truncate_after(self, step: int) -> None:
        pass

    def write(self, step: int, metrics: dict, elapsed: Optional[float] = None) -> None:
        pass

    def close(self) -> None:
        pass


@dataclasses.dataclass
class Run:
    """Everything the loop needs; resources are owned by the ExitStack given to setup_run."""

    config: Config
    workdir: str
    log: Callable[[str], None]
    progress: bool
    data: sampler_lib.DeviceDataset  # normalised, sharded along N over the mesh
    fns: TrainFns
    state: object  # TrainState, replicated over the mesh
    step: int  # generator steps done (restored from the latest checkpoint, else 0)
    k_train: jax.Array  # the key every step's draws are folded from
    ckpt: Checkpointer
    metrics_log: object  # MetricsLog, or _NoMetricsLog on processes other than 0
    save_preview: Callable[[object, int], None]  # (state, step) -> previews/fakes_<step>.png/.wav
    periodic: Optional[PeriodicEval]  # evaluation every train.eval_every steps, or None


def load_data(config: Config, workdir: str, demo: bool, log: Callable[[str], None],
              write: bool = True, progress: bool = True) -> tuple[Dataset, Moments]:
    """Dataset (raw units) and Moments (computed once, then read from moments.npz).
    write=False: write neither moments.npz nor labels.json (processes other than 0; every
    process computes the same moments from the same data). progress: the parsing and moments
    progress bars."""
    if demo:
        dataset = demo_data.demo_dataset(config.train.seed, n_freq=config.data.n_freq,
                                         n_time=config.data.n_time)
    else:
        dataset = load_dataset(config.data, progress=progress)
        for path, reason in dataset.skipped:
            log(f"skipped {path}: {reason}")
    n = dataset.x.shape[0]
    # the reader gives data.n_freq x data.n_time examples, the shape the model follows
    # (resolve); check_options has checked the model can make it
    if n < config.train.batch_size:
        log(f"note: {n} spectrograms < batch size {config.train.batch_size}; batches repeat "
            "examples")
    mpath = os.path.join(workdir, run_dir_lib.MOMENTS)
    if os.path.exists(mpath):
        moments = Moments.load(mpath)
    else:
        moments = (compute_moments(dataset.x) if demo
                   else moments_for(dataset, config.data, progress=progress))
        if write:
            moments.save(mpath)
    if write and (len(dataset.class_names) > 1 or demo):
        run_dir_lib.write_labels(workdir, dataset.class_names)
    return dataset, moments


def data_summary(config: Config, demo: bool) -> DataSummary:
    """The data's class names and files per class, without parsing a CSV (the demo's from its
    constants): what resolving a conditional config needs, cheap enough for --dry-run."""
    if demo:
        return DataSummary(tuple(demo_data.CLASS_NAMES),
                           (demo_data.DEMO_N_PER_CLASS,) * len(demo_data.CLASS_NAMES))
    _, labels, class_names = discover(config.data)
    return DataSummary.from_labels(class_names, labels)


def saved_config(workdir: str) -> Optional[Config]:
    """The run directory's config.json (a resume), or None for a new run."""
    if os.path.exists(os.path.join(workdir, run_dir_lib.CONFIG)):
        return run_dir_lib.load_run_config(workdir)
    return None


def fake_class_probs(config: Config, labels: np.ndarray, heldout: np.ndarray,
                     weights: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """The distribution the generator update's classes are drawn from: the class frequencies
    of the examples trained on (all but `heldout`; weights: each example's share, e.g. a long
    file's window count), as the real batches', or None (uniform, as the class-balanced real
    batches of loss.fake_classes 'uniform'; and for unconditional models)."""
    if not config.model.conditional or config.loss.fake_classes == "uniform":
        return None
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, np.float64)
    keep = np.ones(len(labels), bool)
    keep[np.asarray(heldout, np.int64)] = False
    counts = np.bincount(np.asarray(labels)[keep], weights=w[keep],
                         minlength=config.model.n_classes)
    return counts / counts.sum()


def heldout_indices(n: int, config: Config, labels: Optional[np.ndarray] = None
                    ) -> np.ndarray:
    """The examples (files) held out of training for ADA's heldout signal (none unless it is
    on): a random fraction diffaug.ada_heldout, drawn from train.seed so a resumed run holds
    out the same ones. With `labels`, a class's last training example is never held out (a
    4-file class must not vanish from training); the draw is otherwise unchanged."""
    k = config.diffaug.n_heldout(n)
    if k >= n:
        raise ConfigError(f"ADA's heldout signal holds out {k} of {n} spectrograms, leaving none "
                          "to train on; use more data or --diffaug.ada_signal midpoint")
    rng = np.random.default_rng([config.train.seed, 0xADA])
    perm = rng.permutation(n)
    if labels is None:
        return np.sort(perm[:k])
    labels = np.asarray(labels)
    left = np.bincount(labels, minlength=int(labels.max()) + 1)
    held = []
    for i in perm:  # the permutation's order; skip an example that is its class's last
        if len(held) == k:
            break
        if left[labels[i]] > 1:
            held.append(i)
            left[labels[i]] -= 1
    return np.sort(np.asarray(held, np.int64))


def _restore(ckpt: Checkpointer, state, k_train, log, aug_p: float
             ) -> tuple[object, Optional[int]]:
    """The latest checkpoint's state and step, checked against this run; (state, None) if
    there is none."""
    if ckpt.latest_step() is None:
        return state, None
    restored = run_dir_lib.restore_train_state(ckpt, state, aug_p=aug_p)
    state, step = restored.state, int(restored.step)
    where = os.path.join(ckpt.directory, str(step))
    if int(state.step) != step:
        raise CheckpointError(f"checkpoint {where} holds state.step={int(state.step)}")
    # "key" is absent from checkpoints made by scripts/import_torch.py before it wrote one.
    if "key" in restored.meta and restored.meta["key"] != key_to_json(k_train):
        raise CheckpointError(f"checkpoint {where} was trained with another PRNG key than "
                              "train.seed gives; it belongs to another run")
    log(f"resumed from checkpoint at step {step}")
    return state, step


WAV_PREVIEW_N = 8  # samples per preview WAV: 8 x 1 s slices plus gaps is a short listen


def _audio_params(config: Config, dataset: Dataset, log) -> Optional[dict]:
    """The data's audio parameters (DATA/audio_params.json, written by
    specgan-audio-to-spectrograms) when the previews can be heard, else None: data without
    the file is the usual case and says nothing; a file whose spectrograms do not match the
    data (e.g. cropped since) gets a one-line note. An unreadable file is a SpecganError."""
    path = wav_out.data_params_path(config.data.path)
    if path is None:
        return None
    params = wav_out.read_params(path)
    bad = wav_out.rows_mismatch(int(dataset.x.shape[1]), params)
    if bad:
        log(f"previews: no WAV ({path}: {bad})")
        return None
    return params


def _preview_fn(config: Config, workdir: str, dataset: Dataset, moments: Moments, k_preview,
                gen_fn, is_main: bool, log) -> Callable:
    """Writes previews/reals.png (and reals.wav for audio data) once and returns
    save_preview(state, step). Every process runs G (a computation on the global mesh);
    process 0 alone writes the files."""
    tc = config.train
    # Fixed latents for every preview grid (the same picture positions across steps).
    z = sample_latents(k_preview, tc.n_preview, config.model.latent_dim, config.loss.latent_dist)
    idx = preview_lib.round_robin(dataset.labels, tc.n_preview)
    reals = np.asarray(dataset.x[idx])  # [n, F, T] raw units
    vmin, vmax = preview_lib.color_range(reals)
    folder = os.path.join(workdir, run_dir_lib.PREVIEWS)
    audio = _audio_params(config, dataset, log) if is_main else None
    if is_main and not os.path.exists(os.path.join(folder, "reals.png")):
        names = [dataset.class_names[int(c)] for c in np.asarray(dataset.labels)[idx]]
        preview_lib.save_grid(os.path.join(folder, "reals.png"), reals, title="real examples",
                              vmin=vmin, vmax=vmax,
                              labels=names if len(dataset.class_names) > 1 else None)
    if audio and not os.path.exists(os.path.join(folder, "reals.wav")):
        wav_out.write_strip(os.path.join(folder, "reals.wav"), reals[:WAV_PREVIEW_N], audio)

    def save_wav(fake, step: int) -> None:
        """fake [n, F, T] in the data's units, in listening order."""
        if audio:
            wav_out.write_strip(os.path.join(folder, preview_lib.fakes_name(step, "wav")),
                                fake[:WAV_PREVIEW_N], audio)

    if config.model.conditional:
        return _class_preview_fn(config, folder, dataset, moments, z, gen_fn, is_main, vmin, vmax,
                                 save_wav)

    def save_preview(state, step: int) -> None:
        fake = generate_batched(gen_fn, state.g_ema, state.g_batch_stats, z, len(z))
        if is_main:
            fake = np.asarray(denormalize(fake, moments))
            preview_lib.save_grid(os.path.join(folder, preview_lib.fakes_name(step)),
                                  fake, title=f"generated, step {step}", vmin=vmin, vmax=vmax)
            save_wav(fake, step)

    return save_preview


def _class_preview_fn(config: Config, folder: str, dataset: Dataset, moments: Moments, z,
                      gen_fn, is_main: bool, vmin: float, vmax: float, save_wav) -> Callable:
    """save_preview of a conditional model: one row per class, the same latents in every row
    (so a column differs only by class), that class's real examples beside them. The WAV goes
    column by column (latent 0 in every class, then latent 1, ...)."""
    k = config.model.n_classes
    per = max(2, len(z) // k)
    z_rows = np.tile(np.asarray(z)[np.arange(per) % len(z)], (k, 1))  # [k * per, latent]
    y = np.repeat(np.arange(k), per)
    labels = np.asarray(dataset.labels)
    reals = [np.asarray(dataset.x[np.flatnonzero(labels == c)[:per]]) for c in range(k)]

    def save_preview(state, step: int) -> None:
        fake = generate_batched(gen_fn, state.g_ema, state.g_batch_stats, z_rows, len(z_rows),
                                labels=y)
        if is_main:
            fake = np.asarray(denormalize(fake, moments)).reshape((k, per) + fake.shape[1:])
            preview_lib.save_class_grid(os.path.join(folder, preview_lib.fakes_name(step)),
                                        fake, reals, dataset.class_names,
                                        title=f"generated (left) and real (right) by class, "
                                              f"step {step}", vmin=vmin, vmax=vmax)
            save_wav(np.swapaxes(fake, 0, 1).reshape((-1,) + fake.shape[2:]), step)

    return save_preview


def setup_run(config: Config, workdir: str, stack: contextlib.ExitStack, *, demo: bool,
              log: Callable[[str], None], progress: bool) -> Run:
    """Prepare (or resume) the run in `workdir`; resources are closed by `stack`."""
    devices = jax.devices()  # every device of every process (after jax.distributed.initialize)
    platform = Platform(devices[0].platform, len(devices))
    check_options(config)  # before any data is read
    check_platform(config, platform)
    is_main = dist_lib.is_main_process()
    if not is_main:  # one process speaks and writes; the others compute alongside it
        log, progress = (lambda _: None), False
    os.makedirs(workdir, exist_ok=True)
    log(f"JAX devices: {len(devices)} x {devices[0].platform} ({devices[0].device_kind})"
        + (f" over {jax.process_count()} processes" if jax.process_count() > 1 else ""))
    mesh = Mesh(np.asarray(devices), ("data",))
    replicated = NamedSharding(mesh, P())

    dataset, moments = load_data(config, workdir, demo, log, write=is_main, progress=progress)
    config = resolve(config, DataSummary.from_labels(dataset.class_names, dataset.labels),
                     saved_config(workdir), platform)
    tc = config.train
    resumed_dir = run_dir_lib.check_or_write_config(config, workdir, write=is_main)
    for sub in (run_dir_lib.CHECKPOINTS, run_dir_lib.PREVIEWS):
        os.makedirs(os.path.join(workdir, sub), exist_ok=True)
    n = dataset.x.shape[0]
    if dataset.windowed:  # long files: random windows drawn inside the step
        n_files = len(dataset.lengths)
        heldout = heldout_indices(n_files, config, dataset.file_labels)
        host = sampler_lib.build_window_dataset(
            dataset.frames, dataset.lengths, dataset.file_labels, moments, config.data.n_time,
            len(dataset.class_names), config.data.storage_dtype, heldout=heldout)
        log("data: " + windows_lib.describe(dataset.lengths, config.data.n_freq,
                                            config.data.n_time, config.data.storage_dtype)
            + f", {len(dataset.class_names)} class(es)")
        probs = fake_class_probs(config, dataset.file_labels, heldout,
                                 weights=dataset.lengths - config.data.n_time + 1)
    else:
        n_files = n
        heldout = heldout_indices(n, config, dataset.labels)
        host = sampler_lib.build_dataset(dataset.x, dataset.labels, moments,
                                         config.data.storage_dtype, heldout=heldout)
        log(f"data: {n} spectrograms, {len(dataset.class_names)} class(es)"
            + (" (demo)" if demo else ""))
        probs = fake_class_probs(config, dataset.labels, heldout)
    data = sampler_lib.to_device(host, NamedSharding(mesh, P("data")))
    if config.loss.transitional:
        lc = config.loss
        log(f"conditioning: none until step {lc.cond_start}, faded in to full by step "
            f"{lc.cond_start + lc.cond_ramp} (--loss.cond_start/--loss.cond_ramp; 0 and 0: "
            "conditioned from the first step)")
    if len(heldout):
        log(f"ADA: {len(heldout)} of {n_files} files held out of training; the critic's "
            "overfitting signal compares its scores on them with those on the training ones")

    k_init, k_train, k_preview = run_keys(tc.seed)
    # Initialised by one jitted call straight onto every device (replicated), not op by op on
    # device 0 and then copied (and, across processes, all-gathered to check it is equal).
    aug_p = config.diffaug.strength
    state = jit(functools.partial(create_train_state, config.model, config.loss,
                                      config.optim, aug_p=aug_p),
                    out_shardings=replicated)(k_init)
    cond = config.model.conditional
    fns = make_train_fns(config.model, config.loss, config.optim, tc.batch_size,
                         sampler_lib.make_sampler(
                             config.augment, with_labels=cond, n_classes=config.model.n_classes,
                             class_balanced=cond and config.loss.fake_classes == "uniform"),
                         mesh=mesh,
                         ema_cfg=config.ema, diffaug_cfg=config.diffaug,
                         gain_scale=gain_scale_from_std(moments.std),
                         heldout_sampler=sampler_lib.make_heldout_sampler(config.augment,
                                                                          with_labels=cond),
                         class_probs=probs)
    ckpt = stack.enter_context(contextlib.closing(Checkpointer(
        os.path.join(workdir, run_dir_lib.CHECKPOINTS), keep=tc.keep_checkpoints,
        every_steps=tc.checkpoint_every, every_secs=tc.checkpoint_every_secs, use_async=False)))
    metrics_log = stack.enter_context(contextlib.closing(
        MetricsLog(workdir, tensorboard=tc.tensorboard) if is_main else _NoMetricsLog()))
    if is_main and tc.tensorboard and metrics_log.tb is None:
        log("TensorBoard: no writer importable (pip install tensorboard); metrics.jsonl only")
    state, step = _restore(ckpt, state, k_train, log, aug_p)
    if step is not None:
        metrics_log.truncate_after(step)
    elif resumed_dir:
        log("run directory exists but has no checkpoint yet: starting at step 0")
    step = step or 0

    gen_fn = make_generate_fn(config.model)
    save_preview = _preview_fn(config, workdir, dataset, moments, k_preview, gen_fn, is_main,
                               log)
    periodic = None
    if tc.eval_every and step < tc.steps:
        periodic = stack.enter_context(contextlib.closing(
            PeriodicEval(config, dataset, moments, workdir, gen_fn, step, log)))
    return Run(config=config, workdir=workdir, log=log, progress=progress, data=data, fns=fns,
               state=state, step=step, k_train=k_train, ckpt=ckpt, metrics_log=metrics_log,
               save_preview=save_preview, periodic=periodic)
