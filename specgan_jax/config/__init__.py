"""Configuration: one dataclass per concern, each field documented, checked in __post_init__.

The CLI flags of scripts/train.py are generated from these dataclasses (one flag per field,
`--<section>.<field>`), the resolved config is saved with every run as `config.json`, and a
checkpoint plus that file rebuilds the models. Keep every field JSON-serialisable.

Defaults are the original SpecGAN's (chrisdonahue/wavegan: specgan.py, train_specgan.py)
unless a comment says otherwise.
"""

from __future__ import annotations

import dataclasses

from specgan_jax.config.checks import EVAL_METRICS, LOSSES, check_choice
from specgan_jax.config.eval import EvalConfig
from specgan_jax.config.launch import DistributedConfig, LaunchConfig
from specgan_jax.config.model import LossConfig, ModelConfig, OptimConfig
from specgan_jax.config.small_data import DiffAugConfig, EMAConfig
from specgan_jax.config.train import AugmentConfig, DataConfig, TrainConfig

__all__ = ["AugmentConfig", "Config", "DataConfig", "DistributedConfig", "CONDITIONAL_DEMO_PRESET", "DEMO_PRESET", "FAST_PRESET", "PRESETS", "SMALL_DATA_PRESET",
           "DiffAugConfig", "EMAConfig", "EVAL_METRICS", "EvalConfig", "LOSSES", "LaunchConfig", "LossConfig", "ModelConfig",
           "OptimConfig", "TrainConfig", "check_choice"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a training run needs; saved resolved as `<run dir>/config.json`.

    Sections map to CLI flags `--<section>.<field>` (specgan_jax.cli.flags); a checkpoint plus this
    file (and moments.npz) rebuilds the generator.
    """

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    diffaug: DiffAugConfig = dataclasses.field(default_factory=DiffAugConfig)
    ema: EMAConfig = dataclasses.field(default_factory=EMAConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


# `--preset fast`: the original recipe (WGAN-GP, 5 critic updates) with nearest-neighbour
# upsampling and learning rates 2e-3 for both networks, the candidate that reached the best
# samples per second of training in scripts/compare_recipes.py (docs/recipes.md). Only the
# recipe: the model size, batch and steps stay the user's.
FAST_PRESET = {
    "model": {"upsample": "nn"},
    "optim": {"g_lr": 2e-3, "d_lr": 2e-3},
}

# The demo (no data): the fast recipe at a size that trains in about 2 minutes on 2 cores, its
# learning rates decayed linearly to 0 over the second half (3 seeds, 1000 steps: FD 1.2 +- 0.3
# with the decay, 4.1 +- 1.9 without; docs/demo.md).
DEMO_PRESET = {
    "model": {"dim": 8, **FAST_PRESET["model"]},
    "optim": {**FAST_PRESET["optim"], "lr_decay": "linear"},
    "train": {"steps": 1000, "batch_size": 8, "steps_per_call": 10, "log_every": 50,
              "checkpoint_every": 250, "preview_every": 250, "n_preview": 16},
}

# The conditional demo (`--model.conditional`, no data) on top of DEMO_PRESET: with the
# transition's default fractions of these steps (unconditional to step 300, conditioned from
# step 500), the measured setting under which its classes separated (docs/conditional.md);
# 480 steps would end the unconditional phase before its early collapse does. Learning rates
# 5e-4, not the fast recipe's 2e-3: the conditional model scored worse at 2e-3 (docs/demo.md);
# constant, as measured (the decay was measured on the unconditional demo only).
CONDITIONAL_DEMO_PRESET = {"train": {"steps": 800},
                           "optim": {"g_lr": 5e-4, "d_lr": 5e-4, "lr_decay": "none"}}

# `--preset small-data`: what the measurements on small data sets kept (docs/small-data.md,
# docs/recipes.md): the fast recipe (at dim 16, batch 16 it reached a 3.4x lower FD than the
# original recipe in the same steps), the generator EMA (on by default anyway), periodic
# evaluation keeping the best checkpoint (the fast recipe's samples jump between steps), and
# early stopping. DiffAugment and ADA made samples worse there, so they stay options. On top
# of the defaults (or the demo preset), under --config files and flags.
SMALL_DATA_PRESET = {
    **FAST_PRESET,
    "train": {"eval_every": 1000, "stop_after_no_improvement": 10},
}
PRESETS = {"fast": FAST_PRESET, "small-data": SMALL_DATA_PRESET}
