"""Sample-quality metrics: pure numpy functions of sample or feature arrays (no I/O, no JAX).

Each metric compares two sets (generated vs real, or real vs real for the baseline that gives
a number its scale; specgan_jax.evaluate does the bookkeeping). All are computed in float64.

  frechet_distance(a, b)        Fréchet distance of Gaussians fitted to two feature sets
                                (Heusel et al. 2017, "FID"), without scipy.
  kid(a, b, ...)                kernel inception distance: unbiased MMD² with the cubic
                                polynomial kernel, averaged over random subsets (Bińkowski et
                                al. 2018).
  kmeans(x, k, seed)            Lloyd's k-means with k-means++ seeding (for NDB).
  ndb(train, test, k, ...)      number of statistically different bins (Richardson & Weiss 2018).
  nn_distances(q, ref)          nearest-neighbour RMS distance from each query to a reference set.
  frequency_curves(x)           per-frequency mean and std (over samples and time frames).
  inception_score(probs)        exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

# k-means stops when no assignment changes, or after this many Lloyd iterations.
KMEANS_MAX_ITER = 100


def _as_2d(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected [N, D] features; got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    return x


# ----------------------------------------------------------------------------------------------
# Fréchet distance


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix by eigendecomposition (negative
    eigenvalues from rounding clipped to 0)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr((s1 s2)^(1/2)) for symmetric PSD s1, s2.

    s1 s2 is not symmetric, but it is similar to the symmetric PSD matrix
    m = s1^(1/2) s2 s1^(1/2) (conjugate by s1^(1/2)), so both have the same (non-negative)
    eigenvalues and tr((s1 s2)^(1/2)) = sum_i sqrt(eig_i(m)). Only `eigh` is needed; this
    replaces scipy.linalg.sqrtm (which works on the non-symmetric product and can return
    complex parts from rounding).
    """
    r = _sqrtm_psd(s1)
    m = r @ s2 @ r
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0, None)).sum())


def gaussian_frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """||mu1 - mu2||² + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)): the squared 2-Wasserstein
    distance between N(mu1, cov1) and N(mu2, cov2) (Dowson & Landau 1982)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    d = mu1 - mu2
    fd = d @ d + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt_product(cov1, cov2)
    return float(max(fd, 0.0))  # >= 0 in exact arithmetic; rounding can give -1e-15


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feat_a [Na, D] and feat_b [Nb, D].

    Covariances with ddof=1 (np.cov, as the reference FID code). The estimate is biased
    upwards for finite N (more so for large D / small N), so compare values computed with the
    same sample sizes -- which is why evaluate.py reports a real-vs-real baseline of equal size.
    """
    a, b = _as_2d(feat_a, "feat_a"), _as_2d(feat_b, "feat_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dims differ: {a.shape[1]} vs {b.shape[1]}")
    if min(len(a), len(b)) < 2:
        raise ValueError("frechet_distance needs at least 2 samples per set")
    return gaussian_frechet_distance(a.mean(0), np.cov(a, rowvar=False, ddof=1).reshape(
        a.shape[1], a.shape[1]), b.mean(0), np.cov(b, rowvar=False, ddof=1).reshape(
        b.shape[1], b.shape[1]))


# ----------------------------------------------------------------------------------------------
# KID


class KID(NamedTuple):
    mean: float  # mean over subsets of the unbiased MMD² estimate
    std: float  # std over subsets (spread of the subset estimates, not a standard error)
    subset_size: int
    n_subsets: int


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x·y / D + 1)³, the KID kernel (Bińkowski et al. 2018, eq. in §4)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² (Gretton et al. 2012, eq. 3) of two equal-size sets with the cubic
    polynomial kernel: mean_{i!=j} k(x_i,x_j) + mean_{i!=j} k(y_i,y_j) - 2 mean_{i,j} k(x_i,y_j)."""
    m = x.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(off - 2.0 * kxy.sum() / (m * m))


def kid(feat_a: np.ndarray, feat_b: np.ndarray, n_subsets: int = 100,
        subset_size: int = 1000, seed: int = 0) -> KID:
    """Kernel inception distance of feat_a [Na, D] and feat_b [Nb, D].

    Each of n_subsets rounds draws min(subset_size, Na, Nb) rows from each set without
    replacement (numpy Generator seeded by `seed`) and computes the unbiased MMD²; returns the
    mean and std over rounds. Unbiased: its expectation is 0 when both sets come from the same
    distribution, so small negative values are normal.
    """
    a, b = _as_2d(feat_a, "feat_a"), _as_2d(feat_b, "feat_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dims differ: {a.shape[1]} vs {b.shape[1]}")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("kid needs at least 2 samples per set")
    if n_subsets < 1:
        raise ValueError("kid needs n_subsets >= 1")
    rng = np.random.default_rng(seed)
    vals = np.array([mmd2_unbiased(a[rng.choice(len(a), m, replace=False)],
                                   b[rng.choice(len(b), m, replace=False)])
                     for _ in range(n_subsets)])
    return KID(mean=float(vals.mean()), std=float(vals.std()), subset_size=m,
               n_subsets=n_subsets)


# ----------------------------------------------------------------------------------------------
# Distances and k-means


def _flat(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x.reshape(x.shape[0], -1).astype(np.float64, copy=False)


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances [Na, Nb] of a [Na, ...] and b [Nb, ...], float64,
    via |a|² + |b|² - 2 a·b (clipped at 0 against rounding)."""
    a, b = _flat(a), _flat(b)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.clip(d2, 0.0, None)


class NN(NamedTuple):
    distance: np.ndarray  # [Nq] RMS distance to the nearest reference sample
    index: np.ndarray  # [Nq] its index in the reference set


def nn_distances(query: np.ndarray, reference: np.ndarray, exclude_self: bool = False,
                 chunk: int = 256) -> NN:
    """For each query sample [Nq, ...] the nearest reference sample [Nr, ...] (same trailing
    shape) and its RMS distance sqrt(mean((q - r)²)) -- the Euclidean distance / sqrt(D), so
    the number is in the samples' units per element (e.g. normalised units per
    time-frequency bin) whatever the spectrogram size.

    exclude_self: query and reference are the same set; skip each sample's own index (the
    within-set nearest neighbour, the original's |D|self).
    """
    q, r = np.asarray(query), np.asarray(reference)
    if q.shape[1:] != r.shape[1:]:
        raise ValueError(f"sample shapes differ: {q.shape[1:]} vs {r.shape[1:]}")
    if len(r) < (2 if exclude_self else 1):
        raise ValueError("nn_distances needs a non-empty reference set (2+ with exclude_self)")
    dim = int(np.prod(q.shape[1:]))
    dist, idx = np.empty(len(q)), np.empty(len(q), np.int64)
    for s in range(0, len(q), chunk):
        d2 = squared_distances(q[s:s + chunk], r)
        if exclude_self:
            rows = np.arange(d2.shape[0])
            d2[rows, s + rows] = np.inf
        j = d2.argmin(1)
        idx[s:s + chunk] = j
        dist[s:s + chunk] = np.sqrt(d2[np.arange(d2.shape[0]), j] / dim)
    return NN(distance=dist, index=idx)


class KMeans(NamedTuple):
    centroids: np.ndarray  # [k, D]
    labels: np.ndarray  # [N] cluster of each training sample
    inertia: float  # sum of squared distances to the assigned centroid


def kmeans(x: np.ndarray, k: int, seed: int = 0, max_iter: int = KMEANS_MAX_ITER) -> KMeans:
    """Lloyd's k-means on x [N, ...] (flattened), k-means++ seeding (Arthur & Vassilvitskii
    2007) from numpy Generator(seed); deterministic. An empty cluster is re-seeded with the
    sample farthest from its centroid."""
    x = _flat(x)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"kmeans: k must be in [1, {n}] (the number of samples); got {k}")
    rng = np.random.default_rng(seed)
    centroids = [x[rng.integers(n)]]
    d2 = squared_distances(x, centroids[0][None])[:, 0]
    for _ in range(1, k):
        total = d2.sum()
        # D² sampling; if every sample coincides with a centroid, any sample will do.
        i = rng.choice(n, p=d2 / total) if total > 0 else int(rng.integers(n))
        centroids.append(x[i])
        d2 = np.minimum(d2, squared_distances(x, x[i][None])[:, 0])
    c = np.stack(centroids)
    labels = None
    for _ in range(max_iter):
        d2 = squared_distances(x, c)
        new = d2.argmin(1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = labels == j
            if members.any():
                c[j] = x[members].mean(0)
            else:  # empty cluster: take the worst-fitted sample
                far = int(d2[np.arange(n), labels].argmax())
                c[j] = x[far]
                labels[far] = j
    d2 = squared_distances(x, c)
    labels = d2.argmin(1)
    return KMeans(centroids=c, labels=labels, inertia=float(d2[np.arange(n), labels].sum()))


def assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid for each sample of x [N, ...]."""
    return squared_distances(x, centroids).argmin(1)


# ----------------------------------------------------------------------------------------------
# NDB


def _normal_sf(z: np.ndarray) -> np.ndarray:
    """P(Z > z) for a standard normal Z (math.erfc; no scipy)."""
    return np.array([0.5 * math.erfc(v / math.sqrt(2.0)) for v in np.ravel(z)]).reshape(
        np.shape(z))


def two_proportion_z_test(p1: np.ndarray, n1: int, p2: np.ndarray, n2: int
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Pooled two-proportion z-test per bin -> (z, two-sided p-value), as in Richardson &
    Weiss's ndb.py: p = (p1 n1 + p2 n2) / (n1 + n2), se = sqrt(p (1 - p) (1/n1 + 1/n2)),
    z = (p1 - p2) / se. A bin empty (or full) in both sets has se = 0: z = 0, p = 1."""
    p1, p2 = np.asarray(p1, np.float64), np.asarray(p2, np.float64)
    p = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = np.sqrt(p * (1 - p) * (1.0 / n1 + 1.0 / n2))
    z = np.divide(p1 - p2, se, out=np.zeros_like(p), where=se > 0)
    return z, 2.0 * _normal_sf(np.abs(z))


class NDB(NamedTuple):
    count: int  # bins whose proportions differ significantly
    fraction: float  # count / k (the paper's NDB/K)
    k: int
    different: np.ndarray  # [k] bool
    train_proportions: np.ndarray  # [k]
    test_proportions: np.ndarray  # [k]


def ndb_from_bins(train_bins: np.ndarray, test_bins: np.ndarray, k: int,
                  alpha: float = 0.05) -> NDB:
    """NDB from bin assignments (cluster index per sample) of the train and test sets."""
    n1, n2 = len(train_bins), len(test_bins)
    if n1 < 1 or n2 < 1:
        raise ValueError("ndb needs non-empty train and test sets")
    p1 = np.bincount(train_bins, minlength=k) / n1
    p2 = np.bincount(test_bins, minlength=k) / n2
    _, pval = two_proportion_z_test(p1, n1, p2, n2)
    diff = pval < alpha
    return NDB(count=int(diff.sum()), fraction=float(diff.mean()), k=k, different=diff,
               train_proportions=p1, test_proportions=p2)


def ndb(train: np.ndarray, test: np.ndarray, k: int, seed: int = 0, alpha: float = 0.05,
        clusters: Optional[KMeans] = None) -> NDB:
    """Number of statistically different bins (Richardson & Weiss 2018, "On GANs and GMMs").

    k-means with k clusters on the `train` samples [N1, ...] (or the given `clusters` of
    them); each `test` sample [N2, ...] goes to its nearest centroid; per bin, a two-sided
    two-proportion z-test of the train vs test proportions at level `alpha`. Under the null
    (same distribution) about alpha * k bins come out different by chance.
    """
    if clusters is None:
        clusters = kmeans(train, k, seed)
    return ndb_from_bins(clusters.labels, assign(test, clusters.centroids), k, alpha)


# ----------------------------------------------------------------------------------------------
# Per-frequency curves and the Inception-style score


def frequency_curves(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x [N, F, T] -> (mean [F], std [F]) over samples and time frames (ddof 0), float64:
    the same per-frequency statistics as the moments used to normalise (moments.py)."""
    x = np.asarray(x, np.float64)
    if x.ndim != 3:
        raise ValueError(f"frequency_curves expects [N, F, T]; got {x.shape}")
    return x.mean(axis=(0, 2)), x.std(axis=(0, 2))


def rms(v: np.ndarray) -> float:
    """Root mean square of an error curve."""
    v = np.asarray(v, np.float64)
    return float(np.sqrt(np.mean(v * v)))


def inception_score(probs: np.ndarray, eps: float = 1e-12) -> float:
    """exp(mean_x KL(p(y|x) || p(y))), p(y) = mean_x p(y|x) (Salimans et al. 2016), from
    class probabilities [N, C]. 1 (every prediction alike) .. C (confident and balanced).
    `eps` keeps log(0) finite; terms with p(y|x) = 0 contribute 0 as they should."""
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or len(p) < 1:
        raise ValueError(f"inception_score expects [N, C] probabilities; got {p.shape}")
    py = p.mean(0, keepdims=True)
    kl = (p * (np.log(p + eps) - np.log(py + eps))).sum(1)
    return float(np.exp(kl.mean()))


def class_histogram(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Fractions of samples per class [C]."""
    labels = np.asarray(labels)
    return np.bincount(labels, minlength=n_classes) / max(len(labels), 1)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance 0.5 * sum |p - q| between two distributions."""
    return float(0.5 * np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)).sum())
