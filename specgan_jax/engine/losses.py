"""GAN objectives of train_specgan.py as pure functions, and the optimizers that go with them.

Every function takes its randomness (alpha, label noise) as arguments so that the PyTorch
reference can be fed identical draws. `d_apply(d_params, x) -> logits [B]` is the critic;
a class-conditional critic is `d_apply(d_params, x, y)`, called with labels y [B].
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from specgan_jax.config import LossConfig, OptimConfig
from specgan_jax.engine.diffaug import ada_signal

DApply = Callable[[dict, jax.Array], jax.Array]


def gradient_penalty(d_apply: DApply, d_params, real, fake, alpha, per_example: bool):
    """WGAN-GP penalty, Gulrajani et al. 2017 eq. 3, as train_specgan.py computes it.

    interpolates = x + alpha (G(z) - x), one alpha ~ U[0,1) per example ([B]);
    slopes = per-example L2 norm of dD/d interpolates; GP = mean((slopes - 1)^2).

    per_example=True: gradients of each example's own logit via vmap(grad) — valid when the
    critic treats examples independently (no batch norm in D). per_example=False: the gradient of
    the summed logits w.r.t. the whole batch (tf.gradients(D_interp, [interpolates])), which the
    original uses and which is the only meaningful choice when D's batch norm couples the batch.
    Without batch coupling the two are mathematically equal; d_loss uses grad-of-sum in both
    cases, whose second derivative is cheaper (see there).
    """
    interp = real + alpha[:, None, None, None] * (fake - real)  # [B,F,T,1]
    if per_example:
        one = lambda xi: d_apply(d_params, xi[None])[0]  # noqa: E731  scalar logit of one example
        grads = jax.vmap(jax.grad(one))(interp)  # [B,F,T,1]
    else:
        grads = jax.grad(lambda xs: jnp.sum(d_apply(d_params, xs)))(interp)
    slopes = jnp.sqrt(jnp.sum(jnp.square(grads), axis=(1, 2, 3)))  # [B]
    return jnp.mean(jnp.square(slopes - 1.0))


def _bce_with_logits(logits, labels):
    # tf.nn.sigmoid_cross_entropy_with_logits, numerically stable form
    return jnp.mean(jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits))))


def dcgan_labels(label_u, smoothing: bool):
    """Real/fake targets from uniform noise label_u [2, B]: hard 1/0, or the seed's two-sided
    smoothing real ~ U(0.8, 1), fake ~ U(0, 0.2)."""
    if not smoothing:
        return jnp.ones_like(label_u[0]), jnp.zeros_like(label_u[1])
    return 0.8 + 0.2 * label_u[0], 0.2 * label_u[1]


def _with_labels(d_apply: DApply, y):
    """The critic as a function of (params, x): d_apply itself, or with labels y bound."""
    return d_apply if y is None else (lambda p, x: d_apply(p, x, y))


def d_loss(cfg: LossConfig, d_apply: DApply, d_params, real, fake, alpha, label_u,
           per_example_gp: bool, y_real=None, y_fake=None):
    """Critic loss and its parts. real, fake [B,F,T,1]; alpha [B]; label_u [2,B] in [0,1);
    y_real, y_fake [B]: the classes of real and fake for a conditional critic (None for an
    unconditional one). The gradient penalty's interpolates keep the real example's class.

    Returns (loss, aux) with aux = {gp, wasserstein, ada_rt (diffaug.ada_signal)}. `fake` must already be
    stop-gradient'ed by the caller when only D is trained.
    """
    if (y_real is None) != (y_fake is None):
        raise ValueError("d_loss: give both y_real and y_fake (conditional critic) or neither")
    if per_example_gp:
        # A critic without batch coupling scores each example on its own, so real and fake go
        # through it as one batch of 2B: the same numbers, half the layer calls (larger, more
        # efficient convolutions; one backward pass instead of two).
        b = real.shape[0]
        y_both = None if y_real is None else jnp.concatenate([y_real, y_fake], axis=0)
        d_both = _with_labels(d_apply, y_both)(d_params, jnp.concatenate([real, fake], axis=0))
        d_real, d_fake = d_both[:b], d_both[b:]  # [B] each
    else:
        # BN in the critic: separate calls, so each batch is normalised by its own statistics
        # as in the original (D(real) and D(fake) are two graph calls in train_specgan.py).
        d_real = _with_labels(d_apply, y_real)(d_params, real)  # [B]
        d_fake = _with_labels(d_apply, y_fake)(d_params, fake)  # [B]
    zero = jnp.zeros((), jnp.float32)
    gp = zero
    if cfg.loss in ("wgan-gp", "wgan"):
        loss = jnp.mean(d_fake) - jnp.mean(d_real)
        if cfg.loss == "wgan-gp":
            # Always the gradient of the summed logits: without batch coupling it equals the
            # per-example gradients (test_losses checks both against the reference), and it is
            # much cheaper to differentiate again. Under vmap(grad) every kernel gradient of the
            # GP's double backward is computed per example (a convolution with
            # feature_group_count=B producing B kernels) and then summed; grad-of-sum yields
            # one kernel gradient over the whole batch.
            gp = gradient_penalty(_with_labels(d_apply, y_real), d_params, real, fake, alpha,
                                  per_example=False)
            loss = loss + cfg.gp_lambda * gp
    elif cfg.loss == "dcgan":
        real_t, fake_t = dcgan_labels(label_u, cfg.label_smoothing)
        loss = (_bce_with_logits(d_real, real_t) + _bce_with_logits(d_fake, fake_t)) / 2.0
    elif cfg.loss == "lsgan":
        loss = (jnp.mean(jnp.square(d_real - 1.0)) + jnp.mean(jnp.square(d_fake))) / 2.0
    else:  # pragma: no cover - LossConfig validates the name
        raise ValueError(cfg.loss)
    aux = {"gp": gp, "wasserstein": jnp.mean(d_real) - jnp.mean(d_fake),
           "ada_rt": ada_signal(cfg.loss, d_real, d_fake)}
    return loss, aux


def g_loss(cfg: LossConfig, d_fake):
    """Generator loss from the critic's logits on G(z) [B] (non-saturating for dcgan)."""
    if cfg.loss in ("wgan-gp", "wgan"):
        return -jnp.mean(d_fake)
    if cfg.loss == "dcgan":
        return _bce_with_logits(d_fake, jnp.ones_like(d_fake))
    if cfg.loss == "lsgan":
        return jnp.mean(jnp.square(d_fake - 1.0))
    raise ValueError(cfg.loss)  # pragma: no cover


def clip_critic(cfg: LossConfig, d_params):
    """WGAN (Arjovsky et al. 2017): clip every D variable to [-c, c] after each D update."""
    return jax.tree_util.tree_map(lambda p: jnp.clip(p, -cfg.clip, cfg.clip), d_params)


# Original settings per loss: (optimizer, lr, beta1, beta2); train_specgan.py
OPTIMIZER_DEFAULTS = {
    "wgan-gp": ("adam", 1e-4, 0.5, 0.9),
    "dcgan": ("adam", 2e-4, 0.5, 0.999),
    "lsgan": ("rmsprop", 1e-4, None, None),
    "wgan": ("rmsprop", 5e-5, None, None),
}
RMSPROP_DECAY = 0.9  # tf.train.RMSPropOptimizer default
RMSPROP_EPS = 1e-10  # tf.train.RMSPropOptimizer default
ADAM_EPS = 1e-8


def resolved_optimizer(loss_cfg: LossConfig, optim_cfg: OptimConfig) -> dict:
    """The optimizer settings actually used: the config's, else the original's for the loss."""
    name, lr, b1, b2 = OPTIMIZER_DEFAULTS[loss_cfg.loss]
    name = optim_cfg.optimizer or name
    if name == "adam":
        b1 = optim_cfg.beta1 if optim_cfg.beta1 is not None else (b1 if b1 is not None else 0.9)
        b2 = optim_cfg.beta2 if optim_cfg.beta2 is not None else (b2 if b2 is not None else 0.999)
    else:
        b1 = b2 = None
    return {
        "optimizer": name,
        "g_lr": optim_cfg.g_lr if optim_cfg.g_lr is not None else lr,
        "d_lr": optim_cfg.d_lr if optim_cfg.d_lr is not None else lr,
        "beta1": b1,
        "beta2": b2,
    }


def make_optimizers(loss_cfg: LossConfig, optim_cfg: OptimConfig):
    """(g_tx, d_tx) optax transformations.

    Adam: optax.adam == torch.optim.Adam (eps added to sqrt(v_hat)); TF's Adam adds eps to
    sqrt(v) before bias correction, a difference of order eps (1e-8).
    RMSProp: TF's accumulator starts at ones (initial_scale=1.0), decay 0.9, eps 1e-10. optax
    and torch add eps outside the square root, TF inside: with an accumulator >= ~1e-4 the
    difference is below 1e-8 relative.
    """
    o = resolved_optimizer(loss_cfg, optim_cfg)

    def one(lr):
        if o["optimizer"] == "adam":
            return optax.adam(lr, b1=o["beta1"], b2=o["beta2"], eps=ADAM_EPS)
        return optax.rmsprop(lr, decay=RMSPROP_DECAY, eps=RMSPROP_EPS, initial_scale=1.0,
                             eps_in_sqrt=False)

    return one(o["g_lr"]), one(o["d_lr"])
