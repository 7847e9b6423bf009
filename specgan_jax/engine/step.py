"""The SpecGAN training step: n_critic critic updates under lax.scan, then one generator update
(the phases: engine.phases; their static description: engine.spec.StepSpec).

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

from typing import Callable, NamedTuple, Optional

import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from specgan_jax.config import DiffAugConfig, EMAConfig, LossConfig, ModelConfig, OptimConfig
from specgan_jax.engine import phases
from specgan_jax.engine.compile import jit
from specgan_jax.engine.draws import draw, shard_draws
from specgan_jax.engine.spec import (HeldoutSampler, Sampler, StepSpec,
                                     batch_divisibility_message, make_step_spec)
from specgan_jax.engine.state import Draws, TrainState, create_train_state, upgrade_state

# The step's public names, wherever they are defined.
__all__ = ["Draws", "HeldoutSampler", "Sampler", "StepSpec", "TrainFns", "TrainState",
           "batch_divisibility_message", "create_train_state", "make_train_fns",
           "upgrade_state"]


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
    ema_cfg, diffaug_cfg, gain_scale: the generator EMA (engine.ema), DiffAugment and ADA
      (engine.diffaug); gain_scale [F] maps DiffAugment's gain draw to normalised units
      (diffaug.gain_scale_from_std of the data's moments).
    heldout_sampler: (data, key, B) -> a batch of the examples held out of training
      (data.sampler.make_heldout_sampler); needed for ADA's "heldout" signal.
    Conditional models (model_cfg.conditional): the samplers return (x, labels); the critic
      updates' fakes take their real batch's classes, the generator update's are drawn from
      class_probs [n_classes] (None: uniform; pass a class-balanced sampler with it).
    ValueError (engine.spec.make_step_spec) for a combination the step cannot run.
    """
    spec = make_step_spec(model_cfg, loss_cfg, optim_cfg, batch_size, sampler, unroll_critic,
                          mesh, ema_cfg, diffaug_cfg, gain_scale, heldout_sampler, class_probs)

    def iteration(state, draws):
        return phases.iteration(spec, state, draws)

    def draws(data, key, step):
        return draw(spec, data, key, step)

    def step(state, data, key):
        return iteration(state, draws(data, key, state.step))

    def chunk(state, data, key, n_steps: int):
        return lax.scan(lambda s, _: step(s, data, key), state, None, length=n_steps)

    # With a mesh, (state, metrics) come out replicated: donation reuses the replicated input
    # buffers, and every device holds the whole state for the next step.
    out = {} if mesh is None else {"out_shardings": NamedSharding(mesh, P())}
    return TrainFns(
        iteration=jit(iteration if mesh is None
                      else lambda s, d: iteration(s, shard_draws(spec, d)),
                      donate_argnums=0, **out),
        step=jit(step, donate_argnums=0, **out),
        chunk=jit(chunk, static_argnums=3, donate_argnums=0, **out),
        draws=jit(draws),
    )
