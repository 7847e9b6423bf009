"""Per-class evaluation (specgan_jax.evaluation.per_class): intra-class FD and KID, the
classifier's accuracy on generated samples against their intended class, the per-class
real-vs-real baselines; in eval.json / the report (evaluate_run on a conditional run
directory, from its checkpoint and from generate.py's class folders), and as the periodic
evaluation's metric (direction: class_accuracy is higher-better).

The constructed data has two classes that differ in where their energy is (the lower or the
upper half of the frequency axis). A generator that gives class k the samples of the other
class makes the right mixture, so the pooled metrics call it perfect; the per-class ones do not.
"""

import functools
import json
import os
import shutil
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from specgan_jax.cli.generate import main as gen_main
from specgan_jax.config import Config, EvalConfig, ModelConfig, TrainConfig
from specgan_jax.data.moments import Moments
from specgan_jax.data.normalize import denormalize
from specgan_jax.engine.step import create_train_state
from specgan_jax.errors import ConfigError, EvaluateError
from specgan_jax.evaluation import evaluator as E
from specgan_jax.evaluation import metrics as M
from specgan_jax.evaluation import periodic
from specgan_jax.evaluation import splits as S
from specgan_jax.evaluation.periodic import PeriodicEval
from specgan_jax.evaluation.report import evaluate_run
from tests import helpers

FD_SELF_ZERO = 1e-9  # FD(a, a) relative to tr(cov a): 2 tr(S) - 2 tr((S S)^1/2) cancels exactly
# generate.py's CSVs hold 7 significant digits; features of re-read samples move by about
# that, amplified by the conv net's ~1e2 gain (as in tests/test_eval_cli.py).
CSV_ROUNDING_EFFECT = 1e-4
# the same set of samples in another order: float32 feature sums differ in their last bits,
# amplified by the covariance square root
REORDERED = 1e-4
NAMES = ["low", "high"]
# The per-class metrics' evaluator; no train-on-synthetic classifiers (tstr_seeds 0: each
# evaluate() would train 2 x 3 of them): those are tests/test_eval_tstr.py's, and this file's
# evaluate_run and periodic tests run them at 1 seed.
FAST = dict(kid_subsets=10, classifier_steps=40, classifier_batch_size=16, tstr_seeds=0)


def two_class(n_per_class, seed):
    """Normalised [2n, 128, 128]: noise, plus +0.4 on the lower (class 0) or upper (class 1)
    half of the frequency rows; labels [2n]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.3, 0.3, (2 * n_per_class, 128, 128)).astype(np.float32)
    labels = np.repeat([0, 1], n_per_class).astype(np.int32)
    x[labels == 0, :64] += 0.4
    x[labels == 1, 64:] += 0.4
    return x, labels


def flat_moments():
    f = np.arange(128, dtype=np.float64)
    std = 1 + f / 100
    return Moments(mean=f / 10, std=std, std_raw=std, count=0, frames=128)


@pytest.fixture(scope="module")
def evaluator(jax_cache):
    ref, ref_y = two_class(12, 0)
    held, held_y = two_class(12, 1)
    splits = S.RealSplits(ref=ref, ref_labels=ref_y, held=held, held_labels=held_y,
                          class_names=NAMES, source="test", overlap="test")
    return E.Evaluator(splits, EvalConfig(**FAST), flat_moments())


def test_unlabelled_evaluation_keeps_todays_keys(evaluator):
    m = evaluator.evaluate(evaluator.real.held).metrics
    assert set(m) == {"fd", "kid", "ndb", "mean_rms", "std_rms", "nn_train", "memorization",
                      "nn_self", "hf_excess", "inception_score", "class_tv"}


def test_identical_per_class_sets_have_zero_intra_fd(evaluator):
    real = evaluator.real
    m = evaluator.evaluate(real.ref, real.ref_labels).metrics
    for k, c in enumerate(NAMES):
        f = evaluator.ref_f[real.ref_labels == k]
        assert m["intra_fd"]["per_class"][c]["generated"] <= FD_SELF_ZERO * np.trace(
            np.cov(f, rowvar=False))
        # the baseline: held-out reals of class k vs reference reals of class k
        assert m["intra_fd"]["per_class"][c]["real_baseline"] == M.frechet_distance(
            evaluator.held_f[real.held_labels == k], f)
        assert m["intra_fd"]["per_class"][c]["n_generated"] == 12
    base = [m["intra_fd"]["per_class"][c]["real_baseline"] for c in NAMES]
    assert m["intra_fd"]["real_baseline"] == pytest.approx(np.mean(base), rel=1e-12)
    assert m["intra_fd"]["generated"] < 1e-6 * m["intra_fd"]["real_baseline"]
    assert m["class_accuracy"]["generated"] == 1.0  # the classifier's training data
    assert set(m["intra_kid"]["per_class"]) == set(NAMES)


def test_right_classes_equal_the_baseline_and_swapped_ones_are_caught(evaluator):
    real = evaluator.real
    right = evaluator.evaluate(real.held, real.held_labels).metrics
    for key in ("intra_fd", "intra_kid", "class_accuracy"):  # the very sets of the baseline
        assert right[key]["generated"] == right[key]["real_baseline"], key
    assert right["class_accuracy"]["real_baseline"] >= 0.9  # the classifier separates them

    swapped = evaluator.evaluate(real.held, 1 - real.held_labels).metrics
    # Pooled: the same set as the held-out split -> FD 0, better than the real baseline.
    assert swapped["fd"]["generated"] <= FD_SELF_ZERO * np.trace(
        np.cov(evaluator.held_f, rowvar=False))
    assert swapped["fd"]["generated"] < swapped["fd"]["real_baseline"]
    assert swapped["class_tv"]["generated"] == right["class_tv"]["generated"]
    # Per class: every class is far from its reals, and the classifier disagrees.
    for c in NAMES:
        v = swapped["intra_fd"]["per_class"][c]
        assert v["generated"] > 5 * v["real_baseline"], c
        assert swapped["intra_kid"]["per_class"][c]["generated"] > \
            5 * abs(swapped["intra_kid"]["per_class"][c]["real_baseline"]), c
    assert swapped["class_accuracy"]["generated"] <= 0.1
    # ... and one generated class missing: per_class says which classes were seen
    only0 = evaluator.evaluate(real.held[real.held_labels == 0],
                               np.zeros(12, np.int64)).metrics
    assert set(only0["intra_fd"]["per_class"]) == {"low"}


def test_bad_labels_are_user_errors(evaluator):
    held = evaluator.real.held
    with pytest.raises(EvaluateError, match="expected 24 integers"):
        evaluator.evaluate(held, np.zeros(3, np.int64))
    with pytest.raises(EvaluateError, match=r"must be in \[0, 2\)"):
        evaluator.evaluate(held, np.full(24, 2))


# ----------------------------------------------------------------------------------------------
# eval.json and the report of a conditional run directory


@pytest.fixture(scope="module")
def cond_env(tmp_path_factory, jax_cache):
    root = tmp_path_factory.mktemp("cond_eval")
    rng = np.random.default_rng(0)
    for c, offset in (("cat", 0.0), ("dog", 2.0)):
        helpers.write_spectrograms(root / "real" / c, 6, rng, offset, name="{i:03d}.csv")
    helpers.write_conditional_run(root / "run", ["dog", "cat", "bird"])  # another order
    return root


def test_evaluate_run_conditional_writes_per_class_metrics(cond_env):
    cfg = EvalConfig(kid_subsets=10, classifier_steps=10, tstr_seeds=1, tstr_steps=5)
    out = cond_env / "eval_ckpt"
    result = evaluate_run(str(cond_env / "run"), str(cond_env / "real"), cfg, out=str(out),
                          log=lambda s: None)
    assert json.loads((out / "eval.json").read_text()) == json.loads(json.dumps(result))
    assert {"intra_fd", "intra_kid", "class_accuracy", "tstr", "aug_gain"} <= set(result)
    assert result["tstr"]["n_train_generated"] == 6 and result["tstr"]["n_test"] == 6
    assert len(result["aug_gain"]["generated_per_seed"]) == 1  # eval.tstr_seeds
    for key in ("intra_fd", "intra_kid", "class_accuracy"):
        assert set(result[key]["per_class"]) == {"cat", "dog"}  # the real data's classes
    meta = result["meta"]
    assert meta["n_generated_per_class"] == meta["n_real_heldout_per_class"] == {"cat": 3,
                                                                                  "dog": 3}
    assert "biased upward" in meta["per_class_note"] and meta["n_generated"] == 6
    assert set(meta["comparisons"]) == set(k for k in result if k != "meta")
    assert os.path.getsize(out / "eval_report.png") > 10_000

    # generate.py's class folders, evaluated with --fakes: the same samples (latents 0..2 of
    # each class), so the same numbers up to the CSVs' rounding.
    fakes = cond_env / "fakes"
    assert gen_main([str(cond_env / "run"), "--class", "cat", "--class", "dog",
                     "--per-class", "3", "--out", str(fakes)]) == 0
    f = evaluate_run(str(cond_env / "run"), str(cond_env / "real"), cfg,
                     out=str(cond_env / "eval_fakes"), fakes=str(fakes), log=lambda s: None)
    for key in ("intra_fd", "intra_kid", "class_accuracy"):
        for c in ("cat", "dog"):
            a, b = f[key]["per_class"][c], result[key]["per_class"][c]
            assert a["generated"] == pytest.approx(b["generated"], rel=CSV_ROUNDING_EFFECT,
                                                   abs=CSV_ROUNDING_EFFECT), (key, c)
            assert a["real_baseline"] == b["real_baseline"], (key, c)
    # class folders give the samples' classes: the classifier metrics too, the same baseline
    assert f["tstr"]["real_baseline"] == result["tstr"]["real_baseline"]
    assert {"tstr", "aug_gain"} <= set(f)


def test_evaluate_run_real_classes_must_be_the_runs(cond_env):
    other = cond_env / "other"
    rng = np.random.default_rng(1)
    for c in ("cat", "fish"):
        helpers.write_spectrograms(other / c, 4, rng, name="{i:03d}.csv")
    with pytest.raises(EvaluateError, match="fish are not among the classes of the run"):
        evaluate_run(str(cond_env / "run"), str(other), EvalConfig(), out=str(cond_env / "x"),
                     log=lambda s: None)


# ----------------------------------------------------------------------------------------------
# Periodic evaluation by a per-class metric


def stub_gen_fn(mode):
    """A 'generator' of the constructed classes: label y -> the pattern of class y (or of the
    other class when mode["swap"]) plus noise that is a fixed linear function of z."""
    proj = np.random.default_rng(5).normal(0, 1, (100, 128 * 128)).astype(np.float32) / 10

    def gen(g_params, g_batch_stats, z, y):
        y = (1 - y) if mode["swap"] else y
        noise = 0.3 * jnp.tanh(z @ proj).reshape(-1, 128, 128)
        rows = jnp.arange(128)[None, :, None]
        band = jnp.where((rows < 64) == (y[:, None, None] == 0), 0.4, 0.0)
        return (noise + band)[..., None]

    return gen


@pytest.fixture(scope="module")
def periodic_env(tmp_path_factory, jax_cache):
    root = tmp_path_factory.mktemp("periodic")
    x, labels = two_class(12, 3)
    mom = flat_moments()
    dataset = types.SimpleNamespace(x=denormalize(x, mom), labels=labels, class_names=NAMES)
    model = ModelConfig(dim=4, conditional=True, n_classes=2)
    state = create_train_state(model, Config().loss, Config().optim, jax.random.PRNGKey(0))
    return {"root": root, "dataset": dataset, "moments": mom, "model": model, "state": state}


def run_periodic(env, name, metric, swaps, conditional=True):
    """Evaluations at steps 2, 4, ... with the stub swapping classes as `swaps` says."""
    workdir = env["root"] / name
    cache = env["root"] / "eval_cache"
    if cache.exists():  # the feature classifier trained once for all these runs
        shutil.copytree(cache, workdir / "eval")
    model = env["model"] if conditional else ModelConfig(dim=4)
    config = Config(model=model, train=TrainConfig(eval_every=2, eval_metric=metric))
    mode = {"swap": False}
    pe = PeriodicEval(config, env["dataset"], env["moments"], str(workdir), stub_gen_fn(mode),
                      log=lambda s: None)
    rows = []
    try:
        for i, swap in enumerate(swaps):
            mode["swap"] = swap
            rows.append(pe(env["state"], 2 * (i + 1)))
    finally:
        pe.close()
    if not cache.exists():
        shutil.copytree(workdir / "eval", cache)
    return pe, rows


def test_periodic_class_accuracy_is_higher_better(periodic_env):
    pe, rows = run_periodic(periodic_env, "acc_right_first", "class_accuracy", [False, True])
    assert rows[0]["eval/class_accuracy"] > 0.9 and rows[1]["eval/class_accuracy"] < 0.1
    assert pe.best_step == 2 and rows[1]["eval/best_class_accuracy"] == \
        rows[0]["eval/class_accuracy"]
    assert {"eval/intra_fd", "eval/intra_fd_real_baseline", "eval/intra_kid",
            "eval/class_accuracy_real_baseline", "eval/fd"} <= set(rows[0])
    assert os.listdir(periodic_env["root"] / "acc_right_first" /
                      "checkpoints_best_class_accuracy") == ["2"]
    pe, rows = run_periodic(periodic_env, "acc_swapped_first", "class_accuracy", [True, False])
    assert pe.best_step == 4  # the higher accuracy came later and replaced the best


def test_periodic_intra_fd_is_lower_better_and_sees_what_fd_cannot(periodic_env):
    pe, rows = run_periodic(periodic_env, "intra", "intra_fd", [False, True])
    assert rows[1]["eval/intra_fd"] > 3 * rows[0]["eval/intra_fd"]
    # the swapped generator's pooled FD is no worse: the same samples in another order (each
    # class uses latents 0..n-1), equal up to the features' float32 summation order
    assert rows[1]["eval/fd"] == pytest.approx(rows[0]["eval/fd"], rel=REORDERED)
    assert pe.best_step == 2
    assert "eval/tstr" not in rows[0] and "eval/aug_gain" not in rows[0]  # not selected: skipped


def test_periodic_tstr_when_selected_is_higher_better(periodic_env, monkeypatch):
    """eval_metric tstr: the rows gain eval/tstr (and its trtr baseline), not aug_gain (the
    other metric that trains classifiers); the classifier trained on the right classes beats
    the one trained on swapped ones and stays the best. (Classifiers of 20 updates, 1 seed:
    the periodic evaluation's EvalConfig is replaced by a cheaper one.)"""
    monkeypatch.setattr(periodic, "EvalConfig",
                        functools.partial(EvalConfig, tstr_seeds=1, tstr_steps=20))
    pe, rows = run_periodic(periodic_env, "tstr", "tstr", [False, True])
    assert {"eval/tstr", "eval/tstr_real_baseline", "eval/best_tstr"} <= set(rows[0])
    assert "eval/aug_gain" not in rows[0]
    assert rows[0]["eval/tstr"] >= 0.9 and rows[1]["eval/tstr"] <= 0.1
    assert pe.best_step == 2 and rows[1]["eval/best_tstr"] == rows[0]["eval/tstr"]


def test_periodic_per_class_metric_needs_a_conditional_model(periodic_env):
    with pytest.raises(ConfigError, match="class_accuracy is a per-class metric"):
        run_periodic(periodic_env, "uncond", "class_accuracy", [], conditional=False)
    with pytest.raises(ValueError, match="train.eval_metric must be one of"):
        TrainConfig(eval_metric="accuracy")


def test_a_class_with_too_few_reals_is_marked_not_presented_as_meaningful(jax_cache):
    """70 + 70 reals of "low" against 3 + 3 of "high": high's intra FD/KID (3 <= the feature
    dimension, a singular covariance) and class accuracy (3 < 10 held-out reals) carry
    too_few_real, in eval.json's entry and in the report's class labels; low's do not."""
    x0, _ = two_class(70, 0)
    x1, _ = two_class(3, 1)
    x2, _ = two_class(70, 2)
    x3, _ = two_class(3, 3)
    ref = np.concatenate([x0[:70], x1[3:]])
    held = np.concatenate([x2[:70], x3[3:]])
    y = np.repeat([0, 1], [70, 3]).astype(np.int32)
    splits = S.RealSplits(ref=ref, ref_labels=y, held=held, held_labels=y, class_names=NAMES,
                          source="test", overlap="test")
    ev = E.Evaluator(splits, EvalConfig(**FAST), flat_moments())
    assert ev.space.dim < 70  # "low" has more reals per set than features
    out = ev.evaluate(held, y)
    m = out.metrics
    for key in ("intra_fd", "intra_kid", "class_accuracy"):
        assert m[key]["per_class"]["high"]["too_few_real"] is True, key
        assert "too_few_real" not in m[key]["per_class"]["low"], key
        assert m[key]["classes_too_few_real"] == ["high"], key
        assert m[key]["too_few_real_rule"], key
    assert m["class_accuracy"]["per_class"]["high"]["n_real_heldout"] == 3
    assert out.arrays["intra_names"] == ["low", "high\n(n=3+3: too few real)"]
    assert out.arrays["acc_names"] == ["low", "high\n(n=3+3: too few real)"]
