"""DiffAugment for spectrograms and ADA's adaptive augmentation strength: pure functions of
arrays, wired into the critic and generator updates by engine.phases.

DiffAugment (Zhao et al. 2020): the critic only ever sees T(x) for real, fake and the gradient
penalty's interpolates (taken between T(real) and T(fake): the critic being constrained is the
one that sees augmented data), and G is trained through D(T(G(z))). T is differentiable, drawn
independently per example and per call. Values are not clipped back to [-1, 1]: real and fake
get the same transforms, so range reveals nothing, and a clip would cut G's gradient.

ADA (Karras et al. 2020): one probability p scales every transform's probability; every
`ada_interval` steps p moves by +-(B * interval) / (1000 ada_kimg) towards keeping an
overfitting signal r at its target. ADA's r_t = E[sign(D(real))] reads a sigmoid critic's
decision boundary, 0. A WGAN critic has none: its loss and gradient penalty are unchanged by
D + c, so sign(D(real)) is arbitrary. Two signals, both invariant to D + c and D * s (s > 0):

heldout (the default): a slice of the data is held out of training, and
    r = E_train[sign(D(x) - E_heldout D(x'))],
the critic's scores on the training examples against its mean score on examples it never saw
(one extra critic forward of a training and a held-out batch per step, with the critic of the
step's end, on un-augmented data). A critic that generalises scores the two alike, r ~ 0,
however well it tells real from fake and however large the data set; one that memorises its
training set scores those higher, r -> 1. For Gaussian scores with a gap Delta and spread
sigma, r = 2 Phi(Delta / sigma) - 1; the default target 0.3 is a gap of 0.39 sigma. This is
the validation-set gap ADA's paper uses to show overfitting (its Fig. 1, r_v), made online.

midpoint: the logits centred on the midpoint c of the batch's mean real and fake logits,
    r_t = E_real[sign(D(x) - (E D(real) + E D(fake)) / 2)],
~ 2 Phi(Delta / (2 sigma)) - 1 for a real/fake gap Delta: how far the critic separates reals
from fakes in units of its spread on the reals. It needs no held-out data, but a WGAN critic
separates them on large data sets too (measured: docs/small-data.md), so it measures
the generator's deficit as much as overfitting. ADA's target 0.6.
(dcgan keeps ADA's boundary 0 for midpoint; lsgan uses 0.5, the midpoint of its targets.)
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from specgan_jax.config import DiffAugConfig
from specgan_jax.data.augment import run_transforms


def gain_scale_from_std(std: np.ndarray) -> np.ndarray:
    """[F] normalised-domain shift per unit gain draw: one constant of median(std_f) data units
    added to every bin moves normalised bin f by median(std) / (3 std_f) (normalize.py)."""
    std = np.asarray(std, np.float64)
    return (np.median(std) / (3.0 * std)).astype(np.float32)


# Which of 5 split keys each transform draws from: as before the two sections shared one table
# (data.augment.TRANSFORMS), so every existing configuration draws the same numbers.
DIFFAUG_KEYS = {"time_stretch": 0, "time_shift": 1, "time_mask": 2, "freq_mask": 3, "gain": 4}


def _augment_one(x, key, p, cfg: DiffAugConfig, gain_scale):
    """One normalised spectrogram x [F, T] -> T(x) [F, T]; p: the strength (traced scalar)."""
    return run_transforms(x, key, cfg, DIFFAUG_KEYS, p=p, ctx={"gain_scale": gain_scale})


def diff_augment(x, key, p, cfg: DiffAugConfig, gain_scale: Optional[np.ndarray] = None):
    """x [B, F, T, 1] -> T(x), an independent draw per example, differentiable in x.
    The identity (x itself) when cfg is off. gain_scale [F]: see gain_scale_from_std (None:
    a flat 1/3, i.e. every bin's std equal to the median)."""
    if not cfg.enabled:
        return x
    f = x.shape[1]
    scale = jnp.full((f,), 1 / 3, jnp.float32) if gain_scale is None else jnp.asarray(
        gain_scale, jnp.float32)
    keys = jax.random.split(key, x.shape[0])
    out = jax.vmap(lambda xi, ki: _augment_one(xi, ki, p, cfg, scale))(x[..., 0], keys)
    return out[..., None].astype(x.dtype)


# -- ADA ----------------------------------------------------------------------------------------
def ada_signal(loss: str, d_real, d_fake):
    """r_t of one critic batch: E[sign(D(real) - c)], c as in the module docstring."""
    if loss in ("wgan-gp", "wgan"):
        c = (jnp.mean(d_real) + jnp.mean(d_fake)) / 2
    else:
        c = 0.5 if loss == "lsgan" else 0.0
    return jnp.mean(jnp.sign(d_real - c))


def ada_heldout_signal(d_train, d_heldout):
    """r of one step: E_train[sign(D(x_train) - mean D(x_heldout))] (module docstring)."""
    return jnp.mean(jnp.sign(d_train - jnp.mean(d_heldout)))


def ada_adjust(p, rt, cfg: DiffAugConfig, batch_size: int):
    """p after one adjustment from the interval's mean r_t: +-(B interval) / (1000 ada_kimg),
    clipped to [0, ada_max]; unchanged when r_t equals the target."""
    delta = batch_size * cfg.ada_interval / (cfg.ada_kimg * 1000)
    return jnp.clip(p + jnp.sign(rt - cfg.target) * delta, 0.0, cfg.ada_max)
