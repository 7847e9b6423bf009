"""Generate spectrograms from a trained run: `specgan-generate RUN_DIR --n N --out DIR`.

Loads RUN_DIR/config.json, RUN_DIR/moments.npz and the latest (or `--step`) checkpoint, draws
latents, runs G in inference mode, maps the output back to the input's units (denormalise,
inverse log transform if the run used one) and orientation (transposed back for
rows = time data), and writes files in exactly the input format: CSV, no header, comma
separated, one spectrogram per file.

Seeding: sample i of seed S uses z_i = sample_latents(fold_in(PRNGKey(S), i)), so a (seed, i)
pair names one spectrogram whatever --n and --batch-size are (specgan_jax.engine.sampling).
Exit status: 0 done, 1 a user error (no run directory, no checkpoint, ...), 2 bad options.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

import numpy as np

from specgan_jax import atomic
from specgan_jax.cli import flags
from specgan_jax.engine.sampling import interpolation_latents, latents
from specgan_jax.errors import SpecganError
from specgan_jax.run import preview
from specgan_jax.run.run_dir import LoadedRun

EPILOG = """\
examples:
  # 16 CSV files from the latest checkpoint of a run:
  python scripts/generate.py runs/demo-1a2b3c4d --n 16 --out samples

  # The same 4 first samples again (a seed and an index name one sample), as one .npy:
  python scripts/generate.py runs/demo-1a2b3c4d --n 4 --seed 0 --format npy --out samples

  # A picture, from the checkpoint of step 200:
  python scripts/generate.py runs/demo-1a2b3c4d --n 16 --format png --step 200 --out samples

  # Latent interpolation: N spectrograms on the line from sample 0 to sample 1 of the seed:
  python scripts/generate.py runs/demo-1a2b3c4d --n 8 --interpolate --out interp
"""

CSV_FMT = "%.7g"  # 7 significant digits: float32 data round-trips to ~1e-7 relative


def _atomic_save(path: str, write) -> None:
    with atomic.atomic_open(path, "wb") as fh:
        write(fh)


def write_outputs(x: np.ndarray, out_dir: str, fmt: str, stem: str, names: list[str],
                  freq_rows: bool, title: str) -> list[str]:
    """Write x [N, rows, cols] as CSVs (one per sample), one .npy, or one PNG grid."""
    os.makedirs(out_dir, exist_ok=True)
    if fmt == "csv":
        paths = []
        for name, a in zip(names, x):
            p = os.path.join(out_dir, name + ".csv")
            _atomic_save(p, lambda fh, a=a: np.savetxt(fh, a, delimiter=",", fmt=CSV_FMT))
            paths.append(p)
        return paths
    if fmt == "npy":
        p = os.path.join(out_dir, stem + ".npy")
        _atomic_save(p, lambda fh: np.save(fh, x.astype(np.float32)))
        return [p]

    img = x if freq_rows else np.swapaxes(x, 1, 2)  # pictures always have frequency vertical
    vmin, vmax = preview.color_range(img)
    p = os.path.join(out_dir, stem + ".png")
    preview.save_grid(p, img, title=title, vmin=vmin, vmax=vmax)
    return [p]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="specgan-generate", description="Generate spectrograms from a trained SpecGAN run.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by scripts/train.py")
    p.add_argument("--n", type=int, default=16, help="number of spectrograms [default: 16]")
    p.add_argument("--out", default=None,
                   help="output folder [default: RUN_DIR/generated]")
    p.add_argument("--format", choices=("csv", "npy", "png"), default="csv",
                   help="csv: one file per sample in the input's format; npy: one [N, rows, "
                        "cols] float32 array; png: one picture grid [default: csv]")
    p.add_argument("--seed", type=int, default=0, help="latent seed [default: 0]")
    p.add_argument("--start", type=int, default=0,
                   help="first sample index: samples start..start+n-1 of the seed [default: 0]")
    p.add_argument("--step", type=int, default=None,
                   help="checkpoint step to load [default: the latest]")
    p.add_argument("--checkpoint-dir", default="checkpoints", metavar="NAME",
                   help="checkpoint folder inside RUN_DIR, e.g. checkpoints_best_fd (the best "
                        "checkpoint kept by --train.eval_every) [default: checkpoints]")
    p.add_argument("--raw", action="store_true",
                   help="sample from the trained weights instead of their exponential moving "
                        "average (the EMA is the default; runs saved before it existed have "
                        "only the trained weights)")
    p.add_argument("--interpolate", action="store_true",
                   help="n samples on the line from sample 0 to sample 1 of the seed")
    p.add_argument("--batch-size", type=int, default=64,
                   help="generator batch size (does not change the samples) [default: 64]")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.n < 1 or args.batch_size < 1 or args.start < 0:
        print("error: --n and --batch-size must be >= 1, --start >= 0", file=sys.stderr)
        return flags.finish(2, argv)
    try:
        run = LoadedRun(args.run_dir, step=args.step, checkpoint_dir=args.checkpoint_dir,
                        raw=args.raw)
        mc, lc = run.config.model, run.config.loss
        if args.interpolate:
            z = interpolation_latents(args.seed, args.n, mc.latent_dim, lc.latent_dist)
            names = [f"interp_seed{args.seed}_{i:05d}" for i in range(args.n)]
            stem = f"interp_seed{args.seed}"
        else:
            idx = np.arange(args.start, args.start + args.n)
            z = latents(args.seed, idx, mc.latent_dim, lc.latent_dist)
            names = [f"seed{args.seed}_{i:05d}" for i in idx]
            stem = f"seed{args.seed}_{args.start:05d}-{args.start + args.n - 1:05d}"
        x = run.generate(z, args.batch_size)
        out = args.out or os.path.join(args.run_dir, "generated")
        written = write_outputs(x, out, args.format, stem, names,
                                freq_rows=run.config.data.orientation == "freq_rows",
                                title=f"{args.run_dir} step {run.step}, seed {args.seed}")
    except SpecganError as e:
        print(f"error: {e}", file=sys.stderr)
        return flags.finish(1, argv)
    print(f"wrote {len(written)} file(s) ({args.n} spectrograms, {x.shape[1]}x{x.shape[2]}) "
          f"from step {run.step} to {out}")
    return flags.finish(0, argv)


if __name__ == "__main__":
    main()
