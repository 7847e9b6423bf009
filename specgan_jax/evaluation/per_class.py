"""Per-class evaluation of a class-conditional generator: generated samples carry the class they
were asked for, and each class is compared with the real examples of that class.

  key             generated                              real_baseline
  intra_fd        mean over classes k of FD(fakes of k,  mean over k of FD(held-out real k,
                  reference real k)                      reference real k)
  intra_kid       the same with KID                      the same with KID
  class_accuracy  mean over k of the fraction of fakes   the same for the held-out reals (their
                  of k the classifier assigns to k       true class)

Pooled metrics (evaluator.py) compare the mixture of all classes, so a generator that makes
the right classes in the wrong proportions, or gives class k the samples of class j, can score
well there; these cannot (tests/test_conditional_eval.py constructs such a generator).

Each entry has "per_class": {name: {...}} with the per-class values and sizes. The Fréchet
distance of small sets is biased upward (its bias grows like D/N for D features and N samples),
and per class N is a fraction of the pooled N: compare a class's generated value with its
real_baseline, computed from sets of the same sizes when eval.n = 0 (fakes of class k: as
many as held-out reals of k). A class with fewer than MIN_PER_SET examples in any of the three
sets is left out of intra_fd / intra_kid ("classes_left_out").
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from specgan_jax.errors import EvaluateError
from specgan_jax.evaluation import metrics as M

MIN_PER_SET = 2  # FD needs a covariance (2 samples), KID's unbiased MMD² 2 per set


def check_labels(labels, n: int, n_classes: int) -> np.ndarray:
    """Generated samples' intended classes [n] (indices into the real data's class names)."""
    if n_classes < 2:
        raise EvaluateError("per-class evaluation needs real data with more than one class "
                            "(one subfolder per class)")
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise EvaluateError(f"class labels of the generated samples: expected {n} integers, "
                            f"got shape {labels.shape} ({labels.dtype})")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise EvaluateError(f"class labels of the generated samples must be in [0, "
                            f"{n_classes}); got {labels.min()}..{labels.max()}")
    return labels.astype(np.int64)


class PerClass:
    """The real side of the per-class comparison (features split by class, the per-class
    real-vs-real baselines), computed once; `evaluate` compares a labelled generated set."""

    def __init__(self, ev):
        """ev: the Evaluator whose feature space, scaled features and splits are used."""
        self.ev, real = ev, ev.real
        self.names = list(real.class_names)
        self.ref = [ev.ref_f[real.ref_labels == k] for k in range(len(self.names))]
        self.held = [ev.held_f[real.held_labels == k] for k in range(len(self.names))]
        self.base_fd, self.base_kid = {}, {}
        for k in range(len(self.names)):
            if min(len(self.ref[k]), len(self.held[k])) >= MIN_PER_SET:
                self.base_fd[k] = M.frechet_distance(self.held[k], self.ref[k])
                self.base_kid[k] = ev._kid(self.held[k], self.ref[k])
        self.base_acc: Optional[dict] = None
        if ev.held_p is not None:
            pred = ev.held_p.argmax(1)
            self.base_acc = {k: float((pred[real.held_labels == k] == k).mean())
                             for k in range(len(self.names)) if (real.held_labels == k).any()}

    def evaluate(self, gen_f: np.ndarray, gen_p: Optional[np.ndarray], labels: np.ndarray
                 ) -> tuple[dict, dict]:
        """Scaled features (and class probabilities) of the generated set, its labels ->
        (eval.json entries, arrays for the report)."""
        fd, kid, left_out = {}, {}, []
        present = [k for k in range(len(self.names)) if (labels == k).any()]
        for k in present:
            g = gen_f[labels == k]
            if k not in self.base_fd or len(g) < MIN_PER_SET:
                left_out.append(self.names[k])
                continue
            sizes = {"n_generated": int(len(g)), "n_real_ref": int(len(self.ref[k])),
                     "n_real_heldout": int(len(self.held[k]))}
            fd[k] = {"generated": M.frechet_distance(g, self.ref[k]),
                     "real_baseline": self.base_fd[k], **sizes}
            kg, kb = self.ev._kid(g, self.ref[k]), self.base_kid[k]
            kid[k] = {"generated": kg.mean, "real_baseline": kb.mean,
                      "generated_std": kg.std, "real_baseline_std": kb.std,
                      "subset_size": kg.subset_size, **sizes}
        out, arrays = {}, {}
        if fd:
            for key, per in (("intra_fd", fd), ("intra_kid", kid)):
                out[key] = {"generated": float(np.mean([v["generated"] for v in per.values()])),
                            "real_baseline": float(np.mean([v["real_baseline"]
                                                            for v in per.values()])),
                            "per_class": {self.names[k]: v for k, v in per.items()}}
                if left_out:
                    out[key]["classes_left_out"] = left_out
            arrays.update(intra_names=[self.names[k] for k in fd],
                          intra_fd_gen=np.array([v["generated"] for v in fd.values()]),
                          intra_fd_base=np.array([v["real_baseline"] for v in fd.values()]))
        if gen_p is not None and self.base_acc is not None:
            pred = gen_p.argmax(1)
            acc = {k: float((pred[labels == k] == k).mean()) for k in present}
            base = {k: self.base_acc.get(k, float("nan")) for k in present}
            out["class_accuracy"] = {
                "generated": float(np.mean(list(acc.values()))),
                "real_baseline": float(np.nanmean(list(base.values()))),
                "chance": 1.0 / len(self.names),
                "per_class": {self.names[k]: {"generated": acc[k], "real_baseline": base[k],
                                              "n_generated": int((labels == k).sum())}
                              for k in present}}
            arrays.update(acc_names=[self.names[k] for k in present],
                          acc_gen=np.array([acc[k] for k in present]),
                          acc_base=np.array([base[k] for k in present]))
        return out, arrays


COMPARISONS = {
    "intra_fd": "mean over classes of the Fréchet distance of features: generated samples of "
                "class k vs reference reals of class k; baseline: held-out reals of class k vs "
                "reference reals of class k",
    "intra_kid": "mean over classes of KID: generated samples of class k vs reference reals "
                 "of class k; baseline: held-out reals of class k vs reference reals of class k",
    "class_accuracy": "mean over classes of the fraction of generated samples of class k that "
                      "the classifier assigns to k; baseline: the same for held-out reals",
}
LOWER_IS_BETTER = {"intra_fd": True, "intra_kid": True, "class_accuracy": False}


def size_note(sizes: dict) -> str:
    """meta's note on per-class sample sizes {class: n_generated}."""
    return (f"per-class metrics use {min(sizes.values())}..{max(sizes.values())} generated "
            "samples per class; the Fréchet distance of sets this small is biased upward, so "
            "compare each class with its real_baseline (sets of the same sizes when eval.n = 0)")
