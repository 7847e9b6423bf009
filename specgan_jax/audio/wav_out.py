"""Generated spectrograms (the user's units: log magnitude, the CSV layout) -> 16-bit WAV files
through Griffin-Lim, with the parameters audio_to_spectrograms recorded (docs/audio.md): one
file per sample (write_wavs, generate.py --format wav), or a run's preview grid as one file
(write_strip). Mel spectrograms are mapped back to linear magnitudes first (mel.mel_to_linear).
"""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

from specgan_jax import atomic
from specgan_jax.audio import mel
from specgan_jax.audio.griffin_lim import ITERATIONS, griffin_lim
from specgan_jax.audio.io import write_wav
from specgan_jax.errors import SpecganError

PARAMS_FILE = "audio_params.json"
KEYS = ("sample_rate", "nfft", "hop")


def data_params_path(data_path: Optional[str]) -> Optional[str]:
    """DATA/audio_params.json if data_path is a folder holding one, else None."""
    path = os.path.join(data_path, PARAMS_FILE) if data_path else None
    return path if path and os.path.isfile(path) else None


def find_params(explicit: Optional[str], data_path: Optional[str]) -> dict:
    """The audio parameters from --audio-params FILE, or from DATA/audio_params.json."""
    path = explicit or (os.path.join(data_path, PARAMS_FILE) if data_path else None)
    if path is None or not os.path.isfile(path):
        where = f" ({path} not found)" if path else ""
        raise SpecganError(f"--format wav needs the audio parameters of the data{where}: pass "
                           f"--audio-params OUT/{PARAMS_FILE} written by "
                           "specgan-audio-to-spectrograms")
    return read_params(path)


def read_params(path: str) -> dict:
    """An audio_params.json (SpecganError naming the file if unreadable or incomplete)."""
    try:
        with open(path) as f:
            params = json.load(f)
        missing = [k for k in KEYS if k not in params]
    except (OSError, ValueError, TypeError) as e:
        raise SpecganError(f"{path}: unreadable audio parameters ({e})") from None
    if missing:
        raise SpecganError(f"{path}: missing {', '.join(missing)}")
    return params


PEAK = 0.99  # the largest sample written, -0.09 dBFS
GAP_S = 0.25  # silence between the samples of a preview strip, in seconds


def n_rows(params: dict) -> int:
    """Frequency rows of the spectrograms these parameters make: mel bands, or nfft / 2."""
    return int(params.get("mel_bands") or params["nfft"] // 2)


def rows_mismatch(n: int, params: dict) -> str:
    """"" if spectrograms with n frequency rows fit the parameters, else why not."""
    want = n_rows(params)
    if n == want:
        return ""
    made = (f"{params['mel_bands']} mel bands" if params.get("mel_bands")
            else f"nfft {params['nfft']}: {want} bins")
    return f"the spectrograms have {n} frequency rows, the audio parameters ({made}) {want}"


def to_audio(lm: np.ndarray, params: dict, iterations: int = ITERATIONS) -> np.ndarray:
    """Log magnitudes (N, frames, rows) in the data's units -> audio (N, frames * hop).

    Mel rows are first mapped to linear magnitudes (pinv of the filterbank, clipped at 0;
    detail within a band is lost), then Griffin-Lim as for linear spectrograms."""
    lm = np.asarray(lm, np.float32)
    bad = rows_mismatch(lm.shape[-1], params)
    if bad:
        raise SpecganError(bad)
    if params.get("mel_bands"):
        fb = mel.filterbank(params["mel_bands"], params["sample_rate"], params["nfft"],
                            params.get("mel_fmin", 0.0), params.get("mel_fmax"))
        lin = mel.mel_to_linear(np.exp(lm.astype(np.float64)), fb)[..., :-1]  # Nyquist dropped
        # a clipped (zero) bin as a magnitude of 1e-12: Griffin-Lim takes log magnitudes
        lm = np.log(np.maximum(lin, 1e-12)).astype(np.float32)
    return np.asarray(griffin_lim(lm, iterations=iterations, nfft=params["nfft"],
                                  hop=params["hop"]))


def peak_scaled(a: np.ndarray) -> np.ndarray:
    """a scaled down to PEAK if its peak exceeds it (see write_wavs), else unchanged."""
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    return a * (PEAK / peak) if peak > PEAK else a


def write_wavs(x: np.ndarray, out_dir: str, names: list[str], freq_rows: bool, params: dict,
               iterations: int = ITERATIONS) -> list[str]:
    """x [N, rows, cols] log magnitudes -> OUT/<name>.wav, one per sample.

    A generated magnitude has no ceiling, and Griffin-Lim's output can pass full scale (a
    conditional run's loud class did on 6% of its samples): a waveform whose peak exceeds
    PEAK is scaled down to it rather than clipped, which would add distortion. Quieter ones
    keep their level."""
    lm = np.asarray(x, np.float32)
    lm = np.swapaxes(lm, 1, 2) if freq_rows else lm  # Griffin-Lim wants (frames, bins)
    bad = rows_mismatch(lm.shape[-1], params)
    if bad:
        raise SpecganError(f"--format wav: {bad}")
    audio = to_audio(lm, params, iterations)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, a in zip(names, audio):
        p = os.path.join(out_dir, name + ".wav")
        with atomic.atomic_open(p, "wb") as fh:
            write_wav(fh, peak_scaled(a), params["sample_rate"])
        paths.append(p)
    return paths


def write_strip(path: str, x: np.ndarray, params: dict, iterations: int = ITERATIONS) -> str:
    """x [N, F, T] log magnitudes (frequency rows, lowest first, the data's units) -> one WAV
    at `path`, atomically: each sample through Griffin-Lim, peak-scaled as in write_wavs, in
    order, GAP_S seconds of silence between them (N T hop + (N - 1) GAP_S sr samples)."""
    audio = to_audio(np.swapaxes(np.asarray(x, np.float32), 1, 2), params, iterations)
    gap = np.zeros(int(round(GAP_S * params["sample_rate"])), np.float32)
    parts = []
    for i, a in enumerate(audio):
        parts += [gap, peak_scaled(a)] if i else [peak_scaled(a)]
    with atomic.atomic_open(path, "wb") as fh:
        write_wav(fh, np.concatenate(parts), params["sample_rate"])
    return path
