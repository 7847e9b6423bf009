"""A mel filterbank in NumPy, and its approximate inverse (docs/audio.md, "Mel").

The scale is Slaney's (Auditory Toolbox, M. Slaney, Interval Research Technical Report
1998-010; librosa.hz_to_mel with htk=False uses the same): linear below 1 kHz, logarithmic above,

    mel(f) = f / (200 / 3)                          for f < 1000 Hz
    mel(f) = 15 + ln(f / 1000) / (ln(6.4) / 27)     for f >= 1000 Hz

(15 mel at 1 kHz, 42 at 6.4 kHz). Chosen over HTK's 2595 log10(1 + f / 700) because its
linear part keeps the lowest bands wide enough for this project's default STFT: at 16 kHz and
nfft 256 (62.5 Hz per bin) 64 Slaney bands leave no filter without a bin, 64 HTK bands do.

Band m (0-based) of n is the triangle over the n + 2 points e_0 < ... < e_{n+1} equally spaced
in mel from mel(fmin) to mel(fmax), mapped back to Hz: it rises linearly in Hz from e_m to 1 at
e_{m+1} and falls to 0 at e_{m+2}, evaluated at the STFT bin frequencies k sr / nfft,
k = 0..nfft/2. No area normalisation: neighbouring triangles then sum to 1 between e_1 and e_n,
so a flat magnitude stays flat and its level is kept (log mel values are in the units of the
linear log magnitudes).
"""

from __future__ import annotations

import math

import numpy as np

SCALE = "slaney"
_F_SP = 200.0 / 3.0  # Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(f):
    f = np.asarray(f, np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f < _MIN_LOG_HZ, f / _F_SP, log_part)


def mel_to_hz(m):
    m = np.asarray(m, np.float64)
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(m < _MIN_LOG_MEL, m * _F_SP, log_part)


def band_edges(n_bands: int, fmin: float, fmax: float) -> np.ndarray:
    """The n_bands + 2 points e_0..e_{n+1} in Hz (band m spans e_m..e_{m+2}, peak e_{m+1})."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_bands + 2))


def filterbank(n_bands: int, sample_rate: int, nfft: int, fmin: float = 0.0,
               fmax: float | None = None) -> np.ndarray:
    """(n_bands, nfft // 2 + 1) float64 weights: mel = filterbank @ |X| (Nyquist bin included).

    ValueError (naming the cure) for bad limits, or if a band holds no bin (too many bands for
    the FFT size: the band would be a constant log(eps) row)."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if n_bands < 1:
        raise ValueError(f"mel bands {n_bands}: must be >= 1")
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
        raise ValueError(f"mel limits {fmin:g}..{fmax:g} Hz: need 0 <= fmin < fmax <= "
                         f"sample rate / 2 = {sample_rate / 2:g}")
    e = band_edges(n_bands, fmin, fmax)
    f = np.arange(nfft // 2 + 1) * (sample_rate / nfft)
    lo, c, hi = e[:-2, None], e[1:-1, None], e[2:, None]
    w = np.maximum(0.0, np.minimum((f - lo) / (c - lo), (hi - f) / (hi - c)))
    empty = np.flatnonzero(w.max(axis=1) == 0)
    if empty.size:
        raise ValueError(f"{n_bands} mel bands in {fmin:g}..{fmax:g} Hz at nfft {nfft}: band "
                         f"{int(empty[0])} ({e[empty[0]]:.1f}..{e[empty[0] + 2]:.1f} Hz) holds no "
                         f"FFT bin ({sample_rate / nfft:g} Hz apart); use fewer bands or a "
                         "larger nfft")
    return w


def log_mel(mag, fb: np.ndarray, eps: float):
    """|X| (..., frames, nfft // 2 + 1) -> log(fb @ |X| + eps), (..., frames, n_bands)."""
    return np.log(np.asarray(mag, np.float64) @ fb.T + eps)


def mel_to_linear(mel_mag, fb: np.ndarray) -> np.ndarray:
    """Mel magnitudes (..., frames, n_bands) -> linear magnitudes (..., frames, nfft // 2 + 1):
    the least-squares (minimum-norm) solution pinv(fb) @ mel, negatives clipped to 0. fb maps
    nfft / 2 + 1 bins to fewer bands, so the detail within a band is lost: the result is smooth
    across each band's bins, not the original spectrum."""
    return np.maximum(np.asarray(mel_mag, np.float64) @ np.linalg.pinv(fb).T, 0.0)
