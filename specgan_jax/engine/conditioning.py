"""Transitional conditioning's schedule (LossConfig.cond_start, cond_ramp): the scale of the
class terms of G (its class code) and D (the projection) at each generator step; the models
take it as `cond_scale` (engine.models)."""

from __future__ import annotations

import jax.numpy as jnp

from specgan_jax.config import LossConfig


def cond_scale(loss_cfg: LossConfig, step):
    """Transitional conditioning's scale of the class terms at generator step `step` (the
    step being taken, 0-based): clip((step - cond_start) / cond_ramp, 0, 1), float32; a step
    from 0 to 1 at cond_start when cond_ramp is 0 (None reads as 0)."""
    t = jnp.asarray(step).astype(jnp.float32) - (loss_cfg.cond_start or 0)
    if not loss_cfg.cond_ramp:
        return (t >= 0).astype(jnp.float32)
    return jnp.clip(t / loss_cfg.cond_ramp, 0.0, 1.0)
