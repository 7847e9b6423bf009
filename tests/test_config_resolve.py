"""One resolution of the config (specgan_jax.config.resolve): every auto / None option settled
the same way for --dry-run, training and config.json; mistakes across sections reported as one
`error:` line before any data is read."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from specgan_jax.cli import train as train_cli
from specgan_jax.config import Config, DiffAugConfig, LossConfig, ModelConfig, OptimConfig
from specgan_jax.config import resolve as resolve_lib
from specgan_jax.config.resolve import (DataSummary, Platform, check_platform, resolve,
                                        resolve_saved)
from specgan_jax.errors import ConfigError
from tests.helpers import tiny_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU1, CPU2, GPU1 = Platform("cpu", 1), Platform("cpu", 2), Platform("gpu", 1)
TWO = DataSummary(("cat", "dog"), (4, 4))
# None where it means something other than "decide later": no data source given (the demo),
# no file name pattern (every file), the machine's default cache folder, no Adam betas for
# RMSProp, no time budget, no R1 penalty for a loss without one (ns-r1 fills its r1_* in when
# constructed), no learning-rate decay.
MEANINGFUL_NONE = {"data.path", "data.file_list", "data.pattern", "data.cache_dir", "optim.beta1",
                   "optim.beta2", "train.minutes", "loss.r1_gamma", "loss.r1_every",
                   "optim.decay_steps"}


def unsettled(config) -> list[str]:
    """The options of `config` still None or "auto" (but MEANINGFUL_NONE)."""
    out = []
    for sec in dataclasses.fields(config):
        for f in dataclasses.fields(getattr(config, sec.name)):
            v, name = getattr(getattr(config, sec.name), f.name), f"{sec.name}.{f.name}"
            if (v is None and name not in MEANINGFUL_NONE) or v == "auto":
                out.append(name)
    return out


def test_resolve_settles_every_auto_option_once():
    given = Config(model=ModelConfig(conditional=True), diffaug=DiffAugConfig(ada=True))
    assert unsettled(given) == [  # what there is to settle (and model.n_classes 0)
        "model.conv_impl", "loss.cond_start", "loss.cond_ramp", "optim.optimizer", "optim.g_lr",
        "optim.d_lr", "diffaug.ada_target", "ema.kimg", "train.loop"]
    r = resolve(given, TWO, platform=CPU1)
    assert unsettled(r) == []
    assert (r.model.n_classes, r.model.conv_impl) == (2, "hybrid")
    assert (r.loss.cond_start, r.loss.cond_ramp) == (75_000, 50_000)  # 3/8, 1/4 of 200k
    assert (r.optim.optimizer, r.optim.g_lr, r.optim.d_lr, r.optim.beta1, r.optim.beta2) == \
        ("adam", 1e-4, 1e-4, 0.5, 0.9)
    assert r.ema.kimg == 64 * 10 / 32 and r.diffaug.ada_target == 0.3 and r.train.loop == "scan"
    assert resolve(r, TWO, platform=CPU1) == r  # a resolved config is a fixed point
    # the engine reads the unresolved options as the same values
    from specgan_jax.engine.models import resolve_impl
    from specgan_jax.engine.ema import ema_kimg
    assert resolve_impl(given.model) == resolve_impl(r.model)
    assert ema_kimg(given.ema, 64) == r.ema.kimg and given.diffaug.target == r.diffaug.ada_target


@pytest.mark.parametrize("loss, want", [("dcgan", ("adam", 2e-4, 0.5, 0.999)),
                                        ("lsgan", ("rmsprop", 1e-4, None, None)),
                                        ("wgan", ("rmsprop", 5e-5, None, None))])
def test_optimizer_defaults_follow_the_loss(loss, want):
    o = resolve(Config(loss=LossConfig(loss=loss)), platform=CPU1).optim
    assert (o.optimizer, o.g_lr, o.beta1, o.beta2) == want


def test_lr_decay_runs_over_train_steps_and_a_resumed_run_keeps_its_own():
    def cfg(steps, **optim):
        return Config(optim=OptimConfig(**optim),
                      train=dataclasses.replace(Config().train, steps=steps))
    assert resolve(cfg(900), platform=CPU1).optim.decay_steps is None  # no decay: unused
    new = resolve(cfg(900, lr_decay="linear"), platform=CPU1)
    assert new.optim.decay_steps == 900
    # resumed with --steps 2000: the decay keeps its end (the saved config.json's)
    assert resolve(cfg(2000, lr_decay="linear"), saved_config=new,
                   platform=CPU1).optim.decay_steps == 900
    assert resolve(cfg(2000, lr_decay="linear", decay_steps=5000),
                   platform=CPU1).optim.decay_steps == 5000  # explicit wins
    with pytest.raises(ValueError, match=r"optim.decay_start must be in \[0, 1\)"):
        OptimConfig(decay_start=1.0)


@pytest.mark.parametrize("model, platform, want", [
    (ModelConfig(), CPU1, "hybrid"), (ModelConfig(), CPU2, "phase"),
    (ModelConfig(), GPU1, "phase"), (ModelConfig(kernel_len=3), CPU1, "xla"),
    (ModelConfig(conv_impl="xla"), CPU2, "xla")])
def test_conv_impl_auto_is_decided_from_the_platform(model, platform, want):
    assert resolve(Config(model=model), platform=platform).model.conv_impl == want


def test_platform_checks_name_the_option():
    with pytest.raises(ConfigError, match=r"train.batch_size \(--batch-size\) 5 is not "
                                          "divisible by the 2 devices.*e.g. 4 or 6"):
        check_platform(Config(train=dataclasses.replace(Config().train, batch_size=5)), CPU2)
    with pytest.raises(ConfigError, match="conv_impl='hybrid' is single-device.*2 devices"):
        check_platform(Config(model=ModelConfig(conv_impl="hybrid")), CPU2)
    check_platform(Config(model=ModelConfig(conv_impl="hybrid")), CPU1)  # fine on one


def test_resolve_saved_settles_an_old_config_json_as_it_trained():
    """A config.json of an older version (optimizer None, conv_impl auto, no cond_*) compares
    equal, on resume, to today's resolution of the same options."""
    old = Config(loss=LossConfig(cond_start=None, cond_ramp=None))
    settled = resolve_saved(old)
    assert settled.model.conv_impl == "auto"  # kept: it may change on resume
    assert dataclasses.replace(settled, model=ModelConfig()) == dataclasses.replace(
        resolve(old, saved_config=old, platform=CPU1), model=ModelConfig())


def bad_data(root, classes=("cat",)):
    """A data folder whose CSVs cannot be parsed: any error about them means it was read."""
    for c in classes:
        os.makedirs(root / c, exist_ok=True)
        (root / c / "x.csv").write_text("1,2,not-a-number\n")
    return str(root)


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("flags, words", [
    (["--loss.cond_start", "5"], "loss.cond_start=5: transitional conditioning applies to "
                                 "conditional models only"),
    (["--loss.cond_ramp", "3"], "loss.cond_ramp=3: transitional"),
    (["--model.n_classes", "3"], "model.n_classes=3 needs model.conditional=True")])
def test_conditional_only_options_are_refused_at_parse_time(tmp_path, capsys, flags, words):
    rc = train_cli.main(["--data", bad_data(tmp_path / "d"), "--workdir", str(tmp_path / "r"),
                         "--no-progress", *flags])
    assert rc == 2
    err = capsys.readouterr().err
    assert words in one_error_line(err) and err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_platform_and_class_mistakes_are_reported_before_the_data_is_read(tmp_path, capsys,
                                                                          monkeypatch):
    base = ["--workdir", str(tmp_path / "r"), "--steps", "1", "--no-progress"]
    # one class folder for a conditional model: found from the folders, no file parsed
    rc = train_cli.main(["--model.conditional", "--data", bad_data(tmp_path / "one"), *base])
    assert rc == 1
    assert one_error_line(capsys.readouterr().err).startswith(
        "error: model.conditional: the data has 1 class")
    # explicit hybrid on several devices (this process's platform, as two CPU devices)
    monkeypatch.setattr(resolve_lib.Platform, "detect", classmethod(lambda cls: CPU2))
    rc = train_cli.main(["--model.conv_impl", "hybrid", "--data",
                         bad_data(tmp_path / "two", ("cat", "dog")), *base])
    assert rc == 1
    assert one_error_line(capsys.readouterr().err).startswith(
        "error: model.conv_impl='hybrid' is single-device only")
    assert not (tmp_path / "r").exists()


def test_batch_not_divisible_by_the_devices_from_the_console(tmp_path):
    """scripts/train.py on 2 (virtual CPU) devices with batch 5: one line, exit 1."""
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "train.py"),
                           "--data", bad_data(tmp_path / "d"), "--batch-size", "5",
                           "--workdir", str(tmp_path / "r"), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert one_error_line(proc.stderr).startswith(
        "error: train.batch_size (--batch-size) 5 is not divisible by the 2 devices")
    assert not (tmp_path / "r").exists()


def dry_run(capsys, argv) -> dict:
    assert train_cli.main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def test_dry_run_of_the_conditional_demo_prints_what_training_uses(tmp_path, capsys):
    cfg = dry_run(capsys, ["--model.conditional", "--workdir", str(tmp_path / "r")])
    assert cfg["model"]["n_classes"] == 4 and cfg["train"]["steps"] == 800
    assert (cfg["loss"]["cond_start"], cfg["loss"]["cond_ramp"]) == (300, 200)
    assert cfg["model"]["conv_impl"] != "auto" and cfg["optim"]["optimizer"] == "adam"
    assert not (tmp_path / "r").exists()


def test_dry_run_equals_the_config_json_training_writes(tiny_data, tmp_path, capsys):
    args = tiny_args(tiny_data["data"], tmp_path / "r", 2, tiny_data["csv_cache"],
                     "--model.conditional")
    printed = dry_run(capsys, args)
    assert not (tmp_path / "r").exists()
    assert train_cli.main(args) == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text()) == printed
    assert printed["model"]["n_classes"] == 2
    assert (printed["loss"]["cond_start"], printed["loss"]["cond_ramp"]) == (1, 0)  # of 2 steps
    # resuming with more steps keeps the saved schedule; a new run takes fractions of its own
    more = lambda w: tiny_args(tiny_data["data"], w, 8, tiny_data["csv_cache"],  # noqa: E731
                               "--model.conditional")
    resumed = dry_run(capsys, more(tmp_path / "r"))
    assert (resumed["loss"]["cond_start"], resumed["loss"]["cond_ramp"]) == (1, 0)
    fresh = dry_run(capsys, more(tmp_path / "new"))
    assert (fresh["loss"]["cond_start"], fresh["loss"]["cond_ramp"]) == (3, 2)
