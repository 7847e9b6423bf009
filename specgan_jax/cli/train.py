"""`specgan-train` (scripts/train.py): flags -> Config -> specgan_jax.training.loop.

Exit status: 0 done, 1 a user error (SpecganError: bad data, run directory, checkpoint, disk
full, NaN loss, ...), 2 bad options, 128 + the signal number when stopped by SIGINT/SIGTERM
(a checkpoint is saved first; the same command resumes).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Optional

from specgan_jax.cli import flags
from specgan_jax.config import (CONDITIONAL_DEMO_PRESET, DEMO_PRESET, PRESETS, Config,
                                LaunchConfig)
from specgan_jax.config.resolve import Platform, check_options, resolve
from specgan_jax.config_json import (config_from_dict, config_json_text, config_to_dict,
                                     load_config_json, merge)
from specgan_jax.errors import ConfigError, SpecganError
from specgan_jax.run.run_dir import default_run_name, is_run_config
from specgan_jax.training import distributed as dist_lib
from specgan_jax.training.loop import train_and_evaluate
from specgan_jax.training.setup import data_summary, saved_config
from specgan_jax.training.signals import EXIT_SIGNAL_BASE

_print = functools.partial(print, flush=True)  # lines interleave correctly with tqdm's stderr


ALIASES = {"data": "data.path", "steps": "train.steps", "seed": "train.seed",
           "batch-size": "train.batch_size"}


LAUNCH_ALIASES = {"distributed": "distributed.enabled"}


EPILOG = """\
examples:
  # Demo: the built-in synthetic dataset, a small model, a few minutes on a laptop CPU.
  python scripts/train.py

  # Your data (a folder of 128x128 CSVs, or of class subfolders), SpecGAN defaults:
  python scripts/train.py --data data/spectrograms --workdir runs/mydata

  # Re-running the same command resumes from the latest checkpoint; train further:
  python scripts/train.py --data data/spectrograms --workdir runs/mydata --steps 300000

  # A few hundred spectrograms: the small-data preset (best checkpoint, early stop):
  python scripts/train.py --data data/spectrograms --preset small-data

  # Options: every config field is a flag; or put them in a JSON file (same layout as a
  # run's config.json) and override single fields on the command line.
  python scripts/train.py --data data/spectrograms --loss.loss dcgan --model.use_batchnorm
  python scripts/train.py --config runs/mydata/config.json --train.batch_size 32 --dry-run

  # Linear-magnitude CSVs (log-transform before normalising), rows = time:
  python scripts/train.py --data data/lin --data.log_transform --data.orientation time_rows

  # All devices are used, data-parallel (train.batch_size is the global batch, a
  # multiple of the device count). Several hosts: the same command on each, e.g. 2 hosts:
  python scripts/train.py --data /shared/spectrograms --workdir /shared/runs/mydata \\
      --distributed --distributed.coordinator_address host0:1234 \\
      --distributed.num_processes 2 --distributed.process_id 0     # 1 on the other host
  # (or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID; on Slurm, Open MPI
  # or Cloud TPU `--distributed` alone: JAX detects the rest)

Ctrl-C (or SIGTERM) saves a checkpoint and exits with status 128 + the signal number
(130 for Ctrl-C, 143 for SIGTERM); the same command resumes.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="specgan-train", description="Train SpecGAN (JAX) on CSV spectrograms.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default=None,
                   help="run directory (created; an existing one is resumed). "
                        "Default: runs/<data name>-<config hash>")
    p.add_argument("--config", default=None, metavar="FILE.json",
                   help="JSON config (sections model/loss/optim/data/augment/train); "
                        "flags override it")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="small-data: generator EMA + periodic evaluation keeping the best "
                        "checkpoint + early stopping, for a few hundred spectrograms "
                        "(docs/small-data.md); --config and flags override it")
    p.add_argument("--dry-run", action="store_true",
                   help="print the run directory and the resolved config (every auto option "
                        "settled as training would: n_classes, the conditioning schedule, "
                        "conv_impl, optimizer), then exit; reads no data file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    flags.add_config_flags(p, Config, ALIASES)
    flags.add_config_flags(p, LaunchConfig, LAUNCH_ALIASES)
    return p


def resolve_config(args: argparse.Namespace) -> tuple[Config, bool]:
    """The Config from defaults < demo preset < --preset < --config file < flags, and whether
    it is the demo run (no data source anywhere)."""
    file_over = load_config_json(args.config, Config) if args.config else {}
    if not isinstance(file_over, dict):
        raise ConfigError(f"{args.config}: expected a JSON object")
    flag_over = flags.overrides_from_args(args, Config)
    if args.config:
        file_cfg = config_from_dict(Config, file_over, source=args.config)  # errors name it
        if is_run_config(args.config):
            # A run's config.json is a complete record of what the run trained with: an option
            # it lacks was added after it was written and means its default (the behaviour
            # then), never a preset's value (the demo's lr_decay would break its resume).
            file_over = config_to_dict(file_cfg)
    given = merge(file_over, flag_over)
    demo = not (given.get("data", {}).get("path") or given.get("data", {}).get("file_list"))
    demo_preset = {}
    if demo:
        cond = given.get("model", {}).get("conditional")
        demo_preset = merge(DEMO_PRESET, CONDITIONAL_DEMO_PRESET if cond else {})
    base = merge(demo_preset, PRESETS[args.preset] if args.preset else {})
    return config_from_dict(Config, merge(base, given), source="options"), demo


def resolve_launch(args: argparse.Namespace) -> LaunchConfig:
    """The launch options (--distributed.*): flags only, never from or into config.json."""
    return config_from_dict(LaunchConfig, flags.overrides_from_args(args, LaunchConfig),
                            source="options")


def main(argv: Optional[list[str]] = None) -> int:
    """CLI entry point; returns/exits with 0 on success, 1 on a user/data error, 2 on bad
    options, 128 + signum when stopped by SIGINT/SIGTERM."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config, demo = resolve_config(args)
        launch = resolve_launch(args)
        check_options(config)  # mistakes across sections, before any data is read
    except ConfigError as e:  # one line, as every user error (not argparse's usage text)
        print(f"error: {e}", file=sys.stderr)
        return flags.finish(2, argv)
    try:
        return flags.finish(_run(args, config, demo, launch), argv)
    except SpecganError as e:
        print(f"error: {e}", file=sys.stderr)
        return flags.finish(1, argv)


def _run(args: argparse.Namespace, config: Config, demo: bool, launch: LaunchConfig) -> int:
    """main() after option parsing -> exit status; a SpecganError propagates to main()."""
    workdir = args.workdir or os.path.join("runs", default_run_name(config, demo))
    say = _print
    if not args.dry_run:
        dist_lib.initialize(launch.distributed)  # before any other JAX call
        if launch.distributed.enabled and not dist_lib.is_main_process():
            say = lambda *a, **k: None  # noqa: E731 - process 0 speaks for the run
    if demo:
        say("Demo run on synthetic data (no --data given): the built-in procedural "
            f"spectrograms, a small model (dim {config.model.dim}, batch "
            f"{config.train.batch_size}, {config.train.steps} steps).")
    say(f"Run directory: {os.path.abspath(workdir)}")
    # The config training computes with (and config.json records), from the data's classes
    # (listed, not parsed) and the devices; training resolves it again from the loaded data.
    config = resolve(config, data_summary(config, demo) if config.model.conditional else None,
                     saved_config(workdir), Platform.detect())
    if args.dry_run:
        print(config_json_text(config), end="")
        return 0
    outcome = train_and_evaluate(config, workdir, demo=demo, progress=not args.no_progress)
    if outcome.interrupted is not None:
        return EXIT_SIGNAL_BASE + outcome.interrupted
    if demo:
        say(f"Look at {os.path.join(workdir, 'previews')} (reals.png vs fakes_*.png) and "
            f"generate CSVs with: python scripts/generate.py {workdir} --n 8 --out samples")
    return 0


if __name__ == "__main__":
    main()
