"""Long recordings as sources of random windows: the host side (probe, parse, tiles).

A file with more time frames than a training example (data.n_time) is not cropped once: its
frames are kept whole and every training example is a random n_time-frame window of it, drawn
on the device inside the step (specgan_jax.data.sampler.WindowDataset). All files' frames are
stored end to end as one time-major array [L_total, F] (a file's frames contiguous, so a
worker writes one block); file i occupies rows [offset_i, offset_i + L_i) and has
L_i - n_time + 1 window starts.

Frequency follows data.shape_policy as for ordinary files (crop_pad keeps the lowest n_freq
bins); a file with fewer than n_time frames is an error, or edge-padded to n_time under
crop_pad (one window).

Everything that works on whole examples (moments, previews, evaluation, the classifier
metrics) sees `tiles`: each file cut into non-overlapping n_time-frame windows from its start
(the last partial window dropped), so no frame is counted twice.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from specgan_jax.config import DataConfig
from specgan_jax.data.csv import fit_shape
from specgan_jax.data.files import read_array
from specgan_jax.errors import DataError


def probe_frames(path: str, data_cfg: DataConfig) -> Optional[int]:
    """A file's time frames without parsing its numbers (the first line's fields of a CSV,
    its non-blank lines for orientation 'time_rows', a .npy's header); None when the probe
    cannot tell (the parse then reports what is wrong with the file)."""
    time_axis = 1 if data_cfg.orientation == "freq_rows" else 0
    try:
        if path.lower().endswith(".npy"):
            a = np.load(path, mmap_mode="r", allow_pickle=False)
            shape = getattr(a, "shape", ())
            return int(shape[time_axis]) if len(shape) == 2 else None
        with open(path, "rb") as f:
            if time_axis == 0:
                return sum(1 for line in f if line.strip()) or None
            for line in f:
                if line.strip():
                    return line.count(b",") + 1
    except (OSError, ValueError):
        return None
    return None


def window_lengths(paths: Sequence[str], data_cfg: DataConfig) -> Optional[list[int]]:
    """Each file's frame count in the windowed layout, or None when no file is longer than
    data.n_time (or data.windows is 'off'): then every file is one example, as before."""
    if data_cfg.windows == "off":
        return None
    t = data_cfg.n_time
    probed = [probe_frames(p, data_cfg) for p in paths]
    if not any(n is not None and n > t for n in probed):
        return None
    # A file shorter than n_time is padded to n_time under crop_pad, else refused by the parse.
    return [max(n or t, t) for n in probed]


def read_frames(path: str, data_cfg: DataConfig, length: int) -> np.ndarray:
    """One file -> [length, n_freq] float32 (time-major), raw units, row 0 of the file's
    frequency axis = the lowest. DataError naming the file for a malformed file, a frequency
    size other than n_freq (unless crop_pad), fewer than n_time frames (unless crop_pad), or a
    frame count other than the probe's (a ragged CSV)."""
    a = read_array(path, data_cfg)  # [F_file, T_file]
    f_exp, t_exp = data_cfg.n_freq, data_cfg.n_time
    f_file, t_file = a.shape
    crop = data_cfg.shape_policy == "crop_pad"
    if f_file != f_exp and not crop:
        raise DataError(path, f"{f_file} frequency bins, expected {f_exp} (data.shape); set "
                              f"data.shape_policy='crop_pad' to keep the lowest {f_exp}")
    if t_file < t_exp and not crop:
        raise DataError(path, f"{t_file} time frames, fewer than a window's {t_exp} "
                              "(data.shape); set data.shape_policy='crop_pad' to pad it")
    if a.shape != (f_exp, max(t_file, t_exp)):  # crop_pad: frequency, and a short file
        a = fit_shape(path, a, f_exp, max(t_file, t_exp))
    if a.shape[1] != length:
        raise DataError(path, f"{t_file} time frames, but its first line promised "
                              f"{length}: rows of different lengths?")
    return np.ascontiguousarray(a.T)


def write_frames(out: np.ndarray, job: tuple[int, str, int, int], data_cfg: DataConfig
                 ) -> None:
    """Job (file index, path, offset, length): parse the file into its row block of the
    [L_total, F] frames array (data.csv.fill_npy runs the jobs, in workers)."""
    _, path, offset, length = job
    out[offset:offset + length] = read_frames(path, data_cfg, length)


def offsets(lengths: Sequence[int]) -> np.ndarray:
    """[n_files] first row of each file in the end-to-end frames array."""
    lengths = np.asarray(lengths, np.int64)
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def tiles(frames: np.ndarray, lengths: Sequence[int], labels: Sequence[int], n_time: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-overlapping n_time windows of every file from its start -> (x [N_tiles, F, T]
    float32, labels [N_tiles] int32, file index [N_tiles] int64)."""
    starts, files = [], []
    for i, (off, n) in enumerate(zip(offsets(lengths), lengths)):
        k = int(n) // n_time
        starts.extend(off + n_time * np.arange(k))
        files.extend([i] * k)
    x = np.empty((len(starts), frames.shape[1], n_time), np.float32)
    for j, s in enumerate(starts):
        x[j] = frames[s:s + n_time].T
    files = np.asarray(files, np.int64)
    return x, np.asarray(labels, np.int32)[files], files


def describe(lengths: Sequence[int], n_freq: int, n_time: int, storage_dtype: str) -> str:
    """One line for the training log: files, windows, and the device memory they take."""
    lengths = np.asarray(lengths, np.int64)
    n_windows = int((lengths - n_time + 1).sum())
    nbytes = int(lengths.sum()) * n_freq * (2 if storage_dtype == "bfloat16" else 4)
    return (f"{len(lengths)} files of {int(lengths.min())}-{int(lengths.max())} frames: "
            f"{n_windows} windows of {n_time} frames; {nbytes / 2**20:.0f} MiB on each device "
            f"({storage_dtype})")

