"""Generator export to / import from a PyTorch state_dict (specgan_torch_ref.SpecGANGenerator, or
specgan_torch_ref.conditional.SpecGANConditionalGenerator for a class-conditional run).

    python scripts/export_torch.py RUN_DIR --out G.pt [--step S]
    python scripts/import_torch.py G.pt --moments moments.npz --out RUN_DIR [--model.dim 64 ...]

Export writes `G.pt` (a plain state_dict: `SpecGANGenerator(**kwargs).load_state_dict(
torch.load("G.pt"))`) and `G.pt.json` with the class, those constructor kwargs and the run's
step; for a conditional run also "conditional", "n_classes" and "class_names" (by label index:
G(z, y) with y = class_names.index(name)).
Import builds a run directory around a torch generator (config.json, moments.npz, labels.json
when class names are known, and a step-0
checkpoint whose generator is the imported one; the critic and both optimizer states are
freshly initialised from train.seed), so `generate.py` samples from it and `train.py` can
fine-tune it. Weight layouts are converted by specgan_jax.engine.convert (exact permutations).
torch is an optional dependency (the `torch` extra): imported when export or import runs.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import jax

from specgan_jax import atomic
from specgan_jax.config import Config, ModelConfig
from specgan_jax.config_json import config_json_text
from specgan_jax.data.moments import Moments
from specgan_jax.engine import convert
from specgan_jax.engine.models import class_embed_dim, resolve_impl
from specgan_jax.engine.sampling import run_keys
from specgan_jax.engine.step import create_train_state
from specgan_jax.errors import ExportError
from specgan_jax.run import run_dir as run_dir_lib
from specgan_jax.run.checkpoint import Checkpointer, key_to_json

TORCH_EXTRA = 'pip install -e ".[torch]"'  # pyproject's optional dependency group "torch"


def import_torch():
    """The torch module, or ExportError saying how to install it (an optional dependency)."""
    try:
        import torch  # noqa: PLC0415 - optional dependency, needed by export/import only
    except ImportError:
        raise ExportError("PyTorch is not installed; export and import need it. Install the "
                          f"extra: {TORCH_EXTRA}") from None
    return torch


def torch_class(mc: ModelConfig) -> str:
    """The torch reference generator class of `mc`, as an importable name."""
    return ("specgan_torch_ref.conditional.SpecGANConditionalGenerator" if mc.conditional
            else "specgan_torch_ref.models.SpecGANGenerator")


def torch_kwargs(mc: ModelConfig) -> dict:
    """Constructor arguments of torch_class(mc) for `mc`."""
    kw = {"nz": mc.latent_dim, "kernel_len": mc.kernel_len, "dim": mc.dim,
          "use_batchnorm": mc.use_batchnorm, "upsample": mc.upsample, "padding": mc.padding,
          "n_freq": mc.n_freq, "n_time": mc.n_time}
    if mc.conditional:
        kw = {"n_classes": mc.n_classes, **kw, "embed_dim": class_embed_dim(mc)}
    return kw


def model_options(kwargs: dict, source: str) -> dict:
    """Constructor kwargs of a sidecar (torch_kwargs) -> the "model" options of a Config."""
    kw = dict(kwargs)
    if "nz" in kw:
        kw["latent_dim"] = kw.pop("nz")
    if "n_classes" in kw:
        kw["conditional"] = True
        embed = kw.pop("embed_dim", None)
        if embed is not None and embed != kw.get("latent_dim", ModelConfig.latent_dim):
            raise ExportError(f"{source}: embed_dim={embed}; specgan_jax's class code has "
                              "latent_dim dimensions (engine.models.class_embed_dim), so only "
                              "embed_dim = nz can be imported")
    return kw


def export_generator(run_dir: str, out: str, step: Optional[int] = None,
                     raw: bool = False) -> dict:
    """Write the run's generator as a torch state_dict to `out` (+ `out`.json). -> sidecar.
    The EMA weights (what generation samples from), the trained ones with raw=True."""
    torch = import_torch()
    run = run_dir_lib.LoadedRun(run_dir, step=step, raw=raw)
    g_vars = {"params": run.g_params}
    if run.config.model.use_batchnorm:
        g_vars["batch_stats"] = run.g_batch_stats
    sd = convert.generator_to_torch(run.config.model, g_vars)
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    with atomic.atomic_open(out, "wb") as fh:
        torch.save(sd, fh)
    mc = run.config.model
    side = {"class": torch_class(mc), "kwargs": torch_kwargs(mc), "step": run.step,
            "weights": "trained (raw)" if raw else "EMA",
            "run_dir": os.path.abspath(run_dir), "latent_dist": run.config.loss.latent_dist,
            "moments": os.path.abspath(os.path.join(run_dir, run_dir_lib.MOMENTS))}
    if mc.conditional:
        side.update(conditional=True, n_classes=mc.n_classes, class_names=run.class_names)

    atomic.write_text(out + ".json", json.dumps(side, indent=2))
    return side


def import_generator(pt_path: str, moments_path: str, out_dir: str, config: Config,
                     class_names: Optional[list] = None) -> None:
    """Create run directory `out_dir` around the torch generator state_dict in `pt_path`;
    class_names (a conditional generator's, by label index) go into labels.json."""
    torch = import_torch()
    if not os.path.exists(pt_path):
        raise ExportError(f"{pt_path} does not exist")
    if os.path.exists(os.path.join(out_dir, run_dir_lib.CONFIG)):
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
    if class_names is not None and (not config.model.conditional
                                    or len(class_names) != config.model.n_classes):
        raise ExportError(f"{len(class_names)} class names for a model with "
                          f"conditional={config.model.conditional}, "
                          f"n_classes={config.model.n_classes}")
    moments = Moments.load(moments_path)  # DataError names the file if bad
    os.makedirs(out_dir, exist_ok=True)
    moments.save(os.path.join(out_dir, run_dir_lib.MOMENTS))
    if class_names is not None:
        run_dir_lib.write_labels(out_dir, class_names)
    state = create_train_state(config.model, config.loss, config.optim,
                               jax.random.PRNGKey(config.train.seed))
    _, k_train, _ = run_keys(config.train.seed)
    state = state.replace(
        g_params=jax.tree.map(jax.numpy.asarray, g_vars["params"]),
        g_ema=jax.tree.map(jax.numpy.asarray, g_vars["params"]),
        g_batch_stats=jax.tree.map(jax.numpy.asarray, g_vars.get("batch_stats", {})))
    ck = Checkpointer(os.path.join(out_dir, run_dir_lib.CHECKPOINTS), use_async=False)
    try:  # the same meta as training's checkpoints, so that fine-tuning resumes from it
        ck.save(0, state, {"key": key_to_json(k_train)})
    finally:
        ck.close()
    atomic.write_text(os.path.join(out_dir, run_dir_lib.CONFIG), config_json_text(
        config, {"model.conv_impl": resolve_impl(config.model)}))

