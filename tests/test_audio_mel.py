"""The mel option: the Slaney filterbank against a scalar evaluation of its formula written out
here (librosa and torchaudio are not dependencies), its properties, the CLI's --mel N
spectrograms and parameters, and the inverse (pinv, then Griffin-Lim) of a tone."""

import json
import math
import os
import wave

import numpy as np
import pytest

from specgan_jax.audio import mel, stft, wav_out
from specgan_jax.cli import audio as cli


def slaney_mel(f):
    """Slaney's Auditory Toolbox scale, one float at a time: 3 f / 200 below 1 kHz,
    15 + 27 log_6.4(f / 1000) above."""
    return 3.0 * f / 200.0 if f < 1000.0 else 15.0 + 27.0 * math.log(f / 1000.0) / math.log(6.4)


def slaney_hz(m):
    return 200.0 * m / 3.0 if m < 15.0 else 1000.0 * 6.4 ** ((m - 15.0) / 27.0)


def reference_filterbank(n, sr, nfft, fmin, fmax):
    lo_m, hi_m = slaney_mel(fmin), slaney_mel(fmax)
    edges = [slaney_hz(lo_m + (hi_m - lo_m) * i / (n + 1)) for i in range(n + 2)]
    w = np.zeros((n, nfft // 2 + 1))
    for b in range(n):
        lo, c, hi = edges[b:b + 3]
        for k in range(nfft // 2 + 1):
            f = k * sr / nfft
            if lo < f <= c:
                w[b, k] = (f - lo) / (c - lo)
            elif c < f < hi:
                w[b, k] = (hi - f) / (hi - c)
    return w, np.asarray(edges)


@pytest.mark.parametrize("n, sr, nfft, fmin, fmax", [(40, 16000, 256, 0.0, 8000.0),
                                                     (64, 16000, 256, 0.0, 8000.0),
                                                     (32, 22050, 512, 300.0, 9000.0)])
def test_filterbank_matches_the_formula(n, sr, nfft, fmin, fmax):
    want, edges = reference_filterbank(n, sr, nfft, fmin, fmax)
    got = mel.filterbank(n, sr, nfft, fmin, fmax)
    assert got.shape == (n, nfft // 2 + 1)
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(mel.band_edges(n, fmin, fmax), edges, rtol=1e-12)


def test_scale_anchors_and_inverse():
    assert mel.hz_to_mel(1000.0) == pytest.approx(15.0)
    assert mel.hz_to_mel(6400.0) == pytest.approx(42.0)
    f = np.array([0.0, 250.0, 999.0, 1000.0, 3000.0, 8000.0])
    np.testing.assert_allclose(mel.mel_to_hz(mel.hz_to_mel(f)), f, rtol=1e-12, atol=1e-9)


def test_filterbank_properties():
    n, sr, nfft = 64, 16000, 256
    w = mel.filterbank(n, sr, nfft)
    e = mel.band_edges(n, 0.0, sr / 2)
    f = np.arange(nfft // 2 + 1) * sr / nfft
    assert np.all(np.diff(e) > 0)  # band edges (and so centres) strictly increasing
    assert np.all((w >= 0) & (w <= 1)) and np.all(w.max(axis=1) > 0)
    for b in range(n):  # each band lives between its outer edges
        assert np.all(w[b][(f <= e[b]) | (f >= e[b + 2])] == 0)
    peak_bins = np.argmax(w, axis=1)
    assert np.all(np.diff(peak_bins) >= 0)  # the peaks move up with the band
    inner = (f >= e[1]) & (f <= e[n])  # neighbouring triangles sum to 1 between the centres
    np.testing.assert_allclose(w[:, inner].sum(axis=0), 1.0, atol=1e-12)
    assert np.all(w[:, f > e[n + 1]] == 0)


def test_too_many_bands_for_the_fft_is_refused():
    with pytest.raises(ValueError, match="fewer bands or a larger nfft"):
        mel.filterbank(128, 16000, 256)
    with pytest.raises(ValueError, match="fmin < fmax"):
        mel.filterbank(16, 16000, 256, 5000.0, 4000.0)


def _write_tone(path, freq, n=16384, sr=16000):
    x = 0.5 * np.sin(2 * np.pi * freq * np.arange(n) / sr)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(sr)
        w.writeframes(np.round(x * 32767).astype("<i2").tobytes())
    return np.round(x * 32767) / 32768


def test_cli_mel_spectrograms_and_their_inverse(tmp_path):
    """--mel 32: 32-row CSVs equal to log(fb |STFT| + eps), the parameters recorded; the
    inverse (pinv then Griffin-Lim) of a 1 kHz tone is a WAV of frames * hop samples whose
    strongest frequency is within the tone's mel band."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    x = _write_tone(src / "tone.wav", 1000.0)
    assert cli.main([str(src), str(out), "--mel", "32", "--workers", "1", "--no-progress"]) == 0
    params = json.loads((out / "audio_params.json").read_text())
    assert (params["mel_bands"], params["n_freq"], params["mel_scale"]) == (32, 32, "slaney")
    assert (params["mel_fmin"], params["mel_fmax"]) == (0.0, 8000.0)
    spec = np.loadtxt(out / "tone_wav_0.csv", delimiter=",")
    assert spec.shape == (32, 128)
    fb = mel.filterbank(32, 16000, 256)
    want = np.log(np.abs(stft.stft(x)) @ fb.T + stft.LOG_EPS).T
    np.testing.assert_allclose(spec, want, atol=1e-5 * np.abs(want).max())

    paths = wav_out.write_wavs(spec[None], str(tmp_path / "wav"), ["t"], True, params)
    with wave.open(paths[0]) as w:
        assert (w.getframerate(), w.getnframes()) == (16000, 128 * 128)
        y = np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32767
    spectrum = np.abs(np.fft.rfft(y))
    peak_hz = np.argmax(spectrum) * 16000 / len(y)
    e = mel.band_edges(32, 0.0, 8000.0)
    band = np.searchsorted(e, 1000.0)  # the band whose centre is the first edge above 1 kHz
    assert e[band - 2] < peak_hz < e[band + 1]


def test_cli_too_many_bands_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    _write_tone(tmp_path / "in" / "a.wav", 440.0)
    assert cli.main([str(tmp_path / "in"), str(tmp_path / "out"), "--mel", "128",
                     "--workers", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--mel" in err[0] and "fewer bands" in err[0]
    assert not os.path.exists(tmp_path / "out" / "audio_params.json")


def test_mel_rows_must_match_the_parameters():
    params = {"sample_rate": 16000, "nfft": 256, "hop": 128, "mel_bands": 32}
    assert wav_out.rows_mismatch(32, params) == ""
    assert "32 mel bands" in wav_out.rows_mismatch(128, params)
