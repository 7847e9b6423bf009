"""Stateless spectral normalisation (Miyato et al. 2018) of the reference critic, written
independently of specgan_jax.

Each weight W (a Conv2d weight [out, in, K, K] or the Linear weight [out, F]) is used as
W / sigma, sigma estimated from M = W.reshape(out, -1) by n power iterations from a fixed start:

    u_0 = ones(out) / sqrt(out)
    v_t = normalize(M^T u_{t-1}),  u_t = normalize(M v_t)      t = 1..n   (no gradient)
    sigma = u_n^T M v_n                                       (gradient u_n v_n^T)

normalize = F.normalize (eps 1e-12). Not torch.nn.utils.spectral_norm: that one keeps a
randomly initialised u buffer, updates it in place on every training-mode forward and runs one
iteration per call, so its value depends on the call history and on the random start: a
different function from this one, which depends on the weights alone. M's columns are in
(in, K, K) order here and (K, K, in) in specgan_jax: a permutation of the columns, which
leaves u, sigma, and v up to the same permutation, unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call


def sigma(weight: torch.Tensor, n_iter: int) -> torch.Tensor:
    """The power-iteration estimate of W's largest singular value (module docstring)."""
    m = weight.reshape(weight.shape[0], -1)
    with torch.no_grad():
        u = torch.full((m.shape[0],), m.shape[0] ** -0.5, dtype=m.dtype)
        for _ in range(n_iter):
            v = F.normalize(m.t() @ u, dim=0, eps=1e-12)
            u = F.normalize(m @ v, dim=0, eps=1e-12)
    return torch.dot(u, m @ v)


def normalized(weight: torch.Tensor, n_iter: int) -> torch.Tensor:
    return weight / sigma(weight, n_iter)


def sn_main(main: nn.Sequential, x: torch.Tensor, n_iter: int) -> torch.Tensor:
    """`main(x)` with every Conv2d weight spectrally normalised (biases and BN as they are)."""
    weights = {f"{name}.weight": normalized(m.weight, n_iter) for name, m in main.named_children()
               if isinstance(m, nn.Conv2d)}
    return functional_call(main, weights, (x,))


def sn_linear(layer: nn.Linear, h: torch.Tensor, n_iter: int) -> torch.Tensor:
    """`layer(h)` with its weight spectrally normalised (out = 1: sigma = ||w||_2)."""
    return F.linear(h, normalized(layer.weight, n_iter), layer.bias)
