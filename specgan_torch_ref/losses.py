"""The seed's loss ports (train_specgan.py), corrected. NCHW tensors; logits [N]."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def compute_gradient_penalty(netD, real_data, fake_data, device=None, alpha=None):
    """WGAN-GP gradient penalty (Gulrajani et al. 2017), as train_specgan.py computes it.

    FIX: the seed interpolates `alpha * real + (1 - alpha) * fake`; the original is
    `x + alpha * (G(z) - x)`, i.e. alpha weights the fake. Same distribution, but with a given
    alpha only the original's form equals the original. `alpha` [N] may be passed in (parity
    tests feed the JAX side's draws); otherwise it is drawn U[0, 1).
    The gradient is that of the summed logits (grad_outputs=ones), as tf.gradients does.
    """
    batch_size = real_data.size(0)
    if alpha is None:
        alpha = torch.rand(batch_size, device=device or real_data.device)
    alpha = alpha.view(batch_size, 1, 1, 1)
    interpolates = (real_data + alpha * (fake_data - real_data)).detach().requires_grad_(True)
    d_interpolates = netD(interpolates)
    gradients = torch.autograd.grad(
        outputs=d_interpolates,
        inputs=interpolates,
        grad_outputs=torch.ones_like(d_interpolates),
        create_graph=True,
        retain_graph=True,
    )[0]
    gradients = gradients.reshape(batch_size, -1)
    return ((gradients.norm(2, dim=1) - 1) ** 2).mean()


def r1_penalty(netD, real_data):
    """R1 (Mescheder et al. 2018) without its weight: E ||dD/dx||^2 at the reals, as
    StyleGAN2-ADA's loss.py computes it (the gradient of the summed logits)."""
    real = real_data.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(outputs=netD(real).sum(), inputs=real, create_graph=True)
    return grad.square().sum(dim=[1, 2, 3]).mean()


class GANLoss:
    """Different GAN loss functions (from SpecGAN). Each returns (G_loss, D_loss)."""

    @staticmethod
    def dcgan_loss(D_real, D_fake, real_labels=None, fake_labels=None):
        """Sigmoid cross-entropy on logits (FIX: the seed's `criterion` on raw logits), D loss
        halved, non-saturating G loss. Labels default to hard 1/0; the seed's loop passes
        two-sided smoothed ones (real ~ U(0.8, 1), fake ~ U(0, 0.2))."""
        criterion = nn.BCEWithLogitsLoss()
        real_labels = torch.ones_like(D_real) if real_labels is None else real_labels
        fake_labels = torch.zeros_like(D_fake) if fake_labels is None else fake_labels
        D_loss = (criterion(D_real, real_labels) + criterion(D_fake, fake_labels)) / 2.0
        G_loss = criterion(D_fake, torch.ones_like(D_fake))
        return G_loss, D_loss

    @staticmethod
    def lsgan_loss(D_real, D_fake):
        D_loss = (torch.mean((D_real - 1.0) ** 2) + torch.mean(D_fake**2)) / 2.0
        G_loss = torch.mean((D_fake - 1.0) ** 2)
        return G_loss, D_loss

    @staticmethod
    def wgan_loss(D_real, D_fake):
        D_loss = torch.mean(D_fake) - torch.mean(D_real)
        G_loss = -torch.mean(D_fake)
        return G_loss, D_loss

    @staticmethod
    def wgan_gp_loss(D_real, D_fake, netD, real_data, fake_data, device=None, lambda_gp=10,
                     alpha=None):
        """Wasserstein loss + lambda * GP. Returns (G_loss, D_loss, gp)."""
        G_loss, D_loss = GANLoss.wgan_loss(D_real, D_fake)
        gp = compute_gradient_penalty(netD, real_data, fake_data, device, alpha=alpha)
        return G_loss, D_loss + lambda_gp * gp, gp

    @staticmethod
    def nonsaturating_loss(D_real, D_fake):
        """The logistic loss with labels 1/0 (not halved) and the non-saturating G loss."""
        D_loss = F.softplus(D_fake).mean() + F.softplus(-D_real).mean()
        G_loss = F.softplus(-D_fake).mean()
        return G_loss, D_loss

    @staticmethod
    def ns_r1_loss(D_real, D_fake, netD, real_data, gamma=10.0, every=1, iteration=0):
        """Non-saturating logistic loss + (gamma/2) R1 (StyleGAN2's default). Lazy R1 with
        every=k: the penalty on critic iterations 0, k, 2k, ... with weight (gamma/2) k, none in
        between. Returns (G_loss, D_loss, r1), r1 = 0 where skipped."""
        G_loss, D_loss = GANLoss.nonsaturating_loss(D_real, D_fake)
        if iteration % every == 0:
            r1 = r1_penalty(netD, real_data)
            D_loss = D_loss + gamma / 2 * every * r1
        else:
            r1 = torch.zeros((), dtype=D_loss.dtype)
        return G_loss, D_loss, r1

    @staticmethod
    def hinge_loss(D_real, D_fake):
        """Hinge loss (Lim & Ye 2017; Miyato et al. 2018), without spectral normalisation."""
        D_loss = F.relu(1.0 - D_real).mean() + F.relu(1.0 + D_fake).mean()
        G_loss = -D_fake.mean()
        return G_loss, D_loss


@torch.no_grad()
def clip_weights(netD, clip=0.01):
    """WGAN: clip every D variable to [-clip, clip] after each D update (train_specgan.py)."""
    for p in netD.parameters():
        p.clamp_(-clip, clip)

