"""Generate spectrograms from a trained run: `specgan-generate RUN_DIR --n N --out DIR`.

Loads RUN_DIR/config.json, RUN_DIR/moments.npz and the latest (or `--step`) checkpoint, draws
latents, runs G in inference mode, maps the output back to the input's units (denormalise,
inverse log transform if the run used one), orientation (transposed back for rows = time
data) and frequency order (flipped back for data.freq_order 'high_first'), and writes files in
exactly the input format: CSV, no header, comma separated, one spectrogram per file. Pictures
always have the lowest frequency at the bottom.

Seeding: sample i of seed S uses z_i = sample_latents(fold_in(PRNGKey(S), i)), so a (seed, i)
pair names one spectrogram whatever --n and --batch-size are (specgan_jax.engine.sampling).
A class-conditional run names one spectrogram by (seed, class, i): sample i of every class uses
the same z_i, so the same i shows the classes at the same noise. --truncation t multiplies
every z by t (the latents' mean is 0).
Exit status: 0 done, 1 a user error (no run directory, no checkpoint, unknown class, ...),
2 bad options.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Optional

import numpy as np

from specgan_jax import atomic
from specgan_jax.audio import wav_out
from specgan_jax.cli import flags
from specgan_jax.engine.sampling import interpolation_latents, latents, truncate
from specgan_jax.errors import RunDirError, SpecganError
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

  # Fidelity over diversity: latents shrunk toward their mean by 0.7:
  python scripts/generate.py runs/demo-1a2b3c4d --n 16 --truncation 0.7 --out samples

class-conditional runs (--model.conditional), e.g. trained on data/type_1/, data/type_3/, ...:
  # 8 spectrograms of class type_3, written as samples/type_3/type_3_seed0_00000.csv ...:
  python scripts/generate.py runs/types-1a2b3c4d --class type_3 --per-class 8 --out samples

  # 4 of every class, one class folder each (the input's layout); --n 12 instead: 12 in
  # total, the classes taken in turn:
  python scripts/generate.py runs/types-1a2b3c4d --per-class 4 --out samples

  # One interpolation strip of 8 per class as one picture, one row per class:
  python scripts/generate.py runs/types-1a2b3c4d --interpolate --n 8 --format png --out interp
"""

CSV_FMT = "%.7g"  # 7 significant digits: float32 data round-trips to ~1e-7 relative


def _atomic_save(path: str, write) -> None:
    with atomic.atomic_open(path, "wb") as fh:
        write(fh)


def file_order(x: np.ndarray, freq_rows: bool, high_first: bool) -> np.ndarray:
    """x [N, rows, cols], lowest frequency first, in the data files' frequency order: for
    high_first data (row 0, or column 0 for rows = time, the highest frequency) flipped."""
    return np.flip(x, axis=1 if freq_rows else 2) if high_first else x


def write_outputs(x: np.ndarray, out_dir: str, fmt: str, stem: str, names: list[str],
                  freq_rows: bool, title: str, audio: Optional[dict] = None,
                  high_first: bool = False) -> list[str]:
    """Write x [N, rows, cols] (lowest frequency first) as CSVs (one per sample) or one .npy,
    both in the data's frequency order (high_first: flipped), or as one PNG grid or WAVs
    (Griffin-Lim with the `audio` parameters)."""
    if fmt == "wav":
        return wav_out.write_wavs(x, out_dir, names, freq_rows, audio, audio["iterations"])
    os.makedirs(out_dir, exist_ok=True)
    if fmt in ("csv", "npy"):
        x = file_order(x, freq_rows, high_first)
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


def safe_name(name: str) -> str:
    """A class name as a file / folder name (class names come from folder names, but a file
    list's "PATH<TAB>CLASS" may hold any text)."""
    safe = re.sub(r"[^\w.+-]", "_", name)
    return "_" + safe if safe in ("", ".", "..") else safe


def class_plan(n_classes_chosen: int, n: int, per_class: Optional[int], start: int
               ) -> list[np.ndarray]:
    """Sample indices of each chosen class: start..start+per_class-1 for every class, or, with
    per_class None, n in total with the classes taken in turn (sample j of the n goes to class
    j mod K as its index start + j // K)."""
    if per_class is not None:
        return [np.arange(start, start + per_class)] * n_classes_chosen
    counts = [len(range(k, n, n_classes_chosen)) for k in range(n_classes_chosen)]
    return [np.arange(start, start + c) for c in counts]


def write_class_outputs(parts: list, out_dir: str, fmt: str, png_stem: str, freq_rows: bool,
                        title: str, audio: Optional[dict] = None,
                        high_first: bool = False) -> list[str]:
    """parts: (class name, x [n_k, rows, cols], sample names, stem) per class. CSVs go into one
    folder per class (OUT/<class>/, the input's layout), .npy files one per class, and a PNG is
    one grid with a row per class."""
    parts = [p for p in parts if len(p[1])]
    if fmt == "png":
        rows = [x if freq_rows else np.swapaxes(x, 1, 2) for _, x, _, _ in parts]
        vmin, vmax = preview.color_range(np.concatenate(rows))
        path = os.path.join(out_dir, png_stem + ".png")
        os.makedirs(out_dir, exist_ok=True)
        return [preview.save_class_grid(path, rows, None, [c for c, _, _, _ in parts],
                                        title=title, vmin=vmin, vmax=vmax)]
    written = []
    for cls, x, names, stem in parts:
        folder = os.path.join(out_dir, safe_name(cls)) if fmt in ("csv", "wav") else out_dir
        written += write_outputs(x, folder, fmt, stem, names, freq_rows, title, audio,
                                 high_first)
    return written


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="specgan-generate", description="Generate spectrograms from a trained SpecGAN run.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by scripts/train.py")
    p.add_argument("--n", type=int, default=None,
                   help="number of spectrograms [default: 16]; for a class-conditional run "
                        "without --per-class, in total, the chosen classes taken in turn "
                        "(round-robin, not by the training set's class frequencies); with "
                        "--interpolate, the points of each strip")
    p.add_argument("--out", default=None,
                   help="output folder [default: RUN_DIR/generated]")
    p.add_argument("--audio-params", default=None, metavar="FILE",
                   help="--format wav: audio_params.json of the data (default: the one beside "
                        "the run's data)")
    p.add_argument("--griffin-lim-iterations", type=int, default=16,
                   help="--format wav: Griffin-Lim iterations (default 16, the original's)")
    p.add_argument("--format", choices=("csv", "npy", "png", "wav"), default="csv",
                   help="csv: one file per sample in the input's format; npy: one [N, rows, "
                        "cols] float32 array; png: one picture grid; wav: one 16-bit WAV per sample "
                        "(Griffin-Lim; data made by specgan-audio-to-spectrograms) [default: csv]")
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
                   help="n samples on the line from sample 0 to sample 1 of the seed; for a "
                        "class-conditional run, one such strip per chosen class (the same "
                        "latents), one row per class in a PNG")
    p.add_argument("--class", dest="classes", action="append", default=None, metavar="NAME",
                   help="class-conditional runs: generate this class (repeatable; names as in "
                        "RUN_DIR/labels.json) [default: every class]")
    p.add_argument("--per-class", type=int, default=None, metavar="N",
                   help="class-conditional runs: N spectrograms of each chosen class "
                        "(samples start..start+N-1 of the seed, the same latents for every "
                        "class)")
    p.add_argument("--truncation", type=float, default=1.0, metavar="T",
                   help="truncation trick, 0 < T <= 1: every latent z becomes T z (shrunk "
                        "toward the latents' mean, 0): closer to typical samples, less varied "
                        "[default: 1, off]")
    p.add_argument("--batch-size", type=int, default=64,
                   help="generator batch size (does not change the samples) [default: 64]")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    problems = []
    if (args.n is not None and args.n < 1) or args.batch_size < 1 or args.start < 0:
        problems.append("--n and --batch-size must be >= 1, --start >= 0")
    if args.per_class is not None and args.per_class < 1:
        problems.append("--per-class must be >= 1")
    if args.n is not None and args.per_class is not None:
        problems.append("give --n (in total) or --per-class (of each class), not both")
    if not 0.0 < args.truncation <= 1.0:
        problems.append(f"--truncation must be in (0, 1]; got {args.truncation}")
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return flags.finish(2, argv)
    try:
        run = LoadedRun(args.run_dir, step=args.step, checkpoint_dir=args.checkpoint_dir,
                        raw=args.raw)
        out = args.out or os.path.join(args.run_dir, "generated")
        freq_rows = run.config.data.orientation == "freq_rows"
        args.audio = None
        if args.format == "wav":  # 16-bit WAV through Griffin-Lim (docs/audio.md)
            args.audio = dict(wav_out.find_params(args.audio_params, run.config.data.path),
                              iterations=args.griffin_lim_iterations)
        title = (f"{args.run_dir} step {run.step}, seed {args.seed}"
                 + (f", truncation {args.truncation:g}" if args.truncation < 1 else ""))
        if run.conditional:
            written, total = _generate_by_class(run, args, out, freq_rows, title)
        else:
            if args.classes or args.per_class is not None:
                raise RunDirError(run.unconditional_message() + " (--class, --per-class)")
            written, total = _generate(run, args, out, freq_rows, title)
    except SpecganError as e:
        print(f"error: {e}", file=sys.stderr)
        return flags.finish(1, argv)
    print(f"wrote {len(written)} file(s) ({total}) from step {run.step} to {out}")
    return flags.finish(0, argv)


def _high_first(run: LoadedRun) -> bool:
    """Whether the run's data files hold the highest frequency first (its config.json)."""
    return run.config.data.freq_order == "high_first"


def _latents(run: LoadedRun, args, idx=None, count=None):
    mc, lc = run.config.model, run.config.loss
    if args.interpolate:
        z = interpolation_latents(args.seed, count, mc.latent_dim, lc.latent_dist)
    else:
        z = latents(args.seed, idx, mc.latent_dim, lc.latent_dist)
    return np.asarray(truncate(z, args.truncation))


def _generate(run: LoadedRun, args, out: str, freq_rows: bool, title: str):
    n = args.n or 16
    if args.interpolate:
        z = _latents(run, args, count=n)
        names = [f"interp_seed{args.seed}_{i:05d}" for i in range(n)]
        stem = f"interp_seed{args.seed}"
    else:
        idx = np.arange(args.start, args.start + n)
        z = _latents(run, args, idx=idx)
        names = [f"seed{args.seed}_{i:05d}" for i in idx]
        stem = f"seed{args.seed}_{args.start:05d}-{args.start + n - 1:05d}"
    x = run.generate(z, batch_size=args.batch_size)
    written = write_outputs(x, out, args.format, stem, names, freq_rows, title, args.audio,
                            _high_first(run))
    return written, f"{n} spectrograms, {x.shape[1]}x{x.shape[2]}"


def _generate_by_class(run: LoadedRun, args, out: str, freq_rows: bool, title: str):
    chosen = list(dict.fromkeys(args.classes)) if args.classes else list(run.class_names)
    ids = run.class_ids(chosen)
    s = args.seed
    if args.interpolate:
        count = args.per_class or args.n or 16
        z1 = _latents(run, args, count=count)
        plans = [np.arange(count)] * len(ids)
        z = np.concatenate([z1] * len(ids))
        kinds = [(f"{safe_name(c)}_interp_seed{s}", f"{safe_name(c)}_interp_seed{s}")
                 for c in chosen]
        png_stem = f"interp_seed{s}"
    else:
        plans = class_plan(len(ids), args.n or 16, args.per_class, args.start)
        z = _latents(run, args, idx=np.concatenate(plans))
        kinds = [(f"{safe_name(c)}_seed{s}",
                  f"{safe_name(c)}_seed{s}_{p[0] if len(p) else 0:05d}-"
                  f"{p[-1] if len(p) else 0:05d}") for c, p in zip(chosen, plans)]
        png_stem = f"seed{s}_{args.start:05d}"
    if len(chosen) == 1:
        png_stem = f"{safe_name(chosen[0])}_{png_stem}"
    labels = np.concatenate([np.full(len(p), k, np.int32) for k, p in zip(ids, plans)])
    x = run.generate(z, labels=labels, batch_size=args.batch_size)
    parts, at = [], 0
    for c, p, (prefix, stem) in zip(chosen, plans, kinds):
        parts.append((c, x[at:at + len(p)], [f"{prefix}_{i:05d}" for i in p], stem))
        at += len(p)
    written = write_class_outputs(parts, out, args.format, png_stem, freq_rows, title,
                                  args.audio, _high_first(run))
    counts = ", ".join(f"{c} {len(p)}" for c, p in zip(chosen, plans))
    return written, f"{len(x)} spectrograms, {x.shape[1]}x{x.shape[2]}; {counts}"


if __name__ == "__main__":
    main()
