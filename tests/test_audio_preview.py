"""WAV previews: a run on data with audio_params.json writes previews/reals.wav and
fakes_NNNNNN.wav beside the PNGs (a 2-step training of helpers.tiny_args on a copy of the
tiny_data fixture: the programs of tests/test_train_e2e.py's runs, compiled once per suite);
data without the file gets PNGs only (test_train_e2e.py's run directory layout checks that)."""

import json
import shutil
import wave

import numpy as np
import pytest

from specgan_jax.audio import wav_out
from specgan_jax.cli import train as train_cli
from tests import helpers

F, T = 128, 128  # tiny_data's shape; nfft = 2 F so the bins match
PARAMS = {"sample_rate": 8000, "nfft": 2 * F, "hop": F}


def read(path):
    with wave.open(str(path)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32767
        return x, w.getframerate(), w.getsampwidth(), w.getnchannels()


@pytest.fixture(scope="module")
def audio_run(tiny_data):
    root = tiny_data["root"] / "wavpreview"
    data = root / "data"
    shutil.copytree(tiny_data["data"], data)
    (data / wav_out.PARAMS_FILE).write_text(json.dumps(PARAMS))
    workdir = root / "run"
    assert train_cli.main(helpers.tiny_args(data, workdir, 2, root / "csv_cache")) == 0
    return workdir


def test_run_on_audio_data_writes_wav_previews(audio_run):
    previews = audio_run / "previews"
    n = 4  # helpers.tiny_args: --train.n_preview 4 (under wav_out's 8 per file)
    gap = int(round(wav_out.GAP_S * PARAMS["sample_rate"]))
    for name in ("reals.wav", "fakes_000002.wav"):
        assert (previews / name.replace(".wav", ".png")).exists()
        x, sr, width, channels = read(previews / name)
        assert (sr, width, channels) == (PARAMS["sample_rate"], 2, 1)
        assert len(x) == n * T * PARAMS["hop"] + (n - 1) * gap
        sound = x.reshape(-1)[:T * PARAMS["hop"]]  # the first sample, before the first gap
        assert np.sqrt(np.mean(sound ** 2)) > 1e-3
        assert np.all(x[T * PARAMS["hop"]:T * PARAMS["hop"] + gap] == 0)  # the gap is silent
        assert np.abs(x).max() <= wav_out.PEAK + 1.0 / 32767


def test_reals_wav_is_the_griffin_lim_of_the_real_grid(audio_run):
    """reals.wav holds the data's own units through Griffin-Lim: its first sample is
    to_audio of one of the training spectrograms (which one is the preview's choice)."""
    x, _, _, _ = read(audio_run / "previews" / "reals.wav")
    first = x[:T * PARAMS["hop"]]
    files = sorted((audio_run.parent / "data").glob("*/*.csv"))
    specs = np.stack([np.loadtxt(f, delimiter=",") for f in files])
    audio = wav_out.to_audio(np.swapaxes(specs, 1, 2), PARAMS)
    err = [np.abs(np.clip(wav_out.peak_scaled(a), -1, 1) - first).max() for a in audio]
    assert min(err) <= 2.0 / 32767


def test_audio_params_lookup_for_previews(tmp_path):
    """No file: None, silently; bins that do not match the data: None and a one-line note
    naming the file; an unreadable file: an error naming it."""
    from types import SimpleNamespace

    from specgan_jax.config import Config, DataConfig
    from specgan_jax.errors import SpecganError
    from specgan_jax.training.setup import _audio_params

    config = Config(data=DataConfig(path=str(tmp_path)))
    dataset = SimpleNamespace(x=np.zeros((1, F, T), np.float32))
    notes = []
    assert _audio_params(config, dataset, notes.append) is None and notes == []
    path = tmp_path / wav_out.PARAMS_FILE
    path.write_text(json.dumps(PARAMS))
    assert _audio_params(config, dataset, notes.append) == PARAMS and notes == []
    path.write_text(json.dumps({**PARAMS, "nfft": 4 * F}))
    assert _audio_params(config, dataset, notes.append) is None
    assert len(notes) == 1 and str(path) in notes[0] and "no WAV" in notes[0]
    path.write_text("{not json")
    with pytest.raises(SpecganError, match=str(path)):
        _audio_params(config, dataset, notes.append)
