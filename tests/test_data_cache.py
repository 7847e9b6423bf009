"""Discovery, the parse cache (hit, invalidation, atomicity) and the parallel parser."""

import json
import os

import numpy as np
import pytest

import specgan_jax.data.cache as cache
import specgan_jax.data.csv as data
from specgan_jax.config import DataConfig
from specgan_jax.data.cache import load_dataset
from specgan_jax.errors import DataError

F, T = 8, 6


def write_spec(path, seed):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    a = np.random.default_rng(seed).normal(size=(F, T))
    np.savetxt(path, a, delimiter=",", fmt="%.6g")
    return np.float32(np.loadtxt(path, delimiter=","))


@pytest.fixture
def classes(tmp_path):
    """tmp/src/{b_cls, a_cls} with 3 and 2 files -> (root, {relpath: array})."""
    root = tmp_path / "src"
    arrays = {}
    for cls, n in (("b_cls", 3), ("a_cls", 2)):
        for i in range(n):
            rel = f"{cls}/{i}.csv"
            arrays[rel] = write_spec(str(root / rel), hash(rel) % 1000)
    return root, arrays


def cfg_for(root, tmp_path, **kw):
    return DataConfig(path=str(root), n_freq=F, n_time=T, cache_dir=str(tmp_path / "cache"), **kw)


def count_parses(monkeypatch):
    calls = []
    real = data.parse_csv
    monkeypatch.setattr(data, "parse_csv", lambda p, c: calls.append(p) or real(p, c))
    return calls


def test_class_folders_sorted_with_labels(classes, tmp_path):
    root, arrays = classes
    ds = load_dataset(cfg_for(root, tmp_path), progress=False)
    assert ds.class_names == ["a_cls", "b_cls"]
    rel = [os.path.relpath(p, root) for p in ds.paths]
    assert rel == ["a_cls/0.csv", "a_cls/1.csv", "b_cls/0.csv", "b_cls/1.csv", "b_cls/2.csv"]
    assert ds.labels.tolist() == [0, 0, 1, 1, 1] and ds.labels.dtype == np.int32
    for i, r in enumerate(rel):
        np.testing.assert_array_equal(ds.x[i], arrays[r])
    assert ds.x.dtype == np.float32 and ds.skipped == []


def test_flat_folder_is_one_class(tmp_path):
    write_spec(str(tmp_path / "flat" / "x.csv"), 1)
    write_spec(str(tmp_path / "flat" / "y.csv"), 2)
    ds = load_dataset(cfg_for(tmp_path / "flat", tmp_path), progress=False)
    assert ds.class_names == ["flat"] and ds.labels.tolist() == [0, 0]


def test_mixed_layout_is_an_error(classes, tmp_path):
    root, _ = classes
    write_spec(str(root / "stray.csv"), 3)
    with pytest.raises(DataError, match="both at the top level and in subfolders"):
        load_dataset(cfg_for(root, tmp_path), progress=False)


def test_file_list(classes, tmp_path):
    root, arrays = classes
    lst = tmp_path / "list.txt"
    lst.write_text(f"# comment\nsrc/b_cls/1.csv\tloud\n\n{root}/a_cls/0.csv\tquiet\n")
    ds = load_dataset(DataConfig(file_list=str(lst), n_freq=F, n_time=T, use_cache=False),
                      progress=False)
    assert ds.class_names == ["loud", "quiet"] and ds.labels.tolist() == [0, 1]
    np.testing.assert_array_equal(ds.x[0], arrays["b_cls/1.csv"])
    lst.write_text("src/b_cls/1.csv\nsrc/missing.csv\n")
    with pytest.raises(DataError, match=r"list\.txt, line 2: listed file .*missing\.csv"):
        load_dataset(DataConfig(file_list=str(lst), n_freq=F, n_time=T), progress=False)


def test_second_load_skips_parsing(classes, tmp_path, monkeypatch):
    root, _ = classes
    cfg = cfg_for(root, tmp_path)
    calls = count_parses(monkeypatch)
    first = load_dataset(cfg, progress=False)
    assert len(calls) == 5 and not first.from_cache
    second = load_dataset(cfg, progress=False)
    assert len(calls) == 5, "a reload with unchanged files must not parse"
    assert second.from_cache and isinstance(second.x, np.memmap)
    np.testing.assert_array_equal(np.asarray(second.x), np.asarray(first.x))
    assert second.paths == first.paths and second.class_names == first.class_names
    np.testing.assert_array_equal(second.labels, first.labels)


@pytest.mark.parametrize("change", ["mtime", "size", "add", "remove", "option"])
def test_cache_invalidation(classes, tmp_path, monkeypatch, change):
    root, _ = classes
    cfg = cfg_for(root, tmp_path)
    load_dataset(cfg, progress=False)
    calls = count_parses(monkeypatch)
    target = str(root / "a_cls" / "1.csv")
    n_expected = 5
    if change == "mtime":
        st = os.stat(target)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    elif change == "size":
        new = write_spec(target, 999)  # same shape, different text (and size)
    elif change == "add":
        write_spec(str(root / "a_cls" / "2.csv"), 7)
        n_expected = 6
    elif change == "remove":
        os.remove(target)
        n_expected = 4
    else:
        cfg = cfg_for(root, tmp_path, orientation="time_rows", shape_policy="crop_pad",
                      windows="off")  # (windows would read the longer axis as long files)
    ds = load_dataset(cfg, progress=False)
    assert not ds.from_cache and len(calls) == n_expected and len(ds.paths) == n_expected
    if change == "size":
        np.testing.assert_array_equal(ds.x[1], new)
    # ...and the rewritten cache is valid again.
    assert load_dataset(cfg, progress=False).from_cache and len(calls) == n_expected


def test_corrupt_or_missing_cache_files_reparse(classes, tmp_path, monkeypatch):
    root, _ = classes
    cfg = cfg_for(root, tmp_path)
    load_dataset(cfg, progress=False)
    npy, manifest = cache._cache_paths(cfg)
    with open(manifest, "w") as f:
        f.write("{not json")
    calls = count_parses(monkeypatch)
    assert not load_dataset(cfg, progress=False).from_cache and len(calls) == 5
    os.remove(npy)
    assert not load_dataset(cfg, progress=False).from_cache and len(calls) == 10
    with open(manifest) as f:
        m = json.load(f)
    assert m["options"]["orientation"] == "freq_rows" and len(m["files"]) == 5
    assert {"paths", "labels", "class_names", "skipped"} <= set(m)


def test_failed_parse_leaves_no_partial_cache(classes, tmp_path):
    root, _ = classes
    cfg = cfg_for(root, tmp_path)
    load_dataset(cfg, progress=False)
    (root / "a_cls" / "bad.csv").write_text("1;2\n")
    with pytest.raises(DataError, match="delimiter"):
        load_dataset(cfg, progress=False)
    npy, manifest = cache._cache_paths(cfg)
    # The old manifest is gone (invalidated before writing) and no temporary file remains.
    assert not os.path.exists(manifest)
    assert [n for n in os.listdir(os.path.dirname(npy)) if n.startswith(".tmp")] == []


def test_no_cache_mode_writes_nothing(classes, tmp_path):
    root, arrays = classes
    ds = load_dataset(cfg_for(root, tmp_path, use_cache=False), progress=False)
    assert not isinstance(ds.x, np.memmap) and ds.x.shape == (5, F, T)
    assert not os.path.exists(tmp_path / "cache")


def test_parallel_parse_matches_serial(tmp_path, monkeypatch):
    # Force the process pool (spawn, 2 workers) on a small set: chunks of 3 files.
    root = tmp_path / "many"
    arrays = [write_spec(str(root / "c" / f"{i:02d}.csv"), i) for i in range(10)]
    (root / "c" / "05.csv").write_text("")  # one bad file, found in a worker
    monkeypatch.setattr(data, "MIN_FILES_FOR_POOL", 1)
    monkeypatch.setattr(data, "CHUNK", 3)
    ds = load_dataset(cfg_for(root, tmp_path, workers=2, on_bad_file="skip"), progress=False)
    assert len(ds.paths) == 9 and [os.path.basename(p) for p, _ in ds.skipped] == ["05.csv"]
    np.testing.assert_array_equal(np.asarray(ds.x), np.stack(arrays[:5] + arrays[6:]))
    # With on_bad_file="error" the worker's DataError reaches the caller intact.
    with pytest.raises(DataError, match=r"05\.csv: empty file"):
        load_dataset(cfg_for(root, tmp_path, workers=2, use_cache=False), progress=False)
