"""Train-on-synthetic, test-on-real (specgan_jax.evaluation.tstr) on a constructed 3-class set
whose classes differ in which third of the frequency axis is bright: a 'generator' that returns
real examples of the asked class trains a classifier as good as the reals do; one that returns
another class's examples trains one that is wrong on (nearly) every held-out real.

Accuracies are fractions of 24 held-out reals, so every bound below keeps a margin of several
samples: no rounding difference between CPUs moves a value across it.
"""

import numpy as np
import pytest

from specgan_jax.config import EvalConfig
from specgan_jax.data.moments import Moments
from specgan_jax.evaluation import evaluator as E
from specgan_jax.evaluation import splits as S

N_CLASSES = 3
CFG = EvalConfig(kid_subsets=10, classifier_steps=40, classifier_batch_size=16, tstr_seeds=2,
                 tstr_steps=40)


def three_class(n_per_class, seed):
    """Normalised [3n, 128, 128]: noise, plus +0.4 on third k of the frequency rows for class k."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.3, 0.3, (N_CLASSES * n_per_class, 128, 128)).astype(np.float32)
    labels = np.repeat(np.arange(N_CLASSES), n_per_class).astype(np.int32)
    for k in range(N_CLASSES):
        x[labels == k, 43 * k:43 * (k + 1)] += 0.4
    return x, labels


@pytest.fixture(scope="module")
def evaluator(jax_cache):
    ref, ref_y = three_class(8, 0)
    held, held_y = three_class(8, 1)
    splits = S.RealSplits(ref=ref, ref_labels=ref_y, held=held, held_labels=held_y,
                          class_names=["low", "mid", "high"], source="test", overlap="test")
    f = np.arange(128, dtype=np.float64)
    moments = Moments(mean=f / 10, std=1 + f / 100, std_raw=1 + f / 100, count=0, frames=128)
    return E.Evaluator(splits, CFG, moments)


@pytest.fixture(scope="module")
def fakes():
    """Other reals of each class (16 per class), as a generator's samples would come."""
    return three_class(16, 2)


def test_real_examples_of_the_asked_class_score_like_the_reals(evaluator, fakes):
    x, y = fakes
    m = evaluator.evaluate(x, y, names=["tstr", "aug_gain"]).metrics
    t, a = m["tstr"], m["aug_gain"]
    assert t["real_baseline"] >= 0.9  # trtr: the classes are easy to tell apart
    assert abs(t["generated"] - t["real_baseline"]) <= 0.1
    assert abs(a["generated"]) <= 0.1  # the reals already teach all there is
    assert t["chance"] == pytest.approx(1 / 3)
    assert t["seeds"] == [0, 1] and len(t["generated_per_seed"]) == 2
    assert t["generated_std"] == pytest.approx(np.std(t["generated_per_seed"]))
    assert (t["n_train_generated"], t["n_train_real"], t["n_test"]) == (48, 24, 24)
    assert a["real_baseline"] == 0.0
    assert a["real_only_accuracy"] == t["real_baseline"]  # the same trtr classifiers (paired)
    np.testing.assert_allclose(np.array(a["augmented_per_seed"]) - t["real_baseline_per_seed"],
                               a["generated_per_seed"])


def test_the_wrong_class_scores_below_chance_and_hurts(evaluator, fakes):
    """Class k's samples are class k+1's reals: the classifier learns the wrong names (tstr
    far below chance, 1/3); added to the reals (twice as many), they outvote them."""
    x, y = fakes
    m = evaluator.evaluate(x, (y + 1) % N_CLASSES, names=["tstr", "aug_gain"]).metrics
    assert m["tstr"]["generated"] <= 0.15
    assert m["aug_gain"]["generated"] <= -0.3
    assert m["tstr"]["real_baseline"] >= 0.9  # the baseline does not depend on the samples


def test_tstr_n_limits_the_samples_per_class(evaluator, fakes):
    """eval.tstr_n: the first n samples of each class; and tstr_seeds 0 computes nothing."""
    x, y = fakes
    few = E.Evaluator(evaluator.real, EvalConfig(**{**CFG.__dict__, "tstr_n": 2,
                                                     "tstr_seeds": 1, "tstr_steps": 2}),
                      evaluator.moments)
    assert few.evaluate(x, y, names=["tstr"]).metrics["tstr"]["n_train_generated"] == 6
    none = E.Evaluator(evaluator.real, EvalConfig(**{**CFG.__dict__, "tstr_seeds": 0}),
                       evaluator.moments)
    assert set(none.evaluate(x, y, names=["tstr", "aug_gain", "fd"]).metrics) == {"fd"}
