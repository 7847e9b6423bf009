"""Checkerboard and stripe artefacts: excess energy at the highest spatial frequencies of the
generated spectrograms, against real ones (eval.json "hf_excess").

Stride-2 upsampling layers (transposed convolutions most of all; Odena et al. 2016,
"Deconvolution and Checkerboard Artifacts") imprint patterns of period 2 and 4 pixels: a
checkerboard, or stripes along time or frequency. They sit at the top of the 2-D spectrum of
an image, where a smooth spectrogram has little power. Per normalised spectrogram x [F, T]:

  y    = (x - mean(x)) * w_F w_T^T        mean removed; w: the periodic Hann window
                                           w[n] = (1 - cos(2 pi n / N)) / 2, which keeps the
                                           edges of a non-periodic image from leaking power
                                           across the spectrum
  P(k) = |DFT2(y)(k)|^2                   the power spectrum; k = (k_f, k_t) with
                                           frequencies nu = fftfreq(N) in cycles per bin
                                           (|nu| <= 1/2, the Nyquist frequency: period 2)
  band(x) = sum_{k in B} P(k) / sum_{k != 0} P(k),   B = {k : max(|nu_f|, |nu_t|) >= 1/4}
                                           the fraction of power at periods <= 4 bins in
                                           either direction (0 for an image without power)
  peak(x) = the same fraction for the 3 x 3 bins around the checkerboard (1/2, 1/2) and the
            stripes (1/2, 0), (0, 1/2): the Hann window spreads a pattern at exactly those
            frequencies over these 9 bins each (its DFT has 3 non-zero coefficients)

  hf_excess = ln(mean over generated of band / mean over the reference split of band)
  real baseline: ln(mean over held-out of band / mean over reference of band)

0: as much high-frequency energy as real data; > 0: more (artefacts, or noise); < 0: less
(smoother than real). "peak_generated" / "peak_real_baseline" are the same log ratios for
peak(x), specific to period-2 patterns. Means are floored at FLOOR before the logarithm, so a
set of constant images gives a large negative, finite value.
"""

from __future__ import annotations

import numpy as np

BAND = 0.25  # |nu| >= this (cycles per bin): periods of at most 4 bins
FLOOR = 1e-12  # mean fractions below this are taken as this (ln of 0 is not a number)
CHUNK = 64  # images per FFT batch (bounds memory: CHUNK x F x T complex128)


def _hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def _masks(n_f: int, n_t: int) -> tuple[np.ndarray, np.ndarray]:
    """(band B, peak regions) as boolean [F, T] masks over DFT bins; DC excluded from both."""
    nu_f = np.abs(np.fft.fftfreq(n_f))[:, None]
    nu_t = np.abs(np.fft.fftfreq(n_t))[None, :]
    band = np.maximum(nu_f, nu_t) >= BAND
    peak = np.zeros((n_f, n_t), bool)
    for cf, ct in ((n_f // 2, n_t // 2), (n_f // 2, 0), (0, n_t // 2)):
        rows = [(cf + d) % n_f for d in (-1, 0, 1)]
        cols = [(ct + d) % n_t for d in (-1, 0, 1)]
        peak[np.ix_(rows, cols)] = True
    band[0, 0] = peak[0, 0] = False
    return band, peak


def spectral_fractions(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x [N, F, T] -> (band(x_i) [N], peak(x_i) [N]) as defined in the module docstring."""
    x = np.asarray(x)
    if x.ndim != 3 or min(x.shape[1:]) < 4:
        raise ValueError(f"spectral_fractions expects [N, F, T] with F, T >= 4; got {x.shape}")
    n, n_f, n_t = x.shape
    window = np.outer(_hann(n_f), _hann(n_t))
    band_mask, peak_mask = _masks(n_f, n_t)
    band, peak = np.zeros(n), np.zeros(n)
    for s in range(0, n, CHUNK):
        xc = np.asarray(x[s:s + CHUNK], np.float64)
        y = (xc - xc.mean(axis=(1, 2), keepdims=True)) * window
        p = np.abs(np.fft.fft2(y)) ** 2
        p[:, 0, 0] = 0.0
        total = p.sum(axis=(1, 2))
        ok = total > 0
        band[s:s + CHUNK][ok] = (p * band_mask).sum(axis=(1, 2))[ok] / total[ok]
        peak[s:s + CHUNK][ok] = (p * peak_mask).sum(axis=(1, 2))[ok] / total[ok]
    return band, peak


def log_ratio(a: float, b: float) -> float:
    return float(np.log(max(a, FLOOR) / max(b, FLOOR)))


def _real_side(ev) -> dict:
    """Mean band and peak fractions of the reference and held-out splits, computed once."""
    if "hf" not in ev.real_cache:
        ref_b, ref_p = spectral_fractions(ev.real.ref)
        held_b, held_p = spectral_fractions(ev.real.held)
        ev.real_cache["hf"] = {"ref": (ref_b.mean(), ref_p.mean()), "held_band": held_b,
                               "held": (held_b.mean(), held_p.mean()), "ref_band": ref_b}
    return ev.real_cache["hf"]


def hf_excess(ev, g) -> dict:
    """The eval.json entry (ev: the Evaluator; g: its Generated set)."""
    real = _real_side(ev)
    gen_b, gen_p = spectral_fractions(g.x)
    (ref_b, ref_p), (held_b, held_p) = real["ref"], real["held"]
    g.arrays.update(hf_gen=gen_b, hf_held=real["held_band"], hf_ref=real["ref_band"])
    return {"generated": log_ratio(gen_b.mean(), ref_b), "real_baseline": log_ratio(held_b, ref_b),
            "generated_fraction": float(gen_b.mean()), "real_heldout_fraction": float(held_b),
            "real_reference_fraction": float(ref_b),
            "peak_generated": log_ratio(gen_p.mean(), ref_p),
            "peak_real_baseline": log_ratio(held_p, ref_p),
            "band": f"max(|nu_f|, |nu_t|) >= {BAND:g} cycles per bin (periods <= 4 bins)"}


COMPUTE = {"hf_excess": hf_excess}
