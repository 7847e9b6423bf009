"""`scripts/compute_moments.py`: per-frequency moments of a spectrogram folder (CSV / .npy; the
original's `moments` mode).

    python scripts/compute_moments.py DATA_DIR [--out moments.npz]
    python scripts/compute_moments.py data/linear --log-transform --out linear_moments.npz
    python scripts/compute_moments.py data/ --on-bad-file skip      # list and leave out bad files

Runs the same discovery and validation as training (specgan_jax.data.cache.load_dataset): a
malformed file stops it with exit status 2 and a message naming the file, line and problem.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from specgan_jax.config import DataConfig
from specgan_jax.data.cache import load_dataset
from specgan_jax.data.moments import moments_for
from specgan_jax.errors import SpecganError


def main(argv=None) -> int:
    """0 on success, 2 on a data error or a bad option (as argparse)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data_dir", help="folder of CSV / .npy files, or of class subfolders of them")
    p.add_argument("--out", default="moments.npz", help="output .npz (default: moments.npz)")
    d = DataConfig()
    p.add_argument("--orientation", choices=("freq_rows", "time_rows"), default=d.orientation)
    p.add_argument("--pattern", default=None, metavar="GLOB",
                   help="only files whose name matches this glob (as --data.pattern)")
    p.add_argument("--freq-order", choices=("low_first", "high_first"), default=d.freq_order,
                   help="high_first: row 0 is the highest frequency (as --data.freq_order)")
    p.add_argument("--drop-top-row", action="store_true",
                   help="drop the highest-frequency row of every file (as --data.drop_top_row)")
    p.add_argument("--log-transform", action="store_true", help="moments of log(x + eps)")
    p.add_argument("--log-eps", type=float, default=d.log_eps)
    p.add_argument("--std-floor", type=float, default=d.std_floor,
                   help="std floor relative to the median bin std (default %(default)s)")
    p.add_argument("--shape-policy", choices=("error", "crop_pad"), default=d.shape_policy)
    p.add_argument("--on-bad-file", choices=("error", "skip"), default=d.on_bad_file)
    p.add_argument("--no-cache", action="store_true", help="parse without reading/writing a cache")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    try:
        cfg = DataConfig(path=a.data_dir, orientation=a.orientation, pattern=a.pattern,
                         freq_order=a.freq_order, drop_top_row=a.drop_top_row,
                         log_transform=a.log_transform,
                         log_eps=a.log_eps, std_floor=a.std_floor, shape_policy=a.shape_policy,
                         on_bad_file=a.on_bad_file, use_cache=not a.no_cache,
                         cache_dir=a.cache_dir)
        ds = load_dataset(cfg, progress=not a.quiet)
        for path, reason in ds.skipped:
            print(f"skipped {path}: {reason}", file=sys.stderr)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = moments_for(ds, cfg, progress=not a.quiet)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        m.save(a.out)
    except (SpecganError, ValueError) as e:  # ValueError: a DataConfig check
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{a.out}: {m.count} spectrograms x {m.frames} frames, {m.n_freq} frequency bins, "
          f"{len(ds.class_names)} class(es), {len(ds.skipped)} skipped; mean in "
          f"[{m.mean.min():.3g}, {m.mean.max():.3g}], std in [{m.std.min():.3g}, "
          f"{m.std.max():.3g}]" + (", log transform" if m.log_transform else ""))
    return 0
