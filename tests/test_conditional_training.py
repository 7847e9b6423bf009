"""Training one class-conditional model (--model.conditional): the step's labels, the fakes'
class distribution, n_classes from the data, resume, and ADA's held-out signal with labels.
(The step's numbers against the PyTorch reference: parity_tests/test_training.py.)"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from specgan_jax.cli import train as train_cli
from specgan_jax.config import Config, LossConfig, ModelConfig, OptimConfig
from specgan_jax.config.resolve import DataSummary, Platform, resolve
from specgan_jax.config_json import config_json_text
from specgan_jax.data import sampler as sampler_lib
from specgan_jax.data.moments import Moments
from specgan_jax.engine.models import Discriminator, Generator, init_models
from specgan_jax.engine.conditioning import cond_scale
from specgan_jax.engine.step import create_train_state, make_train_fns
from specgan_jax.run.metrics_log import read_metrics
from specgan_jax.training import setup as setup_lib
from tests.helpers import restore_state, tiny_args

MC = ModelConfig(dim=4, conditional=True, n_classes=3)


def _labelled_dataset(n_per_class=(5, 3, 2)):
    """A device dataset whose row values encode (class, index): x = label + index / 100."""
    labels = np.repeat(np.arange(3), n_per_class)
    n = len(labels)
    x = (labels + np.arange(n) / 100.0)[:, None, None] * np.ones((n, 128, 128))
    std = np.full(128, 10.0)  # normalised = raw / 30: inside [-1, 1]
    m = Moments(mean=np.zeros(128), std=std, std_raw=std, count=n, frames=128)
    return sampler_lib.to_device(sampler_lib.build_dataset(x, labels, m)), labels


@pytest.mark.parametrize("probs", [None, [0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
def test_draws_carry_the_real_labels_and_fake_classes_from_the_distribution(probs):
    data, labels = _labelled_dataset()
    fns = make_train_fns(MC, LossConfig(n_critic=2), OptimConfig(), 64,
                         sampler_lib.make_sampler(Config().augment, with_labels=True),
                         class_probs=probs)
    d = fns.draws(data, jax.random.key(0), 0)
    assert d.y_real.shape == d.y_fake.shape == (2, 64) and d.y_g.shape == (64,)
    # each real example's label is its row's class (row value = label + index / 100)
    row_label = np.floor(np.asarray(d.real)[..., 0, 0, 0] * 30 + 1e-3).astype(int)
    np.testing.assert_array_equal(row_label, np.asarray(d.y_real))
    # the critic updates' fakes are made for their real batch's classes (the GP's
    # interpolates stay within a class)
    np.testing.assert_array_equal(np.asarray(d.y_fake), np.asarray(d.y_real))
    ys = np.asarray(d.y_g)
    if probs is None:  # uniform: every class appears
        assert set(ys) == {0, 1, 2}
    else:
        assert set(ys) == {k for k, p in enumerate(probs) if p > 0}


def test_class_balanced_sampler_draws_classes_uniformly():
    data, labels = _labelled_dataset((50, 8, 2))  # 50 : 8 : 2 examples
    for balanced, want in ((False, np.array([50, 8, 2]) / 60), (True, np.full(3, 1 / 3))):
        s = sampler_lib.make_sampler(Config().augment, with_labels=True,
                                     class_balanced=balanced, n_classes=3)
        x, y = jax.jit(s, static_argnums=(2, 3))(data, jax.random.key(1), 10, 600)
        freq = np.bincount(np.asarray(y).ravel(), minlength=3) / 6000
        np.testing.assert_allclose(freq, want, atol=0.02)  # 6000 draws: sd <= 0.0065
        row_label = np.floor(np.asarray(x)[..., 0, 0, 0] * 30 + 1e-3).astype(int)
        np.testing.assert_array_equal(row_label, np.asarray(y))  # each row of its class
    rows = np.rint(np.asarray(x)[..., 0, 0, 0] * 3000).astype(int) % 100  # the row index
    assert set(rows[np.asarray(y) == 2]) == {58, 59}  # both rows of the rare class drawn


def test_fake_class_probs_follow_the_trained_examples_or_uniform():
    cfg = Config(model=MC)
    labels = np.array([0, 0, 0, 1, 2, 2])
    np.testing.assert_allclose(setup_lib.fake_class_probs(cfg, labels, np.array([], int)),
                               [3 / 6, 1 / 6, 2 / 6])
    # held-out examples are not trained on: not counted
    np.testing.assert_allclose(setup_lib.fake_class_probs(cfg, labels, np.array([0, 1])),
                               [1 / 4, 1 / 4, 2 / 4])
    uniform = Config(model=MC, loss=LossConfig(fake_classes="uniform"))
    assert setup_lib.fake_class_probs(uniform, labels, np.array([], int)) is None
    assert setup_lib.fake_class_probs(Config(), labels, np.array([], int)) is None


CPU1 = Platform("cpu", 1)


def test_resolve_fills_n_classes_from_the_data():
    data = DataSummary.from_labels(["cat", "dog"], [0, 1, 1])
    assert data.counts == (1, 2)
    cfg = resolve(Config(model=ModelConfig(conditional=True)), data, platform=CPU1)
    assert cfg.model.n_classes == 2
    assert resolve(Config(), data, platform=CPU1).model.n_classes == 0  # unconditional


def test_cond_schedule_default_is_fixed_from_the_steps_when_a_run_starts(tmp_path):
    """None (auto): 3/8 and 1/4 of train.steps for a conditional model (300 and 200 of 800,
    the measured setting), 0 for an unconditional one, explicit numbers kept, and a resumed
    run keeps what its config.json says even when --steps grows."""
    def fixed(cfg, workdir=tmp_path / "new"):
        lc = resolve(cfg, None, setup_lib.saved_config(str(workdir)), CPU1).loss
        return lc.cond_start, lc.cond_ramp

    cond = Config(model=ModelConfig(conditional=True, n_classes=2))
    steps = lambda c, n: dataclasses.replace(c, train=dataclasses.replace(c.train, steps=n))  # noqa
    assert fixed(steps(cond, 800)) == (300, 200)
    assert fixed(steps(Config(), 800)) == (0, 0)
    explicit = dataclasses.replace(cond, loss=LossConfig(cond_start=7, cond_ramp=0))
    assert fixed(steps(explicit, 800)) == (7, 0)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(config_json_text(
        resolve(steps(cond, 800), None, setup_lib.saved_config(str(run)), CPU1)))
    assert fixed(steps(cond, 4000), run) == (300, 200)


def test_conditional_demo_trains_long_enough_for_the_transition():
    """`train.py --model.conditional` with no data: 800 steps at constant rates 5e-4, as
    measured (the unconditional demo: 1000 steps at 2e-3, decayed)."""
    def resolved(*argv):
        return train_cli.resolve_config(train_cli.build_parser().parse_args(argv))[0]

    cond, uncond = resolved("--model.conditional"), resolved()
    assert (cond.train.steps, cond.optim.g_lr, cond.optim.lr_decay) == (800, 5e-4, "none")
    assert (uncond.train.steps, uncond.optim.g_lr, uncond.optim.lr_decay) == \
        (1000, 2e-3, "linear")
    assert resolved("--model.conditional", "--steps", "100").train.steps == 100


@pytest.fixture(scope="module")
def cond_run(tiny_data, tmp_path_factory):
    """A conditional run of 4 steps with ADA's held-out signal on (labels in every batch,
    held-out batch included), and the same run stopped after 2 steps and resumed. The class
    terms fade in over the resume (scale 0, 0, 0.5, 1): explicit numbers, since the default
    ones are fractions of each invocation's --steps."""
    root = tmp_path_factory.mktemp("cond")
    extra = ("--model.conditional", "--diffaug.ada", "--diffaug.ada_interval", "1",
             "--loss.cond_start", "1", "--loss.cond_ramp", "2")
    args = lambda w, n: tiny_args(tiny_data["data"], root / w, n, tiny_data["csv_cache"],  # noqa
                                  *extra)
    assert train_cli.main(args("straight", 4)) == 0
    assert train_cli.main(args("resumed", 2)) == 0
    assert train_cli.main(args("resumed", 4)) == 0
    return root


def test_conditional_run_trains_and_records_its_classes(cond_run):
    cfg = json.load(open(cond_run / "straight" / "config.json"))
    assert cfg["model"]["conditional"] is True and cfg["model"]["n_classes"] == 2
    assert (cfg["loss"]["cond_start"], cfg["loss"]["cond_ramp"]) == (1, 2)
    assert json.load(open(cond_run / "straight" / "labels.json"))["class_names"] == ["cat", "dog"]
    rows = [r for r in read_metrics(str(cond_run / "straight" / "metrics.jsonl")) if "d_loss" in r]
    assert [r["step"] for r in rows] == [2, 4]
    assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
    assert all(r["ada_rt"] in (-1.0, -0.5, 0.0, 0.5, 1.0) for r in rows)  # a mean of 4 signs
    state = restore_state(cond_run / "straight").state
    assert state.g_params["class_embed"]["embedding"].shape == (2, 100)
    assert os.path.exists(cond_run / "straight" / "previews" / "fakes_000004.png")


def test_conditional_resume_is_bitwise_identical(cond_run):
    a = restore_state(cond_run / "straight").state
    b = restore_state(cond_run / "resumed").state
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb) > 10
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def test_cond_scale_schedule():
    """Transitional conditioning: 0 before cond_start, a linear ramp, then 1."""
    lc = LossConfig(cond_start=10, cond_ramp=20)
    got = [float(cond_scale(lc, s)) for s in (0, 9, 10, 15, 30, 31, 1000)]
    assert got == [0.0, 0.0, 0.0, 0.25, 1.0, 1.0, 1.0]
    step_fn = LossConfig(cond_start=10, cond_ramp=0)
    assert [float(cond_scale(step_fn, s)) for s in (9, 10)] == [0.0, 1.0]
    with pytest.raises(ValueError, match="cond_start"):
        LossConfig(cond_start=-1)
    with pytest.raises(ValueError, match="conditional models only"):
        make_train_fns(ModelConfig(dim=4), LossConfig(cond_start=5), OptimConfig(), 4)


def test_models_at_cond_scale_zero_ignore_the_class():
    """At scale 0 G is a function of z alone and D of x alone; at 1 (or None) both depend on
    the class."""
    g_vars, d_vars = init_models(MC, jax.random.key(0))
    d_vars = jax.tree.map(lambda v: v + 0.05, d_vars)  # class_proj away from its init
    z = jax.random.uniform(jax.random.key(1), (3, MC.latent_dim), minval=-1, maxval=1)
    x = jax.random.normal(jax.random.key(2), (3, 128, 128, 1))
    ys = [jnp.array([0, 1, 2]), jnp.array([2, 2, 0])]
    for s, same in ((0.0, True), (None, False), (1.0, False)):
        g = [np.asarray(Generator(MC).apply(g_vars, z, y, cond_scale=s)) for y in ys]
        d = [np.asarray(Discriminator(MC).apply(d_vars, x, y, cond_scale=s)) for y in ys]
        assert np.array_equal(g[0], g[1]) == same and np.array_equal(d[0], d[1]) == same


def test_transitional_run_leaves_the_class_terms_untouched_before_cond_start(tmp_path):
    """Until cond_start nothing flows into the class tables (nor z_project's rows that read
    the class code); after it they train."""
    data, _ = _labelled_dataset()
    lc = LossConfig(n_critic=1, cond_start=2, cond_ramp=2)
    fns = make_train_fns(MC, lc, OptimConfig(), 4,
                         sampler_lib.make_sampler(Config().augment, with_labels=True))
    s0 = create_train_state(MC, lc, OptimConfig(), jax.random.key(0))
    s2, _ = fns.chunk(jax.tree.map(jnp.copy, s0), data, jax.random.key(1), 2)
    s4, _ = fns.chunk(jax.tree.map(jnp.copy, s2), data, jax.random.key(1), 2)

    def class_terms(s):
        kernel = s.g_params["z_project"]["dense"]["kernel"]  # [latent + E, 4*4*16d]
        return (s.g_params["class_embed"]["embedding"], kernel[MC.latent_dim:],
                s.d_params["class_proj"]["embedding"])

    for before, after2 in zip(class_terms(s0), class_terms(s2)):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after2))
    for a, b in zip(class_terms(s2), class_terms(s4)):
        assert not np.array_equal(np.asarray(a), np.asarray(b))
    # the rest of the model trained during the unconditional phase
    z_rows = [np.asarray(s.g_params["z_project"]["dense"]["kernel"][:MC.latent_dim])
              for s in (s0, s2)]
    assert not np.array_equal(*z_rows)
