"""The default run directory's name: the same options give the same name, and a field that a
later version adds at its default leaves existing names unchanged (so an upgrade still finds,
and resumes, a run started before it)."""

import dataclasses

from specgan_jax.config import Config, LossConfig, TrainConfig
from specgan_jax.run import run_dir


def test_same_options_same_name_other_options_other_name():
    a = Config(loss=LossConfig(gp_lambda=5.0))
    assert run_dir.default_run_name(a, False) == run_dir.default_run_name(
        Config(loss=LossConfig(gp_lambda=5.0)), False)
    assert run_dir.default_run_name(a, False) != run_dir.default_run_name(Config(), False)
    # run-control options (steps, budgets, logging) do not define the run
    b = dataclasses.replace(a, train=TrainConfig(steps=a.train.steps + 7))
    assert run_dir.default_run_name(a, False) == run_dir.default_run_name(b, False)


def test_a_new_field_at_its_default_keeps_the_name(monkeypatch):
    cfg = Config(loss=LossConfig(gp_lambda=5.0))
    before = run_dir.default_run_name(cfg, False)
    real = run_dir.config_to_dict

    def with_new_field(c):  # as if LossConfig had gained `new_option = 3` in a later version
        d = real(c)
        d["loss"]["new_option"] = 3
        return d

    monkeypatch.setattr(run_dir, "config_to_dict", with_new_field)
    assert run_dir.default_run_name(cfg, False) == before
