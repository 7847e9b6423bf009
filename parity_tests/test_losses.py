"""Loss values, the gradient penalty, and the gradients of the D and G losses w.r.t. every
parameter: specgan_jax.losses == specgan_torch_ref.losses on identical inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from parity_tests.helpers import TOL, jax_vars, nchw, rel_err, torch_models, tree_rel_err
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
    assert err <= TOL["grad"], where
    return err


def inputs(seed):
    rs = np.random.default_rng(seed)
    return (rs.uniform(-1, 1, (B, 128, 128, 1)).astype(np.float32),  # real
            rs.uniform(-1, 1, (B, 100)).astype(np.float32),  # z
            rs.uniform(0, 1, (B,)).astype(np.float32),  # alpha
            rs.uniform(0, 1, (2, B)).astype(np.float32))  # label noise


@pytest.mark.parametrize("loss,smooth,bn", CASES)
def test_d_loss_and_gradients(loss, smooth, bn):
    mcfg = ModelConfig(dim=4, use_batchnorm=bn)
    lcfg = LossConfig(loss=loss, label_smoothing=smooth)
    tg, td = torch_models(mcfg)
    _, d_vars = jax_vars(mcfg, tg, td)
    real, z, alpha, label_u = inputs(1)
    tg.train()
    fake_t = tg(torch.from_numpy(z)).detach()
    fake = fake_t.numpy().transpose(0, 2, 3, 1)
    real_t = nchw(real)

    # reference
    D_real, D_fake = td(real_t), td(fake_t)
    gp_t = torch.zeros(())
    if loss == "wgan-gp":
        _, D_loss, gp_t = GANLoss.wgan_gp_loss(D_real, D_fake, td, real_t, fake_t,
                                               alpha=torch.from_numpy(alpha))
    elif loss == "wgan":
        _, D_loss = GANLoss.wgan_loss(D_real, D_fake)
    elif loss == "dcgan":
        lu = torch.from_numpy(label_u)
        labels = (0.8 + 0.2 * lu[0], 0.2 * lu[1]) if smooth else (None, None)
        _, D_loss = GANLoss.dcgan_loss(D_real, D_fake, *labels)
    else:
        _, D_loss = GANLoss.lsgan_loss(D_real, D_fake)
    td.zero_grad()
    D_loss.backward()
    ref_grads = torch_grads(mcfg, td, "discriminator")

    disc = Discriminator(mcfg)
    d_apply = lambda p, x: disc.apply({"params": p}, x)  # noqa: E731
    (val, aux), grads = jax.value_and_grad(losses.d_loss, argnums=2, has_aux=True)(
        lcfg, d_apply, d_vars["params"], real, fake, alpha, label_u, not bn)

    assert rel_err(val, D_loss.item()) <= TOL["loss"]
    assert rel_err(aux["gp"], gp_t.item()) <= TOL["loss"]
    compare_grads(grads, ref_grads, bn)


def test_gradient_penalty_per_example_equals_grad_of_sum():
    """Without batch coupling the vmap(grad) and grad-of-sum forms are the same number."""
    mcfg = ModelConfig(dim=4)
    tg, td = torch_models(mcfg)
    _, d_vars = jax_vars(mcfg, tg, td)
    real, _, alpha, _ = inputs(2)
    fake = np.tanh(real[::-1] * 3)
    disc = Discriminator(mcfg)
    d_apply = lambda p, x: disc.apply({"params": p}, x)  # noqa: E731
    a = losses.gradient_penalty(d_apply, d_vars["params"], real, fake, alpha, True)
    b = losses.gradient_penalty(d_apply, d_vars["params"], real, fake, alpha, False)
    ref = compute_gradient_penalty(td, nchw(real), nchw(fake), alpha=torch.from_numpy(alpha))
    assert rel_err(a, b) <= TOL["loss"]
    assert rel_err(a, ref.item()) <= TOL["loss"]
    assert float(a) > 0.0


@pytest.mark.parametrize("loss,bn", [("wgan-gp", False), ("dcgan", True), ("lsgan", False)])
def test_g_loss_and_gradients(loss, bn):
    mcfg = ModelConfig(dim=4, use_batchnorm=bn)
    lcfg = LossConfig(loss=loss)
    tg, td = torch_models(mcfg)
    g_vars, d_vars = jax_vars(mcfg, tg, td)
    _, z, _, _ = inputs(3)
    tg.train()
    D_fake = td(tg(torch.from_numpy(z)))
    if loss == "wgan-gp":
        G_loss = -D_fake.mean()
    elif loss == "dcgan":
        G_loss = GANLoss.dcgan_loss(D_fake, D_fake)[0]
    else:
        G_loss = GANLoss.lsgan_loss(D_fake, D_fake)[0]
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
