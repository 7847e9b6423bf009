"""Shared helpers and THE tolerance table of the parity suite (specgan_jax vs specgan_torch_ref).

Every comparison is a relative error: max |jax - torch| / max |torch| over a tensor (or per
leaf of a parameter tree, the worst leaf reported). All runs are float32 on the CPU; the small
models (dim 4, batch <= 8) keep the suite fast on 2 cores.
"""

from __future__ import annotations

import jax
import numpy as np
import torch

from specgan_jax.engine import convert
from specgan_jax.config import ModelConfig
from specgan_torch_ref.models import SpecGANDiscriminator, SpecGANGenerator

# The tolerance table. fp32 machine epsilon is 1.2e-7; the two frameworks sum convolutions in
# different orders (and the "phase" formulation regroups the taps), so forward results differ by
# a few ulps times the depth of the network.
TOL = {
    # G and D forward with the same weights: 5 layers of rounding, ~1e-6 observed.
    "forward": 1e-5,
    # G forward in training mode with batch norm (batch statistics), fp32: up to 1.2e-5
    # observed. Not a formula difference: the same comparison in float64 agrees to 3e-14
    # (TOL["fp64"], test_forward_fp64). Normalising by a batch std that is small against the
    # channel mean cancels digits, so the frameworks' different summation orders show up
    # amplified. Bounded at 4x the worst observed.
    "forward_batchstats": 5e-5,
    # Any forward comparison run in float64 on both sides: proves the formulas identical.
    "fp64": 1e-12,
    # Every loss value and the gradient penalty on identical inputs.
    "loss": 1e-5,
    # Gradients of the D and G losses w.r.t. every parameter (GP: second derivatives).
    "grad": 1e-4,
    # Parameters after one full iteration (5 critic + 1 G updates), fp32. With Adam, elements
    # whose gradient sits at the fp32 noise floor differ by exactly 2 lr (a sign decision of
    # Adam's first step); test_training.py bounds those separately and explains why.
    "one_iteration": 1e-5,
    # Parameters after 1 and after 10 full iterations computed in float64 on both sides:
    # ~1e-13 observed, i.e. the same algorithm update for update.
    "fp64_training": 1e-9,
    # Weight conversion round trip: pure permutations, bit-exact.
    "roundtrip": 0.0,
    # model.precision="bf16" against the same model in fp32 (test_bf16.py). bf16 keeps 8
    # significant bits: every layer rounds its inputs and weights with relative error up to
    # 2^-9 = 2e-3 (accumulation stays fp32), and 6 layers compound it. Observed at dim 4:
    # G forward up to 1.8e-2 (upsample nn), D forward up to 1.2e-2 -> bounded at 5e-2.
    "bf16_forward": 5e-2,
    # The critic loss and its gradient penalty: observed 5.6e-5 (the logits' errors are small
    # against their spread, and the GP's norms are float32 sums) -> 1e-3.
    "bf16_loss": 1e-3,
    # D's gradient as one vector, normwise (||g_bf16 - g_fp32|| / ||g_fp32||): observed
    # 0.034-0.046 over 3 seeds -> 0.15. Per-element bounds are meaningless here: at
    # initialisation many gradient elements are sums that cancel to near zero (e.g. biases),
    # so their relative error is O(1) in either precision's rounding.
    "bf16_grad_normwise": 0.15,
    # 8 training steps from the same state and data: the Wasserstein estimate per step,
    # relative to its fp32 value; observed 2e-4 (42.078 vs 42.088 after 20 steps) -> 2e-2.
    "bf16_training_w": 2e-2,
}


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(float(np.max(np.abs(b))), 1e-30)
    return float(np.max(np.abs(a - b))) / scale


def tree_rel_err(a: dict, b: dict) -> tuple[float, str]:
    """Worst per-leaf relative error between two variable trees with the same structure."""
    fa = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_flatten_with_path(a)[0]}
    fb = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_flatten_with_path(b)[0]}
    assert fa.keys() == fb.keys(), sorted(set(fa) ^ set(fb))
    worst = max(((rel_err(fa[k], fb[k]), k) for k in fa), key=lambda t: t[0])
    return worst


def nchw(x) -> torch.Tensor:
    """NHWC numpy/jax array -> NCHW torch tensor."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def torch_models(cfg: ModelConfig, seed: int = 0, randomize_bn: bool = True):
    """Reference G and D for cfg with TF init; BN affine params and running stats randomised
    (init values 1/0 would hide a swapped or ignored tensor)."""
    torch.manual_seed(seed)
    kw = dict(kernel_len=cfg.kernel_len, dim=cfg.dim, use_batchnorm=cfg.use_batchnorm,
              padding=cfg.padding)
    g = SpecGANGenerator(nz=cfg.latent_dim, upsample=cfg.upsample, **kw)
    d = SpecGANDiscriminator(**kw)
    if randomize_bn:
        with torch.no_grad():
            for m in list(g.modules()) + list(d.modules()):
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.5, 0.5)
                    if m.track_running_stats:
                        m.running_mean.uniform_(-0.5, 0.5)
                        m.running_var.uniform_(0.5, 2.0)
    return g, d


def jax_vars(cfg: ModelConfig, g: torch.nn.Module, d: torch.nn.Module):
    return convert.generator_from_torch(cfg, g.state_dict()), convert.discriminator_from_torch(
        cfg, d.state_dict())
