"""Quality evaluation: every metric on constructed cases with known answers, the feature
spaces, the Evaluator's baselines, determinism by seed, the evaluate CLI (checkpoint and
--fakes) and the periodic evaluation during training (best checkpoint, resume, unchanged
training).

Runs are tiny (dim 4, batch 4, 1 critic update, 4 steps) and share a persistent JAX
compilation cache; the classifier is trained for few steps (its quality is not under test
here, only that it is trained, cached and used).
"""

import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from specgan_jax.cli import evaluate as eval_cli
from specgan_jax.cli import train as train_cli
from specgan_jax.cli.generate import main as gen_main
from specgan_jax.config import EvalConfig
from specgan_jax.errors import EvaluateError
from specgan_jax.evaluation import evaluator as E
from specgan_jax.evaluation import features as F
from specgan_jax.evaluation import metrics as M
from specgan_jax.evaluation import splits as S
from specgan_jax.run.checkpoint import Checkpointer
from tests import helpers
from specgan_jax.run.metrics_log import read_metrics
from specgan_jax.data.moments import Moments, compute_moments

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Named tolerances (all relative unless stated), and why.
FLOAT64_LINALG = 1e-9  # float64 eigendecompositions of well-conditioned 2..8-D covariances
FD_SELF_ZERO = 1e-9  # FD(a, a) relative to tr(cov a): 2 tr(S) - 2 tr((S S)^1/2) cancels exactly
UNITS_FLOAT32 = 1e-5  # curves from float32 normalised data mapped back with float64 moments
# generate.py writes CSVs with 7 significant digits; features and distances of the re-read
# samples move by about that much, amplified by the conv net's ~1e2 gain -> 1e-4.
CSV_ROUNDING_EFFECT = 1e-4


# ----------------------------------------------------------------------------------------------
# Fréchet distance


def exact_gaussian_samples(mu, cov, n, seed):
    """n samples whose sample mean is exactly mu and sample covariance (ddof 1) exactly cov
    (up to rounding): a centred Gaussian draw, whitened, then coloured with chol(cov)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, len(mu)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # cov(z) = I
    return np.asarray(mu) + z @ np.linalg.cholesky(cov).T


def test_frechet_identical_sets_is_zero():
    a = np.random.default_rng(0).normal(size=(200, 8)) * np.arange(1, 9)
    fd = M.frechet_distance(a, a)
    assert 0.0 <= fd <= FD_SELF_ZERO * np.trace(np.cov(a, rowvar=False))


def test_frechet_diagonal_gaussians_closed_form():
    """Commuting (diagonal) covariances: FD = |mu1 - mu2|² + sum_i (sqrt(a_i) - sqrt(b_i))²."""
    mu1, mu2 = np.zeros(5), np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    va, vb = np.array([1.0, 2.0, 0.5, 4.0, 1.0]), np.array([0.25, 2.0, 2.0, 1.0, 9.0])
    a = exact_gaussian_samples(mu1, np.diag(va), 300, 1)
    b = exact_gaussian_samples(mu2, np.diag(vb), 400, 2)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(va) - np.sqrt(vb)) ** 2)
    assert M.frechet_distance(a, b) == pytest.approx(expected, rel=FLOAT64_LINALG)


def test_frechet_non_commuting_2d_closed_form():
    """For 2x2 PSD S1, S2 with eigenvalues l1, l2 of S1 S2: tr((S1 S2)^1/2) = sqrt(l1) + sqrt(l2)
    = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)) -- an answer independent of any eigensolver."""
    s1 = np.array([[2.0, 0.8], [0.8, 1.0]])
    s2 = np.array([[1.0, -0.6], [-0.6, 3.0]])
    mu1, mu2 = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    a = exact_gaussian_samples(mu1, s1, 50, 3)
    b = exact_gaussian_samples(mu2, s2, 80, 4)
    tr_sqrt = math.sqrt(np.trace(s1 @ s2) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert M.frechet_distance(a, b) == pytest.approx(expected, rel=FLOAT64_LINALG)
    assert M.frechet_distance(b, a) == pytest.approx(expected, rel=FLOAT64_LINALG)  # symmetric


def test_frechet_grows_with_shift_and_rejects_bad_input():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    fds = [M.frechet_distance(a, b + s) for s in (0.0, 0.5, 1.0, 2.0)]
    assert fds == sorted(fds) and fds[-1] > 100 * fds[0]
    with pytest.raises(ValueError, match="feature dims differ"):
        M.frechet_distance(a, b[:, :3])
    with pytest.raises(ValueError, match="at least 2"):
        M.frechet_distance(a[:1], b)


# ----------------------------------------------------------------------------------------------
# KID


def test_kid_constant_sets_exact():
    """Point masses: every kernel term is constant, so the unbiased MMD² equals the population
    value k(c1, c1) + k(c2, c2) - 2 k(c1, c2) exactly, in every subset."""
    c1, c2 = np.array([1.0, 0.0, 2.0]), np.array([0.0, 1.0, -1.0])
    k = lambda x, y: (x @ y / 3 + 1) ** 3  # noqa: E731
    r = M.kid(np.tile(c1, (10, 1)), np.tile(c2, (12, 1)), n_subsets=7, subset_size=5, seed=0)
    assert r.mean == pytest.approx(k(c1, c1) + k(c2, c2) - 2 * k(c1, c2), rel=FLOAT64_LINALG)
    assert r.std == pytest.approx(0.0, abs=1e-12) and r.subset_size == 5


def test_kid_full_set_equals_explicit_sums():
    """With subset_size >= both set sizes every subset is the whole set: the unbiased MMD²
    written out with explicit loops (Gretton et al. 2012, eq. 3)."""
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)) + 0.3
    k = lambda a, b: (a @ b / 4 + 1) ** 3  # noqa: E731
    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    r = M.kid(x, y, n_subsets=3, subset_size=100)
    assert r.mean == pytest.approx(xx + yy - 2 * xy, rel=FLOAT64_LINALG) and r.subset_size == 6


def test_kid_same_distribution_near_zero_shifted_large_and_seeded():
    """Unbiased: for two samples of one distribution the estimate scatters around 0 (its
    subset spread is the scale); a 0.5-std shift in 8 dims gives ~1.3, far outside it."""
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
    same = M.kid(a, b, n_subsets=20, subset_size=250, seed=0)
    shifted = M.kid(a, b + 0.5, n_subsets=20, subset_size=250, seed=0)
    assert abs(same.mean) < 2 * same.std
    assert shifted.mean > 20 * same.std
    assert M.kid(a, b, 20, 250, seed=0) == same  # determinism by seed
    assert M.kid(a, b, 20, 250, seed=1).mean != same.mean  # the seed picks the subsets


# ----------------------------------------------------------------------------------------------
# k-means and NDB


def mixture(n, weights, seed, shift=0.0):
    centres = np.random.default_rng(100).normal(size=(5, 16)) * 5  # 5 well-separated clusters
    rng = np.random.default_rng(seed)
    c = rng.choice(5, n, p=weights)
    return centres[c] + rng.normal(size=(n, 16)) + shift


def test_kmeans_recovers_separated_clusters_deterministically():
    x = np.concatenate([np.full((20, 3), v) for v in (0.0, 10.0, 20.0)])
    x += np.random.default_rng(8).normal(0, 0.1, x.shape)
    r = M.kmeans(x, 3, seed=0)
    groups = [set(r.labels[i * 20:(i + 1) * 20]) for i in range(3)]
    assert all(len(g) == 1 for g in groups) and len(set.union(*groups)) == 3
    assert sorted(np.round(r.centroids[:, 0])) == [0.0, 10.0, 20.0]
    again = M.kmeans(x, 3, seed=0)
    assert np.array_equal(again.labels, r.labels) and np.array_equal(again.centroids, r.centroids)
    with pytest.raises(ValueError, match="k must be in"):
        M.kmeans(x, 61)


def test_two_proportion_z_test_known_values():
    # p1 = 0.6 of 100, p2 = 0.4 of 100: pooled p = 0.5, se = sqrt(0.25 * 0.02), z = 2.828...
    z, p = M.two_proportion_z_test(np.array([0.6, 0.3, 0.0]), 100, np.array([0.4, 0.3, 0.0]), 100)
    assert z[0] == pytest.approx(0.2 / math.sqrt(0.005), rel=1e-12)
    assert p[0] == pytest.approx(math.erfc(z[0] / math.sqrt(2)), rel=1e-12)  # two-sided
    assert z[1] == 0 and p[1] == 1 and z[2] == 0 and p[2] == 1  # equal, and empty in both
    assert M.two_proportion_z_test(np.array([0.5]), 10 ** 6, np.array([0.5 + 1.959964 * math.sqrt(
        0.5 / 10 ** 6)]), 10 ** 6)[1][0] == pytest.approx(0.05, rel=1e-3)  # z=1.96 <-> 5%


def test_ndb_known_cases():
    """Identical sets: every proportion equal, z = 0 in every bin -> exactly 0 bins.
    Independent samples of the same mixture: each of the 10 tests rejects with probability
    ~alpha = 0.05, so ~0.5 bins expected; P(>= 4 of 10) ~ 1e-3 under independence (seeded:
    this draw gives 1). A re-weighted mixture, or a shifted one: (almost) every bin differs."""
    train = mixture(1000, [0.2] * 5, 1)
    assert M.ndb(train, train, 10, seed=0).count == 0
    same = M.ndb(train, mixture(1000, [0.2] * 5, 2), 10, seed=0)
    assert same.count <= 3
    reweighted = M.ndb(train, mixture(1000, [0.6, 0.1, 0.1, 0.1, 0.1], 3), 10, seed=0)
    shifted = M.ndb(train, mixture(1000, [0.2] * 5, 4, shift=2.0), 10, seed=0)
    assert reweighted.count >= 8 and shifted.count >= 8
    assert reweighted.fraction == reweighted.count / 10 and reweighted.k == 10
    np.testing.assert_allclose(same.train_proportions.sum(), 1.0)
    # The k-means bins are fixed by the seed: a rerun gives the same bins and count.
    again = M.ndb(train, mixture(1000, [0.2] * 5, 2), 10, seed=0)
    assert np.array_equal(again.different, same.different)


# ----------------------------------------------------------------------------------------------
# Nearest neighbours, curves, Inception-style score


def test_nn_distances_exact():
    ref = np.array([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]])
    q = np.array([[0.0, 1.0], [3.0, 4.0], [9.0, 0.0]])
    r = M.nn_distances(q, ref)
    np.testing.assert_array_equal(r.index, [0, 1, 2])
    np.testing.assert_allclose(r.distance, np.sqrt(np.array([1.0, 0.0, 1.0]) / 2), atol=1e-15)
    s = M.nn_distances(ref, ref, exclude_self=True)  # within-set: never the sample itself
    np.testing.assert_array_equal(s.index, [1, 0, 1])
    np.testing.assert_allclose(s.distance, np.sqrt(np.array([25.0, 25.0, 65.0]) / 2))
    # Spectrogram-shaped samples: RMS over all bins; chunking does not change the result.
    x = np.random.default_rng(9).normal(size=(7, 4, 5))
    full = M.nn_distances(x, x[::-1], chunk=2)
    np.testing.assert_allclose(full.distance, 0.0, atol=1e-7)
    np.testing.assert_array_equal(full.index, np.arange(7)[::-1])
    with pytest.raises(ValueError, match="sample shapes differ"):
        M.nn_distances(x, x[:, :3])


def test_frequency_curves_exact():
    """x[n, f, t] = a_f + b_f * (+-1 alternating over t): mean a_f, std |b_f| exactly."""
    a, b = np.linspace(-3, 1, 6), np.linspace(0.1, 2, 6)
    sign = np.where(np.arange(8) % 2 == 0, 1.0, -1.0)
    x = np.repeat((a[:, None] + b[:, None] * sign[None])[None], 3, axis=0)  # [3, 6, 8]
    mean, std = M.frequency_curves(x)
    np.testing.assert_allclose(mean, a, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(std, b, rtol=1e-14)
    assert M.rms(np.array([3.0, -4.0])) == pytest.approx(math.sqrt(12.5))


def test_inception_score_and_class_histograms():
    assert M.inception_score(np.full((10, 4), 0.25)) == pytest.approx(1.0)  # no information
    onehot = np.eye(4)[np.arange(40) % 4]  # confident and balanced: the maximum, C
    assert M.inception_score(onehot) == pytest.approx(4.0, rel=1e-9)
    assert M.inception_score(np.eye(4)[np.zeros(40, int)]) == pytest.approx(1.0)  # collapsed
    np.testing.assert_allclose(M.class_histogram(np.array([0, 0, 2, 1]), 3), [0.5, 0.25, 0.25])
    assert M.total_variation([1, 0], [0.5, 0.5]) == pytest.approx(0.5)


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
# A tiny run: the CLI, --fakes, determinism, errors; periodic evaluation in training


def write_csvs(folder, xs):
    os.makedirs(folder, exist_ok=True)
    for i, x in enumerate(xs):
        np.savetxt(os.path.join(folder, f"{i:03d}.csv"), x, delimiter=",", fmt="%.6f")


@pytest.fixture(scope="module")
def env(tmp_path_factory, jax_cache):
    """Training data: one folder of 12 CSVs (one class -> random_conv features in training);
    --real data: 2 classes x 6 CSVs (classifier features in the CLI); a shared compile cache."""
    root = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(0)
    helpers.write_spectrograms(root / "train", 12, rng, name="{i:03d}.csv")
    helpers.write_spectrograms(root / "real" / "lo", 6, rng, name="{i:03d}.csv")
    helpers.write_spectrograms(root / "real" / "hi", 6, rng, 1.0, name="{i:03d}.csv")
    return {"root": root, "train": str(root / "train"), "real": str(root / "real"),
            "cache": str(jax_cache)}


def tiny_args(env, workdir, steps, *extra):
    return helpers.tiny_args(env["train"], workdir, steps, env["root"] / "csv_cache", *extra,
                             preview_every=4)


@pytest.fixture(scope="module")
def eval_run(env):
    """4 steps with an evaluation every 2 steps."""
    workdir = env["root"] / "run_eval"
    assert train_cli.main(tiny_args(env, workdir, 4, "--train.eval_every", "2")) == 0
    return workdir


def restore(workdir, sub="checkpoints", step=None):
    return helpers.restore_state(workdir, sub, step)


def strip_time(rows):
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


def test_periodic_eval_logs_and_keeps_best(eval_run):
    rows = read_metrics(str(eval_run / "metrics.jsonl"))
    evals = [r for r in rows if "eval/fd" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert {"eval/fd_real_baseline", "eval/kid", "eval/ndb", "eval/nn_train", "eval/memorization",
            "eval/best_fd", "eval/best_step"} <= set(evals[0])
    assert [r["step"] for r in rows if "d_loss" in r] == [2, 4]  # loss rows unchanged
    best_i = int(np.argmin([r["eval/fd"] for r in evals]))
    assert evals[-1]["eval/best_fd"] == evals[best_i]["eval/fd"]
    assert evals[-1]["eval/best_step"] == evals[best_i]["step"]
    assert os.listdir(eval_run / "checkpoints_best_fd") == [str(evals[best_i]["step"])]
    best = restore(eval_run, "checkpoints_best_fd")
    assert best.meta["score"] == evals[best_i]["eval/fd"] and best.meta["eval_metric"] == "fd"
    assert int(best.state.step) == best.step == evals[best_i]["step"]
    regular = restore(eval_run, step=best.step).state  # the very state of that step
    for u, v in zip(jax.tree.leaves(best.state), jax.tree.leaves(regular)):
        assert np.array_equal(np.asarray(u), np.asarray(v))


def test_periodic_eval_does_not_change_training_and_resumes(env, eval_run):
    """Training without evaluation ends in bitwise the same state; a run stopped at step 2
    and resumed logs the same rows and keeps the same best checkpoint as the uninterrupted one."""
    plain = env["root"] / "run_plain"
    assert train_cli.main(tiny_args(env, plain, 4)) == 0
    a, b = restore(eval_run).state, restore(plain).state
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.array_equal(np.asarray(u), np.asarray(v))
    resumed = env["root"] / "run_resumed"
    assert train_cli.main(tiny_args(env, resumed, 2, "--train.eval_every", "2")) == 0
    assert train_cli.main(tiny_args(env, resumed, 4, "--train.eval_every", "2")) == 0
    assert strip_time(read_metrics(str(resumed / "metrics.jsonl"))) == strip_time(
        read_metrics(str(eval_run / "metrics.jsonl")))
    assert os.listdir(resumed / "checkpoints_best_fd") == os.listdir(
        eval_run / "checkpoints_best_fd")


def test_resume_drops_best_checkpoints_after_the_resume_step(env, eval_run):
    """A run killed after saving a best checkpoint but before its regular checkpoint resumes
    from an earlier step; the best checkpoint "from the future" (here a planted step 3 with an
    unbeatable score) is dropped and the result equals the uninterrupted run's."""
    import shutil

    crashed = env["root"] / "run_crashed"
    shutil.copytree(eval_run, crashed)
    shutil.rmtree(crashed / "checkpoints" / "4")  # the last regular checkpoint never happened
    ck = Checkpointer(str(crashed / "checkpoints_best_fd"), keep=5, use_async=False)
    ck.save(3, restore(eval_run, step=2).state, {"eval_metric": "fd", "score": -1.0, "step": 3})
    ck.close()
    assert train_cli.main(tiny_args(env, crashed, 4, "--train.eval_every", "2")) == 0
    assert os.listdir(crashed / "checkpoints_best_fd") == os.listdir(
        eval_run / "checkpoints_best_fd")
    assert strip_time(read_metrics(str(crashed / "metrics.jsonl"))) == strip_time(
        read_metrics(str(eval_run / "metrics.jsonl")))


def test_periodic_eval_metric_needs_classes(env, capsys):
    rc = train_cli.main(tiny_args(env, env["root"] / "run_is", 2, "--train.eval_every", "2",
                                  "--train.eval_metric", "inception_score"))
    assert rc == 1
    assert "inception_score needs data with more than one class" in capsys.readouterr().err


CLI_EVAL = ["--eval.classifier_steps", "10", "--eval.kid_subsets", "10", "--no-progress"]


def eval_values(result):
    return {k: v for k, v in result.items() if k != "meta"}


def test_evaluate_script_smoke(env, eval_run, tmp_path):
    """The README command, as a subprocess: eval.json with every metric, and the report PNG."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", "evaluate.py"), str(eval_run), "--real",
         env["real"], "--out", str(out), *CLI_EVAL],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "JAX_COMPILATION_CACHE_DIR": env["cache"],
             "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5"})
    assert proc.returncode == 0, proc.stderr
    assert "real baseline" in proc.stdout and "feature space: classifier" in proc.stdout
    result = json.loads((out / "eval.json").read_text())
    keys = {"fd", "kid", "ndb", "mean_rms", "std_rms", "nn_train", "memorization", "nn_self",
            "inception_score", "class_tv"}
    assert set(eval_values(result)) == keys
    for k in keys:
        assert {"generated", "real_baseline"} <= set(result[k])
        assert all(math.isfinite(result[k][f]) for f in ("generated", "real_baseline"))
    meta = result["meta"]
    assert meta["feature_space"] == "classifier" and meta["step"] == 4
    assert (meta["n_generated"], meta["n_real_ref"], meta["n_real_heldout"]) == (6, 6, 6)
    assert 0 <= meta["classifier_accuracy"] <= 1
    assert "not the run's training data" in meta["real_overlap"]
    from PIL import Image

    with Image.open(out / "eval_report.png") as im:
        assert im.size[0] > 800 and im.size[1] > 1000


def test_evaluate_deterministic_and_fakes_folder(env, eval_run, tmp_path):
    """Two evaluations give identical values; the same samples as generated CSVs (--fakes)
    give the same metrics up to the CSVs' 7-digit rounding."""
    args = [str(eval_run), "--real", env["real"], *CLI_EVAL]
    assert eval_cli.main(args + ["--out", str(tmp_path / "a")]) == 0
    assert eval_cli.main(args + ["--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "eval.json").read_text())
    b = json.loads((tmp_path / "b" / "eval.json").read_text())
    assert eval_values(a) == eval_values(b)
    assert a["meta"]["feature_info"]["hash"] == b["meta"]["feature_info"]["hash"]
    assert b["meta"]["feature_info"]["loaded_from_cache"]  # trained once, cached in the run
    # Another seed: another split and other samples -> other numbers.
    assert eval_cli.main(args + ["--out", str(tmp_path / "c"), "--seed", "1"]) == 0
    c = json.loads((tmp_path / "c" / "eval.json").read_text())
    assert c["fd"]["generated"] != a["fd"]["generated"]
    # --fakes: generate.py's samples 0..5 of seed 0 are exactly what was evaluated above.
    fakes = tmp_path / "fakes"
    assert gen_main([str(eval_run), "--n", "6", "--seed", "0", "--out", str(fakes)]) == 0
    assert eval_cli.main(args + ["--out", str(tmp_path / "f"), "--fakes", str(fakes)]) == 0
    f = json.loads((tmp_path / "f" / "eval.json").read_text())
    assert f["meta"]["step"] is None and f["meta"]["generated_source"] == str(fakes)
    for k in ("fd", "kid", "mean_rms", "std_rms", "nn_train", "nn_self", "inception_score"):
        assert f[k]["generated"] == pytest.approx(a[k]["generated"], rel=CSV_ROUNDING_EFFECT,
                                                  abs=CSV_ROUNDING_EFFECT), k
        assert f[k]["real_baseline"] == a[k]["real_baseline"], k


def test_evaluate_errors_are_clear(env, eval_run, tmp_path, capsys):
    def run(*args):
        rc = eval_cli.main([*args, *CLI_EVAL])
        err = capsys.readouterr().err
        assert rc == 1 and "Traceback" not in err
        return err

    assert "does not exist" in run(str(tmp_path / "nope"), "--real", env["real"])
    assert "config.json is missing" in run(str(tmp_path), "--real", env["real"])
    assert "no checkpoint for step 3" in run(str(eval_run), "--real", env["real"], "--step", "3")
    few = tmp_path / "few"
    write_csvs(few, [np.random.default_rng(i).normal(size=(128, 128)) for i in range(5)])
    assert "evaluation needs at least 8" in run(str(eval_run), "--real", str(few))
    small = tmp_path / "small"
    write_csvs(small, [np.random.default_rng(i).normal(size=(64, 64)) for i in range(8)])
    assert "wrong size: 64 rows x 64 columns" in run(str(eval_run), "--real", str(small))
    assert "--real demo is for runs" in run(str(eval_run), "--real", "demo")
    assert "holds 12 spectrograms" in run(str(eval_run), "--real", env["real"], "--fakes",
                                          env["train"], "--n", "50")
    with pytest.raises(SystemExit):  # option errors: argparse, exit 2
        eval_cli.main([str(eval_run), "--real", env["real"], "--eval.ndb_alpha", "2"])
    assert "ndb_alpha must be in (0, 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        eval_cli.main([str(eval_run), "--real", env["real"], "--fakes", env["train"], "--step", "2"])
    assert "with --fakes none is used" in capsys.readouterr().err
