"""Sample-quality evaluation options (outside a run's config.json: evaluation never changes
training)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from specgan_jax.config.checks import check_literals


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Sample-quality evaluation (specgan_jax.evaluation, scripts/evaluate.py; flags --eval.*).

    Not part of a run's config.json: evaluation never changes training. Periodic evaluation
    during training uses these defaults with seed = train.seed and n = train.eval_n.
    """

    # Seeds the real split, the generated samples' latents (sample i of seed S is the one
    # scripts/generate.py --seed S writes), the KID subsets and the k-means of NDB.
    seed: int = 0
    # Generated samples to evaluate; 0 = as many as the held-out real split. Equal sizes keep
    # the small-sample bias of the Fréchet distance equal to that of the real baseline. For a
    # class-conditional run: per class (0: as many as the class's held-out reals).
    n: int = 0
    # At most this many real spectrograms per split (reference / held-out), chosen at random:
    # bounds time and memory (nearest neighbours cost N_gen x N_ref x F x T).
    max_real: int = 1000
    # "auto": a classifier trained on the real reference split when the data has > 1 class,
    # else fixed random convolutional features (specgan_jax.evaluation.features).
    feature_space: Literal["auto", "classifier", "random_conv"] = "auto"
    classifier_steps: int = 200  # Adam updates of the feature classifier (15-25 s on a 2-core CPU)
    classifier_batch_size: int = 32  # its minibatch size
    classifier_lr: float = 1e-3  # its Adam learning rate
    kid_subsets: int = 100  # KID: random subsets averaged (Bińkowski et al. 2018 use 100)
    # KID: samples per subset; 0 = auto: min(1000, half the smaller set), so that the subsets
    # differ and their spread (the reported std) means something (1000 as Bińkowski et al.).
    kid_subset_size: int = 0
    # NDB bins (k-means clusters of the real reference split); 0 = auto: one bin per
    # NDB_SAMPLES_PER_BIN (10) reference samples, within [2, 100] (the paper uses 100 bins for
    # tens of thousands of samples; the z-test needs several samples per bin).
    ndb_k: int = 0
    ndb_alpha: float = 0.05  # NDB: significance level of each bin's two-proportion z-test
    # Train-on-synthetic, test-on-real (labelled generated samples: a conditional run, or
    # --fakes in class folders): the feature classifier's network trained on the generated
    # samples (tstr), on the real reference split (trtr, tstr's baseline) and on both
    # (aug_gain), each tested on the held-out reals, once per seed eval.seed + 0..tstr_seeds-1;
    # reported as mean and std over those seeds. 0: not computed.
    tstr_seeds: int = 3
    # Adam updates of each of those classifiers (batch eval.classifier_batch_size, learning rate
    # eval.classifier_lr). The cost: tstr_seeds trainings on the reals (once per evaluator:
    # during training, once per run) and 2 x tstr_seeds per generated set, of this many steps.
    tstr_steps: int = 100
    # Generated samples per class they train on: the first tstr_n of each class (0: all of the
    # evaluation's, eval.n per class).
    tstr_n: int = 0

    def __post_init__(self):
        check_literals(self, "eval")
        for name in ("n", "ndb_k", "kid_subset_size", "tstr_n"):
            if getattr(self, name) < 0:
                raise ValueError(f"eval.{name} must be >= 0 (0 = auto)")
        if self.tstr_seeds < 0:
            raise ValueError(f"eval.tstr_seeds must be >= 0 (0: no tstr / aug_gain); got "
                             f"{self.tstr_seeds}")
        for name in ("max_real", "classifier_steps", "classifier_batch_size", "kid_subsets",
                     "tstr_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"eval.{name} must be >= 1; got {getattr(self, name)}")
        if self.max_real < 4:
            raise ValueError("eval.max_real must be >= 4")
        if not self.classifier_lr > 0:
            raise ValueError("eval.classifier_lr must be > 0")
        if not 0 < self.ndb_alpha < 1:
            raise ValueError("eval.ndb_alpha must be in (0, 1)")
