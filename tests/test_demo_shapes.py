"""Demo / calls data in other sizes, long files and high_first order (scripts/make_demo_data.py);
the 128 x 128 defaults bitwise as before sizes scaled."""

import hashlib
import os

import numpy as np
import pytest

from specgan_jax.cli import demo_data as cli
from specgan_jax.data import calls
from specgan_jax.data.calls import make_call
from specgan_jax.data.demo import make_spectrogram


def _h(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


# sha256 prefixes of the float32 arrays computed by the code before --shape / --length existed
# (commit 91c29ee), (seed, index) -> per class.
DEMO_REF = {
    (0, 0): ["d068b927b564265c", "6e72ffddf8e41efe", "d3c35a15f37bd1b2", "ab23b7f4c95eb869"],
    (3, 1): ["a24d9a1cd27d877b", "9aedf7f2bfe77eac", "d7868fad3d936bd9", "a6a8a9eb97710996"]}
CALLS_REF = {
    (0, 0): ["50f7a2281f384238", "59d66c8fc2cbe280", "2d36c3535c1567c6", "598d79754a71e1c9"],
    (7, 2): ["0355a2be64118055", "6387c12fd2af4490", "c3133164b0d31cd8", "5fa1e434651c2e4b"]}
# sha256 of the CSV files written by `--n-per-class 2 --seed 4` (sorted paths, concatenated).
CSV_REF = {"demo": "2e1cc5790e87c314fdbb677c38fa8ff0afcec198826576d2830c818baba7ba95",
           "calls": "ff21418ea625c7c8c28fda64597c19a4c99b18412135dec47c74edfa1e2b7000"}


def test_default_arrays_bitwise_unchanged():
    for (seed, i), ref in DEMO_REF.items():
        assert [_h(make_spectrogram(seed, c, i)) for c in range(4)] == ref
    for (seed, i), ref in CALLS_REF.items():
        assert [_h(make_call(seed, c, i)) for c in range(4)] == ref


@pytest.mark.parametrize("kind", ["demo", "calls"])
def test_default_csv_files_bitwise_unchanged(kind, tmp_path):
    assert cli.main(["--kind", kind, "--out", str(tmp_path), "--n-per-class", "2",
                     "--seed", "4"]) == 0
    paths = sorted(os.path.relpath(os.path.join(d, f), tmp_path)
                   for d, _, fs in os.walk(tmp_path) for f in fs)
    data = b"".join(open(tmp_path / p, "rb").read() for p in paths)
    assert len(paths) == 8 and hashlib.sha256(data).hexdigest() == CSV_REF[kind]


@pytest.mark.parametrize("mk", [make_spectrogram, make_call])
def test_shapes_and_determinism(mk):
    for c in range(4):
        a = mk(2, c, 1, 64, 96)
        assert a.shape == (64, 96) and a.dtype == np.float32 and np.isfinite(a).all()
        assert mk(2, c, 1, 48, 32, length=100).shape == (48, 100)
        np.testing.assert_array_equal(mk(2, c, 1, 64, 96), a)
        assert not np.array_equal(mk(3, c, 1, 64, 96), a)


def test_geometry_scales_with_the_size():
    """The same draws at 64 x 256 and 256 x 64 (equal areas: equal draw counts) give the
    128 x 128 sound stretched: time and frequency energy profiles agree (correlation > 0.7;
    unscaled geometry gave as low as -0.8)."""
    def prof(x, ax):
        return np.exp(x).mean(axis=ax)

    def corr(a, b):
        return np.corrcoef(a, b)[0, 1]

    for c in range(4):
        for i in range(3):
            a, b, d = (make_spectrogram(0, c, i, *s) for s in [(128, 128), (64, 256), (256, 64)])
            assert corr(prof(a, 0), prof(b, 0).reshape(128, 2).mean(1)) > 0.7
            assert corr(prof(a, 1), np.repeat(prof(b, 1), 2)) > 0.7
            assert corr(prof(a, 0), np.repeat(prof(d, 0), 2)) > 0.7
            assert corr(prof(a, 1), prof(d, 1).reshape(128, 2).mean(1)) > 0.7


def test_long_demo_files_have_events_in_every_tile():
    for c in range(4):
        x = make_spectrogram(1, c, 0, 64, 64, length=256)
        floor = np.percentile(x, 10)  # the noise floor (the sounds cover less)
        tiles = [x[:, k * 64:(k + 1) * 64] for k in range(4)]
        assert all(np.percentile(t, 99) > floor + 2.0 for t in tiles), c


def test_long_calls_files_have_one_call_per_clip(monkeypatch):
    starts = []
    real = calls._call

    def spy(rng, cls, f, t, n_f, n_t):
        starts.append(-t[0])
        return real(rng, cls, f, t, n_f, n_t)

    monkeypatch.setattr(calls, "_call", spy)
    assert make_call(0, 2, 0, 32, 64, length=160).shape == (32, 160)
    assert starts == [0, 64, 128]


def test_high_first_writes_rows_flipped(tmp_path):
    for order in ("low_first", "high_first"):
        assert cli.main(["--out", str(tmp_path / order), "--n-per-class", "1", "--shape", "20",
                         "40", "--length", "50", "--freq-order", order]) == 0
    a = np.loadtxt(tmp_path / "low_first" / "chirp" / "chirp_00000.csv", delimiter=",")
    b = np.loadtxt(tmp_path / "high_first" / "chirp" / "chirp_00000.csv", delimiter=",")
    assert a.shape == (20, 50)
    np.testing.assert_allclose(a, make_spectrogram(0, 1, 0, 20, 40, 50), rtol=5e-6)
    np.testing.assert_array_equal(b, a[::-1])


@pytest.mark.parametrize("args,msg", [(["--length", "100"], "--length 100"),
                                      (["--shape", "0", "64"], "--shape 0 64"),
                                      (["--shape", "64", "32", "--length", "16"], "--length 16")])
def test_bad_sizes_are_one_line_errors(args, msg, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--out", str(tmp_path), *args])
    assert e.value.code == 2
    assert msg in capsys.readouterr().err.strip().splitlines()[-1]
