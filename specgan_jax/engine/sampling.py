"""Sampling from a generator: named latents, and one padded batch loop for any jitted function.

Seeding: sample i of seed S uses z_i = sample_latents(fold_in(PRNGKey(S), i)), so a (seed, i)
pair names one spectrogram whatever the number of samples and the batch size are.

Generation runs G in inference mode (`generate`: running BN statistics).

Batching (`map_padded`): a jitted function compiles once per input shape, so every batch has
exactly `batch_size` rows; the last one is padded with zeros and the padding's outputs are
dropped. Generation, previews, periodic evaluation and the feature extractors all go through it.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from specgan_jax.config import ModelConfig
from specgan_jax.engine.compile import jit
from specgan_jax.engine.models import Generator, g_variables


def sample_latents(key, n: int, latent_dim: int, dist: str = "uniform"):
    """z [n, latent_dim]: U(-1, 1) as the original, or N(0, 1) as the seed's loop."""
    if dist == "uniform":
        return jax.random.uniform(key, (n, latent_dim), jnp.float32, -1.0, 1.0)
    return jax.random.normal(key, (n, latent_dim), jnp.float32)


def generate(model_cfg: ModelConfig, g_params, g_batch_stats, z, y=None):
    """G(z) (G(z, y) for a conditional model; y int32 [B]) in inference mode (running BN
    statistics): [B, latent] -> [B, n_freq, n_time, 1]."""
    return Generator(model_cfg).apply(g_variables(g_params, g_batch_stats), z, y, train=False)


def run_keys(seed: int):
    """(k_init, k_train, k_preview) of a training run: the model's initialisation, the step
    draws (folded with the step number) and the preview latents, all from PRNGKey(seed)."""
    return tuple(jax.random.split(jax.random.PRNGKey(seed), 3))


def latents(seed: int, indices, latent_dim: int, dist: str):
    """z [len(indices), latent_dim]: row j = sample_latents(fold_in(PRNGKey(seed), i_j), 1)."""
    key = jax.random.PRNGKey(seed)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(np.asarray(indices, np.uint32))
    return jax.vmap(lambda k: sample_latents(k, 1, latent_dim, dist)[0])(keys)


def interpolation_latents(seed: int, n: int, latent_dim: int, dist: str):
    """n latents on the segment from sample 0 to sample 1 of `seed` (linear, endpoints
    included; for uniform z the segment stays inside the cube the generator was trained on)."""
    ends = latents(seed, np.arange(2), latent_dim, dist)  # [2, latent]
    w = jnp.linspace(0.0, 1.0, n)[:, None]  # [n, 1]
    return (1 - w) * ends[0] + w * ends[1]


def truncate(z, t: float):
    """The truncation trick: z shrunk toward the latent distribution's mean by t in (0, 1],
    z' = mean + t (z - mean) = t z (the mean is 0 for both U(-1, 1) and N(0, 1) latents).
    Smaller t trades diversity for fidelity (samples nearer the typical one); t = 1 returns z
    itself. For U(-1, 1) latents the shrunk z stays inside the training cube."""
    if not 0.0 < t <= 1.0:
        raise ValueError(f"truncation must be in (0, 1]; got {t}")
    return z if t == 1.0 else t * jnp.asarray(z)


def map_padded(fn: Callable, x, batch_size: int):
    """fn applied to x [N, ...] in batches of exactly `batch_size` rows -> numpy outputs for the
    N rows. fn returns an array or a tuple of arrays (an entry may be None); the result has the
    same structure, each array concatenated along axis 0. N = batch_size passes x unchanged."""
    n = x.shape[0]
    if n == batch_size:
        out = fn(x)
        return jax.tree.map(np.asarray, out) if isinstance(out, tuple) else np.asarray(out)
    parts = []
    for s in range(0, n, batch_size):
        b = np.asarray(x[s:s + batch_size])
        pad = batch_size - len(b)
        if pad:
            b = np.concatenate([b, np.zeros((pad,) + b.shape[1:], b.dtype)])
        out = fn(b)
        keep = batch_size - pad
        parts.append(tuple(None if o is None else np.asarray(o)[:keep] for o in out)
                     if isinstance(out, tuple) else np.asarray(out)[:keep])
    if not parts:
        raise ValueError("map_padded: no rows")
    if not isinstance(parts[0], tuple):
        return np.concatenate(parts)
    return tuple(None if parts[0][i] is None else np.concatenate([p[i] for p in parts])
                 for i in range(len(parts[0])))


def make_generate_fn(model_cfg: ModelConfig) -> Callable:
    """The jitted G(z) in inference mode: (g_params, g_batch_stats, z [B, latent], y=None) ->
    [B, F, T, 1] in the normalised domain [-1, 1]; y int32 [B]: class labels of a conditional
    model."""
    return jit(functools.partial(generate, model_cfg))


def generate_batched(gen_fn: Callable, g_params, g_batch_stats, z, batch_size: int,
                     labels=None) -> np.ndarray:
    """z [N, latent] (and class labels [N] for a conditional model) -> G's output [N, F, T]
    float32 (normalised, rows = frequency), in fixed batches of `batch_size` (see
    map_padded): one compilation for any N."""
    if labels is None:
        out = map_padded(lambda zb: gen_fn(g_params, g_batch_stats, zb), z, batch_size)
    else:
        zy = np.concatenate([np.asarray(z, np.float32),
                             np.asarray(labels, np.float32)[:, None]], axis=1)
        out = map_padded(lambda b: gen_fn(g_params, g_batch_stats, b[:, :-1],
                                          b[:, -1].astype(np.int32)), zy, batch_size)
    return out[..., 0]
