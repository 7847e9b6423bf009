"""The random inputs of one step (Draws) from the run's key and the step number, and their
data-parallel sharding. Every draw comes from fold_in(key, step), so a resumed run draws the
same numbers as an uninterrupted one; real batches come from `spec.sampler(data, key,
n_critic, batch)`, the seam where the device-resident dataset (data.sampler) plugs in."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec as P

from specgan_jax.engine.sampling import sample_latents
from specgan_jax.engine.spec import StepSpec
from specgan_jax.engine.state import Draws


def shard_draws(spec: StepSpec, d: Draws) -> Draws:
    """Split every draw along its batch axis over "data" (identity without a mesh)."""
    if spec.mesh is None:
        return d

    def split(x, batch_axis):
        return lax.with_sharding_constraint(
            x, NamedSharding(spec.mesh, P(*([None] * batch_axis), "data")))

    def maybe(x, batch_axis):
        return None if x is None else split(x, batch_axis)

    return Draws(real=split(d.real, 1), z_d=split(d.z_d, 1), alpha=split(d.alpha, 1),
                 label_u=split(d.label_u, 2), z_g=split(d.z_g, 0), k_aug=d.k_aug,
                 heldout=maybe(d.heldout, 0), y_real=maybe(d.y_real, 1),
                 y_fake=maybe(d.y_fake, 1), y_g=maybe(d.y_g, 0),
                 y_heldout=maybe(d.y_heldout, 0))


def _labels(spec: StepSpec, k, y_real, y_heldout) -> dict:
    """A conditional model's labels of the step: the real batches' (the samplers' output),
    the critic updates' fake classes, the generator update's classes and the held-out batch's.

    Each critic update's fakes are made for its real batch's classes, so the gradient
    penalty's interpolates x + alpha (G(z, y) - x) run between a real and a fake of the same
    class, labelled y: the paths along which D(., y) must be 1-Lipschitz (Gulrajani et al.
    2017 sample them between P_r and P_g; here between P_r(. | y) and P_g(. | y)). Independent
    fake classes would put most of them between classes. The real batches carry the class
    distribution; the generator update's classes are drawn from spec.class_logits."""
    return dict(
        y_real=y_real.astype(jnp.int32), y_fake=y_real.astype(jnp.int32),
        y_g=jax.random.categorical(jax.random.fold_in(k, 8),
                                   jnp.asarray(spec.class_logits, jnp.float32),
                                   shape=(spec.batch_size,)).astype(jnp.int32),
        y_heldout=None if y_heldout is None else y_heldout.astype(jnp.int32))


def draw(spec: StepSpec, data, key, step) -> Draws:
    """The Draws of generator step `step` (what make_train_fns' `step` feeds to the core)."""
    if spec.sampler is None:
        raise ValueError("make_train_fns(..., sampler=None): only `iteration` is available")
    k = jax.random.fold_in(key, step)
    k_real, k_zd, k_alpha, k_label, k_zg = jax.random.split(k, 5)
    n_critic, b, latent = spec.n_critic, spec.batch_size, spec.model.latent_dim
    dist = spec.loss.latent_dist
    real = spec.sampler(data, k_real, n_critic, b)  # [n_critic, B, F, T, 1] (, labels)
    heldout = (spec.heldout_sampler(data, jax.random.fold_in(k, 6), b) if spec.heldout_signal
               else None)
    labels = {}
    if spec.conditional:  # the samplers return (x, labels)
        (real, y_real), (heldout, y_heldout) = real, heldout or (None, None)
        labels = _labels(spec, k, y_real, y_heldout)
    return shard_draws(spec, Draws(
        real=real.astype(jnp.float32),
        z_d=sample_latents(k_zd, n_critic * b, latent, dist).reshape(n_critic, b, latent),
        alpha=jax.random.uniform(k_alpha, (n_critic, b), jnp.float32),
        label_u=jax.random.uniform(k_label, (n_critic, 2, b), jnp.float32),
        z_g=sample_latents(k_zg, b, latent, dist),
        # further streams folded in, so the five draws above (and old runs) are unchanged
        k_aug=jax.random.fold_in(k, 5) if spec.augment else None,
        heldout=None if heldout is None else heldout.astype(jnp.float32),
        **labels,
    ))
