"""The one vocabulary of the two augmentation sections, `augment` (real batches) and `diffaug`
(DiffAugment of the critic's inputs): the checks both share, and the upgrade of the names an
older config.json used.

Naming: `<transform>_prob` is a transform's probability, `<transform>_max` (and
`time_stretch_min`, `noise_std`) its strength. Transforms: time_stretch, time_shift, freq_mask,
time_mask, noise (augment only), gain (diffaug only); the table that draws and applies them is
specgan_jax.data.augment.TRANSFORMS.

Units: shift and mask widths are FRACTIONS of their axis (frames for time, bins for frequency),
made integer widths as round(fraction x axis length) where an integer is needed. A fraction
means the same on any spectrogram shape (128 x 128, 129 x 512, ...), where a count of frames
would not; k/128 is exact in binary, so on a 128-frame axis a fraction k/128 is exactly k frames.
"""

from __future__ import annotations

from typing import Callable

# Every old run was 128 x 128: its frame and bin counts become fractions of 128.
OLD_AXIS = 128

PROBS = ("time_stretch_prob", "time_shift_prob", "freq_mask_prob", "time_mask_prob",
         "noise_prob", "gain_prob")
WIDTHS = ("freq_mask_max", "time_mask_max")  # mask widths: fractions of the axis, in [0, 1]


def axis_width(frac: float, n: int) -> int:
    """round(frac x n), at most n: the integer width of a fraction of an n-long axis (exact
    for frac = k / n with n a power of two, e.g. k/128 on 128 frames)."""
    return min(int(round(frac * n)), n)


def check_transforms(cfg, section: str) -> None:
    """ValueError naming `<section>.<field>` for an out-of-range transform field of `cfg`
    (fields a section does not have are skipped)."""
    has = lambda name: hasattr(cfg, name)  # noqa: E731
    for name in filter(has, PROBS):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ValueError(f"{section}.{name} must be in [0, 1]; got {getattr(cfg, name)}")
    for name in WIDTHS:
        v = getattr(cfg, name)
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{section}.{name} is a fraction of the axis, in [0, 1] (a width "
                             f"of k bins or frames of 128 is k / 128); got {v}")
    # Unbounded: a roll by more than the axis wraps around (older configs allowed it).
    if not cfg.time_shift_max >= 0:
        raise ValueError(f"{section}.time_shift_max is a fraction of the frames, >= 0 (k of "
                         f"128 frames is k / 128); got {cfg.time_shift_max}")
    if not 0 < cfg.time_stretch_min <= cfg.time_stretch_max:
        raise ValueError(f"{section}.time_stretch_min/time_stretch_max must satisfy "
                         f"0 < min <= max; got {cfg.time_stretch_min}, {cfg.time_stretch_max}")
    for name in filter(has, ("noise_std", "gain_max")):
        if not getattr(cfg, name) >= 0:
            raise ValueError(f"{section}.{name} must be >= 0; got {getattr(cfg, name)}")


def _same(new: str) -> Callable:
    return lambda v, where: {new: v}


def _frames(new: str, clip: bool) -> Callable:
    """An old width in frames/bins of a 128-long axis -> its fraction (masks were clipped to
    the axis, so a wider one is the whole axis; shifts were not)."""
    def convert(v, where):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{where} (a count of frames or bins): expected an integer, got {v!r}")
        return {new: (min(v, OLD_AXIS) if clip else v) / OLD_AXIS}
    return convert


def _plus_minus(v, where):
    """DiffAugment's old time_stretch_max m: rate ~ U(1 - m, 1 + m)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{where}: expected a number, got {v!r}")
    return {"time_stretch_min": 1 - v, "time_stretch_max": 1 + v}


# Old name -> (value, where) -> {new name: value}, per section.
OLD_KEYS = {
    "augment": {
        "shift_prob": _same("time_shift_prob"), "shift_max": _frames("time_shift_max", False),
        "shift_mode": _same("time_shift_mode"), "noise_prob": _same("noise_prob"),
        "noise_std": _same("noise_std"), "freq_mask_prob": _same("freq_mask_prob"),
        "freq_mask_max": _frames("freq_mask_max", True), "time_mask_prob": _same("time_mask_prob"),
        "time_mask_max": _frames("time_mask_max", True), "stretch_prob": _same("time_stretch_prob"),
        "stretch_min": _same("time_stretch_min"), "stretch_max": _same("time_stretch_max"),
    },
    "diffaug": {
        "time_shift": _same("time_shift_prob"), "time_shift_max": _same("time_shift_max"),
        "shift_mode": _same("time_shift_mode"), "time_mask": _same("time_mask_prob"),
        "time_mask_max": _same("time_mask_max"), "freq_mask": _same("freq_mask_prob"),
        "freq_mask_max": _same("freq_mask_max"), "gain": _same("gain_prob"),
        "gain_max": _same("gain_max"), "time_stretch": _same("time_stretch_prob"),
        "time_stretch_max": _plus_minus,
    },
}


def upgrade_old_keys(section: str, given: dict, fields: set) -> dict:
    """`given` (one section of a config dict) in the current names. A section holding any name
    only the old vocabulary had (config.json files hold whole sections, so an old one always
    does) is read in the old vocabulary, its frame counts made fractions; one that also holds
    a name only the new vocabulary has is an error. Else `given` is returned unchanged."""
    old = OLD_KEYS[section]
    old_only = sorted(k for k in given if k in old and k not in fields)
    if not old_only:
        return given
    renamed = {v for conv in old.values() for v in conv(0, "").keys()}
    new_only = sorted(k for k in given if k not in old and k in renamed)
    if new_only:
        raise ValueError(f"{section} mixes old option names ({', '.join(old_only)}) with new ones "
                         f"({', '.join(new_only)}); use the new ones (docs/data.md)")
    out = {}
    for k, v in given.items():
        out.update(old[k](v, f"{section}.{k}") if k in old else {k: v})
    return out
