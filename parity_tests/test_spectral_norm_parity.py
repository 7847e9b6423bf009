"""model.spectral_norm: the spectrally normalised critic of specgan_jax == that of
specgan_torch_ref (specgan_torch_ref/spectral_norm.py, the same stateless power iteration),
forward in float32 and float64, and the hinge critic loss's parameter gradients."""

import copy
import dataclasses

import jax
import numpy as np
import pytest
import torch

from parity_tests.helpers import (KINK_MARGIN, TOL, PreActivations, assert_kink_margin,
                                  jax_vars, move_off_kinks, nchw, nhwc, rel_err, torch_models)
from parity_tests.test_losses import PRECISION, compare_grads, inputs, torch_grads
from specgan_jax.config import LossConfig, ModelConfig
from specgan_jax.engine import losses
from specgan_jax.engine.models import Discriminator
from specgan_torch_ref.losses import GANLoss

N_CLASSES = 3


def sn_config(bn=False, cond=False, **kw):
    return ModelConfig(dim=4, use_batchnorm=bn, conditional=cond,
                       n_classes=N_CLASSES if cond else 0, spectral_norm=True, **kw)


@pytest.mark.parametrize("precision", ["fp32", "fp64"])
@pytest.mark.parametrize("bn,cond", [(False, False), (True, False), (False, True)])
def test_critic_forward(bn, cond, precision):
    cfg = sn_config(bn, cond)
    ndtype = PRECISION[precision][0]
    tdtype = torch.float64 if precision == "fp64" else torch.float32
    _, td = torch_models(cfg)
    td = td.to(tdtype)
    rs = np.random.default_rng(5)
    x = rs.uniform(-1, 1, (2, 128, 128, 1)).astype(ndtype)
    y = np.array([2, 0])
    args_t = (nchw(x),) + ((torch.from_numpy(y),) if cond else ())
    ref = td(*args_t).detach().numpy()
    with jax.enable_x64(precision == "fp64"):
        _, d_vars = jax_vars(cfg, torch_models(cfg)[0], td)
        args = (x,) + ((y,) if cond else ())
        out = Discriminator(cfg).apply(d_vars, *args)
        plain = Discriminator(dataclasses.replace(cfg, spectral_norm=False)).apply(d_vars, *args)
    assert np.asarray(out).dtype == ndtype
    print(f"forward rel err {rel_err(out, ref):.2e}")
    assert rel_err(out, ref) <= (TOL["fp64"] if precision == "fp64" else TOL["forward"])
    assert rel_err(plain, ref) > 1e-2  # the option really changes the function, on both sides


def hinge_point():
    """Torch critic (spectral_norm on), reals inputs(35) and fakes tanh(3 x) of the reals
    reversed (test_losses.critic_point's hinge inputs), every activation moved off its kink. The
    output layer's weight cannot scale the logits here (it is divided by its norm), so only its
    bias is shifted: D(real) = 1 falls between the 2nd and 3rd real logits, and the fakes' kink
    lies wherever the critic puts -1. Returns (td, real_t, fake_t, hinge margin)."""
    cfg = sn_config()
    _, td = torch_models(cfg)
    real, _, _, _ = inputs(35)
    real_t, fake_t = nchw(real), nchw(np.tanh(3 * real[::-1]))
    move_off_kinks(td, lambda d: [d(x.double()) for x in (real_t, fake_t)])
    with torch.no_grad():
        r = np.sort(copy.deepcopy(td).double()(real_t.double()).numpy())
        td.output.bias.add_(1.0 - (r[1] + r[2]) / 2)
        d_r, d_f = (copy.deepcopy(td).double()(x.double()).numpy() for x in (real_t, fake_t))
    scale = 1.0 + abs(float(td.output.bias.detach())) + max(np.abs(d_r).max(), np.abs(d_f).max())
    margin = min(np.abs(1 - d_r).min(), np.abs(1 + d_f).min()) / scale
    return cfg, td, real_t, fake_t, margin


@pytest.mark.parametrize("precision", ["fp32", "fp64"])
def test_hinge_critic_gradients(precision):
    ndtype, tol_loss, tol_grad, noise = PRECISION[precision]
    cfg, td, real_t, fake_t, margin = hinge_point()
    print(f"hinge kink margin {margin:.2e}")
    assert margin >= KINK_MARGIN
    td64 = copy.deepcopy(td).double()
    with PreActivations(td64) as pre:
        GANLoss.hinge_loss(td64(real_t.double()), td64(fake_t.double()))
    print(f"kink margin {assert_kink_margin(pre, 'hinge D loss, spectral norm'):.2e}")
    # the reference in float64 at the test point, for either precision (test_losses.compare_grads)
    D_loss = GANLoss.hinge_loss(td64(real_t.double()), td64(fake_t.double()))[1]
    td64.zero_grad()
    D_loss.backward()
    ref_grads = torch_grads(cfg, td64, "discriminator")

    disc = Discriminator(cfg)
    d_apply = lambda p, x, y=None: disc.apply({"params": p}, x, y)  # noqa: E731
    b = real_t.shape[0]
    with jax.enable_x64(precision == "fp64"):
        _, d_vars = jax_vars(cfg, torch_models(cfg)[0], td64 if precision == "fp64" else td)
        (val, _), grads = jax.value_and_grad(losses.d_loss, argnums=2, has_aux=True)(
            LossConfig(loss="hinge"), d_apply, d_vars["params"], nhwc(real_t).astype(ndtype),
            nhwc(fake_t).astype(ndtype),
            np.zeros((b,), ndtype), np.zeros((2, b), ndtype), True, None, None, None)
    assert np.asarray(val).dtype == ndtype
    assert rel_err(val, D_loss.item()) <= tol_loss
    compare_grads(grads, ref_grads, False, tol_grad, noise)
