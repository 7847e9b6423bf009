"""The stride-1 convolutions the layers are built from (NHWC activations, HWIO kernels).

`conv3x3` is the 3x3 'same' convolution of the phase rewrite (specgan_jax.engine.layers) with a
closed custom VJP: its derivatives of any order are again `conv3x3` / `conv3x3_dw`, written in
XLA's canonical layouts (b01f activations, 01io kernels). Autodiff of a plain convolution leaves
the kernel gradient as (f01b, i01o) and the input gradient with an 01oi kernel; XLA:CPU rewrites
those to the canonical form in a plain step but not inside a while loop (the scan over steps),
where they then ran on a slow generic path. See docs/performance.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

NHWC = ("NHWC", "HWIO", "NHWC")


def conv(x, w, strides=(1, 1), padding="VALID", lhs_dilation=(1, 1)):
    # bf16 inputs (model.precision="bf16") accumulate and return float32; float32 and float64
    # (the parity suite's x64 checks) stay in their own dtype
    return lax.conv_general_dilated(
        x, w, window_strides=strides, padding=padding, lhs_dilation=lhs_dilation,
        dimension_numbers=NHWC,
        preferred_element_type=jnp.float32 if x.dtype == jnp.bfloat16 else None,
    )


def _conv3_dw_impl(x, c):
    """dW[a, b, i, o] = sum_{n,r,s} xpad[n, r + a, s + b, i] c[n, r, s, o] of the 3x3 'same'
    stride-1 conv: x with batch and channel axes swapped, [I, H, W, B], convolved with c as a
    kernel [H, W, B, O] (padding 1), giving [I, 3, 3, O] -> [3, 3, I, O]. Written in XLA's
    canonical (b01f, 01io) form: autodiff's (f01b, i01o) form is canonicalised by XLA:CPU in a
    plain step but not inside a while loop (the scan over steps), where it runs on a slow path."""
    g = lax.conv_general_dilated(
        jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(c.astype(x.dtype), (1, 2, 0, 3)),
        window_strides=(1, 1), padding=[(1, 1), (1, 1)], dimension_numbers=NHWC,
        preferred_element_type=jnp.float32 if x.dtype == jnp.bfloat16 else None)
    return jnp.transpose(g, (1, 2, 0, 3))


def _conv3_dx_kernel(w):
    """The 3x3 'same' conv's adjoint in x is the same conv with the kernel flipped in space and
    its in/out axes swapped: [3, 3, I, O] -> [3, 3, O, I] (the canonical 01io layout, where
    autodiff would leave 01oi)."""
    return jnp.swapaxes(w[::-1, ::-1], 2, 3)


@jax.custom_vjp
def conv3x3(x, w):
    """3x3 'same' stride-1 conv (the phase rewrite's workhorse) whose derivatives, of any order,
    are again conv3x3 / conv3x3_dw in XLA's canonical layouts:
      <conv3x3(x, w), c> = <x, conv3x3(c, flip(w)^T)> = <w, conv3x3_dw(x, c)>."""
    return conv(x, w, padding=[(1, 1), (1, 1)])


@jax.custom_vjp
def conv3x3_dw(x, c):
    return _conv3_dw_impl(x, c)


def _conv3x3_bwd(res, c):
    x, w = res
    c = c.astype(x.dtype)
    return (conv3x3(c, _conv3_dx_kernel(w)).astype(x.dtype),
            conv3x3_dw(x, c).astype(w.dtype))


def _conv3x3_dw_bwd(res, g):
    # <conv3x3_dw(x, c), g> = <c, conv3x3(x, g)> = <x, conv3x3(c, flip(g)^T)>
    x, c = res
    g = g.astype(x.dtype)
    return (conv3x3(c.astype(x.dtype), _conv3_dx_kernel(g)).astype(x.dtype),
            conv3x3(x, g).astype(c.dtype))


conv3x3.defvjp(lambda x, w: (conv3x3(x, w), (x, w)), _conv3x3_bwd)
conv3x3_dw.defvjp(lambda x, c: (conv3x3_dw(x, c), (x, c)), _conv3x3_dw_bwd)
