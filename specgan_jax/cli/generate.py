"""Generate spectrograms from a trained run: `specgan-generate RUN_DIR --n N --out DIR`.

Loads RUN_DIR/config.json, RUN_DIR/moments.npz and the latest (or `--step`) checkpoint, draws
latents, runs G in inference mode, maps the output back to the input's units (denormalise,
inverse log transform if the run used one) and orientation (transposed back for
rows = time data), and writes files in exactly the input format: CSV, no header, comma
separated, one spectrogram per file.

Seeding: sample i of seed S uses z_i = sample_latents(fold_in(PRNGKey(S), i)), so a (seed, i)
pair names one spectrogram whatever --n and --batch-size are.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

import numpy as np

from specgan_jax.cli import flags as cli
from specgan_jax import atomic

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


class GenerateError(RuntimeError):
    """A user error (missing run dir, no checkpoint, ...): printed without a traceback."""


def latents(seed: int, indices: np.ndarray, latent_dim: int, dist: str):
    """z [len(indices), latent_dim]: row j = sample_latents(fold_in(PRNGKey(seed), i_j), 1)."""
    import jax

    from specgan_jax.engine.step import sample_latents

    key = jax.random.PRNGKey(seed)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(np.asarray(indices, np.uint32))
    return jax.vmap(lambda k: sample_latents(k, 1, latent_dim, dist)[0])(keys)


def interpolation_latents(seed: int, n: int, latent_dim: int, dist: str):
    """n latents on the segment from sample 0 to sample 1 of `seed` (linear, endpoints
    included; for uniform z the segment stays inside the cube the generator was trained on)."""
    import jax.numpy as jnp

    ends = latents(seed, np.arange(2), latent_dim, dist)  # [2, latent]
    w = jnp.linspace(0.0, 1.0, n)[:, None]  # [n, 1]
    return (1 - w) * ends[0] + w * ends[1]


class LoadedRun:
    """A run directory's generator, ready to sample: config, moments, G variables, step."""

    def __init__(self, run_dir: str, step: Optional[int] = None,
                 checkpoint_dir: str = "checkpoints"):
        import jax

        from specgan_jax.run import checkpoint as ckpt_lib
        from specgan_jax.engine import step as train_step
        from specgan_jax.data.moments import Moments
        from specgan_jax.training.loop import load_run_config

        if not os.path.isdir(run_dir):
            raise GenerateError(f"run directory {run_dir} does not exist")
        for name in ("config.json", "moments.npz"):
            if not os.path.exists(os.path.join(run_dir, name)):
                raise GenerateError(f"{run_dir} is not a run directory: {name} is missing "
                                    "(scripts/train.py writes it)")
        self.config = load_run_config(run_dir)
        self.moments = Moments.load(os.path.join(run_dir, "moments.npz"))
        ckdir = os.path.join(run_dir, checkpoint_dir)
        if not os.path.isdir(ckdir):
            raise GenerateError(f"no checkpoint in {run_dir} (no {checkpoint_dir}/ folder)")
        c = self.config
        abstract = jax.eval_shape(lambda k: train_step.create_train_state(
            c.model, c.loss, c.optim, k), jax.random.PRNGKey(0))
        dev = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=dev),
                                abstract)
        ckpt = ckpt_lib.Checkpointer(ckdir, use_async=False)
        try:
            restored = ckpt.restore(abstract, step=step)
        except ckpt_lib.CheckpointError as e:
            raise GenerateError(str(e)) from None
        finally:
            ckpt.close()
        self.step = restored.step
        self.g_params = restored.state.g_params
        self.g_batch_stats = restored.state.g_batch_stats
        self._gen = jax.jit(lambda p, bs, z: train_step.generate(c.model, p, bs, z))

    def generate_normalized(self, z, batch_size: int = 64) -> np.ndarray:
        """z [N, latent] -> G's output [N, F, T] float32 in the normalised domain [-1, 1]
        (rows = frequency), as the model sees data (used by specgan_jax.evaluate)."""
        out = []
        for s in range(0, z.shape[0], batch_size):
            y = np.asarray(self._gen(self.g_params, self.g_batch_stats, z[s:s + batch_size]))
            out.append(y[..., 0])  # [b, F, T]
        return np.concatenate(out, axis=0)

    def generate(self, z, batch_size: int = 64) -> np.ndarray:
        """z [N, latent] -> spectrograms [N, rows, cols] in the input's units and orientation
        (rows = frequency unless the run's data.orientation is 'time_rows')."""
        from specgan_jax.data.normalize import denormalize

        x = denormalize(self.generate_normalized(z, batch_size), self.moments)  # input units
        if self.config.data.orientation == "time_rows":
            x = np.swapaxes(x, 1, 2)  # back to the files' rows = time
        return x


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
    from specgan_jax.run import preview

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
    p.add_argument("--interpolate", action="store_true",
                   help="n samples on the line from sample 0 to sample 1 of the seed")
    p.add_argument("--batch-size", type=int, default=64,
                   help="generator batch size (does not change the samples) [default: 64]")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.n < 1 or args.batch_size < 1 or args.start < 0:
        print("error: --n and --batch-size must be >= 1, --start >= 0", file=sys.stderr)
        return cli.finish(2, argv)
    from specgan_jax.data.csv import DataError

    try:
        run = LoadedRun(args.run_dir, step=args.step, checkpoint_dir=args.checkpoint_dir)
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
    except (GenerateError, cli.ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return cli.finish(1, argv)
    print(f"wrote {len(written)} file(s) ({args.n} spectrograms, {x.shape[1]}x{x.shape[2]}) "
          f"from step {run.step} to {out}")
    return cli.finish(0, argv)



if __name__ == "__main__":
    main()
