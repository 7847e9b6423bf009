"""A data source (CSV / .npy files) as one Dataset, parsed once: a float32 .npy (memory-mapped
on reload) plus a JSON manifest.

The manifest lists every source file's path, size and mtime, the labels and the options that
shaped the array. A reload whose file list, sizes, mtimes and options all match skips parsing
entirely; anything else re-parses (specgan_jax.data.csv). The public entry point is
`load_dataset(data_cfg)`; everything it returns is in the files' raw units, shaped [N, F, T].
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from typing import Optional, Sequence

import numpy as np

from specgan_jax import atomic
from specgan_jax.config import DataConfig
from specgan_jax.data import windows
from specgan_jax.data.csv import discover, parse_all
from specgan_jax.errors import DataError

CACHE_VERSION = 1


@dataclasses.dataclass
class Dataset:
    """Parsed spectrograms in raw units.

    x: [N, F, T] float32 (np.memmap when it comes from the cache), F = frequency bins.
    labels: [N] int32 indices into class_names. paths: the N source files, in order.
    skipped: (path, reason) of every file left out under on_bad_file="skip".
    Long files (data.windows; specgan_jax.data.windows): x holds every file's non-overlapping
    windows (labels and paths per window), and `frames` [L_total, F] (time-major, files end
    to end), `lengths` [n_files], `file_labels` [n_files] and `file_paths` the whole files,
    from which training draws random windows. None for one-example-per-file data.
    """

    x: np.ndarray
    labels: np.ndarray
    class_names: list
    paths: list
    skipped: list
    from_cache: bool = False
    frames: Optional[np.ndarray] = None
    lengths: Optional[np.ndarray] = None
    file_labels: Optional[np.ndarray] = None
    file_paths: Optional[list] = None

    @property
    def windowed(self) -> bool:
        return self.frames is not None


def _windowed(frames: np.ndarray, lengths, file_labels, file_paths: list, class_names: list,
              skipped: list, n_time: int, from_cache: bool) -> Dataset:
    x, labels, files = windows.tiles(frames, lengths, file_labels, n_time)
    return Dataset(x=x, labels=labels, class_names=class_names,
                   paths=[file_paths[i] for i in files], skipped=skipped, from_cache=from_cache,
                   frames=frames, lengths=np.asarray(lengths, np.int64),
                   file_labels=np.asarray(file_labels, np.int32), file_paths=list(file_paths))


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "specgan_jax")


def _options(data_cfg: DataConfig) -> dict:
    """The options that shape the cached array; a change invalidates the cache."""
    return {"version": CACHE_VERSION, "orientation": data_cfg.orientation,
            "shape": [data_cfg.n_freq, data_cfg.n_time], "shape_policy": data_cfg.shape_policy,
            "on_bad_file": data_cfg.on_bad_file, "dtype": "float32",
            "pattern": data_cfg.pattern, "freq_order": data_cfg.freq_order,
            "drop_top_row": data_cfg.drop_top_row, "windows": data_cfg.windows}


def _cache_paths(data_cfg: DataConfig) -> tuple[str, str]:
    src = os.path.abspath(data_cfg.file_list or data_cfg.path)
    key = hashlib.sha1(json.dumps([src, _options(data_cfg)]).encode()).hexdigest()[:16]
    folder = os.path.join(data_cfg.cache_dir or _default_cache_dir(), key)
    return os.path.join(folder, "data.npy"), os.path.join(folder, "manifest.json")


def _stat(paths: Sequence[str]) -> list[list]:
    out = []
    for p in paths:
        st = os.stat(p)
        out.append([p, st.st_size, st.st_mtime_ns])
    return out


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _try_cache(npy_path: str, manifest_path: str, files: list, labels: list,
               class_names: list, data_cfg: DataConfig) -> Optional[Dataset]:
    """The cached Dataset if its manifest matches the current files and options, else None."""
    try:
        with open(manifest_path, encoding="utf-8") as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    if (m.get("options") != _options(data_cfg) or m.get("files") != files
            or m.get("labels_all") != labels or m.get("class_names") != class_names):
        return None
    try:
        x = np.load(npy_path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if "lengths" in m:  # long files: [L_total, F] frames
        if x.shape != (sum(m["lengths"]), data_cfg.n_freq):
            return None
        return _windowed(x, m["lengths"], m["labels"], list(m["paths"]), class_names,
                         [tuple(s) for s in m["skipped"]], data_cfg.n_time, from_cache=True)
    if x.shape != (len(m["paths"]), data_cfg.n_freq, data_cfg.n_time):
        return None
    return Dataset(x=x, labels=np.asarray(m["labels"], np.int32), class_names=class_names,
                   paths=list(m["paths"]), skipped=[tuple(s) for s in m["skipped"]],
                   from_cache=True)


def load_dataset(data_cfg: DataConfig, progress: bool = True) -> Dataset:
    """Discover, validate and parse a data source (or reuse its cache) -> Dataset.

    Raises DataError for a missing/empty source, and for the first malformed file when
    data_cfg.on_bad_file == "error". With "skip", malformed files are left out and listed in
    Dataset.skipped as (path, reason); if every file is bad, DataError.
    """
    paths, labels, class_names = discover(data_cfg)
    files = _stat(paths)
    if data_cfg.use_cache:
        npy_path, manifest_path = _cache_paths(data_cfg)
        os.makedirs(os.path.dirname(npy_path), exist_ok=True)
        hit = _try_cache(npy_path, manifest_path, files, labels, class_names, data_cfg)
        if hit is not None:
            return hit
        # Invalidate first: a crash between replacing the .npy and the manifest must never
        # leave an old manifest describing a new array.
        _remove(manifest_path)
        work_dir = os.path.dirname(npy_path)
    else:
        tmp_holder = tempfile.TemporaryDirectory(prefix="specgan_parse_")
        work_dir = tmp_holder.name

    n, f_, t_ = len(paths), data_cfg.n_freq, data_cfg.n_time
    lengths = windows.window_lengths(paths, data_cfg)  # None: one example per file
    fd, tmp_npy = tempfile.mkstemp(dir=work_dir, prefix=".tmp_", suffix=".npy")
    os.close(fd)
    try:
        if lengths is None:
            shape, jobs = (n, f_, t_), None
        else:
            shape = (sum(lengths), f_)
            jobs = [(i, p, int(o), ln) for i, (p, o, ln)
                    in enumerate(zip(paths, windows.offsets(lengths), lengths))]
        np.lib.format.open_memmap(tmp_npy, mode="w+", dtype=np.float32, shape=shape).flush()
        bad = (parse_all(tmp_npy, paths, data_cfg, progress) if lengths is None else
               parse_all(tmp_npy, paths, data_cfg, progress, jobs=jobs,
                         write=windows.write_frames))
        bad_rows = {row for row, _, _ in bad}
        skipped = [(p, reason) for _, p, reason in sorted(bad)]
        keep = [i for i in range(n) if i not in bad_rows]
        if not keep:
            raise DataError(data_cfg.file_list or data_cfg.path,
                            f"all {n} files are malformed; first: {skipped[0][1]}")
        if bad_rows:
            blocks = (None if lengths is None else
                      [(int(o), ln) for o, ln in zip(windows.offsets(lengths), lengths)])
            tmp_npy = _compact(tmp_npy, keep, work_dir, blocks)
        kept_paths = [paths[i] for i in keep]
        kept_labels = [labels[i] for i in keep]
        manifest = {"options": _options(data_cfg), "files": files, "labels_all": labels,
                    "class_names": class_names, "paths": kept_paths,
                    "labels": kept_labels, "skipped": skipped}
        if lengths is not None:
            manifest["lengths"] = [lengths[i] for i in keep]
        if data_cfg.use_cache:
            os.replace(tmp_npy, npy_path)
            atomic.write_text(manifest_path, json.dumps(manifest), fsync=True)
            x = np.load(npy_path, mmap_mode="r")
        else:
            x = np.load(tmp_npy)  # into memory; the temporary folder goes away
    finally:
        _remove(tmp_npy)
        if not data_cfg.use_cache:
            tmp_holder.cleanup()
    if lengths is not None:
        return _windowed(x, manifest["lengths"], kept_labels, kept_paths, class_names, skipped,
                         t_, from_cache=False)
    return Dataset(x=x, labels=np.asarray(kept_labels, np.int32), class_names=class_names,
                   paths=kept_paths, skipped=skipped, from_cache=False)


def _compact(src_npy: str, keep: list[int], work_dir: str,
             blocks: Optional[list[tuple[int, int]]] = None) -> str:
    """Copy the kept rows of src_npy into a new .npy, streaming, and delete src_npy.
    blocks: file i's (first row, rows) when a file is a block of rows (long files)."""
    src = np.load(src_npy, mmap_mode="r")
    fd, dst_path = tempfile.mkstemp(dir=work_dir, prefix=".tmp_", suffix=".npy")
    os.close(fd)
    rows = len(keep) if blocks is None else sum(blocks[i][1] for i in keep)
    dst = np.lib.format.open_memmap(dst_path, mode="w+", dtype=np.float32,
                                    shape=(rows,) + src.shape[1:])
    if blocks is not None:
        at = 0
        for i in keep:
            start, n = blocks[i]
            dst[at:at + n] = src[start:start + n]
            at += n
    else:
        for s in range(0, len(keep), 256):
            dst[s:s + 256] = src[keep[s:s + 256]]
    dst.flush()
    del dst, src
    _remove(src_npy)
    return dst_path
