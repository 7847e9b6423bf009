"""The phases of one training iteration, pure functions of (StepSpec, TrainState, Draws):

  critic_phase     the fakes of the n_critic critic updates, then those updates under lax.scan
  generator_phase  one generator update through the updated critic
  ema_phase        the generator EMA after that update (engine.ema)
  ada_phase        ADA's overfitting signal and DiffAugment's strength p (engine.diffaug)
  iteration        all of them in that order, then the metrics (engine.metrics.step_metrics)

The n_critic fake batches come from one generator call vmapped over the critic axis before the
critic loop (G does not change during it); see `critic_fakes`. Transitional conditioning's
scale s (engine.conditioning; None: the class terms are not scaled) is computed once per
iteration and passed to every phase that applies a model.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax import lax

from specgan_jax.engine import losses
from specgan_jax.engine.conditioning import cond_scale
from specgan_jax.engine.diffaug import ada_adjust, ada_heldout_signal, diff_augment
from specgan_jax.engine.ema import ema_beta, ema_update
from specgan_jax.engine.layers import BN_MOMENTS, BatchNorm, advance_running_stats
from specgan_jax.engine.metrics import batch_spread, step_metrics
from specgan_jax.engine.models import Discriminator, Generator, g_variables
from specgan_jax.engine.spec import StepSpec
from specgan_jax.engine.state import Draws, TrainState


class CriticOut(NamedTuple):
    d_params: Any
    d_opt_state: Any
    metrics: dict  # each critic update's numbers, stacked along a leading [n_critic] axis
    g_batch_stats: Any  # G's BN statistics after making the fakes
    k_g: Optional[jax.Array]  # the generator update's DiffAugment key (None: DiffAugment off)


class GeneratorOut(NamedTuple):
    loss: jax.Array
    stats: dict  # the generator update's fakes: fake_mean, fake_std, fake_batch_std
    grads: Any
    g_params: Any
    g_opt_state: Any
    g_batch_stats: Any


class AdaOut(NamedTuple):
    rt: jax.Array  # the critic's overfitting signal this step
    aug_p: jax.Array  # DiffAugment's strength for the next step
    ada_acc: jax.Array


def augment(spec: StepSpec, x, key, p):
    """T(x) with strength p when DiffAugment is on, else x."""
    return diff_augment(x, key, p, spec.diffaug, spec.gain_scale_array()) if spec.augment else x


def critic_apply(spec: StepSpec, s):
    """D as d_apply(params, x, y=None), its class term scaled by s (None: unscaled)."""
    disc = Discriminator(spec.model)
    return lambda p, x, y=None: disc.apply({"params": p}, x, y, cond_scale=s)


def g_train(spec: StepSpec, params, batch_stats, z, y=None, s=None):
    """G(z) (G(z, y), class code scaled by s) in training mode -> (fake, new batch stats)."""
    gen = Generator(spec.model)
    if not spec.has_batch_stats:
        return gen.apply({"params": params}, z, y, train=True, cond_scale=s), batch_stats
    fake, upd = gen.apply(g_variables(params, batch_stats), z, y, train=True, cond_scale=s,
                          mutable=["batch_stats"])
    return fake, upd["batch_stats"]


def critic_fakes(spec: StepSpec, params, batch_stats, z_d, y_fake=None, s=None):
    """The fakes of all n_critic critic updates from one G call vmapped over the critic axis
    (G does not change during them): z_d [n_critic, B, latent] (y_fake [n_critic, B]) ->
    fakes [n_critic, B, F, T, 1], new batch stats. Training mode, as torch's
    netG(noise).detach(): vmap normalises each update's batch by its own statistics, and the
    BN running statistics advance once per update, in order (layers.advance_running_stats),
    as n_critic separate calls would."""
    gen = Generator(spec.model)
    if not spec.has_batch_stats:
        return jax.vmap(lambda z, y: gen.apply({"params": params}, z, y, train=True,
                                               cond_scale=s))(z_d, y_fake), batch_stats

    def one(z, y):
        fake, upd = gen.apply(g_variables(params, batch_stats), z, y, train=True, cond_scale=s,
                              mutable=["batch_stats", BN_MOMENTS])
        return fake, upd[BN_MOMENTS]

    fakes, moments = jax.vmap(one)(z_d, y_fake)
    return fakes, advance_running_stats(batch_stats, moments, BatchNorm.momentum)


def critic_update(spec: StepSpec, carry, xs, p, d_apply):
    """One critic update; xs: its real, fake, alpha, label_u (k_aug, y_real, y_fake)."""
    d_params, d_opt = carry
    real, fake = xs["real"], xs["fake"]
    if spec.augment:  # T(real), T(fake); the GP's interpolates lie between them (diffaug)
        k_real, k_fake = jax.random.split(xs["k_aug"])
        real, fake = augment(spec, real, k_real, p), augment(spec, fake, k_fake, p)
    (loss, aux), grads = jax.value_and_grad(losses.d_loss, argnums=2, has_aux=True)(
        spec.loss, d_apply, d_params, real, fake, xs["alpha"], xs["label_u"],
        spec.per_example_gp, xs.get("y_real"), xs.get("y_fake"), xs.get("update_index"))
    _, d_tx = spec.optimizers()
    updates, d_opt = d_tx.update(grads, d_opt, d_params)
    d_params = optax.apply_updates(d_params, updates)
    if spec.loss.loss == "wgan":
        d_params = losses.clip_critic(spec.loss, d_params)
    metrics = {"d_loss": loss, "d_grad_norm": optax.tree.norm(grads), **aux}
    return (d_params, d_opt), metrics


def critic_phase(spec: StepSpec, state: TrainState, draws: Draws, s=None) -> CriticOut:
    """The n_critic critic updates on the real batches and G's fakes, under lax.scan."""
    d_apply = critic_apply(spec, s)
    fakes, g_bs = critic_fakes(spec, state.g_params, state.g_batch_stats, draws.z_d,
                               draws.y_fake, s)
    fakes = lax.stop_gradient(fakes)
    p = state.aug_p
    xs = {"real": draws.real, "fake": fakes, "alpha": draws.alpha, "label_u": draws.label_u}
    if spec.conditional:
        xs.update(y_real=draws.y_real, y_fake=draws.y_fake)
    if spec.loss.loss == "ns-r1" and spec.loss.r1_every > 1:
        # lazy R1: each update's index over the whole run (losses.r1_weight's contract), so a
        # resumed run regularises on exactly the updates an uninterrupted one does
        xs["update_index"] = (state.step * spec.n_critic
                              + jnp.arange(spec.n_critic, dtype=jnp.int32))
    k_g = None
    if spec.augment:
        if draws.k_aug is None:
            raise ValueError("DiffAugment is on: Draws.k_aug must be given")
        n = spec.n_critic
        k_critic = jax.random.split(draws.k_aug, n + 1)
        xs["k_aug"], k_g = k_critic[:n], k_critic[n]
    (d_params, d_opt), dm = lax.scan(lambda c, x: critic_update(spec, c, x, p, d_apply),
                                     (state.d_params, state.d_opt_state), xs,
                                     unroll=spec.n_critic if spec.unroll_critic else 1)
    return CriticOut(d_params, d_opt, dm, g_bs, k_g)


def generator_phase(spec: StepSpec, state: TrainState, draws: Draws, critic: CriticOut,
                    s=None) -> GeneratorOut:
    """One generator update through the critic of the critic phase's end."""
    d_apply = critic_apply(spec, s)
    p = state.aug_p

    def g_objective(g_params):
        fake, new_bs = g_train(spec, g_params, critic.g_batch_stats, draws.z_g, draws.y_g, s)
        # what the training-health summary reads (training/health.py)
        stats = {"fake_mean": jnp.mean(fake), "fake_std": jnp.std(fake),
                 "fake_batch_std": batch_spread(fake, draws.y_g, spec.model.n_classes)}
        if spec.augment:
            fake = augment(spec, fake, critic.k_g, p)
        return (losses.g_loss(spec.loss, d_apply(critic.d_params, fake, draws.y_g)),
                (new_bs, stats))

    (gl, (g_bs, g_stats)), g_grads = jax.value_and_grad(g_objective, has_aux=True)(
        state.g_params)
    g_tx, _ = spec.optimizers()
    updates, g_opt = g_tx.update(g_grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    return GeneratorOut(gl, g_stats, g_grads, g_params, g_opt, g_bs)


def ema_phase(spec: StepSpec, state: TrainState, g_params):
    """The EMA of G's weights after the update to g_params."""
    return ema_update(state.g_ema, g_params, ema_beta(state.step, spec.batch_size, spec.ema))


def ada_phase(spec: StepSpec, state: TrainState, draws: Draws, critic: CriticOut,
              s=None) -> AdaOut:
    """ADA: r averaged since p last moved (over critic updates for the midpoint signal, over
    steps for the held-out one), p adjusted every ada_interval steps (inside the step, so a
    resumed run adapts exactly as an uninterrupted one)."""
    dm = critic.metrics
    if spec.heldout_signal:
        if draws.heldout is None:
            raise ValueError("ADA's heldout signal: Draws.heldout must be given")
        d_apply = critic_apply(spec, s)
        rt = ada_heldout_signal(
            d_apply(critic.d_params, draws.real[-1],
                    None if draws.y_real is None else draws.y_real[-1]),
            d_apply(critic.d_params, draws.heldout, draws.y_heldout))
        ada_acc = state.ada_acc + jnp.stack([rt, jnp.float32(1)])
    else:
        rt = jnp.mean(dm["ada_rt"])
        ada_acc = state.ada_acc + jnp.stack([jnp.sum(dm["ada_rt"]), jnp.float32(spec.n_critic)])
    p = new_p = state.aug_p
    cfg = spec.diffaug
    if cfg.ada:
        due = (state.step + 1) % cfg.ada_interval == 0
        new_p = jnp.where(due, ada_adjust(p, ada_acc[0] / ada_acc[1], cfg, spec.batch_size), p)
        ada_acc = jnp.where(due, jnp.zeros_like(ada_acc), ada_acc)
    return AdaOut(rt, new_p, ada_acc)


def iteration(spec: StepSpec, state: TrainState, draws: Draws):
    """One training iteration: (state, draws) -> (next state, metrics)."""
    if spec.conditional != (draws.y_real is not None and draws.y_fake is not None
                            and draws.y_g is not None):
        raise ValueError("Draws.y_real, y_fake and y_g must be given for a conditional "
                         "model and only for one")
    s = cond_scale(spec.loss, state.step) if spec.loss.transitional else None
    critic = critic_phase(spec, state, draws, s)
    gen = generator_phase(spec, state, draws, critic, s)
    g_ema = ema_phase(spec, state, gen.g_params)
    ada = ada_phase(spec, state, draws, critic, s)
    metrics = step_metrics(spec, state, draws, critic.metrics, gen.loss, gen.grads, gen.stats,
                           ada.rt)
    new_state = TrainState(step=state.step + 1, g_params=gen.g_params,
                           g_batch_stats=gen.g_batch_stats, d_params=critic.d_params,
                           g_opt_state=gen.g_opt_state, d_opt_state=critic.d_opt_state,
                           g_ema=g_ema, aug_p=ada.aug_p, ada_acc=ada.ada_acc)
    return new_state, metrics
