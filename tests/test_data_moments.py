"""Streamed per-frequency moments, the std floor, save/load, and normalise/denormalise."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from specgan_jax.errors import DataError
from specgan_jax.data.moments import Moments, StdFloorWarning, compute_moments
from specgan_jax.data.normalize import denormalize, normalize

# Streamed (Chan merge) vs stacked float64 np.mean/np.std: both float64, different summation
# order; on O(1)-scaled data the difference is a few ulps of the result -> 1e-12 relative.
RTOL_F64_ORDER = 1e-12
# numpy path computes in float64 and rounds once to float32: 1 ulp of float32 ~ 6e-8.
RTOL_F32_ROUND = 2e-7
# jnp path computes in float32 end to end (a few ops): within 1e-6 absolute on [-1, 1].
ATOL_JNP_F32 = 1e-6


def data(n=13, f=8, t=6, seed=0):
    rng = np.random.default_rng(seed)
    # Per-bin offsets and scales of different size, like real log spectra.
    return (rng.normal(size=(n, f, t)) * rng.uniform(0.5, 3, (1, f, 1))
            + rng.uniform(-8, 2, (1, f, 1))).astype(np.float32)


@pytest.mark.parametrize("chunk", [1, 4, 13, 100])
def test_streamed_equals_stacked(chunk):
    x = data()
    m = compute_moments(x, chunk_size=chunk)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(m.mean, x64.mean(axis=(0, 2)), rtol=RTOL_F64_ORDER)
    np.testing.assert_allclose(m.std, x64.std(axis=(0, 2)), rtol=RTOL_F64_ORDER)
    assert (m.count, m.frames, m.n_freq) == (13, 6, 8) and m.floored_bins == []


def test_iterable_of_chunks_and_memmap(tmp_path):
    x = data(n=20)
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    a = compute_moments(mm, chunk_size=3)
    b = compute_moments(iter([x[:7], x[7:8], x[8:]]))
    np.testing.assert_allclose(a.mean, b.mean, rtol=RTOL_F64_ORDER)
    np.testing.assert_allclose(a.std, b.std, rtol=RTOL_F64_ORDER)


def test_log_transform():
    x = np.exp(data())  # positive, linear-magnitude-like
    m = compute_moments(x, log_transform=True, eps=1e-6)
    lx = np.log(x.astype(np.float64) + 1e-6)
    np.testing.assert_allclose(m.mean, lx.mean(axis=(0, 2)), rtol=RTOL_F64_ORDER)
    np.testing.assert_allclose(m.std, lx.std(axis=(0, 2)), rtol=RTOL_F64_ORDER)
    bad = np.exp(data(n=2))
    bad[1, 2, 3] = -0.5  # only the second sample is negative
    with pytest.raises(DataError, match=r"b\.csv: log_transform needs values > -eps"):
        compute_moments(bad, log_transform=True, names=["a.csv", "b.csv"])


def test_nan_is_named():
    x = data(n=3)
    x[2, 1, 1] = np.nan
    with pytest.raises(DataError, match="s2: NaN"):
        compute_moments(x, names=["s0", "s1", "s2"])


def test_std_floor_warns_naming_bins_and_bounds_normalisation():
    x = data()
    x[:, 3, :] = 5.0  # a constant bin: float64 std exactly 0 (the seed's case gave 4e-15)
    x[:, 6, :] = 5.0 + 1e-7 * np.arange(6)  # nearly constant
    with pytest.warns(StdFloorWarning, match=r"2 frequency bin\(s\).*bins 3, 6"):
        m = compute_moments(x, std_floor=1e-3)
    floor = 1e-3 * np.median(m.std_raw)
    assert m.floored_bins == [3, 6] and m.std[3] == m.std[6] == pytest.approx(floor)
    np.testing.assert_array_equal(m.std[[0, 1, 2]], m.std_raw[[0, 1, 2]])
    y = normalize(x, m)
    assert np.isfinite(y).all() and np.abs(y[:, 3]).max() == 0.0
    assert np.abs(y[:, 6]).max() < 1e-3  # the seed's +1e-8 gave ~1e1..1e15 here


def test_all_constant_is_an_error():
    with pytest.raises(DataError, match="every frequency bin is constant"):
        compute_moments(np.ones((2, 4, 3), np.float32))


def test_save_load_roundtrip_and_seed_format(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StdFloorWarning)
        x = data()
        x[:, 0] = 1.0
        m = compute_moments(np.exp(x), log_transform=True, eps=1e-4, std_floor=1e-2,
                            orientation="time_rows")
    m.save(tmp_path / "m.npz")
    r = Moments.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(r.mean, m.mean)
    np.testing.assert_array_equal(r.std, m.std)
    np.testing.assert_array_equal(r.std_raw, m.std_raw)
    assert r.metadata() == m.metadata() and r.metadata()["floored_bins"] == [0]
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left
    # The seed's save_moments format (mean, std only).
    np.savez(tmp_path / "seed.npz", mean=m.mean, std=m.std_raw)
    with pytest.warns(StdFloorWarning, match="bins 0"):
        s = Moments.load(tmp_path / "seed.npz")
    assert not s.log_transform and s.count == 0
    assert s.std.min() > 0  # the floor applies to seed files too
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        Moments.load(tmp_path / "junk.npz")


@pytest.mark.parametrize("log", [False, True])
def test_normalise_roundtrip_numpy_and_jnp(log):
    x = data(n=4)
    if log:
        x = np.exp(x / 4)
    m = compute_moments(x, log_transform=log)
    y = normalize(x, m)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1
    xp = np.log(x.astype(np.float64) + 1e-6) if log else x.astype(np.float64)
    ref = np.clip((xp - m.mean[:, None]) / m.std[:, None] / 3, -1, 1)
    np.testing.assert_allclose(y, ref, rtol=RTOL_F32_ROUND, atol=1e-7)
    # Round trip: exact (float64) for unclipped values; clipped ones come back at mean +- 3 std.
    back = denormalize(ref, m)
    inside = np.abs(ref) < 1
    assert inside.mean() > 0.9
    np.testing.assert_allclose(back[inside], x.astype(np.float64)[inside], rtol=1e-12)
    # jnp: same numbers in float32, and jit-able.
    yj = jax.jit(lambda a: normalize(a, m))(jnp.asarray(x))
    assert yj.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(yj), y, atol=ATOL_JNP_F32)
    bj = denormalize(jnp.asarray(y), m)
    np.testing.assert_allclose(np.asarray(bj), denormalize(y, m), rtol=1e-5, atol=1e-5)


def test_normalise_channel_layout_and_shape_check():
    x = data(n=2)
    m = compute_moments(x)
    y4 = normalize(x[..., None], m, freq_axis=-3)  # [N, F, T, 1], the NHWC layout
    np.testing.assert_array_equal(y4[..., 0], normalize(x, m))
    with pytest.raises(ValueError, match="frequency bins"):
        normalize(x[:, :5], m)
