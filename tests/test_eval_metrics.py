"""The numpy metrics (specgan_jax.evaluation.metrics) on constructed cases with known answers:
Fréchet distance, KID, k-means and NDB, nearest neighbours, per-frequency curves and the
Inception-style score; the high-frequency (checkerboard) power fractions."""

import math

import numpy as np
import pytest

from specgan_jax.evaluation import artifacts as A
from specgan_jax.evaluation import metrics as M

# Named tolerances (all relative unless stated), and why.
FLOAT64_LINALG = 1e-9  # float64 eigendecompositions of well-conditioned 2..8-D covariances
FD_SELF_ZERO = 1e-9  # FD(a, a) relative to tr(cov a): 2 tr(S) - 2 tr((S S)^1/2) cancels exactly


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
# High-frequency artefacts (specgan_jax.evaluation.artifacts)


def smooth_set(n, seed):
    """Spectrogram-like smooth images: a frequency ramp plus noise box-blurred over 5 x 5 bins
    (little power at periods <= 4 bins)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 64, 64))
    for axis in (1, 2):
        x = sum(np.roll(x, d, axis=axis) for d in range(-2, 3)) / 5
    return x + np.linspace(-0.5, 0.5, 64)[None, :, None]


def checkerboard(n_f, n_t):
    i, j = np.meshgrid(np.arange(n_f), np.arange(n_t), indexing="ij")
    return (-1.0) ** (i + j)


def test_spectral_fractions_of_pure_patterns():
    """A checkerboard or a stripe pattern has all its power at the period-2 frequencies
    (band and peak fractions 1, up to float64 rounding of the FFT); a constant image has no
    power (0); white noise has about 3/4 of its power in the band (its area: 1 - (1/2)²)."""
    cb = checkerboard(32, 48)
    stripes_t = np.broadcast_to((-1.0) ** np.arange(48), (32, 48))
    stripes_f = np.broadcast_to(((-1.0) ** np.arange(32))[:, None], (32, 48))
    band, peak = A.spectral_fractions(np.stack([cb, stripes_t, stripes_f, np.ones((32, 48))]))
    np.testing.assert_allclose(band, [1, 1, 1, 0], atol=1e-12)
    np.testing.assert_allclose(peak, [1, 1, 1, 0], atol=1e-12)
    noise = np.random.default_rng(0).normal(size=(20, 64, 64))
    assert A.spectral_fractions(noise)[0].mean() == pytest.approx(0.75, abs=0.02)
    with pytest.raises(ValueError, match="F, T >= 4"):
        A.spectral_fractions(np.zeros((2, 64)))


def test_high_frequency_excess_on_smooth_data():
    """Against smooth 'real' data: the same set scores exactly 0; plus a faint checkerboard
    (amplitude 0.05, a seventh of the data's std) clearly > 0, most of all at the checkerboard
    frequency; blurred once more (3 x 3 box), < 0. Measured: band +0.30, peak +2.5, blurred
    -2.8, where another draw of the same distribution scores -0.17..-0.01 (band); the bounds
    keep a wide margin from both."""
    real = smooth_set(16, 1)
    ref_band, ref_peak = (v.mean() for v in A.spectral_fractions(real))

    def excess(x):
        band, peak = A.spectral_fractions(x)
        return A.log_ratio(band.mean(), ref_band), A.log_ratio(peak.mean(), ref_peak)

    assert excess(real) == (0.0, 0.0)
    band, peak = excess(real + 0.05 * checkerboard(64, 64))
    assert band > 0.15 and peak > 1.5
    blurred = real
    for axis in (1, 2):
        blurred = sum(np.roll(blurred, d, axis=axis) for d in (-1, 0, 1)) / 3
    assert excess(blurred)[0] < -1.0
    assert A.log_ratio(0.0, 0.5) == pytest.approx(np.log(A.FLOOR / 0.5))  # floored, finite
