"""A procedural demo dataset of spectrogram-like images, deterministic by seed.

Four classes, each a different kind of sound as a magnitude spectrogram would show it
(row 0 = lowest frequency, columns = time frames), over a speckled noise floor that is louder
at low frequencies, then log(magnitude + 1e-6) -- the log-magnitude units of
train_specgan.py. Values run from about -9 (quiet floor) to about 1 (loud partials).

  harmonic:   a harmonic stack (partials at k * f0) whose f0 glides and wobbles, partials
              decaying with k, with a soft onset and release;
  chirp:      1-3 narrow sweeps rising or falling linearly or exponentially;
  click:      3-8 broadband transients with an exponential decay and a spectral tilt;
  noise_band: 1-2 band-limited noise bursts with smooth on/off ramps.

Each sample has its own generator seeded by (seed, class, index), so sample i is the same
whatever n_per_class is.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from specgan_jax import atomic
from specgan_jax.data.cache import Dataset

CLASS_NAMES = ["harmonic", "chirp", "click", "noise_band"]
DEMO_N_PER_CLASS = 64  # spectrograms per class in the demo run's training set
LOG_EPS = 1e-6  # log(|X| + 1e-6), train_specgan.py


def _envelope(t: np.ndarray, on: float, off: float, ramp: float) -> np.ndarray:
    """Smooth 0 -> 1 -> 0 gate over frames t [T]: linear-in-dB-ish raised-cosine ramps."""
    up = np.clip((t - on) / ramp, 0, 1)
    down = np.clip((off - t) / ramp, 0, 1)
    return (np.sin(0.5 * np.pi * np.minimum(up, down))) ** 2


def _line(f: np.ndarray, centre: np.ndarray, width: float) -> np.ndarray:
    """Gaussian spectral line: f [F, 1] bins, centre [T] -> [F, T]."""
    return np.exp(-0.5 * ((f - centre[None, :]) / width) ** 2)


def _rayleigh(rng: np.random.Generator, shape) -> np.ndarray:
    """|complex Gaussian| with E[|.|^2] = 1: the speckle of an STFT of noise."""
    return np.abs(rng.normal(size=shape) + 1j * rng.normal(size=shape)) / np.sqrt(2)


def _harmonic(rng, f, t, n_f, n_t):
    f0_start = rng.uniform(3.0, 10.0)
    glide = rng.uniform(-0.8, 0.8)  # octaves over the clip
    vib_depth, vib_rate = rng.uniform(0, 0.04), rng.uniform(2, 6)  # octaves, cycles per clip
    f0 = f0_start * 2 ** (glide * t / n_t + vib_depth * np.sin(2 * np.pi * vib_rate * t / n_t))
    amp = np.exp(rng.uniform(-1.5, 0.0))
    tilt = rng.uniform(0.6, 1.4)
    env = _envelope(t, rng.uniform(-10, 30), rng.uniform(90, 140), rng.uniform(3, 12))
    out = np.zeros((n_f, n_t))
    for k in range(1, 64):
        if k * f0.min() >= n_f:
            break
        out += amp * k ** -tilt * _line(f, k * f0, 0.7)
    return out * env[None, :]


def _chirp(rng, f, t, n_f, n_t):
    out = np.zeros((n_f, n_t))
    for _ in range(rng.integers(1, 4)):
        t0 = rng.uniform(0, n_t * 0.7)
        dur = rng.uniform(20, 80)
        f_a, f_b = rng.uniform(5, n_f - 5, size=2)
        s = np.clip((t - t0) / dur, 0, 1)
        fc = f_a * (f_b / f_a) ** s if rng.random() < 0.5 else f_a + (f_b - f_a) * s
        env = _envelope(t, t0, t0 + dur, 3.0)
        out += np.exp(rng.uniform(-1.5, 0.0)) * _line(f, fc, 1.2) * env[None, :]
    return out


def _click(rng, f, t, n_f, n_t):
    out = np.zeros((n_f, n_t))
    for _ in range(rng.integers(3, 9)):
        ti, tau = rng.uniform(0, n_t - 4), rng.uniform(0.3, 1.5)
        decay = np.where(t >= np.floor(ti), np.exp(-(t - np.floor(ti)) / tau), 0.0)  # [T]
        spec = np.exp(-f[:, 0] / rng.uniform(8, 50))  # [F] spectral tilt
        out += np.exp(rng.uniform(-2.0, 0.0)) * spec[:, None] * decay[None, :]
    return out


def _noise_band(rng, f, t, n_f, n_t):
    out = np.zeros((n_f, n_t))
    for _ in range(rng.integers(1, 3)):
        fc, bw = rng.uniform(10, n_f - 10), rng.uniform(3, 20)
        on = rng.uniform(-20, 60)
        env = _envelope(t, on, on + rng.uniform(30, 100), rng.uniform(4, 15))
        shape = np.exp(-0.5 * ((f[:, 0] - fc) / bw) ** 2)
        out += (np.exp(rng.uniform(-2.0, -0.5)) * shape[:, None] * env[None, :]
                * _rayleigh(rng, (n_f, n_t)))
    return out


_MAKERS = [_harmonic, _chirp, _click, _noise_band]


def make_spectrogram(seed: int, cls: int, index: int, n_freq: int = 128,
                     n_time: int = 128) -> np.ndarray:
    """One demo spectrogram of class `cls` -> [n_freq, n_time] float32, log-magnitude."""
    rng = np.random.default_rng([seed, cls, index])
    f = np.arange(n_freq, dtype=np.float64)[:, None]  # [F, 1], row 0 = lowest frequency
    t = np.arange(n_time, dtype=np.float64)  # [T]
    floor_db = rng.uniform(-7.5, -6.0) + 1.5 * np.exp(-f / 30.0)  # [F, 1] louder at low f
    mag = np.exp(floor_db) * _rayleigh(rng, (n_freq, n_time))  # [F, T]
    mag = mag + _MAKERS[cls](rng, f, t, n_freq, n_time)
    return np.log(mag + LOG_EPS).astype(np.float32)


def make_demo_dataset(n_per_class: int, seed: int = 0, n_freq: int = 128, n_time: int = 128
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """-> (x [N, F, T] float32 log-magnitudes, labels [N] int32, class_names), N =
    4 * n_per_class, ordered by class."""
    x = np.stack([make_spectrogram(seed, c, i, n_freq, n_time)
                  for c in range(len(CLASS_NAMES)) for i in range(n_per_class)])
    labels = np.repeat(np.arange(len(CLASS_NAMES), dtype=np.int32), n_per_class)
    return x, labels, list(CLASS_NAMES)


def write_csv_folders(out_dir: str, x: np.ndarray, labels: Sequence[int],
                      class_names: Sequence[str], fmt: str = "%.6g") -> list[str]:
    """Write x [N, F, T] as out_dir/<class>/<class>_00000.csv (rows = frequency, comma
    separated, no header: the input format), each file atomically. Returns the paths."""
    paths, counters = [], {}
    for xi, li in zip(x, labels):
        name = class_names[int(li)]
        folder = os.path.join(out_dir, name)
        os.makedirs(folder, exist_ok=True)
        k = counters.get(name, 0)
        counters[name] = k + 1
        path = os.path.join(folder, f"{name}_{k:05d}.csv")
        with atomic.atomic_open(path, "w") as fh:
            np.savetxt(fh, xi, delimiter=",", fmt=fmt)
        paths.append(path)
    return paths


def demo_dataset(seed: int, n_per_class: int = DEMO_N_PER_CLASS, n_freq: int = 128,
                 n_time: int = 128) -> Dataset:
    """The demo run's training set as a Dataset (paths name the class and index), of
    n_freq x n_time spectrograms (the run's data.n_freq x data.n_time)."""
    x, labels, class_names = make_demo_dataset(n_per_class, seed, n_freq, n_time)
    return Dataset(x=x, labels=labels, class_names=class_names,
                   paths=[f"<demo {class_names[c]} #{i}>" for i, c in enumerate(labels)],
                   skipped=[])
