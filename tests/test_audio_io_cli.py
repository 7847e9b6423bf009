"""Audio files in (stdlib WAV, soundfile formats, bad files) and the audio -> CSV CLI end to end."""

import builtins
import json
import os
import wave

import numpy as np
import pytest

from specgan_jax.audio import io as aio
from specgan_jax.audio import stft
from specgan_jax.cli import audio as cli
from specgan_jax.config import DataConfig
from specgan_jax.data.cache import load_dataset
from specgan_jax.errors import DataError


def _tone(freq, n, sr=16000, amp=0.5):
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


def _write_pcm(path, x, sr, width):
    scale = 2 ** (8 * width - 1) - 1
    ints = np.round(x * scale).astype(np.int64)
    if width == 3:
        raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    else:
        raw = ints.astype(f"<i{width}").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(width), w.setframerate(sr)
        w.writeframes(raw)


@pytest.mark.parametrize("width", [2, 3, 4])
def test_pcm_wav_read_without_the_extra(tmp_path, width):
    x = _tone(440, 2000)
    _write_pcm(tmp_path / "t.wav", x, 16000, width)
    got = aio.read_audio(str(tmp_path / "t.wav"), 16000)
    np.testing.assert_allclose(got, x, atol=2.0 ** -14)


def test_resampling_keeps_the_tone(tmp_path):
    _write_pcm(tmp_path / "t.wav", _tone(1000, 8000, sr=8000), 8000, 2)
    got = aio.read_audio(str(tmp_path / "t.wav"), 16000)
    assert len(got) == 16000
    peak = np.argmax(np.abs(np.fft.rfft(got)))  # 1 Hz bins for one second at 16 kHz
    assert peak == 1000


def test_write_wav_round_trip(tmp_path):
    x = _tone(300, 1000)
    aio.write_wav(str(tmp_path / "o.wav"), np.concatenate([x, [3.0]]), 16000)
    with wave.open(str(tmp_path / "o.wav")) as w:
        assert (w.getsampwidth(), w.getframerate(), w.getnframes()) == (2, 16000, 1001)
    got = aio.read_audio(str(tmp_path / "o.wav"), 16000)
    np.testing.assert_allclose(got[:-1], x, atol=1e-4)
    assert abs(got[-1] - 32767 / 32768) < 1e-6  # clipped to full scale


def test_flac_needs_soundfile(tmp_path):
    sf = pytest.importorskip("soundfile", reason="FLAC input needs soundfile: "
                             "pip install 'specgan-jax[audio]'")
    x = _tone(440, 3000)
    sf.write(str(tmp_path / "t.flac"), x, 16000)
    np.testing.assert_allclose(aio.read_audio(str(tmp_path / "t.flac"), 16000), x, atol=1e-4)


def test_missing_extra_names_it(tmp_path, monkeypatch):
    real = builtins.__import__

    def no_soundfile(name, *args, **kw):
        if name == "soundfile":
            raise ImportError("no soundfile")
        return real(name, *args, **kw)
    monkeypatch.setattr(builtins, "__import__", no_soundfile)
    (tmp_path / "a.flac").write_bytes(b"fLaC")
    with pytest.raises(DataError) as e:
        aio.read_audio(str(tmp_path / "a.flac"), 16000)
    assert "a.flac" in str(e.value) and "pip install 'specgan-jax[audio]'" in str(e.value)


def test_bad_files_are_named(tmp_path):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(DataError, match=r"corrupt.wav: unreadable WAV file \(\w"):
        aio.read_audio(str(tmp_path / "corrupt.wav"), 16000)
    _write_pcm(tmp_path / "silent.wav", np.zeros(100, np.float32), 16000, 2)
    with pytest.raises(DataError, match="silent.wav: silent"):
        aio.read_audio(str(tmp_path / "silent.wav"), 16000)


def test_slicing_options():
    x = np.arange(10, dtype=np.float32) + 1
    assert aio.slices(x, 4).tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]  # partial end dropped
    assert aio.slices(x, 4, pad_end=True)[-1].tolist() == [9, 10, 0, 0]
    assert aio.slices(x, 4, overlap=0.5).shape == (4, 4)  # starts 0, 2, 4, 6
    assert aio.slices(x, 4, first_only=True).tolist() == [[1, 2, 3, 4]]
    assert aio.slices(x[:3], 4).shape == (0, 4)
    assert aio.slices(x[:3], 4, pad_end=True).tolist() == [[1, 2, 3, 0]]


def _tiny_folder(root):
    for cls, freq in (("low", 300), ("high", 3000)):
        os.makedirs(root / cls)
        for i in range(2):
            _write_pcm(root / cls / f"t{i}.wav", _tone(freq + 50 * i, 20000), 16000, 2)
    _write_pcm(root / "low" / "silent.wav", np.zeros(20000, np.float32), 16000, 2)


@pytest.mark.parametrize("workers", [1, 2])
def test_cli_end_to_end(tmp_path, capsys, workers):
    _tiny_folder(tmp_path / "in")
    out = tmp_path / "out"
    rc = cli.main([str(tmp_path / "in"), str(out), "--workers", str(workers), "--pad-end",
                   "--no-progress"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "silent.wav" in err and err.count("skipped") == 1
    params = json.loads((out / cli.PARAMS_FILE).read_text())
    assert (params["sample_rate"], params["nfft"], params["hop"]) == (16000, 256, 128)
    ds = load_dataset(DataConfig(path=str(out), use_cache=False), progress=False)
    assert sorted(ds.class_names) == ["high", "low"]
    assert ds.x.shape == (8, 128, 128)  # 4 files x 2 slices (20000 samples, end padded)
    # Rows are frequency: the high class's energy sits in a higher row than the low class's.
    one = np.loadtxt(out / "high" / "t0_wav_0.csv", delimiter=",")
    assert one.shape == (128, 128)
    assert np.argmax(one.mean(axis=1)) == round(3000 / 16000 * 256)
    audio = aio.read_audio(str(tmp_path / "in" / "high" / "t0.wav"), 16000)
    np.testing.assert_allclose(one.T, stft.log_magnitude(audio[:16384].astype(np.float64)),
                               atol=1e-4)


def test_cli_names_keep_the_extension(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    _write_pcm(tmp_path / "in" / "a.wav", _tone(440, 16384), 16000, 2)
    sf = pytest.importorskip("soundfile", reason="FLAC input needs soundfile: "
                             "pip install 'specgan-jax[audio]'")
    sf.write(str(tmp_path / "in" / "a.flac"), _tone(880, 16384), 16000)
    assert cli.main([str(tmp_path / "in"), str(tmp_path / "out"), "--workers", "1",
                     "--no-progress"]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["a_flac_0.csv", "a_wav_0.csv",
                                                    cli.PARAMS_FILE]


def test_cli_strict_refuses_a_bad_file(tmp_path, capsys):
    _tiny_folder(tmp_path / "in")
    rc = cli.main([str(tmp_path / "in"), str(tmp_path / "out"), "--strict", "--workers", "1",
                   "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "silent.wav" in err[0] and err[0].startswith("error:")
