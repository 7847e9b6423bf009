"""Shared helpers and THE tolerance table of the parity suite (specgan_jax vs specgan_torch_ref).

Every comparison is a relative error: max |jax - torch| / max |torch| over a tensor (or per
leaf of a parameter tree, the worst leaf reported). All runs are float32 on the CPU; the small
models (dim 4, batch <= 8) keep the suite fast on 2 cores.
"""

from __future__ import annotations

import copy

import jax
import numpy as np
import torch

from specgan_jax.engine import convert
from specgan_jax.config import ModelConfig
from specgan_torch_ref.conditional import (SpecGANConditionalDiscriminator,
                                           SpecGANConditionalGenerator)
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
    # Any forward comparison run in float64 on both sides: proves the formulas identical. Also
    # losses and parameter gradients in float64 (test_conditional.py): <= 1.1e-13 observed.
    "fp64": 1e-12,
    # Every loss value and the gradient penalty on identical inputs.
    "loss": 1e-5,
    # Gradients of the D and G losses w.r.t. every parameter (GP: second derivatives), JAX in
    # float32 against the reference's float64 gradient at the same point (test_losses'
    # compare_grads says why not torch's float32 one): 1.4e-5 worst observed over every
    # gradient test, on one thread.
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
    """Reference G and D for cfg with TF init (class-conditional ones for cfg.conditional); BN
    affine params and running stats randomised (init values 1/0 would hide a swapped or
    ignored tensor)."""
    torch.manual_seed(seed)
    kw = dict(kernel_len=cfg.kernel_len, dim=cfg.dim, use_batchnorm=cfg.use_batchnorm,
              padding=cfg.padding, n_freq=cfg.n_freq, n_time=cfg.n_time)
    dkw = dict(spectral_norm=cfg.spectral_norm, sn_iterations=cfg.sn_iterations)  # D only
    if cfg.conditional:
        g = SpecGANConditionalGenerator(cfg.n_classes, nz=cfg.latent_dim, upsample=cfg.upsample,
                                        **kw)
        d = SpecGANConditionalDiscriminator(cfg.n_classes, **kw, **dkw)
    else:
        g = SpecGANGenerator(nz=cfg.latent_dim, upsample=cfg.upsample, **kw)
        d = SpecGANDiscriminator(**kw, **dkw)
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


# --- Kink margins ---------------------------------------------------------------------------
# The gradient of ReLU (G) and leaky ReLU (D) jumps where a pre-activation crosses 0: slope 1 on
# one side, 0 (or 0.2) on the other. If a pre-activation at a test point lies within fp32
# rounding reach of 0, the two frameworks (or two CPUs, or two conv_impls) may put it on
# different sides, and a gradient comparison then measures the jump, not the engine: through a
# critic with batch norm one such element moved dL/dG(z) by 2.2% (a pre-activation 4.5e-8 from
# 0 in downconv_3). So every gradient test point is checked first, in float64, for a margin.
#
# The reach of fp32 rounding, measured: max over a layer's elements of |x_fp32 - x_fp64| / rms(x),
# for every pre-activation layer of the dim-4 models (B=4, 3 seeds), JAX (xla, phase, hybrid) and
# torch, BN on and off, on G's output and on real, fake and interpolated critic inputs, with the
# default kernels (AVX2+FMA here) and with AVX without FMA: 1e-6..6e-6 in most layers, at most
# 1.4e-5 (the BN critic's last layer). That is the worst of thousands of elements; a given
# element's error is typically several times smaller. KINK_MARGIN = 1e-4 is 7x the worst reach
# seen. min |x| / rms(x) is taken per layer and per forward pass, in float64 (whose own reach,
# ~1e-15, is negligible), so the precondition's verdict is the same on every machine.
#
# At natural test points a 65k-element layer almost always has an element within 1e-4 rms of 0
# (expected count ~ 65536 * 2e-4 * 0.4 = 5), hence move_off_kinks below.
KINK_MARGIN = 1e-4


def _activation_bias_pairs(model: torch.nn.Module):
    """(activation module, module whose bias is added right before it) for each ReLU/LeakyReLU
    of a reference G or D, in forward order. G's first ReLU follows `fc` (a [C*h*w] bias that
    the forward views as [C, h, w]) or the first batch norm."""
    last = getattr(model, "fc", None)
    pairs = []
    for m in model.main:
        if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU)):
            pairs.append((m, last))
        elif getattr(m, "bias", None) is not None:
            last = m
    return pairs


class PreActivations:
    """Records, while active, the input of every ReLU / leaky ReLU of the given torch modules:
    one entry (label, array) per activation call, in call order."""

    def __init__(self, *models: torch.nn.Module):
        self.acts = [(f"{type(model).__name__[7:]}.{i}", act) for model in models
                     for i, (act, _) in enumerate(_activation_bias_pairs(model))]
        self.records: list[tuple[str, np.ndarray]] = []

    def __enter__(self):
        def hook(label):
            # inputs are cloned: the reference's ReLU(inplace=True) overwrites them
            return lambda mod, inp: self.records.append(
                (label, inp[0].detach().clone().numpy()))
        self.handles = [act.register_forward_pre_hook(hook(label)) for label, act in self.acts]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()

    def margins(self) -> list[tuple[float, str]]:
        """(min |x| / rms(x), label) per recorded call."""
        out = []
        for label, x in self.records:
            x = np.asarray(x, np.float64)
            out.append((float(np.abs(x).min() / np.sqrt(np.mean(x * x))), label))
        return out


def assert_kink_margin(pre: PreActivations, what: str) -> float:
    """The precondition of a gradient test: no pre-activation within KINK_MARGIN (relative to
    its layer's rms) of a ReLU kink. Returns the smallest margin found."""
    margins = pre.margins()
    assert margins, f"{what}: no activation was recorded (is the hook on the float64 copy?)"
    for label, x in pre.records:
        assert x.dtype == np.float64, f"{what}: margins must be measured in float64 ({label})"
    worst, where = min(margins)
    assert worst >= KINK_MARGIN, (
        f"{what}: the test point is ill-posed, not the engine wrong: a pre-activation of {where} "
        f"lies {worst:.2e} x rms from its ReLU kink (< KINK_MARGIN {KINK_MARGIN:.0e}), within "
        f"reach of fp32 rounding, so the gradient there depends on how the CPU rounds. Move the "
        f"test point (seed, inputs, or move_off_kinks) until the margin holds.")
    return worst


def move_off_kinks(model: torch.nn.Module, run, keep_last: bool = False, seed: int = 0,
                   margin: float = 0.5) -> None:
    """Makes a test point well-posed for gradient comparisons by construction. Layer by layer, in
    forward order (statistics from a float64 copy running `run(copy)`), shifts every channel of
    each activation's input, through the bias added right before it (conv/dense bias or batch-norm
    beta), wholly onto one side of the kink — the side drawn at random per channel, so both
    slopes stay tested — with its nearest element `margin` of its standard deviation away from
    0, in every forward pass of `run`. The shifts are added to `model` in place.

    keep_last leaves the last activation as it is (its margin must then come from the seed): a
    critic whose last activation had one slope per channel would make the WGAN loss's gradient
    w.r.t. that layer's bias cancel exactly between the real and fake means, an analytically
    zero gradient whose per-leaf relative error is noise."""
    rs = np.random.default_rng(seed)
    pairs = _activation_bias_pairs(model)
    for j, (_, biased) in enumerate(pairs[:-1] if keep_last else pairs):
        copy64 = copy.deepcopy(model).double()
        pre = PreActivations(copy64)
        with pre, torch.no_grad():
            run(copy64)
        label = pre.acts[j][0]
        calls = [a for lbl, a in pre.records if lbl == label]  # each [N, C, H, W]
        lo = np.stack([a.min(axis=(0, 2, 3)) for a in calls])  # [calls, C]
        hi = np.stack([a.max(axis=(0, 2, 3)) for a in calls])
        gap = margin * np.stack([a.std(axis=(0, 2, 3)) for a in calls])
        up = rs.random(lo.shape[1]) < 0.5
        delta = np.where(up, np.max(gap - lo, axis=0), np.min(-gap - hi, axis=0))
        with torch.no_grad():
            bias = biased.bias
            if isinstance(biased, torch.nn.Linear):  # G's fc: viewed as [C, h, w] downstream
                bias.view(len(delta), -1).add_(torch.from_numpy(delta[:, None]).to(bias.dtype))
            else:
                bias.add_(torch.from_numpy(delta).to(bias.dtype))
