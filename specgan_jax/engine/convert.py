"""Weight conversion between specgan_torch_ref (the seed's PyTorch port) and specgan_jax.

One declarative table per model (`generator_table`, `discriminator_table`) lists every tensor:
its Flax path, its torch state_dict key and the layout transform between them. Conversion in
either direction fails loudly on a missing or unexpected key and on any shape mismatch, naming
them. Both directions are exact (pure permutations/reshapes).

Layouts:
  conv    torch Conv2d [O,I,kh,kw] / ConvTranspose2d [I,O,kh,kw] -> permute(2,3,1,0) -> Flax
          [kh,kw,I,O] / [kh,kw,O,I] (same permutation for both; no spatial flip)
  g_fc    torch fc.weight [(c,h,w), nz] (the seed views the output as NCHW [16d,h,w])
          -> Flax z_project/dense/kernel [nz, (h,w,c)] (reshaped NHWC [h,w,16d]); h x w is
          the seed shape, n_freq/32 x n_time/32 (4 x 4 at 128 x 128): h along frequency, w
          along time on both sides, so a non-square seed is not transposed
  g_fc_b  the same permutation for fc.bias
  d_out   torch output.weight [1, (c,h,w)] (flattened NCHW) -> Flax output/kernel [(h,w,c), 1]
  d_proj  torch class_proj.weight [n_classes, (c,h,w)] -> Flax class_proj/embedding
          [n_classes, (h,w,c)]: each class's projection vector multiplies the same flattened
          features as the `output` weight, so its columns get d_out's permutation
  copy    biases, BN scale/bias (torch weight/bias), running mean/var, G's class_embed

Conditional models (specgan_torch_ref.conditional): G's fc.weight has nz + E input columns,
[z, class code] in that order on both sides, which g_fc carries over as they are (it permutes
only the output axis); the class code table class_embed is [n_classes, E] on both sides.

torch-only buffers that carry no information here are declared as ignored: the generator BN's
`num_batches_tracked` (only used when momentum=None; ours is 0.01), and, in a discriminator
state_dict from the seed's port (whose BN tracked running statistics), `running_mean`,
`running_var`, `num_batches_tracked` — SpecGAN's critic always normalises with batch statistics.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Tuple

import jax
import numpy as np

from specgan_jax.config import ModelConfig
from specgan_jax.engine.models import init_models, seed_shape


class ConversionError(ValueError):
    pass


class Entry(NamedTuple):
    flax_path: Tuple[str, ...]  # e.g. ("params", "upconv_0", "conv", "kernel")
    torch_key: str  # e.g. "main.2.weight"
    kind: str  # "copy" | "conv" | "g_fc" | "g_fc_b" | "d_out" | "d_proj"


def _seed(cfg: ModelConfig) -> Tuple[int, int, int]:
    """(h, w, c): the shape of G's seed and of D's last feature map, c = 16 * dim channels."""
    return (*seed_shape(cfg), 16 * cfg.dim)


def _torch_from_flax(kind: str, a: np.ndarray, seed: Tuple[int, int, int]) -> np.ndarray:
    """Flax layout -> torch layout. seed = (h, w, c) (`_seed`)."""
    h, w, c = seed
    if kind == "copy":
        return a
    if kind == "conv":
        return a.transpose(3, 2, 0, 1)
    if kind == "g_fc":  # [nz, (h,w,c)] -> [(c,h,w), nz]
        nz = a.shape[0]
        return a.reshape(nz, h, w, c).transpose(3, 1, 2, 0).reshape(c * h * w, nz)
    if kind == "g_fc_b":  # [(h,w,c)] -> [(c,h,w)]
        return a.reshape(h, w, c).transpose(2, 0, 1).reshape(-1)
    if kind == "d_out":  # [(h,w,c), 1] -> [1, (c,h,w)]
        return a[:, 0].reshape(h, w, c).transpose(2, 0, 1).reshape(1, -1)
    if kind == "d_proj":  # [n, (h,w,c)] -> [n, (c,h,w)]
        n = a.shape[0]
        return a.reshape(n, h, w, c).transpose(0, 3, 1, 2).reshape(n, -1)
    raise ValueError(kind)


def _flax_from_torch(kind: str, a: np.ndarray, seed: Tuple[int, int, int]) -> np.ndarray:
    h, w, c = seed
    if kind == "copy":
        return a
    if kind == "conv":
        return a.transpose(2, 3, 1, 0)
    if kind == "g_fc":  # [(c,h,w), nz] -> [nz, (h,w,c)]
        nz = a.shape[1]
        return a.reshape(c, h, w, nz).transpose(3, 1, 2, 0).reshape(nz, h * w * c)
    if kind == "g_fc_b":
        return a.reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
    if kind == "d_out":
        return a.reshape(c, h, w).transpose(1, 2, 0).reshape(-1, 1)
    if kind == "d_proj":  # [n, (c,h,w)] -> [n, (h,w,c)]
        n = a.shape[0]
        return a.reshape(n, c, h, w).transpose(0, 2, 3, 1).reshape(n, -1)
    raise ValueError(kind)


def _bn(scope: str, idx: int, running: bool) -> List[Entry]:
    e = [Entry(("params", scope, "bn", "scale"), f"main.{idx}.weight", "copy"),
         Entry(("params", scope, "bn", "bias"), f"main.{idx}.bias", "copy")]
    if running:
        e += [Entry(("batch_stats", scope, "bn", "mean"), f"main.{idx}.running_mean", "copy"),
              Entry(("batch_stats", scope, "bn", "var"), f"main.{idx}.running_var", "copy")]
    return e


def generator_table(cfg: ModelConfig) -> Tuple[List[Entry], List[str]]:
    """(entries, ignored torch keys) for SpecGANGenerator's state_dict, following the seed's
    nn.Sequential order: [BN], ReLU, then per layer ConvT, [BN], ReLU/Tanh."""
    bn = cfg.use_batchnorm
    entries = [Entry(("params", "z_project", "dense", "kernel"), "fc.weight", "g_fc"),
               Entry(("params", "z_project", "dense", "bias"), "fc.bias", "g_fc_b")]
    if cfg.conditional:
        entries.append(Entry(("params", "class_embed", "embedding"), "class_embed.weight", "copy"))
    ignored, i = [], 0
    if bn:
        entries += _bn("z_project", i, running=True)
        ignored.append(f"main.{i}.num_batches_tracked")
        i += 1
    i += 1  # ReLU
    for layer in range(5):
        scope = f"upconv_{layer}"
        entries += [Entry(("params", scope, "conv", "kernel"), f"main.{i}.weight", "conv"),
                    Entry(("params", scope, "conv", "bias"), f"main.{i}.bias", "copy")]
        i += 1
        if bn and layer < 4:
            entries += _bn(scope, i, running=True)
            ignored.append(f"main.{i}.num_batches_tracked")
            i += 1
        i += 1  # ReLU, or Tanh after the last layer
    return entries, ignored


def discriminator_table(cfg: ModelConfig) -> Tuple[List[Entry], List[str]]:
    """(entries, ignored torch keys) for SpecGANDiscriminator: per layer Conv, [BN], LeakyReLU."""
    entries, ignored, i = [], [], 0
    for layer in range(5):
        scope = f"downconv_{layer}"
        entries += [Entry(("params", scope, "conv", "kernel"), f"main.{i}.weight", "conv"),
                    Entry(("params", scope, "conv", "bias"), f"main.{i}.bias", "copy")]
        i += 1
        if cfg.use_batchnorm and layer > 0:
            entries += _bn(scope, i, running=False)
            ignored += [f"main.{i}.{b}" for b in ("running_mean", "running_var",
                                                  "num_batches_tracked")]
            i += 1
        i += 1  # LeakyReLU
    entries += [Entry(("params", "output", "kernel"), "output.weight", "d_out"),
                Entry(("params", "output", "bias"), "output.bias", "copy")]
    if cfg.conditional:
        entries.append(Entry(("params", "class_proj", "embedding"), "class_proj.weight", "d_proj"))
    return entries, ignored


def _expected_flax_shapes(cfg: ModelConfig, which: str) -> Dict[Tuple[str, ...], tuple]:
    g, d = jax.eval_shape(lambda k: init_models(cfg, k), jax.random.key(0))
    tree = g if which == "generator" else d
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {tuple(p.key for p in path): tuple(leaf.shape) for path, leaf in flat}


def _table(cfg, which):
    return generator_table(cfg) if which == "generator" else discriminator_table(cfg)


def _to_numpy(t) -> np.ndarray:
    """A copy: .numpy() shares memory with the tensor, and torch updates BN buffers in place."""
    if hasattr(t, "detach"):  # torch.Tensor, without importing torch here
        t = t.detach().cpu().numpy()
    return np.array(t, copy=True)


def from_torch(cfg: ModelConfig, state_dict, which: str) -> dict:
    """torch state_dict -> Flax variables {'params': ..., 'batch_stats': ...} (numpy leaves)."""
    entries, ignored = _table(cfg, which)
    want = _expected_flax_shapes(cfg, which)
    keys = set(state_dict)
    known = {e.torch_key for e in entries}
    missing = sorted(known - keys)
    unexpected = sorted(keys - known - set(ignored))
    if missing or unexpected:
        raise ConversionError(
            f"{which} state_dict does not match the model config (dim={cfg.dim}, "
            f"use_batchnorm={cfg.use_batchnorm}, upsample={cfg.upsample!r}, "
            f"conditional={cfg.conditional}, n_classes={cfg.n_classes}, "
            f"shape={cfg.n_freq}x{cfg.n_time}): "
            f"missing keys {missing}, unexpected keys {unexpected}")
    seed = _seed(cfg)
    out: dict = {}
    for e in entries:
        a = _to_numpy(state_dict[e.torch_key])
        try:
            v = _flax_from_torch(e.kind, a, seed)
        except ValueError as err:  # a reshape that cannot work: wrong size
            raise ConversionError(f"{e.torch_key}: shape {a.shape} cannot be converted "
                                  f"({err})") from None
        if v.shape != want[e.flax_path]:
            raise ConversionError(f"{e.torch_key}: shape {a.shape} converts to {v.shape}, but "
                                  f"{'/'.join(e.flax_path)} needs {want[e.flax_path]}")
        node = out
        for k in e.flax_path[:-1]:
            node = node.setdefault(k, {})
        node[e.flax_path[-1]] = v
    if set(want) != {e.flax_path for e in entries}:  # the table itself is incomplete
        raise ConversionError(f"conversion table misses {sorted(set(want) - {e.flax_path for e in entries})}")
    return out


def to_torch(cfg: ModelConfig, variables: dict, which: str) -> dict:
    """Flax variables -> torch state_dict (torch tensors), loadable by specgan_torch_ref."""
    import torch

    entries, ignored = _table(cfg, which)
    flat = jax.tree_util.tree_flatten_with_path(variables)[0]
    have = {tuple(p.key for p in path): np.asarray(leaf) for path, leaf in flat}
    want = _expected_flax_shapes(cfg, which)
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    if missing or unexpected:
        raise ConversionError(f"{which} variables do not match the model config: missing "
                              f"{missing}, unexpected {unexpected}")
    seed = _seed(cfg)
    sd = {}
    for e in entries:
        a = have[e.flax_path]
        if a.shape != want[e.flax_path]:
            raise ConversionError(f"{'/'.join(e.flax_path)}: shape {a.shape}, expected "
                                  f"{want[e.flax_path]}")
        sd[e.torch_key] = torch.from_numpy(np.array(_torch_from_flax(e.kind, a, seed), order="C"))
    if which == "generator":  # buffers torch's BatchNorm2d expects; see the module docstring
        for k in ignored:
            sd[k] = torch.zeros((), dtype=torch.long)
    return sd


def generator_from_torch(cfg: ModelConfig, state_dict) -> dict:
    return from_torch(cfg, state_dict, "generator")


def generator_to_torch(cfg: ModelConfig, g_vars: dict) -> dict:
    return to_torch(cfg, g_vars, "generator")


def discriminator_from_torch(cfg: ModelConfig, state_dict) -> dict:
    return from_torch(cfg, state_dict, "discriminator")


def discriminator_to_torch(cfg: ModelConfig, d_vars: dict) -> dict:
    return to_torch(cfg, d_vars, "discriminator")
