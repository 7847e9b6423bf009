#!/usr/bin/env python
"""Write the procedural demo dataset as CSV class folders -- the input format training expects.

    python scripts/make_demo_data.py --out demo_data --n-per-class 256 --seed 0

gives demo_data/{harmonic,chirp,click,noise_band}/<class>_00000.csv ..., each a 128 x 128 grid,
no header, rows = frequency bins (row 0 = lowest), columns = time frames, log-magnitude values.

    python scripts/make_demo_data.py --kind calls --out calls_train --n-per-class 100 --seed 0
    python scripts/make_demo_data.py --kind calls --out calls_heldout --n-per-class 100 --seed 1

gives the harder "animal calls" set (specgan_jax/data/calls.py: two trills and two whistles that
differ in fine structure, over field-recording backgrounds); another seed, other samples.
"""

import argparse
import os
import sys

# Run from a source checkout without `pip install -e .`: the package is the parent folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from specgan_jax.data.calls import make_calls_dataset  # noqa: E402
from specgan_jax.data.demo import make_demo_dataset, write_csv_folders  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (class subfolders go inside)")
    p.add_argument("--n-per-class", type=int, default=256, help="files per class")
    p.add_argument("--seed", type=int, default=0, help="same seed, same files")
    p.add_argument("--kind", choices=("demo", "calls"), default="demo",
                   help="demo: the demo run's 4 sound types; calls: the animal-calls set")
    a = p.parse_args(argv)
    if a.n_per_class < 1:
        p.error("--n-per-class must be >= 1")
    make = make_calls_dataset if a.kind == "calls" else make_demo_dataset
    x, labels, names = make(a.n_per_class, a.seed)
    paths = write_csv_folders(a.out, x, labels, names)
    print(f"wrote {len(paths)} CSV files ({', '.join(names)}) to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
