"""specgan_jax moments/normalise/denormalise vs the seed's PerFrequencyNormalizer
(specgan_torch_ref.normalize, corrected) and the seed's stacked np.mean/np.std, on the same CSVs.
"""

import os
import warnings

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from specgan_jax.config import DataConfig
from specgan_jax.data.cache import load_dataset
from specgan_jax.data.moments import Moments, StdFloorWarning, moments_for
from specgan_jax.data.normalize import denormalize, normalize
from specgan_torch_ref.normalize import PerFrequencyNormalizer

# Named tolerances (why each):
# specgan_jax caches float32 (the CSV text has 7 significant digits, so float32 keeps what the
# file says to ~6e-8 relative); the seed parses float64. The moments therefore agree to float32
# input rounding, not float64: mean relative error <= ~1e-7 of |x|, std similarly.
MOMENT_RTOL = 1e-6
MOMENT_ATOL = 1e-6  # for means near zero
# Both references compute in float64 from the same float64 parse (the seed path, np.stack +
# np.mean/np.std, vs the reference's streamed Chan merge): summation order only.
F64_ORDER_RTOL = 1e-12
# normalize output is float32 on both sides from float64 math on inputs that differ by float32
# rounding: ~1 ulp at |y| <= 1 plus input rounding / (3 std) -> 1e-6 absolute.
NORM_ATOL_NUMPY = 1e-6
NORM_ATOL_JNP = 3e-6  # jnp path computes in float32 end to end
# denormalise: float64 on both sides from the same normalised input; the moments differ by the
# float32 input rounding above, so the results agree to ~1e-7 of the data scale (O(1..10) here).
DENORM_RTOL = 1e-6
DENORM_ATOL = 1e-6

N_FILES, F, T = 7, 16, 12


def write_files(root, linear=False, constant_bin=None):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(N_FILES):
        a = rng.normal(size=(F, T)) * rng.uniform(0.5, 2, (F, 1)) + rng.uniform(-9, 1, (F, 1))
        if linear:
            a = np.exp(a)
        if constant_bin is not None:
            a[constant_bin] = 0.25
        p = os.path.join(root, "cls", f"{i}.csv")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        np.savetxt(p, a, delimiter=",", fmt="%.7g")
        paths.append(p)
    return paths


def seed_stacked_moments(paths, log=False):
    """The seed's computation, verbatim: stack every file, np.mean/np.std over axes (0, 2)."""
    all_specs = np.stack([pd.read_csv(fp, header=None).values for fp in paths], axis=0)
    if log:
        all_specs = np.log(all_specs + 1e-6)
    return np.mean(all_specs, axis=(0, 2)), np.std(all_specs, axis=(0, 2))


@pytest.mark.parametrize("log", [False, True])
def test_moments_and_normalise_parity(tmp_path, log):
    paths = write_files(str(tmp_path), linear=log)
    cfg = DataConfig(path=str(tmp_path), n_freq=F, n_time=T, log_transform=log, use_cache=False)
    ds = load_dataset(cfg, progress=False)
    assert [os.path.basename(p) for p in ds.paths] == [os.path.basename(p) for p in paths]
    m = moments_for(ds, cfg)
    ref = PerFrequencyNormalizer(std_floor=cfg.std_floor, log_transform=log, eps=cfg.log_eps)
    ref_mean, ref_std = ref.compute_moments(paths)
    seed_mean, seed_std = seed_stacked_moments(paths, log)
    np.testing.assert_allclose(ref_mean, seed_mean, rtol=F64_ORDER_RTOL)
    np.testing.assert_allclose(ref_std, seed_std, rtol=F64_ORDER_RTOL)
    np.testing.assert_allclose(m.mean, ref_mean, rtol=MOMENT_RTOL, atol=MOMENT_ATOL)
    np.testing.assert_allclose(m.std, ref_std, rtol=MOMENT_RTOL)

    for p, x in zip(paths, ds.x):
        raw = pd.read_csv(p, header=None).values
        y_ref = ref.normalize(raw)
        np.testing.assert_allclose(normalize(np.asarray(x), m), y_ref, atol=NORM_ATOL_NUMPY)
        np.testing.assert_allclose(np.asarray(normalize(jnp.asarray(x), m)), y_ref,
                                   atol=NORM_ATOL_JNP)
        # Denormalise the same normalised array on both sides.
        np.testing.assert_allclose(denormalize(y_ref.astype(np.float64), m),
                                   ref.denormalize(y_ref), rtol=DENORM_RTOL, atol=DENORM_ATOL)


def test_moments_file_interchange(tmp_path):
    paths = write_files(str(tmp_path))
    cfg = DataConfig(path=str(tmp_path), n_freq=F, n_time=T, use_cache=False)
    m = moments_for(load_dataset(cfg, progress=False), cfg)
    m.save(tmp_path / "m.npz")
    ref = PerFrequencyNormalizer()
    ref.load_moments(tmp_path / "m.npz")  # the seed class reads specgan_jax's file
    np.testing.assert_array_equal(ref.mean_per_freq, m.mean)
    ref.compute_moments(paths)
    ref.save_moments(tmp_path / "seed.npz")  # ...and specgan_jax reads the seed's
    back = Moments.load(tmp_path / "seed.npz")
    np.testing.assert_allclose(back.mean, m.mean, rtol=MOMENT_RTOL, atol=MOMENT_ATOL)
    np.testing.assert_allclose(back.std, m.std, rtol=MOMENT_RTOL)


def test_constant_bin_floored_identically(tmp_path):
    paths = write_files(str(tmp_path), constant_bin=5)
    cfg = DataConfig(path=str(tmp_path), n_freq=F, n_time=T, use_cache=False)
    with pytest.warns(StdFloorWarning, match="bins 5"):
        m = moments_for(load_dataset(cfg, progress=False), cfg)
    ref = PerFrequencyNormalizer(std_floor=cfg.std_floor)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ref.compute_moments(paths)
    assert any("[5]" in str(x.message) for x in w)
    assert m.floored_bins == [5]
    np.testing.assert_allclose(m.std, ref.std_per_freq, rtol=MOMENT_RTOL)
    raw = pd.read_csv(paths[0], header=None).values
    y = ref.normalize(raw)
    assert np.isfinite(y).all() and np.abs(y[5]).max() < 1e-3
    np.testing.assert_allclose(ref.denormalize(y)[5], 0.25, rtol=1e-9)  # round trip holds
