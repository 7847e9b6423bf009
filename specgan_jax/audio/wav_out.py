"""Generated spectrograms (the user's units: log magnitude, the CSV layout) -> 16-bit WAV files
through Griffin-Lim, with the parameters audio_to_spectrograms recorded (docs/audio.md)."""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

from specgan_jax.audio.griffin_lim import ITERATIONS, griffin_lim
from specgan_jax.audio.io import write_wav
from specgan_jax.errors import SpecganError

PARAMS_FILE = "audio_params.json"
KEYS = ("sample_rate", "nfft", "hop")


def find_params(explicit: Optional[str], data_path: Optional[str]) -> dict:
    """The audio parameters from --audio-params FILE, or from DATA/audio_params.json."""
    path = explicit or (os.path.join(data_path, PARAMS_FILE) if data_path else None)
    if path is None or not os.path.isfile(path):
        where = f" ({path} not found)" if path else ""
        raise SpecganError(f"--format wav needs the audio parameters of the data{where}: pass "
                           f"--audio-params OUT/{PARAMS_FILE} written by "
                           "specgan-audio-to-spectrograms")
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


def write_wavs(x: np.ndarray, out_dir: str, names: list[str], freq_rows: bool, params: dict,
               iterations: int = ITERATIONS) -> list[str]:
    """x [N, rows, cols] log magnitudes -> OUT/<name>.wav, one per sample.

    A generated magnitude has no ceiling, and Griffin-Lim's output can pass full scale (a
    conditional run's loud class did on 6% of its samples): a waveform whose peak exceeds
    PEAK is scaled down to it rather than clipped, which would add distortion. Quieter ones
    keep their level."""
    lm = np.asarray(x, np.float32)
    lm = np.swapaxes(lm, 1, 2) if freq_rows else lm  # Griffin-Lim wants (frames, bins)
    if lm.shape[-1] != params["nfft"] // 2:
        raise SpecganError(f"--format wav: the spectrograms have {lm.shape[-1]} frequency bins, "
                           f"the audio parameters (nfft {params['nfft']}) {params['nfft'] // 2}")
    audio = np.asarray(griffin_lim(lm, iterations=iterations, nfft=params["nfft"],
                                   hop=params["hop"]))
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, a in zip(names, audio):
        p = os.path.join(out_dir, name + ".wav")
        peak = float(np.max(np.abs(a))) if a.size else 0.0
        write_wav(p, a * (PEAK / peak) if peak > PEAK else a, params["sample_rate"])
        paths.append(p)
    return paths
