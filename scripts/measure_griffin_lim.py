#!/usr/bin/env python
"""Round trip audio -> log-magnitude STFT -> Griffin-Lim -> audio on recordings (docs/audio.md).

    python scripts/measure_griffin_lim.py FILE [FILE ...] [--iterations 16 32 100]
    python scripts/measure_griffin_lim.py --spectrograms DIR [DIR ...] [--iterations ...]

Per iteration count and inverse (the original's unnormalised overlap-add, and the normalised
one): spectral convergence, log-spectral distance (dB) and the energy above 4 kHz of the
reconstruction relative to the original's (dB), averaged over every 16384-sample slice.

--spectrograms: the CSV spectrograms under each DIR (log magnitudes, rows = frequency, as
specgan-audio-to-spectrograms and generate.py write them; the default transform's 128 bins),
real or generated: Griffin-Lim of each, and the spectral convergence of the result against the
spectrogram itself, mean and standard deviation over the files. A generated spectrogram need
not be the STFT magnitude of any signal; this says how far from one it is.
"""

import argparse
import glob
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from specgan_jax.audio import mel, stft  # noqa: E402
from specgan_jax.audio.griffin_lim import griffin_lim, spectral_convergence  # noqa: E402
from specgan_jax.audio.io import read_audio, slices  # noqa: E402


def through_mel(clips: np.ndarray, n_bands: int) -> np.ndarray:
    """Audio -> n_bands mel bands (as --mel writes them) -> linear log magnitudes (as the WAV
    inverse makes them), Nyquist dropped."""
    fb = mel.filterbank(n_bands, stft.SAMPLE_RATE, stft.NFFT)
    log_mel = mel.log_mel(np.abs(stft.stft(clips)), fb, stft.LOG_EPS)
    lin = mel.mel_to_linear(np.exp(log_mel), fb)[..., :-1]
    return np.log(np.maximum(lin, 1e-12))


def measure(clips: np.ndarray, iterations: int, quirk: bool,
            mel_bands: int = 0) -> tuple[float, float, float]:
    lm = stft.log_magnitude(clips.astype(np.float64))
    given = through_mel(clips.astype(np.float64), mel_bands) if mel_bands else lm
    y = np.asarray(griffin_lim(given.astype(np.float32), iterations=iterations,
                               amplitude_quirk=quirk), np.float64)
    sc = spectral_convergence(lm, y).mean()
    a = np.abs(stft.stft(clips.astype(np.float64)))[..., :-1]
    b = np.abs(stft.stft(y))[..., :-1]
    lsd = np.sqrt(np.mean((20 * np.log10((b + 1e-6) / (a + 1e-6))) ** 2, axis=-1)).mean()
    hi = slice(int(4000 / stft.SAMPLE_RATE * stft.NFFT), None)  # bins above 4 kHz
    loss = 10 * np.log10((b[..., hi] ** 2).sum() / (a[..., hi] ** 2).sum())
    return float(sc), float(lsd), float(loss)


def measure_spectrograms(dirs: list[str], iterations: list[int]) -> None:
    print("| spectrograms | n | iterations | inverse | spectral convergence (mean ± sd) |\n"
          "|---|---|---|---|---|")
    for d in dirs:
        files = sorted(glob.glob(os.path.join(d, "**", "*.csv"), recursive=True))
        if not files:
            sys.exit(f"error: {d}: no CSV spectrograms")
        lm = np.stack([np.loadtxt(f, delimiter=",", dtype=np.float32).T for f in files])
        if lm.shape[-1] != stft.NFFT // 2:
            sys.exit(f"error: {d}: {lm.shape[-1]} frequency rows, the default transform's "
                     f"{stft.NFFT // 2} expected")
        for quirk in (True, False):
            for n in iterations:
                y = np.asarray(griffin_lim(lm, iterations=n, amplitude_quirk=quirk))
                sc = spectral_convergence(lm, y)
                name = "original (unnormalised)" if quirk else "normalised"
                print(f"| {d} | {len(files)} | {n} | {name} | {sc.mean():.3f} ± {sc.std():.3f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("files", nargs="*", help="audio files")
    p.add_argument("--spectrograms", nargs="+", metavar="DIR", default=None,
                   help="folders of CSV spectrograms instead of audio files")
    p.add_argument("--iterations", type=int, nargs="+", default=[16, 32, 100])
    p.add_argument("--mel", type=int, default=0, metavar="N",
                   help="audio files: through N mel bands and back (pinv) before Griffin-Lim; "
                        "the metrics still against the linear STFT")
    a = p.parse_args()
    if a.spectrograms:
        measure_spectrograms(a.spectrograms, a.iterations)
        return
    if not a.files:
        p.error("give audio files or --spectrograms DIR")
    clips = np.concatenate([slices(read_audio(f, stft.SAMPLE_RATE), stft.SLICE_LEN,
                                   pad_end=True) for f in a.files])
    print(f"{len(a.files)} file(s), {len(clips)} slice(s) of {stft.SLICE_LEN} samples")
    print("| iterations | inverse | spectral convergence | log-spectral distance (dB) "
          "| energy above 4 kHz (dB) |\n|---|---|---|---|---|")
    for quirk in (True, False):
        for n in a.iterations:
            sc, lsd, loss = measure(clips, n, quirk, a.mel)
            name = "original (unnormalised)" if quirk else "normalised"
            print(f"| {n} | {name} | {sc:.3f} | {lsd:.2f} | {loss:+.2f} |")


if __name__ == "__main__":
    main()
