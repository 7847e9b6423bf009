"""One resolution of a Config: every "auto" / None option settled, and the checks that involve
several sections, before anything is computed.

A Config as given (defaults, presets, --config files, flags) leaves some options to be decided
from the data or the machine. `resolve` settles all of them in one place, so that what
`scripts/train.py --dry-run` prints, what training computes with and what config.json records
are the same values:

    model.n_classes        the data's classes (conditional models; 0 otherwise)
    model.n_freq, n_time   the example shape, data.n_freq x data.n_time (--data.shape F T)
    model.conv_impl        "auto" -> the platform's fastest (`auto_conv_impl`)
    loss.cond_start/_ramp  None -> fractions of train.steps (conditional), else 0; a resumed
                           run keeps the values of its config.json
    optim.*                None -> the original's settings for the loss (OPTIMIZER_DEFAULTS)
    optim.decay_steps      None -> train.steps under lr_decay (a resumed run keeps its own)
    ema.kimg               None -> batch_size * 10 / 32 (StyleGAN2-ADA's automatic half-life)
    diffaug.ada_target     None -> 0.3 for the "heldout" signal, 0.6 for "midpoint"
    train.loop             "auto" -> "scan"

Machine-specific options stay as given (data.cache_dir None, data.workers 0): recording one
machine's home folder or core count would make the run's config differ on another machine.

`check_options` (the config alone) and `check_platform` (the config and the devices) raise a
ConfigError naming the options, so the CLI reports such a mistake before reading any data.
The engine keeps its own checks for library use, and reads None / "auto" as the same defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from specgan_jax.config.model import LossConfig, ModelConfig, OptimConfig, shape_message
from specgan_jax.errors import ConfigError

# Settings per loss: (optimizer, g_lr, d_lr, beta1, beta2). The original's (train_specgan.py)
# for its four losses.
# ns-r1: StyleGAN2's Adam betas (0, 0.99). Its lr 0.002 is for equalized-lr layers (unit-scale
# weights, rescaled by 1/sqrt(fan_in) in the forward), where Adam's steps of ~lr are relative
# steps of ~lr; with this model's standard parametrisation (weights ~ 1/sqrt(fan_in) = 0.025 for
# a 5x5x64 kernel) the original's 1e-4 is a relative step of 0.004, the same order (and
# Mescheder et al.'s lr).
# hinge: TTUR (Heusel et al. 2017) as SAGAN (Zhang et al. 2019) uses it with the hinge loss:
# d_lr = 4 g_lr = 4e-4, Adam betas (0, 0.9).
OPTIMIZER_DEFAULTS = {
    "wgan-gp": ("adam", 1e-4, 1e-4, 0.5, 0.9),
    "dcgan": ("adam", 2e-4, 2e-4, 0.5, 0.999),
    "lsgan": ("rmsprop", 1e-4, 1e-4, None, None),
    "wgan": ("rmsprop", 5e-5, 5e-5, None, None),
    "ns-r1": ("adam", 1e-4, 1e-4, 0.0, 0.99),
    "hinge": ("adam", 1e-4, 4e-4, 0.0, 0.9),
}


@dataclasses.dataclass(frozen=True)
class DataSummary:
    """What resolution needs to know of the data: its class names (sorted folder names, or a
    file list's classes) and how many files each holds. Cheap to get: no CSV is parsed."""

    class_names: tuple[str, ...]
    counts: tuple[int, ...]  # files per class, in class_names' order

    @classmethod
    def from_labels(cls, class_names: Sequence[str], labels: Sequence[int]) -> "DataSummary":
        counts = [0] * len(class_names)
        for k in labels:
            counts[int(k)] += 1
        return cls(tuple(class_names), tuple(counts))

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


@dataclasses.dataclass(frozen=True)
class Platform:
    """The devices a run computes on: JAX's backend ("cpu", "gpu", "tpu") and the number of
    devices (of every process, after jax.distributed.initialize)."""

    backend: str
    device_count: int

    @classmethod
    def detect(cls) -> "Platform":
        """This process's JAX platform. Initialises JAX's backend: call it after
        jax.distributed.initialize in a multi-host run."""
        import jax  # not a module-level import: the config layer loads without JAX

        return cls(jax.default_backend(), jax.device_count())


def resolved_optimizer(loss_cfg: LossConfig, optim_cfg: OptimConfig) -> dict:
    """The optimizer settings actually used: the config's, else the original's for the loss
    (beta1/beta2 None for RMSProp, which has none). Each option given explicitly wins on its
    own."""
    name, g_lr, d_lr, b1, b2 = OPTIMIZER_DEFAULTS[loss_cfg.loss]
    name = optim_cfg.optimizer or name
    if name == "adam":
        b1 = optim_cfg.beta1 if optim_cfg.beta1 is not None else (b1 if b1 is not None else 0.9)
        b2 = optim_cfg.beta2 if optim_cfg.beta2 is not None else (b2 if b2 is not None else 0.999)
    else:
        b1 = b2 = None
    return {
        "optimizer": name,
        "g_lr": optim_cfg.g_lr if optim_cfg.g_lr is not None else g_lr,
        "d_lr": optim_cfg.d_lr if optim_cfg.d_lr is not None else d_lr,
        "beta1": b1,
        "beta2": b2,
    }


def auto_conv_impl(model: ModelConfig, platform: Platform) -> str:
    """model.conv_impl, with "auto" decided for `platform`: "xla" for a kernel_len other than
    5 (the phase rewrite is derived for 5 taps), "hybrid" on a single CPU device, "phase"
    elsewhere: sharded over several devices hybrid's gradients were measured wrong
    (`check_platform`), and on GPU/TPU "phase" is the default (docs/performance.md)."""
    if model.conv_impl != "auto":
        return model.conv_impl
    if model.kernel_len != 5:
        return "xla"
    single_cpu = platform.backend == "cpu" and platform.device_count == 1
    return "hybrid" if single_cpu else "phase"


def batch_divisibility_message(batch_size: int, n_devices: int,
                               what: str = "train.batch_size (--batch-size)") -> str:
    """The error for a global batch that the data-parallel devices cannot split evenly."""
    lower = batch_size // n_devices * n_devices
    fits = f"{lower} or {lower + n_devices}" if lower else f"{n_devices}"
    return (f"{what} {batch_size} is not divisible by the {n_devices} devices: data "
            f"parallelism splits every batch evenly over the devices (the mesh's 'data' axis). "
            f"Use a multiple of {n_devices}, e.g. {fits}.")


def check_shape(config) -> None:
    """The example shape (data.n_freq x data.n_time) is one the model can make, and the model
    section does not contradict it (ConfigError). model.n_freq / n_time follow the data's
    when resolved; the model's own fields are either that shape or their default."""
    d, m = config.data, config.model
    bad = shape_message(d.n_freq, d.n_time, "data.shape (--data.shape F T)")
    if bad:
        raise ConfigError(bad)
    given = (m.n_freq, m.n_time)
    if given not in ((ModelConfig.n_freq, ModelConfig.n_time), (d.n_freq, d.n_time)):
        raise ConfigError(f"model.n_freq x model.n_time = {given[0]} x {given[1]} differs from "
                          f"data.shape {d.n_freq} x {d.n_time}: the model's shape follows the "
                          "data's; set --data.shape F T only")


def settle_shape(config):
    """`config` with model.n_freq / n_time set from the data section, after check_shape."""
    check_shape(config)
    d = config.data
    return dataclasses.replace(config, model=dataclasses.replace(
        config.model, n_freq=d.n_freq, n_time=d.n_time))


def check_options(config) -> None:
    """Checks between sections that need nothing but the config (ConfigError)."""
    check_shape(config)
    lc = config.loss
    if lc.transitional and not config.model.conditional:
        given = [f"loss.{k}={getattr(lc, k)}" for k in ("cond_start", "cond_ramp")
                 if getattr(lc, k)]
        raise ConfigError(
            f"{' and '.join(given)}: transitional conditioning applies to conditional models "
            "only; add --model.conditional, or leave loss.cond_start / loss.cond_ramp unset")


def check_platform(config, platform: Platform) -> None:
    """Checks of the config against the devices it will run on (ConfigError)."""
    n = platform.device_count
    if config.train.batch_size % n:
        raise ConfigError(batch_divisibility_message(config.train.batch_size, n))
    if n > 1 and config.model.conv_impl == "hybrid":
        # Measured (tests/test_multidevice.py, 4 CPU devices): the sharded step with D's
        # custom-VJP convolutions drifts from the 1-device result by 0.14 after 2 steps,
        # while "phase" agrees to 1.5e-7; refused rather than trained wrong.
        raise ConfigError(f"model.conv_impl='hybrid' is single-device only for now (its "
                          f"sharded gradients disagree with one device), and this run has "
                          f"{n} devices: use --model.conv_impl phase (or auto)")


def _n_classes(model: ModelConfig, data: Optional[DataSummary]) -> int:
    """model.n_classes from the data for a conditional model (checked against an explicit
    one); 0 for an unconditional model."""
    if not model.conditional:
        return 0
    if data is None:
        if model.n_classes:
            return model.n_classes
        raise ValueError("resolving a conditional model's n_classes needs a DataSummary")
    k = data.n_classes
    if k < 2:
        raise ConfigError(
            f"model.conditional: the data has {k} class, and a conditional model learns one "
            "generator for several classes. Give --data a folder with one subfolder per class "
            "(e.g. data/type_1/*.csv, data/type_3/*.csv), or train without --model.conditional")
    if model.n_classes not in (0, k):
        raise ConfigError(f"model.n_classes={model.n_classes}, but the data has {k} "
                          f"classes ({', '.join(data.class_names)})")
    return k


def cond_schedule(config, saved_config=None) -> tuple[int, int]:
    """loss.cond_start / loss.cond_ramp with None (auto) fixed: a resumed run (saved_config:
    its config.json) keeps what it fixed when it started, so that raising --steps on resume
    does not move the schedule (None in runs from before the schedule existed: 0, as the
    engine read it); a new conditional run takes LossConfig.COND_START_FRACTION and
    COND_RAMP_FRACTION of train.steps; any other run 0."""
    lc = config.loss
    if saved_config is not None:
        start, ramp = saved_config.loss.cond_start or 0, saved_config.loss.cond_ramp or 0
    elif config.model.conditional:
        steps = config.train.steps
        start = round(lc.COND_START_FRACTION * steps)
        ramp = round(lc.COND_RAMP_FRACTION * steps)
    else:
        start = ramp = 0
    return (start if lc.cond_start is None else lc.cond_start,
            ramp if lc.cond_ramp is None else lc.cond_ramp)


def decay_steps(config, saved_config=None) -> Optional[int]:
    """optim.decay_steps with None fixed under lr_decay: train.steps for a new run; a resumed
    run keeps its own (as cond_schedule), so that raising --steps on resume does not restart
    the decay; None (unused) without lr_decay."""
    o = config.optim
    if o.lr_decay == "none" or o.decay_steps is not None:
        return o.decay_steps
    saved = saved_config.optim.decay_steps if saved_config is not None else None
    return saved if saved is not None else config.train.steps


def _settle(config, data: Optional[DataSummary], saved_config, platform: Optional[Platform]):
    """`config` with every auto / None option settled (no checks); platform None keeps
    model.conv_impl as given."""
    rep = dataclasses.replace
    model = rep(config.model, n_classes=_n_classes(config.model, data),
                n_freq=config.data.n_freq, n_time=config.data.n_time)
    if platform is not None:
        model = rep(model, conv_impl=auto_conv_impl(model, platform))
    start, ramp = cond_schedule(config, saved_config)
    ema = config.ema
    if ema.kimg is None:
        ema = rep(ema, kimg=config.train.batch_size * 10 / 32)
    train = config.train
    if train.loop == "auto":
        train = rep(train, loop="scan")
    return rep(config, model=model, loss=rep(config.loss, cond_start=start, cond_ramp=ramp),
               optim=OptimConfig(**resolved_optimizer(config.loss, config.optim),
                                 lr_decay=config.optim.lr_decay,
                                 decay_start=config.optim.decay_start,
                                 decay_steps=decay_steps(config, saved_config)),
               ema=ema, diffaug=rep(config.diffaug, ada_target=config.diffaug.target),
               train=train)


def resolve(config, data_summary: Optional[DataSummary] = None, saved_config=None,
            platform: Optional[Platform] = None):
    """The Config a run computes with: `config` checked (`check_options`, `check_platform`)
    and every auto / None option settled (module docstring).

    data_summary: the data's classes; needed for a conditional model only (None otherwise).
    saved_config: the run directory's config.json when resuming (its loss schedule is kept).
    platform: the devices; None: this process's (Platform.detect).
    Resolving a resolved config returns it unchanged.
    """
    platform = platform or Platform.detect()
    check_options(config)
    check_platform(config, platform)
    return _settle(config, data_summary, saved_config, platform)


def resolve_saved(saved_config):
    """A run directory's config.json as resolved when it was written, for comparing it with a
    resumed invocation's: the options that older versions left auto / None settled as they
    were then (model.conv_impl kept: it may change on resume)."""
    return _settle(saved_config, None, saved_config, None)
