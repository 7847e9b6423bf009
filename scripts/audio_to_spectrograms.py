#!/usr/bin/env python
"""Thin wrapper: `python scripts/audio_to_spectrograms.py --help` (same as the
`specgan-audio-to-spectrograms` console script)."""

import os
import sys

# Run from a source checkout without `pip install -e .`: the package is the parent folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from specgan_jax.cli.audio import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
