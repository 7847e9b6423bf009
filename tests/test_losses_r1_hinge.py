"""The ns-r1 and hinge objectives' math on critics whose answers are known in closed form, the
lazy R1 schedule, and their config checks and optimizer defaults (engine/losses.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from specgan_jax.config import LossConfig, OptimConfig
from specgan_jax.engine import losses
from specgan_jax.errors import ConfigError

B, SHAPE = 3, (3, 4, 5, 1)
RS = np.random.default_rng(0)
W = RS.normal(size=SHAPE[1:]).astype(np.float32)
REAL = RS.normal(size=SHAPE).astype(np.float32)
FAKE = RS.normal(size=SHAPE).astype(np.float32)
ALPHA, LABEL_U = np.zeros(B, np.float32), np.zeros((2, B), np.float32)


def linear(p, x):
    """D(x) = <w, x> + b: grad_x D = w for every x."""
    return jnp.sum(x * p["w"], axis=(1, 2, 3)) + p["b"]


PARAMS = {"w": jnp.asarray(W), "b": jnp.float32(0.3)}


def softplus(x):
    return np.log1p(np.exp(x))


def logits(x):
    return np.sum(x * W, axis=(1, 2, 3), dtype=np.float64) + 0.3


def ns_part():
    return softplus(logits(FAKE)).mean() + softplus(-logits(REAL)).mean()


def test_r1_of_a_linear_critic_is_the_squared_norm_of_w():
    sq = float(np.sum(W.astype(np.float64) ** 2))
    assert float(losses.r1_penalty(linear, PARAMS, jnp.asarray(REAL))) == pytest.approx(sq, 1e-6)
    cfg = LossConfig(loss="ns-r1", r1_gamma=3.0)
    loss, aux = losses.d_loss(cfg, linear, PARAMS, REAL, FAKE, ALPHA, LABEL_U, True)
    assert float(aux["gp"]) == pytest.approx(sq, 1e-6)
    assert float(loss) == pytest.approx(ns_part() + 3.0 / 2 * sq, 1e-6)
    # d/dw: the logistic part's E sigmoid(D(fake)) fake - E sigmoid(-D(real)) real, plus the
    # penalty's d/dw (gamma/2) ||w||^2 = gamma w
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    want = (np.mean(sig(logits(FAKE))[:, None, None, None] * FAKE, axis=0)
            - np.mean(sig(-logits(REAL))[:, None, None, None] * REAL, axis=0) + 3.0 * W)
    g = jax.grad(lambda p: losses.d_loss(cfg, linear, p, REAL, FAKE, ALPHA, LABEL_U, True)[0])
    np.testing.assert_allclose(g(PARAMS)["w"], want, rtol=1e-5, atol=1e-5)


def test_r1_of_a_conditional_linear_critic_uses_the_real_classes():
    """D(x, y) = <w + v_y, x>: R1 = mean_i ||w + v_{y_real,i}||^2, whatever the fakes' classes."""
    v = RS.normal(size=(2,) + SHAPE[1:]).astype(np.float32)
    params = {"w": jnp.asarray(W), "v": jnp.asarray(v), "b": jnp.float32(0.0)}
    crit = lambda p, x, y: jnp.sum(x * (p["w"] + p["v"][y]), axis=(1, 2, 3))  # noqa: E731
    y_real, y_fake = np.array([0, 1, 1]), np.array([1, 0, 0])
    want = np.mean([np.sum((W + v[c]).astype(np.float64) ** 2) for c in y_real])
    _, aux = losses.d_loss(LossConfig(loss="ns-r1"), crit, params, REAL, FAKE, ALPHA, LABEL_U,
                           True, y_real, y_fake)
    assert float(aux["gp"]) == pytest.approx(want, 1e-6)


def test_lazy_weight_schedule():
    every1 = LossConfig(loss="ns-r1", r1_gamma=5.0)
    assert [losses.r1_weight(every1, i) for i in (None, 0, 1, 7)] == [2.5] * 4
    lazy = LossConfig(loss="ns-r1", r1_gamma=5.0, r1_every=4)
    w = [losses.r1_weight(lazy, i) for i in range(12)]
    assert w == [10.0, 0, 0, 0] * 3
    assert np.mean(w) == 2.5  # the average weight is gamma/2, as without laziness
    traced = jax.jit(lambda i: losses.r1_weight(lazy, i))
    assert [float(traced(jnp.int32(i))) for i in range(8)] == w[:8]
    with pytest.raises(ValueError, match="r1_every=4"):
        losses.r1_weight(lazy, None)


@pytest.mark.parametrize("index", [4, 5])
def test_lazy_update_applies_the_penalty_only_when_due(index):
    cfg = LossConfig(loss="ns-r1", r1_gamma=2.0, r1_every=4)
    fn = jax.jit(lambda p, i: losses.d_loss(cfg, linear, p, REAL, FAKE, ALPHA, LABEL_U, True,
                                            update_index=i))
    loss, aux = fn(PARAMS, jnp.int32(index))
    sq = float(np.sum(W.astype(np.float64) ** 2))
    due = index % 4 == 0
    assert float(aux["gp"]) == (pytest.approx(sq, 1e-6) if due else 0.0)
    assert float(loss) == pytest.approx(ns_part() + (4.0 * sq if due else 0.0), 1e-6)


def test_hinge_and_ns_losses_from_known_logits():
    """A critic that returns its input's first pixel: the logits are chosen directly."""
    pick = lambda p, x: x[:, 0, 0, 0]  # noqa: E731
    d_r, d_f = np.array([2.0, 0.5, -1.0], np.float32), np.array([-3.0, -0.5, 1.0], np.float32)
    real, fake = np.zeros(SHAPE, np.float32), np.zeros(SHAPE, np.float32)
    real[:, 0, 0, 0], fake[:, 0, 0, 0] = d_r, d_f
    loss, aux = losses.d_loss(LossConfig(loss="hinge"), pick, {}, real, fake, ALPHA, LABEL_U, True)
    # relu(1 - d_r) = [0, 0.5, 2], relu(1 + d_f) = [0, 0.5, 2]
    assert float(loss) == pytest.approx(2.5 / 3 + 2.5 / 3)
    assert float(aux["gp"]) == 0.0
    assert float(losses.g_loss(LossConfig(loss="hinge"), jnp.asarray(d_f))) == pytest.approx(
        -np.mean(d_f))
    assert float(losses.g_loss(LossConfig(loss="ns-r1"), jnp.asarray(d_f))) == pytest.approx(
        softplus(-d_f.astype(np.float64)).mean(), 1e-6)


def test_config_defaults_and_checks():
    assert LossConfig().n_critic == 5 and LossConfig(loss="dcgan").n_critic == 5
    ns = LossConfig(loss="ns-r1")
    assert (ns.n_critic, ns.r1_gamma, ns.r1_every) == (1, 10.0, 1)
    assert LossConfig(loss="hinge").n_critic == 1
    assert LossConfig(loss="ns-r1", n_critic=3).n_critic == 3  # explicit wins
    assert LossConfig().r1_gamma is None and LossConfig(loss="hinge").r1_every is None
    for kw in ({"r1_gamma": 1.0}, {"r1_every": 1}):
        for loss in ("wgan-gp", "hinge"):
            with pytest.raises(ConfigError, match="applies to loss='ns-r1' only"):
                LossConfig(loss=loss, **kw)
    with pytest.raises(ConfigError, match="r1_every must be >= 1"):
        LossConfig(loss="ns-r1", r1_every=0)
    with pytest.raises(ConfigError, match="r1_gamma must be >= 0"):
        LossConfig(loss="ns-r1", r1_gamma=-1.0)


def test_optimizer_defaults():
    opt = lambda loss, **kw: losses.resolved_optimizer(LossConfig(loss=loss),  # noqa: E731
                                                       OptimConfig(**kw))
    assert opt("wgan-gp") == {"optimizer": "adam", "g_lr": 1e-4, "d_lr": 1e-4, "beta1": 0.5,
                              "beta2": 0.9}
    assert opt("lsgan") == {"optimizer": "rmsprop", "g_lr": 1e-4, "d_lr": 1e-4, "beta1": None,
                            "beta2": None}
    assert opt("ns-r1") == {"optimizer": "adam", "g_lr": 1e-4, "d_lr": 1e-4, "beta1": 0.0,
                            "beta2": 0.99}
    assert opt("hinge") == {"optimizer": "adam", "g_lr": 1e-4, "d_lr": 4e-4, "beta1": 0.0,
                            "beta2": 0.9}
    assert opt("hinge", d_lr=1e-3, beta1=0.5) == {"optimizer": "adam", "g_lr": 1e-4,
                                                  "d_lr": 1e-3, "beta1": 0.5, "beta2": 0.9}


@pytest.mark.parametrize("loss", ["ns-r1", "hinge"])
def test_training_step_runs_the_new_losses(loss):
    """Both objectives through the jitted training step with their defaults (n_critic 1, their
    Adam settings): finite numbers, the critic really trained, R1 reported for ns-r1 only."""
    from specgan_jax.config import ModelConfig
    from specgan_jax.engine.step import create_train_state, make_train_fns

    mc, lc, oc = ModelConfig(dim=4), LossConfig(loss=loss), OptimConfig()
    data = jax.random.uniform(jax.random.key(9), (8, 128, 128, 1), jnp.float32, -1, 1)
    fns = make_train_fns(mc, lc, oc, 2, lambda d, k, n, b: d[jax.random.randint(k, (n, b), 0, 8)])
    state = create_train_state(mc, lc, oc, jax.random.key(0))
    before = jax.tree_util.tree_leaves(state.d_params)
    for _ in range(2):
        state, metrics = fns.step(state, data, jax.random.key(1))
    assert int(state.step) == 2
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert (float(metrics["gp"]) > 0) == (loss == "ns-r1")
    after = jax.tree_util.tree_leaves(state.d_params)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_lazy_r1_in_the_step_regularises_every_kth_critic_update():
    """ns-r1 with r1_every 2: the step passes each critic update's index over the run
    (step * n_critic + j), so with 1 critic update per step the penalty falls on steps 0, 2, ...
    and not 1, 3, ...; with 2 per step on the first update of every step ("gp" reports the last
    update's unweighted penalty: 0 then)."""
    from specgan_jax.config import ModelConfig
    from specgan_jax.engine.step import create_train_state, make_train_fns

    mc, oc = ModelConfig(dim=4), OptimConfig()
    data = jax.random.uniform(jax.random.key(9), (8, 128, 128, 1), jnp.float32, -1, 1)
    pick = lambda d, k, n, b: d[jax.random.randint(k, (n, b), 0, 8)]  # noqa: E731
    gps = {}
    for n_critic in (1, 2):
        lc = LossConfig(loss="ns-r1", n_critic=n_critic, r1_every=2)
        fns = make_train_fns(mc, lc, oc, 2, pick)
        state = create_train_state(mc, lc, oc, jax.random.key(0))
        gps[n_critic] = []
        for _ in range(3):
            state, metrics = fns.step(state, data, jax.random.key(1))
            gps[n_critic].append(float(metrics["gp"]))
    assert gps[1][0] > 0 and gps[1][1] == 0.0 and gps[1][2] > 0, gps
    assert gps[2] == [0.0, 0.0, 0.0], gps
