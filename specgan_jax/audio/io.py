"""Audio files in and out: read (mono float, resampled), slice, write 16-bit PCM WAV.

WAV (8/16/24/32-bit PCM) is read with the stdlib `wave` module; other formats (FLAC, OGG, MP3,
AIFF, ...) need soundfile (`pip install 'specgan-jax[audio]'`). Problems raise DataError naming
the file.
"""

from __future__ import annotations

import math
import wave

import numpy as np

from specgan_jax.errors import DataError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
EXTRA_HINT = "pip install 'specgan-jax[audio]'"


def _read_wav(path: str) -> tuple[np.ndarray, int]:
    with wave.open(path, "rb") as w:
        width, channels, sr = w.getsampwidth(), w.getnchannels(), w.getframerate()
        raw = w.readframes(w.getnframes())
    if width == 1:  # 8-bit WAV is unsigned
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 3:  # 24-bit little-endian: put the 3 bytes in the top of an int32
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        x = (b[:, 0].astype(np.int32) << 8 | b[:, 1].astype(np.int32) << 16
             | b[:, 2].astype(np.int32) << 24).astype(np.float32) / 2.0 ** 31
    elif width in (2, 4):
        x = np.frombuffer(raw, f"<i{width}").astype(np.float32) / 2.0 ** (8 * width - 1)
    else:
        raise DataError(path, f"unsupported WAV sample width {width} bytes")
    return x.reshape(-1, channels).mean(axis=1), sr


def _read_soundfile(path: str) -> tuple[np.ndarray, int]:
    try:
        import soundfile
    except ImportError:
        raise DataError(path, f"reading this format needs soundfile: {EXTRA_HINT}") from None
    try:
        x, sr = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's errors are RuntimeError/LibsndfileError
        raise DataError(path, f"unreadable audio file ({e})") from None
    return x.mean(axis=1), sr


def read_audio(path: str, sample_rate: int) -> np.ndarray:
    """Mono float32 samples at `sample_rate` (resampled with scipy.signal.resample_poly)."""
    if path.lower().endswith(".wav"):
        try:
            x, sr = _read_wav(path)
        except (wave.Error, EOFError, ValueError) as e:
            try:  # float or other non-PCM WAV: libsndfile reads those when installed
                x, sr = _read_soundfile(path)
            except DataError:
                raise DataError(path, f"unreadable WAV file ({str(e) or type(e).__name__})") from None
    else:
        x, sr = _read_soundfile(path)
    if x.size == 0:
        raise DataError(path, "no samples")
    if not np.isfinite(x).all():
        raise DataError(path, "non-finite samples")
    if sr != sample_rate:
        import scipy.signal
        g = math.gcd(int(sr), int(sample_rate))
        x = scipy.signal.resample_poly(x, sample_rate // g, sr // g).astype(np.float32)
    if not np.any(np.abs(x) > 0):
        raise DataError(path, "silent (every sample is zero)")
    return x.astype(np.float32)


def slices(x: np.ndarray, length: int, first_only: bool = False, overlap: float = 0.0,
           pad_end: bool = False) -> np.ndarray:
    """(n_slices, length): the original loader's slicing (its defaults: every slice, no
    overlap, no padding). Slices start every length * (1 - overlap) samples; with pad_end the
    last, partial slice is zero-padded, otherwise dropped; first_only keeps the first one.
    A signal shorter than one slice gives no slice unless pad_end."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap {overlap}: expected 0 <= overlap < 1")
    hop = max(1, int(round(length * (1.0 - overlap))))
    n = len(x)
    if pad_end:
        count = max(1, -(-max(n - length, 0) // hop) + 1)
    else:
        count = 0 if n < length else (n - length) // hop + 1
    if first_only:
        count = min(count, 1)
    out = np.zeros((count, length), np.float32)
    for i in range(count):
        piece = x[i * hop:i * hop + length]
        out[i, :len(piece)] = piece
    return out


def write_wav(path, audio: np.ndarray, sample_rate: int) -> None:
    """Mono 16-bit PCM WAV to a path or a binary file object; samples are clipped to [-1, 1]."""
    pcm = np.round(np.clip(np.asarray(audio, np.float64), -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
