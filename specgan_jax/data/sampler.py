"""Device-resident dataset and the real-batch sampler used inside the jitted training step.

The whole normalised dataset is one device array (sharded over the devices' `data` axis;
docs/multi-device.md): batches are drawn with
jax.random inside jit and augmented there, so no step copies data host -> device.

Sampling is with replacement (independent uniform indices per critic update): it needs no
epoch bookkeeping inside jit, and over a 200k-step run every example is seen ~equally often.
(The original's tf.data pipeline shuffled epochs; the difference is immaterial at this scale.)
"""

from __future__ import annotations

from typing import Callable, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np

from specgan_jax.data import windows as windows_lib
from specgan_jax.data.augment import augment_batch
from specgan_jax.config import AugmentConfig
from specgan_jax.data.moments import Moments
from specgan_jax.data.normalize import normalize


@flax.struct.dataclass
class DeviceDataset:
    """x: [N_pad, F, T, 1] normalised spectrograms (float32 or bfloat16 storage);
    labels: [N_pad] int32; n: the number of real examples (static; rows >= n are padding
    added so N_pad divides the device count, and are never sampled); n_heldout: rows
    [n - n_heldout, n) are held out of training (ADA's overfitting signal compares the
    critic's scores on them with its scores on the training rows [0, n - n_heldout))."""

    x: jax.Array
    labels: jax.Array
    n: int = flax.struct.field(pytree_node=False)
    n_heldout: int = flax.struct.field(pytree_node=False, default=0)

    @property
    def n_train(self) -> int:
        """Rows [0, n_train) are sampled for training."""
        return self.n - self.n_heldout


def build_dataset(x_raw: np.ndarray, labels: np.ndarray, moments: Moments,
                  storage_dtype: str = "float32", chunk: int = 256,
                  heldout: Optional[np.ndarray] = None) -> DeviceDataset:
    """Raw [N, F, T] (np.memmap fine; normalised chunk by chunk) + labels -> host-side
    DeviceDataset ([N, F, T, 1] normalised, in storage_dtype). Put it on devices with
    `to_device`. heldout: indices of examples to hold out of training; they become the last
    rows (see DeviceDataset.n_heldout), the others keep their order."""
    n, f, t = x_raw.shape
    order = np.arange(n)
    n_heldout = 0
    if heldout is not None and len(heldout):
        held = np.zeros(n, bool)
        held[np.asarray(heldout)] = True
        order = np.concatenate([np.flatnonzero(~held), np.flatnonzero(held)])
        n_heldout = int(held.sum())
        if n_heldout >= n:
            raise ValueError(f"cannot hold out {n_heldout} of {n} examples: none left to train on")
    dtype = jnp.bfloat16 if storage_dtype == "bfloat16" else np.float32
    out = np.empty((n, f, t, 1), dtype)
    for s in range(0, n, chunk):
        rows = x_raw[order[s:s + chunk]] if n_heldout else x_raw[s:s + chunk]
        out[s:s + chunk, ..., 0] = normalize(np.asarray(rows), moments)
    return DeviceDataset(x=out, labels=np.asarray(labels, np.int32)[order], n=n,
                         n_heldout=n_heldout)


@flax.struct.dataclass
class WindowDataset:
    """Long files as sources of random windows (specgan_jax.data.windows), on the device.

    frames: [F, L_total] normalised frames of every file end to end (storage dtype).
    Window w (of all files' window starts, numbered file by file in `order`) is frames[:,
    s : s + n_time] with s = start[i] + w - cum[i] for the file i whose [cum[i], cum[i + 1])
    holds w: every window start of every file equally likely, so a file counts by its
    windows. start/cum/labels: [n_files] / [n_files + 1] / [n_files], files in the order
    training files grouped by class, then the held-out ones (ADA). class_start/class_count:
    [n_classes] each class's range of training windows. n_train_windows: windows [0, that)
    are sampled for training, [that, cum[-1]) are the held-out files' windows."""

    frames: jax.Array
    start: jax.Array
    cum: jax.Array
    labels: jax.Array
    class_start: jax.Array
    class_count: jax.Array
    n_time: int = flax.struct.field(pytree_node=False)
    n_train_windows: int = flax.struct.field(pytree_node=False)
    n_windows: int = flax.struct.field(pytree_node=False)

    @property
    def n_heldout(self) -> int:
        return self.n_windows - self.n_train_windows

    def windows(self, w: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Window numbers [...] -> (x [..., F, T] float32, labels [...])."""
        i = jnp.searchsorted(self.cum, w, side="right") - 1  # the file holding window w
        s = self.start[i] + (w - self.cum[i])
        f = self.frames.shape[0]
        cut = jax.vmap(lambda s0: jax.lax.dynamic_slice(self.frames, (0, s0), (f, self.n_time)))
        x = cut(s.reshape(-1)).reshape(w.shape + (f, self.n_time))
        return x.astype(jnp.float32), self.labels[i]


def build_window_dataset(frames: np.ndarray, lengths: np.ndarray, labels: np.ndarray,
                         moments: Moments, n_time: int, n_classes: int,
                         storage_dtype: str = "float32",
                         heldout: Optional[np.ndarray] = None) -> WindowDataset:
    """Raw frames [L_total, F] (time-major, np.memmap fine) of files of `lengths` frames with
    file `labels` -> host-side WindowDataset; heldout: indices of files held out of training.
    Every class must keep a training file (heldout_indices sees to it)."""
    lengths, labels = np.asarray(lengths, np.int64), np.asarray(labels, np.int32)
    held = np.zeros(len(lengths), bool)
    if heldout is not None and len(heldout):
        held[np.asarray(heldout)] = True
    train = np.flatnonzero(~held)
    order = np.concatenate([train[np.argsort(labels[train], kind="stable")],
                            np.flatnonzero(held)])
    n_win = lengths[order] - n_time + 1
    cum = np.concatenate([[0], np.cumsum(n_win)])
    n_train_windows = int(cum[len(train)])
    per_class = np.bincount(labels[order[:len(train)]], weights=n_win[:len(train)],
                            minlength=n_classes).astype(np.int64)
    if (per_class == 0).any():
        raise ValueError(f"class {int(np.flatnonzero(per_class == 0)[0])} has no training file")
    if cum[-1] >= 2**31:
        raise ValueError(f"{int(cum[-1])} windows: more than int32 indexes")
    dtype = jnp.bfloat16 if storage_dtype == "bfloat16" else np.float32
    out = np.empty(frames.shape[::-1], dtype)  # [F, L_total]
    chunk = 65536  # frames at a time: frames may be a memmap
    for s in range(0, frames.shape[0], chunk):
        out[:, s:s + chunk] = normalize(np.asarray(frames[s:s + chunk]).T, moments)
    start = windows_lib.offsets(lengths)[order]
    return WindowDataset(frames=out, start=start.astype(np.int32), cum=cum.astype(np.int32),
                         labels=labels[order],
                         class_start=(np.cumsum(per_class) - per_class).astype(np.int32),
                         class_count=per_class.astype(np.int32), n_time=n_time,
                         n_train_windows=n_train_windows, n_windows=int(cum[-1]))


def to_device(dataset, sharding: Optional[jax.sharding.Sharding] = None):
    """A DeviceDataset or WindowDataset onto the device(s); see _to_device. A WindowDataset
    is replicated on every device of `sharding`'s mesh (a window is cut from any frame)."""
    if not isinstance(dataset, WindowDataset):
        return _to_device(dataset, sharding)
    if sharding is not None and isinstance(sharding, jax.sharding.NamedSharding):
        rep = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
        return jax.tree_util.tree_map(lambda a: _put(np.asarray(a), rep), dataset)
    return jax.tree_util.tree_map(lambda a: jax.device_put(np.asarray(a)), dataset)


def _to_device(dataset: DeviceDataset, sharding: Optional[jax.sharding.Sharding] = None
               ) -> DeviceDataset:
    """Put a DeviceDataset on the default device, or on `sharding`'s devices split along
    axis 0 (e.g. NamedSharding(mesh, P('data'))). N is padded (repeating leading rows) up to
    a multiple of the shard count; `n` keeps the true size so padding is never sampled."""
    x, labels, n = np.asarray(dataset.x), np.asarray(dataset.labels), dataset.n
    if sharding is None:
        return DeviceDataset(x=jax.device_put(x), labels=jax.device_put(labels), n=n,
                             n_heldout=dataset.n_heldout)
    n_shards = _shards_along_axis0(sharding)
    pad = (-x.shape[0]) % n_shards
    if pad:
        idx = np.arange(x.shape[0] + pad) % x.shape[0]
        x, labels = x[idx], labels[idx]
    label_sharding = sharding
    if isinstance(sharding, jax.sharding.NamedSharding):  # labels are 1-D: keep axis 0's spec
        label_sharding = jax.sharding.NamedSharding(
            sharding.mesh, jax.sharding.PartitionSpec(sharding.spec[0] if sharding.spec else None))
    return DeviceDataset(x=_put(x, sharding), labels=_put(labels, label_sharding), n=n,
                         n_heldout=dataset.n_heldout)


def _put(a: np.ndarray, sharding: jax.sharding.Sharding) -> jax.Array:
    """device_put, but across processes (multi-host) each process copies only the slices its
    own devices hold, from its full host copy (device_put would first all-gather the whole
    array to check it is equal on every process)."""
    if sharding.is_fully_addressable:
        return jax.device_put(a, sharding)
    return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])


def _shards_along_axis0(sharding: jax.sharding.Sharding) -> int:
    """How many pieces `sharding` cuts axis 0 into."""
    if isinstance(sharding, jax.sharding.NamedSharding):
        names = sharding.spec[0] if sharding.spec else None
        if names is None:
            return 1
        names = names if isinstance(names, tuple) else (names,)
        return int(np.prod([sharding.mesh.shape[a] for a in names]))
    return len(sharding.device_set)


def _draw_indices(data: DeviceDataset, key, shape, lo: int, hi: int, class_balanced: bool,
                  n_classes: int):
    """Indices into rows [lo, hi): uniform over rows, or (class_balanced) a class drawn
    uniformly from n_classes, then a row of that class uniformly (every class must have a
    row in [lo, hi); a class without one would be drawn as a neighbouring class's row)."""
    if not class_balanced:
        return jax.random.randint(key, shape, lo, hi)
    k_class, k_row = jax.random.split(key)
    labels = data.labels[lo:hi]
    order = jnp.argsort(labels, stable=True) + lo  # rows grouped by class
    counts = jnp.bincount(labels, length=n_classes)
    starts = jnp.cumsum(counts) - counts
    y = jax.random.randint(k_class, shape, 0, n_classes)
    u = jax.random.uniform(k_row, shape)
    pos = starts[y] + jnp.minimum((u * counts[y]).astype(jnp.int32), counts[y] - 1)
    return order[jnp.clip(pos, 0, hi - lo - 1)]


def _draw_windows(data: WindowDataset, key, shape, class_balanced: bool, n_classes: int):
    """Training window numbers: uniform over all training windows, or (class_balanced) a
    class drawn uniformly, then one of its windows uniformly."""
    if not class_balanced:
        return jax.random.randint(key, shape, 0, data.n_train_windows)
    k_class, k_win = jax.random.split(key)
    y = jax.random.randint(k_class, shape, 0, n_classes)
    u = jax.random.uniform(k_win, shape)
    count = data.class_count[y]
    return data.class_start[y] + jnp.minimum((u * count).astype(jnp.int32), count - 1)


def make_sampler(augment_cfg: AugmentConfig, with_labels: bool = False,
                 class_balanced: bool = False, n_classes: int = 0) -> Callable:
    """-> sampler(data: DeviceDataset, key, n_critic, batch_size) -> real batches
    [n_critic, B, F, T, 1] float32 in normalised units (and labels [n_critic, B] int32 when
    with_labels). n_critic and batch_size must be static under jit. Each of the n_critic
    batches is a fresh draw (the original draws a new real batch per critic update;
    docs/seed-bugs.md, item 4), each example augmented independently.
    class_balanced: each example's class drawn uniformly from n_classes first (rare classes as
    often as common ones; conditional training with loss.fake_classes 'uniform')."""

    def sampler(data, key: jax.Array, n_critic: int, batch_size: int):
        k_idx, k_aug = jax.random.split(key)
        if isinstance(data, WindowDataset):
            w = _draw_windows(data, k_idx, (n_critic, batch_size), class_balanced, n_classes)
            x, labels = data.windows(w)  # [K, B, F, T]
        else:
            idx = _draw_indices(data, k_idx, (n_critic, batch_size), 0, data.n_train,
                                class_balanced, n_classes)  # [K, B]
            x, labels = data.x[idx].astype(jnp.float32)[..., 0], data.labels[idx]
        k, b, f, t = x.shape
        x = augment_batch(x.reshape(k * b, f, t), k_aug, augment_cfg)  # [K*B, F, T]
        x = x.reshape(k, b, f, t, 1)
        return (x, labels) if with_labels else x

    return sampler


def make_heldout_sampler(augment_cfg: AugmentConfig, with_labels: bool = False) -> Callable:
    """-> sampler(data, key, batch_size) -> one batch [B, F, T, 1] (and labels [B]) of the rows
    held out of training (DeviceDataset.n_heldout > 0), augmented as the training batches."""

    def sampler(data, key: jax.Array, batch_size: int):
        if not data.n_heldout:
            raise ValueError("the dataset holds no examples out of training (n_heldout=0)")
        k_idx, k_aug = jax.random.split(key)
        if isinstance(data, WindowDataset):  # a window of a held-out file
            x, labels = data.windows(jax.random.randint(
                k_idx, (batch_size,), data.n_train_windows, data.n_windows))
        else:
            idx = jax.random.randint(k_idx, (batch_size,), data.n_train, data.n)
            x, labels = data.x[idx].astype(jnp.float32)[..., 0], data.labels[idx]
        x = augment_batch(x, k_aug, augment_cfg)
        return (x[..., None], labels) if with_labels else x[..., None]

    return sampler
