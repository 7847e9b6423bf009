"""Per-sample augmentations of real spectrograms, in JAX, for use inside the jitted step.

All operate on one normalised spectrogram x [F, T] (F = frequency rows, T = time frames) with
its own PRNG key; `augment_batch` vmaps them over [B, F, T]. The normalised domain matters: a
fill value of 0 there is each bin's mean, whereas the seed's raw-domain 0 is a meaningful (and
for log magnitudes, arbitrary) level (docs/seed-bugs.md, item 8).

Each augmentation is skipped at trace time when its probability or strength is 0, so a
disabled one costs nothing and is exactly the identity.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from specgan_jax.config import AugmentConfig


def shift_time(x: jax.Array, shift: jax.Array, mode: str = "roll") -> jax.Array:
    """x [F, T] shifted by `shift` frames along time (positive = later).
    roll: wraps around (np.roll, the seed's temporal_shift); pad: frames shifted out are
    dropped and the gap is 0 (the per-bin mean)."""
    if mode == "roll":
        return jnp.roll(x, shift, axis=1)
    t = x.shape[1]
    src = jnp.arange(t) - shift  # [T] source frame of each output frame
    valid = (src >= 0) & (src < t)
    return jnp.where(valid[None, :], x[:, jnp.clip(src, 0, t - 1)], 0.0)


def mask_band(x: jax.Array, start: jax.Array, width: jax.Array, axis: int) -> jax.Array:
    """x [F, T] with indices [start, start + width) along `axis` (0: frequency, 1: time) set
    to 0 (SpecAugment, Park et al. 2019, in the normalised domain)."""
    idx = jnp.arange(x.shape[axis])
    band = (idx >= start) & (idx < start + width)
    band = band[:, None] if axis == 0 else band[None, :]
    return jnp.where(band, 0.0, x)


def random_band_mask(key: jax.Array, x: jax.Array, wmax: int, axis: int) -> jax.Array:
    """mask_band with width ~ U{0..wmax} at a start ~ U{0..n - width} along `axis`."""
    kw, ks = jax.random.split(key)
    width = jax.random.randint(kw, (), 0, wmax + 1)
    start = jax.random.randint(ks, (), 0, x.shape[axis] - width + 1)
    return mask_band(x, start, width, axis)


def stretch_time(x: jax.Array, rate: jax.Array) -> jax.Array:
    """x [F, T] resampled along time by `rate` (> 1 longer, < 1 shorter), centre-cropped or
    zero-padded back to T frames.

    This is jax.image.resize to width T*rate followed by a centre crop/pad, written as the one
    call jax.image.resize is built on (scale_and_translate), because a resize's output shape
    must be static and `rate` is drawn inside jit. Mapping: output frame j (centre j + 0.5)
    samples the input at (j + 0.5 - translation) / rate - 0.5 with translation = T (1 - rate) / 2,
    i.e. the centre of the stretched signal stays at the centre (tests check it against
    resize + crop for integer widths). Linear interpolation, antialiased when shrinking.
    """
    t = x.shape[1]
    scale = jnp.stack([jnp.float32(1.0), rate]).astype(jnp.float32)
    trans = jnp.stack([jnp.float32(0.0), t * (1.0 - rate) / 2.0]).astype(jnp.float32)
    return jax.image.scale_and_translate(x, x.shape, (0, 1), scale, trans, method="linear",
                                         antialias=True)


def augment_one(x: jax.Array, key: jax.Array, cfg: AugmentConfig) -> jax.Array:
    """One normalised spectrogram x [F, T] -> augmented [F, T] in [-1, 1]."""
    f, t = x.shape
    keys = jax.random.split(key, 5)

    def maybe(k, prob, fn, x):
        k_apply, k_draw = jax.random.split(k)
        if prob >= 1.0:
            return fn(k_draw, x)
        return jnp.where(jax.random.bernoulli(k_apply, prob), fn(k_draw, x), x)

    if cfg.stretch_prob > 0 and not cfg.stretch_min == cfg.stretch_max == 1.0:
        x = maybe(keys[0], cfg.stretch_prob, lambda k, x: stretch_time(
            x, jax.random.uniform(k, (), jnp.float32, cfg.stretch_min, cfg.stretch_max)), x)
    if cfg.shift_prob > 0 and cfg.shift_max > 0:
        x = maybe(keys[1], cfg.shift_prob, lambda k, x: shift_time(
            x, jax.random.randint(k, (), -cfg.shift_max, cfg.shift_max + 1), cfg.shift_mode), x)
    for i, (prob, width_max, axis, n) in enumerate((
            (cfg.freq_mask_prob, cfg.freq_mask_max, 0, f),
            (cfg.time_mask_prob, cfg.time_mask_max, 1, t))):
        if prob > 0 and width_max > 0:
            wmax = min(width_max, n)

            x = maybe(keys[2 + i], prob,
                      lambda k, x, wmax=wmax, axis=axis: random_band_mask(k, x, wmax, axis), x)
    if cfg.noise_prob > 0 and cfg.noise_std > 0:
        x = maybe(keys[4], cfg.noise_prob,
                  lambda k, x: x + cfg.noise_std * jax.random.normal(k, x.shape, x.dtype), x)
    # Real data and tanh outputs live in [-1, 1]; noise/interpolation must not leave it, or
    # the critic could tell real from fake by range alone.
    return jnp.clip(x, -1.0, 1.0)


def is_identity(cfg: AugmentConfig) -> bool:
    """Whether `cfg` switches every augmentation off."""
    return not ((cfg.stretch_prob > 0 and not cfg.stretch_min == cfg.stretch_max == 1.0)
                or (cfg.shift_prob > 0 and cfg.shift_max > 0)
                or (cfg.freq_mask_prob > 0 and cfg.freq_mask_max > 0)
                or (cfg.time_mask_prob > 0 and cfg.time_mask_max > 0)
                or (cfg.noise_prob > 0 and cfg.noise_std > 0))


def augment_batch(x: jax.Array, key: jax.Array, cfg: AugmentConfig) -> jax.Array:
    """x [B, F, T] -> augmented [B, F, T], an independent draw per sample. The identity
    (x unchanged, not even clipped) when every augmentation is off."""
    if is_identity(cfg):
        return x
    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(lambda xi, ki: augment_one(xi, ki, cfg))(x, keys)
