"""SpecGAN generator and discriminator (Donahue et al. 2019; chrisdonahue/wavegan specgan.py).

Layout NHWC [B, F, T, 1]: H = frequency (CSV rows, row 0 = lowest bin), W = time; F x T =
cfg.n_freq x cfg.n_time (128 x 128 by default; any multiples of 32). Submodule
names follow the original TF variable scopes (z_project, upconv_0..4, downconv_0..4, output),
with the layer inside each scope named `dense`/`conv` and its batch norm `bn`.

Shape: G's dense layer z_project makes a seed [F/32, T/32, 16d] that 5 stride-2 layers double
to [F, T]; D halves [F, T] 5 times and flattens [F/32, T/32, 16d] (NHWC order) into its
`output` layer. Only those two dense layers (and class_proj) depend on the shape.

Param counts at dim=64, 128 x 128 (no BN): generator 19,065,345; discriminator 17,427,969.

Class-conditional models (model.conditional; labels y int32 [B] in [0, n_classes)) add two
parameters and nothing else, so unconditional models keep their parameter tree and numbers:
  class_embed/embedding [n_classes, latent_dim]  G: a learned code per class, joined to z
  class_proj/embedding  [n_classes, h*w*16d]     D: the projection discriminator's class vectors
(h x w = the seed shape, 4 x 4 at 128 x 128; dim=64 there: +1,638,400 + 100 * n_classes in G,
the wider z_project kernel; +16,384 * n_classes in D.)
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from specgan_jax.config import ModelConfig
from specgan_jax.config.model import STRIDE_LAYERS, needs_classes_message
from specgan_jax.config.resolve import Platform, auto_conv_impl
from specgan_jax.engine.layers import BatchNorm, DownConv, UpConv, bias_init, kernel_init
from specgan_jax.engine.spectral_norm import SNDense, sn_iterations



def seed_shape(cfg: ModelConfig) -> tuple[int, int]:
    """(h, w): G's seed and D's last feature map, the example shape halved STRIDE_LAYERS times
    (4 x 4 for 128 x 128; ModelConfig checks that the shape divides)."""
    return cfg.n_freq >> STRIDE_LAYERS, cfg.n_time >> STRIDE_LAYERS


def resolve_impl(cfg: ModelConfig) -> str:
    """The convolution implementation actually used: cfg.conv_impl once resolved
    (specgan_jax.config.resolve), else "auto" decided for this process's platform."""
    return auto_conv_impl(cfg, Platform.detect())


def compute_dtype(cfg: ModelConfig):
    """bf16 mode: the input/weight dtype of every convolution and dense layer (accumulation is
    float32). None in fp32 mode: layers compute in their inputs' dtype, which keeps float64
    inputs float64 (the parity suite's x64 checks)."""
    return jnp.bfloat16 if cfg.precision == "bf16" else None


def _dense(features: int, cfg: ModelConfig, name: str, sn_iter: int = 0):
    if sn_iter:  # the same parameters, the kernel spectrally normalised
        return SNDense(features, sn_iter, kernel_init, bias_init, compute_dtype(cfg), name=name)
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
    """z_project: Dense -> reshape [B,h,w,16d] (seed_shape) -> (BN)."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, z, train: bool):
        c = 16 * self.cfg.dim
        h, w = seed_shape(self.cfg)
        x = _from_compute(_dense(h * w * c, self.cfg, "dense")(z), self.cfg)  # -> [B,h*w*16d]
        x = x.reshape(z.shape[0], h, w, c)  # NHWC, as tf.reshape in specgan.py
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
                     sn_iterations(c), name="conv")(x)
        if self.batchnorm:
            # The critic's BN always normalises with batch statistics (specgan.py: training=True)
            x = BatchNorm(track_running_stats=False, name="bn")(x, True)
        return x


def class_embed_dim(cfg: ModelConfig) -> int:
    """E, the size of G's class code: latent_dim, as many dimensions as the noise. z_project
    sees the code only through the per-class vector W_e e_y it adds to its output, and those
    n_classes vectors are unconstrained as long as E >= n_classes; E = latent_dim keeps that
    true up to latent_dim classes without another hyperparameter, for E * 4*4*16d more kernel
    weights."""
    return cfg.latent_dim


def check_labels(cfg: ModelConfig, y, batch: int, who: str) -> None:
    """The labels argument of G and D: required (int [B]) for a conditional model, refused for
    an unconditional one. Values must lie in [0, n_classes): under jit they cannot be checked,
    and nn.Embed returns NaN for an index out of range."""
    if not cfg.conditional:
        if y is not None:
            raise ValueError(f"{who}: this model is unconditional (model.conditional=False) and "
                             "takes no class labels; got y")
        return
    if cfg.n_classes < 2:
        raise ValueError(f"{who}: {needs_classes_message(cfg.n_classes)}")
    if y is None:
        raise ValueError(f"{who}: a conditional model (model.conditional=True, n_classes="
                         f"{cfg.n_classes}) needs class labels y, int32 [B]")
    if not jnp.issubdtype(jnp.asarray(y).dtype, jnp.integer) or jnp.shape(y) != (batch,):
        raise ValueError(f"{who}: class labels y must be integers of shape ({batch},); got "
                         f"{jnp.asarray(y).dtype} {jnp.shape(y)}")


class Generator(nn.Module):
    """z [B, latent_dim] -> spectrogram [B, F, T, 1] in [-1, 1] (F x T = n_freq x n_time).

    Conditional (cfg.conditional): labels y [B] pick a learned code e_y [E] (class_embed,
    E = class_embed_dim), and z_project sees [z, e_y] (latent_dim + E inputs), so its dense
    layer adds a per-class vector to its output before the batch norm, if any (the concatenation
    conditioning of Mirza & Osindero 2014, "Conditional Generative Adversarial Nets"). The code
    is initialised N(0, 1), the same order as z, and looked up in float32 in bf16 mode (the dense
    layer then rounds [z, e_y] to bf16 as it does z).
    cond_scale (a scalar, traced or not; None = 1): the code is scaled by it, e_y -> s * e_y:
    transitional conditioning (LossConfig.cond_start), where s = 0 is an unconditional G.
    """

    cfg: ModelConfig

    @nn.compact
    def __call__(self, z, y=None, train: bool = False, cond_scale=None):
        d, bn = self.cfg.dim, self.cfg.use_batchnorm
        check_labels(self.cfg, y, z.shape[0], "Generator")
        if self.cfg.conditional:
            e = nn.Embed(self.cfg.n_classes, class_embed_dim(self.cfg),
                         embedding_init=nn.initializers.normal(1.0), name="class_embed")(y)
            if cond_scale is not None:
                e = e * cond_scale
            z = jnp.concatenate([z, e.astype(z.dtype)], axis=-1)  # [B, latent_dim + E]
        # shapes at 128 x 128 (others: F/32 x T/32 doubling to F x T)
        x = _DenseBlock(self.cfg, name="z_project")(z, train)  # [B,100(+E)] -> [B,4,4,16d]
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
    """x [B, F, T, 1] -> critic logits [B]. No BN on the first layer (specgan.py).

    Conditional (cfg.conditional): a projection discriminator (Miyato & Koyama 2018, "cGANs
    with Projection Discriminator"): with h = phi(x) the flattened last features
    [B, F/32*T/32*16d] that feed `output` (psi, the unconditional logit),

        D(x, y) = psi(h) + <v_y, h>,    v_y = row y of class_proj [n_classes, F/32*T/32*16d].

    Why this form (the paper's derivation): the optimal critic of the adversarial loss is the log
    density ratio r(x, y) = log q(x, y) / p(x, y) of data q and model p, which splits as
    log q(y|x) / p(y|x) + log q(x) / p(x). With log-linear class models log q(y|x) =
    (v^q_y)^T h - log Z_q(h) and log p(y|x) = (v^p_y)^T h - log Z_p(h), the first term is
    (v^q_y - v^p_y)^T h plus a y-independent part: r = v_y^T h + psi(h), v_y = v^q_y - v^p_y.
    The paper pools h over space (a sum); here h is the flattened map the unconditional logit
    already reads, so v_y is one more `output` kernel per class. v is Glorot-uniform like the
    `output` kernel (bounds sqrt(6 / (F + n_classes)) and sqrt(6 / (F + 1)), F = 4*4*16d), so
    both terms start at the same scale. bf16 mode: h is float32 and so is the projection.
    cond_scale (None = 1): D(x, y) = psi(h) + s <v_y, h>, transitional conditioning as in G.
    cfg.spectral_norm: every downconv kernel and the `output` kernel divided by its spectral
    norm (engine/spectral_norm.py); class_proj is not (an embedding table, not a layer's map).
    """

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x, y=None, cond_scale=None):
        d, bn = self.cfg.dim, self.cfg.use_batchnorm
        check_labels(self.cfg, y, x.shape[0], "Discriminator")
        if x.shape[1:3] != (self.cfg.n_freq, self.cfg.n_time):
            raise ValueError(f"Discriminator: input of {x.shape[1]} x {x.shape[2]} (frequency x "
                             f"time); this model (model.n_freq x model.n_time) takes "
                             f"{self.cfg.n_freq} x {self.cfg.n_time}")
        # shapes at 128 x 128 (others: F/2 x T/2 halving to F/32 x T/32)
        x = leaky_relu(_DownBlock(self.cfg, d, False, name="downconv_0")(x))  # -> [B,64,64,d]
        x = leaky_relu(_DownBlock(self.cfg, 2 * d, bn, name="downconv_1")(x))  # -> [B,32,32,2d]
        x = leaky_relu(_DownBlock(self.cfg, 4 * d, bn, name="downconv_2")(x))  # -> [B,16,16,4d]
        x = leaky_relu(_DownBlock(self.cfg, 8 * d, bn, name="downconv_3")(x))  # -> [B,8,8,8d]
        x = leaky_relu(_DownBlock(self.cfg, 16 * d, bn, name="downconv_4")(x))  # -> [B,4,4,16d]
        h = x.reshape(x.shape[0], -1)  # flatten NHWC: [B, (h, w, c)] = [B, 4*4*16d]
        out = _dense(1, self.cfg, "output", sn_iterations(self.cfg))
        logit = _from_compute(out(h), self.cfg)[:, 0]  # psi(h)
        if self.cfg.conditional:
            v = nn.Embed(self.cfg.n_classes, h.shape[-1], embedding_init=kernel_init,
                         name="class_proj")(y)  # [B, h*w*16d]
            proj = jnp.sum(v.astype(h.dtype) * h, axis=-1)  # <v_y, h>
            logit = logit + (proj if cond_scale is None else cond_scale * proj)
        return logit  # [B] logits (float32 in bf16 mode)


def init_models(cfg: ModelConfig, key: jax.Array, batch: int = 1):
    """Initial variables of G ({'params', 'batch_stats'?}) and D ({'params'}); a conditional
    model's class_embed / class_proj included (initialised with dummy labels 0)."""
    kg, kd = jax.random.split(key)
    y = jnp.zeros((batch,), jnp.int32) if cfg.conditional else None
    g_vars = Generator(cfg).init(kg, jnp.zeros((batch, cfg.latent_dim), jnp.float32), y,
                                 train=False)
    d_vars = Discriminator(cfg).init(kd, jnp.zeros((batch, cfg.n_freq, cfg.n_time, 1),
                                                   jnp.float32), y)
    return dict(g_vars), dict(d_vars)


def g_variables(params, batch_stats):
    """G's variables for `Generator.apply`: batch_stats only when it has batch norm ({})."""
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def param_count(tree) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(tree))
