"""The small-data remedies (specgan_jax.engine.ema, engine.diffaug and their wiring): the
generator EMA against its closed form, DiffAugment's identity at p = 0, its statistics and
gradients, ADA's signal and p moving the right way, the training-health summary and early
stopping."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from specgan_jax.cli import train as train_cli
from specgan_jax.config import DiffAugConfig, EMAConfig, LossConfig, ModelConfig, OptimConfig
from specgan_jax.config.resolve import resolved_optimizer
from specgan_jax.data import sampler as sampler_lib
from specgan_jax.data.moments import Moments
from specgan_jax.engine.models import Discriminator
from specgan_jax.engine.diffaug import (ada_adjust, ada_heldout_signal, ada_signal,
                                        diff_augment, gain_scale_from_std)
from specgan_jax.engine.ema import ema_beta, ema_kimg
from specgan_jax.engine.metrics import batch_spread
from specgan_jax.engine.step import create_train_state, make_train_fns
from specgan_jax.run.run_dir import LoadedRun
from specgan_jax.training import health as health_lib
from specgan_jax.training import setup as setup_lib
from tests import helpers

OFF = DiffAugConfig(strength=1.0, time_shift_prob=0.0, time_mask_prob=0.0, freq_mask_prob=0.0,
                    gain_prob=0.0)
ALL = DiffAugConfig(strength=1.0, time_stretch_prob=1.0)


def images(n, seed=0, f=128, t=128):
    return jax.random.uniform(jax.random.key(seed), (n, f, t, 1), jnp.float32, -1, 1)


# -- EMA ------------------------------------------------------------------------------------
def test_ema_beta_closed_form():
    b = 8
    assert ema_kimg(EMAConfig(), b) == 8 * 10 / 32  # StyleGAN2-ADA's auto half-life
    cfg = EMAConfig(kimg=2.5, rampup=0.05)
    assert float(ema_beta(0, b, cfg)) == 0.0  # warm-up: the average starts at the weights
    # step 1000: min(2500, 0.05 * 1000 * 8 = 400) images of half-life
    np.testing.assert_allclose(float(ema_beta(1000, b, cfg)), 0.5 ** (8 / 400), rtol=1e-6)
    np.testing.assert_allclose(float(ema_beta(10 ** 6, b, cfg)), 0.5 ** (8 / 2500), rtol=1e-6)
    np.testing.assert_allclose(float(ema_beta(3, b, EMAConfig(kimg=2.5, rampup=0))),
                               0.5 ** (8 / 2500), rtol=1e-6)
    assert float(ema_beta(1000, b, EMAConfig(kimg=0))) == 0.0  # off: EMA = the weights


# -- a tiny model trained a few steps with EMA, DiffAugment and ADA on (one compilation) ------
MC, B, N_CRITIC = ModelConfig(dim=4), 4, 2
EMA = EMAConfig(kimg=0.01, rampup=0.0)  # half-life 10 images: beta = 0.5 ** 0.4 per step
ADA = DiffAugConfig(strength=0.5, ada=True, ada_interval=2, ada_kimg=0.1, ada_target=0.6)
N_TRAIN = 12  # of the 16 images: the last 4 are held out for ADA's signal


def sampler(data, key, n_critic, batch):
    return data[jax.random.randint(key, (n_critic, batch), 0, N_TRAIN)]


def heldout_sampler(data, key, batch):
    return data[jax.random.randint(key, (batch,), N_TRAIN, data.shape[0])]


@pytest.fixture(scope="module")
def trained():
    """States, metrics and draws of 4 steps (host copies), starting from p = 0.5."""
    lc = LossConfig(n_critic=N_CRITIC)
    fns = make_train_fns(MC, lc, OptimConfig(), B, sampler, ema_cfg=EMA, diffaug_cfg=ADA,
                         gain_scale=gain_scale_from_std(np.linspace(0.5, 2.0, 128)),
                         heldout_sampler=heldout_sampler)
    state = create_train_state(MC, lc, OptimConfig(), jax.random.key(0), aug_p=ADA.strength)
    states, metrics, draws = [jax.device_get(state)], [], []
    data, key = images(16, 9), jax.random.key(3)
    for i in range(4):
        draws.append(jax.device_get(fns.draws(data, key, i)))
        state, m = fns.step(state, data, key)
        states.append(jax.device_get(state))
        metrics.append(jax.device_get(m))
    return states, metrics, draws


def test_ema_in_the_step_follows_its_recurrence(trained):
    states, _, _ = trained
    beta = 0.5 ** (B / 10.0)
    ema = states[0].g_params  # the EMA starts as a copy of the initial weights
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(states[0].g_ema),
                                                    jax.tree.leaves(ema)))
    for s in states[1:]:
        ema = jax.tree.map(lambda e, p: p + beta * (e - p), ema, s.g_params)
        for got, want, p in zip(jax.tree.leaves(s.g_ema), jax.tree.leaves(ema),
                                jax.tree.leaves(s.g_params)):
            # float32 arithmetic of the same formula; the scale is the weights'
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * max(np.abs(p).max(), 1e-3))
    # and the average really lags: it is not the trained weights
    assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(states[-1].g_ema),
                                                     jax.tree.leaves(states[-1].g_params)))


def test_ada_moves_p_every_interval_towards_the_target(trained):
    states, metrics, _ = trained
    delta = B * ADA.ada_interval / (ADA.ada_kimg * 1000)  # 0.08
    p = [float(s.aug_p) for s in states]
    assert p[1] == p[0] == 0.5 and p[3] == p[2]  # unchanged between adjustments
    for k in (2, 4):  # after steps 2 and 4: the mean r_t of the two steps decides
        rt = np.mean([float(metrics[i]["ada_rt"]) for i in (k - 2, k - 1)])
        expected = p[k - 2] + np.sign(rt - ADA.target) * delta
        np.testing.assert_allclose(p[k], np.clip(expected, 0, 1), rtol=1e-6)
        assert [float(metrics[i]["aug_p"]) for i in (k - 2, k - 1)] == [p[k - 2]] * 2
    assert np.all(np.asarray(states[-1].ada_acc) == 0)  # reset after an adjustment


def test_heldout_signal_in_the_step_is_the_end_critic_on_train_and_heldout_batches(trained):
    states, metrics, draws = trained
    disc = Discriminator(MC)
    for i, d in enumerate(draws):
        assert d.heldout.shape == (B, 128, 128, 1)
        data = np.asarray(images(16, 9))  # the held-out batch is made of held-out rows only
        assert all(any(np.array_equal(h, data[j]) for j in range(N_TRAIN, 16)) for h in d.heldout)
        d_params = states[i + 1].d_params  # the critic after this step's updates
        d_tr = np.asarray(disc.apply({"params": d_params}, d.real[-1]), np.float64)
        d_ho = np.asarray(disc.apply({"params": d_params}, d.heldout), np.float64)
        # well-posed: no training score within float32 rounding of the held-out mean
        margin = np.min(np.abs(d_tr - d_ho.mean())) / max(np.abs(d_tr).max(), 1e-12)
        assert margin > 1e-4, f"step {i}: a score lies {margin:.1e} from the held-out mean"
        assert float(metrics[i]["ada_rt"]) == np.mean(np.sign(d_tr - d_ho.mean()))


def test_heldout_signal_on_constructed_scores():
    rng = np.random.default_rng(0)
    # (65536 draws: the sampling spread of r is ~0.006; 0.02 below is ~3 of it)
    noise = rng.normal(size=(2, 65536)).astype(np.float32)
    assert float(ada_heldout_signal(5 + noise[0], noise[1])) == 1.0  # memorised: all above
    assert abs(float(ada_heldout_signal(noise[0], noise[1]))) < 0.02  # generalises: ~0
    # Gaussian scores: r = 2 Phi(gap / sigma) - 1; a gap of 0.39 sigma -> 0.30 (the target)
    gap = ada_heldout_signal(0.39 + noise[0], noise[1])
    assert abs(float(gap) - 0.30) < 0.02
    assert DiffAugConfig(ada=True).target == 0.3
    assert DiffAugConfig(ada=True, ada_signal="midpoint").target == 0.6
    for d in (lambda x: x + 100.0, lambda x: 3.0 * x):  # a WGAN critic is defined up to these
        assert float(ada_heldout_signal(d(0.39 + noise[0]), d(noise[1]))) == pytest.approx(
            float(gap), abs=1e-3)


def test_heldout_rows_are_never_sampled_for_training():
    n, held = 10, np.array([2, 7, 9])
    x = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], (n, 4, 4)).copy()
    std = np.full(4, 10.0)  # normalised value = index / 30, inside [-1, 1]
    moments = Moments(mean=np.zeros(4), std=std, std_raw=std, count=n, frames=4)
    ds = sampler_lib.build_dataset(x, np.arange(n) % 2, moments, heldout=held)
    assert (ds.n, ds.n_heldout, ds.n_train) == (10, 3, 7)
    row_of = lambda v: np.rint(np.asarray(v)[..., 0, 0, 0] * 30).astype(int)  # the row's index
    np.testing.assert_array_equal(row_of(ds.x), [0, 1, 3, 4, 5, 6, 8, 2, 7, 9])
    np.testing.assert_array_equal(ds.labels, np.array([0, 1, 3, 4, 5, 6, 8, 2, 7, 9]) % 2)
    dev = sampler_lib.to_device(ds)
    assert dev.n_heldout == 3
    aug = setup_lib.Config().augment  # the default: no real-batch augmentation
    train = jax.jit(sampler_lib.make_sampler(aug), static_argnums=(2, 3))(dev, jax.random.key(0),
                                                                          50, 8)
    held_batch = jax.jit(sampler_lib.make_heldout_sampler(aug), static_argnums=2)(
        dev, jax.random.key(1), 400)
    assert set(row_of(train).ravel()) == {0, 1, 3, 4, 5, 6, 8}
    assert set(row_of(held_batch).ravel()) == {2, 7, 9}


def test_ada_signal_on_constructed_logits():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(2, 4096)).astype(np.float32)
    apart = ada_signal("wgan-gp", 10 + noise[0], noise[1])  # every real above the midpoint
    same = ada_signal("wgan-gp", noise[0], noise[1])  # indistinguishable
    assert float(apart) == 1.0 and abs(float(same)) < 0.05
    # Gaussian logits: r_t = 2 Phi(gap / (2 sigma)) - 1; gap 1.7 sigma -> 0.605
    gap = ada_signal("wgan-gp", 1.7 + noise[0], noise[1] * 0)
    assert abs(float(gap) - 0.605) < 0.03
    # a WGAN critic is defined up to D + c; its scale is arbitrary too
    for d in (lambda x: x + 100.0, lambda x: 3.0 * x):
        # (abs 1e-3: float32 rounding of x + 100 may flip an element lying within ~1e-5 of c)
        assert float(ada_signal("wgan", d(1.7 + noise[0]), d(noise[1] * 0))) == pytest.approx(
            float(gap), abs=1e-3)
    assert float(ada_signal("dcgan", np.array([2.0, -1.0, 3.0]), np.zeros(3))) == pytest.approx(1 / 3)


def test_ada_adjust_direction_and_bounds():
    cfg = DiffAugConfig(ada=True, ada_interval=4, ada_kimg=1.0, ada_target=0.6, ada_max=0.8)
    d = 8 * 4 / 1000
    assert float(ada_adjust(0.5, 0.9, cfg, 8)) == pytest.approx(0.5 + d)  # overfitting: up
    assert float(ada_adjust(0.5, 0.1, cfg, 8)) == pytest.approx(0.5 - d)  # not: down
    assert float(ada_adjust(0.0, 0.1, cfg, 8)) == 0.0
    assert float(ada_adjust(0.79, 1.0, cfg, 8)) == pytest.approx(0.8)


# -- DiffAugment ----------------------------------------------------------------------------
def test_identity_at_p_zero_and_when_off():
    x = images(8)
    y = diff_augment(x, jax.random.key(0), jnp.float32(0.0), ALL)
    assert np.array_equal(np.asarray(y), np.asarray(x))  # every transform drawn, none applied
    assert diff_augment(x, jax.random.key(0), 1.0, DiffAugConfig()) is x  # off: not traced


def test_gain_is_one_constant_in_data_units_with_the_configured_spread():
    std = np.linspace(0.5, 2.0, 128)
    scale = gain_scale_from_std(std)
    cfg = dataclasses.replace(OFF, gain_prob=1.0, gain_max=0.5)
    x = images(2000, 1, f=128, t=8)
    y = np.asarray(diff_augment(x, jax.random.key(1), jnp.float32(0.5), cfg, scale))
    shift = (y - np.asarray(x))[..., 0] / scale[None, :, None]  # [N, F, T] in gain draws
    moved = np.abs(shift).max(axis=(1, 2)) > 0
    # applied with probability p x gain_prob = 0.5: binomial sd 0.011 over 2000 samples
    assert abs(moved.mean() - 0.5) < 0.05
    g = shift[moved][:, 0, 0]
    np.testing.assert_allclose(shift[moved], g[:, None, None] * np.ones_like(shift[moved]),
                               atol=2e-5)  # one constant per sample, in units of median(std)
    assert np.abs(g).max() <= 0.5 and abs(g.mean()) < 0.03 and abs(g.std() - 0.5 / 3 ** 0.5) < 0.02
    # in data units: normalised shift x 3 std_f is the same level for every bin
    np.testing.assert_allclose(scale * 3 * std, np.median(std), rtol=1e-6)


def test_time_transforms_never_move_energy_across_frequencies():
    rows = jnp.linspace(-0.9, 0.9, 128)[None, :, None, None] * jnp.ones((64, 128, 128, 1))
    cfg = DiffAugConfig(strength=1.0, gain_prob=0.0, freq_mask_prob=0.0, time_stretch_prob=1.0)
    y = np.asarray(diff_augment(rows, jax.random.key(2), 1.0, cfg))[..., 0]
    r = np.asarray(rows)[..., 0]
    # every row keeps its own value (or the masks' 0): no frequency shift, no flip
    assert np.all(np.isclose(y, r, atol=1e-6) | (y == 0))


def test_time_shift_is_a_roll_and_its_gradient_the_inverse_roll():
    cfg = dataclasses.replace(OFF, time_shift_prob=1.0, time_shift_max=0.125)
    x = images(1, 3)
    w = images(1, 4)
    key = jax.random.key(5)
    y = np.asarray(diff_augment(x, key, 1.0, cfg))
    s = [k for k in range(-16, 17) if np.array_equal(y, np.roll(np.asarray(x), k, axis=2))]
    assert len(s) == 1  # a roll by at most 0.125 * 128 = 16 frames
    grad = jax.grad(lambda v: jnp.sum(w * diff_augment(v, key, 1.0, cfg)))(x)
    np.testing.assert_array_equal(np.asarray(grad), np.roll(np.asarray(w), -s[0], axis=2))


def test_masks_zero_whole_bands_of_bounded_width():
    cfg = dataclasses.replace(OFF, time_mask_prob=1.0, time_mask_max=0.25,
                              freq_mask_prob=1.0, freq_mask_max=0.25)
    x = images(500, 6) * 0.5 + 0.75  # values in [0.25, 1.25]: no zeros of their own
    y = np.asarray(diff_augment(x, jax.random.key(7), 1.0, cfg))[..., 0]
    zero = y == 0
    t_width = zero.all(axis=1).sum(axis=1)  # whole columns zeroed
    f_width = zero.all(axis=2).sum(axis=1)  # whole rows zeroed
    assert t_width.max() <= 32 and f_width.max() <= 32
    # widths ~ U{0..32}: mean 16, sd 9.5 / sqrt(500) = 0.43
    assert abs(t_width.mean() - 16) < 2 and abs(f_width.mean() - 16) < 2
    # nothing else changed
    keep = ~(zero.all(axis=1)[:, None, :] | zero.all(axis=2)[:, :, None])
    np.testing.assert_array_equal(y[keep], np.asarray(x)[..., 0][keep])


# -- health and early stopping --------------------------------------------------------------
def test_batch_spread_sees_collapse_within_classes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4, 4, 1)).astype(np.float32)
    np.testing.assert_allclose(float(batch_spread(x)), np.std(x, axis=0).mean(), rtol=1e-6)
    y = np.array([0, 0, 1, 1, 2, 2])
    collapsed = x[[0, 0, 2, 2, 4, 4]]  # one output per class, classes apart
    assert float(batch_spread(collapsed)) > 0.5  # mixed-class spread: looks diverse
    assert float(batch_spread(collapsed, y, 3)) < 1e-6  # within classes: none
    pairs = x.reshape(3, 2, -1)  # by hand: per class, each sample's distance to the class mean
    resid = (pairs - pairs.mean(1, keepdims=True)).reshape(6, -1)
    np.testing.assert_allclose(float(batch_spread(x, y, 3)),
                               np.sqrt(np.mean(resid ** 2, axis=0)).mean(), rtol=1e-5)


def test_health_names_the_failure_modes():
    h = health_lib.Health()
    ok = {"fake_batch_std": 0.3, "real_batch_std": 0.33, "fake_std": 0.3, "fake_mean": -0.2}
    for w in (1.0, 0.8, 0.9, 0.7, 0.75):
        h.observe({**ok, "wasserstein": w})
    assert h.summary() == "health: ok"
    for w in (1.0, 1.2, 1.5, 2.0, 2.6):  # rising at every one of the last 5 log lines
        h.observe({**ok, "wasserstein": w})
    assert "critic far ahead" in h.summary()
    h = health_lib.Health()
    h.observe({**ok, "fake_batch_std": 0.02})
    assert "mode collapse" in h.summary()
    h.observe(ok)
    h.observe_eval({"eval/nn_self": 0.05, "eval/nn_self_real_baseline": 0.28})
    assert "mode collapse? (nn_self" in h.summary()
    h = health_lib.Health()
    h.observe({**ok, "fake_std": 0.001, "fake_batch_std": 0.3, "fake_mean": -0.99})
    assert "constant output" in h.summary() and "silence" in h.summary()


def test_early_stopping_rule_on_a_constructed_metric_sequence():
    scores = [5.0, 4.0, 4.5, 3.9, 4.1, 4.0, 3.95, 4.2]  # evaluations every 10 steps
    best, best_step, stopped = None, None, None
    for i, s in enumerate(scores, 1):
        step = 10 * i
        if best is None or s < best:  # PeriodicEval keeps strictly better scores
            best, best_step = s, step
        if health_lib.should_stop(step, best_step, 10, patience=3):
            stopped = step
            break
    assert (best_step, stopped) == (40, 70)  # 3.9 at step 40, then 3 evaluations without
    assert not health_lib.should_stop(70, 40, 10, patience=0)


class FakePeriodic:
    """PeriodicEval's interface with a constructed score sequence (no evaluation)."""

    scores = [3.0, 2.0, 2.5, 2.4, 2.2]

    def __init__(self, config, dataset, moments, workdir, gen_fn, step, log):
        self.metric, self.best_score, self.best_step, self.calls = "fd", None, None, 0

    def __call__(self, state, step):
        s = self.scores[self.calls]
        self.calls += 1
        if self.best_score is None or s < self.best_score:
            self.best_score, self.best_step = s, step
        return {"eval/fd": s}

    def close(self):
        pass


def test_training_stops_after_k_evaluations_without_improvement(tiny_data, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setattr(setup_lib, "PeriodicEval", FakePeriodic)
    work = tmp_path / "run"
    args = helpers.tiny_args(tiny_data["data"], work, 20, tiny_data["csv_cache"],
                             "--train.eval_every", "2", "--train.stop_after_no_improvement", "3")
    assert train_cli.main(args) == 0
    # best 2.0 at step 4; evaluations at 6, 8, 10 bring nothing better: stop at step 10
    stopped = json.loads((work / "stopped.json").read_text())
    assert stopped["step"] == 10 and stopped["best_step"] == 4 and "3 evaluations" in stopped["reason"]
    assert LoadedRun(str(work)).step == 10  # the state it stopped with is saved
    assert max(int(s) for s in os.listdir(work / "checkpoints")) == 10


def test_fast_preset_is_the_recipe_with_nn_upsampling_at_2e_3_and_the_default_stays_the_recipe():
    parser = train_cli.build_parser()
    user, demo = train_cli.resolve_config(parser.parse_args(["--data", "x"]))
    assert not demo and user.model.upsample == "zeros"  # the recipe: transposed convolutions,
    assert resolved_optimizer(user.loss, user.optim)["g_lr"] == 1e-4  # and the original's rate
    fast, _ = train_cli.resolve_config(parser.parse_args(["--data", "x", "--preset", "fast"]))
    assert (fast.model.upsample, fast.optim.g_lr, fast.optim.d_lr) == ("nn", 2e-3, 2e-3)
    assert fast.loss == user.loss and fast.model.dim == user.model.dim  # only the recipe moved
    assert fast.train.batch_size == user.train.batch_size
    small, _ = train_cli.resolve_config(parser.parse_args(["--data", "x", "--preset", "small-data"]))
    assert (small.model.upsample, small.optim.g_lr) == ("nn", 2e-3)  # small-data includes it
    demo_cfg, demo = train_cli.resolve_config(parser.parse_args([]))
    assert demo and (demo_cfg.model.upsample, demo_cfg.optim.g_lr) == ("nn", 2e-3)
    cond, _ = train_cli.resolve_config(parser.parse_args(["--model.conditional"]))
    assert cond.optim.g_lr == cond.optim.d_lr == 5e-4  # the measured conditional demo
    flag, _ = train_cli.resolve_config(parser.parse_args(
        ["--data", "x", "--preset", "fast", "--optim.g_lr", "3e-4"]))
    assert flag.optim.g_lr == 3e-4 and flag.optim.d_lr == 2e-3  # a flag beats the preset


def test_small_data_preset_resolves_under_config_files_and_flags():
    parser = train_cli.build_parser()
    cfg, demo = train_cli.resolve_config(parser.parse_args(
        ["--data", "x", "--preset", "small-data", "--train.stop_after_no_improvement", "4"]))
    assert not demo and cfg.train.eval_every == 1000  # from the preset
    assert cfg.train.stop_after_no_improvement == 4  # a flag beats the preset
    assert cfg.ema == EMAConfig() and not cfg.diffaug.enabled  # what the measurement kept
    cfg, demo = train_cli.resolve_config(parser.parse_args(["--preset", "small-data"]))
    assert demo and cfg.model.dim == 8 and cfg.train.eval_every == 1000  # on the demo preset
