"""CSV spectrogram files: discover -> validate -> parse (in parallel).

One CSV file is one spectrogram: no header, comma-separated numbers, by default rows = frequency
bins (row 0 = lowest) and columns = time frames, 128 x 128 (docs/data.md). Cached
loading of a whole source is specgan_jax.data.cache.load_dataset.

Parsing: np.loadtxt (numpy's C parser) is the fast path (about as fast as pandas' C engine;
scripts/bench_data.py compares them, and docs/performance.md has the numbers). Only when the
fast path fails or finds something odd does a slow, line-by-line diagnosis run, so the error
names the exact line, column and problem.
"""

from __future__ import annotations

import concurrent.futures
import io
import math
import multiprocessing
import os
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from specgan_jax.config import DataConfig
from specgan_jax.errors import DataError

# Files per task sent to a worker process: big enough to amortise the IPC, small enough to
# keep both cores busy to the end and the progress bar moving.
CHUNK = 32
# Below this many files, parse in this process (a process pool costs ~1 s to start).
MIN_FILES_FOR_POOL = 64


# ----------------------------------------------------------------------------------------------
# Discovery


def _is_csv(name: str) -> bool:
    return name.lower().endswith(".csv") and not name.startswith(".")


def discover(data_cfg: DataConfig) -> tuple[list[str], list[int], list[str]]:
    """List the CSV files of a data source -> (paths, labels, class_names), paths absolute,
    ordered by class then file name. Raises DataError when nothing usable is found."""
    if data_cfg.file_list is not None:
        return _discover_list(data_cfg.file_list)
    if data_cfg.path is None:
        raise DataError("<config>", "no data source: set data.path or data.file_list")
    root = os.path.abspath(data_cfg.path)
    if not os.path.exists(root):
        raise DataError(root, "no such file or folder")
    if os.path.isfile(root):
        raise DataError(root, "data.path must be a folder (use data.file_list for a list of "
                              "files)")
    entries = sorted(os.listdir(root))
    top = [e for e in entries if _is_csv(e) and os.path.isfile(os.path.join(root, e))]
    subdirs = [e for e in entries
               if not e.startswith(".") and os.path.isdir(os.path.join(root, e))]
    classes = []
    for d in subdirs:
        files = sorted(f for f in os.listdir(os.path.join(root, d))
                       if _is_csv(f) and os.path.isfile(os.path.join(root, d, f)))
        if files:
            classes.append((d, [os.path.join(root, d, f) for f in files]))
    if top and classes:
        raise DataError(root, "has CSV files both at the top level and in subfolders "
                              f"({', '.join(c for c, _ in classes)}); use one layout: "
                              "all files in one folder, or one subfolder per class")
    if top:
        classes = [(os.path.basename(root.rstrip(os.sep)) or "data",
                    [os.path.join(root, f) for f in top])]
    if not classes:
        raise DataError(root, "no .csv files found (looked in the folder and its direct "
                              "subfolders)")
    paths, labels = [], []
    for i, (_, files) in enumerate(classes):
        paths += files
        labels += [i] * len(files)
    return paths, labels, [c for c, _ in classes]


def _discover_list(list_path: str) -> tuple[list[str], list[int], list[str]]:
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
        if not os.path.isfile(path):
            raise DataError(list_path, f"listed file {path!r} does not exist", line=i)
        items.append((os.path.abspath(path), cls.strip() or None, i))
    if not items:
        raise DataError(list_path, "the file list names no files")
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
# Validation and parsing of one file


def _diagnose(path: str, text: str) -> DataError:
    """Find the first problem in a CSV the fast parser rejected; line/column are 1-based."""
    if not text.strip():
        return DataError(path, "empty file")
    lines = text.splitlines()
    # First non-blank line decides the delimiter question.
    first_i = next(i for i, l in enumerate(lines) if l.strip())
    first = lines[first_i]
    if "," not in first:
        for delim, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if delim in first:
                return DataError(path, f"wrong delimiter: values are separated by {name}; "
                                       "expected commas", line=first_i + 1)
        if len(first.split()) > 1:
            return DataError(path, "wrong delimiter: values are separated by spaces; "
                                   "expected commas", line=first_i + 1)
    ncols = None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        cells = line.split(",")
        bad = []
        for j, c in enumerate(cells):
            try:
                v = float(c)
            except ValueError:
                bad.append((j, c))
                continue
            if not math.isfinite(v):
                return DataError(path, f"{c.strip()!r} is not a finite number (NaN or "
                                       "infinity)", line=i + 1, column=j + 1)
        if bad:
            if i == first_i and (len(bad) > 1 or _numeric_line(lines, i + 1)):
                return DataError(path, "header row found (non-numeric cells such as "
                                       f"{bad[0][1].strip()[:20]!r}); files must have no "
                                       "header, numbers only", line=i + 1)
            j, c = bad[0]
            what = "empty cell" if not c.strip() else f"non-numeric value {c.strip()[:40]!r}"
            return DataError(path, what, line=i + 1, column=j + 1)
        if ncols is None:
            ncols = len(cells)
        elif len(cells) != ncols:
            return DataError(path, f"ragged rows: {len(cells)} columns, but line "
                                   f"{first_i + 1} has {ncols}", line=i + 1)
    return DataError(path, "could not be parsed as a CSV of numbers")


def _numeric_line(lines: list[str], start: int) -> bool:
    """Whether the first non-blank line from `start` on is all comma-separated numbers."""
    for line in lines[start:]:
        if line.strip():
            try:
                [float(c) for c in line.split(",")]
                return True
            except ValueError:
                return False
    return False


def _fit_shape(a: np.ndarray, n_freq: int, n_time: int) -> np.ndarray:
    """Crop to / edge-pad to [n_freq, n_time]: keeps the lowest bins and the first frames."""
    a = a[:n_freq, :n_time]
    pad = ((0, n_freq - a.shape[0]), (0, n_time - a.shape[1]))
    return np.pad(a, pad, mode="edge") if any(p[1] for p in pad) else a


def parse_csv(path: str, data_cfg: DataConfig) -> np.ndarray:
    """Read and validate one CSV -> [n_freq, n_time] float32 in raw units. Raises DataError
    naming the file (and line/column) for every kind of malformed input."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(path, f"cannot read: {e.strerror}") from None
    if not raw.strip():
        raise DataError(path, "empty file")
    if raw.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte-order mark (Excel exports)
        raw = raw[3:]
    try:
        a = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.float64, ndmin=2)
        ok = a.size > 0 and bool(np.isfinite(a).all())
    except ValueError:
        ok = False
    if not ok:
        # Slow path (malformed files only): say exactly what and where.
        raise _diagnose(path, raw.decode("utf-8-sig", errors="replace"))
    if a.shape[1] == 1 and data_cfg.n_time != 1:
        # One column of numbers per line: a file without any commas (e.g. a single value per
        # line, or a delimiter the parser swallowed) -- let the diagnosis explain it.
        err = _diagnose(path, raw.decode("utf-8-sig", errors="replace"))
        if "delimiter" in err.problem:
            raise err
    if data_cfg.orientation == "time_rows":
        a = a.T  # [T, F] -> [F, T]
    f_exp, t_exp = data_cfg.n_freq, data_cfg.n_time
    if a.shape != (f_exp, t_exp):
        if data_cfg.shape_policy == "crop_pad":
            a = _fit_shape(a, f_exp, t_exp)
        else:
            rows, cols = (f_exp, t_exp) if data_cfg.orientation == "freq_rows" else (t_exp, f_exp)
            shape = a.shape if data_cfg.orientation == "freq_rows" else a.shape[::-1]
            raise DataError(path, f"wrong size: {shape[0]} rows x {shape[1]} columns, expected "
                                  f"{rows} x {cols} (orientation {data_cfg.orientation!r}); "
                                  "set data.shape_policy='crop_pad' to crop/pad instead")
    lo, hi = a.min(), a.max()
    if lo == hi:
        raise DataError(path, f"constant file (every value is {lo:g}): zero variance, it "
                              "carries no spectrogram")
    return a.astype(np.float32)


def _parse_into(npy_path: str, jobs: Sequence[tuple[int, str]], data_cfg: DataConfig,
                on_error: str) -> list[tuple[int, str, str]]:
    """Parse files into rows of an existing .npy (opened r+); returns [(row, path, reason)] of
    the bad ones (raises the first DataError when on_error == "error"). Runs in workers."""
    out = np.load(npy_path, mmap_mode="r+")  # [N, F, T] float32
    bad = []
    for row, path in jobs:
        try:
            out[row] = parse_csv(path, data_cfg)
        except DataError as e:
            if on_error == "error":
                raise
            bad.append((row, path, e.reason))
    out.flush()
    del out
    return bad


# ----------------------------------------------------------------------------------------------
# Cache


# ----------------------------------------------------------------------------------------------
# Public entry point


def parse_all(npy_path: str, paths: list[str], data_cfg: DataConfig,
               progress: bool) -> list[tuple[int, str, str]]:
    """Parse every file into its row of npy_path, in a process pool when worth it."""

    jobs = list(enumerate(paths))
    workers = data_cfg.workers or os.cpu_count() or 1
    bar = tqdm(total=len(jobs), desc="parsing CSV", unit="file", disable=not progress)
    bad = []
    try:
        if workers == 1 or len(jobs) < MIN_FILES_FOR_POOL:
            for s in range(0, len(jobs), CHUNK):
                bad += _parse_into(npy_path, jobs[s:s + CHUNK], data_cfg, data_cfg.on_bad_file)
                bar.update(len(jobs[s:s + CHUNK]))
            return bad
        # "spawn": forking a process that has JAX's threads running can deadlock.
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            futs = {pool.submit(_parse_into, npy_path, jobs[s:s + CHUNK], data_cfg,
                                data_cfg.on_bad_file): len(jobs[s:s + CHUNK])
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
