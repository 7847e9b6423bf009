"""Weight conversion: exact round trips both ways; loud failures on wrong keys or shapes."""

import numpy as np
import pytest
import torch

from parity_tests.helpers import torch_models
from specgan_jax.engine import convert
from specgan_jax.config import ModelConfig


@pytest.mark.parametrize("upsample,bn", [("zeros", False), ("zeros", True), ("nn", True)])
def test_round_trip_exact(upsample, bn):
    cfg = ModelConfig(dim=4, upsample=upsample, use_batchnorm=bn)
    tg, td = torch_models(cfg)
    for which, module in (("generator", tg), ("discriminator", td)):
        sd = module.state_dict()
        flax_vars = convert.from_torch(cfg, sd, which)
        back = convert.to_torch(cfg, flax_vars, which)
        assert back.keys() == sd.keys()
        for k in sd:
            if k.endswith("num_batches_tracked"):  # unused with momentum=0.01; written as 0
                continue
            assert torch.equal(back[k], sd[k]), k
        again = convert.from_torch(cfg, back, which)  # flax -> torch -> flax
        assert all(np.array_equal(a, b) for a, b in zip(_leaves(flax_vars), _leaves(again)))
        module.load_state_dict(back)  # loadable by the reference, strict


def _leaves(tree):
    import jax
    return jax.tree_util.tree_leaves(tree)


def test_missing_and_unexpected_keys_fail_loudly():
    cfg = ModelConfig(dim=4)
    tg, _ = torch_models(cfg)
    sd = dict(tg.state_dict())
    sd.pop("main.1.weight")
    sd["main.99.weight"] = torch.zeros(1)
    with pytest.raises(convert.ConversionError, match=r"missing keys \['main.1.weight'\].*"
                                                      r"unexpected keys \['main.99.weight'\]"):
        convert.generator_from_torch(cfg, sd)


def test_wrong_shape_fails_loudly():
    cfg = ModelConfig(dim=4)
    tg, _ = torch_models(ModelConfig(dim=4, kernel_len=3))  # same keys, other kernel size
    with pytest.raises(convert.ConversionError, match="main.1.weight"):
        convert.generator_from_torch(cfg, tg.state_dict())


def test_seed_discriminator_with_running_stats_imports():
    """The seed's D had BatchNorm2d tracking running stats; SpecGAN's critic never uses them,
    so they are declared ignored rather than rejected."""
    cfg = ModelConfig(dim=4, use_batchnorm=True)
    _, td = torch_models(cfg)
    sd = dict(td.state_dict())
    sd["main.3.running_mean"] = torch.zeros(8)
    sd["main.3.running_var"] = torch.ones(8)
    d_vars = convert.discriminator_from_torch(cfg, sd)
    assert set(d_vars) == {"params"}
