"""Every kind of malformed CSV gets a DataError naming the file, line/column and the problem."""

import os

import numpy as np
import pytest

from specgan_jax.config import DataConfig
from specgan_jax.data.cache import load_dataset
from specgan_jax.data.csv import parse_csv
from specgan_jax.errors import DataError

F, T = 8, 6  # small expected shape keeps the files tiny


def cfg(**kw):
    return DataConfig(**{"n_freq": F, "n_time": T, **kw})


def good(seed=0, shape=(F, T)):
    return np.random.default_rng(seed).normal(size=shape)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def csv_text(a, delim=","):
    return "\n".join(delim.join(f"{v:.6g}" for v in row) for row in a) + "\n"


def error_of(path, **kw):
    with pytest.raises(DataError) as e:
        parse_csv(path, cfg(**kw))
    return e.value


def test_good_file_parses_exactly(tmp_path):
    a = good()
    x = parse_csv(write(tmp_path / "a.csv", csv_text(a)), cfg())
    assert x.shape == (F, T) and x.dtype == np.float32
    # %.6g text -> float32: 6 significant digits survive float32 (7.2 digits), rtol 1e-6.
    np.testing.assert_allclose(x, np.float32(np.array([[float(f"{v:.6g}") for v in r] for r in a])),
                               rtol=1e-6)


def test_header_row(tmp_path):
    text = ",".join(f"f{j}" for j in range(T)) + "\n" + csv_text(good())
    e = error_of(write(tmp_path / "h.csv", text))
    assert "header" in e.problem and e.line == 1 and "h.csv, line 1:" in str(e)


def test_ragged_row(tmp_path):
    lines = csv_text(good()).splitlines()
    lines[4] = ",".join(lines[4].split(",")[:-1])  # line 5 loses a column
    e = error_of(write(tmp_path / "r.csv", "\n".join(lines) + "\n"))
    assert e.line == 5 and "ragged" in e.problem and f"{T - 1} columns" in e.problem


def test_extra_column(tmp_path):
    lines = csv_text(good()).splitlines()
    lines[2] += ",1.0"
    e = error_of(write(tmp_path / "r.csv", "\n".join(lines) + "\n"))
    assert e.line == 3 and "ragged" in e.problem and f"{T + 1} columns" in e.problem


def test_non_numeric_cell(tmp_path):
    lines = csv_text(good()).splitlines()
    cells = lines[3].split(",")
    cells[2] = "abc"
    lines[3] = ",".join(cells)
    e = error_of(write(tmp_path / "n.csv", "\n".join(lines) + "\n"))
    assert (e.line, e.column) == (4, 3) and "non-numeric value 'abc'" in e.problem
    assert "n.csv, line 4, column 3: non-numeric" in str(e)


def test_empty_cell(tmp_path):
    lines = csv_text(good()).splitlines()
    cells = lines[6].split(",")
    cells[5] = ""
    lines[6] = ",".join(cells)
    e = error_of(write(tmp_path / "e.csv", "\n".join(lines) + "\n"))
    assert (e.line, e.column) == (7, 6) and "empty cell" in e.problem


@pytest.mark.parametrize("token", ["nan", "NaN", "inf", "-inf", "Infinity"])
def test_nan_and_inf(tmp_path, token):
    lines = csv_text(good()).splitlines()
    cells = lines[1].split(",")
    cells[4] = token
    lines[1] = ",".join(cells)
    e = error_of(write(tmp_path / "x.csv", "\n".join(lines) + "\n"))
    assert (e.line, e.column) == (2, 5) and "not a finite number" in e.problem


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file(tmp_path, text):
    e = error_of(write(tmp_path / "empty.csv", text))
    assert e.problem == "empty file" and "empty.csv" in str(e)


@pytest.mark.parametrize("delim,word", [(";", "semicolons"), ("\t", "tabs"), (" ", "spaces")])
def test_wrong_delimiter(tmp_path, delim, word):
    e = error_of(write(tmp_path / "d.csv", csv_text(good(), delim)))
    assert "delimiter" in e.problem and word in e.problem and e.line == 1


def test_constant_file(tmp_path):
    e = error_of(write(tmp_path / "c.csv", csv_text(np.full((F, T), 2.5))))
    assert "constant" in e.problem and "2.5" in e.problem and "zero variance" in e.problem


def test_wrong_size(tmp_path):
    e = error_of(write(tmp_path / "s.csv", csv_text(good(shape=(F - 2, T)))))
    assert "wrong size" in e.problem and f"{F - 2} rows x {T} columns" in e.problem
    assert f"expected {F} x {T}" in e.problem and "crop_pad" in e.problem


def test_wrong_size_time_rows_reports_file_layout(tmp_path):
    # time_rows: the file should have T rows and F columns.
    e = error_of(write(tmp_path / "s.csv", csv_text(good(shape=(F, T)))), orientation="time_rows")
    assert f"{F} rows x {T} columns, expected {T} x {F}" in e.problem


def test_crop_pad_policy(tmp_path):
    big = good(1, (F + 3, T + 2))
    x = parse_csv(write(tmp_path / "b.csv", csv_text(big)), cfg(shape_policy="crop_pad"))
    np.testing.assert_allclose(x, big[:F, :T], rtol=1e-5)  # keeps lowest bins, first frames
    small = good(2, (F - 3, T - 2))
    y = parse_csv(write(tmp_path / "s.csv", csv_text(small)), cfg(shape_policy="crop_pad"))
    assert y.shape == (F, T)
    np.testing.assert_allclose(y[:F - 3, :T - 2], small, rtol=1e-5)
    np.testing.assert_allclose(y[F - 3:, :T - 2], np.repeat(small[-1:], 3, 0), rtol=1e-5)  # edge
    np.testing.assert_allclose(y[:, T - 2:], np.repeat(y[:, T - 3:T - 2], 2, 1), rtol=1e-6)


def test_time_rows_transposes(tmp_path):
    a = good(3, (T, F))  # file rows = time
    x = parse_csv(write(tmp_path / "t.csv", csv_text(a)), cfg(orientation="time_rows"))
    np.testing.assert_allclose(x, a.T, rtol=1e-5)


def test_on_bad_file_error_names_file(tmp_path):
    write(tmp_path / "d" / "a.csv", csv_text(good()))
    write(tmp_path / "d" / "b.csv", csv_text(good(), ";"))
    with pytest.raises(DataError, match=r"b\.csv, line 1: wrong delimiter"):
        load_dataset(cfg(path=str(tmp_path / "d"), use_cache=False), progress=False)


def test_on_bad_file_skip_reports_each(tmp_path):
    d = tmp_path / "d"
    write(d / "a.csv", csv_text(good()))
    write(d / "b.csv", csv_text(good(), ";"))
    write(d / "c.csv", csv_text(np.zeros((F, T))))
    write(d / "e.csv", "")
    write(d / "f.csv", csv_text(good(4)))
    ds = load_dataset(cfg(path=str(d), on_bad_file="skip", cache_dir=str(tmp_path / "c")),
                      progress=False)
    assert [os.path.basename(p) for p in ds.paths] == ["a.csv", "f.csv"]
    assert ds.x.shape == (2, F, T)
    reasons = {os.path.basename(p): r for p, r in ds.skipped}
    assert set(reasons) == {"b.csv", "c.csv", "e.csv"}
    assert "delimiter" in reasons["b.csv"] and reasons["b.csv"].startswith("line 1:")
    assert "constant" in reasons["c.csv"] and reasons["e.csv"] == "empty file"
    # The kept rows are the right files' data, in order (compaction after skipping).
    np.testing.assert_allclose(ds.x[1], good(4), rtol=1e-5)
    # Nothing half-written is left in the cache folder.
    leftovers = [n for _, _, fs in os.walk(tmp_path / "c") for n in fs if n.startswith(".tmp")]
    assert leftovers == []


def test_all_files_bad_is_an_error(tmp_path):
    write(tmp_path / "d" / "b.csv", "")
    with pytest.raises(DataError, match="all 1 files are malformed"):
        load_dataset(cfg(path=str(tmp_path / "d"), on_bad_file="skip", use_cache=False),
                     progress=False)


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(cfg(path=str(tmp_path / "nope")), progress=False)
    os.makedirs(tmp_path / "empty")
    with pytest.raises(DataError, match="no .csv or .npy files found"):
        load_dataset(cfg(path=str(tmp_path / "empty")), progress=False)
