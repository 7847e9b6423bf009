"""The layers SpecGAN needs, each with two equivalent ways to compute it.

Parameters are stored in the original's layouts whatever the implementation, so checkpoints,
weight conversion and the parity suite do not care how a layer is computed:

  Conv (stride 2 or 1)     kernel [K, K, in, out]   (TF/Flax; torch Conv2d.weight.permute(2,3,1,0))
  ConvTranspose (stride 2) kernel [K, K, out, in]   (TF conv2d_transpose / Flax transpose_kernel=True;
                                                     torch ConvTranspose2d.weight.permute(2,3,1,0))

Index conventions for a stride-2 layer along one spatial axis (the other is the same), with
`p` the number of zeros padded before the input in the equivalent forward convolution:

  strided conv:     y[i] = sum_k x[2i + k - p] w[k]
  transposed conv:  y[j] = sum_{i,k : j = 2i + k - p} x[i] w[k]       (its adjoint)

  padding="same"  (TF 'SAME', even input):  p = (K - 2) // 2   (K=5: pads 1 before, 2 after)
  padding="torch" (the seed's padding=2):   p = K // 2         (K=5: pads 2 and 2; transposed
                                                                 conv with output_padding=1)

The "phase" implementation (sub-pixel decomposition) rewrites every stride-2 layer as one
stride-1 3x3 convolution on the half-resolution grid: output phase r in {0,1} at offset
d in {-1,0,1} of the half-resolution input uses tap k(r, d) of the 5-tap kernel (or none):

  transposed conv:   j = 2m + r reads x[m + d]  with  k = r + p - 2d
  strided conv:      x[2(i + d) + r] = s2d(x)[i + d, r]  with  k = 2d + r + p
  nearest x2 + conv: j = 2m + r reads x[m + floor((r + k - 2) / 2)]  (taps summed per d)

so G's transposed convs become conv3x3 -> depth-to-space and D's strided convs become
space-to-depth -> conv3x3. No lhs-dilated convolution remains, in the forward pass nor in any
gradient, which XLA:CPU lowers to slow generic code. The kernels are assembled from
the stored weights inside the jitted function by static slicing (exact: no arithmetic on them).
"""

from __future__ import annotations

import functools
from typing import Literal, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from specgan_jax.engine.convs import NHWC, conv, conv3x3
from specgan_jax.engine.spectral_norm import normalize_kernel

# TF defaults for tf.layers.*: Glorot-uniform kernels and zero biases (not Flax's lecun_normal,
# not PyTorch's kaiming-uniform). Glorot is symmetric in fan-in/fan-out, so the [.., out, in]
# layout of transposed-conv kernels gets the same distribution as TF's.
kernel_init = nn.initializers.glorot_uniform()
bias_init = nn.initializers.zeros_init()

Padding = Literal["same", "torch"]
Impl = Literal["xla", "phase", "hybrid"]


def pad_before(kernel_len: int, padding: Padding) -> int:
    """`p` above: zeros before the input of the (equivalent forward) stride-2 convolution."""
    return (kernel_len - 2) // 2 if padding == "same" else kernel_len // 2


def _selection(kind: str, p: int, kernel_len: int = 5) -> np.ndarray:
    """S[d+1, r, k] = 1 where phase r at half-resolution offset d uses kernel tap k."""
    s = np.zeros((3, 2, kernel_len), np.float32)
    for a, d in enumerate((-1, 0, 1)):
        for r in (0, 1):
            for k in range(kernel_len):
                if kind == "transpose":
                    hit = k == r + p - 2 * d
                elif kind == "strided":
                    hit = k == 2 * d + r + p
                elif kind == "nn":
                    hit = (r + k - 2) // 2 == d
                else:
                    raise ValueError(kind)
                s[a, r, k] = float(hit)
    if kind in ("transpose", "strided"):
        # every tap lands on exactly one (phase, offset): the rewrite is exact, not approximate
        assert (s.sum(axis=(0, 1)) == 1).all(), (kind, p)
    return s


def _select_taps(w: jax.Array, s: np.ndarray, axis: int) -> jax.Array:
    """Replace kernel axis `axis` (K taps) by 6 = (offset d, phase r) entries: entry (a, r) is
    sum_k S[a, r, k] w[k] (one tap, a sum of taps for "nn", or zeros).

    Static slices and adds only: S is a 0/1 constant, so this is exactly the selection, with
    no arithmetic on the weights beyond the adds "nn" needs (an einsum with S measured ~8% of
    the CPU step in dot ops; this is data movement, and its gradient is pads and adds).
    """
    parts = []
    for a in range(3):
        for r in range(2):
            taps = [lax.index_in_dim(w, int(k), axis, keepdims=True) for k in np.flatnonzero(s[a, r])]
            part = taps[0] if taps else jnp.zeros_like(lax.index_in_dim(w, 0, axis, keepdims=True))
            for t in taps[1:]:
                part = part + t
            parts.append(part)
    return jnp.concatenate(parts, axis=axis)


def _phase_kernel(w_hwio: jax.Array, s: np.ndarray) -> jax.Array:
    """[K,K,I,O] stored kernel -> [3,3,(a,b),I,O] phase kernels: sum_k,l S[a,r,k] S[b,s,l] w[k,l],
    returned as [3(a), 3(b), 2(r), 2(s), I, O]."""
    i, o = w_hwio.shape[2], w_hwio.shape[3]
    w6 = _select_taps(_select_taps(w_hwio, s, 0), s, 1)  # [(a,r), (b,s), I, O]
    return w6.reshape(3, 2, 3, 2, i, o).transpose(0, 2, 1, 3, 4, 5)


def depth_to_space(y: jax.Array, c: int) -> jax.Array:
    """[B, n, m, (2, 2, c)] -> [B, 2n, 2m, c] with y[..., (r, s, :)] going to pixel (2i+r, 2j+s)."""
    b, n, m, _ = y.shape
    y = y.reshape(b, n, m, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)  # [B, n, 2, m, 2, c]
    return y.reshape(b, 2 * n, 2 * m, c)


def space_to_depth(x: jax.Array) -> jax.Array:
    """[B, 2n, 2m, c] -> [B, n, m, (2, 2, c)], the inverse of depth_to_space."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)  # [B, n, m, 2, 2, c]
    return x.reshape(b, h // 2, w // 2, 4 * c)


# Dtypes: kernels arrive in the parameters' dtype and are cast to x's dtype only after the phase
# kernels are assembled, so bf16 mode rounds each weight once; bf16 inputs give float32 results.


def conv_transpose_2x(x, kernel, padding: Padding, impl: Impl):
    """Stride-2 transposed conv, [B,n,n,I] -> [B,2n,2n,O]; kernel [K,K,O,I] (transpose layout)."""
    k = kernel.shape[0]
    p = pad_before(k, padding)
    w = jnp.swapaxes(kernel, 2, 3)  # [K,K,I,O]
    if impl == "xla":
        # Zero-insertion (lhs dilation 2), pad (K-1-p, p+1), correlate with the flipped kernel.
        lo = k - 1 - p
        return conv(x, w[::-1, ::-1].astype(x.dtype), padding=[(lo, p + 1)] * 2,
                     lhs_dilation=(2, 2))
    o = kernel.shape[2]
    w3 = _phase_kernel(w, _selection("transpose", p, k))  # [3,3,2,2,I,O]
    w3 = w3.transpose(0, 1, 4, 2, 3, 5).reshape(3, 3, w.shape[2], 4 * o)  # [3,3,I,(r,s,O)]
    y = conv3x3(x, w3.astype(x.dtype))  # [B,n,n,4O]
    return depth_to_space(y, o)


@functools.lru_cache(maxsize=None)
def _strided_conv_ops(padding: Padding, k: int):
    """The stride-2 conv as a closed set of three linear ops, each with a custom VJP written in
    the other two, so that derivatives of any order (the gradient penalty's double backward)
    stay on these implementations:

      down(x, w)   the strided conv, run natively          [B,2n,2n,I] -> [B,n,n,O], w [K,K,I,O]
      up(y, w)     its adjoint in x (a transposed conv), run as the phase rewrite
                                                            [B,n,n,O] -> [B,2n,2n,I]
      kgrad(x, y)  its adjoint in w (the kernel gradient), run natively      -> [K,K,I,O]

    <down(x,w), c> = <x, up(c,w)> = <w, kgrad(x,c)>, hence the VJPs
      down: (up(c, w), kgrad(x, c))   up: (down(c, w), kgrad(c, y))   kgrad: (up(y, c), down(x, c)).
    Why: XLA:CPU runs the native strided conv forward ~2x faster than the phase form, but plain
    autodiff of it yields lhs-dilated convolutions, which it runs ~5x slower (one D layer's GP
    double backward: 107 ms native vs 21 ms phase). Measured on the whole CPU step (dim 16,
    batch 16, one process, alternated): 0.85x the time of conv_impl="phase"; the same trick for
    G's transposed convs gained nothing (0.99x), so G stays "phase".
    """
    p = pad_before(k, padding)
    after = k - 2 - p if padding == "same" else p  # as conv_2x's "xla" branch

    def out_dtype(x):  # _conv's result dtype for inputs of x's dtype
        return jnp.float32 if x.dtype == jnp.bfloat16 else x.dtype

    def down_impl(x, w):
        return conv(x, w.astype(x.dtype), strides=(2, 2), padding=[(p, after)] * 2)

    def kgrad_impl(x, y):
        # dW[a, b, i, o] = sum_{n,r,c} xpad[n, 2r + a, 2c + b, i] y[n, r, c, o]: a stride-1
        # convolution of x with its batch and channel axes swapped, [I, H, W, B], by y as a
        # kernel [r, c, B, O] dilated by 2, giving [I, K, K, O]. Padding (p, K - 2 - p): the
        # rows/columns past K - 2 - p that "torch" padding adds are never read by any tap.
        # Written out in XLA's canonical (b01f, 01io) form rather than left to autodiff, whose
        # (f01b, i01o) form XLA:CPU canonicalises in a plain step but not inside a while loop
        # (the scan over steps), where it then ran on a slow generic path.
        lhs = jnp.transpose(x, (3, 1, 2, 0))
        rhs = jnp.transpose(y.astype(x.dtype), (1, 2, 0, 3))
        g = lax.conv_general_dilated(
            lhs, rhs, window_strides=(1, 1), padding=[(p, k - 2 - p)] * 2, rhs_dilation=(2, 2),
            dimension_numbers=NHWC,
            preferred_element_type=jnp.float32 if x.dtype == jnp.bfloat16 else None)
        return jnp.transpose(g, (1, 2, 0, 3)).astype(x.dtype)  # as the weights it stands for

    @jax.custom_vjp
    def down(x, w):
        return down_impl(x, w)

    @jax.custom_vjp
    def up(y, w):
        return conv_transpose_2x(y, w, padding, "phase")

    @jax.custom_vjp
    def kgrad(x, y):
        return kgrad_impl(x, y)

    def down_bwd(res, c):
        x, w = res
        c = c.astype(x.dtype)
        return up(c, w).astype(x.dtype), kgrad(x, c).astype(w.dtype)

    def up_bwd(res, c):
        y, w = res
        c = c.astype(y.dtype)
        return down(c, w).astype(y.dtype), kgrad(c, y).astype(w.dtype)

    def kgrad_bwd(res, c):
        x, y = res
        c = c.astype(x.dtype)
        return up(y, c).astype(x.dtype), down(x, c).astype(y.dtype)

    down.defvjp(lambda x, w: (down(x, w), (x, w)), down_bwd)
    up.defvjp(lambda y, w: (up(y, w), (y, w)), up_bwd)
    kgrad.defvjp(lambda x, y: (kgrad(x, y), (x, y)), kgrad_bwd)
    return down


def conv_2x(x, kernel, padding: Padding, impl: Impl):
    """Stride-2 conv, [B,2n,2n,I] -> [B,n,n,O]; kernel [K,K,I,O]."""
    k = kernel.shape[0]
    p = pad_before(k, padding)
    if impl == "hybrid":
        return _strided_conv_ops(padding, k)(x, kernel.astype(x.dtype))
    if impl == "xla":
        # 'same': TF SAME pads (p, K-2-p) for an even input; 'torch': (p, p)
        after = k - 2 - p if padding == "same" else p
        return conv(x, kernel.astype(x.dtype), strides=(2, 2), padding=[(p, after)] * 2)
    i, o = kernel.shape[2], kernel.shape[3]
    w3 = _phase_kernel(kernel, _selection("strided", p, k))  # [3,3,2,2,I,O]
    w3 = w3.reshape(3, 3, 4 * i, o)  # [3,3,(r,s,I),O], matching space_to_depth's channel order
    return conv3x3(space_to_depth(x), w3.astype(x.dtype))


def nn_upsampleconv(x, kernel, impl: Impl):
    """Nearest-neighbour x2 then a stride-1 'same' conv (specgan.py upsample='nn').

    'same' for stride 1 pads (K-1)//2 on both sides in TF and in torch alike.
    """
    k = kernel.shape[0]
    if impl == "xla":
        up = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # [B,2n,2n,I]
        half = (k - 1) // 2
        return conv(up, kernel.astype(x.dtype), padding=[(half, k - 1 - half)] * 2)
    i, o = kernel.shape[2], kernel.shape[3]
    w3 = _phase_kernel(kernel, _selection("nn", 0, k))  # [3,3,2,2,I,O]
    w3 = w3.transpose(0, 1, 4, 2, 3, 5).reshape(3, 3, i, 4 * o)
    return depth_to_space(conv3x3(x, w3.astype(x.dtype)), o)


class UpConv(nn.Module):
    """One generator upsampling layer (x2), `upconv_*` in specgan.py."""

    features: int
    kernel_len: int
    upsample: Literal["zeros", "nn"]
    padding: Padding
    impl: Impl
    dtype: Optional[jnp.dtype] = None  # bf16: compute dtype (fp32 accumulation); None: x's own

    @nn.compact
    def __call__(self, x):
        cin = x.shape[-1]
        k = self.kernel_len
        x = x if self.dtype is None else x.astype(self.dtype)
        if self.upsample == "zeros":
            kernel = self.param("kernel", kernel_init, (k, k, self.features, cin))  # [K,K,O,I]
            y = conv_transpose_2x(x, kernel, self.padding, self.impl)
        else:
            kernel = self.param("kernel", kernel_init, (k, k, cin, self.features))  # [K,K,I,O]
            y = nn_upsampleconv(x, kernel, self.impl)
        return y + self.param("bias", bias_init, (self.features,))


class DownConv(nn.Module):
    """One discriminator layer: conv k5 stride 2, `downconv_*` in specgan.py."""

    features: int
    kernel_len: int
    padding: Padding
    impl: Impl
    dtype: Optional[jnp.dtype] = None  # bf16: compute dtype (fp32 accumulation); None: x's own
    sn_iterations: int = 0  # > 0: the kernel spectrally normalised (engine/spectral_norm.py)

    @nn.compact
    def __call__(self, x):
        k = self.kernel_len
        kernel = self.param("kernel", kernel_init, (k, k, x.shape[-1], self.features))
        if self.sn_iterations:  # sigma from the stored (float32) kernel, before any bf16 cast
            kernel = normalize_kernel(kernel, self.sn_iterations)
        x = x if self.dtype is None else x.astype(self.dtype)
        y = conv_2x(x, kernel, self.padding, self.impl)
        return y + self.param("bias", bias_init, (self.features,))


BN_MOMENTS = "bn_moments"  # optional output collection: each BatchNorm's batch mean, unbiased var


def ema(running, batch, momentum: float):
    """The running-statistics update of TF/PyTorch batch norm (TF's momentum convention)."""
    return momentum * running + (1 - momentum) * batch


def advance_running_stats(batch_stats, moments, momentum: float):
    """Apply BatchNorm's running update for each batch of `moments` in order.

    moments: the BN_MOMENTS collection of a generator call vmapped over K batches (leaves
    [K, C], same tree as batch_stats). The result is the batch_stats K sequential training-mode
    calls would leave: the same ema() on the same moments, in the same order.
    """
    k = jax.tree_util.tree_leaves(moments)[0].shape[0]
    for i in range(k):
        batch_stats = jax.tree_util.tree_map(
            lambda r, b: ema(r, b[i], momentum), batch_stats, moments)
    return batch_stats


class BatchNorm(nn.Module):
    """Batch normalisation with TF's constants and the running-variance update of TF/PyTorch.

    epsilon 1e-3, momentum 0.99 (TF convention: running = 0.99 running + 0.01 batch; PyTorch
    momentum=0.01). Normalisation uses the biased batch variance; the running variance is updated
    with the unbiased one (TF fused batch norm and torch.nn.BatchNorm2d both apply Bessel's
    correction there; flax.linen.BatchNorm does not, which is why this module exists).
    `track_running_stats=False` (the discriminator's) always uses batch statistics and keeps no
    running statistics at all.
    """

    epsilon: float = 1e-3
    momentum: float = 0.99
    track_running_stats: bool = True

    @nn.compact
    def __call__(self, x, train: bool):
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones_init(), (c,))
        bias = self.param("bias", nn.initializers.zeros_init(), (c,))
        use_batch = train or not self.track_running_stats
        if self.track_running_stats:
            ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
            ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        if use_batch:
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(x, axes)
            var = jnp.mean(jnp.square(x - mean), axes)  # biased, used to normalise
            if self.track_running_stats and not self.is_initializing():
                n = x.size // c
                unbiased = var * (n / max(n - 1, 1))
                ra_mean.value = ema(ra_mean.value, mean, self.momentum)
                ra_var.value = ema(ra_var.value, unbiased, self.momentum)
                if self.is_mutable_collection(BN_MOMENTS):
                    # the batch's own moments, for callers that apply several batches' running
                    # updates themselves (train_step's vmapped generator passes)
                    self.put_variable(BN_MOMENTS, "mean", mean)
                    self.put_variable(BN_MOMENTS, "var", unbiased)
        else:
            mean, var = ra_mean.value, ra_var.value
        return (x - mean) * lax.rsqrt(var + self.epsilon) * scale + bias
