"""specgan-jax: SpecGAN (Donahue et al. 2019) in JAX/Flax, trained on CSV spectrograms."""

__version__ = "0.1.0"
