"""Class-conditional SpecGAN: the generator and the projection critic, in the style of the ports
in models.py (which they extend; the unconditional classes are untouched).

  G: a learned class code, nn.Embedding(n_classes, embed_dim) with embed_dim = nz by default,
     concatenated to z before `fc` (conditioning by concatenation, Mirza & Osindero 2014).
  D: projection discriminator (Miyato & Koyama 2018): logit = output(h) + <class_proj(y), h>,
     h the flattened [N, h*w*16d] features that feed `output` ([16d, h, w] = D's last map).

Labels y are integer (int32 or int64) class indices [N] in [0, n_classes). Initialisation:
the class code N(0, 1) (nn.Embedding's default, the same order as z ~ U(-1, 1)); the
projection vectors Glorot-uniform as the `output` weight, so both critic terms start at the
same scale. Layout NCHW, as models.py; h is flattened NCHW, so class_proj's columns are in
(c, h, w) order (specgan_jax stores them (h, w, c), as its `output` kernel).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from specgan_torch_ref.models import SpecGANDiscriminator, SpecGANGenerator


def _check_n_classes(n_classes):
    if n_classes < 2:
        raise ValueError("a conditional model needs data with at least 2 classes (one class "
                         f"folder per class); n_classes={n_classes}")


class SpecGANConditionalGenerator(SpecGANGenerator):
    """(z [N, nz], y [N]) -> spectrogram [N, nc, n_freq, n_time] in [-1, 1]."""

    def __init__(self, n_classes, nz=100, embed_dim=None, kernel_len=5, dim=64,
                 use_batchnorm=False, nc=1, upsample="zeros", padding="same", n_freq=128,
                 n_time=128):
        _check_n_classes(n_classes)
        embed_dim = nz if embed_dim is None else embed_dim
        # fc takes [z, embed(y)]: nz + embed_dim inputs
        super().__init__(nz=nz + embed_dim, kernel_len=kernel_len, dim=dim,
                         use_batchnorm=use_batchnorm, nc=nc, upsample=upsample, padding=padding,
                         n_freq=n_freq, n_time=n_time)
        self.nz, self.n_classes = nz, n_classes
        self.class_embed = nn.Embedding(n_classes, embed_dim)  # N(0, 1) init

    def forward(self, z, y):
        return super().forward(torch.cat([z, self.class_embed(y)], 1))  # [N, nz + embed_dim]


class SpecGANConditionalDiscriminator(SpecGANDiscriminator):
    """(x [N, nc, n_freq, n_time], y [N]) -> logits [N]."""

    def __init__(self, n_classes, kernel_len=5, dim=64, use_batchnorm=False, nc=1,
                 padding="same", spectral_norm=False, sn_iterations=10, n_freq=128, n_time=128):
        _check_n_classes(n_classes)
        super().__init__(kernel_len=kernel_len, dim=dim, use_batchnorm=use_batchnorm, nc=nc,
                         padding=padding, spectral_norm=spectral_norm,
                         sn_iterations=sn_iterations, n_freq=n_freq,
                         n_time=n_time)  # class_proj is not normalised
        self.n_classes = n_classes
        self.class_proj = nn.Embedding(n_classes, self.n_features)
        nn.init.xavier_uniform_(self.class_proj.weight)

    def forward(self, x, y):
        h = self.features(x).reshape(-1, self.n_features)  # flatten NCHW
        return self.logit(h).squeeze(1) + (self.class_proj(y) * h).sum(1)  # psi(h) + <v_y, h>
