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

from parity_tests.helpers import (KINK_MARGIN, TOL, PreActivations, assert_kink_margin,
                                  jax_vars, move_off_kinks, nchw, nhwc, rel_err, torch_models,
                                  tree_rel_err)
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


def compare_grads(grads, ref_grads, bn: bool, tol: float = TOL["grad"], noise: float = 1e-5):
    """Per-leaf relative error against `ref_grads`, the reference's gradients computed in
    float64 at the test point (every test here passes those, for JAX in float32 as in float64):
    an fp32 JAX gradient is compared with the exact value, not with torch's own fp32 rounding.
    Two fp32 results differ by the sum of both frameworks' errors, and torch's alone reached the
    tolerance: the first critic layer's bias gradient is a sum over B x F x T upstream terms that
    cancels to ~1e-3 of their size, and torch fp32 on one thread was 1.02e-4 from float64 there
    (parity_tests/test_nonsquare.py, 96 x 64, hybrid), JAX fp32 4.6e-6; the verdict changed
    with torch's thread count.

    Except the conv biases that feed a batch norm: BN subtracts the
    per-channel mean, so their gradient is analytically 0 and both sides hold only rounding
    noise (a relative error of noise is meaningless). Those must be ~0 on both sides instead
    (<= noise x the largest gradient: 1e-5 in float32, 1e-12 in float64 as test_conditional)."""
    flat = lambda t: {jax.tree_util.keystr(p): np.asarray(v)  # noqa: E731
                      for p, v in jax.tree_util.tree_flatten_with_path(t)[0]}
    a, b = flat(grads), flat(ref_grads)
    scale = max(float(np.abs(v).max()) for v in b.values())
    zero = {k for k in a if bn and k.endswith("['bias']") and "bn" not in k
            and any(s in k for s in ("upconv_0", "upconv_1", "upconv_2",
                                     "upconv_3", "downconv_1", "downconv_2", "downconv_3",
                                     "downconv_4"))}
    for k in zero:
        assert max(np.abs(a[k]).max(), np.abs(b[k]).max()) <= noise * scale, k
    rest = {k: a[k] for k in a if k not in zero}
    err, where = tree_rel_err(rest, {k: b[k] for k in rest})
    print(f"gradient rel err {err:.2e} (TOL {tol:.0e}) at {where}")
    assert err <= tol, where
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

    D_loss, gp_t = reference_d_loss(td64, real_t.double(), fake_t.double(), alpha_t.double(),
                                    label_t.double(), loss, smooth)
    td64.zero_grad()
    D_loss.backward()
    ref_grads = torch_grads(mcfg, td64, "discriminator")

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


def g_loss_setup(mcfg):
    """The models and latents of a generator-loss test: torch G and D moved off their ReLU
    kinks at z (D at G(z)), float64 copies of both, and the JAX variables converted from them
    before any forward advances G's batch-norm statistics."""
    tg, td = torch_models(mcfg)
    _, z, _, _ = inputs(3)
    z_t = torch.from_numpy(z)
    tg.train()
    move_off_kinks(tg, lambda g: g(z_t.double()))
    with torch.no_grad():
        fake_t = copy.deepcopy(tg)(z_t)  # a copy: G's BN running stats must not advance here
    move_off_kinks(td, lambda d: d(fake_t.double()))
    tg64, td64 = copy.deepcopy(tg).double(), copy.deepcopy(td).double()
    g_vars, d_vars = jax_vars(mcfg, tg, td)
    return tg, td, tg64, td64, z, z_t, g_vars, d_vars


@pytest.mark.parametrize("loss,bn", [("wgan-gp", False), ("dcgan", True), ("lsgan", False)])
def test_g_loss_and_gradients(loss, bn):
    mcfg = ModelConfig(dim=4, use_batchnorm=bn)
    lcfg = LossConfig(loss=loss)
    tg, td, tg64, td64, z, z_t, g_vars, d_vars = g_loss_setup(mcfg)
    with PreActivations(tg64, td64) as pre:
        reference_g_loss(tg64, td64, z_t.double(), loss)
    print(f"kink margin {assert_kink_margin(pre, f'G loss {loss}'):.2e}")

    G_loss = reference_g_loss(tg64, td64, z_t.double(), loss)
    tg64.zero_grad()
    G_loss.backward()
    ref_grads = torch_grads(mcfg, tg64, "generator")

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


# --- ns-r1 and hinge ---------------------------------------------------------------------------
# The critic losses in float32 (TOL loss/grad) and float64 (TOL fp64), with and without batch
# norm, and with a class-conditional (projection) critic in float64 as test_conditional checks
# WGAN-GP's. Test points: the ones of test_d_loss_and_gradients (inputs(35)) and of
# test_conditional (D_LOSS_SEED 7, the same real/z/alpha draws), made well-posed the same way.

# JAX's dtype, tolerances of the loss and the gradients, noise bound of the analytically zero
# BN-fed bias gradients; the reference always runs in float64 (compare_grads)
PRECISION = {"fp32": (np.float32, TOL["loss"], TOL["grad"], 1e-5),
             "fp64": (np.float64, TOL["fp64"], TOL["fp64"], 1e-12)}
N_CLASSES, Y_REAL, Y_FAKE = 3, np.array([0, 2, 1, 2]), np.array([1, 0, 0, 2])


def _call(net, x, y):
    return net(x) if y is None else net(x, torch.from_numpy(y))


def critic_point(bn: bool, cond: bool, hinge: bool = False):
    """(model config, torch G, torch D, real, fake, y_real, y_fake) with no pre-activation near a
    ReLU kink (test_d_loss_and_gradients's construction; test_conditional's for cond).

    hinge: fakes tanh(3 x) of the reals reversed (as test_gradient_penalty_per_example_...)
    instead of G(z): an untrained G's fakes score within ~1e-4 of each other, too close to put
    the hinge's kink between them with a margin (place_hinge_kinks). Every activation is then
    moved off its kink, the last one included: with the hinge's unequal active counts that does
    not make the last layer's bias gradients cancel (move_off_kinks's keep_last)."""
    mcfg = (ModelConfig(dim=4, use_batchnorm=bn, conditional=True, n_classes=N_CLASSES) if cond
            else ModelConfig(dim=4, use_batchnorm=bn))
    tg, td = torch_models(mcfg)
    real, z, alpha, _ = inputs(7 if cond else 35)
    y_real, y_fake = (Y_REAL, Y_FAKE) if cond else (None, None)
    tg.train()
    fake_t = (nchw(np.tanh(3 * real[::-1])) if hinge
              else _call(tg, torch.from_numpy(z), y_fake).detach())
    real_t, alpha_t = nchw(real), torch.from_numpy(alpha)
    interp_t = real_t + alpha_t.view(-1, 1, 1, 1) * (fake_t - real_t)
    move_off_kinks(td, lambda d: [_call(d, x.double(), y) for x, y in
                                  ((real_t, y_real), (fake_t, y_fake), (interp_t, y_real))],
                   keep_last=not hinge)
    return mcfg, tg, td, real_t, fake_t, y_real, y_fake


def place_hinge_kinks(td, real_t, fake_t, y_real, y_fake) -> float:
    """Maps the critic's logits affinely (its output layer, and the class projection, scaled;
    the output bias shifted) so that the hinge's kinks fall between logits: D(real) = 1 between
    the 3rd and 4th real logits, D(fake) = -1 between the 3rd and 4th fake ones. Both sides of
    both kinks are then tested, and the active counts differ (3 vs 1 or 1 vs 3), so the output
    bias's gradient is not the exact cancellation 2/B - 2/B. Returns the float64 margin of the
    logits from the kinks relative to the magnitudes summed in 1 -+ D (1, the bias, the rest)."""
    with torch.no_grad():
        r, f = (np.sort(_call(copy.deepcopy(td).double(), x.double(), y).numpy())
                for x, y in ((real_t, y_real), (fake_t, y_fake)))
        t_r, t_f = (r[2] + r[3]) / 2, (f[2] + f[3]) / 2
        s = 2.0 / (t_r - t_f)
        c = 1.0 - s * t_r  # s t_r + c = 1, s t_f + c = -1
        td.output.weight.mul_(s)
        td.output.bias.mul_(s).add_(c)
        if hasattr(td, "class_proj"):
            td.class_proj.weight.mul_(s)
        d_r, d_f = (_call(copy.deepcopy(td).double(), x.double(), y).numpy()
                    for x, y in ((real_t, y_real), (fake_t, y_fake)))
    assert (d_r < 1).sum() in (1, 3) and (d_f > -1).sum() in (1, 3)
    scale = 1.0 + abs(float(td.output.bias.detach())) + max(np.abs(d_r).max(), np.abs(d_f).max())
    return min(np.abs(1 - d_r).min(), np.abs(1 + d_f).min()) / scale


def reference_new_d_loss(td, real, fake, y_real, y_fake, loss, gamma=10.0, every=1, index=0):
    """specgan_torch_ref's ns-r1 / hinge critic loss: (D_loss, r1 or 0)."""
    D_real, D_fake = _call(td, real, y_real), _call(td, fake, y_fake)
    if loss == "hinge":
        return GANLoss.hinge_loss(D_real, D_fake)[1], torch.zeros((), dtype=real.dtype)
    net = lambda x: _call(td, x, y_real)  # noqa: E731  R1 at the reals, with their classes
    _, D_loss, r1 = GANLoss.ns_r1_loss(D_real, D_fake, net, real, gamma, every, index)
    return D_loss, r1


def check_new_d_loss(lcfg, bn, cond, precision, index=None, jit=False):
    """The critic loss of lcfg against the reference at critic_point(bn, cond), in `precision`;
    index: the critic update's index (lazy R1), traced under jit when jit."""
    ndtype, tol_loss, tol_grad, noise = PRECISION[precision]
    mcfg, tg, td, real_t, fake_t, y_real, y_fake = critic_point(bn, cond, lcfg.loss == "hinge")
    if lcfg.loss == "hinge":
        hinge_margin = place_hinge_kinks(td, real_t, fake_t, y_real, y_fake)
        print(f"hinge kink margin {hinge_margin:.2e}")
        assert hinge_margin >= KINK_MARGIN
    kw = ({} if lcfg.loss == "hinge" else
          dict(gamma=lcfg.r1_gamma, every=lcfg.r1_every, index=index or 0))
    td64 = copy.deepcopy(td).double()
    with PreActivations(td64) as pre:
        reference_new_d_loss(td64, real_t.double(), fake_t.double(), y_real, y_fake,
                             lcfg.loss, **kw)
    print(f"kink margin {assert_kink_margin(pre, f'D loss {lcfg.loss}'):.2e}")
    D_loss, r1_t = reference_new_d_loss(td64, real_t.double(), fake_t.double(), y_real, y_fake,
                                        lcfg.loss, **kw)
    td64.zero_grad()
    D_loss.backward()
    ref_grads = torch_grads(mcfg, td64, "discriminator")

    disc = Discriminator(mcfg)
    d_apply = lambda p, x, y=None: disc.apply({"params": p}, x, y)  # noqa: E731
    label_u = np.zeros((2, B), ndtype)  # dcgan's label noise: unused here
    alpha = np.zeros((B,), ndtype)  # the GP's: unused here

    def value_and_grad(params, real, fake, update_index):
        return jax.value_and_grad(losses.d_loss, argnums=2, has_aux=True)(
            lcfg, d_apply, params, real, fake, alpha, label_u, not bn, y_real, y_fake,
            update_index)

    with jax.enable_x64(precision == "fp64"):
        _, d_vars = jax_vars(mcfg, tg, td64 if precision == "fp64" else td)
        fn = jax.jit(value_and_grad) if jit else value_and_grad
        (val, aux), grads = fn(d_vars["params"], nhwc(real_t).astype(ndtype),
                               nhwc(fake_t).astype(ndtype), index)
    assert np.asarray(val).dtype == ndtype
    assert rel_err(val, D_loss.item()) <= tol_loss
    assert abs(float(aux["gp"]) - r1_t.item()) <= tol_loss * max(abs(r1_t.item()), 1e-30)
    compare_grads(grads, ref_grads, bn, tol_grad, noise)
    return float(aux["gp"])


NEW_D_CASES = ([(loss, bn, prec, False) for loss in ("ns-r1", "hinge") for bn in (False, True)
                for prec in ("fp32", "fp64")]
               + [("ns-r1", False, "fp64", True), ("hinge", False, "fp64", True)])


@pytest.mark.parametrize("loss,bn,precision,cond", NEW_D_CASES)
def test_new_d_loss_and_gradients(loss, bn, precision, cond):
    r1 = check_new_d_loss(LossConfig(loss=loss), bn, cond, precision)
    assert (r1 > 0) == (loss == "ns-r1")  # the penalty is really there (and only for ns-r1)


@pytest.mark.parametrize("index,due", [(6, True), (7, False)])
def test_lazy_r1_d_loss_and_gradients(index, due):
    """Lazy R1 (every 3rd update, weight x3), the update index traced in a jitted call as the
    training step's scan has it: the lax.cond path, on an update that applies the penalty
    (6 % 3 == 0) and on one that skips it, against the reference's own schedule."""
    lcfg = LossConfig(loss="ns-r1", r1_gamma=4.0, r1_every=3)
    r1 = check_new_d_loss(lcfg, False, False, "fp32", index=np.int32(index), jit=True)
    assert (r1 > 0) == due


def reference_new_g_loss(tg, td, z_t, loss):
    D_fake = td(tg(z_t))
    if loss == "hinge":
        return GANLoss.hinge_loss(D_fake, D_fake)[0]
    return GANLoss.nonsaturating_loss(D_fake, D_fake)[0]


@pytest.mark.parametrize("loss,bn,precision", [("ns-r1", False, "fp32"), ("ns-r1", True, "fp64"),
                                               ("hinge", True, "fp32"), ("hinge", False, "fp64")])
def test_new_g_loss_and_gradients(loss, bn, precision):
    """G's loss (softplus(-D(G(z))) or -D(G(z))) and its gradient w.r.t. every G parameter."""
    ndtype, tol_loss, tol_grad, noise = PRECISION[precision]
    mcfg = ModelConfig(dim=4, use_batchnorm=bn)
    tg, td, tg64, td64, z, z_t, g_vars, d_vars = g_loss_setup(mcfg)
    with PreActivations(tg64, td64) as pre:
        reference_new_g_loss(tg64, td64, z_t.double(), loss)
    print(f"kink margin {assert_kink_margin(pre, f'G loss {loss}'):.2e}")
    G_loss = reference_new_g_loss(tg64, td64, z_t.double(), loss)
    tg64.zero_grad()
    G_loss.backward()
    ref_grads = torch_grads(mcfg, tg64, "generator")

    gen, disc, lcfg = Generator(mcfg), Discriminator(mcfg), LossConfig(loss=loss)

    def objective(params, g_vars, d_vars, z):
        v = {**g_vars, "params": params}
        fake = (gen.apply(v, z, train=True, mutable=["batch_stats"])[0] if bn
                else gen.apply(v, z, train=True))
        return losses.g_loss(lcfg, disc.apply(d_vars, fake))

    with jax.enable_x64(precision == "fp64"):
        cast = lambda t: jax.tree_util.tree_map(lambda v: np.asarray(v, ndtype), t)  # noqa: E731
        g_vars, d_vars = cast(g_vars), cast(d_vars)
        val, grads = jax.value_and_grad(objective)(g_vars["params"], g_vars, d_vars,
                                                   z.astype(ndtype))
    assert np.asarray(val).dtype == ndtype
    assert rel_err(val, G_loss.item()) <= tol_loss
    compare_grads(grads, ref_grads, bn, tol_grad, noise)
