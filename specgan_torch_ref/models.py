"""The seed's PyTorch ports of SpecGAN's generator and discriminator, corrected.

Class names, constructor arguments and module structure (`fc`/`main`/`output`, the
`nn.Sequential` indices) are the seed's, so a state_dict saved from the seed's port loads here.
Corrections (docs/seed-bugs.md), marked `# FIX` below:
  * Seed: ConvTranspose2d(k5, s2, padding=2) gives 2n-1 (7, 13, 25, 49, 97 — not 128).
    padding="torch" keeps the seed's symmetric padding and adds output_padding=1 (2n);
    padding="same" (default) is TF 'SAME' exactly: padding=1, then crop to 2n.
  * Seed: Conv2d(k5, s2, padding=2) shifts every window one pixel against TF 'SAME' (which pads
    1 before, 2 after). padding="same" pads (1, 2) with F.pad; padding="torch" keeps padding=2.
  * BatchNorm with TF's constants: eps=1e-3, momentum=0.01 (TF 0.99). The discriminator's BN
    always uses batch statistics (specgan.py: training=True), so it tracks no running stats.
  * Glorot-uniform weights and zero biases, as TF (torch defaults to kaiming-uniform).
  * upsample="nn" (nearest x2 + stride-1 conv), an option of the original the seed left out.
Layout NCHW [B, 1, F, T], F x T = n_freq x n_time (128 x 128 by default, the seed's only shape;
any multiples of 32: `fc` makes a [16d, F/32, T/32] seed, D flattens [16d, F/32, T/32]).
This package imports nothing from specgan_jax.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from specgan_torch_ref.spectral_norm import sn_linear, sn_main

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # torch convention: running = (1 - 0.01) running + 0.01 batch == TF 0.99
STRIDE_LAYERS = 5  # stride-2 layers of G and of D: each axis is halved 5 times


def seed_shape(n_freq: int, n_time: int) -> tuple[int, int]:
    """(h, w) of G's seed and of D's last feature map; ValueError for a shape that does not
    divide by 2^STRIDE_LAYERS."""
    step = 2 ** STRIDE_LAYERS
    if n_freq < step or n_time < step or n_freq % step or n_time % step:
        raise ValueError(f"n_freq x n_time = {n_freq} x {n_time}: each must be a positive "
                         f"multiple of {step}")
    return n_freq // step, n_time // step


class SameConv2d(nn.Conv2d):
    """Stride-2 Conv2d with TF 'SAME' padding for an even input: (K-2)//2 before, the rest after."""

    def __init__(self, cin, cout, kernel_len):
        super().__init__(cin, cout, kernel_len, stride=2, padding=0)
        self.pads = ((kernel_len - 2) // 2, kernel_len - 2 - (kernel_len - 2) // 2)

    def forward(self, x):
        lo, hi = self.pads
        return super().forward(F.pad(x, (lo, hi, lo, hi)))


class SameConvTranspose2d(nn.ConvTranspose2d):
    """Stride-2 ConvTranspose2d equal to TF conv2d_transpose(padding='same'): pad (K-2)//2, crop 2n."""

    def __init__(self, cin, cout, kernel_len):
        super().__init__(cin, cout, kernel_len, stride=2, padding=(kernel_len - 2) // 2)

    def forward(self, x):
        h, w = x.shape[-2:]
        return super().forward(x)[..., : 2 * h, : 2 * w]


class NNUpsampleConv2d(nn.Conv2d):
    """upsample='nn' of specgan.py: nearest-neighbour x2, then a stride-1 'same' conv."""

    def __init__(self, cin, cout, kernel_len):
        super().__init__(cin, cout, kernel_len, stride=1, padding=(kernel_len - 1) // 2)

    def forward(self, x):
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))


def _upconv(cin, cout, kernel_len, upsample, padding):
    if upsample == "nn":
        return NNUpsampleConv2d(cin, cout, kernel_len)
    if padding == "same":
        return SameConvTranspose2d(cin, cout, kernel_len)
    # FIX: the seed's padding=2 alone gives 2n-1; output_padding=1 makes it 2n (128x128)
    return nn.ConvTranspose2d(cin, cout, kernel_len, stride=2, padding=kernel_len // 2,
                              output_padding=1)


def _downconv(cin, cout, kernel_len, padding):
    if padding == "same":
        return SameConv2d(cin, cout, kernel_len)
    return nn.Conv2d(cin, cout, kernel_len, stride=2, padding=kernel_len // 2)


def _tf_init(module: nn.Module):
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class SpecGANGenerator(nn.Module):
    """z [N, nz] -> spectrogram [N, nc, n_freq, n_time] in [-1, 1]."""

    def __init__(self, nz=100, kernel_len=5, dim=64, use_batchnorm=False, nc=1,
                 upsample="zeros", padding="same", n_freq=128, n_time=128):
        super().__init__()
        self.nz, self.dim, self.use_batchnorm = nz, dim, use_batchnorm
        self.seed = seed_shape(n_freq, n_time)  # (h, w): (4, 4) at 128 x 128
        h, w = self.seed
        self.fc = nn.Linear(nz, h * w * dim * 16)  # [N,100] -> [N, h*w*16d]
        layers = []
        if use_batchnorm:
            layers.append(nn.BatchNorm2d(dim * 16, eps=BN_EPS, momentum=BN_MOMENTUM))
        layers.append(nn.ReLU(True))
        chans = [dim * 16, dim * 8, dim * 4, dim * 2, dim]
        for cin, cout in zip(chans[:-1], chans[1:]):  # [16d,4,4] -> ... -> [d,64,64]
            layers.append(_upconv(cin, cout, kernel_len, upsample, padding))
            if use_batchnorm:
                layers.append(nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM))
            layers.append(nn.ReLU(True))
        layers.append(_upconv(dim, nc, kernel_len, upsample, padding))  # -> [nc,128,128]
        layers.append(nn.Tanh())
        self.main = nn.Sequential(*layers)
        _tf_init(self)

    def forward(self, z):
        # FIX: the seed's loop fed z of shape [N, nz, 1, 1] to this Linear; z is [N, nz].
        x = self.fc(z)  # [N, h*w*16d]
        x = x.view(-1, self.dim * 16, *self.seed)  # [N, 16d, h, w], channels first
        return self.main(x)  # [N, nc, n_freq, n_time]


class SpecGANDiscriminator(nn.Module):
    """x [N, nc, n_freq, n_time] -> logits [N]."""

    def __init__(self, kernel_len=5, dim=64, use_batchnorm=False, nc=1, padding="same",
                 spectral_norm=False, sn_iterations=10, n_freq=128, n_time=128):
        super().__init__()
        self.dim, self.use_batchnorm = dim, use_batchnorm
        # > 0: every conv and `output` weight spectrally normalised, stateless (spectral_norm.py)
        self.sn_iterations = sn_iterations if spectral_norm else 0
        h, w = seed_shape(n_freq, n_time)
        self.n_features = h * w * dim * 16  # the flattened [16d, h, w] that feeds `output`
        chans = [nc, dim, dim * 2, dim * 4, dim * 8, dim * 16]
        layers = []
        for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
            layers.append(_downconv(cin, cout, kernel_len, padding))
            if use_batchnorm and i > 0:  # never on the first layer (specgan.py)
                layers.append(nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM,
                                             track_running_stats=False))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        self.main = nn.Sequential(*layers)
        self.output = nn.Linear(self.n_features, 1)
        _tf_init(self)

    def features(self, x):  # self.main(x), with the normalised weights under spectral_norm
        return sn_main(self.main, x, self.sn_iterations) if self.sn_iterations else self.main(x)

    def logit(self, h):  # self.output(h), likewise
        if self.sn_iterations:
            return sn_linear(self.output, h, self.sn_iterations)
        return self.output(h)

    def forward(self, x):
        x = self.features(x)  # [N, 16d, h, w]
        x = x.reshape(-1, self.n_features)  # flatten NCHW: (c, h, w)
        return self.logit(x).squeeze(1)  # [N]


def numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
