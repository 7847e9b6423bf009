#!/usr/bin/env python
"""Write the procedural demo dataset as CSV class folders -- the input format training expects.

    python scripts/make_demo_data.py --out demo_data --n-per-class 256 --seed 0

gives demo_data/{harmonic,chirp,click,noise_band}/<class>_00000.csv ..., each a 128 x 128 grid,
no header, rows = frequency bins (row 0 = lowest), columns = time frames, log-magnitude values.
"""

import argparse
import os
import sys

# Run from a source checkout without `pip install -e .`: the package is the parent folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from specgan_jax.data.demo import make_demo_dataset, write_csv_folders  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (class subfolders go inside)")
    p.add_argument("--n-per-class", type=int, default=256, help="files per class")
    p.add_argument("--seed", type=int, default=0, help="same seed, same files")
    a = p.parse_args(argv)
    if a.n_per_class < 1:
        p.error("--n-per-class must be >= 1")
    x, labels, names = make_demo_dataset(a.n_per_class, a.seed)
    paths = write_csv_folders(a.out, x, labels, names)
    print(f"wrote {len(paths)} CSV files ({', '.join(names)}) to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
