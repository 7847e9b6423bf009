"""JAX augmentations: shapes, range, identity when off, and the statistics of each draw."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from specgan_jax.data.augment import (augment_batch, mask_band, shift_frames, shift_time,
                                      stretch_time)
from specgan_jax.config import AugmentConfig

F, T = 16, 32
OFF = AugmentConfig(time_shift_prob=0.0)  # every augmentation off
N_DRAWS = 2000  # samples for the distribution checks
# Binomial/Monte-Carlo bounds at N_DRAWS: a proportion's std is <= 0.5/sqrt(2000) = 0.011;
# 0.05 is > 4 sigma, so these checks fail only on a real bug.
PROP_TOL = 0.05


def ramp(b=1):
    """[b, F, T] with distinct values per time frame (frame index / T) -> shifts are readable."""
    return jnp.broadcast_to(jnp.arange(T, dtype=jnp.float32) / T, (b, F, T))


def run(cfg, x, seed=0):
    return jax.jit(lambda x, k: augment_batch(x, k, cfg))(x, jax.random.key(seed))


def test_default_is_seed_roll_30():
    cfg = AugmentConfig()
    assert (cfg.time_shift_prob, cfg.time_shift_mode) == (1.0, "roll")
    # 30 of 128 frames, exactly (k/128 is exact in binary): the seed's +-30.
    assert cfg.time_shift_max == 0.234375 and shift_frames(cfg.time_shift_max, 128) == 30
    assert (cfg.noise_prob == cfg.freq_mask_prob == cfg.time_mask_prob == cfg.time_stretch_prob
            == 0)


def test_identity_when_off_or_zero_strength():
    x = jax.random.uniform(jax.random.key(1), (4, F, T), minval=-1, maxval=1)
    # Also widths that round to 0 frames / bins on this shape (0.4 of a bin).
    zero_strength = AugmentConfig(time_shift_max=0.0, noise_prob=1, noise_std=0.0,
                                  freq_mask_prob=1, freq_mask_max=0.4 / F, time_mask_prob=1,
                                  time_mask_max=0.0, time_stretch_prob=1,
                                  time_stretch_min=1.0, time_stretch_max=1.0)
    for cfg in (OFF, zero_strength):
        np.testing.assert_array_equal(np.asarray(run(cfg, x)), np.asarray(x))


def test_shapes_dtype_and_range_with_everything_on():
    cfg = AugmentConfig(time_shift_mode="pad", noise_prob=1, noise_std=0.5, freq_mask_prob=1,
                        time_mask_prob=1, time_stretch_prob=1)
    x = jax.random.uniform(jax.random.key(2), (8, F, T), minval=-1, maxval=1)
    y = run(cfg, x)
    assert y.shape == x.shape and y.dtype == jnp.float32
    assert float(y.min()) >= -1 and float(y.max()) <= 1
    assert not np.allclose(np.asarray(y), np.asarray(x))


def test_shift_distribution_and_probability():
    # One compile checks both the gate and the draw: with time_shift_prob 0.5, s = 0 has
    # probability 0.5 + 0.5/11 and each s in {-5..5} \ {0} has 0.5/11 (5 of T = 32 frames).
    smax, p = 5, 0.5
    cfg = dataclasses.replace(OFF, time_shift_prob=p, time_shift_max=smax / T)
    y = np.asarray(run(cfg, ramp(N_DRAWS)))  # [N, F, T]
    # Frame 10 of a shifted ramp holds (10 - s) / T; read s back (within range for |s| <= 5).
    s = np.rint(10 - y[:, 0, 10] * T).astype(int)
    counts = np.bincount(s + smax, minlength=2 * smax + 1)
    assert counts.size == 2 * smax + 1  # nothing outside [-smax, smax]
    expected = np.full(2 * smax + 1, p / (2 * smax + 1))
    expected[smax] += 1 - p
    np.testing.assert_allclose(counts / N_DRAWS, expected, atol=PROP_TOL)
    # Each sample is a whole-spectrogram roll: the same s in every row, and a true np.roll.
    assert (y[:, :, 10] == y[:, :1, 10]).all()
    for i in range(20):
        np.testing.assert_array_equal(y[i], np.roll(np.asarray(ramp()[0]), s[i], axis=1))


def test_shift_roll_vs_pad():
    x = ramp()[0]
    np.testing.assert_array_equal(np.asarray(shift_time(x, 3, "roll")), np.roll(x, 3, axis=1))
    p = np.asarray(shift_time(x, 3, "pad"))
    np.testing.assert_array_equal(p[:, 3:], np.asarray(x)[:, :-3])
    assert (p[:, :3] == 0).all()
    q = np.asarray(shift_time(x, -4, "pad"))
    np.testing.assert_array_equal(q[:, :-4], np.asarray(x)[:, 4:])
    assert (q[:, -4:] == 0).all()


def test_noise_std():
    cfg = dataclasses.replace(OFF, noise_prob=1.0, noise_std=0.05)
    y = np.asarray(run(cfg, jnp.zeros((200, F, T))))
    # 200*F*T = 102400 normals: sample std has relative error ~ 1/sqrt(2n) = 0.2%; allow 2%.
    assert abs(y.std() - 0.05) < 0.05 * 0.02 and abs(y.mean()) < 1e-3


def test_mask_widths_and_positions():
    # Frequency and time masks in one compile: on an all-ones input a fully zero row is the
    # frequency mask and a fully zero column the time mask (widths <= 6 < F, T, so neither
    # mask can zero a whole row/column of the other kind).
    wmax = 6
    cfg = dataclasses.replace(OFF, freq_mask_prob=1.0, freq_mask_max=wmax / F,
                              time_mask_prob=1.0, time_mask_max=wmax / T)
    y = np.asarray(run(cfg, jnp.ones((N_DRAWS, F, T))))
    zero = y == 0
    for line in (zero.all(axis=2), zero.all(axis=1)):  # [N, F] rows, [N, T] columns
        widths = line.sum(axis=1)
        counts = np.bincount(widths, minlength=wmax + 1)
        assert counts.size == wmax + 1  # width ~ U{0..wmax}
        np.testing.assert_allclose(counts / N_DRAWS, 1 / (wmax + 1), atol=PROP_TOL)
        for row in line[:50]:  # contiguous bands
            idx = np.flatnonzero(row)
            assert idx.size == 0 or (np.diff(idx) == 1).all()
        assert line[:, 0].any() and line[:, -1].any()  # both ends reachable
    # Nothing is zero outside the two bands.
    union = zero.all(axis=2)[:, :, None] | zero.all(axis=1)[:, None, :]
    np.testing.assert_array_equal(zero, union)


def test_mask_band_direct():
    x = jnp.ones((F, T))
    y = np.asarray(mask_band(x, 2, 3, axis=0))
    assert (y[2:5] == 0).all() and (y[:2] == 1).all() and (y[5:] == 1).all()


def test_stretch_equals_resize_then_centre_crop_or_pad():
    stretch = jax.jit(stretch_time)  # one compile for all rates (rate is traced)
    x = jax.random.normal(jax.random.key(3), (F, T))
    # rate 1.25: resize to 40 frames, crop 4 each side.
    big = jax.image.resize(x, (F, 40), "linear")
    np.testing.assert_allclose(np.asarray(stretch(x, jnp.float32(1.25))),
                               np.asarray(big[:, 4:36]), atol=1e-5)
    # rate 0.75: resize to 24 frames (antialiased), zero-pad 4 each side.
    small = jax.image.resize(x, (F, 24), "linear", antialias=True)
    out = np.asarray(stretch(x, jnp.float32(0.75)))
    np.testing.assert_allclose(out[:, 4:28], np.asarray(small), atol=1e-5)
    np.testing.assert_allclose(out[:, :4], 0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(stretch(x, jnp.float32(1.0))), np.asarray(x),
                               atol=1e-6)


def test_stretch_rate_range():
    cfg = dataclasses.replace(OFF, time_stretch_prob=1.0, time_stretch_min=0.8,
                              time_stretch_max=1.0)
    # A centred ramp's slope scales by 1/rate: read the rate back from the slope at the centre.
    x = jnp.broadcast_to(jnp.arange(T, dtype=jnp.float32) / T - 0.5, (400, F, T))
    y = np.asarray(run(cfg, x))
    # Slope over +-8 frames around the centre (antialiasing makes single-frame slopes uneven
    # by a few %; the long baseline averages that out to < 0.5%).
    rate = 1 / ((y[:, 0, T // 2 + 8] - y[:, 0, T // 2 - 8]) * T / 16)
    assert rate.min() >= 0.8 * 0.995 and rate.max() <= 1.0 * 1.005
    # Uniform on [0.8, 1.0]: mean 0.9 (std of the mean 0.058/sqrt(400) = 0.003).
    assert abs(rate.mean() - 0.9) < 0.015


def test_fractions_are_exact_widths():
    # k / n of an n-long axis is exactly k frames or bins, for every k (n a power of two,
    # e.g. 128: division by 2^m is exact); on other lengths round(frac x n).
    from specgan_jax.config.augment_keys import axis_width
    for n in (16, 32, 128, 512):
        assert [axis_width(k / n, n) for k in range(n + 1)] == list(range(n + 1))
        assert [shift_frames(k / n, n) for k in range(2 * n)] == list(range(2 * n))
    assert axis_width(10 / 128, 129) == 10 and axis_width(0.25, 129) == 32  # round(32.25)
    assert shift_frames(30 / 128, 512) == 120  # the same fraction on a longer axis
