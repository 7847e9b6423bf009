#!/usr/bin/env python
"""Thin wrapper: `python scripts/evaluate.py --help` (same as the `specgan-evaluate` console script)."""

import os
import sys

# Run from a source checkout without `pip install -e .`: the package is the parent folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from specgan_jax.cli.evaluate import main  # noqa: E402

if __name__ == "__main__":
    main()
