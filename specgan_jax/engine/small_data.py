"""Small-data remedies inside the jitted step: generator EMA, DiffAugment for spectrograms,
ADA's adaptive augmentation strength, and transitional conditioning's schedule (cond_scale,
LossConfig.cond_start). Pure functions of arrays; the step wires them in.

EMA (Karras et al. 2020, StyleGAN2-ADA training_loop.py):
    ema_nimg_t = min(1000 kimg, rampup * t * B)        (t = generator steps done before this one)
    beta_t     = 0.5 ** (B / max(ema_nimg_t, 1e-8))    (half-life: ema_nimg_t images)
    ema_{t+1}  = params_{t+1} + beta_t (ema_t - params_{t+1})
At t = 0 with a warm-up, beta = 0: the average starts at the first trained weights.

DiffAugment (Zhao et al. 2020): the critic only ever sees T(x) for real, fake and the gradient
penalty's interpolates (taken between T(real) and T(fake): the critic being constrained is the
one that sees augmented data), and G is trained through D(T(G(z))). T is differentiable, drawn
independently per example and per call. Values are not clipped back to [-1, 1]: real and fake
get the same transforms, so range reveals nothing, and a clip would cut G's gradient.

ADA (Karras et al. 2020): one probability p scales every transform's probability; every
`ada_interval` steps p moves by +-(B * interval) / (1000 ada_kimg) towards keeping an
overfitting signal r at its target. ADA's r_t = E[sign(D(real))] reads a sigmoid critic's
decision boundary, 0. A WGAN critic has none: its loss and gradient penalty are unchanged by
D + c, so sign(D(real)) is arbitrary. Two signals, both invariant to D + c and D * s (s > 0):

heldout (the default): a slice of the data is held out of training, and
    r = E_train[sign(D(x) - E_heldout D(x'))],
the critic's scores on the training examples against its mean score on examples it never saw
(one extra critic forward of a training and a held-out batch per step, with the critic of the
step's end, on un-augmented data). A critic that generalises scores the two alike, r ~ 0,
however well it tells real from fake and however large the data set; one that memorises its
training set scores those higher, r -> 1. For Gaussian scores with a gap Delta and spread
sigma, r = 2 Phi(Delta / sigma) - 1; the default target 0.3 is a gap of 0.39 sigma. This is
the validation-set gap ADA's paper uses to show overfitting (its Fig. 1, r_v), made online.

midpoint: the logits centred on the midpoint c of the batch's mean real and fake logits,
    r_t = E_real[sign(D(x) - (E D(real) + E D(fake)) / 2)],
~ 2 Phi(Delta / (2 sigma)) - 1 for a real/fake gap Delta: how far the critic separates reals
from fakes in units of its spread on the reals. It needs no held-out data, but a WGAN critic
separates them on large data sets too (measured: README, "Small data sets"), so it measures
the generator's deficit as much as overfitting. ADA's target 0.6.
(dcgan keeps ADA's boundary 0 for midpoint; lsgan uses 0.5, the midpoint of its targets.)
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from specgan_jax.config import DiffAugConfig, EMAConfig, LossConfig
from specgan_jax.data.augment import random_band_mask, shift_time, stretch_time


# -- EMA ----------------------------------------------------------------------------------------
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


# -- training health ----------------------------------------------------------------------------
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


# -- DiffAugment --------------------------------------------------------------------------------
def gain_scale_from_std(std: np.ndarray) -> np.ndarray:
    """[F] normalised-domain shift per unit gain draw: one constant of median(std_f) data units
    added to every bin moves normalised bin f by median(std) / (3 std_f) (normalize.py)."""
    std = np.asarray(std, np.float64)
    return (np.median(std) / (3.0 * std)).astype(np.float32)


def _augment_one(x, key, p, cfg: DiffAugConfig, gain_scale):
    """One normalised spectrogram x [F, T] -> T(x) [F, T]; p: the strength (traced scalar)."""
    f, t = x.shape
    keys = jax.random.split(key, 5)

    def maybe(k, prob, fn, x):
        k_apply, k_draw = jax.random.split(k)
        return jnp.where(jax.random.uniform(k_apply) < p * prob, fn(k_draw, x), x)

    if cfg.time_stretch > 0 and cfg.time_stretch_max > 0:
        m = cfg.time_stretch_max
        x = maybe(keys[0], cfg.time_stretch, lambda k, x: stretch_time(
            x, jax.random.uniform(k, (), jnp.float32, 1 - m, 1 + m)), x)
    smax = int(round(cfg.time_shift_max * t))
    if cfg.time_shift > 0 and smax > 0:
        x = maybe(keys[1], cfg.time_shift, lambda k, x: shift_time(
            x, jax.random.randint(k, (), -smax, smax + 1), cfg.shift_mode), x)
    for i, (prob, frac, axis, n) in enumerate(((cfg.time_mask, cfg.time_mask_max, 1, t),
                                               (cfg.freq_mask, cfg.freq_mask_max, 0, f))):
        wmax = int(round(frac * n))
        if prob > 0 and wmax > 0:
            x = maybe(keys[2 + i], prob,
                      lambda k, x, wmax=wmax, axis=axis: random_band_mask(k, x, wmax, axis), x)
    if cfg.gain > 0 and cfg.gain_max > 0:
        x = maybe(keys[4], cfg.gain, lambda k, x: x + jax.random.uniform(
            k, (), jnp.float32, -cfg.gain_max, cfg.gain_max) * gain_scale[:, None], x)
    return x


def diff_augment(x, key, p, cfg: DiffAugConfig, gain_scale: Optional[np.ndarray] = None):
    """x [B, F, T, 1] -> T(x), an independent draw per example, differentiable in x.
    The identity (x itself) when cfg is off. gain_scale [F]: see gain_scale_from_std (None:
    a flat 1/3, i.e. every bin's std equal to the median)."""
    if not cfg.enabled:
        return x
    f = x.shape[1]
    scale = jnp.full((f,), 1 / 3, jnp.float32) if gain_scale is None else jnp.asarray(
        gain_scale, jnp.float32)
    keys = jax.random.split(key, x.shape[0])
    out = jax.vmap(lambda xi, ki: _augment_one(xi, ki, p, cfg, scale))(x[..., 0], keys)
    return out[..., None].astype(x.dtype)


# -- ADA ----------------------------------------------------------------------------------------
def ada_signal(loss: str, d_real, d_fake):
    """r_t of one critic batch: E[sign(D(real) - c)], c as in the module docstring."""
    if loss in ("wgan-gp", "wgan"):
        c = (jnp.mean(d_real) + jnp.mean(d_fake)) / 2
    else:
        c = 0.5 if loss == "lsgan" else 0.0
    return jnp.mean(jnp.sign(d_real - c))


def ada_heldout_signal(d_train, d_heldout):
    """r of one step: E_train[sign(D(x_train) - mean D(x_heldout))] (module docstring)."""
    return jnp.mean(jnp.sign(d_train - jnp.mean(d_heldout)))


def ada_adjust(p, rt, cfg: DiffAugConfig, batch_size: int):
    """p after one adjustment from the interval's mean r_t: +-(B interval) / (1000 ada_kimg),
    clipped to [0, ada_max]; unchanged when r_t equals the target."""
    delta = batch_size * cfg.ada_interval / (cfg.ada_kimg * 1000)
    return jnp.clip(p + jnp.sign(rt - cfg.target) * delta, 0.0, cfg.ada_max)


def cond_scale(loss_cfg: LossConfig, step):
    """Transitional conditioning's scale of the class terms at generator step `step` (the
    step being taken, 0-based): clip((step - cond_start) / cond_ramp, 0, 1), float32; a step
    from 0 to 1 at cond_start when cond_ramp is 0 (None reads as 0)."""
    t = jnp.asarray(step).astype(jnp.float32) - (loss_cfg.cond_start or 0)
    if not loss_cfg.cond_ramp:
        return (t >= 0).astype(jnp.float32)
    return jnp.clip(t / loss_cfg.cond_ramp, 0.0, 1.0)
