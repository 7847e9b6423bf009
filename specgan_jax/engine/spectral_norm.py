"""Spectral normalisation of the critic's weights (Miyato et al. 2018, "Spectral Normalization
for Generative Adversarial Networks"), stateless.

Each weight W is used as W / sigma(W), sigma the largest singular value of W viewed as a matrix
M [out, rest]: a conv kernel HWIO [K, K, in, out] as M = kernel.reshape(-1, out).T
[out, K*K*in], a dense kernel [F, out] as M = kernel.T. sigma is estimated by power iteration
(the paper's Algorithm 1):

    u_0 = (1, ..., 1) / sqrt(out)                          a fixed, deterministic start
    v_t = normalize(M^T u_{t-1}),  u_t = normalize(M v_t)   t = 1..n
    sigma = u_n^T M v_n

with normalize(a) = a / max(||a||_2, 1e-12) (torch.nn.functional.normalize's eps). u_n and v_n
are constants for differentiation (stop_gradient), so d sigma / dM = u_n v_n^T, the paper's
gradient (its eq. 12): the normalised layer's gradient is that of W / sigma with sigma's
dependence on W through u v^T only.

Stateless: the paper (and torch.nn.utils.spectral_norm) keeps u from the previous training
step and runs one iteration per step, a buffer updated in place. Here every forward starts
again from u_0 and runs n iterations, so the critic stays a pure function of its parameters:
no new state in the train state, checkpoints or step, and the JAX engine and the PyTorch
reference compute the same function. The cost is n pairs of matrix-vector products per weight
and forward pass (n = model.sn_iterations, 10 by default), small against the convolutions.

Power iteration converges as (sigma_2 / sigma_1)^(2n) in sigma's relative error; a random
kernel has sigma_2 close to sigma_1, so a short run underestimates sigma and the normalised
weight's spectral norm is somewhat above 1 (measured in docs/recipes.md). That is the function
that is trained, exactly the same in both implementations (parity_tests/test_spectral_norm_parity.py).
A [F, 1] dense kernel (the critic's `output`) has out = 1: u is 1 and sigma = ||w||_2 exactly.
"""

from __future__ import annotations

from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype
from jax import lax

from specgan_jax.config import ModelConfig

EPS = 1e-12  # torch.nn.functional.normalize's default


def sn_iterations(cfg: ModelConfig) -> int:
    """The power iterations of the critic's layers: cfg.sn_iterations, 0 (off) without
    cfg.spectral_norm."""
    return cfg.sn_iterations if cfg.spectral_norm else 0


def _normalize(a: jax.Array) -> jax.Array:
    return a / jnp.maximum(jnp.linalg.norm(a), EPS)


def spectral_sigma(m: jax.Array, n_iter: int) -> jax.Array:
    """sigma = u^T M v of M [out, rest] after n_iter power iterations from u_0 = ones/sqrt(out),
    u and v held constant for differentiation (module docstring). Float32 (or float64) as M."""
    u = jnp.full((m.shape[0],), 1.0 / jnp.sqrt(m.shape[0]), m.dtype)
    mc = lax.stop_gradient(m)
    v = None
    for _ in range(n_iter):  # n_iter is small and static: unrolled
        v = _normalize(mc.T @ u)
        u = _normalize(mc @ v)
    return u @ (m @ lax.stop_gradient(v))


def normalize_kernel(kernel: jax.Array, n_iter: int) -> jax.Array:
    """kernel / sigma(M) for a conv kernel [K, K, in, out] or dense kernel [F, out]: M is
    [out, everything else] (the out axis last, as in both layouts)."""
    out = kernel.shape[-1]
    return kernel / spectral_sigma(kernel.reshape(-1, out).T, n_iter)


class SNDense(nn.Module):
    """nn.Dense with its kernel spectrally normalised: the same parameters ("kernel" [F, out],
    "bias" [out], float32) and initialisers, so checkpoints and weight conversion are those of
    the plain layer. dtype bf16: inputs and the normalised kernel rounded to bf16, the product
    accumulated in float32 (the plain layer's bf16 mode); sigma is computed in the parameters'
    float32. None: the inputs' and parameters' promoted dtype, as nn.Dense."""

    features: int
    n_iter: int
    kernel_init: Callable
    bias_init: Callable
    dtype: Optional[jnp.dtype] = None

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
        kernel = normalize_kernel(kernel, self.n_iter)
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())),
                            preferred_element_type=jnp.float32 if self.dtype == jnp.bfloat16
                            else None)
        return y + bias
