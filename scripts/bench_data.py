#!/usr/bin/env python
"""Data-pipeline benchmark (numbers for the data issue; not a test).

    python scripts/bench_data.py [--n-files 2000] [--workers 0] [--moments-gb 1.0] [--dir DIR]

1. parse throughput: N generated 128x128 CSV files (%.6g, like np.savetxt output), cold
   load_dataset (parse + cache write), files/s; also single-process pandas vs np.loadtxt per file;
2. cached reload: load_dataset again with unchanged files (discovery + stat + manifest + mmap);
3. moments peak memory: a float32 .npy of --moments-gb GB on disk, memory-mapped, streamed
   through compute_moments; peak traced Python allocations (tracemalloc) and max RSS.
"""

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from specgan_jax.config import DataConfig  # noqa: E402
from specgan_jax.data.cache import load_dataset  # noqa: E402
from specgan_jax.data.moments import compute_moments  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n-files", type=int, default=2000)
    p.add_argument("--workers", type=int, default=0, help="0 = os.cpu_count()")
    p.add_argument("--moments-gb", type=float, default=1.0)
    p.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    a = p.parse_args(argv)
    work = a.dir or tempfile.mkdtemp(prefix="bench_data_")
    src, cache = os.path.join(work, "csv"), os.path.join(work, "cache")
    shutil.rmtree(cache, ignore_errors=True)
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(src, "c"), exist_ok=True)
    for i in range(a.n_files):
        path = os.path.join(src, "c", f"{i:05d}.csv")
        if not os.path.exists(path):
            np.savetxt(path, rng.normal(-5, 2, (128, 128)), delimiter=",", fmt="%.6g")
    print(f"cpus: {os.cpu_count()}, files: {a.n_files} x 128x128 CSV in {src}")

    import pandas as pd
    sample = [os.path.join(src, "c", f"{i:05d}.csv") for i in range(min(50, a.n_files))]
    for name, fn in (("pandas C engine", lambda f: pd.read_csv(f, header=None,
                                                               dtype=np.float64).to_numpy()),
                     ("np.loadtxt", lambda f: np.loadtxt(f, delimiter=","))):
        t0 = time.perf_counter()
        for f in sample:
            fn(f)
        print(f"  single process, {name}: {(time.perf_counter() - t0) / len(sample) * 1e3:.2f} "
              "ms/file")

    cfg = DataConfig(path=src, cache_dir=cache, workers=a.workers)
    t0 = time.perf_counter()
    ds = load_dataset(cfg, progress=False)
    dt = time.perf_counter() - t0
    print(f"parse (cold, {cfg.workers or os.cpu_count()} workers, incl. cache write): {dt:.2f} s"
          f" = {len(ds.paths) / dt:.0f} files/s   [target >= 150 files/s]")
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        ds2 = load_dataset(cfg, progress=False)
        times.append(time.perf_counter() - t0)
        assert ds2.from_cache
    print(f"cached reload: best {min(times):.3f} s, worst {max(times):.3f} s of 3   "
          "[target < 0.3 s]")

    n = int(a.moments_gb * 2 ** 30 // (128 * 128 * 4))
    big = os.path.join(work, "big.npy")
    mm = np.lib.format.open_memmap(big, mode="w+", dtype=np.float32, shape=(n, 128, 128))
    for s in range(0, n, 1024):
        mm[s:s + 1024] = rng.normal(-5, 2, (min(1024, n - s), 128, 128)).astype(np.float32)
    mm.flush()
    del mm
    x = np.load(big, mmap_mode="r")
    tracemalloc.start()
    t0 = time.perf_counter()
    m = compute_moments(x, chunk_size=64)
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    print(f"moments: {n} spectrograms ({x.nbytes / 2 ** 30:.2f} GiB float32, "
          f"{x.nbytes * 2 / 2 ** 30:.2f} GiB if stacked in float64 as the seed does) in {dt:.1f} s;"
          f" peak traced allocations {peak / 2 ** 20:.1f} MiB, max RSS {rss:.0f} MiB "
          "(RSS includes the page cache of the mmap'd file)")
    assert m.count == n
    if not a.dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
