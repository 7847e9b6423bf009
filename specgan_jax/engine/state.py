"""The training state and the random inputs of one iteration (pytrees), and the initial state."""

from __future__ import annotations

from typing import Any, Optional

import flax
import jax
import jax.numpy as jnp

from specgan_jax.config import LossConfig, ModelConfig, OptimConfig
from specgan_jax.engine import losses
from specgan_jax.engine.models import init_models


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: generator updates done
    g_params: Any
    g_batch_stats: Any  # {} without batch norm
    d_params: Any
    g_opt_state: Any
    d_opt_state: Any
    # Exponential moving average of g_params (engine.ema; equal to g_params when the EMA is
    # off). Sampled from by default; the parity suite compares g_params.
    g_ema: Any = None
    aug_p: Any = None  # float32 scalar: DiffAugment's strength p (adapted by ADA)
    ada_acc: Any = None  # float32 [2]: sum of r_t and number of critic updates since p moved


@flax.struct.dataclass
class Draws:
    """Every random input of one iteration."""

    real: jax.Array  # [n_critic, B, F, T, 1] real batches in normalised units, one per D update
    z_d: jax.Array  # [n_critic, B, latent] latents for the critic updates' fakes
    alpha: jax.Array  # [n_critic, B] GP interpolation coefficients, U[0, 1)
    label_u: jax.Array  # [n_critic, 2, B] U[0, 1) for dcgan label smoothing (unused otherwise)
    z_g: jax.Array  # [B, latent] latents for the generator update
    # PRNG key of the DiffAugment draws (n_critic critic updates + the G update); None when
    # DiffAugment is off (the parity suite's Draws have none).
    k_aug: Optional[jax.Array] = None
    # [B, F, T, 1] examples held out of training, for ADA's "heldout" signal; None otherwise.
    heldout: Optional[jax.Array] = None
    # Class labels (int32) of a conditional model, None for an unconditional one: the real
    # batches' [n_critic, B], the classes the critic updates' fakes are made for [n_critic, B],
    # the generator update's [B], and the held-out batch's [B].
    y_real: Optional[jax.Array] = None
    y_fake: Optional[jax.Array] = None
    y_g: Optional[jax.Array] = None
    y_heldout: Optional[jax.Array] = None


def create_train_state(model_cfg: ModelConfig, loss_cfg: LossConfig, optim_cfg: OptimConfig,
                       key: jax.Array, aug_p: float = 0.0) -> TrainState:
    """The initial state; aug_p: DiffAugment's starting strength (DiffAugConfig.strength)."""
    g_vars, d_vars = init_models(model_cfg, key)
    g_tx, d_tx = losses.make_optimizers(loss_cfg, optim_cfg)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_vars["params"],
        g_batch_stats=g_vars.get("batch_stats", {}),
        d_params=d_vars["params"],
        g_opt_state=g_tx.init(g_vars["params"]),
        d_opt_state=d_tx.init(d_vars["params"]),
        g_ema=jax.tree.map(jnp.copy, g_vars["params"]),
        aug_p=jnp.asarray(aug_p, jnp.float32),
        ada_acc=jnp.zeros((2,), jnp.float32),
    )


def upgrade_state(state: TrainState, aug_p: float = 0.0) -> TrainState:
    """A TrainState restored from a checkpoint written before the EMA and ADA fields existed:
    the EMA starts at the trained weights, p at its configured start."""
    return state.replace(g_ema=jax.tree.map(jnp.copy, state.g_params),
                         aug_p=jnp.asarray(aug_p, jnp.float32),
                         ada_acc=jnp.zeros((2,), jnp.float32))
