"""Shapes of every layer output for every option combination, and full-size param counts."""

import itertools

import jax
import jax.numpy as jnp
import pytest
import torch

from specgan_jax.config import ModelConfig
from specgan_jax.engine.models import Discriminator, Generator, init_models, param_count
from specgan_torch_ref.models import SpecGANDiscriminator, SpecGANGenerator, numel

OPTIONS = list(itertools.product(("same", "torch"), ("zeros", "nn"), (False, True),
                                 ("xla", "phase", "hybrid")))


def g_expected(d, b):
    return {"z_project": (b, 4, 4, 16 * d), "upconv_0": (b, 8, 8, 8 * d),
            "upconv_1": (b, 16, 16, 4 * d), "upconv_2": (b, 32, 32, 2 * d),
            "upconv_3": (b, 64, 64, d), "upconv_4": (b, 128, 128, 1)}


def d_expected(d, b):
    return {"downconv_0": (b, 64, 64, d), "downconv_1": (b, 32, 32, 2 * d),
            "downconv_2": (b, 16, 16, 4 * d), "downconv_3": (b, 8, 8, 8 * d),
            "downconv_4": (b, 4, 4, 16 * d), "output": (b, 1)}


def _layer_shapes(module, variables, x, **kw):
    """Output shape of every named top-level submodule (flax capture_intermediates)."""
    def f(v, x):
        _, st = module.apply(v, x, capture_intermediates=True, mutable=["intermediates"], **kw)
        return st["intermediates"]
    inter = jax.eval_shape(f, variables, x)
    return {k: v["__call__"][0].shape for k, v in inter.items() if k != "__call__"}


@pytest.mark.parametrize("padding,upsample,bn,impl", OPTIONS)
def test_layer_output_shapes(padding, upsample, bn, impl):
    cfg = ModelConfig(dim=8, padding=padding, upsample=upsample, use_batchnorm=bn,
                      conv_impl=impl)
    g_vars, d_vars = jax.eval_shape(lambda k: init_models(cfg, k), jax.random.key(0))
    z = jax.ShapeDtypeStruct((3, 100), jnp.float32)
    x = jax.ShapeDtypeStruct((3, 128, 128, 1), jnp.float32)
    assert _layer_shapes(Generator(cfg), g_vars, z, train=False) == g_expected(8, 3)
    assert _layer_shapes(Discriminator(cfg), d_vars, x) == d_expected(8, 3)


@pytest.mark.parametrize("padding,upsample", list(itertools.product(("same", "torch"),
                                                                    ("zeros", "nn"))))
def test_torch_reference_layer_shapes(padding, upsample):
    """The reference produces the same shapes, layer by layer (the seed's 97x97 bug fixed)."""
    g = SpecGANGenerator(dim=2, upsample=upsample, padding=padding)
    d = SpecGANDiscriminator(dim=2, padding=padding)
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
             for m in g.main if isinstance(m, (torch.nn.ConvTranspose2d, torch.nn.Conv2d))]
    out = g(torch.zeros(3, 100))
    for h in hooks:
        h.remove()
    want = [(3, c, s, s) for s, c in ((8, 16), (16, 8), (32, 4), (64, 2), (128, 1))]
    assert shapes == want and tuple(out.shape) == (3, 1, 128, 128)
    assert tuple(d(out).shape) == (3,)


@pytest.mark.parametrize("bn", [False, True])
def test_full_size_param_counts(bn):
    """dim=64 through jax.eval_shape (no full-size compile): the original's counts exactly,
    and the same as the torch reference's."""
    cfg = ModelConfig(use_batchnorm=bn)
    g_vars, d_vars = jax.eval_shape(lambda k: init_models(cfg, k), jax.random.key(0))
    g_n, d_n = param_count(g_vars["params"]), param_count(d_vars["params"])
    if not bn:
        assert (g_n, d_n) == (19_065_345, 17_427_969)
    with torch.device("meta"):  # no memory, no init cost
        tg = SpecGANGenerator(use_batchnorm=bn)
        td = SpecGANDiscriminator(use_batchnorm=bn)
    assert (g_n, d_n) == (numel(tg), numel(td))
