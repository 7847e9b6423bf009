"""Generator export to / import from a PyTorch state_dict (specgan_torch_ref.SpecGANGenerator).

    python scripts/export_torch.py RUN_DIR --out G.pt [--step S]
    python scripts/import_torch.py G.pt --moments moments.npz --out RUN_DIR [--model.dim 64 ...]

Export writes `G.pt` (a plain state_dict: `SpecGANGenerator(**kwargs).load_state_dict(
torch.load("G.pt"))`) and `G.pt.json` with those constructor kwargs and the run's step.
Import builds a run directory around a torch generator (config.json, moments.npz and a step-0
checkpoint whose generator is the imported one; the critic and both optimizer states are
freshly initialised from train.seed), so `generate.py` samples from it and `train.py` can
fine-tune it. Weight layouts are converted by specgan_jax.convert (exact permutations).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Optional

from specgan_jax import atomic
from specgan_jax.cli import flags as cli
from specgan_jax.config import Config, ModelConfig


class ExportError(RuntimeError):
    """A user error; printed without a traceback."""


def torch_kwargs(mc: ModelConfig) -> dict:
    """Constructor arguments of specgan_torch_ref.models.SpecGANGenerator for `mc`."""
    return {"nz": mc.latent_dim, "kernel_len": mc.kernel_len, "dim": mc.dim,
            "use_batchnorm": mc.use_batchnorm, "upsample": mc.upsample, "padding": mc.padding}


def _atomic(path: str, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def export_generator(run_dir: str, out: str, step: Optional[int] = None) -> dict:
    """Write the run's generator as a torch state_dict to `out` (+ `out`.json). -> sidecar."""
    import torch

    from specgan_jax.engine import convert
    from specgan_jax.cli.generate import GenerateError, LoadedRun

    try:
        run = LoadedRun(run_dir, step=step)
    except GenerateError as e:
        raise ExportError(str(e)) from None
    g_vars = {"params": run.g_params}
    if run.config.model.use_batchnorm:
        g_vars["batch_stats"] = run.g_batch_stats
    sd = convert.generator_to_torch(run.config.model, g_vars)
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    def write_pt(p):
        with open(p, "wb") as fh:  # a file object: torch's own path handling rejected the tmp name
            torch.save(sd, fh)

    _atomic(out, write_pt)
    side = {"class": "specgan_torch_ref.models.SpecGANGenerator",
            "kwargs": torch_kwargs(run.config.model), "step": run.step,
            "run_dir": os.path.abspath(run_dir), "latent_dist": run.config.loss.latent_dist,
            "moments": os.path.abspath(os.path.join(run_dir, "moments.npz"))}

    def write_side(p):
        with open(p, "w", encoding="utf-8") as fh:
            json.dump(side, fh, indent=2)

    _atomic(out + ".json", write_side)
    return side


def import_generator(pt_path: str, moments_path: str, out_dir: str, config: Config) -> None:
    """Create run directory `out_dir` around the torch generator state_dict in `pt_path`."""
    import jax
    import torch

    from specgan_jax.run import checkpoint as ckpt_lib
    from specgan_jax.engine import convert
    from specgan_jax.engine import step as train_step
    from specgan_jax.data.moments import Moments
    from specgan_jax.training.loop import _config_json

    if not os.path.exists(pt_path):
        raise ExportError(f"{pt_path} does not exist")
    if os.path.exists(os.path.join(out_dir, "config.json")):
        raise ExportError(f"{out_dir} already holds a run (config.json); choose a new --out")
    try:
        sd = torch.load(pt_path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file: a user error
        raise ExportError(f"{pt_path}: not a readable torch state_dict ({e})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]  # a training checkpoint that wraps the state_dict
    try:
        g_vars = convert.generator_from_torch(config.model, sd)
    except convert.ConversionError as e:
        raise ExportError(f"{pt_path}: {e}") from None
    moments = Moments.load(moments_path)  # DataError names the file if bad
    os.makedirs(out_dir, exist_ok=True)
    moments.save(os.path.join(out_dir, "moments.npz"))
    state = train_step.create_train_state(config.model, config.loss, config.optim,
                                          jax.random.PRNGKey(config.train.seed))
    state = state.replace(
        g_params=jax.tree.map(jax.numpy.asarray, g_vars["params"]),
        g_batch_stats=jax.tree.map(jax.numpy.asarray, g_vars.get("batch_stats", {})))
    ck = ckpt_lib.Checkpointer(os.path.join(out_dir, "checkpoints"), use_async=False)
    ck.save(0, state, {"imported_from": os.path.abspath(pt_path)})
    ck.close()
    atomic.write_text(os.path.join(out_dir, "config.json"), _config_json(config))


def export_main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="specgan-export-torch",
        description="Export a run's generator as a PyTorch state_dict for "
                    "specgan_torch_ref.models.SpecGANGenerator.",
        epilog="example:\n  python scripts/export_torch.py runs/demo-1a2b3c4d --out G.pt\n"
               "  # in Python: G = SpecGANGenerator(**json.load(open('G.pt.json'))['kwargs'])\n"
               "  #            G.load_state_dict(torch.load('G.pt')); G.eval()",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="output .pt file (a .json sidecar is written too)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step [default: latest]")
    args = p.parse_args(argv)
    try:
        side = export_generator(args.run_dir, args.out, args.step)
    except (ExportError, cli.ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return cli.finish(1, argv)
    kw = ", ".join(f"{k}={v!r}" for k, v in side["kwargs"].items())
    print(f"wrote {args.out} (step {side['step']}) and {args.out}.json; load with "
          f"SpecGANGenerator({kw})")
    return cli.finish(0, argv)


def import_main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="specgan-import-torch",
        description="Make a run directory from a PyTorch SpecGANGenerator state_dict, so "
                    "generate.py can sample from it (and train.py fine-tune it).",
        epilog="examples:\n"
               "  python scripts/import_torch.py G.pt --moments moments.npz --out runs/imported\n"
               "  # the seed's PyTorch port (symmetric padding), d = 64:\n"
               "  python scripts/import_torch.py netG.pt --moments moments.npz --out runs/seed "
               "--model.padding torch\n"
               "Model options default to G.pt.json (written by export_torch.py) when present.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pt", metavar="G.pt", help="torch state_dict of the generator")
    p.add_argument("--moments", required=True,
                   help="moments.npz of the training data (scripts/compute_moments.py)")
    p.add_argument("--out", required=True, help="new run directory")
    p.add_argument("--config", default=None, metavar="FILE.json",
                   help="a config.json to take the other options from")
    cli.add_config_flags(p, Config)
    args = p.parse_args(argv)
    from specgan_jax.data.csv import DataError

    try:
        base = cli.load_json(args.config) if args.config else {}
        side_path = args.pt + ".json"
        if not args.config and os.path.exists(side_path):
            kw = dict(cli.load_json(side_path).get("kwargs", {}))
            if "nz" in kw:
                kw["latent_dim"] = kw.pop("nz")
            base = {"model": kw}
        config = cli.config_from_dict(
            Config, cli.merge(base, cli.overrides_from_args(args, Config)), source="options")
        import_generator(args.pt, args.moments, args.out, config)
    except (ExportError, cli.ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return cli.finish(1, argv)
    print(f"wrote run directory {args.out} (generator from {args.pt}); sample with: "
          f"python scripts/generate.py {args.out} --n 8")
    return cli.finish(0, argv)

