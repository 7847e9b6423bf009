"""Config-generated CLI flags, config files, preview PNGs and metrics.jsonl (no training)."""

import argparse
import dataclasses
import json
import os
from typing import Literal, Optional

import numpy as np
import pytest
from PIL import Image

from specgan_jax import config_json
from specgan_jax.cli import flags as cli
from specgan_jax.errors import ConfigError
from specgan_jax.run import preview
from specgan_jax.config import DEMO_PRESET, Config, TrainConfig
from specgan_jax.run.metrics_log import MetricsLog, read_metrics
from specgan_jax.cli.train import main as train_main


@dataclasses.dataclass(frozen=True)
class _Toy:
    """Toy section."""

    n: int = 3  # how many
    # the rate,
    # in Hz
    rate: Optional[float] = None
    mode: Literal["a", "b"] = "a"  # a or b; '#' in a comment is fine
    flag: bool = False


@dataclasses.dataclass(frozen=True)
class _Top:
    toy: _Toy = dataclasses.field(default_factory=_Toy)


def _parse(argv):
    p = argparse.ArgumentParser()
    cli.add_config_flags(p, _Top, {"n": "toy.n"})
    return p, p.parse_args(argv)


def test_flags_are_generated_typed_and_documented(capsys):
    p, ns = _parse(["--n", "5", "--toy.rate", "none", "--toy.mode", "b", "--toy.flag"])
    assert cli.overrides_from_args(ns, _Top) == {
        "toy": {"n": 5, "rate": None, "mode": "b", "flag": True}}
    _, ns = _parse(["--toy.rate", "2.5", "--no-toy.flag"])
    assert cli.overrides_from_args(ns, _Top) == {"toy": {"rate": 2.5, "flag": False}}
    _, ns = _parse([])
    assert cli.overrides_from_args(ns, _Top) == {}  # unset flags are not "given"
    with pytest.raises(SystemExit):
        _parse(["--toy.mode", "c"])
    assert "invalid choice 'c'" in capsys.readouterr().err
    help_text = p.format_help()
    assert "how many" in help_text and "the rate, in Hz" in help_text
    assert "'#' in a comment is fine" in help_text


def test_every_config_field_has_a_flag():
    p = argparse.ArgumentParser()
    cli.add_config_flags(p, Config)
    dests = {a.dest for a in p._actions}
    for sec in dataclasses.fields(Config):
        for f in dataclasses.fields(getattr(Config(), sec.name)):
            assert f"{sec.name}.{f.name}" in dests


def test_train_fields_are_documented_in_help():
    docs = cli.field_docs(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        assert docs.get(f.name), f"train.{f.name} has no comment in specgan_jax/config/"


def test_config_from_dict_errors_name_the_source_and_key():
    with pytest.raises(ConfigError, match=r"f.json: unknown option train.stepz"):
        config_json.config_from_dict(Config, {"train": {"stepz": 3}}, source="f.json")
    with pytest.raises(ConfigError, match=r"f.json: unknown section 'trian'"):
        config_json.config_from_dict(Config, {"trian": {}}, source="f.json")
    with pytest.raises(ConfigError, match=r"model.dim: expected an integer"):
        config_json.config_from_dict(Config, {"model": {"dim": "8"}}, source="f.json")
    with pytest.raises(ConfigError, match=r"train.steps must be >= 1"):
        config_json.config_from_dict(Config, {"train": {"steps": 0}}, source="f.json")
    cfg = Config()
    assert config_json.config_from_dict(Config, config_json.config_to_dict(cfg)) == cfg  # JSON round trip


def test_help_and_dry_run_precedence(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        train_main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--model.dim" in out and "--data" in out

    # demo preset < config file < flags
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"model": {"dim": 12}, "train": {"batch_size": 8}}))
    rc = train_main(["--config", str(f), "--batch-size", "4", "--dry-run",
                     "--workdir", str(tmp_path / "r")])
    assert rc == 0
    out = capsys.readouterr().out
    resolved = json.loads(out[out.index("{"):])
    assert resolved["model"]["dim"] == 12  # the file beat the demo preset (dim 8)
    assert resolved["train"]["batch_size"] == 4  # the flag beat the file
    assert resolved["train"]["steps"] == DEMO_PRESET["train"]["steps"]  # still a demo run
    assert "Demo run on synthetic data" in out
    assert not (tmp_path / "r").exists()  # a dry run writes nothing

    rc = train_main(["--data", str(tmp_path), "--dry-run", "--workdir", str(tmp_path / "r")])
    resolved = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert resolved["model"]["dim"] == 64 and resolved["train"]["batch_size"] == 64
    assert resolved["train"]["steps"] == TrainConfig().steps  # SpecGAN defaults with --data


def test_bad_config_file_is_a_clear_error(tmp_path, capsys):
    f = tmp_path / "bad.json"
    f.write_text('{"model": {"dim": 8,}}')
    assert train_main(["--config", str(f), "--dry-run"]) == 2
    err = capsys.readouterr().err
    # one line, the file and the place named (no usage text, no traceback)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "bad.json: line 1 column" in err and "Traceback" not in err


def _luminance(rgb):
    return rgb[..., :3].astype(float) @ np.array([0.299, 0.587, 0.114])


def test_preview_low_frequencies_at_the_bottom(tmp_path):
    """Row 0 of a CSV is the lowest frequency: it must be drawn at the bottom of its panel."""
    img = np.zeros((1, 128, 128), np.float32)
    img[0, :64] = 1.0  # bright low-frequency half, dark high-frequency half
    path = preview.save_grid(str(tmp_path / "p.png"), img, title="t", vmin=0.0, vmax=1.0)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    h, w = rgb.shape[:2]
    col = int(0.4 * w)  # inside the panel, left of the colorbar
    lum = _luminance(rgb[:, col])
    panel = np.flatnonzero(np.abs(np.diff(lum)) > 0)  # rows where the picture changes
    top, bottom = panel.min(), panel.max()
    upper = lum[top + (bottom - top) // 4]
    lower = lum[top + 3 * (bottom - top) // 4]
    assert lower > upper + 100, (upper, lower)  # magma: ~black at vmin, light at vmax
    assert not any(n.startswith(".tmp") for n in os.listdir(tmp_path))  # atomic, no leftovers
    assert preview.fakes_name(100) == "fakes_000100.png"


def test_preview_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="expects \\[N, F, T\\]"):
        preview.save_grid(str(tmp_path / "x.png"), np.zeros((4, 4)), title="", vmin=0, vmax=1)


def test_metrics_log_rows_nan_and_truncate(tmp_path):
    log = MetricsLog(str(tmp_path), tensorboard=False)
    for s in (10, 20, 30):
        log.write(s, {"d_loss": s / 10, "g_loss": float("nan") if s == 30 else 0.5}, elapsed=s)
    log.truncate_after(20)  # what a resume from the step-20 checkpoint does
    log.write(30, {"d_loss": 3.5, "g_loss": 0.25})
    log.close()
    rows = read_metrics(str(tmp_path / "metrics.jsonl"))
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert rows[-1]["d_loss"] == 3.5 and rows[0]["time"] == 10
    log = MetricsLog(str(tmp_path), tensorboard=False)
    log.write(40, {"g_loss": float("inf")})
    log.close()
    assert read_metrics(str(tmp_path / "metrics.jsonl"))[-1]["g_loss"] == "inf"  # strict JSON


def test_atomic_writes_get_a_plain_files_permissions(tmp_path):
    """0666 less the umask, as open() gives (mkstemp's 0600 would hide generated files from the
    user's group): under umask 022 that is 0644, as a file open() writes beside it."""
    from specgan_jax import atomic

    atomic.write_text(str(tmp_path / "a.json"), "{}")
    with open(tmp_path / "plain.txt", "w") as fh:
        fh.write("x")
    mode = lambda name: os.stat(tmp_path / name).st_mode & 0o777  # noqa: E731
    assert mode("a.json") == mode("plain.txt") == atomic.FILE_MODE
