"""generate.py --format wav: Griffin-Lim of the de-normalised spectrograms, 16-bit PCM at the
recorded sample rate, one folder per class (a run made without training, tests/helpers.py)."""

import json
import os
import wave

import numpy as np
import pytest

import helpers
from specgan_jax.audio.griffin_lim import griffin_lim
from specgan_jax.cli.generate import main as gen_main
from specgan_jax.engine.sampling import latents
from specgan_jax.run.run_dir import LoadedRun

CLASSES = ["low", "high"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, jax_cache):
    root = tmp_path_factory.mktemp("wav")
    helpers.write_conditional_run(root / "run", CLASSES)
    params = root / "audio_params.json"
    params.write_text(json.dumps({"sample_rate": 8000, "nfft": 256, "hop": 128}))
    return root, str(root / "run"), str(params)


def test_wav_needs_the_audio_params(run_dir, capsys):
    root, run, _ = run_dir
    assert gen_main([run, "--format", "wav", "--n", "2", "--out", str(root / "none")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--audio-params" in err[0] and "audio_params.json" in err[0]


def test_wav_per_class(run_dir):
    root, run, params = run_dir
    out = root / "out"
    assert gen_main([run, "--format", "wav", "--per-class", "1", "--audio-params", params,
                     "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["high", "low"]
    path = out / "high" / "high_seed0_00000.wav"
    with wave.open(str(path)) as w:
        assert (w.getsampwidth(), w.getframerate(), w.getnchannels()) == (2, 8000, 1)
        got = np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32767
    loaded = LoadedRun(run)
    z = latents(0, np.arange(1), loaded.config.model.latent_dim, loaded.config.loss.latent_dist)
    x = loaded.generate(z, labels=np.full(1, CLASSES.index("high"), np.int32))  # user units
    want = np.clip(np.asarray(griffin_lim(np.swapaxes(x, 1, 2)))[0], -1, 1)
    assert got.shape == (16384,)
    np.testing.assert_allclose(got, want, atol=1.0 / 32767)


def test_a_waveform_past_full_scale_is_scaled_down_not_clipped(tmp_path):
    """A loud generated spectrogram (a 1 kHz tone 100x louder than the real data could make it)
    gives a Griffin-Lim waveform past full scale: the WAV is scaled to PEAK, its shape kept
    (no run of samples pinned at the rails), and a quiet one keeps its level."""
    from specgan_jax.audio import wav_out
    from specgan_jax.audio.stft import log_magnitude

    t = np.arange(16384) / 16000
    tone = np.sin(2 * np.pi * 1000 * t)
    loud = np.asarray(log_magnitude(100 * tone))  # [frames, bins]
    quiet = np.asarray(log_magnitude(0.01 * tone))
    x = np.stack([loud.T, quiet.T])  # [N, bins, frames]: frequency rows, as a run stores them
    params = {"sample_rate": 16000, "nfft": 256, "hop": 128}
    paths = wav_out.write_wavs(x, str(tmp_path), ["loud", "quiet"], True, params)
    pcm = []
    for p in paths:
        with wave.open(p) as w:
            pcm.append(np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(float) / 32767)
    assert np.abs(pcm[0]).max() == pytest.approx(wav_out.PEAK, abs=1e-4)
    assert np.mean(np.abs(pcm[0]) >= 0.999) == 0  # nothing at the rails
    assert 0.001 < np.abs(pcm[1]).max() < 0.1  # the quiet one is not normalised up
