"""The feature spaces, the Evaluator's metrics and real-vs-real baselines on constructed real
data, the real splits (stratified, seeded; --real demo), and the metric registry (every
metric of specgan_jax.config.metrics has a computation and vice versa).

The classifier is trained for few steps (its quality is not under test here, only that it is
trained, cached and used).
"""

import os

import numpy as np
import pytest

from specgan_jax.config import EvalConfig
from specgan_jax.config.metrics import EVAL_METRICS, METRICS, SPECS
from specgan_jax.data.moments import Moments, compute_moments
from specgan_jax.errors import EvaluateError
from specgan_jax.evaluation import evaluator as E
from specgan_jax.evaluation import features as F
from specgan_jax.evaluation import metrics as M
from specgan_jax.evaluation import splits as S

FD_SELF_ZERO = 1e-9  # FD(a, a) relative to tr(cov a): 2 tr(S) - 2 tr((S S)^1/2) cancels exactly
UNITS_FLOAT32 = 1e-5  # curves from float32 normalised data mapped back with float64 moments


# ----------------------------------------------------------------------------------------------
# Feature spaces


@pytest.fixture(scope="module")
def random_space():
    return F.random_features()


def test_random_features_fixed_and_informative(random_space):
    x = np.random.default_rng(10).uniform(-1, 1, (3, 128, 128)).astype(np.float32)
    f1 = random_space.features(x)
    assert f1.shape == (3, F.WIDTHS[-1]) and f1.dtype == np.float64
    f2 = F.random_features().features(x)  # a new extractor: the same fixed weights
    np.testing.assert_array_equal(f1, f2)
    assert not np.allclose(f1[0], f1[1])  # different inputs, different features
    # The frequency-coordinate channel: a pattern moved up in frequency changes the features
    # (a global average pool alone would be blind to where it is).
    # The shift (48 rows) is a multiple of the net's total stride (16) and both positions are
    # farther than the receptive field's half-width (15) from the edges, so without that
    # channel the features would be equal.
    low = np.zeros((1, 128, 128), np.float32)
    low[0, 40:50] = 1.0
    high = np.roll(low, 48, axis=1)
    assert np.abs(random_space.features(low) - random_space.features(high)).max() > 1e-3
    assert random_space.features_and_probs(x)[1] is None


def two_class_normalised(n_per_class, seed):
    """Normalised two-class data: class 0 bright at low frequencies, class 1 at high ones."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.2, (2 * n_per_class, 128, 128)).astype(np.float32)
    x[:n_per_class, :40] += 0.5
    x[n_per_class:, 88:] += 0.5
    return np.clip(x, -1, 1), np.repeat(np.arange(2, dtype=np.int32), n_per_class)


def test_classifier_trains_caches_and_reloads(tmp_path):
    x, y = two_class_normalised(6, 11)
    opts = F.ClassifierOptions(steps=15, batch_size=8)
    ref, held = np.arange(0, 12, 2), np.arange(1, 12, 2)
    s1 = F.classifier_features(x[ref], y[ref], ["lo", "hi"], x[held], y[held], opts, str(tmp_path))
    assert s1.kind == "classifier" and not s1.info["loaded_from_cache"]
    assert s1.info["heldout_accuracy"] == 1.0  # trivially separable
    files = sorted(os.listdir(tmp_path))
    assert files == [f"classifier-{s1.info['hash']}.json", f"classifier-{s1.info['hash']}.msgpack"]
    s2 = F.classifier_features(x[ref], y[ref], ["lo", "hi"], x[held], y[held], opts, str(tmp_path))
    assert s2.info["loaded_from_cache"]
    f1, p1 = s1.features_and_probs(x)
    f2, p2 = s2.features_and_probs(x)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_allclose(p1.sum(1), 1.0, rtol=1e-12)
    # Other training data -> another cache entry, not the stale one.
    s3 = F.classifier_features(x[held], y[held], ["lo", "hi"], x[ref], y[ref], opts, str(tmp_path))
    assert s3.info["hash"] != s1.info["hash"] and not s3.info["loaded_from_cache"]


# ----------------------------------------------------------------------------------------------
# The Evaluator on constructed real data


def flat_moments(n_freq=128):
    """Moments with mean_f = f / 10 and std_f = 1 + f / 100 (no log transform)."""
    f = np.arange(n_freq, dtype=np.float64)
    std = 1 + f / 100
    return Moments(mean=f / 10, std=std, std_raw=std, count=0, frames=128)


def one_class_splits(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.5, 0.5, (n, 128, 128)).astype(np.float32)  # never clipped by +-0.3 shifts
    return S.RealSplits(ref=x[: n // 2], ref_labels=np.zeros(n // 2, np.int32),
                        held=x[n // 2:], held_labels=np.zeros(n - n // 2, np.int32),
                        class_names=["all"], source="test", overlap="test")


@pytest.fixture(scope="module")
def evaluator():
    return E.Evaluator(one_class_splits(40, 12), EvalConfig(kid_subsets=10), flat_moments())


def test_evaluator_generated_equal_to_heldout(evaluator):
    """'Generated' = the held-out set itself: every generated-vs-held-out distance is 0 and
    every generated-vs-reference number equals its real baseline exactly."""
    m = evaluator.evaluate(evaluator.real.held).metrics
    assert evaluator.space.kind == "random_conv"
    assert m["fd"]["generated"] <= FD_SELF_ZERO * np.trace(np.cov(evaluator.held_f, rowvar=False))
    assert m["mean_rms"]["generated"] == 0 and m["std_rms"]["generated"] == 0
    for key in ("ndb", "nn_train", "nn_self"):
        assert m[key]["generated"] == m[key]["real_baseline"], key
    # Each "generated" sample is a held-out one: infinitely nearer to the held-out set than to
    # the training stand-in -- the opposite of a copy of training data.
    assert m["memorization"]["generated"] == 0.0
    assert 0 < m["memorization"]["real_baseline"] <= 0.1  # ~5% by construction (1 of 20)
    assert m["ndb"]["k"] == 2  # auto: 20 reference samples / 10 per bin
    assert "inception_score" not in m and "class_tv" not in m  # no classes
    assert m["fd"]["real_baseline"] > 0 and m["mean_rms"]["real_baseline"] > 0


def test_evaluator_shifted_and_collapsed(evaluator):
    held = evaluator.real.held
    base = evaluator.evaluate(held).metrics
    m = evaluator.evaluate(held + 0.3).metrics
    # A +0.3 shift in normalised units is +0.9 std_f in data units, at every frequency.
    std = flat_moments().std
    assert m["mean_rms"]["generated"] == pytest.approx(M.rms(0.9 * std), rel=UNITS_FLOAT32)
    np.testing.assert_allclose(m["mean_rms"]["error_curve_generated"], 0.9 * std,
                               rtol=UNITS_FLOAT32)
    assert m["std_rms"]["generated"] == pytest.approx(0.0, abs=UNITS_FLOAT32)
    assert m["fd"]["generated"] > 10 * base["fd"]["real_baseline"]
    assert m["kid"]["generated"] > 10 * abs(base["kid"]["real_baseline"])
    assert m["nn_train"]["generated"] > m["nn_train"]["real_baseline"]
    # Mode collapse onto one training sample: memorised and no diversity.
    copies = np.repeat(evaluator.real.ref[:1], 20, axis=0)
    c = evaluator.evaluate(copies).metrics
    # (distances of equal samples: float64 |a|² + |b|² - 2ab rounding, ~1e-9 after the sqrt)
    assert c["memorization"]["generated"] == 1.0
    assert c["nn_train"]["generated"] == pytest.approx(0.0, abs=1e-6)
    assert c["nn_self"]["generated"] == pytest.approx(0.0, abs=1e-6)
    assert c["std_rms"]["generated"] > 0
    with pytest.raises(EvaluateError, match="shape"):
        evaluator.evaluate(held[:, :64])


def test_memorization_flags_copies_not_smooth_samples(evaluator):
    """Smooth samples (here: near-constant) are nearer to every real spectrogram than two noisy
    reals are to each other, so nn_train alone would call them copies; the ratio to held-out
    distances does not. Noisy copies of training samples are flagged."""
    rng = np.random.default_rng(13)
    smooth = rng.normal(0, 0.01, (20, 128, 128)).astype(np.float32)
    m = evaluator.evaluate(smooth).metrics
    assert m["nn_train"]["generated"] < 0.8 * m["nn_train"]["real_baseline"]
    assert m["memorization"]["generated"] <= 0.15  # baseline level (5%), not "all copies"
    ref = evaluator.real.ref
    copies = ref[rng.integers(len(ref), size=20)] + rng.normal(0, 0.02, (20, 128, 128))
    c = evaluator.evaluate(copies.astype(np.float32)).metrics
    assert c["memorization"]["generated"] == 1.0
    assert c["memorization"]["generated_median_ratio"] < 0.2


def test_hf_excess_sees_a_checkerboard(evaluator):
    """hf_excess: the reference split itself scores exactly 0, the held-out split its real
    baseline; the held-out split plus a (-1)^(i+j) checkerboard clearly more than the baseline,
    blurred (3 x 3 box) clearly less. (These 'reals' are white noise, 3/4 of whose power is in
    the band already, so the checkerboard's amplitude is a third of their range. Measured:
    baseline +0.003, checkerboard +0.16 (peak +5.9), blurred -1.6.)"""
    real = evaluator.real
    assert evaluator.evaluate(real.ref).metrics["hf_excess"]["generated"] == 0.0
    same = evaluator.evaluate(real.held).metrics["hf_excess"]
    assert same["generated"] == same["real_baseline"] and abs(same["real_baseline"]) < 0.01
    i, j = np.meshgrid(np.arange(128), np.arange(128), indexing="ij")
    cb = evaluator.evaluate(real.held + 0.3 * (-1.0) ** (i + j)).metrics["hf_excess"]
    assert cb["generated"] > 0.1 and cb["peak_generated"] > 1.0
    blurred = real.held
    for axis in (1, 2):
        blurred = sum(np.roll(blurred, d, axis=axis) for d in (-1, 0, 1)) / 3
    assert evaluator.evaluate(blurred).metrics["hf_excess"]["generated"] < -0.5


def test_split_is_stratified_seeded_and_capped():
    labels = np.array([0] * 7 + [1] * 4 + [2] * 1)
    ref, held = S.split_indices(labels, seed=3, max_per_split=100)
    assert len(set(ref) | set(held)) == 12 and not set(ref) & set(held)
    assert [int((labels[ref] == c).sum()) for c in range(3)] == [4, 2, 1]  # odd one to ref
    assert [int((labels[held] == c).sum()) for c in range(3)] == [3, 2, 0]
    again = S.split_indices(labels, seed=3, max_per_split=100)
    assert all(np.array_equal(u, v) for u, v in zip(again, (ref, held)))
    assert not np.array_equal(S.split_indices(labels, seed=4, max_per_split=100)[0], ref)
    ref_c, held_c = S.split_indices(labels, seed=3, max_per_split=3)
    assert len(ref_c) == 3 and len(held_c) == 3 and set(ref_c) <= set(ref)


def test_real_demo_is_training_set_plus_new_heldout():
    """--real demo: the reference split is the demo run's training set (rebuilt from the seed
    and the sample count in moments.npz); the held-out spectrograms are new indices."""
    from specgan_jax.data import demo as demo_data
    from specgan_jax.config import Config, DataConfig
    from specgan_jax.data.normalize import normalize

    x, labels, _ = demo_data.make_demo_dataset(2, seed=0)
    moments = compute_moments(x)
    assert moments.count == 8
    r = S.real_from_demo(Config(), moments, EvalConfig())
    np.testing.assert_array_equal(r.ref, normalize(x, moments))
    assert list(r.held_labels) == list(labels) and len(r.held) == 8
    np.testing.assert_array_equal(r.held[1], normalize(demo_data.make_spectrogram(0, 0, 3),
                                                       moments))
    assert "never seen in training" in r.overlap
    with pytest.raises(EvaluateError, match="--real demo is for runs trained on the built-in"):
        S.real_from_demo(Config(data=DataConfig(path="/x")), moments, EvalConfig())


# ----------------------------------------------------------------------------------------------
# The metric registry


def test_every_metric_spec_has_a_computation_and_vice_versa():
    assert set(E.COMPUTE) == set(SPECS)
    assert len(SPECS) == len(METRICS)  # unique names
    for m in METRICS:
        assert callable(E.COMPUTE[m.name]) and m.text, m.name
        assert m.needs in ("", "classifier", "labels"), m.name
        if m.selectable:  # can pick the best checkpoint, so it has a better direction
            assert m.lower_is_better in (True, False), m.name
    assert EVAL_METRICS == tuple(m.name for m in METRICS if m.selectable)


def test_evaluation_keys_follow_the_registry(evaluator):
    """An unlabelled evaluation on data without classes gives exactly the registry's metrics
    that need nothing more, in its order; `names` restricts it."""
    m = evaluator.evaluate(evaluator.real.held).metrics
    assert list(m) == [s.name for s in METRICS if not s.needs]
    assert list(evaluator.evaluate(evaluator.real.held, names=["kid", "fd"]).metrics) == \
        ["fd", "kid"]
