"""One augmentation vocabulary for `augment` and `diffaug`: older config.json files (their
names, and augment's frame/bin counts of a 128 x 128 run) load as the equivalent config."""

import dataclasses
import json
import os

import pytest

from specgan_jax.cli import train as train_cli
from specgan_jax.config import AugmentConfig, Config, DiffAugConfig
from specgan_jax.config_json import config_from_dict, config_to_dict, load_config_json
from specgan_jax.errors import ConfigError
from specgan_jax.run.run_dir import load_run_config

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "run_v0")

OLD_AUGMENT = {"shift_prob": 0.5, "shift_max": 7, "shift_mode": "pad", "noise_prob": 0.25,
               "noise_std": 0.1, "freq_mask_prob": 0.75, "freq_mask_max": 13,
               "time_mask_prob": 0.125, "time_mask_max": 200, "stretch_prob": 0.5,
               "stretch_min": 0.8, "stretch_max": 1.25}
NEW_AUGMENT = AugmentConfig(
    time_shift_prob=0.5, time_shift_max=7 / 128, time_shift_mode="pad", noise_prob=0.25,
    noise_std=0.1, freq_mask_prob=0.75, freq_mask_max=13 / 128, time_mask_prob=0.125,
    time_mask_max=1.0,  # the old code clipped a mask to the axis: 200 frames were all 128
    time_stretch_prob=0.5, time_stretch_min=0.8, time_stretch_max=1.25)
OLD_DIFFAUG = {"strength": 0.5, "time_shift": 0.25, "time_shift_max": 0.3, "shift_mode": "pad",
               "time_mask": 0.5, "time_mask_max": 0.1, "freq_mask": 0.75, "freq_mask_max": 0.5,
               "gain": 0.125, "gain_max": 0.8, "time_stretch": 0.5, "time_stretch_max": 0.2,
               "ada": True, "ada_kimg": 2.0}
NEW_DIFFAUG = DiffAugConfig(
    strength=0.5, time_shift_prob=0.25, time_shift_max=0.3, time_shift_mode="pad",
    time_mask_prob=0.5, time_mask_max=0.1, freq_mask_prob=0.75, freq_mask_max=0.5,
    gain_prob=0.125, gain_max=0.8, time_stretch_prob=0.5, time_stretch_min=0.8,
    time_stretch_max=1.2, ada=True, ada_kimg=2.0)


def test_the_old_run_directorys_config_loads_to_the_default_augmentation():
    with open(os.path.join(FIXTURE, "config.json")) as fh:
        assert json.load(fh)["augment"]["shift_max"] == 30  # the old vocabulary
    cfg = load_run_config(FIXTURE)
    assert cfg.augment == AugmentConfig() and cfg.diffaug == DiffAugConfig()
    assert cfg.augment.time_shift_max * 128 == 30


def test_every_old_key_loads_to_the_equivalent_new_config():
    cfg = config_from_dict(Config, {"augment": OLD_AUGMENT, "diffaug": OLD_DIFFAUG}, "old.json")
    assert cfg.augment == NEW_AUGMENT and cfg.diffaug == NEW_DIFFAUG
    # exact: 1 -+ 0.2 as the old code computed the range
    assert (cfg.diffaug.time_stretch_min, cfg.diffaug.time_stretch_max) == (1 - 0.2, 1 + 0.2)
    # and the new names round-trip unchanged
    assert config_from_dict(Config, config_to_dict(cfg)) == cfg


def test_mixed_or_malformed_old_sections_are_errors_naming_the_file():
    with pytest.raises(ConfigError, match=r"old\.json: augment mixes old option names "
                                          r"\(shift_max\) with new ones \(time_shift_prob\)"):
        config_from_dict(Config, {"augment": {"shift_max": 3, "time_shift_prob": 1.0}},
                         "old.json")
    with pytest.raises(ConfigError, match=r"old\.json: augment\.shift_max .*integer.*'3'"):
        config_from_dict(Config, {"augment": {"shift_max": "3"}}, "old.json")
    # a frame count under the new name: the fraction's error says how to convert
    with pytest.raises(ConfigError, match=r"augment\.time_mask_max is a fraction.*k / 128"):
        config_from_dict(Config, {"augment": {"time_mask_max": 10}}, "new.json")


def test_an_old_config_file_loads_under_new_flags(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"augment": OLD_AUGMENT, "diffaug": OLD_DIFFAUG}))
    assert load_config_json(str(path), Config)["augment"]["time_shift_max"] == 7 / 128
    args = train_cli.build_parser().parse_args(
        ["--config", str(path), "--augment.time_shift_prob", "1.0", "--diffaug.gain_prob", "0"])
    cfg, _ = train_cli.resolve_config(args)
    assert cfg.augment == dataclasses.replace(NEW_AUGMENT, time_shift_prob=1.0)  # flag wins
    assert cfg.diffaug.gain_prob == 0.0 and cfg.diffaug.time_stretch_max == 1.2


def test_old_flag_names_are_gone(capsys):
    with pytest.raises(SystemExit):
        train_cli.build_parser().parse_args(["--augment.shift_max", "30"])
    assert "--augment.shift_max" in capsys.readouterr().err
