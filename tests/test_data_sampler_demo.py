"""Device-resident dataset + sampler, and the procedural demo dataset."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from specgan_jax.config import AugmentConfig, DataConfig
from specgan_jax.data.cache import load_dataset
from specgan_jax.data.demo import CLASS_NAMES, make_demo_dataset, write_csv_folders
from specgan_jax.data.moments import compute_moments
from specgan_jax.data.normalize import normalize
from specgan_jax.data.sampler import DeviceDataset, build_dataset, make_sampler, to_device

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
F, T = 8, 12


def small(n=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, F, T)).astype(np.float32) + np.arange(n, dtype=np.float32)[:, None, None]
    return x, np.arange(n, dtype=np.int32) % 3


def test_build_and_sample_shapes_without_augmentation():
    x, labels = small()
    m = compute_moments(x)
    host = build_dataset(x, labels, m)
    assert host.x.shape == (10, F, T, 1) and host.x.dtype == np.float32 and host.n == 10
    np.testing.assert_array_equal(host.x[..., 0], normalize(x, m))
    data = to_device(host)
    assert isinstance(data.x, jax.Array) and isinstance(data.labels, jax.Array)
    sampler = make_sampler(AugmentConfig(time_shift_prob=0.0), with_labels=True)
    fn = jax.jit(sampler, static_argnums=(2, 3))
    xb, lb = fn(data, jax.random.key(0), 5, 4)
    assert xb.shape == (5, 4, F, T, 1) and xb.dtype == jnp.float32 and lb.shape == (5, 4)
    # Every drawn example is an exact row of the dataset, its label carried along.
    rows = np.asarray(host.x)[:, :, :, 0].reshape(10, -1)
    for xe, le in zip(np.asarray(xb).reshape(20, -1), np.asarray(lb).reshape(20)):
        i = np.flatnonzero((rows == xe).all(axis=1))
        assert i.size == 1 and labels[i[0]] == le
    # Fresh batch per critic update, and different keys give different draws.
    assert not np.array_equal(np.asarray(xb[0]), np.asarray(xb[1]))
    xb2, _ = fn(data, jax.random.key(1), 5, 4)
    assert not np.array_equal(np.asarray(xb), np.asarray(xb2))
    # DeviceDataset is a pytree with a static n (jit over it without recompiling per call).
    leaves = jax.tree_util.tree_leaves(data)
    assert len(leaves) == 2


def test_sampler_default_augmentation_and_bf16_storage():
    x, labels = small(n=6)
    m = compute_moments(x)
    host = build_dataset(x, labels, m, storage_dtype="bfloat16")
    assert host.x.dtype == jnp.bfloat16
    data = to_device(host)
    xb = jax.jit(make_sampler(AugmentConfig()), static_argnums=(2, 3))(
        data, jax.random.key(3), 2, 8)
    assert xb.shape == (2, 8, F, T, 1) and xb.dtype == jnp.float32
    assert float(jnp.abs(xb).max()) <= 1
    # bf16 keeps 8 bits of mantissa: |error| <= 2^-9 relative on [-1, 1] values.
    ref = normalize(x, m)
    np.testing.assert_allclose(np.asarray(data.x[..., 0], np.float32), ref, atol=2 ** -8)


def test_indices_never_reach_padding():
    # A padded dataset (n=3 real rows of 4): row 3 must never be drawn.
    x = np.zeros((4, F, T, 1), np.float32)
    x[3] = 1.0
    data = to_device(DeviceDataset(x=x, labels=np.zeros(4, np.int32), n=3))
    xb = jax.jit(make_sampler(AugmentConfig(time_shift_prob=0.0)), static_argnums=(2, 3))(
        data, jax.random.key(0), 4, 64)
    assert float(xb.max()) == 0.0


SHARD_SCRIPT = r"""
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import jax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from specgan_jax.data.sampler import DeviceDataset, to_device, make_sampler
from specgan_jax.config import AugmentConfig
mesh = Mesh(np.array(jax.devices()), ("data",))
x = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3, 1)
d = to_device(DeviceDataset(x=x, labels=np.arange(5, dtype=np.int32), n=5),
              NamedSharding(mesh, P("data")))
assert d.x.shape == (6, 2, 3, 1) and d.n == 5, d.x.shape
assert len(d.x.addressable_shards) == 2 and d.x.addressable_shards[0].data.shape[0] == 3
np.testing.assert_array_equal(np.asarray(d.x)[:5], x)
b = jax.jit(make_sampler(AugmentConfig(time_shift_prob=0.0)), static_argnums=(2, 3))(
    d, jax.random.key(0), 2, 4)
assert b.shape == (2, 4, 2, 3, 1)
print("OK")
"""


def test_to_device_shards_along_axis0_and_pads():
    # Two fake CPU devices need a fresh process (the device count is fixed at JAX start-up).
    r = subprocess.run([sys.executable, "-c", SHARD_SCRIPT], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-2000:]


def test_demo_deterministic_and_class_structure():
    x, labels, names = make_demo_dataset(3, seed=5)
    assert names == CLASS_NAMES and x.shape == (12, 128, 128) and x.dtype == np.float32
    assert labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    x2, _, _ = make_demo_dataset(5, seed=5)
    np.testing.assert_array_equal(x[:3], x2[:3])  # sample i independent of n_per_class
    x3, _, _ = make_demo_dataset(3, seed=6)
    assert not np.array_equal(x, x3)
    assert np.isfinite(x).all()
    # Log-magnitude units: floor around log(e^-7) .. peaks near log(1); low rows louder floor.
    assert -14 < x.min() and x.max() < 3 and np.median(x) < -4
    floor = np.median(x, axis=(0, 2))  # [F]
    assert floor[:10].mean() > floor[-10:].mean()
    # Classes differ in character: clicks put broadband energy into single frames, so the
    # per-frame energy has by far the largest coefficient of variation over time.
    energy = np.exp(x).sum(axis=1)  # [N, T] linear energy per frame
    cv = [(energy[labels == c].std(axis=1) / energy[labels == c].mean(axis=1)).mean()
          for c in range(4)]
    assert np.argmax(cv) == CLASS_NAMES.index("click")


def test_demo_csv_roundtrip_and_script(tmp_path):
    x, labels, names = make_demo_dataset(2, seed=0)
    paths = write_csv_folders(str(tmp_path / "demo"), x, labels, names)
    assert len(paths) == 8 and sorted(os.listdir(tmp_path / "demo")) == sorted(names)
    ds = load_dataset(DataConfig(path=str(tmp_path / "demo"), use_cache=False), progress=False)
    order = [names.index(c) for c in ds.class_names]  # loader sorts class names
    expect = np.concatenate([x[labels == k] for k in order])
    # %.6g text: 6 significant digits -> relative error <= 5e-6.
    np.testing.assert_allclose(ds.x, expect, rtol=5e-6)
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "make_demo_data.py"),
                        "--out", str(tmp_path / "s"), "--n-per-class", "1", "--seed", "0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "wrote 4 CSV files" in r.stdout
    a = np.loadtxt(tmp_path / "s" / "chirp" / "chirp_00000.csv", delimiter=",")
    np.testing.assert_allclose(a, make_demo_dataset(1, 0)[0][1], rtol=5e-6)


def test_compute_moments_script(tmp_path):
    x, labels, names = make_demo_dataset(2, seed=1)
    write_csv_folders(str(tmp_path / "d"), x, labels, names)
    script = os.path.join(REPO, "scripts", "compute_moments.py")
    out = tmp_path / "m.npz"
    r = subprocess.run([sys.executable, script, str(tmp_path / "d"), "--out", str(out),
                        "--no-cache", "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        np.testing.assert_allclose(z["mean"], x.astype(np.float64).mean(axis=(0, 2)), rtol=1e-6)
    (tmp_path / "d" / "chirp" / "zz_bad.csv").write_text("1,2\n3,oops\n")
    r = subprocess.run([sys.executable, script, str(tmp_path / "d"), "--out", str(out),
                        "--no-cache", "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "zz_bad.csv, line 2, column 2: non-numeric value 'oops'" in r.stderr
    assert "Traceback" not in r.stderr
