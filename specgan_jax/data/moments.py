"""Per-frequency moments (mean and std per frequency bin over all samples and time frames).

The original (train_specgan.py `moments`) and the seed stack every spectrogram in memory and
call np.mean / np.std over axes (0, 2). Here the data is streamed in chunks of samples and the
chunks are merged with Chan et al.'s parallel update (Chan, Golub & LeVeque 1979, "Updating
formulae and a pairwise algorithm for computing sample variances"), in float64:

    n = n_a + n_b,  d = mean_b - mean_a
    mean = mean_a + d * n_b / n
    M2   = M2_a + M2_b + d^2 * n_a * n_b / n,        std = sqrt(M2 / n)   (ddof = 0, as np.std)

so memory is O(chunk) whatever the dataset size, and the result equals the stacked computation
to float64 rounding (tests/test_data_moments.py).

The std is floored (docs/seed-bugs.md, item 7): a (nearly) constant frequency bin has std ~ 1e-15, and
the seed's `(x - mean) / (std + 1e-8)` turns rounding noise there into values of ~1e7..1e15.
The floor is relative to the median bin std, so it means the same in log and linear units.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from typing import Iterable, Optional, Sequence, Union

import numpy as np
from tqdm.auto import tqdm

from specgan_jax import atomic
from specgan_jax.data.windows import offsets
from specgan_jax.errors import DataError

MOMENTS_VERSION = 1


class StdFloorWarning(UserWarning):
    """Some frequency bins are (nearly) constant; their std was raised to the floor."""


@dataclasses.dataclass
class Moments:
    """Per-frequency moments of a dataset, plus what is needed to apply and invert them.

    mean, std: [F] float64 in the (optionally log-transformed) units; std already floored.
    std_raw: [F] float64 before the floor. count: number of spectrograms; frames: time frames
    per spectrogram. log_transform/eps: x -> log(x + eps) applied before the moments.
    """

    mean: np.ndarray
    std: np.ndarray
    std_raw: np.ndarray
    count: int
    frames: int
    log_transform: bool = False
    eps: float = 1e-6
    orientation: str = "freq_rows"
    std_floor: float = 1e-3
    floored_bins: list = dataclasses.field(default_factory=list)

    @property
    def n_freq(self) -> int:
        return int(self.mean.shape[0])

    def metadata(self) -> dict:
        """JSON-ready description (everything but the arrays)."""
        return {"version": MOMENTS_VERSION, "count": int(self.count), "frames": int(self.frames),
                "log_transform": bool(self.log_transform), "eps": float(self.eps),
                "orientation": self.orientation, "std_floor": float(self.std_floor),
                "floored_bins": [int(b) for b in self.floored_bins]}

    def save(self, path: str) -> None:
        """Write an .npz (arrays mean, std, std_raw; JSON string `meta`) atomically.
        `mean` and `std` keep the seed's key names, so the seed's load_moments reads it."""
        path = os.fspath(path)
        with atomic.atomic_open(path, "wb", fsync=True) as f:
            np.savez(f, mean=self.mean, std=self.std, std_raw=self.std_raw,
                     meta=np.array(json.dumps(self.metadata())))

    @classmethod
    def load(cls, path: str) -> "Moments":
        """Read a file written by `save`, or the seed's {mean, std} .npz (then: no log
        transform, unknown count, and the std floor of 1e-3 x median applied with a warning
        if it bites)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise DataError(path, f"not a readable moments .npz file ({e})") from None
        if "mean" not in arrays or "std" not in arrays:
            raise DataError(path, "moments file lacks the 'mean' and 'std' arrays")
        mean = np.asarray(arrays["mean"], np.float64)
        if "meta" in arrays:
            meta = json.loads(str(arrays["meta"]))
            return cls(mean=mean, std=np.asarray(arrays["std"], np.float64),
                       std_raw=np.asarray(arrays.get("std_raw", arrays["std"]), np.float64),
                       count=meta["count"], frames=meta["frames"],
                       log_transform=meta["log_transform"], eps=meta["eps"],
                       orientation=meta["orientation"], std_floor=meta["std_floor"],
                       floored_bins=list(meta["floored_bins"]))
        std_raw = np.asarray(arrays["std"], np.float64)
        std, floored = floor_std(std_raw, 1e-3)
        return cls(mean=mean, std=std, std_raw=std_raw, count=0, frames=0, floored_bins=floored)


def floor_std(std_raw: np.ndarray, std_floor: float) -> tuple[np.ndarray, list]:
    """std_raw [F] -> (max(std_raw, std_floor * median(std_raw)), floored bin indices),
    warning (StdFloorWarning) with the bin indices when any bin is floored. If the median is 0
    (most bins constant) the floor is relative to the largest std instead."""
    ref = float(np.median(std_raw))
    if ref <= 0:
        ref = float(np.max(std_raw))
    if ref <= 0:
        raise DataError("<moments>", "every frequency bin is constant (std 0): nothing to "
                                     "normalise; is the data all one value?")
    floor = std_floor * ref
    floored = [int(i) for i in np.flatnonzero(std_raw < floor)]
    if floored:
        shown = ", ".join(map(str, floored[:20])) + (", ..." if len(floored) > 20 else "")
        warnings.warn(f"{len(floored)} frequency bin(s) are nearly constant (std < {floor:.3g} "
                      f"= {std_floor:g} x median std); their std is floored to {floor:.3g}: "
                      f"bins {shown}", StdFloorWarning, stacklevel=3)
    return np.maximum(std_raw, floor), floored


def _chunks(x, chunk_size: int) -> Iterable[np.ndarray]:
    if isinstance(x, np.ndarray) or hasattr(x, "__getitem__") and hasattr(x, "shape"):
        for s in range(0, x.shape[0], chunk_size):
            yield x[s:s + chunk_size]
    else:
        yield from x


def compute_moments(x: Union[np.ndarray, Iterable[np.ndarray]], *, log_transform: bool = False,
                    eps: float = 1e-6, std_floor: float = 1e-3, orientation: str = "freq_rows",
                    chunk_size: int = 64, names: Optional[Sequence[str]] = None,
                    progress: bool = False) -> Moments:
    """Streamed per-frequency moments of spectrograms in raw units.

    x: [N, F, T] array-like read chunk_size samples at a time (an np.memmap stays on disk),
       or an iterable of [n_i, F, T] chunks. Never materialised whole.
    log_transform, eps: use log(x + eps) (the original's log(|X| + 1e-6)).
    std_floor: relative floor, see `floor_std`. names: per-sample names for error messages.
    Returns Moments; mean/std equal np.mean/np.std(x', axis=(0, 2)) of the stacked x'.
    """
    n_a, mean_a, m2_a, seen = 0, None, None, 0
    total = x.shape[0] if hasattr(x, "shape") else None
    bar = tqdm(total=total, desc="moments", unit="spec", disable=not progress)
    for chunk in _chunks(x, chunk_size):
        c = np.asarray(chunk, dtype=np.float64)  # [n, F, T]
        if c.ndim != 3:
            raise ValueError(f"expected chunks of shape [n, F, T]; got {c.shape}")
        if not np.isfinite(c).all():
            i = seen + int(np.flatnonzero(~np.isfinite(c).all(axis=(1, 2)))[0])
            raise DataError(names[i] if names else f"sample {i}", "NaN or infinity in data")
        if log_transform:
            if (c + eps <= 0).any():
                i = seen + int(np.flatnonzero((c + eps <= 0).any(axis=(1, 2)))[0])
                raise DataError(names[i] if names else f"sample {i}",
                                f"log_transform needs values > -eps ({-eps:g}); found "
                                f"{c.min():g}: is the data already in log units?")
            c = np.log(c + eps)
        if mean_a is not None and c.shape[1] != mean_a.shape[0]:
            raise ValueError(f"chunk shape {c.shape} does not match earlier chunks' "
                             f"{mean_a.shape[0]} frequency bins")
        n_b = c.shape[0] * c.shape[2]  # values per frequency bin in this chunk
        mean_b = c.mean(axis=(0, 2))  # [F]
        m2_b = ((c - mean_b[None, :, None]) ** 2).sum(axis=(0, 2))  # [F]
        if mean_a is None:
            n_a, mean_a, m2_a = n_b, mean_b, m2_b
        else:  # Chan et al. 1979 merge of (n_a, mean_a, M2_a) and (n_b, mean_b, M2_b)
            n = n_a + n_b
            d = mean_b - mean_a
            mean_a = mean_a + d * (n_b / n)
            m2_a = m2_a + m2_b + d * d * (n_a * n_b / n)
            n_a = n
        seen += c.shape[0]
        bar.update(c.shape[0])
    bar.close()
    if mean_a is None:
        raise ValueError("compute_moments got no data")
    std_raw = np.sqrt(m2_a / n_a)
    std, floored = floor_std(std_raw, std_floor)
    # frames: per spectrogram (the mean, for long files of different lengths)
    return Moments(mean=mean_a, std=std, std_raw=std_raw, count=seen, frames=int(n_a // seen),
                   log_transform=log_transform, eps=eps, orientation=orientation,
                   std_floor=std_floor, floored_bins=floored)


def moments_for(dataset, data_cfg, progress: bool = False) -> Moments:
    """compute_moments over a data.cache.Dataset with the DataConfig's transform and floor:
    over every frame of every file (long files whole, not only their windows)."""
    x, names = dataset.x, dataset.paths
    if dataset.windowed:  # one [1, F, L_i] chunk per file
        x = (np.asarray(dataset.frames[s:s + n]).T[None]
             for s, n in zip(offsets(dataset.lengths), dataset.lengths))
        names = dataset.file_paths
    return compute_moments(x, log_transform=data_cfg.log_transform, eps=data_cfg.log_eps,
                           std_floor=data_cfg.std_floor, orientation=data_cfg.orientation,
                           names=names, progress=progress)
