"""Class-conditional models: specgan_jax == specgan_torch_ref.conditional.

G joins a learned class code to z; the critic is a projection discriminator (engine/models.py).
Checked here: G and D forward (fp32 and float64, every conv_impl, with and without batch norm),
the WGAN-GP critic loss and the generator loss with labels and their parameter gradients in
float64 (test points made well-posed by the suite's kink machinery, helpers.move_off_kinks and
assert_kink_margin), weight conversion both ways, that unconditional models keep their
parameter tree, the label and class-count errors, and bf16 mode.

Forward values are continuous across ReLU kinks, so the fp32 forward comparisons need no kink
margin (as in test_forward); gradients are not, hence the margins in the gradient tests.

Labels: B = 4 examples of 3 classes, Y = [0, 2, 1, 2]: every class present (every row of the
class tables gets a gradient) and one class twice (its rows' gradients must add up). The JAX side
runs jitted: one compilation per test rather than one per operation keeps the file fast.
"""

import copy
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from parity_tests.helpers import (TOL, PreActivations, assert_kink_margin, jax_vars,
                                  move_off_kinks, nchw, nhwc, rel_err, torch_models,
                                  tree_rel_err)
from specgan_jax.config import LossConfig, ModelConfig
from specgan_jax.engine import convert, losses
from specgan_jax.engine.models import Discriminator, Generator, init_models
from specgan_torch_ref.conditional import (SpecGANConditionalDiscriminator,
                                           SpecGANConditionalGenerator)
from specgan_torch_ref.losses import GANLoss
from specgan_torch_ref.train_step import make_optimizer, train_iteration

B, N_CLASSES = 4, 3
Y = np.array([0, 2, 1, 2], np.int32)
IMPLS = ["xla", "phase", "hybrid"]


def cond_cfg(**kw) -> ModelConfig:
    return ModelConfig(dim=4, conditional=True, n_classes=N_CLASSES, **kw)


@functools.partial(jax.jit, static_argnames=("cfg", "eval_mode"))
def forward(cfg, g_vars, d_vars, z, x, y, eval_mode=True):
    """(G(z, y) in eval mode or None, G(z, y) in training mode, G's updated batch_stats,
    D(x, y)), compiled as one program: compilation is most of this file's time."""
    gen = Generator(cfg)
    if not cfg.use_batchnorm:  # eval and training mode compute the same function
        g = gen.apply(g_vars, z, y)
        return g, g, {}, Discriminator(cfg).apply(d_vars, x, y)
    g_train, upd = gen.apply(g_vars, z, y, train=True, mutable=["batch_stats"])
    g_eval = gen.apply(g_vars, z, y) if eval_mode else None
    return g_eval, g_train, upd["batch_stats"], Discriminator(cfg).apply(d_vars, x, y)


# name: (numpy dtype, torch dtype, tolerance, tolerance with batch statistics, G eval mode too).
# float64 checks G in training mode only, as test_forward_fp64: the eval-mode program would be
# one more compilation for no formula that the fp32 comparison and test_forward do not cover.
PRECISIONS = {
    "fp32": (np.float32, torch.float32, TOL["forward"], TOL["forward_batchstats"], True),
    "fp64": (np.float64, torch.float64, TOL["fp64"], TOL["fp64"], False),
}


# --- forward ----------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bn", [False, True])
def test_conditional_forward(bn, impl, rng):
    cfg = cond_cfg(use_batchnorm=bn, conv_impl=impl)
    tg, td = torch_models(cfg)
    z = rng.uniform(-1, 1, (B, cfg.latent_dim))
    x = rng.uniform(-1, 1, (B, 128, 128, 1))
    y_t = torch.from_numpy(Y)
    for precision, (dtype, to, tol, tol_batchstats, eval_mode) in PRECISIONS.items():
        tg_p, td_p = copy.deepcopy(tg).to(to), copy.deepcopy(td).to(to)
        z_p, x_p = z.astype(dtype), x.astype(dtype)
        with jax.enable_x64(precision == "fp64"):
            g_vars, d_vars = jax_vars(cfg, tg_p, td_p)
            g_eval, g_train, stats, logits = forward(cfg, g_vars, d_vars, z_p, x_p, Y, eval_mode)
            # np.roll(Y, 1) changes every example's class: a model that ignored the labels on
            # both sides would pass the comparisons below, not these
            _, g_other, _, logits_other = forward(cfg, g_vars, d_vars, z_p, x_p, np.roll(Y, 1),
                                                  eval_mode)
        assert g_train.dtype == dtype and logits.shape == (B,)
        assert rel_err(g_other, g_train) > 1e-2 and rel_err(logits_other, logits) > 1e-2

        if eval_mode:
            tg_p.eval()
            assert rel_err(g_eval, nhwc(tg_p(torch.from_numpy(z_p), y_t))) <= tol
        tg_p.train()  # batch statistics, and the running statistics advance
        ref = nhwc(tg_p(torch.from_numpy(z_p), y_t))
        assert rel_err(g_train, ref) <= (tol_batchstats if bn else tol)
        if bn:
            new_ref = convert.generator_from_torch(cfg, tg_p.state_dict())["batch_stats"]
            err, where = tree_rel_err(stats, new_ref)
            assert err <= tol, where
        assert rel_err(logits, td_p(nchw(x_p), y_t).detach().numpy()) <= tol


# --- losses and their gradients ---------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("cfg",))
def jax_d_loss(cfg, d_params, real, fake, alpha, y_real, y_fake):
    """(loss, aux), grads of the WGAN-GP critic loss w.r.t. D's parameters, as the training
    step calls it: the labels passed to d_loss, which labels D(real) y_real, D(fake) y_fake and
    the gradient penalty's interpolates y_real."""
    label_u = jnp.zeros((2, B), real.dtype)  # dcgan's label noise: unused by wgan-gp
    disc = Discriminator(cfg)
    return jax.value_and_grad(losses.d_loss, argnums=2, has_aux=True)(
        LossConfig(), lambda p, x, y: disc.apply({"params": p}, x, y), d_params, real, fake,
        alpha, label_u, not cfg.use_batchnorm, y_real, y_fake)


@functools.partial(jax.jit, static_argnames=("cfg",))
def jax_g_loss(cfg, g_vars, d_vars, z, y):
    """loss, grads of the WGAN generator loss -E D(G(z, y), y) w.r.t. G's parameters."""
    gen, disc = Generator(cfg), Discriminator(cfg)

    def objective(params):
        v = {**g_vars, "params": params}
        fake = (gen.apply(v, z, y, train=True, mutable=["batch_stats"])[0]
                if cfg.use_batchnorm else gen.apply(v, z, y, train=True))
        return losses.g_loss(LossConfig(), disc.apply(d_vars, fake, y))

    return jax.value_and_grad(objective)(g_vars["params"])


def reference_grads(cfg, module, which):
    """The .grad of every parameter, converted to the Flax layout (buffers as zeros)."""
    sd = {k: torch.zeros_like(v) for k, v in module.state_dict().items()}
    for name, p in module.named_parameters():
        sd[name] = p.grad.detach().clone()
    return convert.from_torch(cfg, sd, which)["params"]


def compare_grads(grads, ref, bn: bool) -> float:
    """Worst per-leaf relative error in float64 (TOL["fp64"]), with test_losses.compare_grads's
    exception: the conv biases that feed a batch norm have an analytically zero gradient (BN
    subtracts the channel mean), so both sides hold rounding noise there, a relative error of
    which means nothing; bounded instead at 1e-12 of the largest gradient (float64's eps
    2.2e-16 times the sums and layers behind it)."""
    flat = lambda t: {jax.tree_util.keystr(p): np.asarray(v)  # noqa: E731
                      for p, v in jax.tree_util.tree_flatten_with_path(t)[0]}
    a, b = flat(grads), flat(ref)
    assert all(v.dtype == np.float64 for v in a.values())
    scale = max(float(np.abs(v).max()) for v in b.values())
    fed = ("upconv_0", "upconv_1", "upconv_2", "upconv_3",
           "downconv_1", "downconv_2", "downconv_3", "downconv_4")
    zero = {k for k in a if bn and k.endswith("['conv']['bias']") and any(s in k for s in fed)}
    for k in zero:
        assert max(np.abs(a[k]).max(), np.abs(b[k]).max()) <= 1e-12 * scale, k
    rest = sorted(set(a) - zero)
    err, where = tree_rel_err({k: a[k] for k in rest}, {k: b[k] for k in rest})
    print(f"gradient rel err {err:.2e} (TOL {TOL['fp64']:.0e}) at {where}")
    assert err <= TOL["fp64"], where
    return err


def reference_d_loss(td, real, fake, alpha, y_real, y_fake):
    """specgan_torch_ref's WGAN-GP critic loss with labels: (loss, gp, logit scale)."""
    D_real, D_fake = td(real, y_real), td(fake, y_fake)
    # the reference's penalty calls netD(interpolates): here the critic with the real labels
    _, D_loss, gp = GANLoss.wgan_gp_loss(D_real, D_fake, lambda x: td(x, y_real), real, fake,
                                         alpha=alpha)
    return D_loss, gp, float(torch.cat([D_real, D_fake]).detach().abs().max())


# The first seed of the inputs whose natural last critic layer keeps KINK_MARGIN in all three
# forward passes (real, fake, interpolates), with and without batch norm (keep_last below):
# margins 2.4e-4 (no BN) and 3.6e-4 (BN); seeds 0-6 fall short.
D_LOSS_SEED = 7


@pytest.mark.parametrize("bn", [False, True])
def test_conditional_d_loss_and_gradients_fp64(bn):
    """The WGAN-GP critic loss with labels, its penalty and its gradient w.r.t. every critic
    parameter (the penalty's second derivatives included), in float64 on both sides."""
    mcfg = cond_cfg(use_batchnorm=bn)
    tg, td = torch_models(mcfg)
    rs = np.random.default_rng(D_LOSS_SEED)
    real = rs.uniform(-1, 1, (B, 128, 128, 1)).astype(np.float32)
    z = rs.uniform(-1, 1, (B, mcfg.latent_dim)).astype(np.float32)
    alpha = rs.uniform(0, 1, (B,)).astype(np.float32)
    # Fakes of other classes than the reals. With batch norm, the reals' classes: at this seed
    # that is the point whose last critic layer meets the kink margin (with the other labels a
    # pre-activation lies too close to its kink). Other labels with batch norm are compared in
    # test_training.test_conditional_one_iteration_fp64.
    y_fake = Y if bn else np.array([1, 0, 0, 2], np.int32)
    y_real_t, y_fake_t = torch.from_numpy(Y), torch.from_numpy(y_fake)
    tg.train()
    fake_t = tg(torch.from_numpy(z), y_fake_t).detach().double()
    real_t, alpha_t = nchw(real).double(), torch.from_numpy(alpha).double()
    interp_t = real_t + alpha_t.view(-1, 1, 1, 1) * (fake_t - real_t)
    move_off_kinks(td, lambda d: [d(x, y) for x, y in
                                  ((real_t, y_real_t), (fake_t, y_fake_t), (interp_t, y_real_t))],
                   keep_last=True)
    td = td.double()
    with PreActivations(td) as pre:
        D_loss, gp, logit_scale = reference_d_loss(td, real_t, fake_t, alpha_t, y_real_t,
                                                   y_fake_t)
    print(f"kink margin {assert_kink_margin(pre, 'conditional D loss'):.2e}")
    td.zero_grad()
    D_loss.backward()
    ref_grads = reference_grads(mcfg, td, "discriminator")
    with jax.enable_x64(True):
        _, d_vars = jax_vars(mcfg, tg, td)
        (val, aux), grads = jax_d_loss(mcfg, d_vars["params"], real.astype(np.float64),
                                       nhwc(fake_t), alpha.astype(np.float64), Y, y_fake)
    # The loss is a difference of means of the logits, which can cancel far below them: its
    # rounding error is relative to the logits (test_losses.test_d_loss_and_gradients).
    assert abs(float(val) - D_loss.item()) <= TOL["fp64"] * max(abs(D_loss.item()), logit_scale)
    assert rel_err(aux["gp"], gp.item()) <= TOL["fp64"]
    compare_grads(grads, ref_grads, bn)
    assert np.abs(grads["class_proj"]["embedding"]).max(axis=1).min() > 0  # every class


@pytest.mark.parametrize("bn", [False, True])
def test_conditional_g_loss_and_gradients_fp64(bn):
    """The generator loss -E D(G(z, y), y) and its gradient w.r.t. every G parameter, class
    codes included, in float64 on both sides."""
    mcfg = cond_cfg(use_batchnorm=bn)
    tg, td = torch_models(mcfg)
    z = np.random.default_rng(3).uniform(-1, 1, (B, mcfg.latent_dim))
    z_t, y_t = torch.from_numpy(z), torch.from_numpy(Y)
    tg, td = tg.double().train(), td.double()
    move_off_kinks(tg, lambda g: g(z_t, y_t))
    with torch.no_grad():
        fake_t = copy.deepcopy(tg)(z_t, y_t)  # a copy: G's BN running stats must not advance
    move_off_kinks(td, lambda d: d(fake_t, y_t))
    g_vars, d_vars = jax_vars(mcfg, tg, td)  # before the forward below advances BN's stats
    with PreActivations(tg, td) as pre:
        G_loss = -td(tg(z_t, y_t), y_t).mean()
    print(f"kink margin {assert_kink_margin(pre, 'conditional G loss'):.2e}")
    tg.zero_grad()
    G_loss.backward()
    ref_grads = reference_grads(mcfg, tg, "generator")
    with jax.enable_x64(True):
        val, grads = jax_g_loss(mcfg, g_vars, d_vars, z, Y)
    assert rel_err(val, G_loss.item()) <= TOL["fp64"]
    compare_grads(grads, ref_grads, bn)
    assert np.abs(grads["class_embed"]["embedding"]).max(axis=1).min() > 0  # every class


# --- conversion -------------------------------------------------------------------------------

@pytest.mark.parametrize("bn", [False, True])
def test_conditional_round_trip_exact(bn):
    """torch -> Flax -> torch and Flax -> torch -> Flax are bit-exact, the class tables included
    (the forward tests above prove the layouts right: a wrong permutation of class_proj's columns
    or of fc's input rows would change the logits)."""
    cfg = cond_cfg(use_batchnorm=bn)
    tg, td = torch_models(cfg)
    for which, module, table in (("generator", tg, "class_embed"),
                                 ("discriminator", td, "class_proj")):
        sd = module.state_dict()
        flax_vars = convert.from_torch(cfg, sd, which)
        assert table in flax_vars["params"]
        back = convert.to_torch(cfg, flax_vars, which)
        assert back.keys() == sd.keys()
        for k in sd:
            if k.endswith("num_batches_tracked"):  # unused with momentum=0.01; written as 0
                continue
            assert torch.equal(back[k], sd[k]), k
        again = convert.from_torch(cfg, back, which)
        assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(flax_vars),
                                                        jax.tree_util.tree_leaves(again)))
        module.load_state_dict(back)  # loadable by the reference, strict


def test_conditional_conversion_mismatch_fails_loudly():
    cfg = cond_cfg()
    _, td = torch_models(cfg)
    uncond_g, _ = torch_models(ModelConfig(dim=4))
    with pytest.raises(convert.ConversionError, match=r"missing keys \['class_embed.weight'\]"):
        convert.generator_from_torch(cfg, uncond_g.state_dict())
    with pytest.raises(convert.ConversionError, match=r"unexpected keys \['class_proj.weight'\]"):
        convert.discriminator_from_torch(ModelConfig(dim=4), td.state_dict())
    with pytest.raises(convert.ConversionError, match="class_proj.weight"):  # 3 classes, not 4
        convert.discriminator_from_torch(ModelConfig(dim=4, conditional=True, n_classes=4),
                                         td.state_dict())


# --- parameter trees and errors ---------------------------------------------------------------

def _shapes(tree) -> dict:
    return {"/".join(p.key for p in path): tuple(leaf.shape)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _unconditional_spec(cfg: ModelConfig):
    """The parameter trees of the unconditional models, written out from the architecture
    (as before the conditional models existed): checkpoints and conversion depend on them."""
    d, k, bn = cfg.dim, cfg.kernel_len, cfg.use_batchnorm
    c = 16 * d
    g = {"params/z_project/dense/kernel": (cfg.latent_dim, 16 * c),
         "params/z_project/dense/bias": (16 * c,)}
    g_chans = [c, 8 * d, 4 * d, 2 * d, d, 1]
    for i in range(5):
        g[f"params/upconv_{i}/conv/kernel"] = (k, k, g_chans[i + 1], g_chans[i])
        g[f"params/upconv_{i}/conv/bias"] = (g_chans[i + 1],)
    if bn:
        for scope, ch in [("z_project", c)] + [(f"upconv_{i}", g_chans[i + 1]) for i in range(4)]:
            for name, col in (("scale", "params"), ("bias", "params"),
                              ("mean", "batch_stats"), ("var", "batch_stats")):
                g[f"{col}/{scope}/bn/{name}"] = (ch,)
    d_chans = [1, d, 2 * d, 4 * d, 8 * d, c]
    dd = {"params/output/kernel": (16 * c, 1), "params/output/bias": (1,)}
    for i in range(5):
        dd[f"params/downconv_{i}/conv/kernel"] = (k, k, d_chans[i], d_chans[i + 1])
        dd[f"params/downconv_{i}/conv/bias"] = (d_chans[i + 1],)
        if bn and i > 0:
            dd[f"params/downconv_{i}/bn/scale"] = dd[f"params/downconv_{i}/bn/bias"] = \
                (d_chans[i + 1],)
    return g, dd


@pytest.mark.parametrize("bn", [False, True])
def test_parameter_trees(bn):
    """Unconditional: exactly the trees of before. Conditional: those plus the two class tables,
    z_project reading latent_dim + E inputs (E = latent_dim)."""
    cfg = ModelConfig(dim=4, use_batchnorm=bn)
    g, d = jax.eval_shape(lambda k: init_models(cfg, k), jax.random.key(0))
    want_g, want_d = _unconditional_spec(cfg)
    assert _shapes(g) == want_g
    assert _shapes(d) == want_d

    ccfg = cond_cfg(use_batchnorm=bn)
    g, d = jax.eval_shape(lambda k: init_models(ccfg, k), jax.random.key(0))
    want_g["params/class_embed/embedding"] = (N_CLASSES, cfg.latent_dim)
    want_g["params/z_project/dense/kernel"] = (2 * cfg.latent_dim, 16 * 16 * cfg.dim)
    want_d["params/class_proj/embedding"] = (N_CLASSES, 16 * 16 * cfg.dim)
    assert _shapes(g) == want_g
    assert _shapes(d) == want_d


def test_label_errors():
    key = jax.random.key(0)
    z = jnp.zeros((B, 100))
    x = jnp.zeros((B, 128, 128, 1))
    cond, plain = cond_cfg(), ModelConfig(dim=4)
    g, d = jax.eval_shape(lambda k: init_models(cond, k), key)
    with pytest.raises(ValueError, match="conditional model .* needs class labels y"):
        jax.eval_shape(lambda v, z: Generator(cond).apply(v, z), g, z)
    with pytest.raises(ValueError, match="conditional model .* needs class labels y"):
        jax.eval_shape(lambda v, x: Discriminator(cond).apply(v, x), d, x)
    with pytest.raises(ValueError, match=r"integers of shape \(4,\)"):  # float labels
        jax.eval_shape(lambda v, z: Generator(cond).apply(v, z, jnp.zeros((B,))), g, z)
    with pytest.raises(ValueError, match=r"integers of shape \(4,\)"):  # [B, 1] labels
        jax.eval_shape(lambda v, x: Discriminator(cond).apply(v, x, jnp.zeros((B, 1), jnp.int32)),
                       d, x)
    g, d = jax.eval_shape(lambda k: init_models(plain, k), key)
    with pytest.raises(ValueError, match="unconditional .* takes no class labels"):
        jax.eval_shape(lambda v, z: Generator(plain).apply(v, z, Y), g, z)
    with pytest.raises(ValueError, match="unconditional .* takes no class labels"):
        jax.eval_shape(lambda v, x: Discriminator(plain).apply(v, x, Y), d, x)


def test_class_count_errors():
    need = "a conditional model needs data with at least 2 classes"
    for n in (0, 1):  # 0: the config's "not known yet", which training fills from the data
        with pytest.raises(ValueError, match=need):
            cfg = ModelConfig(dim=4, conditional=True, n_classes=n)  # n=1 fails already here
            jax.eval_shape(lambda k: init_models(cfg, k), jax.random.key(0))
        with pytest.raises(ValueError, match=need):
            SpecGANConditionalGenerator(n, dim=4)
        with pytest.raises(ValueError, match=need):
            SpecGANConditionalDiscriminator(n, dim=4)
    assert ModelConfig(conditional=True).n_classes == 0  # valid until the data is known
    with pytest.raises(ValueError, match="n_classes must be >= 0"):
        ModelConfig(conditional=True, n_classes=-1)
    with pytest.raises(ValueError, match="needs model.conditional=True"):
        ModelConfig(n_classes=3)


def test_conditional_bf16():
    """bf16 mode runs conditional models (class tables and projection in float32) within the
    suite's bf16 bound (TOL["bf16_forward"], test_bf16.py) of the fp32 reference, which the
    tests above prove equal to the fp32 engine."""
    cfg = cond_cfg(precision="bf16")
    tg, td = torch_models(cfg)
    g_vars, d_vars = jax_vars(cfg, tg, td)
    rs = np.random.default_rng(5)
    z = rs.uniform(-1, 1, (B, cfg.latent_dim)).astype(np.float32)
    x = rs.uniform(-1, 1, (B, 128, 128, 1)).astype(np.float32)
    g_eval, _, _, logits = forward(cfg, g_vars, d_vars, z, x, Y)
    assert g_eval.dtype == jnp.float32 and logits.dtype == jnp.float32
    y_t = torch.from_numpy(Y)
    with torch.no_grad():
        ref_g, ref_d = nhwc(tg(torch.from_numpy(z), y_t)), td(nchw(x), y_t).numpy()
    assert rel_err(g_eval, ref_g) <= TOL["bf16_forward"]
    assert rel_err(logits, ref_d) <= TOL["bf16_forward"]
    assert rel_err(g_eval, ref_g) > 1e-4 and rel_err(logits, ref_d) > 1e-4  # really bf16


def test_reference_train_iteration_with_labels():
    """specgan_torch_ref.train_iteration's labels (for the later one-iteration parity test of
    conditional training): a class absent from all of an iteration's labels gets no gradient,
    so under Adam (zero gradient, zero moments: a zero update) its rows of both class tables
    stay exactly as they were, while the rows of the classes present move. Labels are all
    given or none."""
    tg, td = torch_models(cond_cfg())
    n_critic = 2
    rs = np.random.default_rng(0)
    f = lambda *shape: torch.from_numpy(rs.uniform(0, 1, shape).astype(np.float32))  # noqa: E731
    draws = (f(n_critic, B, 1, 128, 128) * 2 - 1, f(n_critic, B, 100) * 2 - 1, f(n_critic, B),
             f(n_critic, 2, B), f(B, 100) * 2 - 1)
    y_real = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 1]])  # class 2 nowhere
    y_fake, y_g = y_real.flip(1), torch.tensor([1, 0, 1, 0])
    embed, proj = tg.class_embed.weight.detach().clone(), td.class_proj.weight.detach().clone()
    out = train_iteration(tg, td, make_optimizer(tg.parameters()), make_optimizer(td.parameters()),
                          *draws, y_real=y_real, y_fake=y_fake, y_g=y_g)
    assert all(np.isfinite(v) for v in out.values())
    for before, after in ((embed, tg.class_embed.weight), (proj, td.class_proj.weight)):
        assert torch.equal(after[2], before[2])
        assert not torch.equal(after[0], before[0]) and not torch.equal(after[1], before[1])
    with pytest.raises(ValueError, match="all of y_real, y_fake, y_g"):
        train_iteration(tg, td, make_optimizer(tg.parameters()), make_optimizer(td.parameters()),
                        *draws, y_real=y_real)
