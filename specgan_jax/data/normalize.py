"""Per-frequency normalisation, the original's (train_specgan.py `t_to_f` / `f_to_t`):

    normalise:    y = clip(((x' - mean_f) / std_f) / 3, -1, 1),   x' = log(x + eps) if the
                                                                  moments use a log transform
    denormalise:  x' = 3 y std_f + mean_f,                        x = exp(x') - eps   if so

mean_f / std_f per frequency bin (std floored, see moments.py). Values within 3 std of the
mean round-trip exactly (up to float rounding); clipped ones come back at mean ± 3 std.

Both functions take numpy arrays (computed in float64; the result is float32, or float64 for
float64 input) or jax arrays (computed in float32, jit-able).
"""

from __future__ import annotations

import numpy as np

from specgan_jax.data.moments import Moments


def _shape_stats(moments: Moments, ndim: int, freq_axis: int, xp, dtype):
    """mean, std [F] reshaped to broadcast along `freq_axis` of an ndim array."""
    axis = freq_axis % ndim
    shape = [1] * ndim
    shape[axis] = moments.mean.shape[0]
    return (xp.asarray(moments.mean, dtype).reshape(shape),
            xp.asarray(moments.std, dtype).reshape(shape))


def _backend(x):
    import jax
    import jax.numpy as jnp

    if isinstance(x, jax.Array):  # also tracers inside jit
        return jnp, jnp.float32
    x = np.asarray(x)
    return np, (np.float64 if x.dtype == np.float64 else np.float32)


def normalize(x, moments: Moments, freq_axis: int = -2):
    """Raw spectrograms [..., F, T] (or any layout, F at `freq_axis`) -> [-1, 1]."""
    xp, out_dtype = _backend(x)
    work = np.float64 if xp is np else np.float32
    x = xp.asarray(x, work)
    if x.shape[freq_axis] != moments.n_freq:
        raise ValueError(f"data has {x.shape[freq_axis]} frequency bins (axis {freq_axis}), "
                         f"moments have {moments.n_freq}")
    mean, std = _shape_stats(moments, x.ndim, freq_axis, xp, work)
    if moments.log_transform:
        x = xp.log(x + moments.eps)
    y = (x - mean) / std / 3.0
    return xp.clip(y, -1.0, 1.0).astype(out_dtype)


def denormalize(y, moments: Moments, freq_axis: int = -2):
    """Normalised [..., F, T] (F at `freq_axis`) -> raw units (inverse of `normalize`)."""
    xp, out_dtype = _backend(y)
    work = np.float64 if xp is np else np.float32
    y = xp.asarray(y, work)
    if y.shape[freq_axis] != moments.n_freq:
        raise ValueError(f"data has {y.shape[freq_axis]} frequency bins (axis {freq_axis}), "
                         f"moments have {moments.n_freq}")
    mean, std = _shape_stats(moments, y.ndim, freq_axis, xp, work)
    x = y * 3.0 * std + mean
    if moments.log_transform:
        x = xp.exp(x) - moments.eps
    return x.astype(out_dtype)
