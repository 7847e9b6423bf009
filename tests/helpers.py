"""Plain helpers shared by the tests (fixtures are in conftest.py; tests import from here)."""

import os

import jax
import numpy as np

from specgan_jax.engine.step import create_train_state
from specgan_jax.run.checkpoint import Checkpointer
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
