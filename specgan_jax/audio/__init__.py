"""Audio in and out: the original SpecGAN's STFT front end (stft) and Griffin-Lim (griffin_lim).

Both modules are pure (no file I/O). Arrays are (..., frames, bins) here; the CSV files the
project trains on are (bins, frames) with row 0 the lowest frequency, so a caller transposes.
"""
