"""model.precision="bf16" (bf16 compute, fp32 params/optimizer/loss) against the fp32 engine.

This is JAX against JAX: the fp32 path is proven equal to the PyTorch reference by the rest of
the suite, so bounding bf16 against fp32 bounds it against the reference too. Tolerances and
their reasons: TOL["bf16_*"] in conftest.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from parity_tests.helpers import TOL, rel_err
from specgan_jax.engine import losses
from specgan_jax.engine import step as train_step
from specgan_jax.config import LossConfig, ModelConfig, OptimConfig
from specgan_jax.engine.models import Discriminator, Generator, init_models

B = 8


def _cfgs(**kw):
    return ModelConfig(dim=4, **kw), ModelConfig(dim=4, precision="bf16", **kw)


@pytest.fixture(scope="module")
def inputs():
    k = jax.random.split(jax.random.key(7), 4)
    return {
        "z": jax.random.uniform(k[0], (B, 100), minval=-1.0, maxval=1.0),
        "real": jax.random.uniform(k[1], (B, 128, 128, 1), minval=-1.0, maxval=1.0),
        "alpha": jax.random.uniform(k[2], (B,)),
    }


@pytest.mark.parametrize("upsample,bn", [("zeros", False), ("nn", True)])
def test_bf16_forward(inputs, upsample, bn):
    c32, c16 = _cfgs(upsample=upsample, use_batchnorm=bn)
    g, d = init_models(c32, jax.random.key(0))
    fake32 = Generator(c32).apply(g, inputs["z"])
    fake16 = Generator(c16).apply(g, inputs["z"])
    assert fake16.dtype == jnp.float32  # bf16 inside, float32 at the interface
    assert rel_err(fake16, fake32) <= TOL["bf16_forward"]
    d32 = Discriminator(c32).apply(d, inputs["real"])
    d16 = Discriminator(c16).apply(d, inputs["real"])
    assert d16.dtype == jnp.float32
    assert rel_err(d16, d32) <= TOL["bf16_forward"]
    # bf16 really changes the numbers (the mode is not silently fp32)
    assert rel_err(fake16, fake32) > 1e-4 and rel_err(d16, d32) > 1e-4


def test_bf16_loss_and_gradient(inputs):
    c32, c16 = _cfgs()
    lc = LossConfig()
    g, d = init_models(c32, jax.random.key(1))
    fake = Generator(c32).apply(g, inputs["z"])
    out = {}
    for c in (c32, c16):
        disc = Discriminator(c)
        apply = lambda p, x, disc=disc: disc.apply({"params": p}, x)  # noqa: E731
        (loss, aux), grads = jax.value_and_grad(losses.d_loss, argnums=2, has_aux=True)(
            lc, apply, d["params"], inputs["real"], fake, inputs["alpha"], None, True)
        out[c.precision] = (loss, aux["gp"], grads)
    (l32, gp32, g32), (l16, gp16, g16) = out["fp32"], out["bf16"]
    assert rel_err(l16, l32) <= TOL["bf16_loss"]
    assert rel_err(gp16, gp32) <= TOL["bf16_loss"]
    diff = optax.tree.norm(jax.tree.map(lambda a, b: a - b, g16, g32))
    assert float(diff / optax.tree.norm(g32)) <= TOL["bf16_grad_normwise"]
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(g16))  # fp32 gradients


def test_bf16_trains_like_fp32():
    """8 steps (2 critic updates each, to keep the compile short) from the same state and
    data: finite, float32 state, the same trajectory."""
    data = jax.random.uniform(jax.random.key(5), (32, 128, 128, 1), minval=-1.0, maxval=1.0)

    def sampler(x, key, n, b):
        return x[jax.random.randint(key, (n, b), 0, x.shape[0])]

    lc, oc = LossConfig(n_critic=2), OptimConfig()
    w = {}
    for c in _cfgs():
        state = train_step.create_train_state(c, lc, oc, jax.random.key(0))
        fns = train_step.make_train_fns(c, lc, oc, B, sampler)
        ws = []
        for _ in range(8):
            state, m = fns.step(state, data, jax.random.key(1))
            assert float(m["nonfinite"]) == 0.0
            ws.append(float(m["wasserstein"]))
        w[c.precision] = np.asarray(ws)
        # parameters and optimizer state stay float32 in bf16 mode
        assert all(x.dtype in (jnp.float32, jnp.int32) for x in jax.tree.leaves(state))
    assert w["fp32"][-1] > 5 * abs(w["fp32"][0])  # the critic is learning: W grows
    rel = np.abs(w["bf16"] - w["fp32"]) / np.maximum(np.abs(w["fp32"]), 1e-3)
    assert rel.max() <= TOL["bf16_training_w"], rel
