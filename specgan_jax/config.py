"""Configuration: one dataclass per concern, each field documented, checked in __post_init__.

The CLI flags of scripts/train.py are generated from these dataclasses (one flag per field,
`--<section>.<field>`), the resolved config is saved with every run as `config.json`, and a
checkpoint plus that file rebuilds the models. Keep every field JSON-serialisable.

Defaults are the original SpecGAN's (chrisdonahue/wavegan: specgan.py, train_specgan.py)
unless a comment says otherwise.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

LOSSES = ("wgan-gp", "wgan", "dcgan", "lsgan")
# Metrics that can pick the best checkpoint (all but the last: lower is better).
EVAL_METRICS = ("fd", "kid", "ndb", "mean_rms", "std_rms", "inception_score")


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Generator and discriminator architecture (specgan.py)."""

    latent_dim: int = 100  # size of z; specgan.py uses 100
    dim: int = 64  # base channel count d: G goes 16d -> 8d -> 4d -> 2d -> d -> 1, D the reverse
    kernel_len: int = 5  # square kernel size of every (transposed) convolution
    use_batchnorm: bool = False  # BN in G (after z_project and upconv_0..3) and D (downconv_1..4)
    upsample: Literal["zeros", "nn"] = "zeros"  # zeros: transposed conv; nn: nearest x2 + conv
    # "same": TensorFlow 'SAME' semantics of the original (default).
    # "torch": the seed's symmetric PyTorch padding (padding=2; the generator's transposed convs
    #          with output_padding=1 so that it really produces 128x128), to import seed weights.
    padding: Literal["same", "torch"] = "same"
    # How the stride-2 (transposed) convolutions are computed; the parameters and the numbers
    # are the same either way (parity_tests check both):
    #   "xla":   lax.conv_general_dilated with lhs dilation / window strides (the textbook form);
    #   "phase": sub-pixel decomposition: a 3x3 stride-1 conv to 4x channels + depth-to-space for
    #            G, space-to-depth + 3x3 stride-1 conv for D. No dilated convolutions at all,
    #            which XLA:CPU lowers to slow generic code (README, "Performance").
    #   "hybrid": D's strided convs run natively, with custom VJPs that keep every derivative
    #            (the GP's double backward included) off the dilated path; G as "phase".
    #   "auto":  the fastest measured on the platform: "hybrid" on one CPU device, "phase" on
    #            several devices ("hybrid" is refused there) and on GPU/TPU, "xla" for a
    #            kernel_len other than 5 (docs/performance.md). config.json records the choice.
    conv_impl: Literal["auto", "xla", "phase", "hybrid"] = "auto"
    # Compute precision of G and D. "fp32": everything in float32 (the parity suite's setting).
    # "bf16": convolutions and dense layers take bfloat16 inputs and weights and accumulate in
    # float32 (bf16 tensor cores on GPU/TPU); parameters, optimizer states, batch norm,
    # activations between layers, losses and the gradient penalty's norms stay float32.
    precision: Literal["fp32", "bf16"] = "fp32"

    def __post_init__(self):
        _check_choice("model.upsample", self.upsample, ("zeros", "nn"))
        _check_choice("model.padding", self.padding, ("same", "torch"))
        _check_choice("model.conv_impl", self.conv_impl, ("auto", "xla", "phase", "hybrid"))
        _check_choice("model.precision", self.precision, ("fp32", "bf16"))
        if self.latent_dim < 1 or self.dim < 1:
            raise ValueError("model.latent_dim and model.dim must be positive")
        if self.kernel_len != 5 and self.conv_impl in ("phase", "hybrid"):
            raise ValueError(f"model.conv_impl={self.conv_impl!r} is derived for kernel_len=5; "
                             "use 'xla'")
        if self.kernel_len < 1:
            raise ValueError("model.kernel_len must be positive")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """GAN objective and the critic schedule (train_specgan.py)."""

    loss: Literal["wgan-gp", "wgan", "dcgan", "lsgan"] = "wgan-gp"  # GAN objective (default: the original's)
    gp_lambda: float = 10.0  # WGAN-GP penalty weight (Gulrajani et al. 2017; LAMBDA = 10)
    clip: float = 0.01  # wgan: every D variable clipped to [-clip, clip] after each D update
    # dcgan only: two-sided label smoothing as in the seed's loop (real ~ U(0.8, 1),
    # fake ~ U(0, 0.2), drawn per example); the original uses hard labels.
    label_smoothing: bool = False
    n_critic: int = 5  # D updates per G update (specgan_disc_nupdates)
    latent_dist: Literal["uniform", "normal"] = "uniform"  # original: z ~ U(-1, 1)

    def __post_init__(self):
        _check_choice("loss.loss", self.loss, LOSSES)
        _check_choice("loss.latent_dist", self.latent_dist, ("uniform", "normal"))
        if self.n_critic < 1:
            raise ValueError("loss.n_critic must be >= 1")
        if self.label_smoothing and self.loss != "dcgan":
            raise ValueError("loss.label_smoothing applies to loss='dcgan' only")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Optimizers. `None` means the original's setting for the chosen loss:

    wgan-gp: Adam(1e-4, b1=0.5, b2=0.9)    dcgan: Adam(2e-4, b1=0.5, b2=0.999)
    lsgan:   RMSProp(1e-4)                 wgan:  RMSProp(5e-5)
    RMSProp follows TF (decay 0.9, accumulator starting at ones).
    """

    optimizer: Optional[Literal["adam", "rmsprop"]] = None
    g_lr: Optional[float] = None
    d_lr: Optional[float] = None
    beta1: Optional[float] = None  # Adam only
    beta2: Optional[float] = None  # Adam only

    def __post_init__(self):
        if self.optimizer is not None:
            _check_choice("optim.optimizer", self.optimizer, ("adam", "rmsprop"))
        for name in ("g_lr", "d_lr"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"optim.{name} must be > 0; got {v}")


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
    # How a host call runs its steps: "scan": one jitted lax.scan over them (TrainFns.chunk);
    # "python": that many calls of the jitted step, dispatched asynchronously, metrics still
    # fetched once per call; "auto": "python" on CPU (the scan measured about as fast only
    # recently: README, "Performance"), "scan" elsewhere. Same numbers. Run control.
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
    # needs data with classes). Run control.
    eval_metric: Literal["fd", "kid", "ndb", "mean_rms", "std_rms", "inception_score"] = "fd"
    eval_n: int = 0  # generated samples per evaluation; 0 = the held-out split's size; run control

    # Fields that may differ between a run directory's config.json and a resumed invocation.
    RUN_CONTROL = (
        "steps", "steps_per_call", "loop", "log_every", "checkpoint_every", "checkpoint_every_secs",
        "keep_checkpoints", "preview_every", "tensorboard", "eval_every", "eval_metric", "eval_n",
    )

    def __post_init__(self):
        for name in ("steps", "batch_size", "steps_per_call", "log_every", "checkpoint_every",
                     "keep_checkpoints", "preview_every", "n_preview"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1; got {getattr(self, name)}")
        if self.checkpoint_every_secs < 0:
            raise ValueError("train.checkpoint_every_secs must be >= 0 (0 disables it)")
        _check_choice("train.loop", self.loop, ("auto", "scan", "python"))
        _check_choice("train.eval_metric", self.eval_metric, EVAL_METRICS)
        if self.eval_every < 0 or self.eval_n < 0:
            raise ValueError("train.eval_every and train.eval_n must be >= 0 (0: off / auto)")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the CSV spectrograms are and how to read them (specgan_jax.data).

    A CSV is one spectrogram, no header, comma-separated. By default rows = frequency bins
    (row 0 = lowest) and columns = time frames, 128 x 128 (README, "Your data").
    """

    # Folder of *.csv files (one class, named after the folder), or a folder of class
    # subfolders each holding *.csv files (label = subfolder name, classes sorted).
    # None (and no file_list): the training CLI uses the procedural demo dataset.
    path: Optional[str] = None
    # Text file listing CSV paths, one per line, optionally "PATH<TAB>CLASS"; relative paths
    # are relative to the list file's folder; blank lines and lines starting with # ignored.
    # Used instead of `path` (set one of them).
    file_list: Optional[str] = None
    # "freq_rows": CSV rows are frequency bins (the usual layout); "time_rows": rows are time
    # frames, the file is transposed on load.
    orientation: Literal["freq_rows", "time_rows"] = "freq_rows"
    n_freq: int = 128  # expected frequency bins per spectrogram (the generator makes 128)
    n_time: int = 128  # expected time frames per spectrogram
    # What to do with a file of another size: "error" (default: a clear error naming the file)
    # or "crop_pad": keep the lowest n_freq bins / first n_time frames and pad missing ones
    # at the high-frequency / late end by repeating the last row / column (edge padding; a
    # constant 0 would be a meaningful value in log units).
    shape_policy: Literal["error", "crop_pad"] = "error"
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
    # (README, "The seed's bugs, fixed", item 7: the seed's +1e-8 blew such a bin up to 1e15).
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
        _check_choice("data.orientation", self.orientation, ("freq_rows", "time_rows"))
        _check_choice("data.shape_policy", self.shape_policy, ("error", "crop_pad"))
        _check_choice("data.on_bad_file", self.on_bad_file, ("error", "skip"))
        _check_choice("data.storage_dtype", self.storage_dtype, ("float32", "bfloat16"))
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


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Per-sample augmentations of real batches, applied inside the jitted step in the
    normalised domain (specgan_jax.data.augment). Each has a probability (per sample) and a
    strength; all are off except the temporal shift the seed recommends (roll by up to ±30
    frames, seed §7, after the original's slice_randomize_offset). Order: stretch, shift,
    frequency mask, time mask, noise, then a clip to [-1, 1] (the range of real data and of G).
    """

    shift_prob: float = 1.0  # probability of a temporal shift
    shift_max: int = 30  # shift ~ U{-shift_max, ..., shift_max} frames (0 = off)
    # "roll": wrap around (the seed's np.roll); "pad": frames shifted out are lost and the
    # gap is filled with 0 (= the per-frequency mean in the normalised domain).
    shift_mode: Literal["roll", "pad"] = "roll"
    noise_prob: float = 0.0  # probability of additive Gaussian noise
    noise_std: float = 0.05  # its std, in normalised units (the seed's 0.05 was in raw units)
    freq_mask_prob: float = 0.0  # SpecAugment frequency mask (Park et al. 2019)
    freq_mask_max: int = 10  # mask width ~ U{0, ..., freq_mask_max} bins, filled with 0
    time_mask_prob: float = 0.0  # SpecAugment time mask
    time_mask_max: int = 10  # mask width ~ U{0, ..., time_mask_max} frames, filled with 0
    stretch_prob: float = 0.0  # time stretch (resample the time axis, centre crop/pad)
    stretch_min: float = 0.9  # stretch rate ~ U(stretch_min, stretch_max) (seed: 0.9-1.1)
    stretch_max: float = 1.1

    def __post_init__(self):
        for name in ("shift_prob", "noise_prob", "freq_mask_prob", "time_mask_prob",
                     "stretch_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1]; got {v}")
        _check_choice("augment.shift_mode", self.shift_mode, ("roll", "pad"))
        for name in ("shift_max", "freq_mask_max", "time_mask_max"):
            if getattr(self, name) < 0:
                raise ValueError(f"augment.{name} must be >= 0")
        if not self.noise_std >= 0:
            raise ValueError("augment.noise_std must be >= 0")
        if not 0 < self.stretch_min <= self.stretch_max:
            raise ValueError("augment.stretch_min/stretch_max must satisfy 0 < min <= max")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a training run needs; saved resolved as `<run dir>/config.json`.

    Sections map to CLI flags `--<section>.<field>` (specgan_jax.cli.flags); a checkpoint plus this
    file (and moments.npz) rebuilds the generator.
    """

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Sample-quality evaluation (specgan_jax.evaluation, scripts/evaluate.py; flags --eval.*).

    Not part of a run's config.json: evaluation never changes training. Periodic evaluation
    during training uses these defaults with seed = train.seed and n = train.eval_n.
    """

    # Seeds the real split, the generated samples' latents (sample i of seed S is the one
    # scripts/generate.py --seed S writes), the KID subsets and the k-means of NDB.
    seed: int = 0
    # Generated samples to evaluate; 0 = as many as the held-out real split. Equal sizes keep
    # the small-sample bias of the Fréchet distance equal to that of the real baseline.
    n: int = 0
    # At most this many real spectrograms per split (reference / held-out), chosen at random:
    # bounds time and memory (nearest neighbours cost N_gen x N_ref x F x T).
    max_real: int = 1000
    # "auto": a classifier trained on the real reference split when the data has > 1 class,
    # else fixed random convolutional features (specgan_jax.evaluation.features).
    feature_space: Literal["auto", "classifier", "random_conv"] = "auto"
    classifier_steps: int = 200  # Adam updates of the feature classifier (15-25 s on a 2-core CPU)
    classifier_batch_size: int = 32  # its minibatch size
    classifier_lr: float = 1e-3  # its Adam learning rate
    kid_subsets: int = 100  # KID: random subsets averaged (Bińkowski et al. 2018 use 100)
    # KID: samples per subset; 0 = auto: min(1000, half the smaller set), so that the subsets
    # differ and their spread (the reported std) means something (1000 as Bińkowski et al.).
    kid_subset_size: int = 0
    # NDB bins (k-means clusters of the real reference split); 0 = auto: one bin per
    # NDB_SAMPLES_PER_BIN (10) reference samples, within [2, 100] (the paper uses 100 bins for
    # tens of thousands of samples; the z-test needs several samples per bin).
    ndb_k: int = 0
    ndb_alpha: float = 0.05  # NDB: significance level of each bin's two-proportion z-test

    def __post_init__(self):
        _check_choice("eval.feature_space", self.feature_space,
                      ("auto", "classifier", "random_conv"))
        for name in ("n", "ndb_k", "kid_subset_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"eval.{name} must be >= 0 (0 = auto)")
        for name in ("max_real", "classifier_steps", "classifier_batch_size", "kid_subsets"):
            if getattr(self, name) < 1:
                raise ValueError(f"eval.{name} must be >= 1; got {getattr(self, name)}")
        if self.max_real < 4:
            raise ValueError("eval.max_real must be >= 4")
        if not self.classifier_lr > 0:
            raise ValueError("eval.classifier_lr must be > 0")
        if not 0 < self.ndb_alpha < 1:
            raise ValueError("eval.ndb_alpha must be in (0, 1)")


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """Multi-host training: one process per host, joined by jax.distributed.initialize().

    With `enabled`, jax.distributed.initialize() runs before any other JAX call and the
    training mesh spans every process's devices (README, "Multi-device and multi-host").
    Start the same command once per process (host). A field left unset here comes from the
    environment: JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID; whatever is still
    unset JAX detects on clusters it knows (Slurm, Open MPI, Cloud TPU, Kubernetes).
    These are launch options, not part of a run: they are not saved in config.json, so a run
    may be resumed on another number of hosts.
    """

    enabled: bool = False  # call jax.distributed.initialize (one process per host)
    # "HOST:PORT" of process 0, reachable from every process; None: $JAX_COORDINATOR_ADDRESS,
    # else auto-detected on a known cluster.
    coordinator_address: Optional[str] = None
    num_processes: Optional[int] = None  # processes in all; None: $JAX_NUM_PROCESSES or detected
    # This process, 0..num_processes-1 (0 writes the files); None: $JAX_PROCESS_ID or detected.
    process_id: Optional[int] = None
    initialization_timeout: int = 300  # seconds to wait for all processes to connect

    def __post_init__(self):
        if self.num_processes is not None and self.num_processes < 1:
            raise ValueError(f"distributed.num_processes must be >= 1; got {self.num_processes}")
        if self.process_id is not None and self.process_id < 0:
            raise ValueError(f"distributed.process_id must be >= 0; got {self.process_id}")
        if (self.process_id is not None and self.num_processes is not None
                and self.process_id >= self.num_processes):
            raise ValueError(f"distributed.process_id ({self.process_id}) must be < "
                             f"distributed.num_processes ({self.num_processes})")
        if self.coordinator_address is not None and ":" not in self.coordinator_address:
            raise ValueError("distributed.coordinator_address must be HOST:PORT; got "
                             f"{self.coordinator_address!r}")
        if self.initialization_timeout < 1:
            raise ValueError("distributed.initialization_timeout must be >= 1 second")


@dataclasses.dataclass(frozen=True)
class LaunchConfig:
    """Options of how this process is launched, as CLI flags only (not in config.json or
    --config files: they do not change what a run computes)."""

    distributed: DistributedConfig = dataclasses.field(default_factory=DistributedConfig)


# The no-argument demo run (scripts/train.py without --data): a small model that trains in
# minutes on a 2-core CPU; fields not given by --config/flags take these values. Why these
# departures from the SpecGAN defaults (upsample, learning rates, batch): docs/demo.md.
DEMO_PRESET = {
    "model": {"dim": 8, "upsample": "nn"},
    "optim": {"g_lr": 5e-4, "d_lr": 5e-4},
    "train": {"steps": 400, "batch_size": 8, "steps_per_call": 10, "log_every": 20,
              "checkpoint_every": 100, "preview_every": 100, "n_preview": 16},
}
