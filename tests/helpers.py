"""Plain helpers shared by the tests (fixtures are in conftest.py; tests import from here)."""

import dataclasses
import os

import jax
import numpy as np

from specgan_jax.config import Config, ModelConfig, TrainConfig
from specgan_jax.data.moments import compute_moments
from specgan_jax.engine.sampling import run_keys
from specgan_jax.engine.step import create_train_state
from specgan_jax.run import run_dir as run_dir_lib
from specgan_jax.run.checkpoint import Checkpointer, key_to_json
from specgan_jax.run.run_dir import load_run_config


def write_spectrograms(folder, n: int, rng, offset: float = 0.0, name="{i}.csv") -> None:
    """n log-magnitude-like 128x128 CSVs (rows = frequency) in `folder`."""
    os.makedirs(folder, exist_ok=True)
    f = np.arange(128)[:, None]
    for i in range(n):
        x = -6.0 + offset + 0.03 * f + rng.normal(0, 0.5, (128, 128))
        np.savetxt(os.path.join(folder, name.format(i=i)), x, delimiter=",", fmt="%.6f")


def tiny_args(data, workdir, steps, csv_cache, *extra, preview_every=2):
    """scripts/train.py flags of a tiny run (dim 4, batch 4, 1 critic update): fast on CPU."""
    return ["--data", str(data), "--workdir", str(workdir), "--steps", str(steps),
            "--model.dim", "4", "--batch-size", "4", "--loss.n_critic", "1",
            "--train.steps_per_call", "2", "--train.log_every", "2",
            "--train.checkpoint_every", "2", "--train.preview_every", str(preview_every),
            "--train.n_preview", "4", "--data.cache_dir", str(csv_cache), "--no-progress",
            *extra]


def restore_state(workdir, sub="checkpoints", step=None):
    """A run's checkpoint (latest, or `step`) restored on one device -> checkpoint.Restored."""
    cfg = load_run_config(str(workdir))
    target = jax.eval_shape(lambda k: create_train_state(cfg.model, cfg.loss, cfg.optim, k),
                            jax.random.PRNGKey(0))
    dev = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=dev), target)
    ck = Checkpointer(os.path.join(workdir, sub), use_async=False)
    try:
        return ck.restore(target, step=step)
    finally:
        ck.close()


def write_conditional_run(workdir, class_names, x=None, *, dim: int = 4, seed: int = 0,
                          use_batchnorm: bool = False, state_fn=None, step: int = 0):
    """A class-conditional run directory made without training (fast: no step compiled):
    config.json (model.conditional, n_classes = len(class_names), dim `dim`),
    moments.npz of `x` (raw [N, 128, 128]; default: random log-magnitude-like data),
    labels.json, and checkpoint `step` of create_train_state(k_init of `seed`), passed through
    `state_fn(state) -> state` when given (e.g. to make BN statistics non-trivial).
    Returns the Config."""
    workdir = str(workdir)
    os.makedirs(workdir, exist_ok=True)
    config = Config(model=ModelConfig(dim=dim, conditional=True, n_classes=len(class_names),
                                      use_batchnorm=use_batchnorm),
                    train=dataclasses.replace(TrainConfig(), seed=seed, batch_size=4))
    run_dir_lib.check_or_write_config(config, workdir)
    if x is None:
        rng = np.random.default_rng(seed)
        x = -6.0 + 0.03 * np.arange(128)[:, None] + rng.normal(0, 0.5, (8, 128, 128))
    compute_moments(np.asarray(x, np.float32)).save(os.path.join(workdir, run_dir_lib.MOMENTS))
    run_dir_lib.write_labels(workdir, class_names)
    k_init, k_train, _ = run_keys(seed)
    state = create_train_state(config.model, config.loss, config.optim, k_init)
    if state_fn is not None:
        state = state_fn(state)
    ck = Checkpointer(os.path.join(workdir, run_dir_lib.CHECKPOINTS), use_async=False)
    try:
        ck.save(step, state, {"key": key_to_json(k_train)})
    finally:
        ck.close()
    return config
