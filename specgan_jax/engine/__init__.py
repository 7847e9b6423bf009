"""Pure JAX, no file I/O: layers, models, losses, the training step, sampling, weight
conversion (the parity surface).
"""
