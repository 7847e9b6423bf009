"""G and D forward: specgan_jax (both conv implementations) == specgan_torch_ref, every option."""

import itertools

import jax
import numpy as np
import pytest
import torch

from parity_tests.helpers import TOL, jax_vars, nchw, nhwc, rel_err, tree_rel_err, torch_models
from specgan_jax.engine import convert
from specgan_jax.config import ModelConfig
from specgan_jax.engine.models import Discriminator, Generator

COMBOS = list(itertools.product(("same", "torch"), ("zeros", "nn"), (False, True)))


@pytest.mark.parametrize("impl", ["xla", "phase", "hybrid"])
@pytest.mark.parametrize("padding,upsample,bn", COMBOS)
def test_generator_forward(padding, upsample, bn, impl, rng):
    cfg = ModelConfig(dim=4, padding=padding, upsample=upsample, use_batchnorm=bn, conv_impl=impl)
    tg, td = torch_models(cfg)
    g_vars, _ = jax_vars(cfg, tg, td)
    z = rng.uniform(-1, 1, (6, cfg.latent_dim)).astype(np.float32)
    gen = Generator(cfg)

    tg.eval()
    ref_eval = nhwc(tg(torch.from_numpy(z)))
    out_eval = gen.apply(g_vars, z, train=False)
    assert out_eval.shape == (6, 128, 128, 1)
    assert rel_err(out_eval, ref_eval) <= TOL["forward"]

    tg.train()  # batch statistics, and the running statistics advance
    ref_train = nhwc(tg(torch.from_numpy(z)))
    if bn:
        out_train, upd = gen.apply(g_vars, z, train=True, mutable=["batch_stats"])
        new_ref = convert.generator_from_torch(cfg, tg.state_dict())["batch_stats"]
        err, where = tree_rel_err(upd["batch_stats"], new_ref)
        assert err <= TOL["forward"], where
        # BN really changes the numbers between modes (otherwise this test proves nothing)
        assert rel_err(out_train, out_eval) > 1e-3
    else:
        out_train = gen.apply(g_vars, z, train=True)
    assert rel_err(out_train, ref_train) <= TOL["forward_batchstats" if bn else "forward"]


@pytest.mark.parametrize("impl", ["xla", "phase", "hybrid"])
@pytest.mark.parametrize("padding,upsample,bn", COMBOS)
def test_forward_fp64(padding, upsample, bn, impl):
    """Both models in float64 on both sides: equal to ~1e-14, so every fp32 difference above is
    rounding, not a formula difference."""
    cfg = ModelConfig(dim=4, padding=padding, upsample=upsample, use_batchnorm=bn, conv_impl=impl)
    tg, td = torch_models(cfg)
    tg, td = tg.double(), td.double()
    rs = np.random.default_rng(7)
    z = rs.uniform(-1, 1, (4, cfg.latent_dim))
    x = rs.uniform(-1, 1, (4, 128, 128, 1))
    with jax.enable_x64(True):
        g_vars, d_vars = jax_vars(cfg, tg, td)
        tg.train()
        ref_g = nhwc(tg(torch.from_numpy(z)))
        if bn:
            out_g = Generator(cfg).apply(g_vars, z, train=True, mutable=["batch_stats"])[0]
        else:
            out_g = Generator(cfg).apply(g_vars, z, train=True)
        out_d = Discriminator(cfg).apply(d_vars, x)
        assert out_g.dtype == np.float64 and out_d.dtype == np.float64
    assert rel_err(out_g, ref_g) <= TOL["fp64"]
    assert rel_err(out_d, td(nchw(x)).detach().numpy()) <= TOL["fp64"]


@pytest.mark.parametrize("impl", ["xla", "phase", "hybrid"])
@pytest.mark.parametrize("padding,bn", list(itertools.product(("same", "torch"), (False, True))))
def test_discriminator_forward(padding, bn, impl, rng):
    cfg = ModelConfig(dim=4, padding=padding, use_batchnorm=bn, conv_impl=impl)
    tg, td = torch_models(cfg)
    _, d_vars = jax_vars(cfg, tg, td)
    x = rng.uniform(-1, 1, (6, 128, 128, 1)).astype(np.float32)
    ref = td(nchw(x)).detach().numpy()
    out = Discriminator(cfg).apply(d_vars, x)
    assert out.shape == (6,)
    assert rel_err(out, ref) <= TOL["forward"]


def test_padding_modes_differ(rng):
    """The two padding modes are genuinely different functions (a one-pixel shift)."""
    outs = []
    for padding in ("same", "torch"):
        cfg = ModelConfig(dim=4, padding=padding)
        tg, td = torch_models(cfg)
        _, d_vars = jax_vars(cfg, tg, td)
        outs.append(Discriminator(cfg).apply(d_vars, np.ones((1, 128, 128, 1), np.float32) * 0.3
                                             + rng.uniform(-1, 1, (1, 128, 128, 1)).astype(np.float32)))
    assert rel_err(outs[0], outs[1]) > 1e-2
