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

Any size: the geometry above is that of a 128 x 128 clip and scales with the clip's n_freq
(F) and n_time (T): frequencies and bandwidths in bins by F / 128, times and durations in
frames by T / 128 (so a chirp's slope in bins per frame by (F / 128) / (T / 128)), and the
spectral lines' widths by F / 128 but never below their 128-row widths (a line narrower than
a bin would be sampled, not drawn). A 64 x 256 clip is then the same kind of sound at half the
frequency resolution and twice the time resolution, not a 128 x 128 clip cut or squashed.
At 128 x 128 every factor is 1.0 and the values are bitwise those from before sizes scaled.

Long files: `length` L > T frames hold ceil(L / T) clips' worth of sound, one T-frame clip's
events drawn for each T-frame stretch (the last one cut at L) over one noise floor, so a T-frame
window anywhere in the file looks like a T-wide example.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from specgan_jax import atomic
from specgan_jax.data.cache import Dataset

CLASS_NAMES = ["harmonic", "chirp", "click", "noise_band"]
DEMO_N_PER_CLASS = 64  # spectrograms per class in the demo run's training set
LOG_EPS = 1e-6  # log(|X| + 1e-6), train_specgan.py
BASE_SIZE = 128  # the clip size the sound types' numbers below are written for (both axes)


def scale(n: int) -> float:
    """n / 128: the factor by which bins (n = n_freq) or frames (n = n_time) of a 128 x 128
    clip's geometry grow; exactly 1.0 at 128, so the 128 x 128 values do not change."""
    return n / BASE_SIZE


def width(bins: float, n_f: int) -> float:
    """A spectral line's Gaussian width: `bins` at 128 rows, grown with n_f above it but kept
    at `bins` below (no narrower than written: under a bin it would alias on the grid)."""
    return bins * max(scale(n_f), 1.0)


def clip_starts(length: int, n_time: int) -> range:
    """First frame of each n_time-frame clip of a `length`-frame file (one clip: [0])."""
    return range(0, length, n_time)


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


# The sound types: (rng, f [F, 1] bins, t [L] frames of the clip's own clock (0 = its first
# frame; any range: a long file's later clips see negative t before them), n_f = F, n_t = T,
# the clip size the geometry is scaled to) -> [F, L] magnitudes. The numbers are those of a
# 128 x 128 clip, times sf = scale(F) (bins) or st = scale(T) (frames).


def _harmonic(rng, f, t, n_f, n_t):
    sf, st = scale(n_f), scale(n_t)
    f0_start = sf * rng.uniform(3.0, 10.0)
    glide = rng.uniform(-0.8, 0.8)  # octaves over the clip
    vib_depth, vib_rate = rng.uniform(0, 0.04), rng.uniform(2, 6)  # octaves, cycles per clip
    f0 = f0_start * 2 ** (glide * t / n_t + vib_depth * np.sin(2 * np.pi * vib_rate * t / n_t))
    amp = np.exp(rng.uniform(-1.5, 0.0))
    tilt = rng.uniform(0.6, 1.4)
    env = _envelope(t, st * rng.uniform(-10, 30), st * rng.uniform(90, 140),
                    st * rng.uniform(3, 12))
    f0_min = f0[(t >= 0) & (t < n_t)].min()  # over the clip (the glide runs on beyond it)
    out = np.zeros((n_f, t.size))
    for k in range(1, 64):
        if k * f0_min >= n_f:
            break
        out += amp * k ** -tilt * _line(f, k * f0, width(0.7, n_f))
    return out * env[None, :]


def _chirp(rng, f, t, n_f, n_t):
    sf, st = scale(n_f), scale(n_t)
    out = np.zeros((n_f, t.size))
    for _ in range(rng.integers(1, 4)):
        t0 = rng.uniform(0, n_t * 0.7)
        dur = st * rng.uniform(20, 80)
        f_a, f_b = rng.uniform(5 * sf, n_f - 5 * sf, size=2)
        s = np.clip((t - t0) / dur, 0, 1)
        fc = f_a * (f_b / f_a) ** s if rng.random() < 0.5 else f_a + (f_b - f_a) * s
        env = _envelope(t, t0, t0 + dur, 3.0 * st)
        out += np.exp(rng.uniform(-1.5, 0.0)) * _line(f, fc, width(1.2, n_f)) * env[None, :]
    return out


def _click(rng, f, t, n_f, n_t):
    sf, st = scale(n_f), scale(n_t)
    out = np.zeros((n_f, t.size))
    for _ in range(rng.integers(3, 9)):
        ti, tau = rng.uniform(0, n_t - 4 * st), st * rng.uniform(0.3, 1.5)
        # [L]; the max keeps exp finite before the click (a long file's t runs far below 0)
        lag = np.maximum(t - np.floor(ti), 0.0)
        decay = np.where(t >= np.floor(ti), np.exp(-lag / tau), 0.0)
        spec = np.exp(-f[:, 0] / (sf * rng.uniform(8, 50)))  # [F] spectral tilt
        out += np.exp(rng.uniform(-2.0, 0.0)) * spec[:, None] * decay[None, :]
    return out


def _noise_band(rng, f, t, n_f, n_t):
    sf, st = scale(n_f), scale(n_t)
    out = np.zeros((n_f, t.size))
    for _ in range(rng.integers(1, 3)):
        fc, bw = rng.uniform(10 * sf, n_f - 10 * sf), sf * rng.uniform(3, 20)
        on = st * rng.uniform(-20, 60)
        env = _envelope(t, on, on + st * rng.uniform(30, 100), st * rng.uniform(4, 15))
        shape = np.exp(-0.5 * ((f[:, 0] - fc) / bw) ** 2)
        out += (np.exp(rng.uniform(-2.0, -0.5)) * shape[:, None] * env[None, :]
                * _rayleigh(rng, (n_f, t.size)))
    return out


_MAKERS = [_harmonic, _chirp, _click, _noise_band]


def check_size(n_freq: int, n_time: int, length: Optional[int]) -> int:
    """The file's frames (length, or n_time when None); ValueError for a non-positive size or
    a file shorter than its clips."""
    length = n_time if length is None else length
    if n_freq < 1 or n_time < 1:
        raise ValueError(f"demo size {n_freq} x {n_time}: both must be positive")
    if length < n_time:
        raise ValueError(f"demo length {length} < n_time {n_time}: a file holds whole clips")
    return length


def make_spectrogram(seed: int, cls: int, index: int, n_freq: int = 128, n_time: int = 128,
                     length: Optional[int] = None) -> np.ndarray:
    """One demo spectrogram of class `cls` -> [n_freq, length] float32, log-magnitude, its
    sounds scaled to n_freq x n_time clips (length: frames of the file, default n_time; more
    gives a long file of several clips' sounds)."""
    length = check_size(n_freq, n_time, length)
    rng = np.random.default_rng([seed, cls, index])
    f = np.arange(n_freq, dtype=np.float64)[:, None]  # [F, 1], row 0 = lowest frequency
    t = np.arange(length, dtype=np.float64)  # [L]
    # [F, 1] louder at low f
    floor_db = rng.uniform(-7.5, -6.0) + 1.5 * np.exp(-f / (30.0 * scale(n_freq)))
    mag = np.exp(floor_db) * _rayleigh(rng, (n_freq, length))  # [F, L]
    for start in clip_starts(length, n_time):
        mag = mag + _MAKERS[cls](rng, f, t - start, n_freq, n_time)
    return np.log(mag + LOG_EPS).astype(np.float32)


def make_demo_dataset(n_per_class: int, seed: int = 0, n_freq: int = 128, n_time: int = 128,
                      length: Optional[int] = None
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """-> (x [N, F, L] float32 log-magnitudes, labels [N] int32, class_names), N =
    4 * n_per_class, ordered by class (L = length, default n_time; see make_spectrogram)."""
    x = np.stack([make_spectrogram(seed, c, i, n_freq, n_time, length)
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
