"""Does the generator help a classifier? Train-on-synthetic, test-on-real (TSTR; Esteban et
al. 2017, "Real-valued (Medical) Time Series Generation with Recurrent Conditional GANs") and
the gain of adding synthetic examples to the real training set, for labelled generated sets
(a class-conditional run, or --fakes in class folders).

The classifier is the feature classifier's network (specgan_jax.evaluation.features: the
small CNN with a frequency-coordinate channel), trained from scratch for eval.tstr_steps Adam
updates with each seed s in eval.seed + 0..eval.tstr_seeds-1, and always tested on the
held-out reals (never trained on):

  key       generated                               real_baseline
  tstr      accuracy when trained on the generated  trtr: accuracy when trained on the
            samples (their intended classes)        reference reals (train-on-real)
  aug_gain  accuracy when trained on the reference  0: adding nothing
            reals + the generated samples, minus
            trtr (with the same seed: paired)

Each value is the mean over the seeds; "generated_std" / "real_baseline_std" the spread over
them (std, ddof 0), "*_per_seed" each seed's value, "chance" the held-out split's majority-class
fraction. tstr near trtr: the samples carry as much of what tells the classes apart as the
reals do; near or below chance: they do not (or carry another class's traits). aug_gain
within its spread of 0: the samples add nothing the reals do not already give.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from specgan_jax.evaluation import features


def accuracies(x: np.ndarray, y: np.ndarray, n_classes: int, test_x: np.ndarray,
               test_y: np.ndarray, opts: features.ClassifierOptions, seeds) -> np.ndarray:
    """Held-out accuracy [len(seeds)] of a classifier trained on (x, y) with each seed."""
    out = []
    for seed in seeds:
        _, params = features.train_classifier(x, y, n_classes, opts, seed=int(seed))
        out.append(float((features.predict(params, test_x) == test_y).mean()))
    return np.asarray(out)


def _spread(v: np.ndarray) -> dict:
    return {"mean": float(v.mean()), "std": float(v.std()), "per_seed": v.tolist()}


class TSTR:
    """The real side (the train-on-real accuracies, one per seed), computed once; `tstr` and
    `aug_gain` train on a labelled generated set."""

    def __init__(self, ev):
        cfg, real = ev.cfg, ev.real
        self.real, self.n_classes = real, len(real.class_names)
        self.seeds = [cfg.seed + s for s in range(cfg.tstr_seeds)]
        self.n_per_class = cfg.tstr_n
        self.opts = features.ClassifierOptions(steps=cfg.tstr_steps,
                                               batch_size=cfg.classifier_batch_size,
                                               lr=cfg.classifier_lr)
        self.trtr = accuracies(real.ref, real.ref_labels, self.n_classes, real.held,
                               real.held_labels, self.opts, self.seeds)
        counts = np.bincount(real.held_labels, minlength=self.n_classes)
        self.chance = float(counts.max() / counts.sum())

    def _train_set(self, g) -> tuple[np.ndarray, np.ndarray]:
        """The generated samples trained on: the first tstr_n of each class (0: all)."""
        if not self.n_per_class:
            return g.x, g.labels
        keep = np.concatenate([np.flatnonzero(g.labels == k)[:self.n_per_class]
                               for k in range(self.n_classes)])
        keep.sort()
        return g.x[keep], g.labels[keep]

    def _common(self, n_gen: int) -> dict:
        return {"chance": self.chance, "seeds": list(self.seeds), "steps": self.opts.steps,
                "n_train_generated": int(n_gen), "n_train_real": int(len(self.real.ref)),
                "n_test": int(len(self.real.held))}

    def tstr(self, g) -> dict:
        x, y = self._train_set(g)
        acc = _spread(accuracies(x, y, self.n_classes, self.real.held, self.real.held_labels,
                                 self.opts, self.seeds))
        base = _spread(self.trtr)
        g.arrays.update(tstr=acc, trtr=base)
        return {"generated": acc["mean"], "real_baseline": base["mean"],
                "generated_std": acc["std"], "real_baseline_std": base["std"],
                "generated_per_seed": acc["per_seed"], "real_baseline_per_seed": base["per_seed"],
                **self._common(len(x))}

    def aug_gain(self, g) -> dict:
        x, y = self._train_set(g)
        real = self.real
        aug = accuracies(np.concatenate([real.ref, x]), np.concatenate([real.ref_labels, y]),
                         self.n_classes, real.held, real.held_labels, self.opts, self.seeds)
        gain = _spread(aug - self.trtr)
        g.arrays.update(aug=_spread(aug), trtr=_spread(self.trtr))
        return {"generated": gain["mean"], "real_baseline": 0.0,
                "generated_std": gain["std"], "generated_per_seed": gain["per_seed"],
                "augmented_accuracy": float(aug.mean()), "augmented_per_seed": aug.tolist(),
                "real_only_accuracy": float(self.trtr.mean()), **self._common(len(x))}


def _real_side(ev) -> Optional[TSTR]:
    if not ev.cfg.tstr_seeds:
        return None
    if "tstr" not in ev.real_cache:  # built by the first labelled evaluation
        ev.real_cache["tstr"] = TSTR(ev)
    return ev.real_cache["tstr"]


def tstr(ev, g):
    side = _real_side(ev)
    return None if side is None else side.tstr(g)


def aug_gain(ev, g):
    side = _real_side(ev)
    return None if side is None else side.aug_gain(g)


# Each takes the Evaluator and a labelled evaluator.Generated -> the eval.json entry or None.
COMPUTE = {"tstr": tstr, "aug_gain": aug_gain}
