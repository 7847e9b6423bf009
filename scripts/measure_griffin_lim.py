#!/usr/bin/env python
"""Round trip audio -> log-magnitude STFT -> Griffin-Lim -> audio on recordings (docs/audio.md).

    python scripts/measure_griffin_lim.py FILE [FILE ...] [--iterations 16 32 100]

Per iteration count and inverse (the original's unnormalised overlap-add, and the normalised
one): spectral convergence, log-spectral distance (dB) and the energy above 4 kHz of the
reconstruction relative to the original's (dB), averaged over every 16384-sample slice.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from specgan_jax.audio import stft  # noqa: E402
from specgan_jax.audio.griffin_lim import griffin_lim, spectral_convergence  # noqa: E402
from specgan_jax.audio.io import read_audio, slices  # noqa: E402


def measure(clips: np.ndarray, iterations: int, quirk: bool) -> tuple[float, float, float]:
    lm = stft.log_magnitude(clips.astype(np.float64))
    y = np.asarray(griffin_lim(lm.astype(np.float32), iterations=iterations,
                               amplitude_quirk=quirk), np.float64)
    sc = spectral_convergence(lm, y).mean()
    a = np.abs(stft.stft(clips.astype(np.float64)))[..., :-1]
    b = np.abs(stft.stft(y))[..., :-1]
    lsd = np.sqrt(np.mean((20 * np.log10((b + 1e-6) / (a + 1e-6))) ** 2, axis=-1)).mean()
    hi = slice(int(4000 / stft.SAMPLE_RATE * stft.NFFT), None)  # bins above 4 kHz
    loss = 10 * np.log10((b[..., hi] ** 2).sum() / (a[..., hi] ** 2).sum())
    return float(sc), float(lsd), float(loss)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("files", nargs="+")
    p.add_argument("--iterations", type=int, nargs="+", default=[16, 32, 100])
    a = p.parse_args()
    clips = np.concatenate([slices(read_audio(f, stft.SAMPLE_RATE), stft.SLICE_LEN,
                                   pad_end=True) for f in a.files])
    print(f"{len(a.files)} file(s), {len(clips)} slice(s) of {stft.SLICE_LEN} samples")
    print("| iterations | inverse | spectral convergence | log-spectral distance (dB) "
          "| energy above 4 kHz (dB) |\n|---|---|---|---|---|")
    for quirk in (True, False):
        for n in a.iterations:
            sc, lsd, loss = measure(clips, n, quirk)
            name = "original (unnormalised)" if quirk else "normalised"
            print(f"| {n} | {name} | {sc:.3f} | {lsd:.2f} | {loss:+.2f} |")


if __name__ == "__main__":
    main()
