"""Griffin-Lim in JAX, as the original SpecGAN inverts its spectrograms
(chrisdonahue/wavegan, train_specgan.py, `invert_spectra_griffin_lim`).

X_mag = exp(log magnitude) (eps not subtracted, as in the original), the dropped Nyquist bin
put back as zeros, zero initial phase, then `iterations` times: x = istft(X), X_est = stft(x),
X = X_mag * X_est / max(|X_est|, 1e-8); finally x = istft(X).

The inverse STFT is tf.signal.inverse_stft's default: overlap-add of irfft(frame) * window with
the same periodic Hann and *no* window-sum normalisation. With Hann and hop = nfft / 2 the
squared windows sum to 0.5 + 0.5 cos^2(2 pi n / nfft) (between 0.5 and 1), so the original's
output carries that amplitude ripple; `amplitude_quirk=True` keeps it (the default, to match the
original), False divides the overlap-added window sum out (perfect reconstruction). Between iterations the signal is cut to frames * hop samples, so
that the next STFT (pad_end) has the same frame count as the target (16384 samples for
128 frames at hop 128, the original's slice length).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from specgan_jax.audio.stft import HOP, NFFT, periodic_hann, stft

ITERATIONS = 16


def _window_sum(n_frames: int, nfft: int, hop: int) -> np.ndarray:
    """sum_t w(n - t hop)^2 over the frames: what overlap-add of windowed frames multiplies by."""
    w2 = np.asarray(periodic_hann(nfft), dtype=np.float64) ** 2
    out = np.zeros((n_frames - 1) * hop + nfft)
    for t in range(n_frames):
        out[t * hop:t * hop + nfft] += w2
    return out


def istft(X, nfft: int = NFFT, hop: int = HOP, normalize: bool = False):
    """(..., frames, nfft // 2 + 1) -> (..., frames * hop): overlap-add of irfft * window."""
    n_frames = X.shape[-2]
    frames = jnp.fft.irfft(X, n=nfft, axis=-1) * periodic_hann(nfft, jnp)
    length = (n_frames - 1) * hop + nfft
    idx = (np.arange(n_frames)[:, None] * hop + np.arange(nfft)[None, :]).reshape(-1)
    out = jnp.zeros(X.shape[:-2] + (length,), frames.dtype)
    out = out.at[..., idx].add(frames.reshape(X.shape[:-2] + (-1,)))
    if normalize:
        out = out / jnp.asarray(np.maximum(_window_sum(n_frames, nfft, hop), 1e-8), out.dtype)
    return out[..., :n_frames * hop]


@partial(jax.jit, static_argnames=("iterations", "nfft", "hop", "amplitude_quirk"))
def griffin_lim(log_mag, iterations: int = ITERATIONS, nfft: int = NFFT, hop: int = HOP,
                amplitude_quirk: bool = True):
    """Log magnitude (..., frames, nfft // 2) (Nyquist dropped) -> audio (..., frames * hop).

    Batched over any leading axes; jitted (iterations, sizes static)."""
    mag = jnp.exp(log_mag.astype(jnp.float32))
    mag = jnp.concatenate([mag, jnp.zeros(mag.shape[:-1] + (1,), mag.dtype)], axis=-1)
    target = mag.astype(jnp.complex64)
    norm = not amplitude_quirk

    def body(_, X):
        X_est = stft(istft(X, nfft, hop, norm), nfft, hop, jnp)
        return target * (X_est / jnp.maximum(jnp.abs(X_est), 1e-8))

    X = jax.lax.fori_loop(0, iterations, body, target)
    return istft(X, nfft, hop, norm)


def spectral_convergence(log_mag, audio, nfft: int = NFFT, hop: int = HOP) -> np.ndarray:
    """|| |STFT(audio)| - exp(log_mag) ||_F / || exp(log_mag) ||_F per item (Nyquist dropped)."""
    target = np.exp(np.asarray(log_mag, np.float64))
    got = np.abs(stft(np.asarray(audio, np.float64), nfft, hop))[..., :-1]
    axes = (-2, -1)
    return np.sqrt(((got - target) ** 2).sum(axes)) / np.sqrt((target ** 2).sum(axes))
