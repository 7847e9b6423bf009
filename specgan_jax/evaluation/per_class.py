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
# Below these a class's number is computed but marked "too_few_real" (eval.json, the report,
# the CLI): a covariance of n <= D samples of D features is singular, so the class's FD
# (and, judged by the same sets, its KID) is mostly small-sample bias; a class accuracy of
# fewer than MIN_HELD_FOR_ACCURACY held-out reals has a binomial std >= 0.16 at p = 0.5.
MIN_HELD_FOR_ACCURACY = 10
# The metrics that leave out a class with fewer than MIN_PER_SET examples in a set.
MIN_PER_SET_METRICS = ("intra_fd", "intra_kid")


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
    real-vs-real baselines), computed once; `intra` and `class_accuracy` compare a labelled
    generated set."""

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
        self.n_real = {k: (len(self.ref[k]), len(self.held[k])) for k in range(len(self.names))}
        self.too_few_fd = {k for k, (r, h) in self.n_real.items() if min(r, h) <= ev.space.dim}
        self.too_few_acc = {k for k, (_, h) in self.n_real.items() if h < MIN_HELD_FOR_ACCURACY}
        self.base_acc: Optional[dict] = None
        if ev.held_p is not None:
            pred = ev.held_p.argmax(1)
            self.base_acc = {k: float((pred[real.held_labels == k] == k).mean())
                             for k in range(len(self.names)) if (real.held_labels == k).any()}

    def intra(self, g, key: str) -> Optional[dict]:
        """intra_fd or intra_kid of the labelled generated set g (evaluator.Generated)."""
        per, left_out = {}, []
        for k in [k for k in range(len(self.names)) if (g.labels == k).any()]:
            f = g.f[g.labels == k]
            if k not in self.base_fd or len(f) < MIN_PER_SET:
                left_out.append(self.names[k])
                continue
            sizes = {"n_generated": int(len(f)), "n_real_ref": int(len(self.ref[k])),
                     "n_real_heldout": int(len(self.held[k]))}
            if key == "intra_fd":
                per[k] = {"generated": M.frechet_distance(f, self.ref[k]),
                          "real_baseline": self.base_fd[k], **sizes}
            else:
                kg, kb = self.ev._kid(f, self.ref[k]), self.base_kid[k]
                per[k] = {"generated": kg.mean, "real_baseline": kb.mean,
                          "generated_std": kg.std, "real_baseline_std": kb.std,
                          "subset_size": kg.subset_size, **sizes}
        if not per:
            return None
        few = [k for k in per if k in self.too_few_fd]
        for k in few:
            per[k]["too_few_real"] = True
        out = {"generated": float(np.mean([v["generated"] for v in per.values()])),
               "real_baseline": float(np.mean([v["real_baseline"] for v in per.values()])),
               "per_class": {self.names[k]: v for k, v in per.items()}}
        if left_out:
            out["classes_left_out"] = left_out
        if few:
            out["classes_too_few_real"] = [self.names[k] for k in few]
            out["too_few_real_rule"] = (f"reference or held-out reals <= the feature dimension "
                                        f"{self.ev.space.dim}: a singular covariance")
        if key == "intra_fd":
            g.arrays.update(intra_names=[self._label(k, self.too_few_fd) for k in per],
                            intra_fd_gen=np.array([v["generated"] for v in per.values()]),
                            intra_fd_base=np.array([v["real_baseline"] for v in per.values()]))
        return out

    def class_accuracy(self, g) -> Optional[dict]:
        if g.p is None or self.base_acc is None:
            return None
        present = [k for k in range(len(self.names)) if (g.labels == k).any()]
        pred = g.p.argmax(1)
        acc = {k: float((pred[g.labels == k] == k).mean()) for k in present}
        base = {k: self.base_acc.get(k, float("nan")) for k in present}
        g.arrays.update(acc_names=[self._label(k, self.too_few_acc) for k in present],
                        acc_gen=np.array([acc[k] for k in present]),
                        acc_base=np.array([base[k] for k in present]))
        out = {"generated": float(np.mean(list(acc.values()))),
               "real_baseline": float(np.nanmean(list(base.values()))),
               "chance": 1.0 / len(self.names),
               "per_class": {self.names[k]: {"generated": acc[k], "real_baseline": base[k],
                                             "n_generated": int((g.labels == k).sum()),
                                             "n_real_heldout": self.n_real[k][1],
                                             **({"too_few_real": True}
                                                if k in self.too_few_acc else {})}
                             for k in present}}
        few = [self.names[k] for k in present if k in self.too_few_acc]
        if few:
            out["classes_too_few_real"] = few
            out["too_few_real_rule"] = (f"fewer than {MIN_HELD_FOR_ACCURACY} held-out reals: "
                                        "an accuracy's binomial std >= 0.16")
        return out

    def _label(self, k: int, too_few: set) -> str:
        """A class's name in the report, with its real counts when they are too few."""
        if k not in too_few:
            return self.names[k]
        r, h = self.n_real[k]
        return f"{self.names[k]}\n(n={r}+{h}: too few real)"


def _real_side(ev) -> PerClass:
    if ev._per_class is None:  # built by the first labelled evaluation
        ev._per_class = PerClass(ev)
    return ev._per_class


def intra_fd(ev, g):
    return _real_side(ev).intra(g, "intra_fd")


def intra_kid(ev, g):
    return _real_side(ev).intra(g, "intra_kid")


def class_accuracy(ev, g):
    return _real_side(ev).class_accuracy(g)


# Each takes the Evaluator and a labelled evaluator.Generated -> the eval.json entry or None.
COMPUTE = {f.__name__: f for f in (intra_fd, intra_kid, class_accuracy)}


def size_note(sizes: dict) -> str:
    """meta's note on per-class sample sizes {class: n_generated}."""
    return (f"per-class metrics use {min(sizes.values())}..{max(sizes.values())} generated "
            "samples per class; the Fréchet distance of sets this small is biased upward, so "
            "compare each class with its real_baseline (sets of the same sizes when eval.n = 0)")
