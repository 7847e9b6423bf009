#!/usr/bin/env python
"""Thin wrapper: `python scripts/benchmark.py [--full] [--json PATH]` (specgan_jax.cli.benchmark)."""

import os
import sys

# Run from a source checkout without `pip install -e .`: the package is the parent folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from specgan_jax.cli.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
