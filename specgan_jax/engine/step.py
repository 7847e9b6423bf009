"""The SpecGAN training step: n_critic critic updates under lax.scan, then one generator update.

The n_critic fake batches come from one generator call vmapped over the critic axis before the
critic loop (G does not change during it); see `critic_fakes` in make_train_fns.

Layers of the API, innermost first:
  iteration(state, draws)   the numeric core; every random number is an argument (Draws), so
                            the PyTorch reference can be fed identical ones (parity_tests/).
  step(state, data, key)    draws from fold_in(key, state.step) — a resumed run draws the same
                            numbers as an uninterrupted one — and real batches from
                            `sampler(data, key, n_critic, batch)`: the seam where the
                            device-resident dataset (specgan_jax.sampler) plugs in.
  chunk(state, data, key, n) n steps under lax.scan: one host call, one host sync.
All three are jitted with the state donated. "step" counts generator updates, as the original.

Data parallelism: given a `mesh` with a "data" axis, the random inputs are
constrained to be split along their batch axis over "data" and the state comes out replicated;
XLA's SPMD partitioner then runs each example's convolutions on the device that holds it and
all-reduces batch means and gradients. The same functions run on 1 or N devices.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import flax
import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import numpy as np

from specgan_jax.engine import losses
from specgan_jax.engine.compile import jit
from specgan_jax.config import DiffAugConfig, EMAConfig, LossConfig, ModelConfig, OptimConfig
from specgan_jax.engine.layers import BN_MOMENTS, BatchNorm, advance_running_stats
from specgan_jax.engine.models import Discriminator, Generator, init_models, resolve_impl
from specgan_jax.engine.small_data import (ada_adjust, ada_heldout_signal, batch_spread,
                                           cond_scale, diff_augment, ema_beta, ema_update)

Sampler = Callable[[Any, jax.Array, int, int], jax.Array]
HeldoutSampler = Callable[[Any, jax.Array, int], jax.Array]


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: generator updates done
    g_params: Any
    g_batch_stats: Any  # {} without batch norm
    d_params: Any
    g_opt_state: Any
    d_opt_state: Any
    # Exponential moving average of g_params (engine.small_data; equal to g_params when the
    # EMA is off). Sampled from by default; the parity suite compares g_params.
    g_ema: Any = None
    aug_p: Any = None  # float32 scalar: DiffAugment's strength p (adapted by ADA)
    ada_acc: Any = None  # float32 [2]: sum of r_t and number of critic updates since p moved


@flax.struct.dataclass
class Draws:
    """Every random input of one iteration."""

    real: jax.Array  # [n_critic, B, F, T, 1] real batches in normalised units, one per D update
    z_d: jax.Array  # [n_critic, B, latent] latents for the critic updates' fakes
    alpha: jax.Array  # [n_critic, B] GP interpolation coefficients, U[0, 1)
    label_u: jax.Array  # [n_critic, 2, B] U[0, 1) for dcgan label smoothing (unused otherwise)
    z_g: jax.Array  # [B, latent] latents for the generator update
    # PRNG key of the DiffAugment draws (n_critic critic updates + the G update); None when
    # DiffAugment is off (the parity suite's Draws have none).
    k_aug: Optional[jax.Array] = None
    # [B, F, T, 1] examples held out of training, for ADA's "heldout" signal; None otherwise.
    heldout: Optional[jax.Array] = None
    # Class labels (int32) of a conditional model, None for an unconditional one: the real
    # batches' [n_critic, B], the classes the critic updates' fakes are made for [n_critic, B],
    # the generator update's [B], and the held-out batch's [B].
    y_real: Optional[jax.Array] = None
    y_fake: Optional[jax.Array] = None
    y_g: Optional[jax.Array] = None
    y_heldout: Optional[jax.Array] = None


def sample_latents(key, n: int, latent_dim: int, dist: str = "uniform"):
    """z [n, latent_dim]: U(-1, 1) as the original, or N(0, 1) as the seed's loop."""
    if dist == "uniform":
        return jax.random.uniform(key, (n, latent_dim), jnp.float32, -1.0, 1.0)
    return jax.random.normal(key, (n, latent_dim), jnp.float32)


def create_train_state(model_cfg: ModelConfig, loss_cfg: LossConfig, optim_cfg: OptimConfig,
                       key: jax.Array, aug_p: float = 0.0) -> TrainState:
    """The initial state; aug_p: DiffAugment's starting strength (DiffAugConfig.strength)."""
    g_vars, d_vars = init_models(model_cfg, key)
    g_tx, d_tx = losses.make_optimizers(loss_cfg, optim_cfg)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_vars["params"],
        g_batch_stats=g_vars.get("batch_stats", {}),
        d_params=d_vars["params"],
        g_opt_state=g_tx.init(g_vars["params"]),
        d_opt_state=d_tx.init(d_vars["params"]),
        g_ema=jax.tree.map(jnp.copy, g_vars["params"]),
        aug_p=jnp.asarray(aug_p, jnp.float32),
        ada_acc=jnp.zeros((2,), jnp.float32),
    )


def upgrade_state(state: TrainState, aug_p: float = 0.0) -> TrainState:
    """A TrainState restored from a checkpoint written before the EMA and ADA fields existed:
    the EMA starts at the trained weights, p at its configured start."""
    return state.replace(g_ema=jax.tree.map(jnp.copy, state.g_params),
                         aug_p=jnp.asarray(aug_p, jnp.float32),
                         ada_acc=jnp.zeros((2,), jnp.float32))


def _g_vars(params, batch_stats):
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def generate(model_cfg: ModelConfig, g_params, g_batch_stats, z, y=None):
    """G(z) (G(z, y) for a conditional model; y int32 [B]) in inference mode (running BN
    statistics): [B, latent] -> [B, 128, 128, 1]."""
    return Generator(model_cfg).apply(_g_vars(g_params, g_batch_stats), z, y, train=False)


def batch_divisibility_message(batch_size: int, n_devices: int, what: str = "batch size") -> str:
    """The error for a global batch that the data-parallel devices cannot split evenly."""
    lower = batch_size // n_devices * n_devices
    fits = f"{lower} or {lower + n_devices}" if lower else f"{n_devices}"
    return (f"{what} {batch_size} is not divisible by the {n_devices} devices: data "
            f"parallelism splits every batch evenly over the devices (the mesh's 'data' axis). "
            f"Use a multiple of {n_devices}, e.g. {fits}.")


class TrainFns(NamedTuple):
    iteration: Callable  # (state, draws) -> (state, metrics)
    step: Callable  # (state, data, key) -> (state, metrics)
    chunk: Callable  # (state, data, key, n_steps) -> (state, metrics[n_steps])
    draws: Callable  # (data, key, step) -> Draws, what `step` feeds to the core


def make_train_fns(model_cfg: ModelConfig, loss_cfg: LossConfig, optim_cfg: OptimConfig,
                   batch_size: int, sampler: Optional[Sampler] = None,
                   unroll_critic: Optional[bool] = None, mesh: Optional[Mesh] = None,
                   ema_cfg: EMAConfig = EMAConfig(), diffaug_cfg: DiffAugConfig = DiffAugConfig(),
                   gain_scale: Optional[np.ndarray] = None,
                   heldout_sampler: Optional[HeldoutSampler] = None,
                   class_probs: Optional[np.ndarray] = None) -> TrainFns:
    """Build the jitted training functions.

    unroll_critic: unroll the lax.scan over critic updates (same semantics). None: unrolled on
    CPU (once 17x faster than the rolled loop there, now within noise of it), rolled elsewhere.
    mesh: data parallelism over mesh axis "data": every Draws array is split along its batch
      axis (real/z_d/alpha [n_critic, B, ...] on axis 1, label_u on axis 2, z_g on axis 0);
      state and metrics are returned replicated (pass the state and the dataset already on the
      mesh: replicated, and sharded along N). batch_size must be divisible by the size of the
      "data" axis. None: no sharding annotations at all (the single-device program).
    ema_cfg, diffaug_cfg, gain_scale: the generator EMA, DiffAugment and ADA
      (engine.small_data); gain_scale [F] maps DiffAugment's gain draw to normalised units
      (small_data.gain_scale_from_std of the data's moments).
    heldout_sampler: (data, key, B) -> a batch of the examples held out of training
      (data.sampler.make_heldout_sampler); needed for ADA's "heldout" signal.
    Conditional models (model_cfg.conditional): the samplers return (x, labels); the critic
      updates' fakes take their real batch's classes, the generator update's are drawn from
      class_probs [n_classes] (None: uniform; pass a class-balanced sampler with it).
    """
    if mesh is not None:
        n_data = mesh.shape["data"]  # KeyError: a mesh without a "data" axis
        if batch_size % n_data:
            raise ValueError(batch_divisibility_message(batch_size, n_data))
        if mesh.size > 1 and resolve_impl(model_cfg) == "hybrid":
            # Measured (tests/test_multidevice.py, 4 CPU devices): the sharded step with D's
            # custom-VJP convolutions drifts from the 1-device result by 0.14 after 2 steps,
            # while "phase" agrees to 1.5e-7. Not understood yet; refuse rather than train wrong.
            raise ValueError("model.conv_impl='hybrid' is single-device only for now (its "
                             "sharded gradients disagree with one device); use 'phase'")
    gen, disc = Generator(model_cfg), Discriminator(model_cfg)
    g_tx, d_tx = losses.make_optimizers(loss_cfg, optim_cfg)
    n_critic = loss_cfg.n_critic
    per_example_gp = not model_cfg.use_batchnorm
    if unroll_critic is None:
        unroll_critic = jax.default_backend() == "cpu"
    has_bs = model_cfg.use_batchnorm
    augment = diffaug_cfg.enabled
    cond = model_cfg.conditional
    if cond:
        k = model_cfg.n_classes
        probs = np.full(k, 1.0 / k) if class_probs is None else np.asarray(class_probs, float)
        if probs.shape != (k,) or not np.all(probs >= 0) or not probs.sum() > 0:
            raise ValueError(f"class_probs must be {k} non-negative weights; got {class_probs}")
        class_logits = jnp.asarray(np.log(np.maximum(probs / probs.sum(), 1e-30)), jnp.float32)
    if loss_cfg.transitional and not cond:
        raise ValueError("loss.cond_start / loss.cond_ramp (transitional conditioning) apply to "
                         "conditional models only (model.conditional)")

    heldout_signal = diffaug_cfg.holds_out
    if heldout_signal and sampler is not None and heldout_sampler is None:
        raise ValueError("ADA's heldout signal needs a heldout_sampler (or diffaug.ada_signal "
                         "'midpoint')")

    def aug(x, key, p):
        return diff_augment(x, key, p, diffaug_cfg, gain_scale) if augment else x

    def critic(s):
        """D as d_apply(params, x, y=None), its class term scaled by s (None: unscaled)."""
        return lambda p, x, y=None: disc.apply({"params": p}, x, y, cond_scale=s)

    def g_train(params, batch_stats, z, y=None, s=None):
        """G(z) (G(z, y), class code scaled by s) in training mode -> (fake, new batch stats)."""
        if not has_bs:
            return gen.apply({"params": params}, z, y, train=True, cond_scale=s), batch_stats
        fake, upd = gen.apply(_g_vars(params, batch_stats), z, y, train=True, cond_scale=s,
                              mutable=["batch_stats"])
        return fake, upd["batch_stats"]

    def critic_fakes(params, batch_stats, z_d, y_fake=None, s=None):
        """The fakes of all n_critic critic updates from one G call vmapped over the critic axis
        (G does not change during them): z_d [n_critic, B, latent] (y_fake [n_critic, B]) ->
        fakes [n_critic, B, F, T, 1], new batch stats. Training mode, as torch's
        netG(noise).detach(): vmap normalises each update's batch by its own statistics, and the
        BN running statistics advance once per update, in order (layers.advance_running_stats),
        as n_critic separate calls would."""
        if not has_bs:
            return jax.vmap(lambda z, y: gen.apply({"params": params}, z, y, train=True,
                                                   cond_scale=s))(z_d, y_fake), batch_stats

        def one(z, y):
            fake, upd = gen.apply(_g_vars(params, batch_stats), z, y, train=True, cond_scale=s,
                                  mutable=["batch_stats", BN_MOMENTS])
            return fake, upd[BN_MOMENTS]

        fakes, moments = jax.vmap(one)(z_d, y_fake)
        return fakes, advance_running_stats(batch_stats, moments, BatchNorm.momentum)

    def critic_update(carry, xs, p, d_apply):
        """One critic update; xs: its real, fake, alpha, label_u (k_aug, y_real, y_fake)."""
        d_params, d_opt = carry
        real, fake = xs["real"], xs["fake"]
        if augment:  # T(real), T(fake); the GP's interpolates lie between them (small_data)
            k_real, k_fake = jax.random.split(xs["k_aug"])
            real, fake = aug(real, k_real, p), aug(fake, k_fake, p)
        (loss, aux), grads = jax.value_and_grad(losses.d_loss, argnums=2, has_aux=True)(
            loss_cfg, d_apply, d_params, real, fake, xs["alpha"], xs["label_u"], per_example_gp,
            xs.get("y_real"), xs.get("y_fake"))
        updates, d_opt = d_tx.update(grads, d_opt, d_params)
        d_params = optax.apply_updates(d_params, updates)
        if loss_cfg.loss == "wgan":
            d_params = losses.clip_critic(loss_cfg, d_params)
        metrics = {"d_loss": loss, "d_grad_norm": optax.tree.norm(grads), **aux}
        return (d_params, d_opt), metrics

    def iteration(state: TrainState, draws: Draws):
        if cond != (draws.y_real is not None and draws.y_fake is not None
                    and draws.y_g is not None):
            raise ValueError("Draws.y_real, y_fake and y_g must be given for a conditional "
                             "model and only for one")
        # transitional conditioning: the class terms' scale at this step (None: not scaled)
        s = cond_scale(loss_cfg, state.step) if loss_cfg.transitional else None
        d_apply = critic(s)
        fakes, g_bs = critic_fakes(state.g_params, state.g_batch_stats, draws.z_d, draws.y_fake,
                                   s)
        fakes = lax.stop_gradient(fakes)
        p = state.aug_p
        xs = {"real": draws.real, "fake": fakes, "alpha": draws.alpha, "label_u": draws.label_u}
        if cond:
            xs.update(y_real=draws.y_real, y_fake=draws.y_fake)
        if augment:
            if draws.k_aug is None:
                raise ValueError("DiffAugment is on: Draws.k_aug must be given")
            k_critic = jax.random.split(draws.k_aug, n_critic + 1)
            xs["k_aug"], k_g = k_critic[:n_critic], k_critic[n_critic]
        (d_params, d_opt), dm = lax.scan(lambda c, x: critic_update(c, x, p, d_apply),
                                         (state.d_params, state.d_opt_state), xs,
                                         unroll=n_critic if unroll_critic else 1)

        def g_objective(g_params):
            fake, new_bs = g_train(g_params, g_bs, draws.z_g, draws.y_g, s)
            # what the training-health summary reads (training/health.py)
            stats = {"fake_mean": jnp.mean(fake), "fake_std": jnp.std(fake),
                     "fake_batch_std": batch_spread(fake, draws.y_g, model_cfg.n_classes)}
            if augment:
                fake = aug(fake, k_g, p)
            return losses.g_loss(loss_cfg, d_apply(d_params, fake, draws.y_g)), (new_bs, stats)

        (gl, (g_bs, g_stats)), g_grads = jax.value_and_grad(g_objective, has_aux=True)(
            state.g_params)
        updates, g_opt = g_tx.update(g_grads, state.g_opt_state, state.g_params)
        g_params = optax.apply_updates(state.g_params, updates)
        g_ema = ema_update(state.g_ema, g_params, ema_beta(state.step, batch_size, ema_cfg))
        # ADA: r averaged since p last moved (over critic updates for the midpoint signal,
        # over steps for the held-out one), p adjusted every ada_interval steps (inside the
        # step, so a resumed run adapts exactly as an uninterrupted one).
        if heldout_signal:
            if draws.heldout is None:
                raise ValueError("ADA's heldout signal: Draws.heldout must be given")
            rt = ada_heldout_signal(
                d_apply(d_params, draws.real[-1], None if draws.y_real is None else draws.y_real[-1]),
                d_apply(d_params, draws.heldout, draws.y_heldout))
            ada_acc = state.ada_acc + jnp.stack([rt, jnp.float32(1)])
        else:
            rt = jnp.mean(dm["ada_rt"])
            ada_acc = state.ada_acc + jnp.stack([jnp.sum(dm["ada_rt"]), jnp.float32(n_critic)])
        new_p = p
        if diffaug_cfg.ada:
            due = (state.step + 1) % diffaug_cfg.ada_interval == 0
            new_p = jnp.where(due, ada_adjust(p, ada_acc[0] / ada_acc[1], diffaug_cfg,
                                              batch_size), p)
            ada_acc = jnp.where(due, jnp.zeros_like(ada_acc), ada_acc)
        last = jax.tree_util.tree_map(lambda v: v[-1], dm)  # the last critic update's numbers
        finite = jnp.isfinite(gl) & jnp.all(jnp.isfinite(dm["d_loss"]))
        metrics = {
            **last,
            "g_loss": gl,
            "g_grad_norm": optax.tree.norm(g_grads),
            "nonfinite": (~finite).astype(jnp.float32),  # 1.0: a loss was NaN/inf this step
            "ada_rt": rt,  # the critic's overfitting signal (small_data)
            "aug_p": p,  # DiffAugment's strength during this step
            **jax.lax.stop_gradient(g_stats),
            "real_batch_std": batch_spread(
                draws.real[-1], None if draws.y_real is None else draws.y_real[-1],
                model_cfg.n_classes),
        }
        new_state = TrainState(step=state.step + 1, g_params=g_params, g_batch_stats=g_bs,
                               d_params=d_params, g_opt_state=g_opt, d_opt_state=d_opt,
                               g_ema=g_ema, aug_p=new_p, ada_acc=ada_acc)
        return new_state, metrics

    def shard_draws(d: Draws) -> Draws:
        """Split every draw along its batch axis over "data" (identity without a mesh)."""
        if mesh is None:
            return d

        def split(x, batch_axis):
            spec = P(*([None] * batch_axis), "data")
            return lax.with_sharding_constraint(x, NamedSharding(mesh, spec))

        def maybe(x, batch_axis):
            return None if x is None else split(x, batch_axis)

        return Draws(real=split(d.real, 1), z_d=split(d.z_d, 1), alpha=split(d.alpha, 1),
                     label_u=split(d.label_u, 2), z_g=split(d.z_g, 0), k_aug=d.k_aug,
                     heldout=maybe(d.heldout, 0), y_real=maybe(d.y_real, 1),
                     y_fake=maybe(d.y_fake, 1), y_g=maybe(d.y_g, 0),
                     y_heldout=maybe(d.y_heldout, 0))

    def draws(data, key, step) -> Draws:
        if sampler is None:
            raise ValueError("make_train_fns(..., sampler=None): only `iteration` is available")
        k = jax.random.fold_in(key, step)
        k_real, k_zd, k_alpha, k_label, k_zg = jax.random.split(k, 5)
        b, latent = batch_size, model_cfg.latent_dim
        real = sampler(data, k_real, n_critic, b)  # [n_critic, B, F, T, 1] (, labels)
        heldout = (heldout_sampler(data, jax.random.fold_in(k, 6), b) if heldout_signal
                   else None)
        labels = {}
        if cond:  # the samplers return (x, labels)
            (real, y_real), (heldout, y_heldout) = real, heldout or (None, None)
            # Each critic update's fakes are made for its real batch's classes, so the
            # gradient penalty's interpolates x + alpha (G(z, y) - x) run between a real and a
            # fake of the same class, labelled y: the paths along which D(., y) must be
            # 1-Lipschitz (Gulrajani et al. 2017 sample them between P_r and P_g; here between
            # P_r(. | y) and P_g(. | y)). Independent fake classes would put most of them
            # between classes. The real batches carry the class distribution.
            labels = dict(
                y_real=y_real.astype(jnp.int32), y_fake=y_real.astype(jnp.int32),
                y_g=jax.random.categorical(jax.random.fold_in(k, 8), class_logits,
                                           shape=(b,)).astype(jnp.int32),
                y_heldout=None if y_heldout is None else y_heldout.astype(jnp.int32))
        return shard_draws(Draws(
            real=real.astype(jnp.float32),
            z_d=sample_latents(k_zd, n_critic * b, latent, loss_cfg.latent_dist).reshape(
                n_critic, b, latent),
            alpha=jax.random.uniform(k_alpha, (n_critic, b), jnp.float32),
            label_u=jax.random.uniform(k_label, (n_critic, 2, b), jnp.float32),
            z_g=sample_latents(k_zg, b, latent, loss_cfg.latent_dist),
            # further streams folded in, so the five draws above (and old runs) are unchanged
            k_aug=jax.random.fold_in(k, 5) if augment else None,
            heldout=None if heldout is None else heldout.astype(jnp.float32),
            **labels,
        ))

    def step(state, data, key):
        return iteration(state, draws(data, key, state.step))

    def chunk(state, data, key, n_steps: int):
        return lax.scan(lambda s, _: step(s, data, key), state, None, length=n_steps)

    # With a mesh, (state, metrics) come out replicated: donation reuses the replicated input
    # buffers, and every device holds the whole state for the next step.
    out = {} if mesh is None else {"out_shardings": NamedSharding(mesh, P())}
    return TrainFns(
        iteration=jit(iteration if mesh is None else lambda s, d: iteration(s, shard_draws(d)),
                          donate_argnums=0, **out),
        step=jit(step, donate_argnums=0, **out),
        chunk=jit(chunk, static_argnums=3, donate_argnums=0, **out),
        draws=jit(draws),
    )

