"""The original SpecGAN's forward transform (chrisdonahue/wavegan, train_specgan.py).

16384 samples -> tf.signal.stft(x, 256, 128, pad_end=True): periodic Hann window, no centering,
frames = ceil(len / hop) with zeros padded at the end -> |X| -> log(|X| + 1e-6) -> the Nyquist
bin dropped, giving (128 frames, 128 bins). Works on NumPy or jax.numpy arrays (`xp`).
"""

from __future__ import annotations

import math

import numpy as np

SAMPLE_RATE = 16000
SLICE_LEN = 16384
NFFT = 256
HOP = 128
LOG_EPS = 1e-6


def periodic_hann(n: int, xp=np):
    """w[k] = 0.5 - 0.5 cos(2 pi k / n), k = 0..n-1 (tf.signal.hann_window(periodic=True))."""
    k = xp.arange(n, dtype=xp.float32)
    return 0.5 - 0.5 * xp.cos(2.0 * math.pi * k / n)


def num_frames(n_samples: int, hop: int = HOP) -> int:
    """Frames of tf.signal.stft with pad_end=True: ceil(n_samples / hop)."""
    return -(-n_samples // hop)


def frame(x, nfft: int = NFFT, hop: int = HOP, xp=np):
    """(..., n) -> (..., ceil(n / hop), nfft): frame t starts at t * hop; zeros past the end."""
    n = x.shape[-1]
    t = num_frames(n, hop)
    pad = (t - 1) * hop + nfft - n
    x = xp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
    idx = np.arange(t)[:, None] * hop + np.arange(nfft)[None, :]
    return x[..., idx]


def stft(x, nfft: int = NFFT, hop: int = HOP, xp=np):
    """Complex STFT, (..., frames, nfft // 2 + 1), Nyquist bin included."""
    return xp.fft.rfft(frame(x, nfft, hop, xp) * periodic_hann(nfft, xp), axis=-1)


def log_magnitude(x, nfft: int = NFFT, hop: int = HOP, eps: float = LOG_EPS, xp=np):
    """The original's features: log(|STFT| + eps) with the Nyquist bin dropped,
    (..., frames, nfft // 2)."""
    return xp.log(xp.abs(stft(x, nfft, hop, xp)) + eps)[..., :-1]
