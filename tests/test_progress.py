"""--no-progress reaches every progress bar of a training run: the data parser's and the
moments' (specgan_jax.data) as well as the training loop's."""

import dataclasses

from specgan_jax.cli import train as train_cli
from specgan_jax.config import DataConfig
from specgan_jax.data.cache import load_dataset
from specgan_jax.data.moments import moments_for
from tests.helpers import tiny_args


def _bars(text: str) -> list[str]:
    """Traces of tqdm in captured output: its carriage returns and its rate units."""
    return [w for w in ("\r", "it/s", "file/s", "spec/s", "step/s]", "parsing files", "moments:")
            if w in text]


def test_data_bars_are_shown_by_default(tiny_data, tmp_path, capsys):
    """The control: parsing (no cache yet) and moments draw bars that _bars() detects."""
    cfg = dataclasses.replace(DataConfig(), path=tiny_data["data"],
                              cache_dir=str(tmp_path / "cache"))
    moments_for(load_dataset(cfg), cfg, progress=True)
    err = capsys.readouterr().err
    assert "parsing files" in _bars(err) and "moments:" in _bars(err)


def test_no_progress_silences_every_bar(tiny_data, tmp_path, capsys):
    """A tiny run from a CSV folder with --no-progress, with a fresh CSV cache (so the files are
    parsed) and a fresh run directory (so the moments are computed): no bar anywhere."""
    args = tiny_args(tiny_data["data"], tmp_path / "run", 2, tmp_path / "cache")
    assert "--no-progress" in args
    assert train_cli.main(args) == 0
    out, err = capsys.readouterr()
    assert "data: 8 spectrograms" in out  # it did load the data
    assert _bars(out) == [] and _bars(err) == [], (out, err)
