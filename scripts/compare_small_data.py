#!/usr/bin/env python
"""Measure the small-data remedies: train each variant with several seeds, evaluate each run
against held-out real data with scripts/evaluate.py, and print a table of means and spreads.

    python scripts/compare_small_data.py --set demo --out cmp_demo
    python scripts/make_demo_data.py --kind calls --out calls_train --n-per-class 100 --seed 0
    python scripts/make_demo_data.py --kind calls --out calls_heldout --n-per-class 100 --seed 1
    python scripts/compare_small_data.py --set calls_train --real calls_heldout --out cmp_calls

Every run uses the demo preset's model and schedule (dim 8, batch 8, 400 steps) unless --steps
or --extra say otherwise. Rows of the table (one training run can give several rows, since the
EMA and periodic evaluation do not change training):
  recipe         the original recipe, its trained weights            (run "recipe", --raw)
  + EMA          the same run, sampled from the generator EMA          (run "recipe")
  + DiffAugment  + DiffAugment at fixed strength 1                     (run "diffaug")
  + ADA          + ADA instead of the fixed strength                   (run "ada")
  preset         + ADA, the best checkpoint by periodic FD evaluation  (run "ada", best_fd)
Results (every eval.json) go to OUT/<run>/..., the table to OUT/table.md and OUT/results.json.
"""

import argparse
import concurrent.futures as cf
import json
import os
import sys
import time

import numpy as np

from _measure import run, write_table  # scripts/_measure.py, beside this file

METRICS = ("fd", "kid", "ndb", "nn_self", "memorization")
RUNS = {
    "recipe": [],
    "diffaug": ["--diffaug.strength", "1.0"],
    "ada": ["--diffaug.ada", "--diffaug.ada_kimg", "2", "--train.eval_every", "100"],
}
ROWS = [  # (row name, run, evaluate.py options)
    ("recipe", "recipe", ["--raw"]),
    ("+ EMA", "recipe", []),
    ("+ DiffAugment", "diffaug", []),
    ("+ ADA", "ada", []),
    ("preset (+ best checkpoint)", "ada", ["--checkpoint-dir", "checkpoints_best_fd"]),
]


def one(args, name, seed):
    """Train one variant with one seed, evaluate its rows -> {row: {metric: value}, ...}."""
    work = os.path.abspath(os.path.join(args.out, f"{name}_seed{seed}"))
    os.makedirs(work, exist_ok=True)
    log = os.path.join(work, "log.txt")
    data = [] if args.set == "demo" else ["--data", args.set]
    t0 = time.monotonic()
    run([sys.executable, "scripts/train.py", "--workdir", work, "--no-progress", "--seed",
         str(seed), "--steps", str(args.steps), *data, *RUNS[name], *args.extra,
         # the demo preset's model and schedule for user data too (the same budget)
         *([] if args.set == "demo" else ["--model.dim", "8", "--model.upsample", "nn",
                                          "--optim.g_lr", "5e-4", "--optim.d_lr", "5e-4",
                                          "--batch-size", "8"])], log)
    out = {"train_s": time.monotonic() - t0}
    for row, run_name, opts in ROWS:
        if run_name != name:
            continue
        ev_dir = os.path.join(work, "eval_" + "".join(c for c in row if c.isalnum()))
        run([sys.executable, "scripts/evaluate.py", work, "--real", args.real or "demo",
             "--out", ev_dir, "--no-progress", *opts], log)
        with open(os.path.join(ev_dir, "eval.json")) as fh:
            ev = json.load(fh)
        out[row] = {m: ev[m]["generated"] for m in METRICS}
        out[row + " (real baseline)"] = {m: ev[m]["real_baseline"] for m in METRICS}
    return name, seed, out


def table(results, seeds) -> str:
    lines = ["| variant | " + " | ".join(METRICS) + " | train s |",
             "|---|" + "---|" * (len(METRICS) + 1)]
    for row, run_name, _ in ROWS + [("real baseline", "recipe", None)]:
        key = row if row != "real baseline" else "+ EMA (real baseline)"
        vals = [results[run_name][s][key] for s in seeds if s in results.get(run_name, {})]
        if not vals:
            continue
        cells = []
        for m in METRICS:
            v = np.array([x[m] for x in vals], float)
            cells.append(f"{v.mean():.3g} ± {v.std(ddof=1) if len(v) > 1 else 0:.2g}")
        t = np.array([results[run_name][s]["train_s"] for s in seeds
                      if s in results.get(run_name, {})])
        lines.append(f"| {row} | " + " | ".join(cells)
                     + (f" | {t.mean():.0f} |" if row != "real baseline" else " | |"))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--set", default="demo", help="'demo' or a training data folder")
    p.add_argument("--real", default=None, help="held-out real folder (default: demo)")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                   help="further train.py options for every run (last option)")
    args = p.parse_args(argv)
    if args.set != "demo" and not args.real:
        p.error("--real: a held-out folder for a --set other than demo")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    results = {k: {int(s): v for s, v in d.items()} for k, d in results.items()}
    todo = [(n, s) for n in args.runs for s in args.seeds if s not in results.get(n, {})]
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        for fut in cf.as_completed([pool.submit(one, args, n, s) for n, s in todo]):
            name, seed, out = fut.result()
            results.setdefault(name, {})[seed] = out
            with open(path, "w") as fh:  # after every run: an interrupted comparison resumes
                json.dump(results, fh, indent=1)
            print(f"done {name} seed {seed}: {out.get('+ EMA', out.get('+ DiffAugment', out.get('+ ADA')))}",
                  flush=True)
    write_table(args.out, table(results, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
