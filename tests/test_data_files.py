""".npy data files, data.pattern, data.freq_order and data.drop_top_row: discovery, reading
(read_array: no size check; parse_csv: with it), their errors, the cache, the flags, and
generate writing a high_first run's files in the data's own frequency order."""

import argparse
import json
import os
import shutil

import numpy as np
import pytest

import specgan_jax.data.csv as data
from specgan_jax.cli import flags
from specgan_jax.cli.generate import file_order, main as gen_main, write_outputs
from specgan_jax.config import Config, DataConfig
from specgan_jax.data.cache import load_dataset
from specgan_jax.data.csv import discover, parse_csv
from specgan_jax.data.files import read_array
from specgan_jax.errors import DataError

F, T = 8, 6
RUN_V0 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "run_v0")


def arr(seed, shape=(F, T)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def save_npy(path, a):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:  # np.save(name) would append ".npy" to "x.NPY"
        np.save(f, a)
    return str(path)


def save_csv(path, a):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savetxt(path, a, delimiter=",", fmt="%.9g")  # 9 digits: float32 round-trips exactly
    return str(path)


def cfg(tmp_path=None, **kw):
    cache = {"cache_dir": str(tmp_path / "cache")} if tmp_path is not None else {
        "use_cache": False}
    return DataConfig(**{"n_freq": F, "n_time": T, **cache, **kw})


def names(paths, root):
    return [os.path.relpath(p, root) for p in paths]


# ----------------------------------------------------------------------------------------------
# .npy files


def test_npy_and_csv_side_by_side_in_one_folder(tmp_path):
    root = tmp_path / "mix"
    a, b, c = arr(1), arr(2), arr(3).astype(np.float64)
    save_npy(root / "a.npy", a)
    save_csv(root / "b.csv", b)
    save_npy(root / "c.NPY", c)  # the suffix in any case; float64 is read as float32
    (root / "notes.txt").write_text("not data")
    ds = load_dataset(cfg(path=str(root)), progress=False)
    assert names(ds.paths, root) == ["a.npy", "b.csv", "c.NPY"] and ds.class_names == ["mix"]
    np.testing.assert_array_equal(ds.x, np.stack([a, b, c.astype(np.float32)]))


def test_npy_in_class_folders_and_file_lists(tmp_path):
    root = tmp_path / "src"
    x = {f"{k}/{i}.npy": arr(10 * j + i) for j, k in enumerate(("lo", "hi")) for i in range(2)}
    for rel, a in x.items():
        save_npy(root / rel, a)
    ds = load_dataset(cfg(path=str(root)), progress=False)
    assert ds.class_names == ["hi", "lo"] and ds.labels.tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(ds.x, np.stack([x[r] for r in names(ds.paths, root)]))
    lst = tmp_path / "list.txt"
    lst.write_text("src/lo/1.npy\tquiet\nsrc/hi/0.npy\tloud\n")
    ds = load_dataset(cfg(file_list=str(lst)), progress=False)
    assert ds.class_names == ["loud", "quiet"]
    np.testing.assert_array_equal(ds.x, np.stack([x["hi/0.npy"], x["lo/1.npy"]]))


def _bad_npys(tmp_path):
    """(file, message fragment) for every kind of bad .npy."""
    out = []

    def add(name, write, fragment):
        p = tmp_path / name
        write(p)
        out.append((str(p), fragment))

    add("text.npy", lambda p: p.write_text("1,2,3\n4,5,6\n"), "not a valid .npy file")
    add("cut.npy", lambda p: p.write_bytes(_npy_bytes(arr(0))[:-20]), "not a valid .npy file")
    add("objects.npy", lambda p: np.save(p, np.array([[1, "a"]], dtype=object)),
        "not a valid .npy file")
    add("archive.npy", lambda p: open(p, "wb").write(_npz_bytes(tmp_path)), ".npz archive")
    add("flat.npy", lambda p: np.save(p, np.arange(5.0)), "not 2-D: the array's shape is (5,)")
    add("cube.npy", lambda p: np.save(p, np.zeros((2, 3, 4))),
        "not 2-D: the array's shape is (2, 3, 4)")
    add("words.npy", lambda p: np.save(p, np.array([["a", "b"], ["c", "d"]])),
        "non-numeric dtype <U1")
    add("complex.npy", lambda p: np.save(p, arr(0) + 1j), "non-numeric dtype complex64")
    nan = arr(0)
    nan[2, 3], nan[5, 1] = np.nan, np.inf
    add("nan.npy", lambda p: np.save(p, nan),
        "nan is not a finite number (NaN or infinity) at row 2, column 3 (0-based; 2 such")
    add("const.npy", lambda p: np.save(p, np.full((F, T), 4.5, np.float32)),
        "constant file (every value is 4.5)")
    add("empty.npy", lambda p: np.save(p, np.zeros((0, T))), "empty array (shape (0, 6))")
    return out


def _npy_bytes(a):
    import io
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _npz_bytes(tmp_path):
    p = tmp_path / "z.npz"
    np.savez(p, x=arr(0))
    return p.read_bytes()


def test_every_bad_npy_gets_a_one_line_error_naming_it(tmp_path):
    for path, fragment in _bad_npys(tmp_path):
        with pytest.raises(DataError) as e:
            read_array(path, cfg())
        msg = str(e.value)
        assert msg.startswith(path + ": ") and fragment in msg and "\n" not in msg, msg


def test_bad_npy_skipped_by_name(tmp_path):
    root = tmp_path / "d"
    save_npy(root / "good.npy", arr(0))
    save_npy(root / "flat.npy", np.arange(4.0))
    ds = load_dataset(cfg(path=str(root), on_bad_file="skip"), progress=False)
    assert names(ds.paths, root) == ["good.npy"]
    assert ds.skipped == [(str(root / "flat.npy"), "not 2-D: the array's shape is (4,); "
                                                    "expected one spectrogram, rows x columns")]


# ----------------------------------------------------------------------------------------------
# data.pattern


def test_pattern_selects_by_name_in_folders(tmp_path):
    root = tmp_path / "p"
    for n in ("window_1.csv", "window_2.csv", "other.csv", "window_3.txt", "window_4.npy"):
        (save_npy if n.endswith(".npy") else save_csv)(root / n, arr(len(n)))
    (root / "window_3.txt").write_text("1,2\n3,4\n")  # matches the glob but is no data file
    paths, _, _ = discover(cfg(path=str(root), pattern="window_*"))
    assert names(paths, root) == ["window_1.csv", "window_2.csv", "window_4.npy"]
    paths, _, _ = discover(cfg(path=str(root), pattern="window_*.csv"))
    assert names(paths, root) == ["window_1.csv", "window_2.csv"]
    with pytest.raises(DataError) as e:
        discover(cfg(path=str(root), pattern="Window_*.csv"))  # case-sensitive
    assert str(e.value) == (f"{root}: no .csv or .npy file matches data.pattern "
                            "'Window_*.csv' (looked in the folder and its direct subfolders)")


def test_pattern_in_class_folders_and_file_lists(tmp_path):
    root = tmp_path / "c"
    for rel in ("a/w_1.csv", "a/x_1.csv", "b/x_2.csv", "b/w_2.npy"):
        (save_npy if rel.endswith(".npy") else save_csv)(root / rel, arr(len(rel)))
    paths, labels, classes = discover(cfg(path=str(root), pattern="w_*"))
    assert names(paths, root) == ["a/w_1.csv", "b/w_2.npy"] and classes == ["a", "b"]
    # a class folder without a matching file is not a class
    paths, labels, classes = discover(cfg(path=str(root), pattern="*_1.csv"))
    assert classes == ["a"] and labels == [0, 0] and len(paths) == 2
    lst = tmp_path / "list.txt"
    lst.write_text("c/a/w_1.csv\tA\nc/b/x_2.csv\tB\nc/missing/x_9.csv\tB\n")
    paths, labels, classes = discover(cfg(file_list=str(lst), pattern="w_*"))
    # x_2 is left out and so is its class; the missing x_9 is never looked at
    assert names(paths, root) == ["a/w_1.csv"] and classes == ["A"]
    with pytest.raises(DataError, match=r"list.txt: no listed file's name matches "
                                        r"data.pattern 'z\*'$"):
        discover(cfg(file_list=str(lst), pattern="z*"))


def test_empty_pattern_is_a_config_error():
    with pytest.raises(ValueError, match="data.pattern must not be empty"):
        DataConfig(pattern=" ")


# ----------------------------------------------------------------------------------------------
# data.freq_order and data.drop_top_row (read_array: no size check)


def test_high_first_files_are_flipped_to_low_first(tmp_path):
    a = arr(0)  # low first
    p_low = save_csv(tmp_path / "low.csv", a)
    p_high = save_npy(tmp_path / "high.npy", a[::-1])
    np.testing.assert_array_equal(read_array(p_low, cfg()), a)
    np.testing.assert_array_equal(read_array(p_high, cfg(freq_order="high_first")), a)
    # rows = time: the frequency axis is the file's columns
    p_t = save_csv(tmp_path / "t.csv", a.T[:, ::-1])
    np.testing.assert_array_equal(
        parse_csv(p_t, cfg(orientation="time_rows", freq_order="high_first")), a)


def test_drop_top_row_drops_the_highest_frequency_in_the_user_s_order(tmp_path):
    a = arr(0, (F + 1, T))  # low first; row F is the highest frequency
    p = save_csv(tmp_path / "a.csv", a)
    np.testing.assert_array_equal(parse_csv(p, cfg(drop_top_row=True)), a[:F])
    p = save_csv(tmp_path / "h.csv", a[::-1])  # high first: the file's row 0 is dropped
    np.testing.assert_array_equal(
        parse_csv(p, cfg(drop_top_row=True, freq_order="high_first")), a[:F])
    p = save_npy(tmp_path / "t.npy", a.T)  # rows = time: the last column
    np.testing.assert_array_equal(
        parse_csv(p, cfg(drop_top_row=True, orientation="time_rows")), a[:F])
    with pytest.raises(DataError, match=r"a.csv: wrong size: 9 rows x 6 columns, expected 8 x 6"):
        parse_csv(str(tmp_path / "a.csv"), cfg())
    one = save_npy(tmp_path / "one.npy", arr(0, (1, T)))
    with pytest.raises(DataError, match="one.npy: only 1 frequency bin; data.drop_top_row"):
        read_array(one, cfg(drop_top_row=True))


def test_read_array_has_no_size_check_parse_csv_has(tmp_path):
    a = arr(0, (5, 11))
    p = save_npy(tmp_path / "odd.npy", a)
    x = read_array(p, cfg())
    assert x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_array_equal(x, a)
    np.testing.assert_array_equal(read_array(p, cfg(orientation="time_rows")), a.T)
    with pytest.raises(DataError, match="wrong size: 5 rows x 11 columns, expected 8 x 6"):
        parse_csv(p, cfg())
    np.testing.assert_array_equal(parse_csv(p, cfg(shape_policy="crop_pad"))[:5], a[:, :T])


def test_129_rows_train_at_128_with_drop_top_row(tmp_path):
    a = arr(0, (129, 128))
    save_npy(tmp_path / "d" / "s.npy", a)
    ds = load_dataset(DataConfig(path=str(tmp_path / "d"), drop_top_row=True, use_cache=False),
                      progress=False)
    assert ds.x.shape == (1, 128, 128)
    np.testing.assert_array_equal(ds.x[0], a[:128])


# ----------------------------------------------------------------------------------------------
# The cache


def count_parses(monkeypatch):
    calls = []
    real = data.parse_csv
    monkeypatch.setattr(data, "parse_csv", lambda p, c: calls.append(p) or real(p, c))
    return calls


def test_new_options_and_npy_files_invalidate_the_cache(tmp_path, monkeypatch):
    root = tmp_path / "d"
    a = arr(0, (F + 1, T))
    save_npy(root / "w_0.npy", a)
    save_csv(root / "w_1.csv", arr(1, (F + 1, T)))
    calls = count_parses(monkeypatch)
    base = dict(path=str(root), drop_top_row=True)
    load_dataset(cfg(tmp_path, **base), progress=False)
    assert len(calls) == 2
    assert load_dataset(cfg(tmp_path, **base), progress=False).from_cache and len(calls) == 2
    for change in ({"freq_order": "high_first"}, {"pattern": "w_0*"}):
        ds = load_dataset(cfg(tmp_path, **base, **change), progress=False)
        assert not ds.from_cache
    ds = load_dataset(cfg(tmp_path, **base, freq_order="high_first"), progress=False)
    assert ds.from_cache
    np.testing.assert_array_equal(ds.x[0], a[::-1][:F])
    assert len(calls) == 2 + 2 + 1
    np.save(root / "w_0.npy", a + 1)  # rewritten: another mtime (and content)
    os.utime(root / "w_0.npy", ns=(1, 1))
    ds = load_dataset(cfg(tmp_path, **base), progress=False)
    assert not ds.from_cache
    np.testing.assert_array_equal(ds.x[0], (a + 1)[:F])


# ----------------------------------------------------------------------------------------------
# Flags and generate


def test_flags_set_the_new_options():
    p = argparse.ArgumentParser()
    flags.add_config_flags(p, Config)
    ns = p.parse_args(["--data.pattern", "window_*.csv", "--data.freq_order", "high_first",
                       "--data.drop_top_row"])
    assert flags.overrides_from_args(ns, Config) == {
        "data": {"pattern": "window_*.csv", "freq_order": "high_first", "drop_top_row": True}}
    with pytest.raises(SystemExit):
        p.parse_args(["--data.freq_order", "upside_down"])
    helps = {a.dest: a.help for a in p._actions}
    assert "highest (many radio instruments)" in helps["data.freq_order"]
    assert "Nyquist" in helps["data.drop_top_row"] and "fnmatch" in helps["data.pattern"]


def test_file_order_flips_the_frequency_axis_only_for_high_first():
    x = np.arange(2 * 3 * 4.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(file_order(x, True, False), x)
    np.testing.assert_array_equal(file_order(x, True, True), x[:, ::-1])
    np.testing.assert_array_equal(file_order(x, False, True), x[:, :, ::-1])


def test_write_outputs_npy_in_file_order_png_low_at_the_bottom(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 8, 6)).astype(np.float32)
    for high_first in (False, True):
        for fmt in ("npy", "png"):
            write_outputs(x, str(tmp_path / str(high_first)), fmt, "s", ["a", "b"], True, "t",
                          high_first=high_first)
    np.testing.assert_array_equal(np.load(tmp_path / "False" / "s.npy"), x)
    np.testing.assert_array_equal(np.load(tmp_path / "True" / "s.npy"), x[:, ::-1])
    assert (tmp_path / "False" / "s.png").read_bytes() == (tmp_path / "True" / "s.png").read_bytes()


def test_generate_writes_a_high_first_run_s_csvs_high_first(tmp_path, jax_cache):
    """generate reads data.freq_order from the run's config.json (a copy of the committed
    run_v0 fixture, an unconditional run, with the option set both ways)."""
    run = tmp_path / "run"
    shutil.copytree(RUN_V0, run)
    cfg_path = run / "config.json"
    for order in ("low_first", "high_first"):
        c = json.loads(cfg_path.read_text())
        c["data"]["freq_order"] = order
        cfg_path.write_text(json.dumps(c))
        assert gen_main([str(run), "--n", "2", "--out", str(tmp_path / order)]) == 0
    csv = sorted(os.listdir(tmp_path / "low_first"))
    assert len(csv) == 2
    for name in csv:
        low = np.loadtxt(tmp_path / "low_first" / name, delimiter=",")
        high = np.loadtxt(tmp_path / "high_first" / name, delimiter=",")
        assert low.shape == (128, 128) and not np.array_equal(low, high)
        np.testing.assert_array_equal(high, low[::-1])


def test_compute_moments_reads_the_new_options(tmp_path):
    from specgan_jax.cli.moments import main as moments_main
    from specgan_jax.data.moments import Moments
    low = [arr(i, (128, 128)) + np.linspace(0, 5, 128)[:, None] for i in range(3)]
    for i, a in enumerate(low):
        save_npy(tmp_path / "low" / f"w_{i}.npy", a)
        save_npy(tmp_path / "high" / f"w_{i}.npy", np.vstack([a, arr(9, (1, 128))])[::-1])
    (tmp_path / "high" / "other.npy").write_text("not an array")  # left out by the pattern
    common = ["--no-cache", "--quiet"]
    assert moments_main([str(tmp_path / "low"), "--out", str(tmp_path / "l.npz"), *common]) == 0
    assert moments_main([str(tmp_path / "high"), "--out", str(tmp_path / "h.npz"), *common,
                         "--freq-order", "high_first", "--drop-top-row",
                         "--pattern", "w_*"]) == 0
    m_low, m_high = Moments.load(str(tmp_path / "l.npz")), Moments.load(str(tmp_path / "h.npz"))
    assert m_low.mean[0] < m_low.mean[-1]  # low first: the ramp rises with the row
    np.testing.assert_array_equal(m_high.mean, m_low.mean)
    np.testing.assert_array_equal(m_high.std, m_low.std)
