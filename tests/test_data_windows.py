"""Long files as sources of random windows: the layout on load, moments over every frame, the
on-device window sampler (uniform over window starts, never across files, class-balanced,
held-out files), bad input, and one end-to-end run on non-square windows of long high-first
files that generates CSVs of the window's shape in the files' order."""

import os

import jax
import numpy as np
import pytest

from specgan_jax.cli import train as train_cli
from specgan_jax.cli.generate import main as gen_main
from specgan_jax.config import AugmentConfig, DataConfig
from specgan_jax.data import sampler as sampler_lib
from specgan_jax.data.cache import load_dataset
from specgan_jax.data.moments import compute_moments, moments_for
from specgan_jax.data.normalize import normalize
from specgan_jax.errors import DataError
from specgan_jax.training.setup import heldout_indices
from specgan_jax.config import Config, DiffAugConfig
from tests import helpers

F, T = 32, 64
NO_AUG = AugmentConfig(time_shift_prob=0.0)  # windows exactly as cut
LENGTHS = {"a": [300, 64], "b": [130]}  # class -> files' frames


def _write(folder, cls, i, a, fmt="csv"):
    os.makedirs(folder / cls, exist_ok=True)
    path = folder / cls / f"{cls}{i}.{fmt}"
    if fmt == "npy":
        np.save(path, a)
    else:
        np.savetxt(path, a, delimiter=",", fmt="%.6f")
    return path


@pytest.fixture(scope="module")
def long_files(tmp_path_factory):
    """Files whose value encodes (file, frame): x[f, t] = file * 1000 + t + f / 100, so a
    window tells which file and frames it came from. Class b's file is a .npy."""
    root = tmp_path_factory.mktemp("long")
    k = 0
    for cls, lengths in LENGTHS.items():
        for i, n in enumerate(lengths):
            a = k * 1000.0 + np.arange(n)[None, :] + np.arange(F)[:, None] / 100
            _write(root / "data", cls, i, a, fmt="npy" if cls == "b" else "csv")
            k += 1
    return root


def _cfg(root, **kw):
    return DataConfig(path=str(root / "data"), n_freq=F, n_time=T,
                      cache_dir=str(root / "cache"), **kw)


def test_long_files_load_as_frames_and_tiles(long_files):
    ds = load_dataset(_cfg(long_files), progress=False)
    assert ds.windowed
    np.testing.assert_array_equal(ds.lengths, [300, 64, 130])
    assert ds.frames.shape == (494, F)  # time-major, files end to end
    np.testing.assert_array_equal(ds.file_labels, [0, 0, 1])
    # non-overlapping windows from each file's start: 300 // 64 = 4, 1, 130 // 64 = 2
    assert ds.x.shape == (7, F, T)
    np.testing.assert_array_equal(ds.labels, [0, 0, 0, 0, 0, 1, 1])
    np.testing.assert_allclose(ds.x[1], ds.frames[64:128].T)
    np.testing.assert_allclose(ds.x[5, :, 0], 2000 + np.arange(F) / 100, rtol=1e-6)
    again = load_dataset(_cfg(long_files), progress=False)
    assert again.from_cache and again.windowed
    np.testing.assert_array_equal(np.asarray(again.frames), np.asarray(ds.frames))
    np.testing.assert_array_equal(again.x, ds.x)


def test_windows_off_keeps_the_shape_policy(long_files):
    with pytest.raises(DataError, match="wrong size: 32 rows x 300 columns"):
        load_dataset(_cfg(long_files, windows="off", use_cache=False), progress=False)
    ds = load_dataset(_cfg(long_files, windows="off", shape_policy="crop_pad",
                           use_cache=False), progress=False)
    assert not ds.windowed and ds.x.shape == (3, F, T)


def test_moments_cover_every_frame_of_every_file(long_files):
    ds = load_dataset(_cfg(long_files), progress=False)
    m = moments_for(ds, _cfg(long_files))
    frames = np.asarray(ds.frames, np.float64)  # [L, F]
    np.testing.assert_allclose(m.mean, frames.mean(0), rtol=1e-10)
    np.testing.assert_allclose(m.std_raw, frames.std(0), rtol=1e-8)
    assert m.count == 3


def _window_data(long_files, heldout=None):
    ds = load_dataset(_cfg(long_files), progress=False)
    m = compute_moments(np.asarray(ds.frames).T[None])
    host = sampler_lib.build_window_dataset(ds.frames, ds.lengths, ds.file_labels, m, T, 2,
                                            heldout=heldout)
    return ds, m, sampler_lib.to_device(host)


def _origin(ds, m, x):
    """(file, first frame) a normalised window [F, T] was cut from: exact match required."""
    raw = np.asarray(ds.frames, np.float64)
    norm = np.asarray(normalize(raw.T, m))  # [F, L]
    starts = np.concatenate([[0], np.cumsum(ds.lengths)[:-1]])
    col = np.flatnonzero(np.all(np.abs(norm - x[:, :1]) < 1e-6, axis=0))
    assert len(col) == 1, "a window's first frame matches exactly one frame"
    s = int(col[0])
    np.testing.assert_allclose(norm[:, s:s + T], x, atol=1e-6)
    i = int(np.searchsorted(starts, s, side="right") - 1)
    return i, s - starts[i]


def test_windows_are_uniform_over_starts_and_never_cross_files(long_files):
    ds, m, data = _window_data(long_files)
    sampler = jax.jit(sampler_lib.make_sampler(NO_AUG, with_labels=True),
                      static_argnums=(2, 3))
    x, y = sampler(data, jax.random.PRNGKey(0), 4, 100)  # 400 windows
    x, y = np.asarray(x)[..., 0].reshape(400, F, T), np.asarray(y).reshape(400)
    origins = [_origin(ds, m, w) for w in x[:40]]
    for (i, off), label in zip(origins, y[:40]):
        assert 0 <= off <= ds.lengths[i] - T  # inside its file
        assert label == ds.file_labels[i]
    # a file is drawn in proportion to its windows (237, 1, 67 of 305): by the labels' split,
    # class a = 238/305 = 0.780; 400 draws give a binomial std of 0.021: 5 std bounds
    assert abs((y == 0).mean() - 238 / 305) < 5 * 0.021


def test_class_balanced_windows_and_heldout_files(long_files):
    ds, m, data = _window_data(long_files, heldout=np.array([1]))
    assert data.n_train_windows == 237 + 67 and data.n_windows == 305
    bal = jax.jit(sampler_lib.make_sampler(NO_AUG, with_labels=True,
                                           class_balanced=True, n_classes=2),
                  static_argnums=(2, 3))
    _, y = bal(data, jax.random.PRNGKey(1), 4, 100)
    # each class 1/2: binomial std of 400 draws 0.025, 5 std bounds
    assert abs(np.asarray(y).mean() - 0.5) < 5 * 0.025
    held = jax.jit(sampler_lib.make_heldout_sampler(NO_AUG, with_labels=True),
                   static_argnums=2)
    x, y = held(data, jax.random.PRNGKey(2), 8)
    for w in np.asarray(x)[..., 0]:
        assert _origin(ds, m, w) == (1, 0)  # the held-out file's only window
    np.testing.assert_array_equal(np.asarray(y), 0)


def test_heldout_never_empties_a_class():
    cfg = Config(diffaug=DiffAugConfig(ada=True, ada_signal="heldout", ada_heldout=0.5))
    labels = np.array([0] * 10 + [1])  # one file in class 1
    for seed in range(20):
        c = Config(diffaug=cfg.diffaug, train=type(cfg.train)(seed=seed))
        held = heldout_indices(11, c, labels)
        assert 10 not in held and len(held) == c.diffaug.n_heldout(11)


def test_bad_long_files_name_the_file_and_problem(tmp_path):
    root = tmp_path
    _write(root / "data", "a", 0, np.ones((F, 200)) + np.arange(200))
    p = _write(root / "data", "a", 1, np.ones((F + 3, 100)) + np.arange(100))
    with pytest.raises(DataError, match=f"{p.name}.*35 frequency bins, expected 32"):
        load_dataset(_cfg(root, use_cache=False), progress=False)
    os.remove(p)
    p = _write(root / "data", "a", 2, np.ones((F, 40)) + np.arange(40))
    with pytest.raises(DataError, match=f"{p.name}.*40 time frames, fewer than a window's 64"):
        load_dataset(_cfg(root, use_cache=False), progress=False)
    ds = load_dataset(_cfg(root, use_cache=False, shape_policy="crop_pad"), progress=False)
    np.testing.assert_array_equal(ds.lengths, [200, 64])  # the short one padded to a window


def test_train_on_windows_of_long_high_first_files_and_generate(tmp_path):
    """Two classes of 40 x 200 files, row 0 = the highest frequency, the top row dropped:
    windows 32 x 64 (non-square), a few steps, then CSVs of 32 x 64 written high first."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    f = np.arange(F)[:, None]  # low first: energy rises with frequency in class "up"
    for cls, slope in (("up", 0.05), ("down", -0.05)):
        for i in range(2):
            low_first = -6 + slope * f + rng.normal(0, 0.3, (F, 200))
            top = np.full((1, 200), 99.0)  # a Nyquist row to drop: far outside the data
            _write(data, cls, i, np.vstack([low_first, top])[::-1])  # high first on disk
    work = tmp_path / "run"
    args = helpers.tiny_args(data, work, 2, tmp_path / "cache", "--data.shape", "32", "64",
                             "--data.freq_order", "high_first", "--data.drop_top_row")
    assert train_cli.main(args) == 0
    out = tmp_path / "gen"
    assert gen_main([str(work), "--n", "3", "--out", str(out), "--format", "csv"]) == 0
    files = sorted(os.path.join(d, n) for d, _, ns in os.walk(out) for n in ns
                   if n.endswith(".csv"))
    assert len(files) == 3
    for path in files:
        a = np.loadtxt(path, delimiter=",")
        assert a.shape == (F, T)  # written as the files are: rows = frequency, high first
    moments = np.load(work / "moments.npz")
    mean = np.asarray(moments["mean"])
    assert mean.shape == (F,)  # the dropped row is gone, not averaged in (it is 99)
    assert mean.max() < 0
