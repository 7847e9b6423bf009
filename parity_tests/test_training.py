"""Full training iterations (n_critic=5 critic updates + 1 generator update): parameters of
specgan_jax's jitted step == specgan_torch_ref.train_iteration fed identical draws."""

import copy

import jax
import numpy as np
import pytest
import torch

from parity_tests.helpers import (TOL, PreActivations, assert_kink_margin, jax_vars,
                                  move_off_kinks, nchw, rel_err, torch_models, tree_rel_err)
from specgan_jax.engine import convert, losses
from specgan_jax.config import LossConfig, ModelConfig, OptimConfig
from specgan_jax.engine.step import Draws, TrainState, make_train_fns, upgrade_state
from specgan_torch_ref.train_step import make_optimizer, train_iteration

B, N_CRITIC = 4, 5


def make_draws(seed, latent=100, dtype=np.float32, n_classes=0):
    """Every random input of one iteration; with n_classes, the labels of a conditional model
    too (drawn after the others, which stay the unconditional draws of the seed)."""
    rs = np.random.default_rng(seed)
    f = lambda *s: rs.uniform(0, 1, s).astype(dtype)  # noqa: E731
    # Real batches deliberately unlike the initial fakes (mean +0.5, not ~0 as G's first outputs):
    # otherwise E[D(real)] - E[D(fake)] cancels and its gradients sit at the fp32 noise floor,
    # where Adam's first step (~lr * sign(g)) turns noise into lr-sized differences.
    d = Draws(real=0.5 + 0.5 * (f(N_CRITIC, B, 128, 128, 1) * 2 - 1) ** 3, z_d=f(N_CRITIC, B, latent) * 2 - 1,
              alpha=f(N_CRITIC, B), label_u=f(N_CRITIC, 2, B), z_g=f(B, latent) * 2 - 1)
    if n_classes:
        y = lambda *s: rs.integers(0, n_classes, s).astype(np.int32)  # noqa: E731
        d = d.replace(y_real=y(N_CRITIC, B), y_fake=y(N_CRITIC, B), y_g=y(B))
    return d


def reference_optimizers(lcfg, tg, td):
    o = losses.resolved_optimizer(lcfg, OptimConfig())
    kw = dict(loss=lcfg.loss, optimizer=o["optimizer"], beta1=o["beta1"], beta2=o["beta2"])
    return (make_optimizer(tg.parameters(), lr=o["g_lr"], **kw),
            make_optimizer(td.parameters(), lr=o["d_lr"], **kw))


def reference_iteration(tg, td, optG, optD, draws, lcfg):
    t = lambda a: torch.from_numpy(np.asarray(a))  # noqa: E731
    real_t = torch.stack([nchw(r) for r in draws.real])
    labels = {} if draws.y_real is None else {
        k: t(getattr(draws, k)).long() for k in ("y_real", "y_fake", "y_g")}
    return train_iteration(tg, td, optG, optD, real_t, t(draws.z_d), t(draws.alpha),
                           t(draws.label_u), t(draws.z_g), loss=lcfg.loss,
                           lambda_gp=lcfg.gp_lambda, clip=lcfg.clip,
                           label_smoothing=lcfg.label_smoothing, **labels)


class Pair:
    """The same GAN in both frameworks, stepped with the same draws.

    well_posed_for: the seed of the draws a float32 gradient comparison will use; the models
    are then moved off the ReLU kinks those draws reach (helpers.move_off_kinks)."""

    def __init__(self, mcfg, lcfg, dtype=np.float32, well_posed_for=None):
        self.mcfg, self.lcfg, self.dtype = mcfg, lcfg, dtype
        self.tg, self.td = torch_models(mcfg)
        with torch.no_grad():  # G's outputs at O(0.1..1), not the ~1e-4 of Glorot init at dim 4
            for m in self.tg.modules():
                if isinstance(m, (torch.nn.ConvTranspose2d, torch.nn.Conv2d)):
                    m.weight.mul_(4.0)
        if well_posed_for is not None:
            self._move_off_kinks(make_draws(well_posed_for))
        if dtype == np.float64:
            self.tg, self.td = self.tg.double(), self.td.double()
        g_vars, d_vars = jax_vars(mcfg, self.tg, self.td)
        self.optG, self.optD = reference_optimizers(lcfg, self.tg, self.td)
        ocfg = OptimConfig()
        g_tx, d_tx = losses.make_optimizers(lcfg, ocfg)
        self.state = upgrade_state(TrainState(  # + the EMA and ADA fields (not compared)
            step=np.zeros((), np.int32), g_params=g_vars["params"],
            g_batch_stats=g_vars.get("batch_stats", {}), d_params=d_vars["params"],
            g_opt_state=g_tx.init(g_vars["params"]), d_opt_state=d_tx.init(d_vars["params"])))
        self.fns = make_train_fns(mcfg, lcfg, ocfg, B)

    def _move_off_kinks(self, d):
        """Every forward pass of the iteration: G on each critic update's z and on z_g, D on each
        real batch, each fake batch and their interpolates."""
        zs = [torch.from_numpy(z).double() for z in (*d.z_d, d.z_g)]
        move_off_kinks(self.tg, lambda g: [g(z) for z in zs])
        with torch.no_grad():
            g = copy.deepcopy(self.tg).double()
            fakes = [g(z) for z in zs]
        reals = [nchw(r).double() for r in d.real]
        alphas = [torch.from_numpy(a).double().view(-1, 1, 1, 1) for a in d.alpha]
        interps = [r + a * (f - r) for r, f, a in zip(reals, fakes, alphas)]
        move_off_kinks(self.td, lambda dd: [dd(x) for x in (*reals, *fakes, *interps)])

    def assert_well_posed(self, seed):
        """In float64, on copies: the iteration this pair is about to take stays KINK_MARGIN away
        from every ReLU kink, in every forward pass (the updates move the weights too)."""
        tg, td = copy.deepcopy(self.tg).double(), copy.deepcopy(self.td).double()
        optG, optD = reference_optimizers(self.lcfg, tg, td)
        with PreActivations(tg, td) as pre:
            reference_iteration(tg, td, optG, optD, make_draws(seed, dtype=np.float64), self.lcfg)
        return assert_kink_margin(pre, f"one iteration of {self.lcfg.loss}")

    def step(self, seed):
        d = make_draws(seed, dtype=self.dtype, n_classes=self.mcfg.n_classes)
        ref = reference_iteration(self.tg, self.td, self.optG, self.optD, d, self.lcfg)
        self.state, metrics = self.fns.iteration(self.state, d)
        return ref, metrics

    def compare(self):
        """{leaf path: (mine, reference)} for every parameter and BN statistic, except the
        conv biases that feed a batch norm (and those layers' running means): BN cancels them,
        so their gradient is analytically 0 and Adam turns the rounding noise of that 0 into
        +-lr steps — in both frameworks (and TF), differently. They do not affect the output."""
        g_ref = convert.generator_from_torch(self.mcfg, self.tg.state_dict())
        d_ref = convert.discriminator_from_torch(self.mcfg, self.td.state_dict())
        mine = {"g": {"params": self.state.g_params, "batch_stats": self.state.g_batch_stats},
                "d": {"params": self.state.d_params}}
        ref = {"g": {"params": g_ref["params"], "batch_stats": g_ref.get("batch_stats", {})},
               "d": {"params": d_ref["params"]}}
        flat = lambda t: {jax.tree_util.keystr(p): np.asarray(v, np.float64)  # noqa: E731
                          for p, v in jax.tree_util.tree_flatten_with_path(t)[0]}
        a, b = flat(mine), flat(ref)
        assert a.keys() == b.keys()
        if self.mcfg.use_batchnorm:
            fed = ("upconv_0", "upconv_1", "upconv_2", "upconv_3",
                   "downconv_1", "downconv_2", "downconv_3", "downconv_4")
            drop = [k for k in a if any(f"['{s}']" in k for s in fed)
                    and (k.endswith("['conv']['bias']") or k.endswith("['bn']['mean']"))]
            assert drop
            for k in drop:
                del a[k], b[k]
        return {k: (a[k], b[k]) for k in a}

    def worst(self):
        return max((rel_err(x, y), k) for k, (x, y) in self.compare().items())


CASES = {
    "wgan-gp/adam": (ModelConfig(dim=4), LossConfig(loss="wgan-gp")),
    "wgan-gp/adam/bn": (ModelConfig(dim=4, use_batchnorm=True), LossConfig(loss="wgan-gp")),
    "wgan/rmsprop/clip": (ModelConfig(dim=4), LossConfig(loss="wgan")),
    "lsgan/rmsprop/torch-padding": (ModelConfig(dim=4, padding="torch"), LossConfig(loss="lsgan")),
    "dcgan/adam/smoothing": (ModelConfig(dim=4), LossConfig(loss="dcgan", label_smoothing=True)),
}


def check_losses(pair, ref, metrics, tol):
    for k in ("d_loss", "g_loss", "gp", "wasserstein"):
        assert abs(float(metrics[k]) - ref[k]) <= tol * max(abs(ref[k]), 1.0), k


def check_one_iteration(pair, ref, metrics, before):
    check_losses(pair, ref, metrics, TOL["fp64"])
    err, where = pair.worst()
    assert err <= TOL["fp64_training"], (where, err)
    moved, _ = tree_rel_err(pair.state.d_params, before)
    assert moved > 1e-6  # the critic really trained
    if pair.lcfg.loss == "wgan":
        leaves = jax.tree_util.tree_leaves(pair.state.d_params)
        assert max(float(np.abs(x).max()) for x in leaves) <= pair.lcfg.clip


@pytest.mark.parametrize("name", ["wgan-gp/adam/bn", "wgan/rmsprop/clip",
                                  "dcgan/adam/smoothing"])
def test_one_iteration_fp64(name):
    """In float64 both frameworks agree to ~1e-13 after a full iteration, every loss and
    optimizer: the step is the same algorithm, update for update."""
    with jax.enable_x64(True):
        pair = Pair(*CASES[name], dtype=np.float64)
        before = jax.tree_util.tree_map(np.array, pair.state.d_params)
        ref, metrics = pair.step(seed=0)
        assert pair.state.g_params["upconv_4"]["conv"]["kernel"].dtype == np.float64
    check_one_iteration(pair, ref, metrics, before)


@pytest.mark.parametrize("bn", [False, True])
def test_conditional_one_iteration_fp64(bn):
    """A class-conditional G and projection critic trained one iteration by the jitted step
    (labels in Draws: the real batches', the critic updates' fakes', the G update's; the GP's
    interpolates keep the real class) == the reference's train_iteration with the same labels,
    float64."""
    mcfg = ModelConfig(dim=4, use_batchnorm=bn, conditional=True, n_classes=3)
    with jax.enable_x64(True):
        pair = Pair(mcfg, LossConfig(loss="wgan-gp"), dtype=np.float64)
        before = jax.tree_util.tree_map(np.array, pair.state.d_params)
        embed = np.array(pair.state.g_params["class_embed"]["embedding"])
        ref, metrics = pair.step(seed=3)
    check_one_iteration(pair, ref, metrics, before)
    # the class tables trained (a wrong label routing would still move them, but not equally
    # in both frameworks: check_one_iteration compares them leaf by leaf)
    assert not np.array_equal(embed, pair.state.g_params["class_embed"]["embedding"])


def test_one_then_ten_iterations_fp64():
    """The default recipe (wgan-gp, Adam): after 1 iteration, then after each of 10 (60
    optimizer updates), float64: the error stays at rounding level."""
    with jax.enable_x64(True):
        pair = Pair(*CASES["wgan-gp/adam"], dtype=np.float64)
        before = jax.tree_util.tree_map(np.array, pair.state.d_params)
        ref, metrics = pair.step(seed=100)
        check_one_iteration(pair, ref, metrics, before)
        errs = []
        for i in range(1, 10):
            pair.step(seed=100 + i)
            errs.append(pair.worst()[0])
    assert max(errs) <= TOL["fp64_training"], errs


def normwise_err(pair) -> float:
    """max |mine - ref| over every parameter / max |ref| over every parameter (the normwise
    relative error of the whole parameter vector). Per-leaf scaling is meaningless after one
    step for biases initialised at 0: their value is then -lr * g, so their relative error is
    the gradient's (TOL["grad"]), not the update's."""
    items = pair.compare().values()
    scale = max(float(np.abs(y).max()) for _, y in items)
    return max(float(np.abs(x - y).max()) for x, y in items) / scale


# The fp32 comparison of the WGAN critic loss + RMSProp, with a clip that does not bind at this
# point (asserted below). With the original clip=0.01 every critic weight is +-c after the first
# update, so conv sums of +-c * x cancel exactly: pre-activations of exactly 0 (measured), where
# the gradient is well defined (slope 0.2) but fp32 rounding of the other sums puts neighbours
# anywhere around the kink — no point of such a critic is well posed for an fp32 gradient
# comparison. The clip itself is proven in float64 at c=0.01 (test_one_iteration_fp64) and the
# slope at exactly 0 by test_losses.test_leaky_relu_slope_at_exactly_zero.
CASES["wgan/rmsprop"] = (ModelConfig(dim=4), LossConfig(loss="wgan", clip=100.0))


@pytest.mark.parametrize("name", ["wgan/rmsprop", "lsgan/rmsprop/torch-padding"])
def test_one_iteration_fp32(name):
    """float32, the precision users train in, RMSProp (TF's: accumulator starting at 1, so the
    update is linear in the gradient): the whole parameter vector within TOL["one_iteration"].
    A wrong learning rate, sign or clip would differ by ~lr = 1e-4 of the ~0.3 scale.

    Adam is covered in float64 only: its first update is lr * g / (|g| + eps) ~ lr * sign(g),
    so an element whose gradient sits at the fp32 noise floor (E[D(real)] - E[D(fake)] cancels
    at initialisation) moves by +-lr depending on rounding — measured here on ~0.4% of G's
    kernel elements, in both frameworks alike. That is fp32 + Adam, not a formula difference:
    the same iterations in float64 agree to 1e-13."""
    pair = Pair(*CASES[name], well_posed_for=0)
    print(f"kink margin {pair.assert_well_posed(seed=0):.2e}")
    ref, metrics = pair.step(seed=0)
    check_losses(pair, ref, metrics, TOL["loss"])
    err = normwise_err(pair)
    print(f"normwise parameter err {err:.2e} (TOL {TOL['one_iteration']:.0e})")
    assert err <= TOL["one_iteration"]
    if pair.lcfg.loss == "wgan":  # the clip is a no-op at this point (see CASES above)
        leaves = jax.tree_util.tree_leaves(pair.state.d_params)
        assert max(float(np.abs(x).max()) for x in leaves) < pair.lcfg.clip
