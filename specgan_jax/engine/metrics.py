"""What one training step reports: the batch diversity that the training-health summary
compares (training/health.py), and the metrics dict of an iteration."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from specgan_jax.engine.spec import StepSpec
from specgan_jax.engine.state import Draws, TrainState


def batch_spread(x, y=None, n_classes: int = 0):
    """The batch's diversity: the per-element std across the batch x [B, ...], averaged over
    elements (what training/health.py compares between fakes and reals). With labels y [B],
    the spread within classes, sqrt(mean_i (x_i - mean of x_i's class)^2): a conditional
    generator that gives every sample of a class the same output has 0 here, while the
    spread of a mixed-class batch would still look healthy."""
    if y is None:
        return jnp.mean(jnp.std(x, axis=0))
    onehot = jax.nn.one_hot(y, n_classes, dtype=x.dtype)  # [B, K]
    flat = x.reshape(x.shape[0], -1)
    means = (onehot.T @ flat) / jnp.maximum(onehot.sum(0), 1)[:, None]  # [K, n]
    resid = flat - onehot @ means
    return jnp.mean(jnp.sqrt(jnp.mean(jnp.square(resid), axis=0)))


def step_metrics(spec: StepSpec, state: TrainState, draws: Draws, critic_metrics: dict, g_loss,
                 g_grads, g_stats: dict, rt) -> dict:
    """The metrics of one iteration: the last critic update's numbers (d_loss, d_grad_norm and
    the loss's parts), the generator update's, ADA's signal and the strength p the step ran
    with, and the spread of the fakes and of the last real batch."""
    dm = critic_metrics
    last = jax.tree_util.tree_map(lambda v: v[-1], dm)  # the last critic update's numbers
    finite = jnp.isfinite(g_loss) & jnp.all(jnp.isfinite(dm["d_loss"]))
    return {
        **last,
        "g_loss": g_loss,
        "g_grad_norm": optax.tree.norm(g_grads),
        "nonfinite": (~finite).astype(jnp.float32),  # 1.0: a loss was NaN/inf this step
        "ada_rt": rt,  # the critic's overfitting signal (engine.diffaug)
        "aug_p": state.aug_p,  # DiffAugment's strength during this step
        **jax.lax.stop_gradient(g_stats),
        "real_batch_std": batch_spread(
            draws.real[-1], None if draws.y_real is None else draws.y_real[-1],
            spec.model.n_classes),
    }
