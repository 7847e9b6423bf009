"""Beyond the original recipe, for small data sets: an exponential moving average of the
generator's weights (on by default: it changes nothing about training), differentiable
augmentation of everything the critic sees, and its adaptive strength (both off by default).
What each one measured is in docs/small-data.md."""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from specgan_jax.config.augment_keys import check_transforms, upgrade_old_keys
from specgan_jax.config.checks import check_literals


@dataclasses.dataclass(frozen=True)
class EMAConfig:
    """Exponential moving average of G's weights, sampled from by previews, generation, export
    and evaluation (--raw: the trained weights). Karras et al. 2020, StyleGAN2-ADA's G_ema."""

    # Half-life of the average in thousands of images seen by G (StyleGAN2-ADA's ema_kimg):
    # decay per step = 0.5 ** (batch_size / (1000 kimg)). None: batch_size * 10 / 32, as
    # StyleGAN2-ADA's automatic config. 0: no averaging (the EMA equals the trained weights).
    kimg: Optional[float] = None
    # Warm-up: the half-life is at most `rampup` x the images seen so far, so early weights are
    # not averaged in for long (StyleGAN2-ADA's ema_rampup 0.05). 0: no warm-up.
    rampup: float = 0.05

    def __post_init__(self):
        if self.kimg is not None and not self.kimg >= 0:
            raise ValueError(f"ema.kimg must be >= 0 (0: off) or none (auto); got {self.kimg}")
        if not self.rampup >= 0:
            raise ValueError(f"ema.rampup must be >= 0 (0: no warm-up); got {self.rampup}")


@dataclasses.dataclass(frozen=True)
class DiffAugConfig:
    """Differentiable augmentation of the critic's inputs (DiffAugment, Zhao et al. 2020):
    real, fake and gradient-penalty interpolates, in the critic's and the generator's loss,
    each example drawn independently. Only transforms that keep a spectrogram's meaning: time
    translation, time and frequency masks, a level (gain) shift, a small time stretch; never a
    frequency shift or a flip. A transform is applied with probability strength x its own
    probability below. With `ada`, the strength adapts (Karras et al. 2020).

    The transforms share augment's names, units and draws (specgan_jax.config.augment_keys,
    specgan_jax.data.augment.TRANSFORMS): `<transform>_prob`, and widths as fractions of the
    axis, so a setting means the same on any spectrogram shape. An older config.json's names
    (bare probabilities `time_shift` ..., time_stretch_max as 1 +- m) are read as these."""

    # Overall probability p scaling every transform's probability (0 with ada off: no
    # augmentation, the original recipe). With ada: the starting p.
    strength: float = 0.0
    # The transforms, in augment's vocabulary and units (specgan_jax.config.augment_keys):
    # widths are fractions of the axis, round(fraction x length) frames or bins.
    time_shift_prob: float = 1.0  # probability of a time translation
    time_shift_max: float = 0.125  # by up to this fraction of the frames (DiffAugment: 1/8)
    # "roll": wrap around; "pad": frames shifted out are lost, the gap is 0 (each bin's mean).
    time_shift_mode: Literal["roll", "pad"] = "roll"
    time_mask_prob: float = 1.0  # probability of a time mask (SpecAugment, Park et al. 2019)
    time_mask_max: float = 0.25  # mask width ~ U(0, this fraction of the frames), filled with 0
    freq_mask_prob: float = 1.0  # probability of a frequency mask
    freq_mask_max: float = 0.25  # mask width ~ U(0, this fraction of the bins), filled with 0
    gain_prob: float = 1.0  # probability of a level shift: one constant added in the data's units
    # The shift ~ U(-gain_max, gain_max) x the median per-frequency std of the data (scale-free,
    # as data.std_floor), added to every bin: normalised bin f moves by it / (3 std_f).
    gain_max: float = 0.5
    time_stretch_prob: float = 0.0  # probability of a time stretch (resample, centre crop/pad)
    time_stretch_min: float = 0.9  # rate ~ U(min, max)
    time_stretch_max: float = 1.1
    # Adaptive strength: p moves every ada_interval steps by +-(images in the interval) /
    # (1000 ada_kimg), up when the critic's overfitting signal r_t is above ada_target.
    ada: bool = False
    # The overfitting signal (engine.small_data):
    #   "heldout"  r = E_train[sign(D(x) - mean D(held-out))]: how far the critic scores the
    #              examples it trains on above examples it never saw. A fraction ada_heldout
    #              of the data is held out of training for it.
    #   "midpoint" r = E_real[sign(D(x) - (E D(real) + E D(fake)) / 2)]: ADA's r_t on centred
    #              WGAN logits; needs no held-out data, but rises whenever the critic tells
    #              real from fake, on large data sets too.
    ada_signal: Literal["heldout", "midpoint"] = "heldout"
    ada_heldout: float = 0.1  # fraction of the examples held out for "heldout" (at least 1)
    # Target of r: with Gaussian scores r = 2 Phi(gap / sigma) - 1 (heldout), so 0.3 is a
    # train/held-out gap of 0.39 sigma; ADA's 0.6 for "midpoint".
    ada_target: Optional[float] = None  # None: 0.3 for heldout, 0.6 for midpoint
    ada_interval: int = 4  # steps between adjustments of p (ADA: 4)
    ada_kimg: float = 100.0  # thousands of images for p to move by 1 (ADA: 500, for long runs)
    ada_max: float = 1.0  # upper bound of p

    def __post_init__(self):
        for name in ("strength", "ada_max"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"diffaug.{name} must be in [0, 1]; got {v}")
        check_transforms(self, "diffaug")
        check_literals(self, "diffaug")
        if self.ada_target is not None and not 0.0 < self.ada_target < 1.0:
            raise ValueError(f"diffaug.ada_target must be in (0, 1); got {self.ada_target}")
        if not 0.0 < self.ada_heldout < 1.0:
            raise ValueError(f"diffaug.ada_heldout is a fraction of the data, in (0, 1); got "
                             f"{self.ada_heldout}")
        if self.ada_interval < 1 or not self.ada_kimg > 0:
            raise ValueError("diffaug.ada_interval must be >= 1 and diffaug.ada_kimg > 0")
        if self.strength > self.ada_max:
            raise ValueError("diffaug.strength must be <= diffaug.ada_max")

    @staticmethod
    def upgrade_old_keys(given: dict) -> dict:
        """A config.json section in the current names (specgan_jax.config.augment_keys)."""
        return upgrade_old_keys("diffaug", given,
                                {f.name for f in dataclasses.fields(DiffAugConfig)})

    @property
    def target(self) -> float:
        """ada_target, or its default for the chosen signal."""
        if self.ada_target is not None:
            return self.ada_target
        return 0.3 if self.ada_signal == "heldout" else 0.6

    @property
    def holds_out(self) -> bool:
        """Whether training holds examples out for ADA's signal."""
        return self.ada and self.ada_signal == "heldout"

    def n_heldout(self, n: int) -> int:
        """How many of n examples are held out of training (0 unless holds_out)."""
        return max(1, int(round(self.ada_heldout * n))) if self.holds_out else 0

    @property
    def enabled(self) -> bool:
        """Whether the critic's inputs are augmented at all (else the step is the recipe's)."""
        return self.ada or self.strength > 0
