"""Real data for an evaluation: normalised, split (per class, seeded) into a *reference* half
(the training-set stand-in) and a *held-out* half; and generated CSVs read back for `--fakes`.

Spectrograms are compared in the run's normalised space (moments.npz, clipped to [-1, 1]: the
range the generator's tanh produces, so the comparison is not skewed by real values beyond
±3 std that no generator of this recipe can make).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from specgan_jax.config import EvalConfig
from specgan_jax.data import demo as demo_data
from specgan_jax.data.cache import load_dataset
from specgan_jax.data.normalize import normalize
from specgan_jax.errors import EvaluateError

MIN_REAL = 8  # real spectrograms needed: 4 per split (FD needs 2 per set, NDB 2 bins)


@dataclasses.dataclass
class RealSplits:
    """Real spectrograms, normalised [N, F, T] float32, split into reference and held-out."""

    ref: np.ndarray  # the training-set stand-in (the classifier and NDB's k-means fit on it)
    ref_labels: np.ndarray  # [Nr] int32
    held: np.ndarray  # held out from the reference split
    held_labels: np.ndarray  # [Nh] int32
    class_names: list
    source: str  # where the real data came from
    overlap: str  # how it relates to the run's training data


def split_indices(labels: np.ndarray, seed: int, max_per_split: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Stratified seeded split of sample indices into (reference, held-out) halves: each class
    is shuffled and cut in two (the reference half gets the odd one), then each split is
    randomly cut down to max_per_split. Returned sorted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    ref, held = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        half = (len(idx) + 1) // 2
        ref.append(idx[:half])
        held.append(idx[half:])
    ref, held = np.concatenate(ref), np.concatenate(held)
    if len(ref) > max_per_split:
        ref = rng.choice(ref, max_per_split, replace=False)
    if len(held) > max_per_split:
        held = rng.choice(held, max_per_split, replace=False)
    return np.sort(ref), np.sort(held)


def _normalize_rows(x_raw, idx: np.ndarray, moments, chunk: int = 256) -> np.ndarray:
    """Rows idx of raw [N, F, T] (np.memmap fine) -> normalised [len(idx), F, T] float32."""
    out = np.empty((len(idx),) + tuple(x_raw.shape[1:]), np.float32)
    for s in range(0, len(idx), chunk):
        out[s:s + chunk] = normalize(np.asarray(x_raw[idx[s:s + chunk]]), moments)
    return out


def _check_count(n: int, what: str) -> None:
    if n < MIN_REAL:
        raise EvaluateError(f"{what}: {n} usable spectrogram(s); evaluation needs at least "
                            f"{MIN_REAL} ({MIN_REAL // 2} per split: reference and held-out)")


def real_from_arrays(x_raw, labels, class_names, moments, cfg: EvalConfig, source: str,
                     overlap: str) -> RealSplits:
    """Split (seeded, stratified) and normalise a raw [N, F, T] dataset."""
    _check_count(len(labels), source)
    ref_i, held_i = split_indices(labels, cfg.seed, cfg.max_real)
    labels = np.asarray(labels, np.int32)
    return RealSplits(ref=_normalize_rows(x_raw, ref_i, moments), ref_labels=labels[ref_i],
                      held=_normalize_rows(x_raw, held_i, moments), held_labels=labels[held_i],
                      class_names=list(class_names), source=source, overlap=overlap)


def _is_demo_run(config) -> bool:
    return config.data.path is None and config.data.file_list is None


def real_from_demo(config, moments, cfg: EvalConfig) -> RealSplits:
    """`--real demo` for a run trained on the built-in demo data: the reference split is the
    run's training set itself (rebuilt from its seed), the held-out split is as many *new* demo
    spectrograms (the next indices of each class), never seen in training."""
    if not _is_demo_run(config):
        raise EvaluateError("--real demo is for runs trained on the built-in demo data; this run "
                            f"was trained on {config.data.path or config.data.file_list}: pass "
                            "--real with a folder of real CSVs")
    n_cls = len(demo_data.CLASS_NAMES)
    # The demo run computed its moments over its whole training set: the count says how many
    # spectrograms per class it had, whatever DEMO_N_PER_CLASS is now.
    n_pc = (moments.count // n_cls if moments.count and moments.count % n_cls == 0
            else demo_data.DEMO_N_PER_CLASS)
    seed = config.train.seed
    shape = (config.data.n_freq, config.data.n_time)  # the demo run's examples (demo_dataset)
    x_ref, labels, names = demo_data.make_demo_dataset(n_pc, seed, *shape)
    x_held = np.stack([demo_data.make_spectrogram(seed, c, i, *shape)
                       for c in range(n_cls) for i in range(n_pc, 2 * n_pc)])
    rng = np.random.default_rng(cfg.seed)
    ref_i = np.arange(len(x_ref))
    held_i = np.arange(len(x_held))
    if len(ref_i) > cfg.max_real:
        ref_i = np.sort(rng.choice(ref_i, cfg.max_real, replace=False))
    if len(held_i) > cfg.max_real:
        held_i = np.sort(rng.choice(held_i, cfg.max_real, replace=False))
    return RealSplits(
        ref=_normalize_rows(x_ref, ref_i, moments), ref_labels=labels[ref_i],
        held=_normalize_rows(x_held, held_i, moments), held_labels=labels[held_i],
        class_names=names, source=f"demo data (seed {seed}, {n_pc} per class for reference, "
                                  f"indices {n_pc}..{2 * n_pc - 1} held out)",
        overlap="reference split = the run's training set; held-out split = new demo "
                "spectrograms never seen in training")


def _data_config_for(config, path: str):
    """The run's DataConfig (orientation, shape policy, log transform...) on another source."""
    path = os.path.abspath(path)
    if os.path.isfile(path):  # a file list
        return dataclasses.replace(config.data, path=None, file_list=path)
    return dataclasses.replace(config.data, path=path, file_list=None)


def _check_shape(x: np.ndarray, config, moments, what: str) -> None:
    """x [N, F, T] has the run's example shape (its generator's) and its moments' bins."""
    m = config.model
    if x.shape[1:] != (m.n_freq, m.n_time) or moments.n_freq != m.n_freq:
        raise EvaluateError(f"{what}: spectrograms are {x.shape[1]}x{x.shape[2]} (frequency x "
                            f"time); the run's generator makes {m.n_freq}x{m.n_time} and its "
                            f"moments have {moments.n_freq} frequency bins")


def real_from_folder(config, moments, real: str, cfg: EvalConfig,
                     progress: bool = False) -> RealSplits:
    """`--real DIR` (or a file list): loaded with the run's data options, split and
    normalised."""
    dc = _data_config_for(config, real)
    dataset = load_dataset(dc, progress=progress)
    _check_shape(dataset.x, config, moments, real)
    train_src = config.data.path or config.data.file_list
    same = train_src is not None and os.path.abspath(train_src) == os.path.abspath(real)
    overlap = ("the real set IS the run's training data: both splits were seen in training "
               "(held out from the reference split only)" if same else
               "not the run's training data source (by path); any overlap is unknown")
    return real_from_arrays(dataset.x, dataset.labels, dataset.class_names, moments, cfg,
                            source=os.path.abspath(real), overlap=overlap)


def fakes_from_folder(config, moments, fakes: str, n: int
                      ) -> tuple[np.ndarray, np.ndarray, list]:
    """Generated CSVs (the run's data format) -> (normalised [n, F, T], labels [n], class
    names): the first n files in load order (class folders sorted, then file names; n = 0:
    all). Class folders (generate.py's layout for a conditional run) give the labels."""
    dc = dataclasses.replace(_data_config_for(config, fakes), use_cache=False)
    ds = load_dataset(dc, progress=False)
    _check_shape(ds.x, config, moments, fakes)
    if n > len(ds.x):
        raise EvaluateError(f"--n {n} but {fakes} holds {len(ds.x)} spectrograms")
    idx = np.arange(n or len(ds.x))
    return (_normalize_rows(ds.x, idx, moments), np.asarray(ds.labels)[idx],
            list(ds.class_names))
