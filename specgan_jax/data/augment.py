"""Per-sample augmentations of real spectrograms, in JAX, for use inside the jitted step.

All operate on one normalised spectrogram x [F, T] (F = frequency rows, T = time frames) with
its own PRNG key; `augment_batch` vmaps them over [B, F, T]. The normalised domain matters: a
fill value of 0 there is each bin's mean, whereas the seed's raw-domain 0 is a meaningful (and
for log magnitudes, arbitrary) level (docs/seed-bugs.md, item 8).

The transforms form one table, TRANSFORMS, that both `augment` (augment_batch: each
transform with its own probability) and DiffAugment (engine.diffaug: probabilities scaled by a
traced strength p) run; names and units: specgan_jax.config.augment_keys. Each transform is
skipped at trace time when its probability or strength is 0, so a disabled one costs nothing
and is exactly the identity.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from specgan_jax.config import AugmentConfig
from specgan_jax.config.augment_keys import axis_width


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


class Transform(NamedTuple):
    """One augmentation of the table: its name (its fields are `<name>_prob` and the strength
    fields of specgan_jax.config.augment_keys), whether a config's strength switches it on,
    and the draw + apply (key, x [F, T], cfg, ctx) -> x. ctx: per-call arrays, here
    gain_scale [F] (specgan_jax.engine.diffaug.gain_scale_from_std)."""

    name: str
    strong: Callable
    apply: Callable


def _stretch(k, x, cfg, ctx):
    rate = jax.random.uniform(k, (), jnp.float32, cfg.time_stretch_min, cfg.time_stretch_max)
    return stretch_time(x, rate)


def shift_frames(frac: float, t: int) -> int:
    """round(frac x t): the largest shift in frames (not clipped: a roll by more than the
    axis wraps around)."""
    return int(round(frac * t))


def _shift(k, x, cfg, ctx):
    s = shift_frames(cfg.time_shift_max, x.shape[1])
    return shift_time(x, jax.random.randint(k, (), -s, s + 1), cfg.time_shift_mode)


def _mask(axis: int) -> Callable:
    field = ("freq_mask_max", "time_mask_max")[axis]
    return lambda k, x, cfg, ctx: random_band_mask(
        k, x, axis_width(getattr(cfg, field), x.shape[axis]), axis)


def _noise(k, x, cfg, ctx):
    return x + cfg.noise_std * jax.random.normal(k, x.shape, x.dtype)


def _gain(k, x, cfg, ctx):
    g = jax.random.uniform(k, (), jnp.float32, -cfg.gain_max, cfg.gain_max)
    return x + g * ctx["gain_scale"][:, None]


# The transforms in the order they are applied (the two masks commute: each sets its band to
# 0). `strong(cfg, shape)`: whether the strength does anything (else the transform is skipped
# at trace time, exactly the identity).
TRANSFORMS = (
    Transform("time_stretch", lambda c, fs: not c.time_stretch_min == c.time_stretch_max == 1.0,
              _stretch),
    Transform("time_shift", lambda c, fs: shift_frames(c.time_shift_max, fs[1]) > 0, _shift),
    Transform("freq_mask", lambda c, fs: axis_width(c.freq_mask_max, fs[0]) > 0, _mask(0)),
    Transform("time_mask", lambda c, fs: axis_width(c.time_mask_max, fs[1]) > 0, _mask(1)),
    Transform("noise", lambda c, fs: c.noise_std > 0, _noise),
    Transform("gain", lambda c, fs: c.gain_max > 0, _gain),
)
# Which of 5 split keys each transform draws from, per section: as before the two sections
# shared this table, so every existing configuration draws the same numbers.
AUGMENT_KEYS = {"time_stretch": 0, "time_shift": 1, "freq_mask": 2, "time_mask": 3, "noise": 4}


def active(cfg, shape: tuple) -> list[Transform]:
    """The transforms of TRANSFORMS that `cfg` switches on for spectrograms of `shape` [F, T]
    (a probability > 0, a strength that does something; a field cfg lacks: probability 0)."""
    return [t for t in TRANSFORMS
            if getattr(cfg, t.name + "_prob", 0.0) > 0 and t.strong(cfg, shape)]


def run_transforms(x, key, cfg, key_slots: dict, p=None, ctx=None):
    """x [F, T] through cfg's active transforms, each with its probability: drawn as
    bernoulli(prob) (a probability of 1: always, no draw) when p is None; as
    uniform < p x prob when p (a traced strength) is given."""
    keys = jax.random.split(key, 5)
    for t in active(cfg, x.shape):
        prob = getattr(cfg, t.name + "_prob")
        k_apply, k_draw = jax.random.split(keys[key_slots[t.name]])
        y = t.apply(k_draw, x, cfg, ctx)
        if p is not None:
            x = jnp.where(jax.random.uniform(k_apply) < p * prob, y, x)
        elif prob >= 1.0:
            x = y
        else:
            x = jnp.where(jax.random.bernoulli(k_apply, prob), y, x)
    return x


def augment_one(x: jax.Array, key: jax.Array, cfg: AugmentConfig) -> jax.Array:
    """One normalised spectrogram x [F, T] -> augmented [F, T] in [-1, 1]."""
    x = run_transforms(x, key, cfg, AUGMENT_KEYS)
    # Real data and tanh outputs live in [-1, 1]; noise/interpolation must not leave it, or
    # the critic could tell real from fake by range alone.
    return jnp.clip(x, -1.0, 1.0)


def is_identity(cfg: AugmentConfig, shape: tuple) -> bool:
    """Whether `cfg` switches every augmentation off for spectrograms of `shape` [F, T]."""
    return not active(cfg, shape)


def augment_batch(x: jax.Array, key: jax.Array, cfg: AugmentConfig) -> jax.Array:
    """x [B, F, T] -> augmented [B, F, T], an independent draw per sample. The identity
    (x unchanged, not even clipped) when every augmentation is off."""
    if is_identity(cfg, x.shape[1:]):
        return x
    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(lambda xi, ki: augment_one(xi, ki, cfg))(x, keys)
