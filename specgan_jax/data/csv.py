"""Spectrogram files (CSV or .npy): discover -> validate -> parse (in parallel).

One file is one spectrogram: a CSV (no header, comma-separated numbers) or a 2-D .npy array,
by default rows = frequency bins (row 0 = lowest) and columns = time frames, 128 x 128
(docs/data.md). Reading one file is specgan_jax.data.files.read_array; parse_csv adds the size
check. Cached loading of a whole source is specgan_jax.data.cache.load_dataset.
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import multiprocessing
import os
from typing import Callable, Optional, Sequence

import numpy as np
from tqdm.auto import tqdm

from specgan_jax.config import DataConfig
from specgan_jax.data.files import is_data_file, read_array
from specgan_jax.errors import DataError

# Files per task sent to a worker process: big enough to amortise the IPC, small enough to
# keep both cores busy to the end and the progress bar moving.
CHUNK = 32
# Below this many files, parse in this process (a process pool costs ~1 s to start).
MIN_FILES_FOR_POOL = 64


# ----------------------------------------------------------------------------------------------
# Discovery


def discover(data_cfg: DataConfig) -> tuple[list[str], list[int], list[str]]:
    """List the data files (.csv / .npy, matching data.pattern if set) of a data source ->
    (paths, labels, class_names), paths absolute, ordered by class then file name. Raises
    DataError when nothing usable is found."""
    if data_cfg.file_list is not None:
        return _discover_list(data_cfg.file_list, data_cfg.pattern)
    if data_cfg.path is None:
        raise DataError("<config>", "no data source: set data.path or data.file_list")
    root = os.path.abspath(data_cfg.path)
    if not os.path.exists(root):
        raise DataError(root, "no such file or folder")
    if os.path.isfile(root):
        raise DataError(root, "data.path must be a folder (use data.file_list for a list of "
                              "files)")
    pattern = data_cfg.pattern
    entries = sorted(os.listdir(root))
    top = [e for e in entries
           if is_data_file(e, pattern) and os.path.isfile(os.path.join(root, e))]
    subdirs = [e for e in entries
               if not e.startswith(".") and os.path.isdir(os.path.join(root, e))]
    classes = []
    for d in subdirs:
        files = sorted(f for f in os.listdir(os.path.join(root, d))
                       if is_data_file(f, pattern) and os.path.isfile(os.path.join(root, d, f)))
        if files:
            classes.append((d, [os.path.join(root, d, f) for f in files]))
    if top and classes:
        raise DataError(root, "has data files both at the top level and in subfolders "
                              f"({', '.join(c for c, _ in classes)}); use one layout: "
                              "all files in one folder, or one subfolder per class")
    if top:
        classes = [(os.path.basename(root.rstrip(os.sep)) or "data",
                    [os.path.join(root, f) for f in top])]
    if not classes:
        if pattern is not None:
            raise DataError(root, f"no .csv or .npy file matches data.pattern {pattern!r} "
                                  "(looked in the folder and its direct subfolders)")
        raise DataError(root, "no .csv or .npy files found (looked in the folder and its "
                              "direct subfolders)")
    paths, labels = [], []
    for i, (_, files) in enumerate(classes):
        paths += files
        labels += [i] * len(files)
    return paths, labels, [c for c, _ in classes]


def _discover_list(list_path: str, pattern: Optional[str] = None
                   ) -> tuple[list[str], list[int], list[str]]:
    """A file list's files; with a pattern, only those whose name matches it (a listed file
    needs no particular suffix: .npy is read as an array, anything else as CSV)."""
    list_path = os.path.abspath(list_path)
    try:
        with open(list_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise DataError(list_path, f"cannot read the file list: {e.strerror}") from None
    base = os.path.dirname(list_path)
    items = []
    for i, line in enumerate(lines, start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        path, _, cls = s.partition("\t")
        path = os.path.join(base, path.strip()) if not os.path.isabs(path.strip()) else path
        if pattern is not None and not fnmatch.fnmatchcase(os.path.basename(path), pattern):
            continue
        if not os.path.isfile(path):
            raise DataError(list_path, f"listed file {path!r} does not exist", line=i)
        items.append((os.path.abspath(path), cls.strip() or None, i))
    if not items:
        raise DataError(list_path, "the file list names no files" if pattern is None else
                        f"no listed file's name matches data.pattern {pattern!r}")
    has_cls = {c is not None for _, c, _ in items}
    if len(has_cls) == 2:
        first = next(i for _, c, i in items if (c is None) != (items[0][1] is None))
        raise DataError(list_path, "some lines give a class (PATH<TAB>CLASS) and some do not",
                        line=first)
    class_names = sorted({c for _, c, _ in items}) if True in has_cls else ["all"]
    index = {c: k for k, c in enumerate(class_names)}
    items.sort(key=lambda t: (index[t[1] or "all"], t[0]))
    return [p for p, _, _ in items], [index[c or "all"] for _, c, _ in items], class_names


# ----------------------------------------------------------------------------------------------
# One file: read (specgan_jax.data.files), then the size check


def fit_shape(path: str, a: np.ndarray, n_freq: int, n_time: int) -> np.ndarray:
    """Crop to / edge-pad to [n_freq, n_time] (data.shape_policy 'crop_pad'): keeps the lowest
    bins and the first frames. DataError naming the file if what is left is constant."""
    a = a[:n_freq, :n_time]
    pad = ((0, n_freq - a.shape[0]), (0, n_time - a.shape[1]))
    a = np.pad(a, pad, mode="edge") if any(p[1] for p in pad) else a
    lo, hi = a.min(), a.max()
    if lo == hi:
        raise DataError(path, f"constant after crop_pad to {n_freq} x {n_time} (every value is "
                              f"{lo:g}): zero variance, it carries no spectrogram")
    return a


def parse_csv(path: str, data_cfg: DataConfig) -> np.ndarray:
    """Read and validate one data file (CSV or .npy, read_array) -> [n_freq, n_time] float32
    in raw units, row 0 = the lowest frequency. Raises DataError naming the file (and
    line/column) for every kind of malformed input, and for another size unless
    data.shape_policy is 'crop_pad'."""
    a = read_array(path, data_cfg)
    f_exp, t_exp = data_cfg.n_freq, data_cfg.n_time
    if a.shape == (f_exp, t_exp):
        return a
    if data_cfg.shape_policy != "crop_pad":
        rows, cols = (f_exp, t_exp) if data_cfg.orientation == "freq_rows" else (t_exp, f_exp)
        shape = _file_shape(a.shape, data_cfg)
        dropped = " after data.drop_top_row" if data_cfg.drop_top_row else ""
        raise DataError(path, f"wrong size: {shape[0]} rows x {shape[1]} columns{dropped}, "
                              f"expected {rows} x {cols} (orientation "
                              f"{data_cfg.orientation!r}); set data.shape_policy='crop_pad' "
                              "to crop/pad instead")
    return fit_shape(path, a, f_exp, t_exp)


def _file_shape(shape: tuple, data_cfg: DataConfig) -> tuple:
    """An internal [F, T] shape as the file's (rows, columns)."""
    return tuple(shape) if data_cfg.orientation == "freq_rows" else tuple(shape[::-1])


def _into_row(out: np.ndarray, job: tuple[int, str], data_cfg: DataConfig) -> None:
    """Job (row, path): parse the file into row `row` of an [N, F, T] array."""
    row, path = job
    out[row] = parse_csv(path, data_cfg)


def fill_npy(npy_path: str, jobs: Sequence[tuple], data_cfg: DataConfig, on_error: str,
             write: Callable = _into_row) -> list[tuple[int, str, str]]:
    """Parse files into an existing .npy (opened r+), one job (index, path, ...) at a time by
    write(out, job, data_cfg); returns [(index, path, reason)] of the bad ones (raises the
    first DataError when on_error == "error"). Runs in workers."""
    out = np.load(npy_path, mmap_mode="r+")
    bad = []
    for job in jobs:
        try:
            write(out, job, data_cfg)
        except DataError as e:
            if on_error == "error":
                raise
            bad.append((job[0], job[1], e.reason))
    out.flush()
    del out
    return bad


# ----------------------------------------------------------------------------------------------
# Public entry point


def parse_all(npy_path: str, paths: list[str], data_cfg: DataConfig, progress: bool,
              jobs: Optional[list] = None, write: Callable = _into_row
              ) -> list[tuple[int, str, str]]:
    """Parse every file into its row of npy_path, in a process pool when worth it.
    jobs, write: another layout's jobs and how one is written (fill_npy; long files:
    data.windows.write_frames); default: file i into row i."""

    jobs = list(enumerate(paths)) if jobs is None else jobs
    workers = data_cfg.workers or os.cpu_count() or 1
    bar = tqdm(total=len(jobs), desc="parsing files", unit="file", disable=not progress)
    bad = []
    try:
        if workers == 1 or len(jobs) < MIN_FILES_FOR_POOL:
            for s in range(0, len(jobs), CHUNK):
                bad += fill_npy(npy_path, jobs[s:s + CHUNK], data_cfg, data_cfg.on_bad_file,
                                write)
                bar.update(len(jobs[s:s + CHUNK]))
            return bad
        # "spawn": forking a process that has JAX's threads running can deadlock.
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            futs = {pool.submit(fill_npy, npy_path, jobs[s:s + CHUNK], data_cfg,
                                data_cfg.on_bad_file, write): len(jobs[s:s + CHUNK])
                    for s in range(0, len(jobs), CHUNK)}
            try:
                for fut in concurrent.futures.as_completed(futs):
                    bad += fut.result()
                    bar.update(futs[fut])
            except BaseException:
                for fut in futs:
                    fut.cancel()
                raise
        return bad
    finally:
        bar.close()
