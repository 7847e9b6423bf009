"""Feature spaces for the Fréchet distance and KID that need no download.

The original SpecGAN scored samples with an SC09 classifier; our users have their own data, so
the feature extractor is built here, on the user's data, offline:

  "classifier":   a small CNN trained on the labelled real reference split (when the data has
                  more than one class) -- the original's `incept` idea. Features are its
                  penultimate layer; its softmax gives the Inception-style score and the class
                  distribution of generated samples.
  "random_conv":  the same network with fixed random weights (seed RANDOM_FEATURES_SEED), when
                  there are no classes. Random convolutional features are a usable embedding
                  for FD/KID-style comparisons (Naeem et al. 2020, "Reliable Fidelity and
                  Diversity Metrics for Generative Models", §4 random embeddings); the weights
                  do not depend on the data or on the evaluation seed, so values from different
                  runs and datasets share one feature space.

Input: normalised spectrograms [N, F, T] in [-1, 1] (specgan_jax.normalize), F = frequency.
A frequency-coordinate channel is stacked onto the input (CoordConv, Liu et al. 2018): the
convolutions and the global average pool are translation invariant, but a spectrogram's
content at 200 Hz is not the same sound as at 2 kHz, so features must see *where* in
frequency something is.

The trained classifier is cached next to the run (`<run>/eval/classifier-<hash>.msgpack` +
`.json`), keyed by a hash of its training data and options, so periodic evaluation during
training and later `scripts/evaluate.py` calls do not retrain it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from typing import Callable, Optional

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from specgan_jax import atomic
from specgan_jax.engine.compile import jit
from specgan_jax.engine.sampling import map_padded

FEATURES_VERSION = 1  # part of the cache key: bump when the architecture or training changes
RANDOM_FEATURES_SEED = 0  # the random_conv weights (fixed: one feature space for every run)
CLASSIFIER_INIT_SEED = 0  # the classifier's initialisation and batch order
WIDTHS = (16, 32, 64, 64)  # conv channels; the feature dimension is the last one
FEATURE_BATCH = 64  # samples per feature-extraction call (fixed shape: one compile)


def _net(n_classes: int):
    class FeatureNet(nn.Module):
        """[B, F, T] normalised -> (features [B, WIDTHS[-1]], logits [B, n_classes] or None)."""

        @nn.compact
        def __call__(self, x):
            b, f, t = x.shape
            coord = jnp.broadcast_to(jnp.linspace(-1.0, 1.0, f)[None, :, None], (b, f, t))
            h = jnp.stack([x, coord], axis=-1)  # [B, F, T, 2]: values + frequency coordinate
            for i, w in enumerate(WIDTHS):
                # 3x3 stride 2: [B,128,128,2] -> [B,64,64,16] -> 32 -> 16 -> [B,8,8,64].
                # He init keeps the activation scale through the ReLUs for random weights.
                h = nn.relu(nn.Conv(w, (3, 3), strides=(2, 2), padding="SAME",
                                    kernel_init=nn.initializers.he_normal(),
                                    name=f"conv_{i}")(h))
            feats = h.mean(axis=(1, 2))  # global average pool -> [B, C]
            logits = nn.Dense(n_classes, name="head")(feats) if n_classes > 1 else None
            return feats, logits

    return FeatureNet()


@dataclasses.dataclass
class FeatureSpace:
    """A feature extractor for normalised spectrograms.

    kind: "classifier" or "random_conv". features(x) -> [N, D] float64; probs(x) -> [N, C]
    class probabilities (classifier only, else None). info: what to report (accuracies,
    training steps, cache file).
    """

    kind: str
    dim: int
    class_names: list
    info: dict
    _apply: Callable = dataclasses.field(repr=False, default=None)

    def _run(self, x: np.ndarray):
        x = np.asarray(x, np.float32)
        if x.ndim != 3:
            raise ValueError(f"features expect [N, F, T] normalised spectrograms; got {x.shape}")
        if not len(x):
            return np.zeros((0, self.dim)), None
        feats, logits = map_padded(self._apply, x, FEATURE_BATCH)
        return (feats.astype(np.float64),
                None if logits is None else logits.astype(np.float64))

    def features(self, x: np.ndarray) -> np.ndarray:
        return self._run(x)[0]

    def features_and_probs(self, x: np.ndarray):
        """(features [N, D], class probabilities [N, C] or None)."""
        feats, logits = self._run(x)
        if logits is None:
            return feats, None
        z = logits - logits.max(1, keepdims=True)
        p = np.exp(z)
        return feats, p / p.sum(1, keepdims=True)


@functools.lru_cache(maxsize=None)
def _apply_fn(n_classes: int):
    """The jitted FeatureNet forward pass for n_classes (params an argument): one function per
    class count, so every classifier of that many classes shares its compilations."""
    net = _net(n_classes)
    return jit(lambda p, x: net.apply(p, x))


def _jit_apply(params):
    fn = _apply_fn(net_classes(params))
    return lambda x: fn(params, x)


def net_classes(params) -> int:
    """The class count of FeatureNet params (0: no head, the random features)."""
    head = params["params"].get("head")
    return 0 if head is None else int(head["bias"].shape[0])


def predict(params, x: np.ndarray) -> np.ndarray:
    """Predicted classes [N] of a trained classifier for normalised x [N, F, T]."""
    logits = map_padded(_jit_apply(params), np.asarray(x, np.float32), FEATURE_BATCH)[1]
    return logits.argmax(1)


def random_features(n_freq: int = 128, n_time: int = 128) -> FeatureSpace:
    """The fixed, seeded random convolutional feature extractor."""
    net = _net(0)
    params = net.init(jax.random.PRNGKey(RANDOM_FEATURES_SEED),
                      np.zeros((1, n_freq, n_time), np.float32))
    return FeatureSpace(kind="random_conv", dim=WIDTHS[-1], class_names=[],
                        info={"seed": RANDOM_FEATURES_SEED, "widths": list(WIDTHS)},
                        _apply=_jit_apply(params))


@dataclasses.dataclass(frozen=True)
class ClassifierOptions:
    steps: int = 200  # Adam updates
    batch_size: int = 32
    lr: float = 1e-3


def _data_hash(x: np.ndarray, labels: np.ndarray, class_names, opts: ClassifierOptions) -> str:
    h = hashlib.sha1()
    h.update(json.dumps({"version": FEATURES_VERSION, "widths": WIDTHS,
                         "init_seed": CLASSIFIER_INIT_SEED, "classes": list(class_names),
                         "opts": dataclasses.asdict(opts), "shape": list(x.shape)}).encode())
    h.update(np.ascontiguousarray(x, np.float32).tobytes())
    h.update(np.ascontiguousarray(labels, np.int32).tobytes())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _train_step(n_classes: int, lr: float):
    """(optax transform, jitted Adam step) of the classifier: one per (classes, lr), so the
    classifiers of one evaluation (several seeds, several training sets) share compilations."""
    net = _net(n_classes)
    tx = optax.adam(lr)

    @jit
    def step(params, opt_state, xb, yb):
        def loss_fn(p):
            _, logits = net.apply(p, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return tx, step


def train_classifier(x: np.ndarray, labels: np.ndarray, n_classes: int,
                     opts: ClassifierOptions = ClassifierOptions(),
                     seed: int = CLASSIFIER_INIT_SEED):
    """Train the FeatureNet classifier on x [N, F, T] (normalised) / labels [N] -> params.

    Softmax cross-entropy, Adam, `opts.steps` minibatches of min(batch_size, N) drawn without
    replacement within each pass over the data; initialisation and order from `seed`:
    deterministic.
    """
    net = _net(n_classes)
    x = np.asarray(x, np.float32)
    labels = np.asarray(labels, np.int32)
    params = net.init(jax.random.PRNGKey(seed), x[:1])
    tx, step = _train_step(n_classes, float(opts.lr))
    opt_state = tx.init(params)
    rng = np.random.default_rng(seed)
    bs = min(opts.batch_size, len(x))
    order, pos = rng.permutation(len(x)), 0
    for _ in range(opts.steps):
        if pos + bs > len(order):
            order, pos = rng.permutation(len(x)), 0
        idx = order[pos:pos + bs]
        pos += bs
        params, opt_state, _ = step(params, opt_state, x[idx], labels[idx])
    return net, params


def classifier_features(ref_x: np.ndarray, ref_labels: np.ndarray, class_names: list,
                        held_x: np.ndarray, held_labels: np.ndarray,
                        opts: ClassifierOptions = ClassifierOptions(),
                        cache_dir: Optional[str] = None,
                        log: Callable[[str], None] = lambda s: None) -> FeatureSpace:
    """The classifier feature space: trained on (ref_x, ref_labels), or loaded from
    `cache_dir` when a classifier for exactly this data and these options is there.
    Accuracies on the training and held-out data go into `info`."""
    n_classes = len(class_names)
    key = _data_hash(ref_x, ref_labels, class_names, opts)
    net = _net(n_classes)
    params, cache_file = None, None
    if cache_dir is not None:
        cache_file = os.path.join(cache_dir, f"classifier-{key}.msgpack")
        if os.path.exists(cache_file):
            target = net.init(jax.random.PRNGKey(CLASSIFIER_INIT_SEED),
                              np.zeros((1,) + ref_x.shape[1:], np.float32))
            try:
                with open(cache_file, "rb") as fh:
                    params = flax.serialization.from_bytes(target, fh.read())
                log(f"classifier: loaded {cache_file}")
            except (ValueError, KeyError, OSError) as e:
                log(f"classifier: cache {cache_file} unreadable ({e}); retraining")
                params = None
    trained = params is None
    if trained:
        log(f"classifier: training on {len(ref_x)} spectrograms, {n_classes} classes, "
            f"{opts.steps} steps")
        net, params = train_classifier(ref_x, ref_labels, n_classes, opts)
    space = FeatureSpace(kind="classifier", dim=WIDTHS[-1], class_names=list(class_names),
                         info={}, _apply=_jit_apply(params))
    train_acc = float((space.features_and_probs(ref_x)[1].argmax(1) == ref_labels).mean())
    held_acc = float((space.features_and_probs(held_x)[1].argmax(1) == held_labels).mean())
    space.info = {"train_accuracy": train_acc, "heldout_accuracy": held_acc,
                  "chance_accuracy": float(np.bincount(held_labels, minlength=n_classes).max()
                                           / max(len(held_labels), 1)),
                  "steps": opts.steps, "batch_size": opts.batch_size, "lr": opts.lr,
                  "widths": list(WIDTHS), "hash": key, "cache_file": cache_file,
                  "loaded_from_cache": not trained}
    if trained and cache_file is not None:
        atomic.write_bytes(cache_file, flax.serialization.to_bytes(params))
        atomic.write_bytes(cache_file[:-len(".msgpack")] + ".json", (json.dumps(
            {k: v for k, v in space.info.items() if k != "loaded_from_cache"}
            | {"class_names": list(class_names), "n_train": int(len(ref_x)),
               "version": FEATURES_VERSION}, indent=2) + "\n").encode())
    return space
