"""`specgan-export-torch` and `specgan-import-torch` (scripts/export_torch.py, import_torch.py):
a run's generator to / from a PyTorch state_dict (specgan_jax.run.torch_io).

Exit status: 0 done, 1 a user error (SpecganError; also when torch is not installed: the
message says which extra to install), 2 bad options.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from specgan_jax.cli import flags
from specgan_jax.config import Config
from specgan_jax.config.resolve import settle_shape
from specgan_jax.config_json import config_from_dict, load_json, merge
from specgan_jax.errors import SpecganError
from specgan_jax.run.torch_io import export_generator, import_generator, model_options


def export_main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="specgan-export-torch",
        description="Export a run's generator as a PyTorch state_dict for "
                    "specgan_torch_ref.models.SpecGANGenerator (a class-conditional run: "
                    "specgan_torch_ref.conditional.SpecGANConditionalGenerator).",
        epilog="example:\n  python scripts/export_torch.py runs/demo-1a2b3c4d --out G.pt\n"
               "  # in Python: G = SpecGANGenerator(**json.load(open('G.pt.json'))['kwargs'])\n"
               "  #            G.load_state_dict(torch.load('G.pt')); G.eval()\n"
               "  # a conditional run: SpecGANConditionalGenerator(**kwargs), then G(z, y) "
               "with y = class_names.index(name)\n"
               "  #                   (class_names in G.pt.json)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="output .pt file (a .json sidecar is written too)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step [default: latest]")
    p.add_argument("--raw", action="store_true",
                   help="export the trained weights, not their moving average (the default)")
    args = p.parse_args(argv)
    try:
        side = export_generator(args.run_dir, args.out, args.step, raw=args.raw)
    except SpecganError as e:
        print(f"error: {e}", file=sys.stderr)
        return flags.finish(1, argv)
    kw = ", ".join(f"{k}={v!r}" for k, v in side["kwargs"].items())
    print(f"wrote {args.out} (step {side['step']}) and {args.out}.json; load with "
          f"{side['class'].rsplit('.', 1)[-1]}({kw})"
          + (f"; classes by label: {', '.join(side['class_names'])}"
             if side.get("conditional") else ""))
    return flags.finish(0, argv)


def import_main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="specgan-import-torch",
        description="Make a run directory from a PyTorch SpecGANGenerator (or "
                    "SpecGANConditionalGenerator) state_dict, so generate.py can sample from it "
                    "(and train.py fine-tune it).",
        epilog="examples:\n"
               "  python scripts/import_torch.py G.pt --moments moments.npz --out runs/imported\n"
               "  # the seed's PyTorch port (symmetric padding), d = 64:\n"
               "  python scripts/import_torch.py netG.pt --moments moments.npz --out runs/seed "
               "--model.padding torch\n"
               "  # a conditional generator of 3 classes, named in that order:\n"
               "  python scripts/import_torch.py G.pt --moments moments.npz --out runs/c "
               "--model.conditional --model.n_classes 3 --class-names a b c\n"
               "Model options and class names default to G.pt.json (written by "
               "export_torch.py) when present.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pt", metavar="G.pt", help="torch state_dict of the generator")
    p.add_argument("--moments", required=True,
                   help="moments.npz of the training data (scripts/compute_moments.py)")
    p.add_argument("--out", required=True, help="new run directory")
    p.add_argument("--config", default=None, metavar="FILE.json",
                   help="a config.json to take the other options from")
    p.add_argument("--class-names", nargs="+", default=None, metavar="NAME",
                   help="a conditional generator's class names by label index (written to "
                        "labels.json) [default: G.pt.json's, else 0, 1, ...]")
    flags.add_config_flags(p, Config)
    args = p.parse_args(argv)
    try:
        base = load_json(args.config) if args.config else {}
        side_path = args.pt + ".json"
        side = load_json(side_path) if os.path.exists(side_path) else {}
        if not args.config and side:
            model = model_options(side.get("kwargs", {}), side_path)
            # the example shape is the data section's option; the model's follows it
            base = {"model": model, "data": {k: model.pop(k) for k in ("n_freq", "n_time")
                                             if k in model}}
        config = settle_shape(config_from_dict(
            Config, merge(base, flags.overrides_from_args(args, Config)), source="options"))
        names = args.class_names or (side.get("class_names") if config.model.conditional
                                     else None)
        import_generator(args.pt, args.moments, args.out, config, names)
    except SpecganError as e:
        print(f"error: {e}", file=sys.stderr)
        return flags.finish(1, argv)
    print(f"wrote run directory {args.out} (generator from {args.pt}); sample with: "
          f"python scripts/generate.py {args.out} --n 8")
    return flags.finish(0, argv)
