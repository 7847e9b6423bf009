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
