#!/usr/bin/env python
"""Measure one class-conditional model against one unconditional model per class, with the same
total number of training steps, several seeds; print a table of means and spreads.

    python scripts/make_demo_data.py --out demo_train --n-per-class 64 --seed 0
    python scripts/make_demo_data.py --out demo_heldout --n-per-class 64 --seed 1000
    python scripts/compare_conditional.py --set demo_train --real demo_heldout --out cmp_cond

For each seed:
  conditional    scripts/train.py --data SET --model.conditional --steps S
  per-class      scripts/train.py --data SET/<class> --steps S / K, for each of the K classes
Every run uses the demo preset's model and schedule (dim 8, batch 8) unless --extra says
otherwise; --cond-extra adds options to the conditional runs only (e.g. --cond-extra
"--loss.cond_start 0 --loss.cond_ramp 0": conditioned from the first step, not the default
transition). Each approach generates --n samples per class into class folders, and
scripts/evaluate.py scores them against --real with one reference run (the first seed's
conditional run: the same moments and feature classifier for every row): intra-class FD and
KID (fakes of class k against real class k, mean over classes), the classifier's accuracy on
the fakes' intended classes, and the pooled FD. Also the training wall time (sum over the K
runs for per-class) and the bytes of one checkpoint (summed over the K runs).
Results go to OUT/results.json (an interrupted comparison resumes) and OUT/table.md.
"""

import argparse
import concurrent.futures as cf
import json
import os
import sys
import time

import numpy as np

from _measure import run, write_table  # scripts/_measure.py, beside this file

MODEL = ["--model.dim", "8", "--model.upsample", "nn", "--optim.g_lr", "5e-4",
         "--optim.d_lr", "5e-4", "--batch-size", "8", "--train.checkpoint_every", "100000"]
METRICS = ("intra_fd", "intra_kid", "class_accuracy", "fd")


def checkpoint_bytes(workdir: str) -> int:
    """Bytes of the newest checkpoint of a run (every file under checkpoints/<step>/)."""
    ck = os.path.join(workdir, "checkpoints")
    step = max((d for d in os.listdir(ck) if d.isdigit()), key=int)
    return sum(os.path.getsize(os.path.join(r, f))
               for r, _, fs in os.walk(os.path.join(ck, step)) for f in fs)


def train_and_generate(args, approach, seed, classes):
    """Train one approach with one seed and write its fakes to OUT/<approach>_seed<s>/fakes/<class>/."""
    work = os.path.abspath(os.path.join(args.out, f"{approach}_seed{seed}"))
    fakes = os.path.join(work, "fakes")
    done = os.path.join(work, "trained.json")
    if os.path.exists(done):
        return json.load(open(done))
    os.makedirs(work, exist_ok=True)
    log = os.path.join(work, "log.txt")
    common = ["--no-progress", "--seed", str(seed), *MODEL, *args.extra]
    t0 = time.monotonic()
    if approach == "conditional":
        run([sys.executable, "scripts/train.py", "--workdir", os.path.join(work, "run"),
             "--data", args.set, "--steps", str(args.steps), "--model.conditional", *common,
             *args.cond_extra], log)
        train_s = time.monotonic() - t0
        run([sys.executable, "scripts/generate.py", os.path.join(work, "run"), "--per-class",
             str(args.n), "--out", fakes, "--seed", "1"], log)
        nbytes = checkpoint_bytes(os.path.join(work, "run"))
    else:
        steps = args.steps // len(classes)
        nbytes = 0
        for c in classes:
            wd = os.path.join(work, "run_" + c)
            run([sys.executable, "scripts/train.py", "--workdir", wd, "--data",
                 os.path.join(args.set, c), "--steps", str(steps), *common], log)
            nbytes += checkpoint_bytes(wd)
        train_s = time.monotonic() - t0
        for c in classes:
            run([sys.executable, "scripts/generate.py", os.path.join(work, "run_" + c), "--n",
                 str(args.n), "--out", os.path.join(fakes, c), "--seed", "1"], log)
    out = {"train_s": train_s, "checkpoint_bytes": nbytes, "fakes": fakes, "log": log}
    json.dump(out, open(done, "w"))
    return out


def evaluate(args, reference, trained):
    ev = os.path.join(os.path.dirname(trained["fakes"]), "eval")
    if not os.path.exists(os.path.join(ev, "eval.json")):
        run([sys.executable, "scripts/evaluate.py", reference, "--real", args.real, "--fakes",
             trained["fakes"], "--out", ev, "--no-progress"], trained["log"])
    e = json.load(open(os.path.join(ev, "eval.json")))
    return {m: e[m]["generated"] for m in METRICS}, {m: e[m]["real_baseline"] for m in METRICS}


def table(results, seeds) -> str:
    lines = ["| approach | " + " | ".join(METRICS) + " | train s | checkpoint MB |",
             "|---|" + "---|" * (len(METRICS) + 2)]
    fmt = lambda v: f"{np.mean(v):.3g} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.2g}"  # noqa
    for approach in ("conditional", "per-class"):
        rows = [results[approach][str(s)] for s in seeds if str(s) in results.get(approach, {})]
        if not rows:
            continue
        cells = [fmt([r["metrics"][m] for r in rows]) for m in METRICS]
        lines.append(f"| {approach} | " + " | ".join(cells)
                     + f" | {np.mean([r['train_s'] for r in rows]):.0f}"
                     + f" | {np.mean([r['checkpoint_bytes'] for r in rows]) / 1e6:.2f} |")
    base = next(r["baseline"] for a in results.values() for r in a.values())
    lines.append("| real baseline | " + " | ".join(f"{base[m]:.3g}" for m in METRICS) + " | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--set", required=True, help="training folder, one subfolder per class")
    p.add_argument("--real", required=True, help="held-out folder, the same class subfolders")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=400, help="total steps of each approach")
    p.add_argument("--n", type=int, default=64, help="generated samples per class")
    p.add_argument("--jobs", type=int, default=2, help="trainings in parallel")
    p.add_argument("--cond-extra", default="",
                   help="further train.py options for the conditional runs only, one string "
                   "(e.g. \"--loss.cond_start 0 --loss.cond_ramp 0\")")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                   help="further train.py options for every run (last option)")
    args = p.parse_args(argv)
    args.cond_extra = args.cond_extra.split()
    args.set, args.real = os.path.abspath(args.set), os.path.abspath(args.real)
    classes = sorted(d for d in os.listdir(args.set) if os.path.isdir(os.path.join(args.set, d)))
    os.makedirs(args.out, exist_ok=True)
    todo = [(a, s) for s in args.seeds for a in ("conditional", "per-class")]
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        trained = dict(zip(todo, pool.map(lambda t: train_and_generate(args, *t, classes), todo)))
    reference = os.path.abspath(os.path.join(args.out, f"conditional_seed{args.seeds[0]}", "run"))
    results = {}
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        scores = dict(zip(todo, pool.map(lambda t: evaluate(args, reference, trained[t]), todo)))
    for (a, s), (gen, base) in scores.items():
        results.setdefault(a, {})[str(s)] = {**trained[(a, s)], "metrics": gen, "baseline": base}
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    write_table(args.out, table(results, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
