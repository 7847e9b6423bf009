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
"""

from __future__ import annotations

import numpy as np

from specgan_jax.data.cache import Dataset
from specgan_jax.data.demo import LOG_EPS, _envelope, _line, _rayleigh

CALL_CLASSES = ["trill_slow", "trill_fast", "whistle_vibrato", "whistle_warble"]


def _background(rng, f, t, n_f, n_t):
    level = rng.uniform(-7.5, -5.5)
    tilt = rng.uniform(10.0, 60.0)  # bins over which the floor falls by e
    floor = np.exp(level + 2.0 * np.exp(-f / tilt))  # [F, 1]
    out = floor * _rayleigh(rng, (n_f, n_t))
    if rng.random() < 0.5:  # wind: a slowly fluctuating low-frequency rumble
        gust = 1 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t / n_t + rng.uniform(0, 6))
        out += (np.exp(rng.uniform(-4.5, -3.0)) * np.exp(-f / rng.uniform(4, 10)) * gust[None, :]
                * _rayleigh(rng, (n_f, n_t)))
    if rng.random() < 0.5:  # rain: sparse broadband clicks
        for ti in rng.integers(0, n_t, size=rng.integers(5, 25)):
            out[:, ti] += np.exp(rng.uniform(-5.0, -3.0)) * np.exp(-f[:, 0] / rng.uniform(30, 90))
    return out


def _trill(rng, f, t, n_f, n_t, period):
    top, depth = rng.uniform(45, 95), rng.uniform(12, 30)  # sweep from top down by depth bins
    syl = rng.uniform(0.35, 0.6) * period  # syllable length in frames
    on = rng.uniform(0, 40)
    end = on + rng.uniform(50, 110)
    out = np.zeros((n_f, n_t))
    for s in np.arange(on, min(end, n_t), period):
        phase = np.clip((t - s) / syl, 0, 1)  # [T]
        gate = ((t >= s) & (t < s + syl)).astype(float) * np.sin(np.pi * phase) ** 0.5
        fc = top - depth * phase
        out += gate[None, :] * (_line(f, fc, 1.0) + 0.3 * _line(f, 2 * fc, 1.4) * (2 * fc < n_f))
    return out


def _whistle(rng, f, t, n_f, n_t, rate, depth):
    f0 = rng.uniform(20, 55)
    fm = f0 * 2 ** (depth * np.sin(2 * np.pi * rate * t / n_t + rng.uniform(0, 2 * np.pi)))
    on = rng.uniform(-10, 40)
    env = _envelope(t, on, on + rng.uniform(60, 120), rng.uniform(3, 10))
    return env[None, :] * (_line(f, fm, 0.9) + 0.25 * _line(f, 2 * fm, 1.2))


def make_call(seed: int, cls: int, index: int, n_freq: int = 128, n_time: int = 128
              ) -> np.ndarray:
    """One spectrogram of class `cls` -> [n_freq, n_time] float32 log-magnitude."""
    rng = np.random.default_rng([seed, 1000 + cls, index])
    f = np.arange(n_freq, dtype=np.float64)[:, None]
    t = np.arange(n_time, dtype=np.float64)
    mag = _background(rng, f, t, n_freq, n_time)
    if cls == 0:
        call = _trill(rng, f, t, n_freq, n_time, rng.uniform(14, 20))
    elif cls == 1:
        call = _trill(rng, f, t, n_freq, n_time, rng.uniform(7, 10))
    elif cls == 2:
        call = _whistle(rng, f, t, n_freq, n_time, rng.uniform(1.5, 3), rng.uniform(0.08, 0.15))
    else:
        call = _whistle(rng, f, t, n_freq, n_time, rng.uniform(8, 12), rng.uniform(0.02, 0.05))
    snr_db = rng.uniform(0, 25)  # call peak over the background's typical level
    scale = np.exp(np.median(np.log(mag))) * 10 ** (snr_db / 20)
    return np.log(mag + scale * call + LOG_EPS).astype(np.float32)


def make_calls_dataset(n_per_class: int, seed: int = 0, n_freq: int = 128, n_time: int = 128
                       ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """-> (x [N, F, T] float32, labels [N] int32, class_names), ordered by class."""
    x = np.stack([make_call(seed, c, i, n_freq, n_time)
                  for c in range(len(CALL_CLASSES)) for i in range(n_per_class)])
    labels = np.repeat(np.arange(len(CALL_CLASSES), dtype=np.int32), n_per_class)
    return x, labels, list(CALL_CLASSES)


def calls_dataset(seed: int, n_per_class: int) -> Dataset:
    """The calls set as a Dataset (paths name the class and index)."""
    x, labels, names = make_calls_dataset(n_per_class, seed)
    return Dataset(x=x, labels=labels, class_names=names,
                   paths=[f"<calls {names[c]} #{i}>" for i, c in enumerate(labels)], skipped=[])
