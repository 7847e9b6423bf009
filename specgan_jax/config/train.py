"""How a run trains: the loop, the data and the augmentations of real batches."""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from specgan_jax.config.augment_keys import check_transforms, upgrade_old_keys
from specgan_jax.config.checks import check_literals
from specgan_jax.config.metrics import EVAL_METRICS


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training loop: schedule, checkpoints, previews and logging (specgan_jax.training).

    Fields marked "run control" may change when a run is resumed (e.g. a larger `steps` trains
    further); every other field must equal the saved config.json of the run directory.
    """

    # Generator updates to train for, in total (a resumed run continues up to this). The paper's
    # models trained ~200k steps (maintainer, chrisdonahue/wavegan issue #62). Run control.
    steps: int = 200_000
    batch_size: int = 64  # real examples per critic update and fakes per update (train_specgan.py)
    seed: int = 0  # seeds initialisation, sampling and augmentation: jax.random.PRNGKey(seed)
    # Generator steps per host call (one compiled lax.scan); metrics reach the host once per call.
    # Larger amortises dispatch; smaller gives finer progress. Run control.
    steps_per_call: int = 10
    # How a host call runs its steps: "scan": one jitted lax.scan over them (TrainFns.chunk;
    # a shorter call, up to a log/preview/checkpoint boundary, runs as separate steps, so the
    # scan compiles once); "python": that many calls of the jitted step, dispatched
    # asynchronously, metrics still fetched once per call; "auto": "scan" (on the CPU it took
    # 0.9x the time of separate steps: docs/performance.md). Same numbers. Run control.
    loop: Literal["auto", "scan", "python"] = "auto"
    log_every: int = 100  # steps between fixed-width log lines and metrics.jsonl rows; run control
    checkpoint_every: int = 5_000  # steps between checkpoints; run control
    # Also save when this many seconds passed since the last save (train_specgan.py saved every
    # 300 s); 0 disables the wall-time trigger. Run control.
    checkpoint_every_secs: float = 300.0
    keep_checkpoints: int = 3  # keep the newest N checkpoints (orbax max_to_keep); run control
    preview_every: int = 1_000  # steps between preview grids previews/fakes_NNNNNN.png; run control
    n_preview: int = 16  # samples per preview grid (fixed latents, drawn once from the seed)
    tensorboard: bool = True  # also write TensorBoard events when a writer is importable; run control
    # Evaluate sample quality every N steps (0 = off): generated samples against a held-out half
    # of the training data (specgan_jax.evaluation), "eval/<metric>" rows in metrics.jsonl and
    # TensorBoard, and the checkpoint with the best eval_metric kept in
    # checkpoints_best_<metric>/. Uses its own random numbers: training is unchanged. Run control.
    eval_every: int = 0
    # The metric that picks the best checkpoint: lower is better, except inception_score (higher;
    # needs data with classes), class_accuracy, tstr and aug_gain (higher). intra_fd, intra_kid
    # (each class's samples against that class's reals, averaged), class_accuracy (the feature
    # classifier's accuracy on samples of each class), tstr and aug_gain (held-out accuracy of
    # a classifier trained on the samples, or on reals plus them) need a conditional model.
    # The choices: specgan_jax.config.metrics. Run control.
    eval_metric: Literal[EVAL_METRICS] = "fd"
    # Generated samples per evaluation (per class for a conditional model); 0 = the held-out
    # split's size (of that class). Run control.
    eval_n: int = 0
    # Stop when this many evaluations in a row brought no new best eval_metric (0: never); the
    # reason is printed and written to the run (stopped.json). Needs eval_every. Run control.
    stop_after_no_improvement: int = 0
    # A budget in minutes of training (None: none): stop with a checkpoint once the training
    # calls took this long, summed over the run's resumes (the total is saved with each
    # checkpoint; the first call of each compiled function, which compiles it, is not counted;
    # nor are setup, previews, checkpoints and evaluation). train.steps still caps the run;
    # a re-run with a larger budget trains further. Run control.
    minutes: Optional[float] = None

    # Fields that may differ between a run directory's config.json and a resumed invocation.
    RUN_CONTROL = (
        "steps", "steps_per_call", "loop", "log_every", "checkpoint_every", "checkpoint_every_secs",
        "keep_checkpoints", "preview_every", "tensorboard", "eval_every", "eval_metric", "eval_n",
        "stop_after_no_improvement", "minutes",
    )

    def __post_init__(self):
        for name in ("steps", "batch_size", "steps_per_call", "log_every", "checkpoint_every",
                     "keep_checkpoints", "preview_every", "n_preview"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1; got {getattr(self, name)}")
        if self.checkpoint_every_secs < 0:
            raise ValueError("train.checkpoint_every_secs must be >= 0 (0 disables it)")
        check_literals(self, "train")
        if self.eval_every < 0 or self.eval_n < 0 or self.stop_after_no_improvement < 0:
            raise ValueError("train.eval_every, train.eval_n and train.stop_after_no_improvement "
                             "must be >= 0 (0: off / auto)")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"train.minutes must be > 0 (or none); got {self.minutes}")
        if self.stop_after_no_improvement and not self.eval_every:
            raise ValueError("train.stop_after_no_improvement needs periodic evaluation: set "
                             "train.eval_every too")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the spectrograms are and how to read them (specgan_jax.data).

    A file is one spectrogram: a CSV (no header, comma-separated) or a 2-D .npy array. By
    default rows = frequency bins (row 0 = lowest) and columns = time frames, 128 x 128
    (docs/data.md).
    """

    # Folder of *.csv / *.npy files (one class, named after the folder), or a folder of class
    # subfolders each holding such files (label = subfolder name, classes sorted).
    # None (and no file_list): the training CLI uses the procedural demo dataset.
    path: Optional[str] = None
    # Text file listing data file paths (.npy: a NumPy array, else CSV), one per line,
    # optionally "PATH<TAB>CLASS"; relative paths are relative to the list file's folder;
    # blank lines and lines starting with # ignored.
    # Used instead of `path` (set one of them).
    file_list: Optional[str] = None
    # "freq_rows": a file's rows are frequency bins (the usual layout); "time_rows": rows are
    # time frames, the file is transposed on load.
    orientation: Literal["freq_rows", "time_rows"] = "freq_rows"
    # Only files whose NAME matches this fnmatch glob (case-sensitive, e.g. 'window_*.csv'),
    # in the folders and in a file list; a folder's files must also end in .csv or .npy.
    # None: every .csv / .npy file.
    pattern: Optional[str] = None
    # "low_first": row 0 of a file (column 0 for time_rows) is the lowest frequency;
    # "high_first": the highest (many radio instruments), flipped on load so the model sees
    # low first; generated CSV / .npy output is written high first again.
    freq_order: Literal["low_first", "high_first"] = "low_first"
    # Drop the highest-frequency bin of every file on load, before the size check (the
    # Nyquist bin: a 256-point STFT's 129 bins become 128, as in the original SpecGAN).
    drop_top_row: bool = False
    # Frequency bins x time frames of a training example; the model's shape follows them
    # (multiples of 32). `--data.shape F T` sets both.
    n_freq: int = 128  # expected frequency bins per spectrogram
    n_time: int = 128  # expected time frames per spectrogram
    # What to do with a file of another size: "error" (default: a clear error naming the file)
    # or "crop_pad": keep the lowest n_freq bins / first n_time frames and pad missing ones
    # at the high-frequency / late end by repeating the last row / column (edge padding; a
    # constant 0 would be a meaningful value in log units).
    shape_policy: Literal["error", "crop_pad"] = "error"
    # Files with more than n_time frames (long recordings): "time" (default): each is a source
    # of random n_time-frame windows, drawn anew for every training example inside the step
    # (a file counts by its windows; docs/data.md); "off": such files follow shape_policy.
    # Frequency always follows shape_policy (crop_pad keeps the lowest n_freq bins).
    windows: Literal["time", "off"] = "time"
    # A malformed file: "error" stops with a message naming it; "skip" leaves it out and
    # reports it (Dataset.skipped, and the CLI prints the list).
    on_bad_file: Literal["error", "skip"] = "error"
    # log(x + log_eps) before the per-frequency moments, for linear-magnitude data
    # (train_specgan.py uses log(|X| + 1e-6)); generated output is mapped back with exp - eps.
    log_transform: bool = False
    log_eps: float = 1e-6
    # Per-frequency std floor, RELATIVE to the median per-frequency std (scale-free, so it
    # works for log and linear units alike): a (nearly) constant bin gets
    # std = std_floor * median(std) instead of ~1e-15, and a warning names the bins
    # (docs/seed-bugs.md, item 7: the seed's +1e-8 blew such a bin up to 1e15).
    std_floor: float = 1e-3
    # Folder of the parsed-data cache (one float32 .npy + JSON manifest per data source);
    # None: $XDG_CACHE_HOME/specgan_jax or ~/.cache/specgan_jax.
    cache_dir: Optional[str] = None
    use_cache: bool = True  # False: always parse, write no cache
    workers: int = 0  # parser processes; 0 = os.cpu_count()
    # dtype of the normalised dataset held on the device; "bfloat16" halves its memory
    # (values in [-1, 1] keep ~3 significant digits); batches are float32 either way.
    storage_dtype: Literal["float32", "bfloat16"] = "float32"

    def __post_init__(self):
        check_literals(self, "data")
        if self.path is not None and self.file_list is not None:
            raise ValueError("set data.path or data.file_list, not both")
        if self.n_freq < 1 or self.n_time < 1:
            raise ValueError("data.n_freq and data.n_time must be positive")
        if not self.log_eps > 0:
            raise ValueError(f"data.log_eps must be > 0; got {self.log_eps}")
        if not 0 <= self.std_floor < 1:
            raise ValueError(f"data.std_floor must be in [0, 1); got {self.std_floor}")
        if self.workers < 0:
            raise ValueError("data.workers must be >= 0")
        if self.pattern is not None and not self.pattern.strip():
            raise ValueError("data.pattern must not be empty (none: every .csv / .npy file)")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Per-sample augmentations of real batches, applied inside the jitted step in the
    normalised domain (specgan_jax.data.augment). Each has a probability per sample
    (`<transform>_prob`) and a strength (`<transform>_max` ...); all are off except the
    temporal shift the seed recommends (roll by up to +-30 frames of 128, seed §7, after the
    original's slice_randomize_offset). Order: stretch, shift, frequency mask, time mask, noise,
    then a clip to [-1, 1] (the range of real data and of G).

    The vocabulary and units are diffaug's too (specgan_jax.config.augment_keys): shifts and
    mask widths are fractions of their axis, round(fraction x length) frames or bins, so one
    setting means the same on any spectrogram shape; k/128 is exactly k frames of 128. An older
    config.json's names and frame counts are read as these (k frames -> k / 128).
    """

    time_shift_prob: float = 1.0  # probability of a temporal shift
    # shift ~ U{-s, ..., s} frames, s = round(time_shift_max x frames) (0 = off); the
    # default is 30 of 128 frames.
    time_shift_max: float = 30 / 128
    # "roll": wrap around (the seed's np.roll); "pad": frames shifted out are lost and the
    # gap is filled with 0 (= the per-frequency mean in the normalised domain).
    time_shift_mode: Literal["roll", "pad"] = "roll"
    noise_prob: float = 0.0  # probability of additive Gaussian noise
    noise_std: float = 0.05  # its std, in normalised units (the seed's 0.05 was in raw units)
    freq_mask_prob: float = 0.0  # SpecAugment frequency mask (Park et al. 2019)
    # mask width ~ U{0, ..., round(freq_mask_max x bins)} bins, filled with 0 (10 of 128)
    freq_mask_max: float = 10 / 128
    time_mask_prob: float = 0.0  # SpecAugment time mask
    # mask width ~ U{0, ..., round(time_mask_max x frames)} frames, filled with 0 (10 of 128)
    time_mask_max: float = 10 / 128
    time_stretch_prob: float = 0.0  # time stretch (resample the time axis, centre crop/pad)
    time_stretch_min: float = 0.9  # stretch rate ~ U(min, max) (seed: 0.9-1.1)
    time_stretch_max: float = 1.1

    def __post_init__(self):
        check_transforms(self, "augment")
        check_literals(self, "augment")

    @staticmethod
    def upgrade_old_keys(given: dict) -> dict:
        """A config.json section in the current names (specgan_jax.config.augment_keys)."""
        return upgrade_old_keys("augment", given,
                                {f.name for f in dataclasses.fields(AugmentConfig)})
