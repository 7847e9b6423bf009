"""`scripts/benchmark.py`: the JAX step against the PyTorch reference, side by side
(specgan_jax.benchmark holds the measurement; this is its command line)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys

from specgan_jax import benchmark
from specgan_jax.config.model import shape_message
from specgan_jax.run.torch_io import TORCH_EXTRA


def main(argv=None) -> int:
    """0 on success, 1 when PyTorch (the reference it is compared with) is missing."""
    p = argparse.ArgumentParser(description=benchmark.__doc__.split("\n\n")[0], epilog=(
        "examples:\n  python scripts/benchmark.py                # small CPU config (dim 16, "
        "batch 16)\n  python scripts/benchmark.py --full --json bench.json   # dim 64, batch 64"
        " (GPU)\n  python scripts/benchmark.py --shape 64 256      # another example shape"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="the original's size: dim 64, batch 64")
    p.add_argument("--dim", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--iters", type=int, default=benchmark.BenchConfig.iters)
    p.add_argument("--repeats", type=int, default=benchmark.BenchConfig.repeats)
    p.add_argument("--no-torch-compile", action="store_true")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: JAX model.precision=bf16 vs torch.autocast(bfloat16)")
    p.add_argument("--shape", type=int, nargs=2, metavar=("F", "T"),
                   default=(benchmark.BenchConfig.n_freq, benchmark.BenchConfig.n_time),
                   help="frequency bins x time frames of each example, multiples of 32 "
                        "[default: 128 128]")
    p.add_argument("--json", help="write the report here as JSON")
    a = p.parse_args(argv)
    bad = shape_message(*a.shape, "--shape")
    if bad:
        p.error(bad)
    if importlib.util.find_spec("torch") is None:
        print("error: PyTorch is not installed; the benchmark compares against its reference. "
              f"Install the extra: {TORCH_EXTRA}", file=sys.stderr)
        return 1
    default = benchmark.BenchConfig
    cfg = default(dim=a.dim or (64 if a.full else default.dim),
                  batch=a.batch or (64 if a.full else default.batch),
                  iters=a.iters, repeats=a.repeats, torch_compile=not a.no_torch_compile,
                  precision=a.precision, n_freq=a.shape[0], n_time=a.shape[1])
    report = benchmark.run(cfg)
    print(benchmark.markdown(report))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0
