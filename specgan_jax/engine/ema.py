"""The exponential moving average of the generator's weights, updated inside the jitted step;
sampled from by default.

EMA (Karras et al. 2020, StyleGAN2-ADA training_loop.py):
    ema_nimg_t = min(1000 kimg, rampup * t * B)        (t = generator steps done before this one)
    beta_t     = 0.5 ** (B / max(ema_nimg_t, 1e-8))    (half-life: ema_nimg_t images)
    ema_{t+1}  = params_{t+1} + beta_t (ema_t - params_{t+1})
At t = 0 with a warm-up, beta = 0: the average starts at the first trained weights.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from specgan_jax.config import EMAConfig


def ema_kimg(cfg: EMAConfig, batch_size: int) -> float:
    """The half-life in thousands of images: the config's, or StyleGAN2-ADA's auto B * 10 / 32."""
    return cfg.kimg if cfg.kimg is not None else batch_size * 10 / 32


def ema_beta(step, batch_size: int, cfg: EMAConfig):
    """The decay beta_t for the update after generator step `step` (steps done before it)."""
    kimg = ema_kimg(cfg, batch_size)
    if kimg == 0:
        return jnp.zeros((), jnp.float32)
    nimg = jnp.float32(kimg * 1000)
    if cfg.rampup > 0:
        nimg = jnp.minimum(nimg, jnp.asarray(step, jnp.float32) * batch_size * cfg.rampup)
    return jnp.power(jnp.float32(0.5), batch_size / jnp.maximum(nimg, 1e-8))


def ema_update(ema, params, beta):
    """params + beta (ema - params), leaf by leaf (torch's p.lerp(p_ema, beta))."""
    return jax.tree.map(lambda e, p: p + beta * (e - p), ema, params)
