#!/usr/bin/env python
"""Compare training recipes by quality per second of training: every candidate trains for the
same wall time (--minutes), with several seeds; checkpoints saved every --eval-every seconds
are scored against held-out real data with scripts/evaluate.py, giving FD and KID against
seconds of training; the last checkpoint's evaluation is the run's final number.

    python scripts/compare_recipes.py --minutes 20 --out cmp_recipes          # the demo set
    python scripts/make_demo_data.py --kind calls --out calls_train --n-per-class 100 --seed 0
    python scripts/make_demo_data.py --kind calls --out calls_heldout --n-per-class 100 --seed 1
    python scripts/compare_recipes.py --set calls_train --real calls_heldout --minutes 20 \\
        --candidates recipe-nn,ns-r1 --out cmp_calls

Runs go one at a time, never in parallel: a timed run that shares the CPU with another
measures the other as well. Run nothing else heavy on the machine meanwhile.

Every run: scripts/train.py --data SET (none for demo) --seed S, the demo preset's model and
schedule (dim 8, batch 8, 10 steps per call), the candidate's flags, then --extra (later
options win, so --extra can override a candidate). The budget: --minutes M passes
--train.minutes M (training stops after M minutes, setup and compilation excluded, with a
checkpoint); --steps N caps the steps as well (at least one of the two). Checkpoints:
every --eval-every seconds (--train.checkpoint_every_secs), all kept.
Evaluation: each checkpoint with scripts/evaluate.py RUN --real REAL --step S (the latest
without --step: the final number), plus --eval-extra. The seconds of a checkpoint are the
metrics.jsonl "time" at its step (interpolated between logged rows): seconds since the
training loop started, its first compilation included, evaluations never (they run after
training). If a run trains with --train.eval_every (through --extra), its periodic
evaluation rows are kept in results.json as "periodic_curve"; their reference is the
training data (split in halves), not --real.

Outputs: OUT/<candidate>_seed<s>/ (the run, log.txt, eval_final/, eval_curve/step_N/),
OUT/results.json (every run; an interrupted comparison resumes, retraining an unfinished run
from the start, since a resumed run's clock restarts), OUT/table.md (final FD, KID, hf_excess
when evaluate.py reports it, seconds and steps of training: mean ± std over seeds; the
real-vs-real baseline row) and OUT/fd_vs_time.png (mean over seeds against seconds, a band
of ± one std; FD and KID panels).
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np

from _measure import run, write_table  # scripts/_measure.py, beside this file


def _wgan_gp(upsample: str, lr: str) -> list:
    """The original recipe's flags (WGAN-GP, 5 critic updates) at an upsampling and one lr."""
    return ["--loss.loss", "wgan-gp", "--loss.n_critic", "5", "--model.upsample", upsample,
            "--optim.g_lr", lr, "--optim.d_lr", lr]


# name: (train.py flags, source). Each fixes the loss, critic updates, upsampling and
# optimiser, so that the demo preset (on the demo set) and the defaults (on a folder) give the
# same run. ns-r1 and hinge use nn upsampling, the demo's.
CANDIDATES = {
    "recipe-zeros": (
        _wgan_gp("zeros", "1e-4"),
        "the original SpecGAN: WGAN-GP (Gulrajani et al. 2017), 5 critic updates, Adam(1e-4, "
        "0.5, 0.9), transposed convolutions (Donahue et al. 2019, 'Adversarial Audio "
        "Synthesis')"),
    "recipe-nn": (
        _wgan_gp("nn", "1e-4"),
        "recipe-zeros with nearest-neighbour upsampling + convolution (Odena et al. 2016, "
        "'Deconvolution and Checkerboard Artifacts')"),
    "recipe-nn-lr": (
        _wgan_gp("nn", "5e-4"),
        "recipe-nn at the demo preset's learning rate 5e-4 (separates the learning rate from "
        "the upsampling)"),
    "recipe-nn-2e-3": (
        _wgan_gp("nn", "2e-3"),
        "recipe-nn at learning rates 2e-3 (20x the original's), the learning rate of "
        "--preset fast"),
    "ns-r1": (
        ["--loss.loss", "ns-r1", "--loss.n_critic", "1", "--model.upsample", "nn",
         "--optim.g_lr", "1e-4", "--optim.d_lr", "1e-4", "--optim.beta1", "0",
         "--optim.beta2", "0.99"],
        "non-saturating logistic loss + R1 penalty, 1 critic update, Adam(1e-4, 0, 0.99) "
        "(Mescheder et al. 2018, 'Which Training Methods for GANs do actually Converge?')"),
    "hinge-ttur": (
        ["--loss.loss", "hinge", "--loss.n_critic", "1", "--model.upsample", "nn",
         "--optim.g_lr", "1e-4", "--optim.d_lr", "4e-4", "--optim.beta1", "0",
         "--optim.beta2", "0.9"],
        "hinge loss (Miyato et al. 2018, 'Spectral Normalization for GANs'), 1 critic update "
        "at a 4x higher critic learning rate (two time-scale update rule, Heusel et al. 2017; "
        "rates and Adam(0, 0.9) as Zhang et al. 2019, SAGAN)"),
    "hinge-ttur-sn": (
        ["--loss.loss", "hinge", "--loss.n_critic", "1", "--model.upsample", "nn",
         "--optim.g_lr", "1e-4", "--optim.d_lr", "4e-4", "--optim.beta1", "0",
         "--optim.beta2", "0.9", "--model.spectral_norm"],
        "hinge-ttur with spectral normalisation of the critic (Miyato et al. 2018), as its "
        "sources pair them"),
}
# The demo preset's model and schedule (specgan_jax.config.DEMO_PRESET), for every set.
BASE = ["--model.dim", "8", "--batch-size", "8", "--train.steps_per_call", "10",
        "--train.log_every", "20", "--train.preview_every", "100", "--train.n_preview", "16"]
METRICS = ("fd", "kid", "hf_excess")  # from eval.json where present
NO_STEP_CAP = 10 ** 9  # --train.steps when only the wall time limits a run


def read_rows(path: str) -> list:
    """The rows of a metrics.jsonl; a half-written last line (a killed run) is left out."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _num(v) -> float:
    return float(v)  # metrics.jsonl writes NaN/inf as strings, which float() reads


def seconds_at(rows: list, steps) -> np.ndarray:
    """The training seconds at `steps`: the "time" of the training rows (the rows that carry
    one: seconds since the training loop started), linearly interpolated between rows. Before
    the first row: its time (it includes the compilation); after the last (a run stopped
    between two logged steps): extrapolated at the last two rows' rate."""
    timed = sorted((r["step"], r["time"]) for r in rows if "time" in r)
    if not timed:
        raise ValueError("metrics.jsonl has no rows with a 'time'")
    s, t = np.array(timed, float).T
    steps = np.asarray(steps, float)
    out = np.interp(steps, s, t)
    if len(s) > 1 and s[-1] > s[-2]:
        rate = (t[-1] - t[-2]) / (s[-1] - s[-2])
        out = np.where(steps > s[-1], t[-1] + (steps - s[-1]) * rate, out)
    return out


def eval_curve(rows: list, metric: str = "fd") -> dict:
    """The periodic evaluation rows (train.eval_every: "eval/<metric>", written without a
    time) as {"step", "seconds", metric}: seconds from the row's own "time" if it has one,
    else from the training rows at its step (logged just before the evaluation ran)."""
    ev = [r for r in rows if "eval/" + metric in r]
    if not ev:
        return {"step": [], "seconds": [], metric: []}
    steps = [int(r["step"]) for r in ev]
    interp = seconds_at(rows, steps)
    secs = [float(r["time"]) if "time" in r else float(x) for r, x in zip(ev, interp)]
    return {"step": steps, "seconds": secs, metric: [_num(r["eval/" + metric]) for r in ev]}


def aggregate(curves: list, n_grid: int = 50) -> dict:
    """Curves of several seeds, each (seconds, values) sorted by seconds, on one time grid:
    {"seconds", "mean", "std", "n"}. The grid spans the time all curves cover (linear
    interpolation inside each); curves that share no interval (e.g. one point each) give
    one point, the mean of their last points. std: over seeds, ddof 1 (0 for one seed)."""
    curves = [(np.asarray(t, float), np.asarray(v, float)) for t, v in curves if len(t)]
    if not curves:
        return {"seconds": [], "mean": [], "std": [], "n": 0}
    ddof = 1 if len(curves) > 1 else 0
    lo, hi = max(t[0] for t, _ in curves), min(t[-1] for t, _ in curves)
    if hi > lo:
        grid = np.linspace(lo, hi, n_grid)
        vals = np.stack([np.interp(grid, t, v) for t, v in curves])
    else:
        grid = np.array([np.mean([t[-1] for t, _ in curves])])
        vals = np.array([[v[-1]] for _, v in curves])
    return {"seconds": grid.tolist(), "mean": vals.mean(0).tolist(),
            "std": vals.std(0, ddof=ddof).tolist(), "n": len(curves)}


def checkpoint_steps(work: str) -> list:
    ck = os.path.join(work, "checkpoints")
    return sorted(int(d) for d in os.listdir(ck) if d.isdigit()) if os.path.isdir(ck) else []


def evaluate(args, work: str, out_dir: str, log: str, step=None) -> dict:
    """scripts/evaluate.py on one checkpoint (the latest if step is None) -> eval.json."""
    run([sys.executable, "scripts/evaluate.py", work, "--real", args.real, "--out", out_dir,
         "--no-progress", *([] if step is None else ["--step", str(step)]), *args.eval_extra],
        log)
    with open(os.path.join(out_dir, "eval.json")) as fh:
        return json.load(fh)


def _values(ev: dict, key: str) -> dict:
    return {m: ev[m][key] for m in METRICS if isinstance(ev.get(m), dict) and key in ev[m]}


def train_cmd(args, name: str, seed: int, work: str) -> list:
    budget = ["--train.minutes", str(args.minutes)] if args.minutes is not None else []
    return [sys.executable, "scripts/train.py", "--workdir", work, "--no-progress",
            "--seed", str(seed), *([] if args.set == "demo" else ["--data", args.set]),
            *BASE, *CANDIDATES[name][0],
            "--steps", str(args.steps or NO_STEP_CAP), *budget,
            "--train.checkpoint_every", str(NO_STEP_CAP),
            "--train.checkpoint_every_secs", str(args.eval_every),
            "--train.keep_checkpoints", str(NO_STEP_CAP), *args.extra]


def one(args, name: str, seed: int) -> dict:
    """Train one candidate with one seed from scratch, evaluate its checkpoints -> record."""
    work = os.path.abspath(os.path.join(args.out, f"{name}_seed{seed}"))
    if os.path.exists(work):  # an unfinished run: its clock would restart on resuming
        shutil.rmtree(work)
    os.makedirs(work)
    log = os.path.join(work, "log.txt")
    cmd = train_cmd(args, name, seed, work)
    t0 = time.monotonic()
    run(cmd, log)
    wall_s = time.monotonic() - t0
    rows = read_rows(os.path.join(work, "metrics.jsonl"))
    final = evaluate(args, work, os.path.join(work, "eval_final"), log)
    steps = checkpoint_steps(work)
    curve = {"step": steps, "seconds": seconds_at(rows, steps).tolist()}
    for m in METRICS:
        curve[m] = []
    for s in steps:
        ev = final if s == final["meta"]["step"] else evaluate(
            args, work, os.path.join(work, "eval_curve", f"step_{s:06d}"), log, step=s)
        vals = _values(ev, "generated")
        for m in METRICS:
            curve[m].append(vals.get(m))
    record = {"train_cmd": cmd[1:],
              "source": CANDIDATES[name][1], "final": _values(final, "generated"),
              "real_baseline": _values(final, "real_baseline"),
              "steps": int(final["meta"]["step"]),
              "train_s": float(seconds_at(rows, [final["meta"]["step"]])[0]),
              "wall_s": wall_s, "curve": {k: v for k, v in curve.items()
                                          if k not in METRICS or None not in v}}
    periodic = eval_curve(rows, "fd")
    if periodic["step"]:
        record["periodic_curve"] = periodic | {
            "kid": eval_curve(rows, "kid")["kid"], "reference": "training data"}
    return record


def _cell(vals) -> str:
    v = np.array([x for x in vals if x is not None], float)
    if not len(v):
        return ""
    return f"{v.mean():.4g} ± {v.std(ddof=1) if len(v) > 1 else 0:.2g}"


def table(results: dict, names: list, seeds: list) -> str:
    recs = {n: [results[n][s] for s in seeds if s in results.get(n, {})] for n in names}
    metrics = [m for m in METRICS if any(m in r["final"] for rs in recs.values() for r in rs)]
    lines = ["| candidate | seeds | " + " | ".join(metrics) + " | train s | steps |",
             "|---|---|" + "---|" * (len(metrics) + 2)]
    for n in names:
        if recs[n]:
            lines.append(f"| {n} | {len(recs[n])} | " + " | ".join(
                _cell([r["final"].get(m) for r in recs[n]]) for m in metrics)
                + f" | {_cell([r['train_s'] for r in recs[n]])}"
                + f" | {_cell([r['steps'] for r in recs[n]])} |")
    every = [r for rs in recs.values() for r in rs]
    lines.append("| real baseline | | " + " | ".join(
        _cell([r["real_baseline"].get(m) for r in every]) for m in metrics) + " | | |")
    lines += ["", "mean ± std over seeds (ddof 1); fd, kid, hf_excess: the last checkpoint "
              "against the held-out real set (scripts/evaluate.py); train s: seconds of the "
              "training loop (first compilation included); real baseline: real vs real.", ""]
    lines += [f"- {n}: {CANDIDATES[n][1]}; `{' '.join(CANDIDATES[n][0])}`" for n in names]
    return "\n".join(lines)


def plot(results: dict, names: list, seeds: list, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, m in zip(axes, ("fd", "kid")):
        base = []
        for i, n in enumerate(names):
            recs = [results[n][s] for s in seeds if s in results.get(n, {})]
            curves = [(r["curve"]["seconds"], r["curve"][m]) for r in recs if m in r["curve"]]
            agg = aggregate(curves)
            if not agg["n"]:
                continue
            c, t = f"C{i}", np.array(agg["seconds"])
            mean, std = np.array(agg["mean"]), np.array(agg["std"])
            ax.plot(t, mean, color=c, marker="o" if len(t) == 1 else None,
                    label=f"{n} ({agg['n']} seeds)")
            # FD is positive and spans decades between recipes: a log axis, the band's lower
            # edge kept above zero so that it stays drawable there.
            low = np.maximum(mean - std, mean / 10) if m == "fd" else mean - std
            ax.fill_between(t, low, mean + std, color=c, alpha=0.2, linewidth=0)
            for st, sv in curves:
                ax.plot(st, sv, color=c, linestyle="none", marker=".", alpha=0.5)
            base += [r["real_baseline"][m] for r in recs if m in r["real_baseline"]]
        if base:
            ax.axhline(float(np.mean(base)), color="grey", linestyle="--",
                       label="real baseline")
        if m == "fd":
            ax.set_yscale("log")
        ax.set_xlabel("seconds of training")
        ax.set_ylabel(f"{m} vs held-out real (lower is better)")
        ax.legend(fontsize=8)
    fig.suptitle("mean over seeds ± std; dots: each seed's checkpoints")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--set", default="demo", help="'demo' or a training data folder")
    p.add_argument("--real", default=None, help="held-out real folder (default: demo)")
    p.add_argument("--out", required=True)
    p.add_argument("--candidates", default=",".join(CANDIDATES),
                   help="comma-separated, from: " + ", ".join(CANDIDATES))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--minutes", type=float, default=None,
                   help="wall-time budget of each run (--train.minutes)")
    p.add_argument("--steps", type=int, default=None, help="step cap of each run")
    p.add_argument("--eval-every", type=float, default=None, metavar="SECONDS",
                   help="seconds between the checkpoints evaluated [default: an eighth of "
                        "--minutes; 120 without it]")
    p.add_argument("--extra", default="", help='train.py options for every run, one string: '
                   '--extra="--model.dim 16 --batch-size 16"')
    p.add_argument("--eval-extra", default="",
                   help='evaluate.py options for every evaluation: --eval-extra="--eval.n 500"')
    args = p.parse_args(argv)
    if args.set != "demo" and not args.real:
        p.error("--real: a held-out folder for a --set other than demo")
    if args.minutes is None and args.steps is None:
        p.error("--minutes or --steps: the budget of each run")
    args.real = args.real or "demo"
    args.candidates = [c for c in args.candidates.split(",") if c]
    unknown = [c for c in args.candidates if c not in CANDIDATES]
    if unknown or not args.candidates:
        p.error(f"--candidates: unknown {', '.join(unknown) or '(none given)'}; choose from "
                + ", ".join(CANDIDATES))
    if args.eval_every is None:
        args.eval_every = args.minutes * 60 / 8 if args.minutes is not None else 120.0
    args.extra, args.eval_extra = shlex.split(args.extra), shlex.split(args.eval_extra)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    results = {k: {int(s): v for s, v in d.items()} for k, d in results.items()}
    failed = []
    for name in args.candidates:  # one run at a time: timed runs must not share the CPU
        for seed in args.seeds:
            if seed in results.get(name, {}):
                continue
            try:
                rec = one(args, name, seed)
            except subprocess.CalledProcessError as e:
                log = os.path.join(args.out, f"{name}_seed{seed}", "log.txt")
                print(f"error: {name} seed {seed}: {os.path.basename(e.cmd[1])} exited with "
                      f"status {e.returncode}; see {log}", file=sys.stderr, flush=True)
                failed.append(name)
                continue
            results.setdefault(name, {})[seed] = rec
            with open(path, "w") as fh:  # after every run: an interrupted comparison resumes
                json.dump(results, fh, indent=1)
            print(f"done {name} seed {seed}: {rec['final']} at step {rec['steps']}", flush=True)
    done = [n for n in args.candidates if results.get(n)]
    if done:
        write_table(args.out, table(results, done, args.seeds))
        plot(results, done, args.seeds, os.path.join(args.out, "fd_vs_time.png"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
