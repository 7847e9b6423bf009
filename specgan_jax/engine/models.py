"""SpecGAN generator and discriminator (Donahue et al. 2019; chrisdonahue/wavegan specgan.py).

Layout NHWC [B, F, T, 1]: H = frequency (CSV rows, row 0 = lowest bin), W = time. Submodule
names follow the original TF variable scopes (z_project, upconv_0..4, downconv_0..4, output),
with the layer inside each scope named `dense`/`conv` and its batch norm `bn`.

Param counts at dim=64 (no BN): generator 19,065,345; discriminator 17,427,969.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from specgan_jax.config import ModelConfig
from specgan_jax.engine.layers import BatchNorm, DownConv, UpConv, bias_init, kernel_init

# 128x128 output: the 4x4 seed is upsampled 5 times by 2.
SPATIAL = 128
_SEED = 4


def resolve_impl(cfg: ModelConfig) -> str:
    """The convolution implementation actually used: "auto" -> "hybrid" on CPU, "phase"
    elsewhere (see ModelConfig.conv_impl)."""
    if cfg.conv_impl != "auto":
        return cfg.conv_impl
    if cfg.kernel_len != 5:  # the phase rewrite is derived for 5 taps
        return "xla"
    # "hybrid" only on a single CPU device: sharded over several devices its gradients were
    # measured wrong (see make_train_fns); "phase" is the multi-device and accelerator default.
    single_cpu = jax.default_backend() == "cpu" and jax.device_count() == 1
    return "hybrid" if single_cpu else "phase"


def compute_dtype(cfg: ModelConfig):
    """bf16 mode: the input/weight dtype of every convolution and dense layer (accumulation is
    float32). None in fp32 mode: layers compute in their inputs' dtype, which keeps float64
    inputs float64 (the parity suite's x64 checks)."""
    return jnp.bfloat16 if cfg.precision == "bf16" else None


def _dense(features: int, cfg: ModelConfig, name: str):
    if cfg.precision != "bf16":
        return nn.Dense(features, kernel_init=kernel_init, bias_init=bias_init, name=name)
    # bf16 inputs/weights, float32 params, the product accumulated and returned in float32
    return nn.Dense(features, kernel_init=kernel_init, bias_init=bias_init,
                    dtype=jnp.bfloat16, param_dtype=jnp.float32, name=name,
                    dot_general=functools.partial(lax.dot_general,
                                                  preferred_element_type=jnp.float32))


def _from_compute(x, cfg: ModelConfig):
    """A dense layer's output back to float32 in bf16 mode (its bias add may round to bf16)."""
    return x.astype(jnp.float32) if cfg.precision == "bf16" else x


class _DenseBlock(nn.Module):
    """z_project: Dense -> reshape [B,4,4,16d] -> (BN)."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, z, train: bool):
        c = 16 * self.cfg.dim
        x = _from_compute(_dense(_SEED * _SEED * c, self.cfg, "dense")(z), self.cfg)  # -> [B,4*4*16d]
        x = x.reshape(z.shape[0], _SEED, _SEED, c)  # NHWC, as tf.reshape in specgan.py
        if self.cfg.use_batchnorm:
            x = BatchNorm(name="bn")(x, train)
        return x


class _UpBlock(nn.Module):
    cfg: ModelConfig
    features: int
    batchnorm: bool

    @nn.compact
    def __call__(self, x, train: bool):
        c = self.cfg
        x = UpConv(self.features, c.kernel_len, c.upsample, c.padding, resolve_impl(c),
                   compute_dtype(c), name="conv")(x)
        if self.batchnorm:
            x = BatchNorm(name="bn")(x, train)
        return x


class _DownBlock(nn.Module):
    cfg: ModelConfig
    features: int
    batchnorm: bool

    @nn.compact
    def __call__(self, x):
        c = self.cfg
        x = DownConv(self.features, c.kernel_len, c.padding, resolve_impl(c), compute_dtype(c),
                     name="conv")(x)
        if self.batchnorm:
            # The critic's BN always normalises with batch statistics (specgan.py: training=True)
            x = BatchNorm(track_running_stats=False, name="bn")(x, True)
        return x


class Generator(nn.Module):
    """z [B, latent_dim] -> spectrogram [B, 128, 128, 1] in [-1, 1]."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, z, train: bool = False):
        d, bn = self.cfg.dim, self.cfg.use_batchnorm
        x = _DenseBlock(self.cfg, name="z_project")(z, train)  # [B,100] -> [B,4,4,16d]
        x = nn.relu(x)
        x = nn.relu(_UpBlock(self.cfg, 8 * d, bn, name="upconv_0")(x, train))  # -> [B,8,8,8d]
        x = nn.relu(_UpBlock(self.cfg, 4 * d, bn, name="upconv_1")(x, train))  # -> [B,16,16,4d]
        x = nn.relu(_UpBlock(self.cfg, 2 * d, bn, name="upconv_2")(x, train))  # -> [B,32,32,2d]
        x = nn.relu(_UpBlock(self.cfg, d, bn, name="upconv_3")(x, train))  # -> [B,64,64,d]
        x = _UpBlock(self.cfg, 1, False, name="upconv_4")(x, train)  # -> [B,128,128,1]
        return jnp.tanh(x)


def leaky_relu(x, alpha: float = 0.2):
    """specgan.py's lrelu, tf.maximum(alpha * x, x), with its slope at exactly 0: TF's Maximum
    gradient goes to the first argument on ties, so alpha, as torch's LeakyReLU. jax.nn.leaky_relu
    (where(x >= 0, ...)) has slope 1 there and jnp.maximum splits ties (0.6). Exact zeros are
    rare but real: weights clipped to +-c (WGAN) or constant inputs make sums cancel exactly."""
    return jnp.where(x > 0, x, alpha * x)


class Discriminator(nn.Module):
    """x [B, 128, 128, 1] -> critic logits [B]. No BN on the first layer (specgan.py)."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x):
        d, bn = self.cfg.dim, self.cfg.use_batchnorm
        x = leaky_relu(_DownBlock(self.cfg, d, False, name="downconv_0")(x))  # -> [B,64,64,d]
        x = leaky_relu(_DownBlock(self.cfg, 2 * d, bn, name="downconv_1")(x))  # -> [B,32,32,2d]
        x = leaky_relu(_DownBlock(self.cfg, 4 * d, bn, name="downconv_2")(x))  # -> [B,16,16,4d]
        x = leaky_relu(_DownBlock(self.cfg, 8 * d, bn, name="downconv_3")(x))  # -> [B,8,8,8d]
        x = leaky_relu(_DownBlock(self.cfg, 16 * d, bn, name="downconv_4")(x))  # -> [B,4,4,16d]
        x = x.reshape(x.shape[0], -1)  # flatten NHWC: [B, 4*4*16d]
        x = _from_compute(_dense(1, self.cfg, "output")(x), self.cfg)
        return x[:, 0]  # [B] logits (float32 in bf16 mode)


def init_models(cfg: ModelConfig, key: jax.Array, batch: int = 1):
    """Initial variables of G ({'params', 'batch_stats'?}) and D ({'params'})."""
    kg, kd = jax.random.split(key)
    g_vars = Generator(cfg).init(kg, jnp.zeros((batch, cfg.latent_dim), jnp.float32), train=False)
    d_vars = Discriminator(cfg).init(kd, jnp.zeros((batch, SPATIAL, SPATIAL, 1), jnp.float32))
    return dict(g_vars), dict(d_vars)


def param_count(tree) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(tree))
