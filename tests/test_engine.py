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
