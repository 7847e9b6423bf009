"""Loss values, the gradient penalty, and the gradients of the D and G losses w.r.t. every
parameter: specgan_jax.engine.losses == specgan_torch_ref.losses on identical inputs.

Every gradient test point is made well-posed first (helpers.move_off_kinks) and checked for it
in float64 (helpers.assert_kink_margin): no ReLU / leaky-ReLU input within reach of fp32
rounding of its kink, where the gradient would depend on how the CPU rounds."""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from parity_tests.helpers import (TOL, PreActivations, assert_kink_margin, jax_vars,
                                  move_off_kinks, nchw, rel_err, torch_models, tree_rel_err)
from specgan_jax.engine import convert, losses
from specgan_jax.config import LossConfig, ModelConfig
from specgan_jax.engine.models import Discriminator, Generator
from specgan_torch_ref.losses import GANLoss, compute_gradient_penalty

B = 4
CASES = [  # (loss, label_smoothing, D/G batch norm)
    ("wgan-gp", False, False),  # per-example GP via vmap(grad)
    ("wgan-gp", False, True),  # D's BN couples the batch: grad of the summed logits
    ("wgan", False, False),
    ("dcgan", False, False),
    ("dcgan", True, True),
    ("lsgan", False, False),
]


def torch_grads(cfg, module, which):
    """The .grad of every parameter, converted to the Flax layout (buffers as zeros)."""
    sd = {k: torch.zeros_like(v) for k, v in module.state_dict().items()}
    for name, p in module.named_parameters():
        sd[name] = p.grad.detach().clone()
    return convert.from_torch(cfg, sd, which)["params"]


def compare_grads(grads, ref_grads, bn: bool):
    """Per-leaf relative error, except the conv biases that feed a batch norm: BN subtracts the
    per-channel mean, so their gradient is analytically 0 and both sides hold only rounding
    noise (a relative error of noise is meaningless). Those must be ~0 on both sides instead."""
    flat = lambda t: {jax.tree_util.keystr(p): np.asarray(v)  # noqa: E731
                      for p, v in jax.tree_util.tree_flatten_with_path(t)[0]}
    a, b = flat(grads), flat(ref_grads)
    scale = max(float(np.abs(v).max()) for v in b.values())
    zero = {k for k in a if bn and k.endswith("['bias']") and "bn" not in k
            and any(s in k for s in ("upconv_0", "upconv_1", "upconv_2",
                                     "upconv_3", "downconv_1", "downconv_2", "downconv_3",
                                     "downconv_4"))}
    for k in zero:
        assert max(np.abs(a[k]).max(), np.abs(b[k]).max()) <= 1e-5 * scale, k
    rest = {k: a[k] for k in a if k not in zero}
    err, where = tree_rel_err(rest, {k: b[k] for k in rest})
    print(f"gradient rel err {err:.2e} (TOL {TOL['grad']:.0e}) at {where}")
    assert err <= TOL["grad"], where
    return err


def inputs(seed):
    rs = np.random.default_rng(seed)
    return (rs.uniform(-1, 1, (B, 128, 128, 1)).astype(np.float32),  # real
            rs.uniform(-1, 1, (B, 100)).astype(np.float32),  # z
            rs.uniform(0, 1, (B,)).astype(np.float32),  # alpha
            rs.uniform(0, 1, (2, B)).astype(np.float32))  # label noise


def reference_d_loss(td, real_t, fake_t, alpha, label_u, loss, smooth):
    """specgan_torch_ref's critic loss (and gradient penalty) on the given inputs."""
    D_real, D_fake = td(real_t), td(fake_t)
    gp = torch.zeros((), dtype=real_t.dtype)
    if loss == "wgan-gp":
        _, D_loss, gp = GANLoss.wgan_gp_loss(D_real, D_fake, td, real_t, fake_t, alpha=alpha)
    elif loss == "wgan":
        _, D_loss = GANLoss.wgan_loss(D_real, D_fake)
    elif loss == "dcgan":
        labels = (0.8 + 0.2 * label_u[0], 0.2 * label_u[1]) if smooth else (None, None)
        _, D_loss = GANLoss.dcgan_loss(D_real, D_fake, *labels)
    else:
        _, D_loss = GANLoss.lsgan_loss(D_real, D_fake)
    return D_loss, gp


@pytest.mark.parametrize("loss,smooth,bn", CASES)
def test_d_loss_and_gradients(loss, smooth, bn):
    mcfg = ModelConfig(dim=4, use_batchnorm=bn)
    lcfg = LossConfig(loss=loss, label_smoothing=smooth)
    tg, td = torch_models(mcfg)
    # inputs(35): the first seed whose natural last critic layer keeps KINK_MARGIN (>= 2.1e-4)
    # in all three forward passes, BN or not (keep_last below)
    real, z, alpha, label_u = inputs(35)
    tg.train()
    fake_t = tg(torch.from_numpy(z)).detach()
    fake = fake_t.numpy().transpose(0, 2, 3, 1)
    real_t = nchw(real)
    alpha_t, label_t = torch.from_numpy(alpha), torch.from_numpy(label_u)
    interp_t = real_t + alpha_t.view(-1, 1, 1, 1) * (fake_t - real_t)
    # every input the critic sees: real, fake and (wgan-gp) the interpolates
    move_off_kinks(td, lambda d: [d(x.double()) for x in (real_t, fake_t, interp_t)],
                   keep_last=True)
    _, d_vars = jax_vars(mcfg, tg, td)

    td64 = copy.deepcopy(td).double()
    with PreActivations(td64) as pre:
        reference_d_loss(td64, real_t.double(), fake_t.double(), alpha_t.double(),
                         label_t.double(), loss, smooth)
    print(f"kink margin {assert_kink_margin(pre, f'D loss {loss}'):.2e}")

    D_loss, gp_t = reference_d_loss(td, real_t, fake_t, alpha_t, label_t, loss, smooth)
    td.zero_grad()
    D_loss.backward()
    ref_grads = torch_grads(mcfg, td, "discriminator")

    disc = Discriminator(mcfg)
    d_apply = lambda p, x: disc.apply({"params": p}, x)  # noqa: E731
    (val, aux), grads = jax.value_and_grad(losses.d_loss, argnums=2, has_aux=True)(
        lcfg, d_apply, d_vars["params"], real, fake, alpha, label_u, not bn)

    # The loss is a difference of means of the logits (wgan: E D(fake) - E D(real)), which can
    # cancel to far below the logits themselves: its rounding error is relative to the logits it
    # is computed from, so that is its scale (a relative error of the small difference would
    # amplify the logits' ~1e-6 by the cancellation, e.g. 7.6e-5 for a loss of 1e-3 here).
    with torch.no_grad():
        logit_scale = max(float(td(real_t).abs().max()), float(td(fake_t).abs().max()))
    assert abs(float(val) - D_loss.item()) <= TOL["loss"] * max(abs(D_loss.item()), logit_scale)
    assert rel_err(aux["gp"], gp_t.item()) <= TOL["loss"]
    compare_grads(grads, ref_grads, bn)


def test_leaky_relu_slope_at_exactly_zero():
    """A pre-activation of exactly 0 is no rounding accident when inputs or weights make a sum
    cancel exactly (a zero image into zero biases here; weights clipped to +-c in WGAN). The
    original's lrelu, tf.maximum(0.2 x, x), and torch's LeakyReLU both pass slope 0.2 there."""
    mcfg = ModelConfig(dim=4)
    tg, td = torch_models(mcfg)
    _, d_vars = jax_vars(mcfg, tg, td)
    x = torch.zeros(2, 1, 128, 128, requires_grad=True)
    td(x).sum().backward()
    disc = Discriminator(mcfg)
    g = jax.grad(lambda v: disc.apply(d_vars, v).sum())(np.zeros((2, 128, 128, 1), np.float32))
    assert float(jnp.abs(g).max()) > 0
    assert rel_err(g, x.grad.numpy().transpose(0, 2, 3, 1)) <= TOL["grad"]


def test_gradient_penalty_per_example_equals_grad_of_sum():
    """Without batch coupling the vmap(grad) and grad-of-sum forms are the same number."""
    mcfg = ModelConfig(dim=4)
    tg, td = torch_models(mcfg)
    real, _, alpha, _ = inputs(2)
    fake = np.tanh(real[::-1] * 3)
    # The penalty is a norm of dD/dx, piecewise constant in the leaky-ReLU slopes: the same
    # kink precondition as a parameter gradient, on the interpolates it differentiates at.
    interp_t = nchw(real + alpha[:, None, None, None] * (fake - real))
    move_off_kinks(td, lambda d: d(interp_t.double()))
    with PreActivations(td64 := copy.deepcopy(td).double()) as pre:
        td64(interp_t.double())
    print(f"kink margin {assert_kink_margin(pre, 'gradient penalty'):.2e}")
    _, d_vars = jax_vars(mcfg, tg, td)
    disc = Discriminator(mcfg)
    d_apply = lambda p, x: disc.apply({"params": p}, x)  # noqa: E731
    a = losses.gradient_penalty(d_apply, d_vars["params"], real, fake, alpha, True)
    b = losses.gradient_penalty(d_apply, d_vars["params"], real, fake, alpha, False)
    ref = compute_gradient_penalty(td, nchw(real), nchw(fake), alpha=torch.from_numpy(alpha))
    assert rel_err(a, b) <= TOL["loss"]
    assert rel_err(a, ref.item()) <= TOL["loss"]
    assert float(a) > 0.0


def reference_g_loss(tg, td, z_t, loss):
    D_fake = td(tg(z_t))
    if loss == "wgan-gp":
        return -D_fake.mean()
    if loss == "dcgan":
        return GANLoss.dcgan_loss(D_fake, D_fake)[0]
    return GANLoss.lsgan_loss(D_fake, D_fake)[0]


@pytest.mark.parametrize("loss,bn", [("wgan-gp", False), ("dcgan", True), ("lsgan", False)])
def test_g_loss_and_gradients(loss, bn):
    mcfg = ModelConfig(dim=4, use_batchnorm=bn)
    lcfg = LossConfig(loss=loss)
    tg, td = torch_models(mcfg)
    _, z, _, _ = inputs(3)
    z_t = torch.from_numpy(z)
    tg.train()
    move_off_kinks(tg, lambda g: g(z_t.double()))
    with torch.no_grad():
        fake_t = copy.deepcopy(tg)(z_t)  # a copy: G's BN running stats must not advance here
    move_off_kinks(td, lambda d: d(fake_t.double()))
    g_vars, d_vars = jax_vars(mcfg, tg, td)

    tg64, td64 = copy.deepcopy(tg).double(), copy.deepcopy(td).double()
    with PreActivations(tg64, td64) as pre:
        reference_g_loss(tg64, td64, z_t.double(), loss)
    print(f"kink margin {assert_kink_margin(pre, f'G loss {loss}'):.2e}")

    G_loss = reference_g_loss(tg, td, z_t, loss)
    tg.zero_grad()
    G_loss.backward()
    ref_grads = torch_grads(mcfg, tg, "generator")

    gen, disc = Generator(mcfg), Discriminator(mcfg)

    def objective(params):
        v = {**g_vars, "params": params}
        fake = (gen.apply(v, z, train=True, mutable=["batch_stats"])[0] if bn
                else gen.apply(v, z, train=True))
        return losses.g_loss(lcfg, disc.apply(d_vars, fake))

    val, grads = jax.value_and_grad(objective)(g_vars["params"])
    assert rel_err(val, G_loss.item()) <= TOL["loss"]
    compare_grads(grads, ref_grads, bn)
    assert float(jnp.abs(grads["upconv_0"]["conv"]["kernel"]).max()) > 0
