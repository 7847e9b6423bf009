"""A procedural "animal calls" dataset: a harder, more realistic small-data benchmark than the
demo set, deterministic by seed.

Four classes in two pairs that differ only in fine temporal structure, as call types of one
species often do, over field-recording backgrounds:

  trill_slow / trill_fast:  a train of short downward frequency sweeps (syllables, fundamental
                            plus a weaker second harmonic); the syllable period is 14-20 frames
                            for trill_slow and 7-10 for trill_fast;
  whistle_vibrato / whistle_warble:  a tonal whistle (with a weak harmonic) whose pitch is
                            frequency-modulated, slowly and deeply (1.5-3 cycles per clip,
                            0.08-0.15 octaves) or fast and shallowly (8-12 cycles, 0.02-0.05).

Every sample varies in pitch, level (signal-to-noise ratio 0-25 dB), onset and duration, and
sits on a background with its own level and spectral tilt, Rayleigh speckle, and with
probability 1/2 each, low-frequency wind rumble and broadband rain clicks. Values are
log(magnitude + 1e-6), as the demo set (specgan_jax.data.demo).

Sizes and long files as the demo set: the numbers below are a 128 x 128 clip's, scaled by
n_freq / 128 (bins) and n_time / 128 (frames: syllable periods, onsets, durations); a file of
`length` > n_time frames has one call per n_time-frame stretch, each with its own SNR, over
one background (wind and rain along the whole file, rain drops as dense as in a clip).
"""

from __future__ import annotations

import numpy as np

from typing import Optional

from specgan_jax.data.cache import Dataset
from specgan_jax.data.demo import (LOG_EPS, _envelope, _line, _rayleigh, check_size,
                                   clip_starts, scale, width)

CALL_CLASSES = ["trill_slow", "trill_fast", "whistle_vibrato", "whistle_warble"]


def _background(rng, f, t, n_f, n_t):
    """Over the whole file: t [L] = its frames from 0."""
    sf = scale(n_f)
    level = rng.uniform(-7.5, -5.5)
    tilt = sf * rng.uniform(10.0, 60.0)  # bins over which the floor falls by e
    floor = np.exp(level + 2.0 * np.exp(-f / tilt))  # [F, 1]
    out = floor * _rayleigh(rng, (n_f, t.size))
    if rng.random() < 0.5:  # wind: a slowly fluctuating low-frequency rumble
        gust = 1 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t / n_t + rng.uniform(0, 6))
        out += (np.exp(rng.uniform(-4.5, -3.0)) * np.exp(-f / (sf * rng.uniform(4, 10)))
                * gust[None, :] * _rayleigh(rng, (n_f, t.size)))
    if rng.random() < 0.5:  # rain: sparse broadband clicks, 5-24 per n_t frames
        clips = t.size / n_t
        for ti in rng.integers(0, t.size, size=rng.integers(round(5 * clips), round(25 * clips))):
            out[:, ti] += (np.exp(rng.uniform(-5.0, -3.0))
                           * np.exp(-f[:, 0] / (sf * rng.uniform(30, 90))))
    return out


def _trill(rng, f, t, n_f, n_t, period):
    """t [L]: the clip's own clock (as demo.py's sound types); period in frames, scaled."""
    sf, st = scale(n_f), scale(n_t)
    # sweep from top down by depth bins
    top, depth = sf * rng.uniform(45, 95), sf * rng.uniform(12, 30)
    syl = rng.uniform(0.35, 0.6) * period  # syllable length in frames
    on = st * rng.uniform(0, 40)
    end = on + st * rng.uniform(50, 110)
    out = np.zeros((n_f, t.size))
    for s in np.arange(on, min(end, n_t), period):
        phase = np.clip((t - s) / syl, 0, 1)  # [L]
        gate = ((t >= s) & (t < s + syl)).astype(float) * np.sin(np.pi * phase) ** 0.5
        fc = top - depth * phase
        out += gate[None, :] * (_line(f, fc, width(1.0, n_f))
                                + 0.3 * _line(f, 2 * fc, width(1.4, n_f)) * (2 * fc < n_f))
    return out


def _whistle(rng, f, t, n_f, n_t, rate, depth):
    sf, st = scale(n_f), scale(n_t)
    f0 = sf * rng.uniform(20, 55)
    fm = f0 * 2 ** (depth * np.sin(2 * np.pi * rate * t / n_t + rng.uniform(0, 2 * np.pi)))
    on = st * rng.uniform(-10, 40)
    env = _envelope(t, on, on + st * rng.uniform(60, 120), st * rng.uniform(3, 10))
    return env[None, :] * (_line(f, fm, width(0.9, n_f)) + 0.25 * _line(f, 2 * fm,
                                                                        width(1.2, n_f)))


def _call(rng, cls, f, t, n_f, n_t):
    """One clip's call of class `cls` (its class parameters drawn first)."""
    st = scale(n_t)
    if cls == 0:
        return _trill(rng, f, t, n_f, n_t, st * rng.uniform(14, 20))
    if cls == 1:
        return _trill(rng, f, t, n_f, n_t, st * rng.uniform(7, 10))
    if cls == 2:
        return _whistle(rng, f, t, n_f, n_t, rng.uniform(1.5, 3), rng.uniform(0.08, 0.15))
    return _whistle(rng, f, t, n_f, n_t, rng.uniform(8, 12), rng.uniform(0.02, 0.05))


def make_call(seed: int, cls: int, index: int, n_freq: int = 128, n_time: int = 128,
              length: Optional[int] = None) -> np.ndarray:
    """One spectrogram of class `cls` -> [n_freq, length] float32 log-magnitude (length:
    frames of the file, default n_time; more: one call per n_time frames)."""
    length = check_size(n_freq, n_time, length)
    rng = np.random.default_rng([seed, 1000 + cls, index])
    f = np.arange(n_freq, dtype=np.float64)[:, None]
    t = np.arange(length, dtype=np.float64)
    mag = _background(rng, f, t, n_freq, n_time)
    level = np.exp(np.median(np.log(mag)))  # the background's typical level
    out = mag
    for start in clip_starts(length, n_time):
        call = _call(rng, cls, f, t - start, n_freq, n_time)
        snr_db = rng.uniform(0, 25)  # call peak over the background's typical level
        out = out + level * 10 ** (snr_db / 20) * call
    return np.log(out + LOG_EPS).astype(np.float32)


def make_calls_dataset(n_per_class: int, seed: int = 0, n_freq: int = 128, n_time: int = 128,
                       length: Optional[int] = None
                       ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """-> (x [N, F, L] float32, labels [N] int32, class_names), ordered by class (L =
    length, default n_time)."""
    x = np.stack([make_call(seed, c, i, n_freq, n_time, length)
                  for c in range(len(CALL_CLASSES)) for i in range(n_per_class)])
    labels = np.repeat(np.arange(len(CALL_CLASSES), dtype=np.int32), n_per_class)
    return x, labels, list(CALL_CLASSES)


def calls_dataset(seed: int, n_per_class: int, n_freq: int = 128, n_time: int = 128
                  ) -> Dataset:
    """The calls set as a Dataset of n_freq x n_time spectrograms (paths name the class and
    index)."""
    x, labels, names = make_calls_dataset(n_per_class, seed, n_freq, n_time)
    return Dataset(x=x, labels=labels, class_names=names,
                   paths=[f"<calls {names[c]} #{i}>" for i, c in enumerate(labels)], skipped=[])
