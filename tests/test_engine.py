"""Unit tests of the JAX training step (specgan_jax.engine.step): compilation, determinism,
WGAN clipping, non-finite reporting. Tiny models; compiled functions shared per module."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from specgan_jax.config import LossConfig, ModelConfig, OptimConfig
from specgan_jax.engine.step import Draws, create_train_state, make_train_fns

MC = ModelConfig(dim=4)
B = 4


def sampler(data, key, n_critic, batch):
    idx = jax.random.randint(key, (n_critic, batch), 0, data.shape[0])
    return data[idx]  # [n_critic, B, 128, 128, 1]


@pytest.fixture(scope="module")
def data():
    return jax.random.uniform(jax.random.key(9), (16, 128, 128, 1), jnp.float32, -1, 1)


@pytest.fixture(scope="module")
def wgan_gp():
    lc = LossConfig(n_critic=2)
    return lc, make_train_fns(MC, lc, OptimConfig(), B, sampler)


def leaves(state):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(state)]


def test_step_compiles_once_and_is_bitwise_deterministic(wgan_gp, data):
    lc, fns = wgan_gp
    key = jax.random.key(42)
    runs = []
    for _ in range(2):
        state = create_train_state(MC, lc, OptimConfig(), jax.random.key(0))
        for _ in range(3):
            state, metrics = fns.step(state, data, key)
        runs.append(leaves(state))
        assert int(state.step) == 3
        assert all(np.isfinite(float(v)) for v in metrics.values())
    assert fns.step._cache_size() == 1  # 6 calls, 1 compilation
    assert all(np.array_equal(a, b) for a, b in zip(*runs))  # same seed -> same bits on CPU
    # and the draws really depend on the step: the parameters moved between steps
    other = create_train_state(MC, lc, OptimConfig(), jax.random.key(0))
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0], leaves(other)))


def test_draws_follow_step_not_call_count(wgan_gp, data):
    """fold_in(key, step): a resumed run draws what an uninterrupted one would have drawn."""
    _, fns = wgan_gp
    key = jax.random.key(1)
    a, b, c = (fns.draws(data, key, s) for s in (5, 5, 6))
    assert np.array_equal(a.z_g, b.z_g) and np.array_equal(a.real, b.real)
    assert not np.array_equal(a.z_g, c.z_g)
    assert a.real.shape == (2, B, 128, 128, 1) and a.alpha.shape == (2, B)
    assert float(jnp.min(a.z_g)) >= -1 and float(jnp.max(a.z_g)) <= 1  # U(-1, 1), the original


def test_wgan_clipping_holds_after_every_critic_update(data):
    """Huge critic learning rate: unclipped, the weights would leave [-c, c] at once."""
    lc = LossConfig(loss="wgan", n_critic=1)
    oc = OptimConfig(d_lr=10.0)
    fns = make_train_fns(MC, lc, oc, B, sampler)
    state = create_train_state(MC, lc, oc, jax.random.key(0))
    for _ in range(2):  # n_critic=1: each step's state is the state after one D update
        state, _ = fns.step(state, data, jax.random.key(3))
        mx = max(float(jnp.abs(x).max()) for x in jax.tree_util.tree_leaves(state.d_params))
        assert mx <= lc.clip
        assert mx == pytest.approx(lc.clip)  # the clip was active, not vacuous


def test_nonfinite_loss_is_reported_in_metrics(wgan_gp):
    lc, fns = wgan_gp
    state = create_train_state(MC, lc, OptimConfig(), jax.random.key(0))
    rs = np.random.default_rng(0)
    real = rs.uniform(-1, 1, (2, B, 128, 128, 1)).astype(np.float32)
    clean = Draws(real=real, z_d=rs.uniform(-1, 1, (2, B, 100)).astype(np.float32),
                  alpha=np.full((2, B), 0.5, np.float32), label_u=np.zeros((2, 2, B), np.float32),
                  z_g=rs.uniform(-1, 1, (B, 100)).astype(np.float32))
    _, m = fns.iteration(state, clean)
    assert float(m["nonfinite"]) == 0.0
    state = create_train_state(MC, lc, OptimConfig(), jax.random.key(0))
    real[1, 0, 3, 3, 0] = np.nan
    _, m = fns.iteration(state, clean.replace(real=real))
    assert float(m["nonfinite"]) == 1.0
    assert not np.isfinite(float(m["d_loss"]))


def test_linear_lr_decay_of_both_optimizers():
    """optim.lr_decay linear over 10 G steps, decay from step 5: G's rate per update, and D's
    per critic update (n_critic 5 per G step, so 50 updates), both constant to the middle and
    0 at the end. Read off Adam's first update on a constant gradient (|update| = lr there)."""
    from specgan_jax.engine.losses import make_optimizers
    g_tx, d_tx = make_optimizers(LossConfig(), OptimConfig(g_lr=1e-3, d_lr=2e-3,
                                                           lr_decay="linear", decay_steps=10))

    def rates(tx, n):
        p, out = {"w": jnp.ones(())}, []
        state = tx.init(p)
        for _ in range(n):
            u, state = tx.update({"w": jnp.ones(())}, state, p)
            out.append(float(-u["w"]))
        return np.array(out)

    g = rates(g_tx, 10)
    np.testing.assert_allclose(g, 1e-3 * np.r_[[1.0] * 6, 0.8, 0.6, 0.4, 0.2], rtol=1e-5)
    d = rates(d_tx, 50)
    np.testing.assert_allclose(d[:26], 2e-3, rtol=1e-5)
    np.testing.assert_allclose(d[26:], 2e-3 * (1 - np.arange(1, 25) / 25), rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="needs optim.decay_steps"):
        make_optimizers(LossConfig(), OptimConfig(lr_decay="linear"))
