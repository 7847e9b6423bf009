"""Every `Literal[...]` field of the configuration is checked against its own choices by one
helper (specgan_jax.config.checks.check_literals): each choice is accepted, anything else is
an error naming the option, and no check repeats the choices in a tuple of its own."""

import dataclasses
import os
import re

import pytest

from specgan_jax.config import Config, DistributedConfig, EvalConfig, TrainConfig
from specgan_jax.config.checks import literal_choices
from specgan_jax.config.metrics import EVAL_METRICS

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "specgan_jax", "config")
SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(Config)} | {
    "eval": EvalConfig, "distributed": DistributedConfig}


def literal_fields():
    return [(sec, cls, name, choices, optional) for sec, cls in SECTIONS.items()
            for name, choices, optional in literal_choices(cls)]


def test_the_helper_finds_every_literal_field():
    found = {(sec, name) for sec, _, name, _, _ in literal_fields()}
    assert {("model", "upsample"), ("loss", "loss"), ("optim", "optimizer"),
            ("train", "eval_metric"), ("data", "orientation"), ("diffaug", "ada_signal"),
            ("augment", "time_shift_mode"), ("eval", "feature_space")} <= found
    assert len(found) >= 15


@pytest.mark.parametrize("sec,cls,name,choices,optional", literal_fields(),
                         ids=[f"{s}.{n}" for s, _, n, _, _ in literal_fields()])
def test_each_choice_accepted_anything_else_rejected(sec, cls, name, choices, optional):
    for choice in choices:
        assert getattr(cls(**{name: choice}), name) == choice
    with pytest.raises(ValueError, match=rf"^{sec}\.{name} must be one of "
                                         rf"{re.escape(', '.join(map(repr, choices)))}; got "
                                         "'not-a-choice'$"):
        cls(**{name: "not-a-choice"})
    if optional:
        assert getattr(cls(**{name: None}), name) is None


def test_eval_metric_choices_are_the_registry_s():
    assert literal_choices(TrainConfig) and dict(
        (n, c) for n, c, _ in literal_choices(TrainConfig))["eval_metric"] == EVAL_METRICS


def test_no_check_repeats_a_literal_s_choices():
    """Choices are written once, in the annotation: no check_choice call in a config section
    (checks.py defines the helper and uses it)."""
    calls = [f"{f}: {line.strip()}" for f in sorted(os.listdir(CONFIG_DIR))
             if f.endswith(".py") and f != "checks.py"
             for line in open(os.path.join(CONFIG_DIR, f), encoding="utf-8")
             if "check_choice(" in line]
    assert not calls, calls
