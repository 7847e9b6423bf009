"""`specgan-evaluate` (scripts/evaluate.py): a run's generated samples against real data.

Exit status: 0 done, 1 a user error (SpecganError), 2 bad options.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Optional

from specgan_jax.cli import flags
from specgan_jax.config import EvalConfig
from specgan_jax.config_json import config_from_dict
from specgan_jax.errors import ConfigError, SpecganError
from specgan_jax.evaluation.report import evaluate_run, summary_table


@dataclasses.dataclass(frozen=True)
class _EvalFlags:
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)


EPILOG = """\
examples:
  # The demo run (scripts/train.py with no arguments) against its own demo data: the
  # reference split is its training set, the held-out split new demo spectrograms.
  python scripts/evaluate.py runs/demo-1a2b3c4d --real demo

  # A run on your data, against a held-out folder of real CSVs (same format as training):
  python scripts/evaluate.py runs/mydata --real data/test_spectrograms --out eval_mydata

  # Generated CSVs instead of a checkpoint (e.g. from scripts/generate.py), 500 of them:
  python scripts/evaluate.py runs/mydata --real data/test --fakes samples --n 500

  # The best checkpoint kept during training (--train.eval_every), at a fixed seed:
  python scripts/evaluate.py runs/mydata --real data/test --checkpoint-dir checkpoints_best_fd

  # A class-conditional run: each class of --real (class folders, named as the run's) gets
  # --n samples (0: as many as its held-out reals); also per-class metrics:
  python scripts/evaluate.py runs/types --real data/test_types --out eval_types

Writes OUT/eval.json (one key per metric, each {"generated": ..., "real_baseline": ...}, and
"meta") and OUT/eval_report.png. Every metric's baseline compares real with real, so a value
has a scale: generated values near the baseline are as close as two real samples.
hf_excess: checkerboard / stripe artefacts, the log ratio of the generated samples' fraction of
2-D spectral power at periods <= 4 bins to the real reference's (0: like real; < 0: smoother).
Per class (conditional runs, or --fakes in class folders): intra_fd and intra_kid (samples of
class k against the reals of class k, averaged over classes; "per_class" holds each class),
class_accuracy (how often the feature classifier names the intended class), tstr (held-out
accuracy of a classifier trained on the samples; baseline: trained on the reference reals)
and aug_gain (accuracy gained by adding the samples to the reals), over --eval.tstr_seeds
classifier seeds of --eval.tstr_steps updates each (--eval.tstr_seeds 0 skips them).
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="specgan-evaluate",
        description="Evaluate a SpecGAN run: generated vs held-out real spectrograms, with a "
                    "real-vs-real baseline for every metric.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by scripts/train.py")
    p.add_argument("--real", required=True, metavar="DIR",
                   help="real spectrograms: a CSV folder (or class folders, or a file list) read "
                        "with the run's data options; 'demo' for a demo run")
    p.add_argument("--out", default=None, help="output folder [default: RUN_DIR/eval]")
    p.add_argument("--step", type=int, default=None,
                   help="checkpoint step to evaluate [default: the latest]")
    p.add_argument("--checkpoint-dir", default="checkpoints", metavar="NAME",
                   help="checkpoint folder inside RUN_DIR [default: checkpoints]")
    p.add_argument("--fakes", default=None, metavar="DIR",
                   help="evaluate this folder of generated CSVs instead of a checkpoint")
    p.add_argument("--raw", action="store_true",
                   help="evaluate the trained weights, not their moving average (the default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    flags.add_config_flags(p, _EvalFlags, {"n": "eval.n", "seed": "eval.seed"})
    return p


def main(argv: Optional[list[str]] = None) -> int:
    """CLI entry point: 0 on success, 1 on a user/data error, 2 on bad options."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_dict(_EvalFlags, flags.overrides_from_args(args, _EvalFlags),
                               source="options").eval
    except ConfigError as e:
        parser.error(str(e))
    if args.fakes is not None and (args.step is not None or args.checkpoint_dir != "checkpoints"):
        parser.error("--step and --checkpoint-dir choose a checkpoint; with --fakes none is used")
    t0 = time.monotonic()
    try:
        result = evaluate_run(args.run_dir, args.real, cfg, out=args.out, step=args.step,
                              fakes=args.fakes, checkpoint_dir=args.checkpoint_dir,
                              progress=not args.no_progress, raw=args.raw)
    except SpecganError as e:
        print(f"error: {e}", file=sys.stderr)
        return flags.finish(1, argv)
    meta = result["meta"]
    print(summary_table(result))
    print(f"feature space: {meta['feature_space']}"
          + (f" (classifier held-out accuracy {meta['classifier_accuracy']:.3f})"
             if "classifier_accuracy" in meta else ""))
    for key in ("classifier_warning", "size_note"):
        if key in meta:
            print(f"note: {meta[key]}")
    for key in ("intra_fd", "intra_kid", "class_accuracy"):
        entry = result.get(key) or {}
        if entry.get("classes_too_few_real"):
            print(f"note: {key}: too few real examples for a meaningful number in "
                  f"{', '.join(entry['classes_too_few_real'])} ({entry['too_few_real_rule']})")
    print(f"real data: {meta['real_overlap']}")
    out = args.out or os.path.join(args.run_dir, "eval")
    print(f"wrote {os.path.join(out, 'eval.json')} and {os.path.join(out, 'eval_report.png')} "
          f"in {time.monotonic() - t0:.1f} s")
    return flags.finish(0, argv)


if __name__ == "__main__":
    main()
