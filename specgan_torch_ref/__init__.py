"""Minimal PyTorch reference of the seed's documented SpecGAN ports, corrected.

It exists to prove that `specgan_jax` computes the same thing (see parity_tests/).
It imports nothing from `specgan_jax`.
"""
