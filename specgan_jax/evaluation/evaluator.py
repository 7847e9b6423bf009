"""Sample-quality evaluation: `specgan-evaluate RUN_DIR --real DIR` and the periodic evaluation
during training (`PeriodicEval`, train.eval_every).

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

import argparse
import dataclasses
import json
import math
import os
import sys
import textwrap
import time
from typing import Callable, Optional

import numpy as np

from specgan_jax.cli import flags as cli
from specgan_jax.evaluation import metrics as M
from specgan_jax.config import EvalConfig
from specgan_jax import atomic

MIN_REAL = 8  # real spectrograms needed: 4 per split (FD needs 2 per set, NDB 2 bins)
NDB_SAMPLES_PER_BIN = 10  # automatic NDB k: one bin per this many reference samples...
NDB_K_RANGE = (2, 100)  # ...within this range (the paper: k = 100 for ~20k samples)
# A generated sample counts as memorised when its NN distance ratio d(x, ref) / d(x, held-out)
# is below this percentile of the held-out split's own ratios (so the baseline is ~5%).
MEMORIZATION_QUANTILE = 5.0
# A classifier whose held-out accuracy is below halfway from chance to perfect gives features
# that separate little; FD/KID in its space say little. The output says so.
WEAK_CLASSIFIER_FRACTION = 0.5
LOWER_IS_BETTER = {"fd": True, "kid": True, "ndb": True, "mean_rms": True, "std_rms": True,
                   "inception_score": False}
REPORT_SAMPLES = 16  # spectrograms per grid in the report PNG

_print = lambda s: print(s, flush=True)  # noqa: E731


class EvaluateError(RuntimeError):
    """A user error (missing run dir, too few real files, ...): printed without a traceback."""


# ----------------------------------------------------------------------------------------------
# Real data: the reference / held-out split


@dataclasses.dataclass
class RealSplits:
    """Real spectrograms, normalised [N, F, T] float32, split into reference and held-out."""

    ref: np.ndarray  # the training-set stand-in (the classifier and NDB's k-means fit on it)
    ref_labels: np.ndarray  # [Nr] int32
    held: np.ndarray  # held out from the reference split
    held_labels: np.ndarray  # [Nh] int32
    class_names: list
    source: str  # where the real data came from
    overlap: str  # how it relates to the run's training data


def split_indices(labels: np.ndarray, seed: int, max_per_split: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Stratified seeded split of sample indices into (reference, held-out) halves: each class
    is shuffled and cut in two (the reference half gets the odd one), then each split is
    randomly cut down to max_per_split. Returned sorted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    ref, held = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        half = (len(idx) + 1) // 2
        ref.append(idx[:half])
        held.append(idx[half:])
    ref, held = np.concatenate(ref), np.concatenate(held)
    if len(ref) > max_per_split:
        ref = rng.choice(ref, max_per_split, replace=False)
    if len(held) > max_per_split:
        held = rng.choice(held, max_per_split, replace=False)
    return np.sort(ref), np.sort(held)


def _normalize_rows(x_raw, idx: np.ndarray, moments, chunk: int = 256) -> np.ndarray:
    """Rows idx of raw [N, F, T] (np.memmap fine) -> normalised [len(idx), F, T] float32."""
    from specgan_jax.data.normalize import normalize

    out = np.empty((len(idx),) + tuple(x_raw.shape[1:]), np.float32)
    for s in range(0, len(idx), chunk):
        out[s:s + chunk] = normalize(np.asarray(x_raw[idx[s:s + chunk]]), moments)
    return out


def _check_count(n: int, what: str) -> None:
    if n < MIN_REAL:
        raise EvaluateError(f"{what}: {n} usable spectrogram(s); evaluation needs at least "
                            f"{MIN_REAL} ({MIN_REAL // 2} per split: reference and held-out)")


def real_from_arrays(x_raw, labels, class_names, moments, cfg: EvalConfig, source: str,
                     overlap: str) -> RealSplits:
    """Split (seeded, stratified) and normalise a raw [N, F, T] dataset."""
    _check_count(len(labels), source)
    ref_i, held_i = split_indices(labels, cfg.seed, cfg.max_real)
    labels = np.asarray(labels, np.int32)
    return RealSplits(ref=_normalize_rows(x_raw, ref_i, moments), ref_labels=labels[ref_i],
                      held=_normalize_rows(x_raw, held_i, moments), held_labels=labels[held_i],
                      class_names=list(class_names), source=source, overlap=overlap)


def _is_demo_run(config) -> bool:
    return config.data.path is None and config.data.file_list is None


def real_from_demo(config, moments, cfg: EvalConfig) -> RealSplits:
    """`--real demo` for a run trained on the built-in demo data: the reference split is the
    run's training set itself (rebuilt from its seed), the held-out split is as many *new* demo
    spectrograms (the next indices of each class), never seen in training."""
    from specgan_jax.data import demo as demo_data
    from specgan_jax.training.loop import DEMO_N_PER_CLASS

    if not _is_demo_run(config):
        raise EvaluateError("--real demo is for runs trained on the built-in demo data; this run "
                            f"was trained on {config.data.path or config.data.file_list}: pass "
                            "--real with a folder of real CSVs")
    n_cls = len(demo_data.CLASS_NAMES)
    # The demo run computed its moments over its whole training set: the count says how many
    # spectrograms per class it had, whatever DEMO_N_PER_CLASS is now.
    n_pc = (moments.count // n_cls if moments.count and moments.count % n_cls == 0
            else DEMO_N_PER_CLASS)
    seed = config.train.seed
    x_ref, labels, names = demo_data.make_demo_dataset(n_pc, seed)
    x_held = np.stack([demo_data.make_spectrogram(seed, c, i)
                       for c in range(n_cls) for i in range(n_pc, 2 * n_pc)])
    rng = np.random.default_rng(cfg.seed)
    ref_i = np.arange(len(x_ref))
    held_i = np.arange(len(x_held))
    if len(ref_i) > cfg.max_real:
        ref_i = np.sort(rng.choice(ref_i, cfg.max_real, replace=False))
    if len(held_i) > cfg.max_real:
        held_i = np.sort(rng.choice(held_i, cfg.max_real, replace=False))
    return RealSplits(
        ref=_normalize_rows(x_ref, ref_i, moments), ref_labels=labels[ref_i],
        held=_normalize_rows(x_held, held_i, moments), held_labels=labels[held_i],
        class_names=names, source=f"demo data (seed {seed}, {n_pc} per class for reference, "
                                  f"indices {n_pc}..{2 * n_pc - 1} held out)",
        overlap="reference split = the run's training set; held-out split = new demo "
                "spectrograms never seen in training")


def _data_config_for(config, path: str):
    """The run's DataConfig (orientation, shape policy, log transform...) on another source."""
    path = os.path.abspath(path)
    if os.path.isfile(path):  # a file list
        return dataclasses.replace(config.data, path=None, file_list=path)
    return dataclasses.replace(config.data, path=path, file_list=None)


def _check_shape(x: np.ndarray, moments, what: str) -> None:
    from specgan_jax.engine.models import SPATIAL

    if x.shape[1:] != (moments.n_freq, SPATIAL) or moments.n_freq != SPATIAL:
        raise EvaluateError(f"{what}: spectrograms are {x.shape[1]}x{x.shape[2]} (frequency x "
                            f"time); the run's generator makes {SPATIAL}x{SPATIAL} and its "
                            f"moments have {moments.n_freq} frequency bins")


def real_from_folder(config, moments, real: str, cfg: EvalConfig,
                     progress: bool = False) -> RealSplits:
    """`--real DIR` (or a file list): loaded with the run's data options, split and
    normalised."""
    from specgan_jax.data import csv as data_lib

    dc = _data_config_for(config, real)
    dataset = data_lib.load_dataset(dc, progress=progress)
    _check_shape(dataset.x, moments, real)
    train_src = config.data.path or config.data.file_list
    same = train_src is not None and os.path.abspath(train_src) == os.path.abspath(real)
    overlap = ("the real set IS the run's training data: both splits were seen in training "
               "(held out from the reference split only)" if same else
               "not the run's training data source (by path); any overlap is unknown")
    return real_from_arrays(dataset.x, dataset.labels, dataset.class_names, moments, cfg,
                            source=os.path.abspath(real), overlap=overlap)


# ----------------------------------------------------------------------------------------------
# The evaluator: real side computed once, then any number of generated sets


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise; den = 0 gives inf (1 where both are 0: a duplicate in both sets)."""
    out = np.where(num == 0, 1.0, np.inf)
    return np.divide(num, den, out=out, where=den > 0)


def _auto_k(n_ref: int) -> int:
    return int(np.clip(n_ref // NDB_SAMPLES_PER_BIN, *NDB_K_RANGE))


def make_feature_space(real: RealSplits, cfg: EvalConfig, cache_dir: Optional[str],
                       log: Callable[[str], None]):
    from specgan_jax.evaluation import features

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
        self.held_ratio = _ratio(self.held_nn, self.held_self)
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
    def evaluate(self, gen: np.ndarray) -> Evaluation:
        """gen [N, F, T] normalised generated spectrograms -> Evaluation."""
        gen = np.asarray(gen, np.float32)
        if gen.ndim != 3 or gen.shape[1:] != self.real.held.shape[1:]:
            raise EvaluateError(f"generated spectrograms have shape {gen.shape[1:]}; the real "
                                f"ones {self.real.held.shape[1:]}")
        if len(gen) < 2:
            raise EvaluateError("evaluation needs at least 2 generated spectrograms")
        cfg, real = self.cfg, self.real
        gen_f, gen_p = self._features(gen)
        out: dict = {}
        out["fd"] = {"generated": M.frechet_distance(gen_f, self.held_f),
                     "real_baseline": self.baseline["fd"]}
        kg, kb = self._kid(gen_f, self.held_f), self.baseline["kid"]
        out["kid"] = {"generated": kg.mean, "real_baseline": kb.mean,
                      "generated_std": kg.std, "real_baseline_std": kb.std,
                      "subset_size": kg.subset_size, "n_subsets": kg.n_subsets}
        nd = M.ndb_from_bins(self.clusters.labels, M.assign(gen, self.clusters.centroids),
                             self.k, cfg.ndb_alpha)
        nb = self.baseline["ndb"]
        out["ndb"] = {"generated": nd.count, "real_baseline": nb.count, "k": self.k,
                      "generated_fraction": nd.fraction, "real_baseline_fraction": nb.fraction,
                      "alpha": cfg.ndb_alpha}

        # Per-frequency curves, in the data's units.
        g_mean, g_std = self.to_units(*M.frequency_curves(gen))
        r_mean, r_std = self.to_units(*self.ref_curves)
        h_mean, h_std = self.to_units(*self.held_curves)
        units = self.units()
        out["mean_rms"] = {"generated": M.rms(g_mean - h_mean),
                           "real_baseline": M.rms(r_mean - h_mean), "units": units,
                           "error_curve_generated": (g_mean - h_mean).tolist(),
                           "error_curve_real_baseline": (r_mean - h_mean).tolist()}
        out["std_rms"] = {"generated": M.rms(g_std - h_std),
                          "real_baseline": M.rms(r_std - h_std), "units": units,
                          "error_curve_generated": (g_std - h_std).tolist(),
                          "error_curve_real_baseline": (r_std - h_std).tolist()}

        # Memorisation and diversity, in normalised pixel space.
        g_nn = M.nn_distances(gen, real.ref).distance
        g_ratio = _ratio(g_nn, M.nn_distances(gen, real.held).distance)
        g_self = M.nn_distances(gen, gen, exclude_self=True).distance
        nn_units = "RMS difference per time-frequency bin, normalised units (1 = 3 std)"
        out["nn_train"] = {"generated": float(np.median(g_nn)),
                           "real_baseline": float(np.median(self.held_nn)),
                           "generated_mean": float(g_nn.mean()),
                           "real_baseline_mean": float(self.held_nn.mean()),
                           "generated_min": float(g_nn.min()),
                           "real_baseline_min": float(self.held_nn.min()), "units": nn_units}
        out["memorization"] = {
            "generated": float((g_ratio < self.ratio_threshold).mean()),
            "real_baseline": float((self.held_ratio < self.ratio_threshold).mean()),
            "ratio_threshold": self.ratio_threshold,
            "generated_median_ratio": float(np.median(g_ratio)),
            "real_baseline_median_ratio": float(np.median(self.held_ratio)),
            "ratio": "d(x, nearest reference) / d(x, nearest held-out); for held-out x, the "
                     "nearest other held-out; threshold: its "
                     f"{MEMORIZATION_QUANTILE:g}th percentile over the held-out split"}
        out["nn_self"] = {"generated": float(np.median(g_self)),
                          "real_baseline": float(np.median(self.held_self)), "units": nn_units}

        arrays = {"gen_mean": g_mean, "gen_std": g_std, "ref_mean": r_mean, "ref_std": r_std,
                  "held_mean": h_mean, "held_std": h_std, "gen_nn": g_nn,
                  "held_nn": self.held_nn, "gen_self": g_self, "held_self": self.held_self,
                  "gen_ratio": g_ratio, "held_ratio": self.held_ratio,
                  "ndb_ref": nd.train_proportions, "ndb_gen": nd.test_proportions,
                  "ndb_held": nb.test_proportions, "ndb_different": nd.different}
        if gen_p is not None:
            c = len(real.class_names)
            names = real.class_names
            true_h = M.class_histogram(real.held_labels, c)
            pred_g = M.class_histogram(gen_p.argmax(1), c)
            pred_h = M.class_histogram(self.held_p.argmax(1), c)
            out["inception_score"] = {"generated": M.inception_score(gen_p),
                                      "real_baseline": M.inception_score(self.held_p),
                                      "real_reference": M.inception_score(self.ref_p),
                                      "max": c}
            out["class_tv"] = {
                "generated": M.total_variation(pred_g, true_h),
                "real_baseline": M.total_variation(pred_h, true_h),
                "generated_histogram": dict(zip(names, pred_g.tolist())),
                "real_baseline_histogram": dict(zip(names, pred_h.tolist())),
                "real_labels_histogram": dict(zip(names, true_h.tolist()))}
            arrays.update(class_names=names, pred_gen=pred_g, pred_held=pred_h, true_held=true_h)
        return Evaluation(metrics=out, arrays=arrays)

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


COMPARISONS = {
    "fd": "Fréchet distance of features: generated vs held-out; baseline: reference vs held-out",
    "kid": "KID (unbiased MMD², cubic polynomial kernel, mean over subsets): generated vs "
           "held-out; baseline: reference vs held-out",
    "ndb": "bins (k-means of the reference split) whose proportion differs (two-proportion "
           "z-test): generated vs reference; baseline: held-out vs reference",
    "mean_rms": "RMS over frequency of the per-frequency mean error: generated - held-out; "
                "baseline: reference - held-out",
    "std_rms": "RMS over frequency of the per-frequency std error: generated - held-out; "
               "baseline: reference - held-out",
    "nn_train": "median distance to the nearest reference ('training') spectrogram: generated; "
                "baseline: held-out (|D|train; smooth samples score low without copying: see "
                "memorization)",
    "memorization": "fraction whose NN distance ratio d(x, reference) / d(x, held-out) is below "
                    f"the {MEMORIZATION_QUANTILE:g}th percentile of the held-out split's ratios: "
                    "generated; baseline: held-out (about 5% by construction)",

    "nn_self": "median distance to the nearest other spectrogram of the same set (diversity, "
               "|D|self): generated; baseline: held-out",
    "inception_score": "exp(E KL(p(y|x) || p(y))) of the classifier: generated; baseline: "
                       "held-out",
    "class_tv": "total variation between predicted class proportions and the held-out labels: "
                "generated; baseline: the classifier's predictions on held-out",
}


# ----------------------------------------------------------------------------------------------
# Report PNG


def save_report(path: str, ev: Evaluation, real: RealSplits, gen: np.ndarray, moments,
                title: str, notes: tuple = ()) -> str:
    """One PNG: real vs generated grids (data units), per-frequency mean/std curves, NN
    distance and memorisation-ratio histograms, NDB bin proportions, class distribution, and
    the metric table followed by `notes` (one line each)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from specgan_jax.run import preview
    from specgan_jax.data.normalize import denormalize

    a = ev.arrays
    n = min(REPORT_SAMPLES, len(real.held), len(gen))
    held_idx = _round_robin(real.held_labels, n)  # every class shown, not the first one only
    reals = denormalize(real.held[held_idx], moments)  # [n, F, T] input units
    fakes = denormalize(gen[:n], moments)
    vmin, vmax = preview.color_range(reals)
    fig = Figure(figsize=(14, 22), dpi=80)
    FigureCanvasAgg(fig)
    outer = fig.add_gridspec(5, 2, height_ratios=[1.4, 1, 1, 1, 0.8], hspace=0.38, wspace=0.2,
                             left=0.06, right=0.965, top=0.955, bottom=0.02)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    im = None
    for side, (imgs, name) in enumerate(((reals, "real (held-out)"), (fakes, "generated"))):
        sub = outer[0, side].subgridspec(rows, cols, wspace=0.04, hspace=0.04)
        for i in range(rows * cols):
            ax = fig.add_subplot(sub[i // cols, i % cols])
            ax.set_xticks([])
            ax.set_yticks([])
            if i < n:
                im = ax.imshow(imgs[i], origin="lower", aspect="auto", cmap="magma", vmin=vmin,
                               vmax=vmax, interpolation="nearest")
            else:
                ax.axis("off")
            if i == 0:
                ax.set_title(f"{name}: {n} of {len(real.held) if side == 0 else len(gen)} "
                             "(frequency up, time right)", fontsize=10, loc="left")
    if im is not None:
        cax = fig.add_axes([0.972, 0.8, 0.008, 0.13])
        cb = fig.colorbar(im, cax=cax)
        cb.ax.tick_params(labelsize=7)
        cb.set_label("input units", fontsize=7)

    f = np.arange(len(a["gen_mean"]))
    unit = "log units" if moments.log_transform else "input units"
    for side, stat in enumerate(("mean", "std")):
        ax = fig.add_subplot(outer[1, side])
        ax.plot(f, a[f"ref_{stat}"], color="0.6", lw=1, label="real reference")
        ax.plot(f, a[f"held_{stat}"], color="k", lw=1.3, label="real held-out")
        ax.plot(f, a[f"gen_{stat}"], color="tab:red", lw=1.3, label="generated")
        v = ev.metrics[f"{stat}_rms"]
        ax.set_title(f"per-frequency {stat} ({unit}); RMS error vs held-out: generated "
                     f"{v['generated']:.3g}, real reference {v['real_baseline']:.3g}", fontsize=9)
        ax.set_xlabel("frequency bin (CSV row)", fontsize=8)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)

    ax = fig.add_subplot(outer[2, 0])
    hi = max(a["gen_nn"].max(), a["held_nn"].max(), a["gen_self"].max(), a["held_self"].max())
    bins = np.linspace(0, hi * 1.05, 40)
    ax.hist(a["held_nn"], bins, alpha=0.5, color="k", label="held-out → reference")
    ax.hist(a["gen_nn"], bins, alpha=0.5, color="tab:red", label="generated → reference")
    ax.hist(a["held_self"], bins, histtype="step", color="k", ls="--",
            label="held-out → other held-out (self)")
    ax.hist(a["gen_self"], bins, histtype="step", color="tab:red", ls="--",
            label="generated → other generated (self)")
    ax.set_title("nearest-neighbour RMS distance (normalised units)", fontsize=9)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)

    ax = fig.add_subplot(outer[2, 1])
    finite = np.concatenate([a["gen_ratio"], a["held_ratio"]])
    finite = finite[np.isfinite(finite)]
    rb = np.linspace(0, max(2.0, float(finite.max()) * 1.05 if len(finite) else 2.0), 40)
    ax.hist(np.minimum(a["held_ratio"], rb[-1]), rb, alpha=0.5, color="k", label="held-out")
    ax.hist(np.minimum(a["gen_ratio"], rb[-1]), rb, alpha=0.5, color="tab:red",
            label="generated")
    mem = ev.metrics["memorization"]
    ax.axvline(mem["ratio_threshold"], color="tab:blue", lw=1,
               label=f"threshold ({MEMORIZATION_QUANTILE:g}th percentile of held-out)")
    ax.set_title(f"memorisation: d(x, nearest reference) / d(x, nearest held-out)\nbelow the "
                 f"threshold: generated {mem['generated']:.1%}, held-out "
                 f"{mem['real_baseline']:.1%}", fontsize=9)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)

    ax = fig.add_subplot(outer[3, 0])
    k = len(a["ndb_ref"])
    x = np.arange(k)
    ax.bar(x - 0.27, a["ndb_ref"], 0.27, color="0.6", label="reference")
    ax.bar(x, a["ndb_held"], 0.27, color="k", label="held-out")
    ax.bar(x + 0.27, a["ndb_gen"], 0.27, color="tab:red", label="generated")
    for j in np.flatnonzero(a["ndb_different"]):
        ax.text(j + 0.27, a["ndb_gen"][j], "*", ha="center", va="bottom", color="tab:red")
    nd = ev.metrics["ndb"]
    ax.set_title(f"NDB bins (k-means of the reference split): {nd['generated']}/{k} differ "
                 f"(*), real baseline {nd['real_baseline']}/{k}", fontsize=9)
    ax.set_xlabel("bin", fontsize=8)
    if k <= 30:
        ax.set_xticks(x)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)

    ax = fig.add_subplot(outer[3, 1])
    if "class_names" in a:
        c = len(a["class_names"])
        x = np.arange(c)
        ax.bar(x - 0.27, a["true_held"], 0.27, color="0.6", label="held-out labels")
        ax.bar(x, a["pred_held"], 0.27, color="k", label="held-out, predicted")
        ax.bar(x + 0.27, a["pred_gen"], 0.27, color="tab:red", label="generated, predicted")
        ax.set_xticks(x, a["class_names"], fontsize=7, rotation=30 if c > 6 else 0)
        ax.set_title("class distribution (classifier)", fontsize=9)
        ax.legend(fontsize=7)
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, "no classes: random convolutional features\n(no class distribution)",
                ha="center", va="center", fontsize=9)
    ax.tick_params(labelsize=7)

    ax = fig.add_subplot(outer[4, :])
    ax.axis("off")
    lines = [f"{'metric':<16}{'generated':>12}{'real baseline':>15}"]
    for key, v in ev.metrics.items():
        lines.append(f"{key:<16}{_fmt(v['generated']):>12}{_fmt(v['real_baseline']):>15}")
    ax.text(0.0, 1.0, "\n".join(lines), family="monospace", fontsize=9, va="top")
    ax.text(0.36, 1.0, "\n".join(textwrap.fill(t, 95) for t in notes), fontsize=8, va="top")
    fig.suptitle(title, fontsize=11)
    return atomic.save_figure(fig, path)


def _round_robin(labels: np.ndarray, n: int) -> np.ndarray:
    """n indices taking one sample of each class in turn (class order, then index order)."""
    labels = np.asarray(labels)
    rank = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[idx] = np.arange(len(idx))
    return np.lexsort((labels, rank))[:n]


def _fmt(v) -> str:
    return f"{v:d}" if isinstance(v, (int, np.integer)) else f"{v:.4g}"


# ----------------------------------------------------------------------------------------------
# A run directory: generated samples, eval.json


def _load_run_basics(run_dir: str):
    from specgan_jax.data.moments import Moments
    from specgan_jax.training.loop import load_run_config

    if not os.path.isdir(run_dir):
        raise EvaluateError(f"run directory {run_dir} does not exist")
    for name in ("config.json", "moments.npz"):
        if not os.path.exists(os.path.join(run_dir, name)):
            raise EvaluateError(f"{run_dir} is not a run directory: {name} is missing "
                                "(scripts/train.py writes it)")
    return load_run_config(run_dir), Moments.load(os.path.join(run_dir, "moments.npz"))


def fakes_from_folder(config, moments, fakes: str, n: int) -> np.ndarray:
    """Generated CSVs (the run's data format) -> normalised [n, F, T] (the first n files in
    name order; n = 0: all)."""
    from specgan_jax.data import csv as data_lib

    dc = dataclasses.replace(_data_config_for(config, fakes), use_cache=False)
    ds = data_lib.load_dataset(dc, progress=False)
    _check_shape(ds.x, moments, fakes)
    if n > len(ds.x):
        raise EvaluateError(f"--n {n} but {fakes} holds {len(ds.x)} spectrograms")
    idx = np.arange(n or len(ds.x))
    return _normalize_rows(ds.x, idx, moments)


def evaluate_run(run_dir: str, real: str, cfg: EvalConfig, *, out: Optional[str] = None,
                 step: Optional[int] = None, fakes: Optional[str] = None,
                 checkpoint_dir: str = "checkpoints", progress: bool = False,
                 log: Callable[[str], None] = _print) -> dict:
    """Evaluate a run's generator (or a folder of its generated CSVs) against real data.

    Writes <out>/eval.json and <out>/eval_report.png (out default: <run_dir>/eval) and returns
    the eval.json content. Raises EvaluateError / data.DataError / cli.ConfigError on bad input.
    """
    from specgan_jax.cli.generate import GenerateError, LoadedRun, latents

    t0 = time.monotonic()
    config, moments = _load_run_basics(run_dir)
    run = None
    if fakes is None:  # fail on a missing checkpoint before the slow real-data work
        try:
            run = LoadedRun(run_dir, step=step, checkpoint_dir=checkpoint_dir)
        except GenerateError as e:
            raise EvaluateError(str(e)) from None
    if real == "demo":
        splits = real_from_demo(config, moments, cfg)
    else:
        splits = real_from_folder(config, moments, real, cfg, progress)
    log(f"real: {len(splits.ref)} reference + {len(splits.held)} held-out spectrograms, "
        f"{len(splits.class_names)} class(es) from {splits.source}")
    n = cfg.n or len(splits.held)
    if fakes is not None:
        gen = fakes_from_folder(config, moments, fakes, cfg.n)
        gen_source, gen_step = os.path.abspath(fakes), None
    else:
        z = latents(cfg.seed, np.arange(n), config.model.latent_dim, config.loss.latent_dist)
        gen = run.generate_normalized(z)
        gen_source = (f"{os.path.join(os.path.abspath(run_dir), checkpoint_dir)} step "
                      f"{run.step}, latents of seed {cfg.seed}, samples 0..{n - 1}")
        gen_step = int(run.step)
    log(f"generated: {len(gen)} spectrograms from {gen_source}")
    evaluator = Evaluator(splits, cfg, moments, cache_dir=os.path.join(run_dir, "eval"), log=log)
    ev = evaluator.evaluate(gen)
    meta = evaluator.meta() | {
        "n_generated": int(len(gen)), "generated_source": gen_source, "step": gen_step,
        "run_dir": os.path.abspath(run_dir), "comparisons": {k: COMPARISONS[k] for k in ev.metrics},
        "eval_config": dataclasses.asdict(cfg),
        "time_s": round(time.monotonic() - t0, 1)}
    if len(gen) != len(splits.held):
        meta["size_note"] = (f"{len(gen)} generated vs {len(splits.held)} held-out: the "
                             "Fréchet distance's small-sample bias differs from the baseline's")
    result = {**ev.metrics, "meta": meta}
    out = out or os.path.join(run_dir, "eval")
    json_path = os.path.join(out, "eval.json")
    atomic.write_text(json_path, json.dumps(result, indent=2) + "\n")
    title = (f"{os.path.basename(os.path.abspath(run_dir))}: "
             + (f"step {gen_step}" if gen_step is not None else f"fakes {fakes}")
             + f" | features: {evaluator.space.kind}")
    notes = [f"features: {meta['feature_space']}" + (
                 f" (classifier held-out accuracy {meta['classifier_accuracy']:.3f})"
                 if "classifier_accuracy" in meta else ""),
             f"real: {splits.source}", f"relation to training: {splits.overlap}",
             f"generated: {gen_source}"]
    notes += [meta[k] for k in ("classifier_warning", "size_note") if k in meta]
    save_report(os.path.join(out, "eval_report.png"), ev, splits, gen, moments, title, notes)
    return result


def summary_table(result: dict) -> str:
    lines = [f"{'metric':<16}{'generated':>14}{'real baseline':>16}"]
    for key, v in result.items():
        if key != "meta":
            lines.append(f"{key:<16}{_fmt(v['generated']):>14}{_fmt(v['real_baseline']):>16}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# During training


class PeriodicEval:
    """Evaluation every train.eval_every steps inside train_and_evaluate, and the best
    checkpoint by train.eval_metric in <workdir>/checkpoints_best_<metric>/ (keep 1).

    The real side is the training data, split into reference / held-out halves with
    train.seed; generated samples use fixed latents (samples 0..n-1 of latent seed
    train.seed, as scripts/generate.py --seed), so the curve over steps is not sampling noise.
    No PRNG key or state of training is touched: a run trains identically with or without it.

    The best checkpoint's `meta` holds {"eval_metric", "score", "step"}; a resumed run reads it
    back. Checkpoints of steps after the one the run resumes from belong to the abandoned part
    of the old trajectory (metrics.jsonl is truncated there too) and are removed, so a resumed
    run keeps the same best checkpoint as an uninterrupted one.
    """

    def __init__(self, config, dataset, moments, workdir: str, gen_fn, resumed_step: int = 0,
                 log: Callable[[str], None] = _print):
        from specgan_jax.run import checkpoint as ckpt_lib
        from specgan_jax.cli.generate import latents

        tc = config.train
        self.metric, self.log, self.gen_fn = tc.eval_metric, log, gen_fn
        self.cfg = EvalConfig(seed=tc.seed, n=tc.eval_n)
        splits = real_from_arrays(dataset.x, dataset.labels, dataset.class_names, moments,
                                  self.cfg, source="training data",
                                  overlap="both splits are the run's training data")
        if self.metric == "inception_score" and len(splits.class_names) < 2:
            raise cli.ConfigError("train.eval_metric inception_score needs data with more than "
                                  "one class; choose fd, kid, ndb, mean_rms or std_rms")
        t0 = time.monotonic()
        self.evaluator = Evaluator(splits, self.cfg, moments,
                                   cache_dir=os.path.join(workdir, "eval"), log=log)
        meta = self.evaluator.meta()
        log(f"eval: every {tc.eval_every} steps, {meta['feature_space']} features"
            + (f" (held-out accuracy {meta['classifier_accuracy']:.3f})"
               if "classifier_accuracy" in meta else "")
            + f", best checkpoint by {self.metric}; set up in {time.monotonic() - t0:.1f} s")
        if "classifier_warning" in meta:
            log("eval: " + meta["classifier_warning"])
        n = tc.eval_n or len(splits.held)
        self.z = np.asarray(latents(tc.seed, np.arange(n), config.model.latent_dim,
                                    config.loss.latent_dist))
        self.batch = min(n, 64)  # fixed generator batch (last one padded): one compile
        # keep=1: saves happen only on improvement, so the newest step is the best one. Saved
        # synchronously: the state is donated to the next training chunk right after.
        self.best = ckpt_lib.Checkpointer(os.path.join(workdir, f"checkpoints_best_{self.metric}"),
                                          keep=1, every_steps=1 << 62, use_async=False)
        self.best_score, self.best_step = None, None
        scored = []
        for s in self.best.all_steps():
            if s > resumed_step:
                self.best.delete(s)
                continue
            m = self.best.read_meta(s)
            scored.append((m["score"], s))
        if scored:
            # The best score; among equal ones the earliest step, which is the one an
            # uninterrupted run keeps (only a strictly better score replaces the best).
            sign = 1.0 if LOWER_IS_BETTER[self.metric] else -1.0
            self.best_score, self.best_step = min(scored, key=lambda t: (sign * t[0], t[1]))
            for _, s in scored:  # a crash between orbax's save and its cleanup left two
                if s != self.best_step:
                    self.best.delete(s)

    def _generate(self, state) -> np.ndarray:
        out = []
        for s in range(0, len(self.z), self.batch):
            z = self.z[s:s + self.batch]
            pad = self.batch - len(z)
            if pad:
                z = np.concatenate([z, np.zeros((pad, z.shape[1]), z.dtype)])
            y = np.asarray(self.gen_fn(state.g_params, state.g_batch_stats, z))[..., 0]
            out.append(y[:self.batch - pad])
        return np.concatenate(out)

    def __call__(self, state, step: int) -> dict:
        """Evaluate the generator of `state` at `step`, keep it if best -> metrics row."""
        t0 = time.monotonic()
        ev = self.evaluator.evaluate(self._generate(state))
        score = float(ev.metrics[self.metric]["generated"])
        lower = LOWER_IS_BETTER[self.metric]
        if self.best_score is None or (score < self.best_score if lower
                                       else score > self.best_score):
            self.best.save(step, state, {"eval_metric": self.metric, "score": score,
                                         "step": int(step)})
            self.best_score, self.best_step = score, int(step)
        row = ev.scalars()
        row[f"eval/best_{self.metric}"] = self.best_score
        row["eval/best_step"] = self.best_step
        m = ev.metrics
        self.log(f"eval step {step}: fd {m['fd']['generated']:.4g} (real "
                 f"{m['fd']['real_baseline']:.4g}) | kid {m['kid']['generated']:.4g} (real "
                 f"{m['kid']['real_baseline']:.4g}) | ndb {m['ndb']['generated']}/"
                 f"{m['ndb']['k']} (real {m['ndb']['real_baseline']}) | best {self.metric} "
                 f"{self.best_score:.4g} at step {self.best_step} "
                 f"({time.monotonic() - t0:.1f} s)")
        return row

    def close(self) -> None:
        self.best.close()


# ----------------------------------------------------------------------------------------------
# CLI


@dataclasses.dataclass(frozen=True)
class _EvalFlags:
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)


EPILOG = """\
examples:
  # The demo run (scripts/train.py with no arguments) against its own demo data: the
  # reference split is its training set, the held-out split new demo spectrograms.
  python scripts/evaluate.py runs/demo-1a2b3c4d --real demo

  # A run on your data, against a held-out folder of real CSVs (same format as training):
  python scripts/evaluate.py runs/mydata --real data/test_spectrograms --out eval_mydata

  # Generated CSVs instead of a checkpoint (e.g. from scripts/generate.py), 500 of them:
  python scripts/evaluate.py runs/mydata --real data/test --fakes samples --n 500

  # The best checkpoint kept during training (--train.eval_every), at a fixed seed:
  python scripts/evaluate.py runs/mydata --real data/test --checkpoint-dir checkpoints_best_fd

Writes OUT/eval.json (one key per metric, each {"generated": ..., "real_baseline": ...}, and
"meta") and OUT/eval_report.png. Every metric's baseline compares real with real, so a value
has a scale: generated values near the baseline are as close as two real samples.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="specgan-evaluate",
        description="Evaluate a SpecGAN run: generated vs held-out real spectrograms, with a "
                    "real-vs-real baseline for every metric.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by scripts/train.py")
    p.add_argument("--real", required=True, metavar="DIR",
                   help="real spectrograms: a CSV folder (or class folders, or a file list) read "
                        "with the run's data options; 'demo' for a demo run")
    p.add_argument("--out", default=None, help="output folder [default: RUN_DIR/eval]")
    p.add_argument("--step", type=int, default=None,
                   help="checkpoint step to evaluate [default: the latest]")
    p.add_argument("--checkpoint-dir", default="checkpoints", metavar="NAME",
                   help="checkpoint folder inside RUN_DIR [default: checkpoints]")
    p.add_argument("--fakes", default=None, metavar="DIR",
                   help="evaluate this folder of generated CSVs instead of a checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    cli.add_config_flags(p, _EvalFlags, {"n": "eval.n", "seed": "eval.seed"})
    return p


def main(argv: Optional[list[str]] = None) -> int:
    """CLI entry point: 0 on success, 1 on a user/data error, 2 on bad options."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = cli.config_from_dict(_EvalFlags, cli.overrides_from_args(args, _EvalFlags),
                                   source="options").eval
    except cli.ConfigError as e:
        parser.error(str(e))
    if args.fakes is not None and (args.step is not None or args.checkpoint_dir != "checkpoints"):
        parser.error("--step and --checkpoint-dir choose a checkpoint; with --fakes none is used")
    from specgan_jax.data.csv import DataError

    t0 = time.monotonic()
    try:
        result = evaluate_run(args.run_dir, args.real, cfg, out=args.out, step=args.step,
                              fakes=args.fakes, checkpoint_dir=args.checkpoint_dir,
                              progress=not args.no_progress)
    except (EvaluateError, DataError, cli.ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return cli.finish(1, argv)
    meta = result["meta"]
    print(summary_table(result))
    print(f"feature space: {meta['feature_space']}"
          + (f" (classifier held-out accuracy {meta['classifier_accuracy']:.3f})"
             if "classifier_accuracy" in meta else ""))
    for key in ("classifier_warning", "size_note"):
        if key in meta:
            print(f"note: {meta[key]}")
    print(f"real data: {meta['real_overlap']}")
    out = args.out or os.path.join(args.run_dir, "eval")
    print(f"wrote {os.path.join(out, 'eval.json')} and {os.path.join(out, 'eval_report.png')} "
          f"in {time.monotonic() - t0:.1f} s")
    return cli.finish(0, argv)


if __name__ == "__main__":
    main()
