"""The evaluator: generated spectrograms against real ones, every metric with a real-vs-real
baseline (used by `specgan-evaluate`, specgan_jax.evaluation.report, and during training,
specgan_jax.evaluation.periodic).

Generated spectrograms are compared with real ones in the run's normalised space (moments.npz,
clipped to [-1, 1]: the range the generator's tanh produces, so the comparison is not skewed by
real values beyond ±3 std that no generator of this recipe can make). The real set is split,
stratified by class and seeded, into a *reference* half (the training-set stand-in) and a
*held-out* half; every metric is reported for the generated samples and for a real-vs-real
baseline of the same kind, so a number has a scale:

  key              generated                          real_baseline
  fd               Fréchet distance of features,      reference vs held-out
                   generated vs held-out
  kid              KID (unbiased MMD², cubic kernel),  reference vs held-out
                   generated vs held-out
  ndb              NDB: k-means bins of the           held-out vs reference
                   reference split, generated vs
                   reference (Richardson & Weiss 2018)
  mean_rms         RMS over frequency of the per-     reference - held-out
                   frequency mean error, generated -
                   held-out, in the data's units
  std_rms          the same for the per-frequency std reference - held-out
  nn_train         median nearest-neighbour distance  held-out to reference
                   to the reference ("training") set
                   (the original's |D|train)
  memorization     fraction of generated samples      the held-out's own fraction
                   whose distance ratio d(x, ref) /   (5% by construction)
                   d(x, held-out) is below the 5th
                   percentile of the held-out's ratios
                   d(h, ref) / d(h, other held-out)
  nn_self          median within-set nearest-         within held-out
                   neighbour distance (diversity,
                   the original's |D|self)
  inception_score  exp(E KL(p(y|x) || p(y))) of the   held-out
                   classifier (classifier mode only)
  class_tv         total variation between predicted  the classifier's predictions on
                   classes and the held-out labels    the held-out split
                   (classifier mode only)
  hf_excess        ln of the high-frequency power      held-out vs reference
                   fraction, generated vs reference
                   (checkerboard / stripe artefacts:
                   specgan_jax.evaluation.artifacts)

With the generated samples' intended classes (a class-conditional generator), also intra_fd,
intra_kid and class_accuracy: each class against the real examples of that class
(specgan_jax.evaluation.per_class); and tstr and aug_gain: a classifier trained on the
generated samples, or on reals plus them, tested on held-out reals (specgan_jax.evaluation.tstr).

Feature space (fd, kid, inception_score): specgan_jax.features -- a classifier trained on the
reference split when the real data has classes, else fixed random convolutional features;
eval.json says which ("meta.feature_space"). Features are divided by one scalar, the RMS
feature value of the reference split, so that KID's cubic kernel (x·y/D + 1)³ sees values of
order 1 whatever the network's scale (unscaled classifier features gave kernel values ~1e4
and a KID dominated by sampling noise); FD is then in units of that scale, and the same scale
is used for every set of an evaluation. Nearest neighbours and NDB work on the normalised
spectrograms themselves, as the original's |D| and the NDB paper do in pixel space.

Why `memorization` is a ratio: a real spectrogram carries speckle noise in every bin, so the
distance between two real samples counts two noises and the distance from a smooth generated
sample to a real one counts one. Smooth (e.g. early, blurry) samples therefore sit closer to
the training set than held-out reals do without copying anything (seen on the demo: 46% of a
200-step generator's samples were "closer than 95% of held-out reals"). A copy of a training
sample, however, is much closer to the training set than to the held-out set, while a new
sample -- smooth or not -- is about as close to either (equal-size draws of one distribution).
The held-out split must be unseen in training for this to detect copies of all training
samples; when both splits are training data (meta.real_overlap says so), copies of held-out
samples go unnoticed, so the fraction is a lower bound.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Optional

import numpy as np

from specgan_jax.config import EvalConfig
from specgan_jax.config.metrics import MEMORIZATION_QUANTILE, METRICS
from specgan_jax.errors import EvaluateError
from specgan_jax.evaluation import features
from specgan_jax.evaluation import metrics as M
from specgan_jax.evaluation import artifacts, per_class, pooled, tstr
from specgan_jax.evaluation.splits import RealSplits

NDB_SAMPLES_PER_BIN = 10  # automatic NDB k: one bin per this many reference samples...
NDB_K_RANGE = (2, 100)  # ...within this range (the paper: k = 100 for ~20k samples)
# A classifier whose held-out accuracy is below halfway from chance to perfect gives features
# that separate little; FD/KID in its space say little. The output says so.
WEAK_CLASSIFIER_FRACTION = 0.5
# Metric name -> its computation (compute(evaluator, Generated) -> eval.json entry or None);
# the same names as specgan_jax.config.metrics.METRICS.
COMPUTE = {**pooled.COMPUTE, **artifacts.COMPUTE, **per_class.COMPUTE, **tstr.COMPUTE}
__all__ = ["COMPUTE", "Evaluation", "Evaluator", "Generated", "MEMORIZATION_QUANTILE",
           "make_feature_space"]


def _auto_k(n_ref: int) -> int:
    return int(np.clip(n_ref // NDB_SAMPLES_PER_BIN, *NDB_K_RANGE))


def make_feature_space(real: RealSplits, cfg: EvalConfig, cache_dir: Optional[str],
                       log: Callable[[str], None]):
    has_classes = len(real.class_names) > 1
    kind = cfg.feature_space
    if kind == "auto":
        kind = "classifier" if has_classes else "random_conv"
    if kind == "classifier" and not has_classes:
        raise EvaluateError("--eval.feature_space classifier needs real data with more than one "
                            "class (one subfolder per class)")
    if kind == "random_conv":
        return features.random_features(*real.ref.shape[1:])
    opts = features.ClassifierOptions(steps=cfg.classifier_steps,
                                      batch_size=cfg.classifier_batch_size, lr=cfg.classifier_lr)
    return features.classifier_features(real.ref, real.ref_labels, real.class_names,
                                        real.held, real.held_labels, opts, cache_dir, log)


@dataclasses.dataclass
class Generated:
    """A generated set under evaluation, as the metric computations see it."""

    x: np.ndarray  # [N, F, T] normalised spectrograms
    f: np.ndarray  # [N, D] features, scaled as the real ones
    p: Optional[np.ndarray]  # [N, C] class probabilities (classifier feature space) or None
    labels: Optional[np.ndarray]  # [N] intended classes (indices into real.class_names) or None
    arrays: dict = dataclasses.field(default_factory=dict)  # what the report PNG draws
    cache: dict = dataclasses.field(default_factory=dict)  # results two metrics share


@dataclasses.dataclass
class Evaluation:
    """metrics: the eval.json content without "meta" (one key per metric, each with
    "generated" and "real_baseline"); arrays: what the report PNG draws."""

    metrics: dict
    arrays: dict

    def scalars(self, prefix: str = "eval/") -> dict:
        """Flat {prefix+metric: generated, prefix+metric+'_real_baseline': baseline}."""
        out = {}
        for k, v in self.metrics.items():
            out[prefix + k] = v["generated"]
            out[prefix + k + "_real_baseline"] = v["real_baseline"]
        return out


class Evaluator:
    """Compares generated sets with a RealSplits; the real side (features, k-means, baselines)
    is computed once in the constructor."""

    def __init__(self, real: RealSplits, cfg: EvalConfig, moments,
                 cache_dir: Optional[str] = None, log: Callable[[str], None] = lambda s: None):
        self.real, self.cfg, self.moments = real, cfg, moments
        self.space = make_feature_space(real, cfg, cache_dir, log)
        ref_f, self.ref_p = self.space.features_and_probs(real.ref)
        # One scalar for every set of this evaluation (see the module docstring).
        self.feature_scale = float(np.sqrt(np.mean(ref_f ** 2))) or 1.0
        self.ref_f = ref_f / self.feature_scale
        self.held_f, self.held_p = self._features(real.held)
        self.k = min(cfg.ndb_k or _auto_k(len(real.ref)), len(real.ref))
        self.clusters = M.kmeans(real.ref, self.k, cfg.seed)
        self.ref_curves = M.frequency_curves(real.ref)
        self.held_curves = M.frequency_curves(real.held)
        self.held_nn = M.nn_distances(real.held, real.ref).distance
        self.held_self = M.nn_distances(real.held, real.held, exclude_self=True).distance
        self.held_ratio = pooled.ratio(self.held_nn, self.held_self)
        self._per_class = None  # per_class.PerClass, built by the first labelled evaluation
        self.real_cache: dict = {}  # real-side results a metric computes once, on first use
        self.ratio_threshold = float(np.percentile(self.held_ratio, MEMORIZATION_QUANTILE))
        self.baseline = {
            "fd": M.frechet_distance(self.ref_f, self.held_f),
            "kid": self._kid(self.ref_f, self.held_f),
            "ndb": M.ndb_from_bins(self.clusters.labels,
                                   M.assign(real.held, self.clusters.centroids), self.k,
                                   cfg.ndb_alpha),
        }

    # -- helpers -------------------------------------------------------------------------------
    def _features(self, x):
        f, p = self.space.features_and_probs(x)
        return f / self.feature_scale, p

    def _kid(self, a, b) -> M.KID:
        size = self.cfg.kid_subset_size or min(1000, max(2, min(len(a), len(b)) // 2))
        return M.kid(a, b, self.cfg.kid_subsets, size, self.cfg.seed)

    def to_units(self, mean_norm: np.ndarray, std_norm: np.ndarray):
        """Per-frequency curves of normalised data -> the data's units (the moments' units: log
        units if the run log-transforms): x = 3 std_f y + mean_f is affine per frequency."""
        s = 3.0 * self.moments.std
        return self.moments.mean + s * mean_norm, s * std_norm

    def units(self) -> str:
        m = self.moments
        return (f"log(input + {m.eps:g})" if m.log_transform else "input units") + \
            " (per-frequency statistics; normalised data mapped back with the run's moments)"

    # -- the comparison ------------------------------------------------------------------------
    def evaluate(self, gen: np.ndarray, labels: Optional[np.ndarray] = None,
                 names: Optional[Iterable[str]] = None) -> Evaluation:
        """gen [N, F, T] normalised generated spectrograms -> Evaluation, one entry per metric
        of specgan_jax.config.metrics that applies. labels [N]: the classes the samples were
        generated for (indices into real.class_names): adds the per-class metrics. names:
        only these metrics (default: all)."""
        gen = np.asarray(gen, np.float32)
        if gen.ndim != 3 or gen.shape[1:] != self.real.held.shape[1:]:
            raise EvaluateError(f"generated spectrograms have shape {gen.shape[1:]}; the real "
                                f"ones {self.real.held.shape[1:]}")
        if len(gen) < 2:
            raise EvaluateError("evaluation needs at least 2 generated spectrograms")
        if labels is not None:
            labels = per_class.check_labels(labels, len(gen), len(self.real.class_names))
        names = None if names is None else set(names)
        g = Generated(gen, *self._features(gen), labels)
        out: dict = {}
        for spec in METRICS:
            if (names is not None and spec.name not in names) or (
                    spec.needs == "labels" and labels is None):
                continue
            entry = COMPUTE[spec.name](self, g)
            if entry is not None:
                out[spec.name] = entry
        return Evaluation(metrics=out, arrays=g.arrays)

    def meta(self) -> dict:
        """What eval.json's "meta" says about the real side and the feature space."""
        real, info = self.real, dict(self.space.info)
        meta = {"feature_space": self.space.kind, "feature_dim": self.space.dim,
                "n_real_ref": int(len(real.ref)), "n_real_heldout": int(len(real.held)),
                "classes": list(real.class_names), "real_source": real.source,
                "real_overlap": real.overlap, "seed": self.cfg.seed,
                "feature_scale": self.feature_scale,
                "feature_info": info}
        if self.space.kind == "classifier":
            acc, chance = info["heldout_accuracy"], info["chance_accuracy"]
            meta["classifier_accuracy"] = acc
            if acc < chance + WEAK_CLASSIFIER_FRACTION * (1 - chance):
                meta["classifier_warning"] = (
                    f"held-out accuracy {acc:.3f} is weak (chance {chance:.3f}): its features "
                    "separate the classes poorly, so fd/kid/inception_score say little; try "
                    "--eval.classifier_steps or more data")
            meta["classifier_note"] = (
                "the classifier is trained on the reference split, so the fd/kid real "
                "baselines compare its training data with unseen data; a train accuracy well "
                "above the held-out accuracy means they are inflated")
        return meta
