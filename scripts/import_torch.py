#!/usr/bin/env python
"""Thin wrapper: `python scripts/import_torch.py --help` (specgan_jax.cli.export.import_main)."""

import os
import sys

# Run from a source checkout without `pip install -e .`: the package is the parent folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from specgan_jax.cli.export import import_main  # noqa: E402

if __name__ == "__main__":
    import_main()
