"""`scripts/audio_to_spectrograms.py IN OUT`: a folder of audio files (class subfolders kept)
-> a folder of CSV spectrograms this project trains on, with the original SpecGAN's transform
by default (docs/audio.md).

    python scripts/audio_to_spectrograms.py recordings/ data/spec
    python scripts/audio_to_spectrograms.py recordings/ data/spec --first-slice --pad-end

Each slice of each file becomes OUT/<class>/<name>_<ext>_<i>.csv: no header, rows = frequency bins
(row 0 lowest, Nyquist dropped), columns = time frames, log(|STFT| + eps); with --mel N, rows =
N mel bands, log(mel filterbank @ |STFT| + eps). The transform's parameters go to
OUT/audio_params.json, where `generate.py --format wav` and the run's WAV previews find them.
An unreadable or silent file is named and skipped (or, with --strict, stops the run).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import sys

import numpy as np
from tqdm.auto import tqdm

from specgan_jax.audio import mel, stft
from specgan_jax.audio.io import AUDIO_EXTENSIONS, read_audio, slices
from specgan_jax.errors import DataError, SpecganError

PARAMS_FILE = "audio_params.json"


def _discover(root: str) -> list[tuple[str, str]]:
    """(path, class folder relative to root, '' for files at the top) of every audio file."""
    out = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(folder, root)
        for f in sorted(files):
            if f.lower().endswith(AUDIO_EXTENSIONS):
                out.append((os.path.join(folder, f), "" if rel == "." else rel))
    return out


def convert_file(path: str, rel: str, out_dir: str, params: dict) -> tuple[str, int, str]:
    """Writes one file's slices; (path, slices written, '' or the reason it was skipped)."""
    try:
        x = read_audio(path, params["sample_rate"])
        sl = slices(x, params["slice_len"], params["first_slice"], params["overlap"],
                    params["pad_end"])
        if len(sl) == 0:
            raise DataError(path, f"shorter than one slice ({len(x)} < {params['slice_len']} "
                                  "samples); pass --pad-end to keep it")
    except DataError as e:
        return path, 0, str(e)
    if params.get("mel_bands"):
        fb = mel.filterbank(params["mel_bands"], params["sample_rate"], params["nfft"],
                            params["mel_fmin"], params["mel_fmax"])
        mag = np.abs(stft.stft(sl.astype(np.float64), params["nfft"], params["hop"]))
        spec = mel.log_mel(mag, fb, params["log_eps"])
    else:
        spec = stft.log_magnitude(sl.astype(np.float64), params["nfft"], params["hop"],
                                  params["log_eps"])
    dest = os.path.join(out_dir, rel)
    os.makedirs(dest, exist_ok=True)
    # The extension stays in the name: a.wav and a.flac in one folder must not collide.
    stem = os.path.basename(path).replace(".", "_")
    for i, s in enumerate(spec):  # (frames, bins) -> rows = bins, row 0 = lowest frequency
        np.savetxt(os.path.join(dest, f"{stem}_{i}.csv"), s.T, delimiter=",", fmt="%.6g")
    return path, len(spec), ""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("input", help="folder of audio files, or of class subfolders of them")
    p.add_argument("output", help="folder for the CSV spectrograms (class subfolders kept)")
    p.add_argument("--sample-rate", type=int, default=stft.SAMPLE_RATE)
    p.add_argument("--slice-len", type=int, default=stft.SLICE_LEN, help="samples per slice")
    p.add_argument("--nfft", type=int, default=stft.NFFT, help="FFT and window size")
    p.add_argument("--hop", type=int, default=stft.HOP, help="hop length in samples")
    p.add_argument("--log-eps", type=float, default=stft.LOG_EPS)
    p.add_argument("--mel", type=int, default=0, metavar="N",
                   help="N mel bands (Slaney scale) instead of the linear STFT bins "
                        "[default: off]")
    p.add_argument("--mel-fmin", type=float, default=0.0, help="--mel: lowest edge in Hz")
    p.add_argument("--mel-fmax", type=float, default=None,
                   help="--mel: highest edge in Hz [default: sample rate / 2]")
    p.add_argument("--first-slice", action="store_true", help="only each file's first slice")
    p.add_argument("--overlap", type=float, default=0.0, help="slice overlap ratio in [0, 1)")
    p.add_argument("--pad-end", action="store_true", help="zero-pad the last, partial slice")
    p.add_argument("--strict", action="store_true", help="stop at the first bad file")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="worker processes (1: in this process)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _check(a) -> dict:
    if not os.path.isdir(a.input):
        raise SpecganError(f"{a.input}: not a folder")
    for name in ("sample_rate", "slice_len", "nfft", "hop", "workers"):
        if getattr(a, name) < 1:
            raise SpecganError(f"--{name.replace('_', '-')} {getattr(a, name)}: must be >= 1")
    if not 0.0 <= a.overlap < 1.0:
        raise SpecganError(f"--overlap {a.overlap}: expected 0 <= overlap < 1")
    if a.hop > a.nfft:
        raise SpecganError(f"--hop {a.hop} is larger than --nfft {a.nfft}")
    params = {"sample_rate": a.sample_rate, "slice_len": a.slice_len, "nfft": a.nfft,
              "hop": a.hop, "log_eps": a.log_eps, "first_slice": a.first_slice,
              "overlap": a.overlap, "pad_end": a.pad_end, "window": "periodic_hann",
              "center": False, "nyquist_dropped": True, "orientation": "freq_rows",
              "n_freq": a.nfft // 2, "n_time": stft.num_frames(a.slice_len, a.hop)}
    if a.mel < 0:
        raise SpecganError(f"--mel {a.mel}: must be >= 1 (or 0: off)")
    if a.mel:
        fmax = a.sample_rate / 2.0 if a.mel_fmax is None else a.mel_fmax
        try:  # refused here, before any file is read, if a band would hold no FFT bin
            mel.filterbank(a.mel, a.sample_rate, a.nfft, a.mel_fmin, fmax)
        except ValueError as e:
            raise SpecganError(f"--mel: {e}") from None
        params.update(nyquist_dropped=False, n_freq=a.mel, mel_bands=a.mel, mel_fmin=a.mel_fmin,
                      mel_fmax=fmax, mel_scale=mel.SCALE, mel_norm=None)
    return params


def _run(a, params: dict) -> tuple[int, list[str]]:
    files = _discover(a.input)
    if not files:
        raise SpecganError(f"{a.input}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    os.makedirs(a.output, exist_ok=True)
    bar = tqdm(total=len(files), unit="file", disable=a.no_progress)
    written, skipped = 0, []
    # spawn, not fork: a forked child of a process that has started JAX's threads can hang.
    pool = (concurrent.futures.ProcessPoolExecutor(
        a.workers, mp_context=multiprocessing.get_context("spawn")) if a.workers > 1 else None)
    try:
        jobs = ([pool.submit(convert_file, p, r, a.output, params) for p, r in files] if pool
                else (convert_file(p, r, a.output, params) for p, r in files))
        for job in jobs:
            path, n, reason = job.result() if pool else job
            bar.update(1)
            if reason and a.strict:
                raise SpecganError(f"{reason} (without --strict it is skipped)")
            written += n
            if reason:
                skipped.append(reason)
    finally:
        bar.close()
        if pool:
            pool.shutdown(cancel_futures=True)
    return written, skipped


def main(argv=None) -> int:
    """0 on success, 2 on a bad option or (with --strict) a bad file."""
    a = _parser().parse_args(argv)
    try:
        params = _check(a)
        written, skipped = _run(a, params)
    except SpecganError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with open(os.path.join(a.output, PARAMS_FILE), "w") as f:
        json.dump(params, f, indent=2)
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    rows = f"{params['n_freq']} {'mel bands' if params.get('mel_bands') else 'bins'}"
    print(f"{a.output}: {written} spectrograms ({rows} x {params['n_time']} "
          f"frames), {len(skipped)} file(s) skipped; parameters in "
          f"{os.path.join(a.output, PARAMS_FILE)}")
    return 0
