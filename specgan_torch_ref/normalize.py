"""The seed's `PerFrequencyNormalizer` (seed §3 "PyTorch Adaptation for CSV Data"), corrected.

Kept as close to the seed's class as the corrections allow, method names included, so the
parity suite can show specgan_jax.moments / specgan_jax.normalize compute the same thing.
Corrections (docs/seed-bugs.md, item 7), each marked "CORRECTED" below:
  6. the std is floored (relative to the median bin std) and the SAME floored std is used by
     normalize and denormalize; the seed added 1e-8 in normalize only, so a constant bin
     (std ~ 4e-15) blew up to ~1e15 and did not invert;
  7. the moments are streamed file by file (Welford/Chan merge in float64) instead of
     stacking every file in memory.
Also: an optional log(x + eps) transform (the original's log(|X| + 1e-6), for linear data).
Imports nothing from specgan_jax (it is the independent reference).
"""

import warnings

import numpy as np
import pandas as pd


class PerFrequencyNormalizer:
    """SpecGAN-style per-frequency normalization for CSV spectrograms [F, T] (rows = freq)."""

    def __init__(self, std_floor=1e-3, log_transform=False, eps=1e-6):
        self.mean_per_freq = None
        self.std_per_freq = None  # floored (what normalize/denormalize use)
        self.std_floor = std_floor  # relative to the median per-frequency std
        self.log_transform = log_transform
        self.eps = eps

    def compute_moments(self, csv_files):
        """Mean and std per frequency bin over all files and time frames (np.mean/np.std over
        axes (0, 2) of the stacked files, as the seed), returned as ([F], [F]) float64."""
        # CORRECTED (docs/seed-bugs.md, item 7): streamed. Per file: its per-bin count, mean and
        # squared deviations M2, merged into the running totals with Chan et al. (1979):
        #   mean = mean_a + d n_b / n,  M2 = M2_a + M2_b + d^2 n_a n_b / n,  d = mean_b - mean_a
        n_a, mean_a, m2_a = 0, None, None
        for fp in csv_files:
            spec = pd.read_csv(fp, header=None).values.astype(np.float64)  # [F, T]
            if self.log_transform:
                spec = np.log(spec + self.eps)
            n_b = spec.shape[1]
            mean_b = spec.mean(axis=1)
            m2_b = ((spec - mean_b[:, None]) ** 2).sum(axis=1)
            if mean_a is None:
                n_a, mean_a, m2_a = n_b, mean_b, m2_b
                continue
            n = n_a + n_b
            d = mean_b - mean_a
            mean_a = mean_a + d * n_b / n
            m2_a = m2_a + m2_b + d ** 2 * n_a * n_b / n
            n_a = n
        self.mean_per_freq = mean_a
        std_raw = np.sqrt(m2_a / n_a)
        # CORRECTED (docs/seed-bugs.md, item 7): floor the std instead of `std + 1e-8` in normalize.
        ref = np.median(std_raw)
        if ref <= 0:
            ref = np.max(std_raw)
        floor = self.std_floor * ref
        low = np.flatnonzero(std_raw < floor)
        if low.size:
            warnings.warn(f"std floored to {floor:.3g} in frequency bins {low.tolist()}")
        self.std_per_freq = np.maximum(std_raw, floor)
        return self.mean_per_freq, self.std_per_freq

    def normalize(self, spectrogram):
        """[F, T] raw -> [F, T] float32 in [-1, 1]."""
        if self.mean_per_freq is None or self.std_per_freq is None:
            raise ValueError("Must call compute_moments() first!")
        spectrogram = np.asarray(spectrogram, dtype=np.float64)
        if self.log_transform:
            spectrogram = np.log(spectrogram + self.eps)
        mean = self.mean_per_freq[:, np.newaxis]  # [F, 1]
        std = self.std_per_freq[:, np.newaxis]  # [F, 1]
        # CORRECTED (item 6): no `+ 1e-8`; the floored std is used here and in denormalize.
        normalized = (spectrogram - mean) / std
        normalized /= 3.0  # 3 standard deviations -> 1 (train_specgan.py t_to_f)
        normalized = np.clip(normalized, -1.0, 1.0)
        return normalized.astype(np.float32)

    def denormalize(self, normalized):
        """Reverse normalization to get original scale ([F, T] float64)."""
        mean = self.mean_per_freq[:, np.newaxis]
        std = self.std_per_freq[:, np.newaxis]
        spectrogram = np.asarray(normalized, dtype=np.float64) * 3.0  # Undo /3.0
        spectrogram = spectrogram * std + mean
        if self.log_transform:
            spectrogram = np.exp(spectrogram) - self.eps
        return spectrogram

    def save_moments(self, filepath):
        """Save computed moments to file (the seed's format: arrays `mean`, `std`)."""
        np.savez(filepath, mean=self.mean_per_freq, std=self.std_per_freq)

    def load_moments(self, filepath):
        """Load pre-computed moments (`mean`, `std`), e.g. from specgan_jax's moments.npz."""
        data = np.load(filepath)
        self.mean_per_freq = data["mean"]
        self.std_per_freq = data["std"]
