"""The reference training iteration: n_critic D updates, then one G update (train_specgan.py).

FIXES against the seed's loop: every critic update gets its own real batch and its own z (the
seed reused one real batch for all five), z is [N, nz] (not [N, nz, 1, 1]), losses are on
logits. All random inputs are arguments so that parity tests can feed the JAX engine's draws.
"""

from __future__ import annotations

import torch

from specgan_torch_ref.losses import GANLoss, clip_weights

# Original settings per loss (train_specgan.py): (optimizer, lr, beta1, beta2)
OPTIMIZER_DEFAULTS = {
    "wgan-gp": ("adam", 1e-4, 0.5, 0.9),
    "dcgan": ("adam", 2e-4, 0.5, 0.999),
    "lsgan": ("rmsprop", 1e-4, None, None),
    "wgan": ("rmsprop", 5e-5, None, None),
}


def tf_rmsprop(params, lr):
    """torch RMSprop configured as tf.train.RMSPropOptimizer: decay 0.9, eps 1e-10, and the
    accumulator starting at ONES (TF) instead of zeros (torch), by pre-filling the state that
    torch would otherwise create lazily at the first step."""
    params = list(params)
    opt = torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-10)
    for p in params:
        opt.state[p] = {"step": torch.zeros((), dtype=torch.float32),
                        "square_avg": torch.ones_like(p)}
    return opt


def make_optimizer(params, loss="wgan-gp", optimizer=None, lr=None, beta1=None, beta2=None):
    name, d_lr, d_b1, d_b2 = OPTIMIZER_DEFAULTS[loss]
    name = optimizer or name
    lr = d_lr if lr is None else lr
    if name == "adam":
        b1 = beta1 if beta1 is not None else (d_b1 if d_b1 is not None else 0.9)
        b2 = beta2 if beta2 is not None else (d_b2 if d_b2 is not None else 0.999)
        return torch.optim.Adam(params, lr=lr, betas=(b1, b2), eps=1e-8)
    return tf_rmsprop(params, lr)


def _d_losses(loss, D_real, D_fake, netD, real, fake, alpha, label_u, lambda_gp,
              label_smoothing):
    gp = torch.zeros(())
    if loss == "wgan-gp":
        _, D_loss, gp = GANLoss.wgan_gp_loss(D_real, D_fake, netD, real, fake,
                                             lambda_gp=lambda_gp, alpha=alpha)
    elif loss == "wgan":
        _, D_loss = GANLoss.wgan_loss(D_real, D_fake)
    elif loss == "dcgan":
        if label_smoothing:  # the seed's habit: real ~ U(0.8, 1), fake ~ U(0, 0.2)
            real_t, fake_t = 0.8 + 0.2 * label_u[0], 0.2 * label_u[1]
        else:
            real_t, fake_t = None, None
        _, D_loss = GANLoss.dcgan_loss(D_real, D_fake, real_t, fake_t)
    elif loss == "lsgan":
        _, D_loss = GANLoss.lsgan_loss(D_real, D_fake)
    else:
        raise ValueError(loss)
    return D_loss, gp


def _g_loss(loss, D_fake):
    if loss in ("wgan-gp", "wgan"):
        return -torch.mean(D_fake)
    if loss == "dcgan":
        return GANLoss.dcgan_loss(D_fake, D_fake)[0]
    return GANLoss.lsgan_loss(D_fake, D_fake)[0]


def _net(net, x, y):
    """net(x), or net(x, y) for a class-conditional model (specgan_torch_ref.conditional)."""
    return net(x) if y is None else net(x, y)


def train_iteration(netG, netD, optimizerG, optimizerD, real_batches, z_d, alpha, label_u, z_g,
                    loss="wgan-gp", lambda_gp=10.0, clip=0.01, label_smoothing=False,
                    y_real=None, y_fake=None, y_g=None):
    """One generator step. real_batches [n_critic, N, 1, F, T]; z_d [n_critic, N, nz];
    alpha [n_critic, N]; label_u [n_critic, 2, N]; z_g [N, nz]. Returns the last critic
    update's d_loss/gp/wasserstein and the g_loss, as floats.

    Class-conditional models take labels, all three or none: y_real [n_critic, N] the real
    batches' classes, y_fake [n_critic, N] the classes the critic updates' fakes are generated
    for, y_g [N] those of the generator update. The gradient penalty's interpolates
    x + alpha (G(z) - x) keep the real example's class."""
    if len({y_real is None, y_fake is None, y_g is None}) > 1:
        raise ValueError("train_iteration: pass all of y_real, y_fake, y_g (conditional "
                         "models) or none of them")
    netG.train()
    netD.train()
    out = {}
    for i in range(real_batches.shape[0]):
        optimizerD.zero_grad()
        real = real_batches[i]
        y_r, y_f = (None, None) if y_real is None else (y_real[i], y_fake[i])
        with torch.no_grad():  # G in train mode: its BN running stats advance here too
            fake = _net(netG, z_d[i], y_f)
        D_real, D_fake = _net(netD, real, y_r), _net(netD, fake, y_f)
        critic = netD if y_r is None else (lambda x, y_r=y_r: netD(x, y_r))  # for the GP
        D_loss, gp = _d_losses(loss, D_real, D_fake, critic, real, fake, alpha[i], label_u[i],
                               lambda_gp, label_smoothing)
        D_loss.backward()
        optimizerD.step()
        if loss == "wgan":
            clip_weights(netD, clip)
        out = {"d_loss": D_loss.item(), "gp": float(gp.detach()),
               "wasserstein": (D_real.mean() - D_fake.mean()).item()}
    optimizerG.zero_grad()
    G_loss = _g_loss(loss, _net(netD, _net(netG, z_g, y_g), y_g))
    G_loss.backward()
    optimizerG.step()
    out["g_loss"] = G_loss.item()
    return out
