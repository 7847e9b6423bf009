#!/usr/bin/env python
"""Thin wrapper: `python scripts/make_demo_data.py --out DIR [--kind calls] [--shape F T]
[--length L] [--freq-order high_first]` (specgan_jax.cli.demo_data)."""

import os
import sys

# Run from a source checkout without `pip install -e .`: the package is the parent folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from specgan_jax.cli.demo_data import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
