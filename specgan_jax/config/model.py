"""What is trained: the generator and critic, the GAN objective, the optimizers (the original SpecGAN's
defaults unless a comment says otherwise)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal, Optional

from specgan_jax.config.checks import LOSSES, check_literals
from specgan_jax.errors import ConfigError


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
    #            which XLA:CPU lowers to slow generic code (docs/performance.md).
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
    # One class-conditional model for all classes of the data (one folder per class): G joins
    # a learned class code to z, the critic is a projection discriminator (engine.models).
    conditional: bool = False
    # Number of classes of a conditional model; 0 for unconditional, and "take it from the
    # data" on the command line (training fills it in before writing config.json).
    n_classes: int = 0
    # Spectral normalisation of the critic (Miyato et al. 2018), meant for loss.loss=hinge: each
    # conv kernel and the `output` kernel divided by its largest singular value, estimated by
    # sn_iterations power iterations from a fixed start vector in every forward pass (stateless;
    # engine/spectral_norm.py). Not the class projection (conditional), never the generator.
    spectral_norm: bool = False
    sn_iterations: int = 10  # power iterations per weight and forward pass (spectral_norm)
    # Frequency rows x time frames of G's output and D's input: filled from data.shape (or
    # --data.n_freq / --data.n_time) when a run's config is resolved, so config.json records
    # them and a checkpoint plus it rebuilds the model. Each a multiple of SHAPE_STEP = 32: G
    # starts from [n_freq / 32, n_time / 32] and doubles both 5 times (config.json files from
    # before this option hold neither: 128 x 128, the only shape there was).
    n_freq: int = 128
    n_time: int = 128

    def __post_init__(self):
        check_literals(self, "model")
        bad = shape_message(self.n_freq, self.n_time, "model.n_freq x model.n_time")
        if bad:
            raise ValueError(bad)
        if self.latent_dim < 1 or self.dim < 1:
            raise ValueError("model.latent_dim and model.dim must be positive")
        if self.kernel_len != 5 and self.conv_impl in ("phase", "hybrid"):
            raise ValueError(f"model.conv_impl={self.conv_impl!r} is derived for kernel_len=5; "
                             "use 'xla'")
        if self.kernel_len < 1:
            raise ValueError("model.kernel_len must be positive")
        if self.n_classes < 0:
            raise ValueError(f"model.n_classes must be >= 0; got {self.n_classes}")
        if self.n_classes and not self.conditional:
            raise ValueError(f"model.n_classes={self.n_classes} needs model.conditional=True "
                             "(an unconditional model has no classes; leave n_classes at 0)")
        if self.conditional and self.n_classes == 1:  # 0: not yet known (filled from the data)
            raise ValueError(needs_classes_message(self.n_classes))
        if self.sn_iterations < 1:
            raise ConfigError(f"model.sn_iterations must be >= 1; got {self.sn_iterations}")


# The stride-2 layers of G (upconv_0..4) and of D (downconv_0..4), as specgan.py: each axis of
# an example is halved STRIDE_LAYERS times down to the generator's seed, so it must be a
# multiple of SHAPE_STEP.
STRIDE_LAYERS = 5
SHAPE_STEP = 2 ** STRIDE_LAYERS


def _nearest(n: int) -> str:
    lo = n // SHAPE_STEP * SHAPE_STEP
    return f"{lo} or {lo + SHAPE_STEP}" if lo else f"{SHAPE_STEP}"


def shape_message(n_freq: int, n_time: int, option: str) -> str:
    """"" for a shape the model can make, else the one-line error naming `option` and, per
    axis that does not fit, the nearest sizes it can make."""
    bad = [(axis, n) for axis, n in (("frequency", n_freq), ("time", n_time))
           if n < 1 or n % SHAPE_STEP]
    if not bad:
        return ""
    near = "; ".join(f"{axis} {n} -> {_nearest(max(n, 0))}" for axis, n in bad)
    return (f"{option} = {n_freq} x {n_time}: SpecGAN halves each axis {STRIDE_LAYERS} times "
            f"(stride-2 layers), so each must be a multiple of {SHAPE_STEP}; nearest it can "
            f"make: {near}")


def needs_classes_message(n_classes: int) -> str:
    """The error for a conditional model without at least 2 classes (config and model build)."""
    return (f"a conditional model needs data with at least 2 classes (one class folder per "
            f"class); model.n_classes={n_classes}")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """GAN objective and the critic schedule (train_specgan.py)."""

    # GAN objective (default: the original's). "ns-r1": non-saturating logistic loss + R1 on
    # reals (Mescheder et al. 2018; StyleGAN2); "hinge": hinge loss with TTUR (engine/losses.py).
    loss: Literal[LOSSES] = "wgan-gp"
    gp_lambda: float = 10.0  # WGAN-GP penalty weight (Gulrajani et al. 2017; LAMBDA = 10)
    clip: float = 0.01  # wgan: every D variable clipped to [-clip, clip] after each D update
    # dcgan only: two-sided label smoothing as in the seed's loop (real ~ U(0.8, 1),
    # fake ~ U(0, 0.2), drawn per example); the original uses hard labels.
    label_smoothing: bool = False
    # D updates per G update. None: the loss's default, filled in at construction: 5 for the
    # original's losses (specgan_disc_nupdates), 1 for ns-r1 (StyleGAN2) and hinge (SAGAN, with
    # TTUR in place of extra critic updates).
    n_critic: Optional[int] = None
    # ns-r1 only: the R1 weight gamma in (gamma/2) E||grad_x D(x_real)||^2. None: 10, the value of
    # Mescheder et al. 2018 (GAN_stability: a conv critic without equalized lr, data in [-1, 1],
    # 64-256 px, batch 64, lr 1e-4: the setting closest to this one). StyleGAN2's heuristic
    # 0.0002 res^2 / batch gives 0.05 at 128x128 and batch 64, for its equalized-lr residual
    # critic: the low end of a sweep. Larger gamma: a smoother, slower-learning critic.
    r1_gamma: Optional[float] = None
    # ns-r1 only: lazy R1 (StyleGAN2): the penalty on every r1_every-th critic update, its weight
    # multiplied by r1_every. None: 1 (every update; StyleGAN2 uses 16 to save its cost).
    r1_every: Optional[int] = None
    latent_dist: Literal["uniform", "normal"] = "uniform"  # original: z ~ U(-1, 1)
    # Conditional models: the class distribution of training. "frequency": real batches draw
    # examples uniformly (classes by their frequency), the critic updates' fakes take their
    # real batch's classes and the generator update's are drawn from the same frequencies.
    # "uniform": real batches draw a class uniformly, then an example of it, and the fakes
    # follow (rare classes trained as often as common ones).
    fake_classes: Literal["frequency", "uniform"] = "frequency"
    # Conditional models: transitional conditioning (Shahbazi et al. 2022, "Collapse by
    # Conditioning: Training Class-conditional GANs with Limited Data"). The class terms of G
    # (its class code) and D (the projection) are scaled by
    # lam = clip((step - cond_start) / cond_ramp, 0, 1): the model trains unconditionally until
    # generator step cond_start, then the conditioning fades in over cond_ramp steps. On small
    # data a model conditioned from the start collapsed within each class
    # (docs/conditional.md). 0 and 0: conditioned from the first step. None (auto): scripts/train.py
    # fixes them when a run starts, for a conditional model COND_START_FRACTION and
    # COND_RAMP_FRACTION of train.steps (the measured 300 and 200 of 800 steps), else 0; the
    # engine on its own reads None as 0.
    cond_start: Optional[int] = None
    cond_ramp: Optional[int] = None

    N_CRITIC_DEFAULTS: ClassVar[dict] = {"ns-r1": 1, "hinge": 1}  # else 5
    R1_GAMMA_DEFAULT: ClassVar[float] = 10.0
    COND_START_FRACTION: ClassVar[float] = 3 / 8
    COND_RAMP_FRACTION: ClassVar[float] = 1 / 4

    @property
    def transitional(self) -> bool:
        return bool(self.cond_start) or bool(self.cond_ramp)

    def __post_init__(self):
        check_literals(self, "loss")
        if self.n_critic is None:  # frozen: fill in the loss's default once, at construction
            object.__setattr__(self, "n_critic", self.N_CRITIC_DEFAULTS.get(self.loss, 5))
        if self.n_critic < 1:
            raise ValueError("loss.n_critic must be >= 1")
        self._check_r1()
        if (self.cond_start or 0) < 0 or (self.cond_ramp or 0) < 0:
            raise ValueError("loss.cond_start and loss.cond_ramp must be >= 0")
        if self.label_smoothing and self.loss != "dcgan":
            raise ValueError("loss.label_smoothing applies to loss='dcgan' only")

    def _check_r1(self):
        given = [n for n in ("r1_gamma", "r1_every") if getattr(self, n) is not None]
        if self.loss != "ns-r1":
            if given:
                raise ConfigError(f"loss.{given[0]} applies to loss='ns-r1' only; got "
                                  f"loss={self.loss!r}")
            return
        if self.r1_gamma is None:
            object.__setattr__(self, "r1_gamma", self.R1_GAMMA_DEFAULT)
        if self.r1_every is None:
            object.__setattr__(self, "r1_every", 1)
        if not self.r1_gamma >= 0:
            raise ConfigError(f"loss.r1_gamma must be >= 0; got {self.r1_gamma}")
        if self.r1_every < 1:
            raise ConfigError(f"loss.r1_every must be >= 1; got {self.r1_every}")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Optimizers. `None` means the original's setting for the chosen loss:

    wgan-gp: Adam(1e-4, b1=0.5, b2=0.9)    dcgan: Adam(2e-4, b1=0.5, b2=0.999)
    lsgan:   RMSProp(1e-4)                 wgan:  RMSProp(5e-5)
    ns-r1:   Adam(1e-4, b1=0, b2=0.99)     hinge: Adam(g 1e-4, d 4e-4, b1=0, b2=0.9) (TTUR)
    RMSProp follows TF (decay 0.9, accumulator starting at ones).

    lr_decay "linear": both learning rates stay constant for the first `decay_start` of
    `decay_steps` generator steps, then fall linearly to 0 at `decay_steps` (the schedule of
    CycleGAN, Zhu et al. 2017: constant for half the run, then linear to zero). The critic's
    schedule runs over its own updates (n_critic per generator step), so both reach 0 together.
    decay_steps None: train.steps, settled when the config is resolved and kept on resume.
    "none" (the original's): constant rates.
    """

    optimizer: Optional[Literal["adam", "rmsprop"]] = None
    g_lr: Optional[float] = None
    d_lr: Optional[float] = None
    beta1: Optional[float] = None  # Adam only
    beta2: Optional[float] = None  # Adam only
    lr_decay: Literal["none", "linear"] = "none"
    decay_start: float = 0.5  # fraction of decay_steps
    decay_steps: Optional[int] = None

    def __post_init__(self):
        check_literals(self, "optim")
        for name in ("g_lr", "d_lr"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"optim.{name} must be > 0; got {v}")
        if not 0 <= self.decay_start < 1:
            raise ValueError(f"optim.decay_start must be in [0, 1); got {self.decay_start}")
        if self.decay_steps is not None and self.decay_steps < 1:
            raise ValueError(f"optim.decay_steps must be >= 1; got {self.decay_steps}")
