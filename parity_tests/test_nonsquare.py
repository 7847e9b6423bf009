"""Non-square example shapes (model.n_freq x model.n_time): specgan_jax == specgan_torch_ref at
64 x 128 (a seed of 2 x 4) and 96 x 64 (3 x 2: an odd seed axis, upsampled 3 -> 6 -> ... -> 96).

Checked at both shapes: every layer's output shape; TF-exact 'same' padding of every stride-2
layer on both axes (against XLA's own "SAME", TensorFlow's definition); G and D forward in
float32 and float64 with every conv_impl; the WGAN-GP critic loss (the gradient penalty's
double backward included) and the generator loss with their parameter gradients, float32 and
float64, every conv_impl; the conversion round trip (the dense layers' (h, w, c) <-> (c, h, w)
permutations at a non-square seed), unconditional and conditional.

Tolerances are the suite's (helpers.TOL) for the same comparisons at 128 x 128, with the same
reasons; gradient test points are made well-posed by the suite's kink machinery
(helpers.move_off_kinks, assert_kink_margin). The JAX side runs jitted with the config static:
one compilation per (config, dtype), shared by the tests of this module.
"""

import copy
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax import lax

from parity_tests.helpers import (TOL, PreActivations, assert_kink_margin, jax_vars,
                                  move_off_kinks, nchw, nhwc, rel_err, torch_models,
                                  tree_rel_err)
from parity_tests.test_losses import (compare_grads, g_loss_setup, reference_d_loss,
                                      reference_g_loss, torch_grads)
from specgan_jax.config import LossConfig, ModelConfig
from specgan_jax.engine import convert, losses
from specgan_jax.engine.convs import NHWC
from specgan_jax.engine.layers import conv_2x, conv_transpose_2x, nn_upsampleconv
from specgan_jax.engine.models import Discriminator, Generator, init_models

SHAPES = [(64, 128), (96, 64)]
IMPLS = ["xla", "phase", "hybrid"]
B = 4

# name: (numpy dtype, torch dtype, forward tol, tol with batch statistics, loss tol, grad tol,
#        noise bound of the analytically zero BN-fed bias gradients), as test_losses' PRECISION
PRECISIONS = {
    "fp32": (np.float32, torch.float32, TOL["forward"], TOL["forward_batchstats"], TOL["loss"],
             TOL["grad"], 1e-5),
    "fp64": (np.float64, torch.float64, TOL["fp64"], TOL["fp64"], TOL["fp64"], TOL["fp64"],
             1e-12),
}


def shape_cfg(shape, **kw) -> ModelConfig:
    return ModelConfig(dim=4, n_freq=shape[0], n_time=shape[1], **kw)


# --- shapes and padding -------------------------------------------------------------------------

def _jax_layer_shapes(module, variables, x, **kw):
    def f(v, x):
        _, st = module.apply(v, x, capture_intermediates=True, mutable=["intermediates"], **kw)
        return st["intermediates"]
    inter = jax.eval_shape(f, variables, x)
    return {k: v["__call__"][0].shape for k, v in inter.items() if k != "__call__"}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("padding,upsample", list(itertools.product(("same", "torch"),
                                                                    ("zeros", "nn"))))
def test_layer_output_shapes(shape, padding, upsample):
    """Every layer of G and D, JAX (every conv_impl) and torch: G doubles [F/32, T/32] to
    [F, T], D halves it back, both axes independently."""
    (f, t), d = shape, 4
    h, w = f // 32, t // 32
    chans = [16 * d, 8 * d, 4 * d, 2 * d, d, 1]
    g_want = {"z_project": (3, h, w, 16 * d)}
    g_want.update({f"upconv_{i}": (3, h << (i + 1), w << (i + 1), chans[i + 1]) for i in range(5)})
    d_want = {f"downconv_{i}": (3, f >> (i + 1), t >> (i + 1), d << i) for i in range(5)}
    d_want["output"] = (3, 1)
    for impl in IMPLS:
        cfg = shape_cfg(shape, padding=padding, upsample=upsample, conv_impl=impl)
        g_vars, d_vars = jax.eval_shape(lambda k: init_models(cfg, k), jax.random.key(0))
        z = jax.ShapeDtypeStruct((3, 100), jnp.float32)
        x = jax.ShapeDtypeStruct((3, f, t, 1), jnp.float32)
        assert _jax_layer_shapes(Generator(cfg), g_vars, z, train=False) == g_want
        assert _jax_layer_shapes(Discriminator(cfg), d_vars, x) == d_want
    tg, td = torch_models(shape_cfg(shape, padding=padding, upsample=upsample))
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
             for m in list(tg.main) + list(td.main)
             if isinstance(m, (torch.nn.ConvTranspose2d, torch.nn.Conv2d))]
    out = tg(torch.zeros(3, 100))
    logits = td(out)
    for hk in hooks:
        hk.remove()
    nchw_of = lambda s: (s[0], s[3], s[1], s[2])  # noqa: E731
    assert seen == ([nchw_of(g_want[f"upconv_{i}"]) for i in range(5)]
                    + [nchw_of(d_want[f"downconv_{i}"]) for i in range(5)])
    assert tuple(logits.shape) == (3,)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("impl", IMPLS)
def test_same_padding_is_tensorflow_same_on_both_axes(shape, impl):
    """padding="same" of every layer kind equals XLA's "SAME" (TensorFlow's definition: total
    padding max(K - s, 0) per axis, the odd one after) at non-square inputs, both axes: the
    strided conv of D at [F, T], the transposed conv and nearest-x2 conv of G from [F/2, T/2]."""
    f, t = shape
    rs = np.random.default_rng(5)
    x = rs.normal(size=(2, f, t, 3)).astype(np.float32)
    x_half = rs.normal(size=(2, f // 2, t // 2, 3)).astype(np.float32)
    k_io = rs.normal(size=(5, 5, 3, 4)).astype(np.float32)  # [K, K, I, O]
    k_oi = rs.normal(size=(5, 5, 4, 3)).astype(np.float32)  # transpose layout [K, K, O, I]
    want_down = lax.conv_general_dilated(x, k_io, (2, 2), "SAME", dimension_numbers=NHWC)
    want_up = lax.conv_transpose(x_half, k_oi, (2, 2), "SAME", dimension_numbers=NHWC,
                                 transpose_kernel=True)
    up2 = jnp.repeat(jnp.repeat(x_half, 2, axis=1), 2, axis=2)
    want_nn = lax.conv_general_dilated(up2, k_io, (1, 1), "SAME", dimension_numbers=NHWC)
    got_down = conv_2x(x, k_io, "same", impl)
    got_up = conv_transpose_2x(x_half, k_oi, "same", impl)
    got_nn = nn_upsampleconv(x_half, k_io, "xla" if impl == "xla" else "phase")
    assert got_down.shape == (2, f // 2, t // 2, 4) and got_up.shape == (2, f, t, 4)
    for got, want in ((got_down, want_down), (got_up, want_up), (got_nn, want_nn)):
        assert rel_err(got, want) <= TOL["forward"]
    # the "torch" padding is another function: a one-pixel shift on each axis
    assert rel_err(conv_2x(x, k_io, "torch", impl), want_down) > 1e-2


# --- forward ------------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("cfg", "eval_mode"))
def forward(cfg, g_vars, d_vars, z, x, eval_mode=True):
    """(G(z) in eval mode or None, G(z) in training mode, G's updated batch_stats, D(x))."""
    gen = Generator(cfg)
    if not cfg.use_batchnorm:
        g = gen.apply(g_vars, z)
        return g, g, {}, Discriminator(cfg).apply(d_vars, x)
    g_train, upd = gen.apply(g_vars, z, train=True, mutable=["batch_stats"])
    g_eval = gen.apply(g_vars, z) if eval_mode else None
    return g_eval, g_train, upd["batch_stats"], Discriminator(cfg).apply(d_vars, x)


VARIANTS = [("same", "zeros", True), ("same", "nn", False), ("torch", "zeros", False)]


# Each conv_impl with one variant, so that at each shape every impl and every variant runs
# (the variants' product with the impls is test_forward's at 128 x 128; here it would triple
# the compilations for no path that the pairs miss: padding, upsampling and batch norm are
# independent of how a conv is lowered).
IMPL_VARIANTS = [(impl, *v) for impl, v in zip(IMPLS, VARIANTS)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("impl,padding,upsample,bn", IMPL_VARIANTS)
def test_forward(shape, impl, padding, upsample, bn, rng):
    """G (eval and training mode, BN running statistics) and D, float32 and float64."""
    cfg = shape_cfg(shape, padding=padding, upsample=upsample, use_batchnorm=bn, conv_impl=impl)
    tg, td = torch_models(cfg)
    z = rng.uniform(-1, 1, (B, cfg.latent_dim))
    x = rng.uniform(-1, 1, (B, *shape, 1))
    for precision, (dtype, to, tol, tol_bs, *_) in PRECISIONS.items():
        tg_p, td_p = copy.deepcopy(tg).to(to), copy.deepcopy(td).to(to)
        z_p, x_p = z.astype(dtype), x.astype(dtype)
        eval_mode = precision == "fp32"  # as test_conditional: fp64 checks training mode
        with jax.enable_x64(precision == "fp64"):
            g_vars, d_vars = jax_vars(cfg, tg_p, td_p)
            g_eval, g_train, stats, logits = forward(cfg, g_vars, d_vars, z_p, x_p, eval_mode)
        assert g_train.dtype == dtype and g_train.shape == (B, *shape, 1)
        if eval_mode:
            tg_p.eval()
            assert rel_err(g_eval, nhwc(tg_p(torch.from_numpy(z_p)))) <= tol
        tg_p.train()
        assert rel_err(g_train, nhwc(tg_p(torch.from_numpy(z_p)))) <= (tol_bs if bn else tol)
        if bn:
            new_ref = convert.generator_from_torch(cfg, tg_p.state_dict())["batch_stats"]
            err, where = tree_rel_err(stats, new_ref)
            assert err <= tol, where
        assert rel_err(logits, td_p(nchw(x_p)).detach().numpy()) <= tol


# --- losses and gradients -----------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("cfg",))
def jax_d_loss(cfg, d_params, real, fake, alpha):
    """(loss, aux), grads of the WGAN-GP critic loss w.r.t. D's parameters."""
    label_u = jnp.zeros((2, B), real.dtype)  # dcgan's label noise: unused by wgan-gp
    disc = Discriminator(cfg)
    return jax.value_and_grad(losses.d_loss, argnums=2, has_aux=True)(
        LossConfig(), lambda p, x: disc.apply({"params": p}, x), d_params, real, fake, alpha,
        label_u, not cfg.use_batchnorm)


@functools.partial(jax.jit, static_argnames=("cfg",))
def jax_g_loss(cfg, g_vars, d_vars, z):
    """loss, grads of the WGAN generator loss -E D(G(z)) w.r.t. G's parameters."""
    gen, disc = Generator(cfg), Discriminator(cfg)

    def objective(params):
        v = {**g_vars, "params": params}
        fake = (gen.apply(v, z, train=True, mutable=["batch_stats"])[0]
                if cfg.use_batchnorm else gen.apply(v, z, train=True))
        return losses.g_loss(LossConfig(), disc.apply(d_vars, fake))

    return jax.value_and_grad(objective)(g_vars["params"])


# Per (shape, batch norm): the first seed of the critic inputs whose natural last critic layer
# keeps KINK_MARGIN in all three forward passes (real, fake, interpolates) once the other
# layers are moved off their kinks (keep_last, as test_losses.test_d_loss_and_gradients).
D_LOSS_SEEDS = {((64, 128), False): 0, ((64, 128), True): 0,
                ((96, 64), False): 1, ((96, 64), True): 1}


def critic_point(shape, bn: bool):
    """(config, torch G, torch D, real, fake, alpha) as torch tensors, with no pre-activation of
    D near a leaky-ReLU kink in any of the loss's forward passes (checked in float64)."""
    mcfg = shape_cfg(shape, use_batchnorm=bn)
    tg, td = torch_models(mcfg)
    rs = np.random.default_rng(D_LOSS_SEEDS[shape, bn])
    real = rs.uniform(-1, 1, (B, *shape, 1)).astype(np.float32)
    z = rs.uniform(-1, 1, (B, 100)).astype(np.float32)
    alpha_t = torch.from_numpy(rs.uniform(0, 1, (B,)).astype(np.float32))
    tg.train()
    fake_t = tg(torch.from_numpy(z)).detach()
    real_t = nchw(real)
    interp_t = real_t + alpha_t.view(-1, 1, 1, 1) * (fake_t - real_t)
    move_off_kinks(td, lambda d: [d(x.double()) for x in (real_t, fake_t, interp_t)],
                   keep_last=True)
    td64 = copy.deepcopy(td).double()
    with PreActivations(td64) as pre:
        reference_d_loss(td64, real_t.double(), fake_t.double(), alpha_t.double(), None,
                         "wgan-gp", False)
    print(f"kink margin {assert_kink_margin(pre, f'D loss {shape} bn={bn}'):.2e}")
    return mcfg, tg, td, real_t, fake_t, alpha_t


@pytest.fixture(scope="module")
def critic_points():
    """critic_point per (shape, bn), built once for the module's tests."""
    return functools.lru_cache(maxsize=None)(critic_point)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("impl,bn", [("xla", False), ("phase", True), ("hybrid", False),
                                     ("hybrid", True)])
@pytest.mark.parametrize("precision", ["fp32", "fp64"])
def test_d_loss_and_gradients(shape, bn, impl, precision, critic_points):
    """The WGAN-GP critic loss, its gradient penalty and the gradient of the loss w.r.t. every
    D parameter (the penalty's part a second derivative through every strided conv)."""
    ndtype, _, _, _, tol_loss, tol_grad, noise = PRECISIONS[precision]
    mcfg, tg, td, real_t, fake_t, alpha_t = critic_points(shape, bn)
    # the reference in float64 at the (float32) test point, for either precision (compare_grads)
    td64 = copy.deepcopy(td).double()
    real64, fake64 = real_t.double(), fake_t.double()
    D_loss, gp_t = reference_d_loss(td64, real64, fake64, alpha_t.double(), None, "wgan-gp",
                                    False)
    td64.zero_grad()
    D_loss.backward()
    ref_grads = torch_grads(mcfg, td64, "discriminator")
    cfg = dataclasses_replace(mcfg, conv_impl=impl)
    with jax.enable_x64(precision == "fp64"):
        _, d_vars = jax_vars(cfg, tg, td64 if precision == "fp64" else td)
        (val, aux), grads = jax_d_loss(cfg, d_vars["params"], nhwc(real_t).astype(ndtype),
                                       nhwc(fake_t).astype(ndtype),
                                       alpha_t.numpy().astype(ndtype))
    with torch.no_grad():  # the loss's rounding is relative to the logits (test_losses)
        logit_scale = max(float(td64(real64).abs().max()), float(td64(fake64).abs().max()))
    assert abs(float(val) - D_loss.item()) <= tol_loss * max(abs(D_loss.item()), logit_scale)
    assert rel_err(aux["gp"], gp_t.item()) <= tol_loss and float(aux["gp"]) > 0
    compare_grads(grads, ref_grads, bn, tol_grad, noise)


def dataclasses_replace(cfg, **kw):
    import dataclasses
    return dataclasses.replace(cfg, **kw)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("precision", ["fp32", "fp64"])
def test_g_loss_and_gradients(shape, impl, precision):
    """The generator loss -E D(G(z)) and its gradient w.r.t. every G parameter, G with batch
    norm (training mode), test point test_losses.g_loss_setup's."""
    ndtype, _, _, _, tol_loss, tol_grad, noise = PRECISIONS[precision]
    mcfg = shape_cfg(shape, use_batchnorm=True, conv_impl=impl)
    tg, td, tg64, td64, z, z_t, g_vars, d_vars = g_loss_setup(mcfg)
    with PreActivations(tg64, td64) as pre:
        reference_g_loss(tg64, td64, z_t.double(), "wgan-gp")
    print(f"kink margin {assert_kink_margin(pre, f'G loss {shape}'):.2e}")
    G_loss = reference_g_loss(tg64, td64, z_t.double(), "wgan-gp")  # float64 (compare_grads)
    tg64.zero_grad()
    G_loss.backward()
    ref_grads = torch_grads(mcfg, tg64, "generator")
    with jax.enable_x64(precision == "fp64"):
        cast = lambda t: jax.tree_util.tree_map(lambda v: np.asarray(v, ndtype), t)  # noqa: E731
        val, grads = jax_g_loss(mcfg, cast(g_vars), cast(d_vars), z.astype(ndtype))
    assert np.asarray(val).dtype == ndtype
    assert rel_err(val, G_loss.item()) <= tol_loss
    compare_grads(grads, ref_grads, True, tol_grad, noise)


# --- weight conversion --------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("conditional,bn", [(False, False), (False, True), (True, False)])
def test_round_trip_exact(shape, conditional, bn):
    """torch -> Flax -> torch and back, bit-exact (TOL["roundtrip"] = 0), G and D: the dense
    layers' (c, h, w) <-> (h, w, c) permutations at a non-square seed, class_proj's included."""
    cfg = (shape_cfg(shape, use_batchnorm=bn, conditional=True, n_classes=3) if conditional
           else shape_cfg(shape, use_batchnorm=bn))
    tg, td = torch_models(cfg)
    for which, module in (("generator", tg), ("discriminator", td)):
        sd = module.state_dict()
        flax_vars = convert.from_torch(cfg, sd, which)
        back = convert.to_torch(cfg, flax_vars, which)
        assert back.keys() == sd.keys()
        for k in sd:
            if not k.endswith("num_batches_tracked"):  # unused with momentum=0.01; written 0
                assert torch.equal(back[k], sd[k]), k
        again = convert.from_torch(cfg, back, which)
        assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(flax_vars),
                                                       jax.tree_util.tree_leaves(again)))
        module.load_state_dict(back)  # loadable by the reference, strict


@pytest.mark.parametrize("shape", SHAPES)
def test_conditional_forward_fp64(shape, rng):
    """The conditional G and projection critic at a non-square shape, float64: class_proj's
    vectors are permuted as the flattened features they multiply."""
    cfg = shape_cfg(shape, conditional=True, n_classes=3, conv_impl="phase")
    tg, td = torch_models(cfg)
    tg, td = tg.double(), td.double()
    y = np.array([0, 2, 1, 2])
    z = rng.uniform(-1, 1, (B, cfg.latent_dim))
    x = rng.uniform(-1, 1, (B, *shape, 1))
    with jax.enable_x64(True):
        g_vars, d_vars = jax_vars(cfg, tg, td)
        g = Generator(cfg).apply(g_vars, z, y)
        logits = Discriminator(cfg).apply(d_vars, x, y)
        other = Discriminator(cfg).apply(d_vars, x, np.roll(y, 1))
    y_t = torch.from_numpy(y)
    assert rel_err(g, nhwc(tg(torch.from_numpy(z), y_t))) <= TOL["fp64"]
    assert rel_err(logits, td(nchw(x), y_t).detach().numpy()) <= TOL["fp64"]
    assert rel_err(other, logits) > 1e-2  # the labels matter
