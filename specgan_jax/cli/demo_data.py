"""`scripts/make_demo_data.py`: write the procedural demo dataset as CSV class folders -- the
input format training expects.

    python scripts/make_demo_data.py --out demo_data --n-per-class 256 --seed 0

gives demo_data/{harmonic,chirp,click,noise_band}/<class>_00000.csv ..., each a 128 x 128 grid,
no header, rows = frequency bins (row 0 = lowest), columns = time frames, log-magnitude values.

    python scripts/make_demo_data.py --kind calls --out calls_train --n-per-class 100 --seed 0
    python scripts/make_demo_data.py --kind calls --out calls_heldout --n-per-class 100 --seed 1

gives the harder "animal calls" set (specgan_jax/data/calls.py: two trills and two whistles that
differ in fine structure, over field-recording backgrounds); another seed, other samples.

    python scripts/make_demo_data.py --out demo_64x256 --shape 64 256
    python scripts/make_demo_data.py --out demo_long --length 1024 --freq-order high_first

other sizes (the sounds' geometry scales with F and T: specgan_jax/data/demo.py), and long
recordings: 1024-frame files with a 128-frame clip's sounds every 128 frames, written with row 0
the highest frequency (as many radio instruments do; train with --data.freq_order high_first).
"""

from __future__ import annotations

import argparse
import sys

from specgan_jax.data.calls import make_calls_dataset
from specgan_jax.data.demo import make_demo_dataset, write_csv_folders


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (class subfolders go inside)")
    p.add_argument("--n-per-class", type=int, default=256, help="files per class")
    p.add_argument("--seed", type=int, default=0, help="same seed, same files")
    p.add_argument("--kind", choices=("demo", "calls"), default="demo",
                   help="demo: the demo run's 4 sound types; calls: the animal-calls set")
    p.add_argument("--shape", type=int, nargs=2, metavar=("F", "T"), default=(128, 128),
                   help="frequency bins x time frames of a clip, any positive sizes\n"
                        "(the sounds scale with them) [default: 128 128]")
    p.add_argument("--length", type=int, metavar="L",
                   help="time frames per file, >= T [default: T]; more: a long recording\n"
                        "with a T-frame clip's sounds in every T frames")
    p.add_argument("--freq-order", choices=("low_first", "high_first"), default="low_first",
                   help="row 0 of each file: the lowest frequency, or the highest\n"
                        "(read it with --data.freq_order high_first)")
    return p


def main(argv=None) -> int:
    """0 on success; a bad option exits 2 with a one-line message (argparse)."""
    p = _parser()
    a = p.parse_args(argv)
    n_freq, n_time = a.shape
    length = n_time if a.length is None else a.length
    if a.n_per_class < 1:
        p.error("--n-per-class must be >= 1")
    if n_freq < 1 or n_time < 1:
        p.error(f"--shape {n_freq} {n_time}: both sizes must be positive")
    if length < n_time:
        p.error(f"--length {length} is shorter than a clip (--shape's T = {n_time}); "
                "give L >= T")
    make = make_calls_dataset if a.kind == "calls" else make_demo_dataset
    x, labels, names = make(a.n_per_class, a.seed, n_freq, n_time, length)
    if a.freq_order == "high_first":
        x = x[:, ::-1, :]  # row 0 = the highest frequency
    paths = write_csv_folders(a.out, x, labels, names)
    print(f"wrote {len(paths)} CSV files ({', '.join(names)}), each {n_freq} x {length} "
          f"(frequency x time, {a.freq_order}), to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
