"""Reading one data file: a CSV or a .npy array -> a validated float32 [F, T], row 0 = the
lowest frequency, with no size check (specgan_jax.data.csv.parse_csv adds that).

A file is one spectrogram: a CSV (no header, comma-separated numbers) or a 2-D .npy array, by
suffix. The options that shape what is read (docs/data.md): data.orientation (rows = time:
transposed), data.freq_order (row 0 the highest frequency: flipped) and data.drop_top_row (the
highest-frequency bin, e.g. a 256-point STFT's Nyquist bin, dropped).

CSV parsing: np.loadtxt (numpy's C parser) is the fast path (about as fast as pandas' C
engine; scripts/bench_data.py compares them, and docs/performance.md has the numbers). Only
when the fast path fails or finds something odd does a slow, line-by-line diagnosis run, so
the error names the exact line, column and problem.
"""

from __future__ import annotations

import fnmatch
import io
import math
from typing import Optional

import numpy as np

from specgan_jax.config import DataConfig
from specgan_jax.errors import DataError

SUFFIXES = (".csv", ".npy")


def is_data_file(name: str, pattern: Optional[str] = None) -> bool:
    """Whether a file NAME in a data folder is data: not hidden, ending in .csv or .npy (any
    case) and, with a pattern, matching that fnmatch glob (case-sensitive on every system)."""
    return (not name.startswith(".") and name.lower().endswith(SUFFIXES)
            and (pattern is None or fnmatch.fnmatchcase(name, pattern)))


# ----------------------------------------------------------------------------------------------
# CSV


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


def read_csv_file(path: str) -> np.ndarray:
    """One CSV as written -> float64 [rows, columns], every value finite (DataError naming the
    file, line and column otherwise)."""
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
    if a.shape[1] == 1:
        # One number per line: a file without any commas, which may be a delimiter the parser
        # swallowed -- let the diagnosis say so (it names only a delimiter problem here).
        err = _diagnose(path, raw.decode("utf-8-sig", errors="replace"))
        if "delimiter" in err.problem:
            raise err
    return a


# ----------------------------------------------------------------------------------------------
# .npy


def read_npy_file(path: str) -> np.ndarray:
    """One .npy as saved -> float64 [rows, columns], every value finite; no pickled objects
    are ever loaded. DataError naming the file for anything else."""
    try:
        a = np.load(path, allow_pickle=False)
    except OSError as e:
        raise DataError(path, f"cannot read: {e.strerror or e}") from None
    except (ValueError, EOFError) as e:
        # Object arrays and non-.npy bytes (numpy then tries, and refuses, to unpickle) land
        # here, as does a truncated file.
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(path, f"not a valid .npy file ({first})") from None
    if not isinstance(a, np.ndarray):  # np.load opens a .npz archive as a mapping
        if hasattr(a, "close"):
            a.close()
        raise DataError(path, "not a .npy array (a .npz archive?); save one 2-D array per file "
                              "with np.save")
    if a.ndim != 2:
        raise DataError(path, f"not 2-D: the array's shape is {a.shape}; expected one "
                              "spectrogram, rows x columns")
    if a.dtype.kind not in "iuf":
        raise DataError(path, f"non-numeric dtype {a.dtype} (expected integers or floats"
                              + ("; save magnitudes, e.g. np.abs(x)" if a.dtype.kind == "c"
                                 else "") + ")")
    if a.size == 0:
        raise DataError(path, f"empty array (shape {a.shape})")
    a = a.astype(np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(path, f"{a[r, c]} is not a finite number (NaN or infinity) at row "
                              f"{r}, column {c} (0-based; {int(bad.sum())} such values)")
    return a


# ----------------------------------------------------------------------------------------------
# Either


def read_array(path: str, data_cfg: DataConfig) -> np.ndarray:
    """Read and validate one data file -> float32 [F_file, T_file] in raw units, row 0 = the
    lowest frequency, of the file's own size (no size check: parse_csv adds it).

    The format is the suffix's (.npy: a NumPy array; anything else: CSV). In this order:
    orientation (time_rows: transposed), frequency order (high_first: rows flipped),
    drop_top_row (the last, highest-frequency row dropped). Raises DataError naming the file
    for a malformed file and for a constant one.
    """
    a = read_npy_file(path) if path.lower().endswith(".npy") else read_csv_file(path)
    if data_cfg.orientation == "time_rows":
        a = a.T  # [T, F] -> [F, T]
    if data_cfg.freq_order == "high_first":
        a = a[::-1]  # row 0 was the highest frequency
    if data_cfg.drop_top_row:
        if a.shape[0] < 2:
            raise DataError(path, f"only {a.shape[0]} frequency bin; data.drop_top_row would "
                                  "leave none")
        a = a[:-1]
    lo, hi = a.min(), a.max()
    if lo == hi:
        raise DataError(path, f"constant file (every value is {lo:g}): zero variance, it "
                              "carries no spectrogram")
    return np.ascontiguousarray(a, dtype=np.float32)
