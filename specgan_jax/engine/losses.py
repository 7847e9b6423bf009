"""GAN objectives of train_specgan.py as pure functions, and the optimizers that go with them.

Every function takes its randomness (alpha, label noise) as arguments so that the PyTorch
reference can be fed identical draws. `d_apply(d_params, x) -> logits [B]` is the critic;
a class-conditional critic is `d_apply(d_params, x, y)`, called with labels y [B].

Objectives (LossConfig.loss): the original's "wgan-gp", "wgan", "dcgan", "lsgan", and two that
converge in fewer, cheaper iterations (one critic update per generator update by default):
  "ns-r1": the non-saturating logistic loss with the R1 penalty on reals (Mescheder et al. 2018,
           "Which Training Methods for GANs do actually Converge?"; StyleGAN2's default):
           D: E softplus(D(fake)) + E softplus(-D(real)) + (gamma/2) E ||grad_x D(x_real)||^2,
           G: E softplus(-D(G(z))); optionally lazy (r1_weight).
  "hinge": D: E relu(1 - D(real)) + E relu(1 + D(fake)), G: -E D(G(z)) (Lim & Ye 2017;
           Miyato et al. 2018), with TTUR (Heusel et al. 2017: d_lr = 4 g_lr, Adam (0, 0.9)).
           Miyato et al. pair it with spectral normalisation of the critic, which is not
           implemented here (a stateful layer: the power iteration's vector is state carried
           across updates); the hinge loss works without it, but the pairing is incomplete.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax import lax

from specgan_jax.config import LossConfig, OptimConfig
from specgan_jax.config.resolve import OPTIMIZER_DEFAULTS, resolved_optimizer  # noqa: F401
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


def r1_penalty(d_apply: DApply, d_params, real):
    """R1 (Mescheder et al. 2018, eq. 9) without its weight: E_i ||dD/dx_i||^2 at the reals.

    The gradient of the summed logits w.r.t. the batch, as the GP's (and tf.gradients / StyleGAN2's
    `autograd.grad(D(x).sum(), x)`): per example when the critic has no batch coupling, the
    batch-coupled gradient when D's batch norm normalises the batch as a whole."""
    grads = jax.grad(lambda xs: jnp.sum(d_apply(d_params, xs)))(real)  # [B,F,T,1]
    return jnp.mean(jnp.sum(jnp.square(grads), axis=(1, 2, 3)))


def r1_due(loss_cfg: LossConfig, update_index):
    """Whether critic update `update_index` applies the R1 penalty (every r1_every-th update,
    starting with the first). Python bool for a Python int, a traced bool otherwise."""
    if loss_cfg.r1_every == 1:
        return True
    if update_index is None:
        raise ValueError(f"loss.r1_every={loss_cfg.r1_every} (lazy R1) needs the critic "
                         "update's index (d_loss's update_index)")
    return update_index % loss_cfg.r1_every == 0


def r1_weight(loss_cfg: LossConfig, update_index=None):
    """The weight w of E||grad_x D(x_real)||^2 in the critic loss of update `update_index`.

    Lazy regularisation (StyleGAN2, Karras et al. 2020, sec. 3.1): the penalty is applied on every
    k-th critic update (k = r1_every) with its weight multiplied by k, so that its average weight
    stays gamma/2: w = (gamma/2) k on updates with update_index % k == 0, else 0. k = 1 (the
    default): w = gamma/2 on every update, and update_index is not needed (may be None).

    Contract for the training step: update_index is the 0-based index of the critic update over
    the whole run, step * n_critic + j for the j-th (0-based) critic update of generator step
    `step` (an int32 scalar, traced inside the jitted scan is fine). A resumed run then
    regularises on exactly the updates an uninterrupted one does. StyleGAN2 runs the penalty as a
    separate optimizer step and rescales Adam's lr and betas by k/(k+1) for it; here it is added
    to that update's loss, one optimizer step, so the optimizer needs no such correction.
    """
    w = loss_cfg.r1_gamma / 2.0 * loss_cfg.r1_every
    due = r1_due(loss_cfg, update_index)
    if isinstance(due, bool):
        return w if due else 0.0
    return jnp.where(due, w, 0.0)


def _r1_term(cfg: LossConfig, d_apply: DApply, d_params, real, update_index):
    """(weight * penalty, penalty) for ns-r1; the penalty 0 on updates that skip it.

    Laziness must save the penalty's cost (a double backward through D, as much as the rest of
    the update), not only zero its weight: inside the jitted scan of the critic updates the index
    is traced, so lax.cond on it runs the penalty's branch only when due (both branches are
    compiled, one executes; its derivative is a cond too). Under vmap a cond on a batched
    predicate becomes a select that computes both branches, so do not vmap over updates here."""
    if cfg.r1_every == 1:
        r1 = r1_penalty(d_apply, d_params, real)
        return cfg.r1_gamma / 2.0 * r1, r1
    due = r1_due(cfg, update_index)
    r1 = lax.cond(due, lambda: r1_penalty(d_apply, d_params, real),
                  lambda: jnp.zeros((), real.dtype))
    return r1_weight(cfg, update_index) * r1, r1


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
           per_example_gp: bool, y_real=None, y_fake=None, update_index=None):
    """Critic loss and its parts. real, fake [B,F,T,1]; alpha [B]; label_u [2,B] in [0,1);
    y_real, y_fake [B]: the classes of real and fake for a conditional critic (None for an
    unconditional one). The gradient penalty's interpolates keep the real example's class, as
    does R1's gradient at the reals. update_index: the critic update's index over the run, read
    by ns-r1 with r1_every > 1 only (r1_weight states the contract); ignored otherwise.

    Returns (loss, aux) with aux = {gp, wasserstein, ada_rt (diffaug.ada_signal)}; gp is the
    penalty of the loss: WGAN-GP's, or for ns-r1 E||grad_x D(x_real)||^2 unweighted (0 on an
    update that skips it); wasserstein is E D(real) - E D(fake) for every loss. `fake` must
    already be stop-gradient'ed by the caller when only D is trained.
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
    elif cfg.loss == "ns-r1":
        # softplus(-D(real)) = -log sigmoid(D(real)): the logistic loss with labels 1/0, not
        # halved (StyleGAN2's loss.py), unlike the original's dcgan D loss
        loss = jnp.mean(jax.nn.softplus(d_fake)) + jnp.mean(jax.nn.softplus(-d_real))
        term, gp = _r1_term(cfg, _with_labels(d_apply, y_real), d_params, real, update_index)
        loss = loss + term
    elif cfg.loss == "hinge":
        loss = jnp.mean(jax.nn.relu(1.0 - d_real)) + jnp.mean(jax.nn.relu(1.0 + d_fake))
    else:  # pragma: no cover - LossConfig validates the name
        raise ValueError(cfg.loss)
    aux = {"gp": gp, "wasserstein": jnp.mean(d_real) - jnp.mean(d_fake),
           "ada_rt": ada_signal(cfg.loss, d_real, d_fake)}
    return loss, aux


def g_loss(cfg: LossConfig, d_fake):
    """Generator loss from the critic's logits on G(z) [B] (non-saturating for dcgan and ns-r1)."""
    if cfg.loss in ("wgan-gp", "wgan"):
        return -jnp.mean(d_fake)
    if cfg.loss == "dcgan":
        return _bce_with_logits(d_fake, jnp.ones_like(d_fake))
    if cfg.loss == "lsgan":
        return jnp.mean(jnp.square(d_fake - 1.0))
    if cfg.loss == "ns-r1":
        return jnp.mean(jax.nn.softplus(-d_fake))
    if cfg.loss == "hinge":
        return -jnp.mean(d_fake)
    raise ValueError(cfg.loss)  # pragma: no cover


def clip_critic(cfg: LossConfig, d_params):
    """WGAN (Arjovsky et al. 2017): clip every D variable to [-c, c] after each D update."""
    return jax.tree_util.tree_map(lambda p: jnp.clip(p, -cfg.clip, cfg.clip), d_params)


RMSPROP_DECAY = 0.9  # tf.train.RMSPropOptimizer default
RMSPROP_EPS = 1e-10  # tf.train.RMSPropOptimizer default
ADAM_EPS = 1e-8


def make_optimizers(loss_cfg: LossConfig, optim_cfg: OptimConfig):
    """(g_tx, d_tx) optax transformations.

    Adam: optax.adam == torch.optim.Adam (eps added to sqrt(v_hat)); TF's Adam adds eps to
    sqrt(v) before bias correction, a difference of order eps (1e-8).
    RMSProp: TF's accumulator starts at ones (initial_scale=1.0), decay 0.9, eps 1e-10. optax
    and torch add eps outside the square root, TF inside: with an accumulator >= ~1e-4 the
    difference is below 1e-8 relative.
    """
    o = resolved_optimizer(loss_cfg, optim_cfg)

    def one(lr, updates_per_step):
        if optim_cfg.lr_decay == "linear":
            if optim_cfg.decay_steps is None:
                raise ValueError("optim.lr_decay='linear' needs optim.decay_steps (resolving "
                                 "the config sets it to train.steps)")
            # optax counts this optimizer's updates: the critic's n_critic per G step
            total = optim_cfg.decay_steps * updates_per_step
            begin = round(optim_cfg.decay_start * total)
            lr = optax.linear_schedule(lr, 0.0, max(total - begin, 1), begin)
        if o["optimizer"] == "adam":
            return optax.adam(lr, b1=o["beta1"], b2=o["beta2"], eps=ADAM_EPS)
        return optax.rmsprop(lr, decay=RMSPROP_DECAY, eps=RMSPROP_EPS, initial_scale=1.0,
                             eps_in_sqrt=False)

    return one(o["g_lr"], 1), one(o["d_lr"], loss_cfg.n_critic)
