"""The evaluation metrics, by name: what each compares, which way is better, what it needs.

The single list of metric names. eval.json's keys and "meta.comparisons", the choices of
`train.eval_metric`, the direction the periodic evaluation's best checkpoint follows and the
report's table all come from METRICS; specgan_jax.evaluation maps each name to the function
that computes it (tests/test_eval_evaluator.py checks that both lists name the same metrics).
This module is part of the configuration layer, so it holds no computation.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

# A generated sample counts as memorised when its NN distance ratio d(x, ref) / d(x, held-out)
# is below this percentile of the held-out split's own ratios (so the baseline is ~5%).
MEMORIZATION_QUANTILE = 5.0


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """One metric of eval.json: {"generated": ..., "real_baseline": ..., more fields}."""

    name: str
    # The better direction; None: neither (e.g. nn_train: a low value may mean copies of the
    # training data or merely smooth samples). A selectable metric has one.
    lower_is_better: Optional[bool]
    # One line for eval.json's meta.comparisons: what is compared with what, and the baseline.
    text: str
    # What the metric needs besides generated and real spectrograms: "classifier" the
    # feature classifier (real data with more than one class), "labels" the generated
    # samples' intended classes (a class-conditional model, or --fakes in class folders).
    needs: Literal["", "classifier", "labels"] = ""
    selectable: bool = True  # may pick the best checkpoint (train.eval_metric)
    # Trains classifiers: the periodic evaluation computes it only when it is train.eval_metric.
    slow: bool = False


METRICS = (
    MetricSpec("fd", True, "Fréchet distance of features: generated vs held-out; baseline: "
                           "reference vs held-out"),
    MetricSpec("kid", True, "KID (unbiased MMD², cubic polynomial kernel, mean over subsets): "
                            "generated vs held-out; baseline: reference vs held-out"),
    MetricSpec("ndb", True, "bins (k-means of the reference split) whose proportion differs "
                            "(two-proportion z-test): generated vs reference; baseline: "
                            "held-out vs reference"),
    MetricSpec("mean_rms", True, "RMS over frequency of the per-frequency mean error: "
                                 "generated - held-out; baseline: reference - held-out"),
    MetricSpec("std_rms", True, "RMS over frequency of the per-frequency std error: "
                                "generated - held-out; baseline: reference - held-out"),
    MetricSpec("nn_train", None, "median distance to the nearest reference ('training') "
                                 "spectrogram: generated; baseline: held-out (|D|train; smooth "
                                 "samples score low without copying: see memorization)",
               selectable=False),
    MetricSpec("memorization", True, "fraction whose NN distance ratio d(x, reference) / d(x, "
                                     "held-out) is below the "
                                     f"{MEMORIZATION_QUANTILE:g}th percentile of the held-out "
                                     "split's ratios: generated; baseline: held-out (about 5% "
                                     "by construction)", selectable=False),
    MetricSpec("nn_self", None, "median distance to the nearest other spectrogram of the same "
                                 "set (diversity, |D|self): generated; baseline: held-out",
               selectable=False),
    # 0: like real; < 0 is smoother than real, so neither direction is better.
    MetricSpec("hf_excess", None, "ln of the mean fraction of 2-D spectral power at periods <= "
                                  "4 bins (checkerboard / stripe artefacts): generated vs "
                                  "reference; baseline: held-out vs reference (0: like real)",
               selectable=False),
    MetricSpec("inception_score", False, "exp(E KL(p(y|x) || p(y))) of the classifier: "
                                         "generated; baseline: held-out", needs="classifier"),
    MetricSpec("class_tv", True, "total variation between predicted class proportions and the "
                                 "held-out labels: generated; baseline: the classifier's "
                                 "predictions on held-out", needs="classifier",
               selectable=False),
    MetricSpec("intra_fd", True, "mean over classes of the Fréchet distance of features: "
                                 "generated samples of class k vs reference reals of class k; "
                                 "baseline: held-out reals of class k vs reference reals of "
                                 "class k", needs="labels"),
    MetricSpec("intra_kid", True, "mean over classes of KID: generated samples of class k vs "
                                  "reference reals of class k; baseline: held-out reals of "
                                  "class k vs reference reals of class k", needs="labels"),
    MetricSpec("class_accuracy", False, "mean over classes of the fraction of generated "
                                        "samples of class k that the classifier assigns to k; "
                                        "baseline: the same for held-out reals", needs="labels"),
    MetricSpec("tstr", False, "train-on-synthetic, test-on-real: held-out accuracy of a "
                              "classifier trained on the generated samples (mean over seeds); "
                              "baseline: trained on the reference reals (trtr)", needs="labels",
               slow=True),
    MetricSpec("aug_gain", False, "held-out accuracy of a classifier trained on the reference "
                                  "reals + the generated samples minus that of one trained on "
                                  "the reals alone (mean over seeds); baseline: 0 (adding "
                                  "nothing)", needs="labels", slow=True),
)
SPECS = {m.name: m for m in METRICS}
# The metrics that can pick the best checkpoint (train.eval_metric's choices).
EVAL_METRICS = tuple(m.name for m in METRICS if m.selectable)
